//! Greeting, configure and ping/pong.

mod common;

use std::time::Duration;

use askless_testkit::{MockConfig, MockServer};
use common::{TestClient, assert_receipt, configure_frame};
use serde_json::json;

#[tokio::test]
async fn configure_answers_receipt_then_configuration() {
    let server = MockServer::start().await;
    let mut client = TestClient::connect(&server.url()).await;

    let response = client.configure("app1").await;

    assert_eq!(response["dataType"], json!("ConfigureConnectionResponse"));
    assert_eq!(response["_class_type_configureconnection"], json!("_"));
    assert!(response.get("error").is_none());
    let configuration = &response["output"]["connectionConfiguration"];
    assert_eq!(
        configuration,
        &json!({
            "intervalInMsServerSendSameMessage": 5000, "intervalInMsClientSendSameMessage": 5000,
            "intervalInMsClientPing": 1000, "millisecondsToDisconnectClientAfterWithoutClientPing": 12000,
            "reconnectClientAfterMillisecondsWithoutServerPong": 6000, "waitForAuthenticationTimeoutInMs": 4000,
            "requestTimeoutInMs": 7000, "isFromServer": true, "serverVersion": "2.0.3",
            "clientVersionCodeSupported": {"lessThanOrEqual": null, "moreThanOrEqual": 4}
        })
    );
}

#[tokio::test]
async fn configure_reflects_configured_values() {
    let mut config = MockConfig::default();
    config.request_timeout = Some(Duration::from_millis(3000));
    config.retransmission_interval = Duration::from_millis(700);
    config.client_ping_interval = Duration::from_millis(250);
    config.wait_for_authentication_timeout = Duration::from_millis(1500);
    config.server_version = "9.9.9".to_owned();
    config.client_version_window = Some(askless_protocol::ClientVersionCodeSupported {
        less_than_or_equal: Some(6),
        more_than_or_equal: Some(5),
    });
    let server = MockServer::builder().config(config).start().await;
    let mut client = TestClient::connect(&server.url()).await;

    let response = client.configure("app1").await;

    let configuration = &response["output"]["connectionConfiguration"];
    assert_eq!(configuration["requestTimeoutInMs"], json!(3000));
    assert_eq!(configuration["intervalInMsServerSendSameMessage"], json!(700));
    assert_eq!(configuration["intervalInMsClientPing"], json!(250));
    assert_eq!(configuration["waitForAuthenticationTimeoutInMs"], json!(1500));
    assert_eq!(configuration["serverVersion"], json!("9.9.9"));
    assert_eq!(
        configuration["clientVersionCodeSupported"],
        json!({"lessThanOrEqual": 6, "moreThanOrEqual": 5})
    );
}

#[tokio::test]
async fn client_type_selects_version_window() {
    let server = MockServer::start().await;
    let cases = [
        (
            Some("flutter"),
            json!({"lessThanOrEqual": null, "moreThanOrEqual": 4}),
        ),
        (None, json!({"lessThanOrEqual": null, "moreThanOrEqual": 4})),
        (
            Some("javascript"),
            json!({"lessThanOrEqual": 3, "moreThanOrEqual": null}),
        ),
    ];
    for (client_type, window) in cases {
        let mut client = TestClient::connect(&server.url()).await;
        client
            .send(configure_frame("REQ-_c1", "app-window", client_type))
            .await;
        assert_receipt(&client.recv().await, "REQ-_c1");
        let response = client.recv().await;
        assert_eq!(
            response["output"]["connectionConfiguration"]["clientVersionCodeSupported"],
            window
        );
    }
}

#[tokio::test]
async fn unknown_client_type_fails_but_configures() {
    let server = MockServer::start().await;
    server.route(askless_testkit::Route::read("counter").handler(|_| async { Ok(Some(json!(3))) }));
    let mut client = TestClient::connect(&server.url()).await;
    client
        .send(configure_frame("REQ-_c1", "app-rust", Some("rust")))
        .await;

    assert_receipt(&client.recv().await, "REQ-_c1");
    let response = client.recv().await;
    common::assert_error(&response, "INTERNAL_ERROR", "An internal error occurred");
    assert_eq!(response["dataType"], json!("AsklessResponse"));

    let read = client.read("counter", json!(null)).await;
    assert_eq!(read["output"], json!(3));
}

#[tokio::test]
async fn ping_answered_only_once_configured() {
    let server = MockServer::start().await;
    let mut client = TestClient::connect(&server.url()).await;

    client.ping(vec![]).await;
    client.expect_silence(Duration::from_millis(300)).await;

    let response = client.configure("app1").await;
    client.confirm(&response).await;
    client.ping(vec![]).await;
    assert_eq!(client.recv_text().await, "pong");
}

#[tokio::test]
async fn requests_before_configure_are_dropped() {
    let server = MockServer::start().await;
    let mut client = TestClient::connect(&server.url()).await;

    client.send_read("anything", json!(null)).await;
    client.send_authenticate("app1", json!({"token": "x"})).await;
    client.expect_silence(Duration::from_millis(300)).await;

    client.configure("app1").await;
}

#[tokio::test]
async fn frames_are_recorded_per_connection() {
    let server = MockServer::start().await;
    let mut first = TestClient::connect(&server.url()).await;
    let _second = TestClient::connect(&server.url()).await;
    first.configure("app1").await;

    let frame = server
        .wait_for_frame(
            |f| f.text.contains("connectionConfiguration"),
            Duration::from_secs(2),
        )
        .await
        .unwrap();
    let frames = server.connection_frames(frame.connection);

    let texts: Vec<&str> = frames.iter().map(|f| f.text.as_str()).collect();
    assert_eq!(texts[0], "welcome");
    assert_eq!(frames.len(), 4, "{texts:?}");
    assert_eq!(frames[1].direction, askless_testkit::Direction::Received);
    assert!(frames.windows(2).all(|pair| pair[0].index < pair[1].index));
    assert_eq!(server.connection_count(), 2);
}
