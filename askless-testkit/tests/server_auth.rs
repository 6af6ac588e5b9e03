//! Authentication outcomes, the re-push after a confirmed success, and the locals snapshot.

mod common;

use std::time::Duration;

use askless_testkit::{AuthDecision, MockServer, Route};
use common::{TestClient, assert_error, assert_receipt};
use serde_json::{Value, json};

async fn auth_server() -> MockServer {
    let server = MockServer::builder()
        .configure(|c| {
            c.notify_grace = Duration::ZERO;
            c.authorize_timeout = Duration::from_millis(300);
        })
        .start()
        .await;
    server.authenticate_with(|credential| async move {
        match credential["token"].as_str() {
            Some("good-42") => AuthDecision::user(42)
                .with_claims(json!(["user"]))
                .with_locals(json!({"name": "User 42"})),
            Some("good-alice") => AuthDecision::user("alice").with_claims(json!(["admin"])),
            Some("good-0") => AuthDecision::user(0),
            Some("expired") => AuthDecision::reject("EXPIRED_ACCESS_TOKEN"),
            Some("bad") => AuthDecision::reject_without_code(),
            Some("slow") => AuthDecision::never(),
            _ => AuthDecision::unauthenticated(),
        }
    });
    server
        .route(Route::read("me").for_authenticated_users().handler(|ctx| async move {
            Ok(Some(json!({"userId": ctx.user_id.map(|u| u.to_value()), "claims": ctx.claims, "name": ctx.locals["name"]})))
        }))
        .route(Route::read("catalog").handler(|_| async { Ok(Some(json!(["Apple"]))) }));
    server
}

/// Sends an authenticate request and returns its response, checking the receipt before it.
async fn authenticate(client: &mut TestClient, token: &str) -> Value {
    let id = client.send_authenticate("app1", json!({"token": token})).await;
    assert_receipt(&client.recv().await, &id);
    let response = client.recv().await;
    assert_eq!(response["clientRequestId"], json!(id));
    assert_eq!(response["dataType"], json!("ConfigureConnectionResponse"));
    assert_eq!(response["_class_type_authenticateresponse"], json!("_"));
    response
}

#[tokio::test]
async fn accepted_user_gets_id_and_claims() {
    let server = auth_server().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;

    let response = authenticate(&mut client, "good-42").await;

    assert_eq!(response["output"], json!({"userId": 42, "claims": ["user"]}));
    assert!(response.get("error").is_none());
    assert!(server.record("app1").unwrap().is_authenticated());
}

#[tokio::test]
async fn unauthenticated_acceptance_outputs_empty_object() {
    let server = auth_server().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;

    let response = authenticate(&mut client, "anonymous").await;

    assert_eq!(response["output"], json!({}));
    assert!(response.get("error").is_none());
    assert!(!server.record("app1").unwrap().is_authenticated());
}

#[tokio::test]
async fn rejections_carry_credential_codes() {
    let server = auth_server().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;

    let expired = authenticate(&mut client, "expired").await;
    assert_eq!(
        expired["output"],
        json!({"credentialErrorCode": "EXPIRED_ACCESS_TOKEN"})
    );
    assert_eq!(
        expired["error"],
        json!({"code": "EXPIRED_ACCESS_TOKEN", "description": "The authentication was rejected: undefined"})
    );

    let bad = authenticate(&mut client, "bad").await;
    assert_eq!(
        bad["output"],
        json!({"credentialErrorCode": "INVALID_CREDENTIAL"})
    );
    assert_eq!(bad["error"]["code"], json!("INVALID_CREDENTIAL"));

    let timeout = authenticate(&mut client, "slow").await;
    assert_eq!(
        timeout["output"],
        json!({"credentialErrorCode": "INVALID_CREDENTIAL"})
    );
    assert_eq!(
        timeout["error"],
        json!({"code": "AUTHORIZE_TIMEOUT", "description": "The server didn't authorize (TIMEOUT)"})
    );
    assert_eq!(
        server.connection_count(),
        1,
        "a rejection keeps the connection open"
    );
}

#[tokio::test(start_paused = true)]
async fn no_decision_times_out_after_four_seconds() {
    let server = MockServer::builder()
        .configure(|c| c.liveness_tick = None)
        .start()
        .await;
    server.authenticate_with(|_| async { AuthDecision::never() });
    let mut client = TestClient::configured(&server.url(), "app1").await;
    let sent = tokio::time::Instant::now();

    let id = client.send_authenticate("app1", json!({})).await;
    let receipt = client.try_recv(Duration::from_secs(10)).await.expect("a receipt");
    let receipt: Value = serde_json::from_str(&receipt).unwrap();

    assert_receipt(&receipt, &id);
    assert_eq!(sent.elapsed(), Duration::from_millis(4000));
    assert_eq!(client.recv().await["error"]["code"], json!("AUTHORIZE_TIMEOUT"));
}

#[tokio::test]
async fn falsy_user_id_answers_internal_error() {
    let server = auth_server().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;
    authenticate(&mut client, "good-42").await;

    let id = client.send_authenticate("app1", json!({"token": "good-0"})).await;

    let response = client.recv().await;
    assert_eq!(response["clientRequestId"], json!(id));
    assert_error(&response, "INTERNAL_ERROR", "An internal error occurred");
    assert_eq!(response["dataType"], json!("AsklessResponse"));
    assert!(response.get("_class_type_authenticateresponse").is_none());
    let listen = client.send_listen("me", json!(null), "LIS-me").await;
    assert_receipt(&client.recv().await, &listen);
    assert_eq!(
        client.recv().await["error"]["code"],
        json!("PENDING_AUTHENTICATION")
    );
}

#[tokio::test]
async fn missing_client_id_answers_internal_error() {
    let server = auth_server().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;

    client
        .send(
            json!({"clientRequestId": "REQ-_auth", "requestType": "AUTHENTICATE",
            "_class_type_authenticaterequest": "_", "credential": {"token": "good-42"}}),
        )
        .await;

    let response = client.recv().await;
    assert_eq!(response["clientRequestId"], json!("REQ-_auth"));
    assert_error(&response, "INTERNAL_ERROR", "An internal error occurred");
    assert!(!server.record("app1").unwrap().is_authenticated());
}

#[tokio::test]
async fn same_request_id_processed_again() {
    let server = auth_server().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;
    let frame = json!({"clientRequestId": "REQ-_same", "requestType": "AUTHENTICATE",
        "_class_type_authenticaterequest": "_", "clientIdInternalApp": "app1", "credential": {"token": "expired"}});

    client.send(frame.clone()).await;
    assert_receipt(&client.recv().await, "REQ-_same");
    client.recv().await;
    client.send(frame).await;

    assert_receipt(&client.recv().await, "REQ-_same");
    assert_eq!(
        client.recv().await["error"]["code"],
        json!("EXPIRED_ACCESS_TOKEN")
    );
}

#[tokio::test]
async fn confirmed_success_repushes_listeners() {
    let server = auth_server().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;
    let listen = client.send_listen("catalog", json!(null), "LIS-cat").await;
    assert_receipt(&client.recv().await, &listen);
    client.recv().await;
    client.recv().await;

    let response = authenticate(&mut client, "good-42").await;
    client.expect_silence(Duration::from_millis(200)).await;
    client.confirm(&response).await;

    let pushed = client.recv().await;
    assert_eq!(pushed["listenId"], json!("LIS-cat"));
    assert_eq!(pushed["output"], json!(["Apple"]));
}

#[tokio::test]
async fn listener_keeps_locals_snapshot() {
    let server = auth_server().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;
    let first = authenticate(&mut client, "good-42").await;
    client.confirm(&first).await;
    let listen = client.send_listen("me", json!(null), "LIS-me").await;
    assert_receipt(&client.recv().await, &listen);
    client.recv().await;
    let value = client.recv().await;
    assert_eq!(
        value["output"],
        json!({"userId": 42, "claims": ["user"], "name": "User 42"})
    );

    let second = authenticate(&mut client, "good-alice").await;
    client.confirm(&second).await;

    let pushed = client.recv().await;
    assert_eq!(
        pushed["output"],
        json!({"userId": "alice", "claims": ["admin"], "name": "User 42"})
    );
}

#[tokio::test]
async fn reconnection_needs_new_authentication() {
    let server = auth_server().await;
    server.route(Route::create("secret").for_authenticated_users());
    let mut first = TestClient::configured(&server.url(), "app1").await;
    authenticate(&mut first, "good-42").await;
    first.close().await;

    let mut second = TestClient::configured(&server.url(), "app1").await;
    let create = second.modify("CREATE", "secret", json!({}), json!(null)).await;

    assert_eq!(create["error"]["code"], json!("PENDING_AUTHENTICATION"));
}

#[tokio::test]
async fn credentials_stay_out_of_reports() {
    let server = auth_server().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;
    let id = client
        .send_authenticate("app1", json!({"token": "secret-token-123"}))
        .await;
    assert_receipt(&client.recv().await, &id);
    client.recv().await;

    let frames = server.received_frames();
    let debug = format!("{frames:?}");
    let display: Vec<String> = frames.iter().map(ToString::to_string).collect();

    assert!(!debug.contains("secret-token-123"), "{debug}");
    assert!(
        display.iter().all(|line| !line.contains("secret-token-123")),
        "{display:?}"
    );
    assert!(
        frames.iter().any(|f| f.text.contains("secret-token-123")),
        "raw text stays available"
    );
}

#[tokio::test]
async fn route_context_debug_hides_locals() {
    let server = auth_server().await;
    server.route(Route::read("debug").handler(|ctx| async move { Ok(Some(json!(format!("{ctx:?}")))) }));
    let mut client = TestClient::configured(&server.url(), "app1").await;
    authenticate(&mut client, "good-42").await;

    let response = client.read("debug", json!(null)).await;

    let debug = response["output"].as_str().unwrap();
    assert!(debug.contains("user_id"), "{debug}");
    assert!(!debug.contains("User 42"), "{debug}");
}
