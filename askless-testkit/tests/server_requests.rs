//! Read, create, update and delete: routing, authentication gate, de-duplication, receipts.

mod common;

use std::time::Duration;

use askless_testkit::{AuthDecision, MockServer, Route, RouteError};
use common::{TestClient, assert_error, assert_receipt};
use serde_json::{Value, json};

async fn server_with_catalog() -> MockServer {
    let server = MockServer::start().await;
    server
        .route(Route::read("product/all").handler(|ctx| async move {
            let all = json!([{"id": 1, "name": "Apple"}, {"id": 2, "name": "Banana"}]);
            match ctx.params["nameContains"].as_str() {
                Some("an") => Ok(Some(json!([{"id": 2, "name": "Banana"}]))),
                _ => Ok(Some(all)),
            }
        }))
        .route(
            Route::read("fail/custom")
                .handler(|_| async { Err(RouteError::new("CUSTOM_FAILURE", "asked to fail")) }),
        )
        .route(Route::read("fail/nocode").handler(|_| async { Err(RouteError::description("nocode")) }))
        .route(Route::delete("product").handler(|_| async { Ok(None) }))
        .route(Route::create("product").handler(|ctx| async move { Ok(Some(json!({"created": ctx.body}))) }))
        .route(
            Route::read("me")
                .for_authenticated_users()
                .handler(|ctx| async move { Ok(Some(json!({"userId": ctx.user_id.map(|u| u.to_value())}))) }),
        )
        .route(
            Route::create("secret")
                .for_authenticated_users()
                .handler(|_| async { Ok(Some(json!("done"))) }),
        );
    server
}

#[tokio::test]
async fn read_answers_handler_output() {
    let server = server_with_catalog().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;

    let response = client.read("product/all", json!({"nameContains": "an"})).await;

    assert_eq!(response["output"], json!([{"id": 2, "name": "Banana"}]));
    assert_eq!(response["dataType"], json!("AsklessResponse"));
    assert!(response.get("error").is_none());
    assert!(response["serverId"].as_str().unwrap().starts_with("RES-"));
}

#[tokio::test]
async fn read_errors_keep_given_members() {
    let server = server_with_catalog().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;

    let custom = client.read("fail/custom", json!(null)).await;
    assert_error(&custom, "CUSTOM_FAILURE", "asked to fail");

    let nocode = client.read("fail/nocode", json!(null)).await;
    assert_eq!(nocode["error"], json!({"description": "nocode"}));
    assert_eq!(nocode["output"], Value::Null);
}

#[tokio::test]
async fn success_without_output_omits_key() {
    let server = server_with_catalog().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;

    let response = client
        .modify("DELETE", "product", json!({}), json!({"id": 1}))
        .await;

    assert!(
        response.get("output").is_none(),
        "output must be absent: {response}"
    );
    assert!(response.get("error").is_none());
}

#[tokio::test]
async fn unknown_routes_answer_invalid_route() {
    let server = server_with_catalog().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;

    let read = client.read("nope", json!(null)).await;
    assert_error(
        &read,
        "INVALID_ROUTE",
        "ReadRoute \"nope\" not found on server . Check if the ReadRoute nope was created and set on this server",
    );
    let read_of_create_route = client.read("secret", json!(null)).await;
    assert_eq!(read_of_create_route["error"]["code"], json!("INVALID_ROUTE"));

    let create = client.modify("CREATE", "nope", json!({}), json!(null)).await;
    assert_error(&create, "INVALID_ROUTE", "route not found: CREATE nope");
    let patch = client.modify("PATCH", "product", json!({}), json!(null)).await;
    assert_error(&patch, "INVALID_ROUTE", "route not found: PATCH product");
}

#[tokio::test]
async fn create_passes_body() {
    let server = server_with_catalog().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;

    let response = client
        .modify("CREATE", "product", json!({"name": "Pear"}), json!(null))
        .await;

    assert_eq!(response["output"], json!({"created": {"name": "Pear"}}));
}

#[tokio::test]
async fn authentication_gate_blocks_modify_not_read() {
    let server = server_with_catalog().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;

    let create = client.modify("CREATE", "secret", json!({}), json!(null)).await;
    assert_error(
        &create,
        "PENDING_AUTHENTICATION",
        "Could not perform the operation on (CREATE) \"secret\" because authentication is required",
    );
    let read = client.read("me", json!(null)).await;
    assert_eq!(read["output"], json!({"userId": null}));
}

#[tokio::test]
async fn well_behaved_server_gates_read() {
    let server = MockServer::builder().well_behaved().start().await;
    server.route(Route::read("me").for_authenticated_users());
    let mut client = TestClient::configured(&server.url(), "app1").await;

    let read = client.read("me", json!(null)).await;

    assert_error(
        &read,
        "PENDING_AUTHENTICATION",
        "Could not perform the operation on (READ) \"me\" because authentication is required",
    );
}

#[tokio::test]
async fn duplicate_request_ids_get_nothing() {
    let server = server_with_catalog().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;
    let frame = json!({"clientRequestId": "REQ-_dup", "requestType": "CREATE", "_class_type_modify": "_",
        "route": "product", "body": {"n": 1}, "params": null});

    client.send(frame.clone()).await;
    client.send(frame).await;
    assert_receipt(&client.recv().await, "REQ-_dup");
    assert_eq!(client.recv().await["clientRequestId"], json!("REQ-_dup"));
    client.expect_silence(Duration::from_millis(300)).await;

    client
        .send(
            json!({"clientRequestId": "REQ-_dup", "requestType": "READ", "_class_type_read": "_",
            "route": "product/all", "params": null}),
        )
        .await;
    client.expect_silence(Duration::from_millis(300)).await;

    let mut other = TestClient::configured(&server.url(), "app2").await;
    let response = other
        .request(
            json!({"clientRequestId": "REQ-_dup", "requestType": "READ", "_class_type_read": "_",
            "route": "product/all", "params": null}),
        )
        .await;
    assert!(response.get("error").is_none());
}

#[tokio::test]
async fn unknown_marker_answers_without_receipt() {
    let server = server_with_catalog().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;

    client
        .send(json!({"clientRequestId": "REQ-_x", "requestType": "READ"}))
        .await;

    let response = client.recv().await;
    assert_eq!(response["clientRequestId"], json!("REQ-_x"));
    assert_error(
        &response,
        "INTERNAL_ERROR",
        "Not class type requestAlreadyReceivedFromClientBefore to handle",
    );
}

#[tokio::test]
async fn receipt_precedes_slow_response() {
    let server = MockServer::start().await;
    server.route(Route::read("slow").handler(|_| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok(Some(json!("late")))
    }));
    let mut client = TestClient::configured(&server.url(), "app1").await;

    let id = client.send_read("slow", json!(null)).await;
    assert_receipt(&client.recv().await, &id);
    client.ping(vec![]).await;
    assert_eq!(client.recv_text().await, "pong");
    assert_eq!(client.recv().await["output"], json!("late"));
}

#[tokio::test]
async fn no_answer_sends_only_receipt() {
    let server = MockServer::start().await;
    server.route(Route::read("silent").handler(|_| async { Err(RouteError::no_answer()) }));
    let mut client = TestClient::configured(&server.url(), "app1").await;

    let id = client.send_read("silent", json!(null)).await;

    assert_receipt(&client.recv().await, &id);
    client.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn logout_route_reports_and_keeps_user() {
    let server = server_with_catalog().await;
    server.authenticate_with(|_| async { AuthDecision::user(42) });
    let mut client = TestClient::configured(&server.url(), "app1").await;

    let logout = client
        .modify(
            "DELETE",
            "askless-internal/authentication",
            json!({}),
            json!(null),
        )
        .await;
    assert_eq!(logout["output"], json!({"result": "NO-OP"}));

    let id = client.send_authenticate("app1", json!({"token": "t"})).await;
    assert_receipt(&client.recv().await, &id);
    let auth = client.recv().await;
    client.confirm(&auth).await;

    let logout = client
        .modify(
            "DELETE",
            "askless-internal/authentication",
            json!({}),
            json!(null),
        )
        .await;
    assert_eq!(logout["output"], json!({"result": "OK"}));
    let create = client.modify("CREATE", "secret", json!({}), json!(null)).await;
    assert_eq!(
        create["output"],
        json!("done"),
        "the reference server keeps the user after logout"
    );
}

#[tokio::test]
async fn output_conversion_and_hook_apply() {
    let server = MockServer::start().await;
    let (confirmed_tx, mut confirmed_rx) = tokio::sync::mpsc::unbounded_channel();
    server.route(
        Route::read("wrapped")
            .handler(|_| async { Ok(Some(json!(5))) })
            .output(|entity| Some(json!({"value": entity})))
            .on_received(move |hook| {
                let _ = confirmed_tx.send(hook.output.clone());
            }),
    );
    let mut client = TestClient::configured(&server.url(), "app1").await;

    let response = client.read("wrapped", json!(null)).await;
    assert_eq!(response["output"], json!({"value": 5}));
    client.confirm(&response).await;

    let confirmed = tokio::time::timeout(Duration::from_secs(2), confirmed_rx.recv())
        .await
        .unwrap();
    assert_eq!(confirmed, Some(Some(json!({"value": 5}))));
}

#[tokio::test]
async fn well_behaved_logout_ends_authentication() {
    let server = MockServer::builder().well_behaved().start().await;
    server.authenticate_with(|_| async { AuthDecision::user(42) });
    server.route(Route::create("secret").for_authenticated_users());
    let mut client = TestClient::configured(&server.url(), "app1").await;
    let id = client.send_authenticate("app1", json!({"token": "t"})).await;
    assert_receipt(&client.recv().await, &id);
    client.recv().await;

    let logout = client
        .modify(
            "DELETE",
            "askless-internal/authentication",
            json!({}),
            json!(null),
        )
        .await;
    let create = client.modify("CREATE", "secret", json!({}), json!(null)).await;

    assert_eq!(logout["output"], json!({"result": "OK"}));
    assert_eq!(create["error"]["code"], json!("PENDING_AUTHENTICATION"));
}
