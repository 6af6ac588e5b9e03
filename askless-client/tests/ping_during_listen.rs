//! Pings while a listen request awaits its response, against the testkit's mock server.
//!
//! A ping lists only the listeners whose listen succeeded, and the server stops every listener
//! a ping omits. These tests check that the client postpones a due ping until the listen
//! response arrives, and that the hold is bounded so the server still hears from the client.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use askless_client::AsklessClient;
use askless_protocol::{ClientMessage, ServerMessage};
use askless_testkit::{Frame, MockServer, Route, RouteError};
use futures::StreamExt;
use serde_json::json;

/// Maximum virtual wait for anything a test expects to happen.
const WAIT: Duration = Duration::from_secs(60);

/// The ping interval the mock sends to the client in its connection configuration.
const PING_INTERVAL: Duration = Duration::from_secs(1);

/// The silence limit the mock advertises (`reconnectClientAfterMillisecondsWithoutServerPong`).
const SILENCE_LIMIT: Duration = Duration::from_secs(6);

/// Maximum time a ping waits for a listen in flight: half the silence limit.
const MAX_POSTPONEMENT: Duration = Duration::from_secs(3);

/// How long the slow route takes to produce its value: longer than one ping interval, so a
/// ping falls due while the listen is in flight, and shorter than the longest postponement.
const SLOW_READ: Duration = Duration::from_millis(1500);

async fn server() -> MockServer {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    MockServer::builder()
        .well_behaved()
        .configure(|config| {
            config.record_cleanup_tick = None;
            config.client_ping_interval = PING_INTERVAL;
            config.reconnect_without_pong = SILENCE_LIMIT;
        })
        .start()
        .await
}

fn is_ping(frame: &Frame) -> bool {
    matches!(frame.client_message(), Some(ClientMessage::Ping(_)))
}

/// Returns the position in `frames` of the client's only listen request, and its request id.
fn listen_request(frames: &[Frame]) -> (usize, String) {
    let listens: Vec<(usize, String)> = frames
        .iter()
        .enumerate()
        .filter_map(|(position, frame)| match frame.client_message() {
            Some(ClientMessage::Listen(listen)) => Some((position, listen.client_request_id.to_string())),
            _ => None,
        })
        .collect();
    assert_eq!(listens.len(), 1, "expected one listen request: {frames:#?}");
    listens[0].clone()
}

/// Returns the position in `frames` of the response to the request `id`.
fn response_to(frames: &[Frame], id: &str) -> Option<usize> {
    frames.iter().position(|frame| match frame.server_message() {
        Some(ServerMessage::Response(response)) => response.client_request_id.to_string() == id,
        _ => false,
    })
}

#[tokio::test(start_paused = true)]
async fn ping_waits_for_listen_response() {
    let server = server().await;
    let stops = Arc::new(AtomicUsize::new(0));
    let stop_counter = Arc::clone(&stops);
    server.route(
        Route::read("slow")
            .handler(|_ctx| async move {
                tokio::time::sleep(SLOW_READ).await;
                Ok(Some(json!({"value": 1})))
            })
            .on_stop_listening(move |_listener| {
                stop_counter.fetch_add(1, Ordering::SeqCst);
            }),
    );
    let client = AsklessClient::builder(server.url())
        .connect()
        .await
        .expect("client connects to the mock");

    let mut stream = client.read_stream("slow", ()).await.unwrap();
    let first = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("the first value in time")
        .expect("the stream is open")
        .unwrap();
    assert_eq!(first, json!({"value": 1}));

    // Several more ping intervals, each of which must list the listener.
    tokio::time::sleep(PING_INTERVAL * 4).await;

    let frames = server.frames();
    let (listen_at, listen_id) = listen_request(&frames);
    let response_at = response_to(&frames, &listen_id).expect("the mock answered the listen");
    let pings_in_flight: Vec<&Frame> = frames[listen_at..response_at]
        .iter()
        .filter(|frame| is_ping(frame))
        .collect();
    assert!(
        pings_in_flight.is_empty(),
        "pings sent while the listen awaited its response: {pings_in_flight:#?}"
    );
    let pings_after = frames[response_at..]
        .iter()
        .filter(|frame| is_ping(frame))
        .count();
    assert!(
        pings_after >= 3,
        "only {pings_after} pings after the listen response"
    );
    assert_eq!(stops.load(Ordering::SeqCst), 0, "the mock stopped the listener");
    assert_eq!(server.listener_count("slow"), 1);

    drop(stream);
    client.close().await;
}

#[tokio::test(start_paused = true)]
async fn ping_postponement_is_bounded() {
    let server = server().await;
    server.route(Route::read("silent").handler(|_ctx| async move { Err(RouteError::no_answer()) }));
    let client = AsklessClient::builder(server.url())
        .connect()
        .await
        .expect("client connects to the mock");

    let stream = client.read_stream("silent", ()).await.unwrap();
    let frames_at_listen = server.wait_for_frame(
        |frame| matches!(frame.client_message(), Some(ClientMessage::Listen(_))),
        WAIT,
    );
    let listen = frames_at_listen
        .await
        .expect("the listen request reaches the mock");
    let ping = server
        .wait_for_frame(|frame| frame.index > listen.index && is_ping(frame), WAIT)
        .await
        .expect("a ping after the listen request");

    // The first ping falls due at most one interval after the listen and waits at most half
    // the server-silence limit. A little slack covers the frame's trip through the socket.
    let delay = ping.at.duration_since(listen.at);
    assert!(
        delay >= MAX_POSTPONEMENT,
        "the ping went out {delay:?} after the listen, before the postponement could end"
    );
    assert!(
        delay <= PING_INTERVAL + MAX_POSTPONEMENT + Duration::from_millis(100),
        "the ping was held back for {delay:?}"
    );

    // The pong of that ping keeps the silence watchdog from replacing the healthy connection.
    tokio::time::sleep(SILENCE_LIMIT * 2).await;
    let configures = server
        .received_frames()
        .iter()
        .filter(|frame| {
            matches!(
                frame.client_message(),
                Some(ClientMessage::ConfigureConnection(_))
            )
        })
        .count();
    assert_eq!(configures, 1, "the client replaced a healthy connection");

    drop(stream);
    client.close().await;
}
