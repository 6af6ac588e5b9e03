//! Live streams after a reconnection: the client pings at once, so the server re-creates its
//! listeners without waiting for the next periodic ping.

use std::time::Duration;

use askless_client::{AsklessClient, ConnectionStatus};
use askless_protocol::ClientMessage;
use askless_testkit::{MockServer, Route};
use futures::StreamExt;
use serde_json::json;

/// The advertised ping interval, far longer than the delay of the early ping.
const PING_INTERVAL: Duration = Duration::from_secs(120);

/// Bound on the delay of the early ping: below the client's 1 s timer that applies the server's
/// retransmission period, the nearest timer the paused clock could jump to meanwhile.
const EARLY: Duration = Duration::from_millis(900);

const WAIT: Duration = Duration::from_secs(30);

async fn server() -> MockServer {
    let server = MockServer::builder()
        .well_behaved()
        .configure(|config| {
            config.client_ping_interval = PING_INTERVAL;
            // No pings means no pongs: the silence limit must outlast the ping interval, or the
            // client would drop the connection as silent.
            config.reconnect_without_pong = 2 * PING_INTERVAL;
            config.liveness_tick = None;
            config.record_cleanup_tick = None;
        })
        .start()
        .await;
    server.route(Route::read("counter").handler(|_| async move { Ok(Some(json!(5))) }));
    server
}

async fn wait_status(client: &AsklessClient, connected: bool) {
    let mut watch = client.status_watch();
    tokio::time::timeout(WAIT, watch.wait_for(|status| status.is_connected() == connected))
        .await
        .expect("the status changed in time")
        .expect("the client is still running");
}

/// Returns when the server received each configure request and each ping, in order.
fn configures_and_pings(server: &MockServer) -> (Vec<tokio::time::Instant>, Vec<tokio::time::Instant>) {
    let mut configures = Vec::new();
    let mut pings = Vec::new();
    for frame in server.received_frames() {
        match frame.client_message() {
            Some(ClientMessage::ConfigureConnection(_)) => configures.push(frame.at),
            Some(ClientMessage::Ping(ping)) if !ping.listening_to_routes.is_empty() => pings.push(frame.at),
            _ => {}
        }
    }
    (configures, pings)
}

#[tokio::test(start_paused = true)]
async fn reconnection_pings_live_streams_at_once() {
    let server = server().await;
    let client = AsklessClient::builder(server.url()).connect().await.unwrap();
    let mut stream = client.read_stream("counter", ()).await.unwrap();
    let first = tokio::time::timeout(WAIT, stream.next()).await.unwrap();
    assert_eq!(first.unwrap().unwrap(), json!(5));

    server.faults().drop_connections();
    wait_status(&client, false).await;
    wait_status(&client, true).await;
    server
        .wait_until(|server| server.listener_count("counter") == 1, WAIT)
        .await
        .expect("the server re-created the listener");

    let (configures, pings) = configures_and_pings(&server);
    assert_eq!(configures.len(), 2, "one configure per connection");
    let reconfigured_at = configures[1];
    let resumed_at = pings
        .iter()
        .find(|at| **at >= reconfigured_at)
        .expect("a ping listing the stream after the reconnection");
    assert!(
        resumed_at.duration_since(reconfigured_at) < EARLY,
        "the ping came {:?} after the configure request",
        resumed_at.duration_since(reconfigured_at)
    );
    assert!(matches!(client.status(), ConnectionStatus::Connected));
    client.close().await;
}
