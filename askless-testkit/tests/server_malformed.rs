//! Malformed frames: the mock answers what the reference server answers before failing, drops
//! the rest, and keeps serving every connection.

mod common;

use std::time::Duration;

use askless_testkit::{MockServer, Route};
use common::{TestClient, assert_error, assert_receipt, listen_frame};
use futures_util::SinkExt as _;
use serde_json::json;

async fn server() -> MockServer {
    let server = MockServer::start().await;
    server
        .route(Route::read("counter").handler(|_| async { Ok(Some(json!(3))) }))
        .route(Route::create("note"))
        .route(Route::read("explode").handler(|_| async { panic!("handler failure on purpose") }));
    server
}

#[tokio::test]
async fn crashing_inputs_are_dropped() {
    let server = server().await;
    let mut bystander = TestClient::configured(&server.url(), "bystander").await;
    let mut client = TestClient::configured(&server.url(), "app1").await;
    let inputs = [
        "{not json",
        "",
        "null",
        "42",
        "\"hello\"",
        "[]",
        "{}",
        r#"{"requestType":"READ","_class_type_read":"_","route":"counter"}"#,
        r#"{"clientRequestId":"","requestType":"READ","_class_type_read":"_","route":"counter"}"#,
        r#"{"clientRequestId":5,"requestType":"READ","_class_type_read":"_","route":"counter"}"#,
        r#"{"clientRequestId":"REQ-_c","requestType":"CONFIRM_RECEIPT","_class_type_clientconfirmreceipt":"_","serverId":"RES-nothing0000"}"#,
    ];

    for input in inputs {
        client.send_text(input).await;
    }

    client.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(client.read("counter", json!(null)).await["output"], json!(3));
    assert_eq!(bystander.read("counter", json!(null)).await["output"], json!(3));
}

#[tokio::test]
async fn bad_pings_get_only_pong() {
    let server = server().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;

    client.send(json!({"_class_type_pingpong": "_"})).await;
    assert_eq!(client.recv_text().await, "pong");
    client
        .ping(vec![listen_frame("LIS-_1", "nope", json!(null), "LIS-x")])
        .await;
    assert_eq!(client.recv_text().await, "pong");
    client
        .ping(vec![
            json!({"requestType": "LISTEN", "_class_type_listen": "_", "route": "counter",
            "params": null, "listenId": "LIS-y"}),
        ])
        .await;
    assert_eq!(client.recv_text().await, "pong");

    client.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(client.read("counter", json!(null)).await["output"], json!(3));
}

#[tokio::test]
async fn guarded_answers_match_reference() {
    let server = server().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;

    client
        .send(json!({"clientRequestId": "REQ-_a", "requestType": "READ", "_class_type_read": "_", "params": null}))
        .await;
    assert_receipt(&client.recv().await, "REQ-_a");
    assert_error(
        &client.recv().await,
        "INVALID_ROUTE",
        "ReadRoute \"undefined\" not found on server . Check if the ReadRoute undefined was created and set on this server",
    );

    client
        .send(json!({"clientRequestId": "REQ-_b", "requestType": "FOO", "_class_type_read": "_", "route": "counter"}))
        .await;
    assert_receipt(&client.recv().await, "REQ-_b");
    assert_eq!(client.recv().await["output"], json!(3));

    client
        .send(json!({"clientRequestId": "REQ-_c", "_class_type_modify": "_", "route": "note", "body": {}}))
        .await;
    assert_receipt(&client.recv().await, "REQ-_c");
    assert_error(
        &client.recv().await,
        "INTERNAL_ERROR",
        "An internal error occurred",
    );

    client
        .send(
            json!({"clientRequestId": "REQ-_d", "requestType": "READ", "_class_type_modify": "_",
            "route": "counter", "body": {}}),
        )
        .await;
    assert_receipt(&client.recv().await, "REQ-_d");
    assert_error(
        &client.recv().await,
        "INTERNAL_ERROR",
        "An internal error occurred",
    );

    client
        .send(
            json!({"clientRequestId": "REQ-_e", "requestType": "CONFIGURE_CONNECTION",
            "_class_type_configureconnectionrequest": "_"}),
        )
        .await;
    client.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn panicking_handler_sends_only_receipt() {
    let server = server().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;

    let id = client.send_read("explode", json!(null)).await;

    assert_receipt(&client.recv().await, &id);
    client.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(client.read("counter", json!(null)).await["output"], json!(3));
}

#[tokio::test]
async fn binary_frames_are_served() {
    let server = server().await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.url()).await.unwrap();
    let configure = common::configure_frame("REQ-_1", "app1", Some("flutter")).to_string();
    ws.send(tokio_tungstenite::tungstenite::Message::binary(
        configure.into_bytes(),
    ))
    .await
    .unwrap();

    let frame = server
        .wait_for_frame(
            |f| f.text.contains("connectionConfiguration"),
            Duration::from_secs(2),
        )
        .await
        .unwrap();

    assert_eq!(frame.direction, askless_testkit::Direction::Sent);
}

#[tokio::test]
async fn idle_tcp_connection_does_not_disturb() {
    let server = server().await;
    let _probe = tokio::net::TcpStream::connect(server.address()).await.unwrap();

    let mut client = TestClient::configured(&server.url(), "app1").await;

    assert_eq!(client.read("counter", json!(null)).await["output"], json!(3));
}
