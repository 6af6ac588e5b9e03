//! Fault injection: delays, withheld frames, duplicates, drops, half-open, garbage, restart.

mod common;

use std::time::Duration;

use askless_testkit::{MockServer, Route, Withhold};
use common::{Ended, TestClient, assert_receipt};
use serde_json::json;

async fn server() -> MockServer {
    let server = MockServer::builder()
        .configure(|c| {
            c.liveness_tick = None;
            c.record_cleanup_tick = None;
        })
        .start()
        .await;
    server.route(Route::read("counter").handler(|_| async { Ok(Some(json!(7))) }));
    server
}

#[tokio::test(start_paused = true)]
async fn delayed_responses_keep_receipts_immediate() {
    let server = server().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;
    server.faults().delay_responses(Some(Duration::from_secs(2)));
    let sent = tokio::time::Instant::now();

    let id = client.send_read("counter", json!(null)).await;

    assert_receipt(&client.recv().await, &id);
    assert_eq!(sent.elapsed(), Duration::ZERO);
    assert_eq!(client.recv().await["output"], json!(7));
    assert_eq!(sent.elapsed(), Duration::from_secs(2));
}

#[tokio::test]
async fn withheld_receipts_leave_only_responses() {
    let server = server().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;
    server.faults().withhold_receipts(true);

    let id = client.send_read("counter", json!(null)).await;

    let response = client.recv().await;
    assert_eq!(response["clientRequestId"], json!(id));
    assert_eq!(response["output"], json!(7));
}

#[tokio::test]
async fn dropped_responses_never_arrive() {
    let server = server().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;
    server.faults().withhold_responses(Withhold::Drop);

    let id = client.send_read("counter", json!(null)).await;

    assert_receipt(&client.recv().await, &id);
    client.expect_silence(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn held_responses_arrive_on_release() {
    let server = server().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;
    server.faults().withhold_responses(Withhold::Hold);

    let id = client.send_read("counter", json!(null)).await;
    assert_receipt(&client.recv().await, &id);
    client.expect_silence(Duration::from_millis(300)).await;
    server.faults().release_responses();

    let response = client.recv().await;
    assert_eq!(response["clientRequestId"], json!(id));
    assert_eq!(response["output"], json!(7));
}

#[tokio::test]
async fn next_frames_are_duplicated() {
    let server = server().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;
    server.faults().duplicate_frames(2);

    let id = client.send_read("counter", json!(null)).await;

    let first = client.recv().await;
    let second = client.recv().await;
    assert_receipt(&first, &id);
    assert_eq!(first, second);
    let response = client.recv().await;
    assert_eq!(response, client.recv().await);
    client.ping(vec![]).await;
    assert_eq!(client.recv_text().await, "pong");
    client.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn dropped_connections_end_abnormally() {
    let server = server().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;

    server.faults().drop_connections();

    assert_eq!(client.ended(Duration::from_secs(2)).await, Ended::Abnormal);
    server
        .wait_until(|s| s.connection_count() == 0, Duration::from_secs(2))
        .await
        .unwrap();
    assert!(server.record("app1").is_some(), "records survive a network drop");
}

#[tokio::test]
async fn half_open_server_is_silent() {
    let server = server().await;
    let mut client = TestClient::configured(&server.url(), "app1").await;

    server.faults().half_open(true);
    client.ping(vec![]).await;
    client.send_read("counter", json!(null)).await;
    client.expect_silence(Duration::from_millis(300)).await;

    server.faults().half_open(false);
    client.ping(vec![]).await;
    assert_eq!(client.recv_text().await, "pong");
    assert_eq!(server.connection_count(), 1);
}

#[tokio::test]
async fn garbled_frame_reaches_every_connection() {
    let server = server().await;
    let mut first = TestClient::configured(&server.url(), "app1").await;
    let mut second = TestClient::connect(&server.url()).await;

    server.faults().send_garbled_frame();

    for client in [&mut first, &mut second] {
        let text = client.recv_text().await;
        assert!(
            serde_json::from_str::<serde_json::Value>(&text).is_err(),
            "{text}"
        );
    }
}

#[tokio::test]
async fn restart_forgets_sessions_on_same_port() {
    let server = server().await;
    let url = server.url();
    let mut client = TestClient::configured(&url, "app1").await;
    let read = json!({"clientRequestId": "REQ-_kept", "requestType": "READ", "_class_type_read": "_",
        "route": "counter", "params": null});
    client.request(read.clone()).await;

    server.restart().await;

    assert_eq!(client.ended(Duration::from_secs(2)).await, Ended::Abnormal);
    assert!(server.record("app1").is_none());
    let mut again = TestClient::configured(&url, "app1").await;
    let response = again.request(read).await;
    assert_eq!(response["output"], json!(7), "de-duplication memory is gone");
    assert_eq!(server.url(), url);
}
