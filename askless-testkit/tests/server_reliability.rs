//! Retransmission, confirm-receipts, liveness, reconnection with the same client id and the
//! record clean-up, under paused tokio time.

mod common;

use std::time::Duration;

use askless_testkit::{MockConfig, MockServer, Route};
use common::{Ended, TestClient, assert_receipt};
use serde_json::json;
use tokio::time::Instant;

fn quiet_config() -> MockConfig {
    let mut config = MockConfig::default();
    config.liveness_tick = None;
    config.record_cleanup_tick = None;
    config
}

async fn server(config: MockConfig) -> MockServer {
    let server = MockServer::builder().config(config).start().await;
    server.route(Route::read("counter").handler(|_| async { Ok(Some(json!(1))) }));
    server
}

#[tokio::test(start_paused = true)]
async fn unconfirmed_response_resent_until_give_up() {
    let server = server(quiet_config()).await;
    let mut client = TestClient::configured(&server.url(), "app1").await;
    let original = client.read("counter", json!(null)).await;
    let original_text = client.received.last().unwrap().clone();

    let mut copies = Vec::new();
    while let Some(text) = client.try_recv(Duration::from_secs(20)).await {
        copies.push((Instant::now(), text));
    }

    assert_eq!(copies.len(), 9, "copies: {copies:#?}");
    assert!(copies.iter().all(|(_, text)| *text == original_text));
    for pair in copies.windows(2) {
        assert_eq!(pair[1].0 - pair[0].0, Duration::from_secs(5));
    }
    assert!(original["serverId"].as_str().unwrap().starts_with("RES-"));
}

#[tokio::test(start_paused = true)]
async fn confirmed_response_never_resent() {
    let server = server(quiet_config()).await;
    let mut client = TestClient::configured(&server.url(), "app1").await;

    let response = client.read("counter", json!(null)).await;
    client.confirm(&response).await;
    client.confirm(&response).await;

    client.expect_silence(Duration::from_secs(30)).await;
    assert_eq!(server.record("app1").unwrap().queue_len(), 0);
}

#[tokio::test(start_paused = true)]
async fn confirm_without_server_id_removes_every_other() {
    let server = server(quiet_config()).await;
    let mut client = TestClient::configured(&server.url(), "app1").await;
    let first = client.read("counter", json!(null)).await;
    let second = client.read("counter", json!(null)).await;

    client
        .send(
            json!({"clientRequestId": "REQ-_c", "requestType": "CONFIRM_RECEIPT",
            "_class_type_clientconfirmreceipt": "_"}),
        )
        .await;
    client
        .send(
            json!({"clientRequestId": "REQ-_d", "requestType": "CONFIRM_RECEIPT",
            "_class_type_clientconfirmreceipt": "_", "serverId": "RES-unknown0000"}),
        )
        .await;

    let resent = client
        .try_recv(Duration::from_secs(10))
        .await
        .expect("a retransmission");
    let resent: serde_json::Value = serde_json::from_str(&resent).unwrap();
    assert_eq!(resent["serverId"], second["serverId"]);
    client.expect_silence(Duration::from_secs(4)).await;
    assert_eq!(
        server.record("app1").unwrap().queued,
        vec![askless_protocol::ServerId::new(
            second["serverId"].as_str().unwrap()
        )]
    );
    assert_ne!(first["serverId"], second["serverId"]);
}

#[tokio::test(start_paused = true)]
async fn well_behaved_ignores_confirm_without_server_id() {
    let mut config = MockConfig::well_behaved();
    config.liveness_tick = None;
    config.record_cleanup_tick = None;
    let server = server(config).await;
    let mut client = TestClient::configured(&server.url(), "app1").await;
    client.read("counter", json!(null)).await;
    client.read("counter", json!(null)).await;

    client
        .send(
            json!({"clientRequestId": "REQ-_c", "requestType": "CONFIRM_RECEIPT",
            "_class_type_clientconfirmreceipt": "_"}),
        )
        .await;

    client.ping(vec![]).await;
    assert_eq!(client.recv_text().await, "pong");
    assert_eq!(server.record("app1").unwrap().queue_len(), 2);
}

#[tokio::test(start_paused = true)]
async fn reconnect_drops_queue_keeps_dedup() {
    let server = server(quiet_config()).await;
    let mut first = TestClient::configured(&server.url(), "app1").await;
    let read = json!({"clientRequestId": "REQ-_once", "requestType": "READ", "_class_type_read": "_",
        "route": "counter", "params": null});
    first.request(read.clone()).await;
    first.close().await;

    let mut second = TestClient::configured(&server.url(), "app1").await;
    second.send(read).await;

    second.expect_silence(Duration::from_secs(12)).await;
    assert_eq!(server.record("app1").unwrap().queue_len(), 0);
}

#[tokio::test(start_paused = true)]
async fn silent_connection_terminated_without_close() {
    let mut config = quiet_config();
    config.liveness_tick = Some(Duration::from_millis(12_008));
    let server = server(config).await;
    let mut client = TestClient::configured(&server.url(), "app1").await;
    let last_frame = Instant::now();

    let ended = client.ended(Duration::from_secs(60)).await;

    assert_eq!(ended, Ended::Abnormal);
    let silence = Instant::now() - last_frame;
    assert!(
        silence >= Duration::from_millis(12_008) && silence <= Duration::from_millis(24_016),
        "{silence:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn pinging_connection_stays_open() {
    let mut config = quiet_config();
    config.liveness_tick = Some(Duration::from_millis(12_008));
    let server = server(config).await;
    let mut client = TestClient::configured(&server.url(), "app1").await;

    for _ in 0..40 {
        client.ping(vec![]).await;
        assert_eq!(client.recv_text().await, "pong");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    assert_eq!(server.connection_count(), 1);
}

#[tokio::test(start_paused = true)]
async fn older_close_strips_newer_connection() {
    let server = server(quiet_config()).await;
    let old = TestClient::configured(&server.url(), "app1").await;
    let mut new = TestClient::configured(&server.url(), "app1").await;

    old.close().await;
    server
        .wait_until(|s| s.connection_count() == 1, Duration::from_secs(2))
        .await
        .unwrap();
    new.ping(vec![]).await;
    new.expect_silence(Duration::from_secs(1)).await;

    new.configure("app1").await;
    new.ping(vec![]).await;
    assert_eq!(new.recv_text().await, "pong");
}

#[tokio::test(start_paused = true)]
async fn well_behaved_close_keeps_newer_connection() {
    let mut config = MockConfig::well_behaved();
    config.liveness_tick = None;
    config.record_cleanup_tick = None;
    let server = server(config).await;
    let old = TestClient::configured(&server.url(), "app1").await;
    let mut new = TestClient::configured(&server.url(), "app1").await;

    old.close().await;
    server
        .wait_until(|s| s.connection_count() == 1, Duration::from_secs(2))
        .await
        .unwrap();
    new.ping(vec![]).await;

    assert_eq!(new.recv_text().await, "pong");
}

#[tokio::test(start_paused = true)]
async fn cleanup_closes_reconnected_connection() {
    let mut config = quiet_config();
    config.record_cleanup_tick = Some(Duration::from_millis(53_000));
    let server = server(config).await;
    let first = TestClient::configured(&server.url(), "app1").await;
    first.close().await;
    let dropped_at = Instant::now();
    let mut second = TestClient::configured(&server.url(), "app1").await;

    let ended = second.ended(Duration::from_secs(200)).await;

    assert_eq!(ended, Ended::CloseFrame(None));
    let after = Instant::now() - dropped_at;
    assert!(
        after >= Duration::from_secs(53) && after <= Duration::from_secs(106),
        "{after:?}"
    );
    assert!(server.record("app1").is_none());
}

#[tokio::test(start_paused = true)]
async fn receipts_are_never_resent() {
    let server = server(quiet_config()).await;
    let mut client = TestClient::configured(&server.url(), "app1").await;

    let id = client.send_read("counter", json!(null)).await;
    assert_receipt(&client.recv().await, &id);
    let response = client.recv().await;
    client.confirm(&response).await;

    client.expect_silence(Duration::from_secs(30)).await;
}

#[tokio::test(start_paused = true)]
async fn old_request_ids_are_pruned() {
    let server = server(quiet_config()).await;
    let mut client = TestClient::configured(&server.url(), "app1").await;
    for _ in 0..105 {
        let response = client.read("counter", json!(null)).await;
        client.confirm(&response).await;
    }
    assert_eq!(server.record("app1").unwrap().remembered_request_ids, 105);

    tokio::time::sleep(Duration::from_secs(11 * 60)).await;
    let response = client.read("counter", json!(null)).await;

    assert_eq!(
        response["output"],
        json!(1),
        "the mock keeps serving where the reference server freezes"
    );
    assert_eq!(server.record("app1").unwrap().remembered_request_ids, 1);
}

#[tokio::test(start_paused = true)]
async fn well_behaved_cleanup_spares_reconnected() {
    let mut config = MockConfig::well_behaved();
    config.liveness_tick = None;
    let server = server(config).await;
    let first = TestClient::configured(&server.url(), "app1").await;
    first.close().await;
    let mut second = TestClient::configured(&server.url(), "app1").await;

    tokio::time::sleep(Duration::from_secs(120)).await;

    second.ping(vec![]).await;
    assert_eq!(second.recv_text().await, "pong");
    assert!(server.record("app1").is_some());
}
