//! Calls signalled through real Askless clients and the mock server of `askless-testkit`, over
//! loopback WebSockets, with media over loopback ICE.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use askless_client::AsklessClient;
use askless_protocol::UserId;
use askless_testkit::{AuthDecision, MockConfig, MockServer};
use askless_webrtc::{
    AsklessCallSignalling, CallClient, CallOptions, CallResponse, CloseReason, LiveCall, LiveCallEvent,
    LocalMedia, SyntheticMedia,
};
use futures::StreamExt;
use serde_json::{Map, Value, json};

/// Upper bound of every wait; cancellation alone takes the client's 4.5 s listener grace.
const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(50);

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "askless_webrtc=debug".into()),
        )
        .with_test_writer()
        .try_init();
}

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

fn data(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// Starts a mock whose authenticate handler accepts `{"userId": <id>}` as that user.
///
/// Notifications go out at once instead of after the reference server's 4 s start-up grace,
/// which only makes each call 4 s slower. `mock_server_call_carries_media` keeps the grace.
async fn call_server() -> MockServer {
    call_server_with(|config| config.notify_grace = Duration::ZERO).await
}

/// Starts a call mock with the default configuration changed by `configure`.
async fn call_server_with(configure: impl FnOnce(&mut MockConfig)) -> MockServer {
    let server = MockServer::builder().configure(configure).start().await;
    server.authenticate_with(|credential| async move {
        match credential.get("userId").and_then(UserId::from_value) {
            Some(user) => AuthDecision::user(user),
            None => AuthDecision::unauthenticated(),
        }
    });
    server
}

/// Connects and authenticates `user_id`, and returns its call client.
async fn call_client(server: &MockServer, user_id: i64) -> (CallClient, AsklessClient) {
    let client = within("the connection", AsklessClient::builder(server.url()).connect())
        .await
        .unwrap();
    within(
        "the authentication",
        client.authenticate(json!({"userId": user_id})),
    )
    .await
    .unwrap();
    let signalling = AsklessCallSignalling::new(client.clone());
    (
        CallClient::new(Arc::new(signalling), CallOptions::loopback()),
        client,
    )
}

async fn wait_for_media(who: &str, call: &LiveCall) {
    within(&format!("{who} to receive audio and video"), async {
        loop {
            let stats = call.media_stats();
            if stats.audio_packets_received > 0 && stats.video_packets_received > 0 {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_server_call_carries_media() {
    init_tracing();
    // With the reference server's 4 s notification grace, the incoming call can reach the callee
    // when its client's 1 s ping timer fires, while the listen for the call is in flight. The
    // client postpones that ping, so the server keeps the listener and the call goes through.
    let server = call_server_with(|_config| {}).await;
    let (alice, alice_client) = call_client(&server, 1).await;
    let (bob, bob_client) = call_client(&server, 2).await;
    let mut incoming = bob.incoming_calls().await.unwrap();

    let alice_media = LocalMedia::audio_and_video().unwrap();
    let bob_media = LocalMedia::audio_and_video().unwrap();
    let _sources = [
        SyntheticMedia::start(&alice_media).unwrap(),
        SyntheticMedia::start(&bob_media).unwrap(),
    ];

    let request = alice
        .request_call_to_user(UserId::from(2), alice_media, data(json!({"videoCall": true})))
        .unwrap();
    let receiving = within("the incoming call", incoming.next()).await.unwrap();
    assert_eq!(receiving.remote_user_id(), &UserId::from(1));
    assert_eq!(receiving.additional_data(), &data(json!({"videoCall": true})));

    let mut bob_call = within("the accept", receiving.accept(bob_media, data(json!({"a": 1}))))
        .await
        .unwrap();
    let alice_call = match within("the response", request.response()).await {
        CallResponse::Accepted {
            call,
            additional_data,
        } => {
            assert_eq!(additional_data, data(json!({"a": 1})));
            call
        }
        other => panic!("expected an accepted call, got {other:?}"),
    };

    wait_for_media("the caller", &alice_call).await;
    wait_for_media("the callee", &bob_call).await;

    let alice_reason = within("the caller's close", alice_call.close()).await;
    assert_eq!(alice_reason, CloseReason::ClosedLocally);
    let bob_reason = within("the callee to see the close", bob_call.closed()).await;
    assert!(
        matches!(
            bob_reason,
            CloseReason::ClosedByRemote | CloseReason::SignallingEnded
        ),
        "{bob_reason:?}"
    );

    alice_client.close().await;
    bob_client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_server_rejection_returns_data() {
    init_tracing();
    let server = call_server().await;
    let (alice, alice_client) = call_client(&server, 3).await;
    let (bob, bob_client) = call_client(&server, 4).await;
    let mut incoming = bob.incoming_calls().await.unwrap();

    let request = alice
        .request_call_to_user(
            UserId::from(4),
            LocalMedia::audio_and_video().unwrap(),
            Map::new(),
        )
        .unwrap();
    let receiving = within("the incoming call", incoming.next()).await.unwrap();
    within("the rejection", receiving.reject(data(json!({"reason": "busy"}))))
        .await
        .unwrap();

    match within("the response", request.response()).await {
        CallResponse::Rejected { additional_data } => {
            assert_eq!(additional_data, data(json!({"reason": "busy"})));
        }
        other => panic!("expected a rejection, got {other:?}"),
    }

    alice_client.close().await;
    bob_client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_server_cancel_reaches_callee() {
    init_tracing();
    let server = call_server().await;
    let (alice, alice_client) = call_client(&server, 5).await;
    let (bob, bob_client) = call_client(&server, 6).await;
    let mut incoming = bob.incoming_calls().await.unwrap();

    let request = alice
        .request_call_to_user(
            UserId::from(6),
            LocalMedia::audio_and_video().unwrap(),
            Map::new(),
        )
        .unwrap();
    let mut receiving = within("the incoming call", incoming.next()).await.unwrap();
    request.cancel();

    within("the cancellation", receiving.cancelled()).await;
    assert!(receiving.is_cancelled());
    let error = receiving.reject(Map::new()).await.unwrap_err();
    assert!(matches!(error, askless_webrtc::CallError::CallEnded), "{error:?}");

    alice_client.close().await;
    bob_client.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_server_reconnect_reports_presence() {
    init_tracing();
    let server = call_server().await;
    let (alice, alice_client) = call_client(&server, 7).await;
    let (bob, bob_client) = call_client(&server, 8).await;
    let mut incoming = bob.incoming_calls().await.unwrap();

    let alice_media = LocalMedia::audio_and_video().unwrap();
    let bob_media = LocalMedia::audio_and_video().unwrap();
    let _sources = [
        SyntheticMedia::start(&alice_media).unwrap(),
        SyntheticMedia::start(&bob_media).unwrap(),
    ];
    let request = alice
        .request_call_to_user(UserId::from(8), alice_media, Map::new())
        .unwrap();
    let receiving = within("the incoming call", incoming.next()).await.unwrap();
    let bob_call = within("the accept", receiving.accept(bob_media, Map::new()))
        .await
        .unwrap();
    let CallResponse::Accepted {
        call: mut alice_call, ..
    } = within("the response", request.response()).await
    else {
        panic!("expected an accepted call");
    };
    wait_for_media("the caller", &alice_call).await;

    // The callee's connection drops and comes back; its client listens again on its own.
    within("the callee's reconnection", bob_client.reconnect())
        .await
        .unwrap();
    let mut seen = Vec::new();
    within("the caller to see the callee leave and return", async {
        while let Some(event) = alice_call.next_event().await {
            seen.push(event);
            if event == LiveCallEvent::RemoteUserConnection(true) {
                break;
            }
        }
    })
    .await;
    assert_eq!(
        seen.first(),
        Some(&LiveCallEvent::RemoteUserConnection(false)),
        "{seen:?}"
    );
    assert_eq!(
        seen.last(),
        Some(&LiveCallEvent::RemoteUserConnection(true)),
        "{seen:?}"
    );
    assert_eq!(alice_call.close_reason(), None);

    within("the close", alice_call.close()).await;
    drop(bob_call);
    alice_client.close().await;
    bob_client.close().await;
}
