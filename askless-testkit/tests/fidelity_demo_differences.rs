//! The inputs that make the upstream example servers exit: the demo route set answers them with
//! an error instead, as its documentation lists, and keeps serving. These are deliberate
//! differences from the example servers, so they are asserted here rather than replayed.

mod replay;

use std::time::Duration;

use askless_testkit::MockServer;
use askless_testkit::route_sets::{self, DemoOptions};
use askless_transport::{Connection, Transport, WebSocketTransport, url::Url};
use serde_json::{Value, json};
use tokio::time::Instant;

use replay::driver::recv_until;

const WAIT: Duration = Duration::from_secs(5);

/// Starts a mock with the demo route set and no server-generated products.
async fn demo_server() -> (MockServer, route_sets::RouteSetTimers) {
    let mut config = route_sets::demo::config();
    config.notify_grace = Duration::ZERO;
    let server = MockServer::builder().config(config).start().await;
    let mut options = DemoOptions::default();
    options.catalog_product_interval = None;
    let timers = route_sets::install_demo(&server, options);
    (server, timers)
}

/// A raw client that confirms every response and value.
struct Client {
    connection: Connection,
    next_id: u32,
}

impl Client {
    async fn configured(server: &MockServer, client_id: &str) -> Client {
        let url = Url::parse(&server.url()).expect("the mock's URL is valid");
        let connection = WebSocketTransport::default()
            .connect(&url)
            .await
            .expect("connecting to the mock");
        let mut client = Client {
            connection,
            next_id: 0,
        };
        assert_eq!(client.next().await, json!("welcome"));
        let output = client
            .request(json!({
                "requestType": "CONFIGURE_CONNECTION", "_class_type_configureconnectionrequest": "_",
                "clientIdInternalApp": client_id, "clientType": "flutter"
            }))
            .await;
        assert!(output.get("error").is_none(), "configure failed: {output}");
        client
    }

    async fn next(&mut self) -> Value {
        let text = match recv_until(&mut self.connection, Instant::now() + WAIT).await {
            Some(Ok(text)) => text,
            Some(Err(error)) => panic!("the connection ended: {error}"),
            None => panic!("no frame within {WAIT:?}"),
        };
        let frame: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let confirmable = frame.get("_class_type_serverconfirmreceipt").is_none()
            && (frame.get("_class_type_response").is_some()
                || frame.get("_class_type_newDataForListener").is_some());
        if confirmable {
            self.next_id += 1;
            let ack = json!({
                "clientRequestId": format!("REQ-_ack-{}", self.next_id), "requestType": "CONFIRM_RECEIPT",
                "_class_type_clientconfirmreceipt": "_", "serverId": frame["serverId"]
            });
            self.connection
                .send(ack.to_string())
                .await
                .expect("sending a confirmation");
        }
        frame
    }

    /// Sends `frame` with a new `clientRequestId` and returns the response, skipping its receipt.
    async fn request(&mut self, mut frame: Value) -> Value {
        self.next_id += 1;
        let id = format!("REQ-_demo-{}", self.next_id);
        frame["clientRequestId"] = json!(id);
        self.connection
            .send(frame.to_string())
            .await
            .expect("sending a request");
        loop {
            let answer = self.next().await;
            if answer["clientRequestId"] == json!(id) && answer["output"] != json!("RECEIVED") {
                return answer;
            }
        }
    }

    async fn authenticate(&mut self, client_id: &str, credential: Value) -> Value {
        let mut frame = json!({
            "requestType": "AUTHENTICATE", "_class_type_authenticaterequest": "_",
            "clientIdInternalApp": client_id, "clientType": "flutter"
        });
        if !credential.is_null() {
            frame["credential"] = credential;
        }
        self.request(frame).await
    }

    async fn read(&mut self, route: &str, params: Value) -> Value {
        self.request(
            json!({"requestType": "READ", "_class_type_read": "_", "route": route, "params": params}),
        )
        .await
    }

    async fn create(&mut self, route: &str, body: Value) -> Value {
        self.request(json!({
            "requestType": "CREATE", "_class_type_modify": "_", "route": route, "body": body, "params": null
        }))
        .await
    }
}

fn error_of(response: &Value) -> (&str, &str) {
    (
        response["error"]["code"].as_str().unwrap_or("<no code>"),
        response["error"]["description"]
            .as_str()
            .unwrap_or("<no description>"),
    )
}

#[tokio::test(start_paused = true)]
async fn product_list_null_params_is_bad_request() {
    let (server, _timers) = demo_server().await;
    let mut client = Client::configured(&server, "guard-params").await;

    let response = client.read("product-list", Value::Null).await;
    assert_eq!(
        error_of(&response),
        (
            "BAD_REQUEST",
            "params must be an object such as {\"search\": \"\", \"reversed\": false}"
        )
    );
    assert_eq!(client.read("product-list", json!({})).await["output"], json!([]));
}

#[tokio::test(start_paused = true)]
async fn missing_credential_is_rejected() {
    let (server, _timers) = demo_server().await;
    let mut client = Client::configured(&server, "guard-credential").await;

    let response = client.authenticate("guard-credential", Value::Null).await;
    assert_eq!(
        response["output"],
        json!({"credentialErrorCode": "INVALID_CREDENTIAL"})
    );
    assert_eq!(error_of(&response).0, "INVALID_CREDENTIAL");

    let color = client
        .authenticate("guard-credential", json!({"myColor": 7}))
        .await;
    assert_eq!(error_of(&color).0, "INVALID_CREDENTIAL");

    let unauthenticated = client.authenticate("guard-credential", json!({})).await;
    assert_eq!(unauthenticated["output"], json!({}));
    assert!(unauthenticated.get("error").is_none());
}

#[tokio::test(start_paused = true)]
async fn create_with_null_body_is_bad_request() {
    let (server, _timers) = demo_server().await;
    let mut client = Client::configured(&server, "guard-body").await;
    let chat = client
        .authenticate("guard-body", json!({"myColor": "blue"}))
        .await;
    assert_eq!(chat["output"], json!({"userId": "blue", "claims": []}));

    let message = client.create("message", Value::Null).await;
    assert_eq!(
        error_of(&message),
        ("BAD_REQUEST", "body must be an object such as {\"text\": \"Hi\"}")
    );
    let product = client.create("product", Value::Null).await;
    assert_eq!(
        error_of(&product),
        (
            "BAD_REQUEST",
            "body must be an object such as {\"name\": \"Mouse\", \"price\": 15}"
        )
    );

    // The server keeps serving the same connection.
    let stored = client
        .create("product", json!({"id": null, "name": "Mouse", "price": 15}))
        .await;
    assert_eq!(stored["output"], json!({"id": 1, "price": 15, "name": "Mouse"}));
}

#[tokio::test(start_paused = true)]
async fn delete_unknown_id_removes_last_product() {
    let (server, _timers) = demo_server().await;
    let mut client = Client::configured(&server, "catalog-delete").await;
    let user = client
        .authenticate("catalog-delete", json!({"Authorization": "Bearer abcd"}))
        .await;
    assert_eq!(user["output"], json!({"userId": 1, "claims": []}));
    for (name, price) in [("Keyboard", 30), ("Mouse", 15)] {
        client
            .create("product", json!({"id": null, "name": name, "price": price}))
            .await;
    }

    let delete = |params: Value| json!({"requestType": "DELETE", "_class_type_modify": "_", "route": "product", "body": {}, "params": params});
    let missing = client.request(delete(json!({}))).await;
    assert_eq!(
        error_of(&missing),
        ("BAD_REQUEST", "Please, inform \"id\" field on params")
    );
    let unknown = client.request(delete(json!({"id": 999}))).await;
    assert_eq!(unknown["output"], json!({}));
    assert!(unknown.get("error").is_none());
    assert_eq!(
        client.read("product-list", json!({"search": ""})).await["output"],
        json!([{"id": 1, "price": 30, "name": "Keyboard"}])
    );
    let loose = client.request(delete(json!({"id": "1"}))).await;
    assert_eq!(loose["output"], json!({"id": 1, "price": 30, "name": "Keyboard"}));
}
