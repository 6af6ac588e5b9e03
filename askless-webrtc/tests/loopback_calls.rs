//! Two peers in one process, signalling through the in-memory hub and sending synthetic
//! media over loopback ICE.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use askless_protocol::UserId;
use askless_protocol::call::{
    CallCloseBody, CallInfo, CallReceiveValue, CallRequestBody, CallResponseBody, IceCandidateList,
    ListenForACallValue,
};
use askless_webrtc::{
    CallClient, CallError, CallOptions, CallResponse, CallSignalling, CloseReason, LiveCall, LiveCallEvent,
    LocalMedia, MediaKind, MemorySignalling, MemorySignallingHub, SignalStream, SignallingError,
    SyntheticMedia,
};
use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{Map, Value, json};

/// Upper bound of every wait; generous because other builds share the machine.
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

/// Polls `condition` every 50 ms until it holds, failing after the bounded wait.
async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    within(what, async {
        while !condition() {
            tokio::time::sleep(POLL).await;
        }
    })
    .await;
}

fn data(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

/// What one user sent through the signalling channel.
#[derive(Default)]
struct Sent {
    descriptions: Vec<String>,
    candidates: Vec<String>,
    call_responses: Vec<CallResponseBody>,
}

/// Forwards to a memory connection and records what the user sends.
struct RecordingSignalling {
    inner: MemorySignalling,
    sent: Arc<Mutex<Sent>>,
}

#[async_trait]
impl CallSignalling for RecordingSignalling {
    async fn listen_call_receive(&self) -> Result<SignalStream<CallReceiveValue>, SignallingError> {
        self.inner.listen_call_receive().await
    }

    async fn listen_for_a_call(
        &self,
        remote_user_id: UserId,
    ) -> Result<SignalStream<ListenForACallValue>, SignallingError> {
        self.inner.listen_for_a_call(remote_user_id).await
    }

    async fn listen_ice_candidate_list(
        &self,
        remote_user_id: UserId,
    ) -> Result<SignalStream<IceCandidateList>, SignallingError> {
        self.inner.listen_ice_candidate_list(remote_user_id).await
    }

    async fn create_call_request(&self, body: CallRequestBody) -> Result<CallInfo, SignallingError> {
        self.sent.lock().unwrap().descriptions.push(body.sdp.sdp.clone());
        self.inner.create_call_request(body).await
    }

    async fn create_call_response(&self, body: CallResponseBody) -> Result<CallInfo, SignallingError> {
        {
            let mut sent = self.sent.lock().unwrap();
            if let Some(sdp) = &body.sdp {
                sent.descriptions.push(sdp.sdp.clone());
            }
            sent.call_responses.push(body.clone());
        }
        self.inner.create_call_response(body).await
    }

    async fn create_ice_candidate_list(&self, body: IceCandidateList) -> Result<(), SignallingError> {
        {
            let mut sent = self.sent.lock().unwrap();
            for candidate in &body.ice_candidate_list {
                sent.candidates.push(candidate.candidate.clone());
            }
        }
        self.inner.create_ice_candidate_list(body).await
    }

    async fn create_call_close(&self, body: CallCloseBody) -> Result<(), SignallingError> {
        self.inner.create_call_close(body).await
    }
}

struct User {
    client: CallClient,
    signalling: MemorySignalling,
    sent: Arc<Mutex<Sent>>,
    id: UserId,
}

fn user(hub: &MemorySignallingHub, id: i64) -> User {
    let signalling = hub.connect(id);
    let sent = Arc::new(Mutex::new(Sent::default()));
    let recording = RecordingSignalling {
        inner: signalling.clone(),
        sent: Arc::clone(&sent),
    };
    User {
        client: CallClient::new(Arc::new(recording), CallOptions::loopback()),
        signalling,
        sent,
        id: UserId::from(id),
    }
}

/// Checks that every candidate a user sent, in an SDP or in a candidate list, is a host
/// candidate on 127.0.0.1.
fn assert_loopback_only(user: &User) {
    let sent = user.sent.lock().unwrap();
    let mut lines: Vec<String> = sent
        .descriptions
        .iter()
        .flat_map(|sdp| sdp.lines())
        .filter_map(|line| line.strip_prefix("a="))
        .filter(|line| line.starts_with("candidate:"))
        .map(str::to_owned)
        .collect();
    lines.extend(sent.candidates.iter().cloned());
    assert!(!lines.is_empty(), "user {} sent no candidate", user.id);
    for line in lines {
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields.get(4), Some(&"127.0.0.1"), "candidate {line:?}");
        assert!(line.contains("typ host"), "candidate {line:?}");
    }
}

/// Waits until `call` has received audio and video packets.
async fn wait_for_media(who: &str, call: &LiveCall) {
    eventually(&format!("{who} to receive audio and video"), || {
        let stats = call.media_stats();
        stats.audio_packets_received > 0 && stats.video_packets_received > 0
    })
    .await;
}

/// Sets up an accepted call from `caller` to `callee`, both sending synthetic media.
async fn establish(caller: &User, callee: &User) -> (LiveCall, LiveCall, Vec<SyntheticMedia>) {
    let mut incoming = callee.client.incoming_calls().await.unwrap();
    let caller_media = LocalMedia::audio_and_video().unwrap();
    let callee_media = LocalMedia::audio_and_video().unwrap();
    let sources = vec![
        SyntheticMedia::start(&caller_media).unwrap(),
        SyntheticMedia::start(&callee_media).unwrap(),
    ];

    let request = caller
        .client
        .request_call_to_user(callee.id.clone(), caller_media, data(json!({"videoCall": true})))
        .unwrap();
    let receiving = within("the incoming call", incoming.next()).await.unwrap();
    assert_eq!(receiving.remote_user_id(), &caller.id);
    assert_eq!(receiving.additional_data(), &data(json!({"videoCall": true})));

    let callee_call = within(
        "the accept",
        receiving.accept(callee_media, data(json!({"a": 1}))),
    )
    .await
    .unwrap();
    let caller_call = match within("the response", request.response()).await {
        CallResponse::Accepted {
            call,
            additional_data,
        } => {
            assert_eq!(additional_data, data(json!({"a": 1})));
            call
        }
        other => panic!("expected an accepted call, got {other:?}"),
    };
    (caller_call, callee_call, sources)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_call_carries_media_both_ways() {
    init_tracing();
    let hub = MemorySignallingHub::new();
    let alice = user(&hub, 1);
    let bob = user(&hub, 2);

    let (mut alice_call, mut bob_call, _sources) = establish(&alice, &bob).await;
    assert_eq!(alice_call.remote_user_id(), &bob.id);
    assert_eq!(bob_call.remote_user_id(), &alice.id);

    wait_for_media("the caller", &alice_call).await;
    wait_for_media("the callee", &bob_call).await;

    let track = within("a remote track", alice_call.next_remote_track())
        .await
        .expect("the caller has a remote track");
    assert!(matches!(track.kind(), MediaKind::Audio | MediaKind::Video));

    assert_loopback_only(&alice);
    assert_loopback_only(&bob);
    assert!(
        bob.sent.lock().unwrap().candidates.is_empty(),
        "the callee never sends candidates"
    );

    let alice_reason = within("the caller's close", alice_call.close()).await;
    let bob_reason = within("the callee to see the close", bob_call.closed()).await;
    assert_eq!(alice_reason, CloseReason::ClosedLocally);
    assert!(
        matches!(
            bob_reason,
            CloseReason::ClosedByRemote | CloseReason::SignallingEnded
        ),
        "{bob_reason:?}"
    );
    assert_eq!(
        within("the callee's closed event", async {
            loop {
                match bob_call.next_event().await {
                    Some(LiveCallEvent::Closed(reason)) => break Some(reason),
                    Some(_) => continue,
                    None => break None,
                }
            }
        })
        .await,
        Some(bob_reason)
    );
    eventually("the hub to drop every call listener", || {
        hub.registered_listeners(&alice.id) == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callee_close_reaches_caller() {
    init_tracing();
    let hub = MemorySignallingHub::new();
    let alice = user(&hub, 1);
    let bob = user(&hub, 2);

    let (mut alice_call, bob_call, _sources) = establish(&alice, &bob).await;
    wait_for_media("the caller", &alice_call).await;

    assert_eq!(
        within("the callee's close", bob_call.close()).await,
        CloseReason::ClosedLocally
    );
    let reason = within("the caller to see the close", alice_call.closed()).await;
    assert!(
        matches!(reason, CloseReason::ClosedByRemote | CloseReason::SignallingEnded),
        "{reason:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejection_returns_callee_data() {
    init_tracing();
    let hub = MemorySignallingHub::new();
    let alice = user(&hub, 1);
    let bob = user(&hub, 2);
    let mut incoming = bob.client.incoming_calls().await.unwrap();

    let request = alice
        .client
        .request_call_to_user(bob.id.clone(), LocalMedia::audio_and_video().unwrap(), Map::new())
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
    assert!(!hub.is_call_pending(&alice.id, &bob.id));
    eventually("the caller's listeners to stop", || {
        hub.registered_listeners(&alice.id) == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_before_answer_reaches_callee() {
    init_tracing();
    let hub = MemorySignallingHub::new();
    let alice = user(&hub, 1);
    let bob = user(&hub, 2);
    let mut incoming = bob.client.incoming_calls().await.unwrap();

    let request = alice
        .client
        .request_call_to_user(bob.id.clone(), LocalMedia::audio_and_video().unwrap(), Map::new())
        .unwrap();
    let mut receiving = within("the incoming call", incoming.next()).await.unwrap();
    assert!(!receiving.is_cancelled());

    request.cancel();
    within("the cancellation", receiving.cancelled()).await;
    assert!(receiving.is_cancelled());
    assert!(!hub.is_call_pending(&alice.id, &bob.id));

    let error = receiving.reject(Map::new()).await.unwrap_err();
    assert!(matches!(error, CallError::CallEnded), "{error:?}");
    assert!(
        bob.sent.lock().unwrap().call_responses.is_empty(),
        "no answer may be sent for a cancelled call"
    );

    // The next call from the same caller arrives and is not spoiled by a late answer.
    let request = alice
        .client
        .request_call_to_user(bob.id.clone(), LocalMedia::audio_and_video().unwrap(), Map::new())
        .unwrap();
    let mut receiving = within("the second incoming call", incoming.next()).await.unwrap();
    assert_eq!(receiving.remote_user_id(), &alice.id);
    assert!(!receiving.is_cancelled());

    // Dropping a cancelled call sends no rejection either.
    drop(request);
    within("the second cancellation", receiving.cancelled()).await;
    drop(receiving);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        bob.sent.lock().unwrap().call_responses.is_empty(),
        "no answer may be sent for a cancelled call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_unanswered_call_is_rejected() {
    init_tracing();
    let hub = MemorySignallingHub::new();
    let alice = user(&hub, 1);
    let bob = user(&hub, 2);
    let mut incoming = bob.client.incoming_calls().await.unwrap();

    let request = alice
        .client
        .request_call_to_user(bob.id.clone(), LocalMedia::audio_and_video().unwrap(), Map::new())
        .unwrap();
    let receiving = within("the incoming call", incoming.next()).await.unwrap();
    drop(receiving);

    match within("the response", request.response()).await {
        CallResponse::Rejected { additional_data } => assert!(additional_data.is_empty()),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_stays_pending_without_listener() {
    init_tracing();
    let hub = MemorySignallingHub::new();
    let alice = user(&hub, 1);
    let bob = user(&hub, 2);

    let request = alice
        .client
        .request_call_to_user(bob.id.clone(), LocalMedia::audio_and_video().unwrap(), Map::new())
        .unwrap();
    eventually("the request to reach the hub", || {
        hub.is_call_pending(&alice.id, &bob.id)
    })
    .await;

    // No callee responds, and dropping the pending response cancels the request.
    let waited = tokio::time::timeout(Duration::from_millis(300), request.response()).await;
    assert!(waited.is_err(), "no answer was expected");
    eventually("the request to be withdrawn", || {
        !hub.is_call_pending(&alice.id, &bob.id)
    })
    .await;
    eventually("the caller's listener to stop", || {
        hub.registered_listeners(&alice.id) == 0
    })
    .await;

    // Listening afterwards shows no call.
    let mut incoming = bob.client.incoming_calls().await.unwrap();
    let nothing = tokio::time::timeout(Duration::from_millis(200), incoming.next()).await;
    assert!(nothing.is_err(), "a withdrawn call must not be delivered");
    drop(bob.signalling);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_disconnect_is_reported() {
    init_tracing();
    let hub = MemorySignallingHub::new();
    let alice = user(&hub, 1);
    let bob = user(&hub, 2);

    let (mut alice_call, bob_call, _sources) = establish(&alice, &bob).await;
    wait_for_media("the caller", &alice_call).await;

    bob.signalling.disconnect();
    let event = within("the disconnection event", alice_call.next_event()).await;
    assert_eq!(event, Some(LiveCallEvent::RemoteUserConnection(false)));
    assert_eq!(alice_call.remote_user_is_connected(), Some(false));

    // Media does not depend on the signalling connection.
    let before = alice_call.media_stats().audio_packets_received;
    eventually("media to keep flowing", || {
        alice_call.media_stats().audio_packets_received > before
    })
    .await;

    bob.signalling.reconnect();
    let event = within("the reconnection event", alice_call.next_event()).await;
    assert_eq!(event, Some(LiveCallEvent::RemoteUserConnection(true)));
    assert_eq!(alice_call.close_reason(), None);

    within("the close", alice_call.close()).await;
    drop(bob_call);
}
