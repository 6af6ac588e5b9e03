//! Fifty calls in a row between two users of the testkit's mock server. Each call must release
//! what it took: tokio tasks, file descriptors (the ICE UDP sockets), memory, and the
//! listeners of the clients and of the server.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use askless_client::{AsklessClient, StateSizes};
use askless_protocol::{UserId, routes};
use askless_testkit::{AuthDecision, MockServer};
use askless_webrtc::{
    AsklessCallSignalling, CallClient, CallOptions, CallResponse, CloseReason, IncomingCalls, LiveCall,
    LocalMedia, SyntheticMedia,
};
use futures::StreamExt;
use serde_json::{Map, json};

/// Calls made after the warm-up call.
const CALLS: usize = 50;

/// Upper bound of every wait inside one call.
const WAIT: Duration = Duration::from_secs(20);

/// Upper bound of the wait for the resources of the last call to be released. A listener
/// whose last stream was dropped stays in the client for a 4.5 s grace period and leaves
/// with the next ping, so this is about twice that.
const SETTLE: Duration = Duration::from_secs(10);

/// The client's 4.5 s grace for a listener without streams, plus a margin for the next ping
/// and for the server to process it.
const LISTENER_GRACE_AND_PING: Duration = Duration::from_millis(6000);

/// The ping interval the mock configures. Shorter than the default 1 s because the server
/// drops the listeners of a call only at the next ping, and each call waits for that.
const PING_INTERVAL: Duration = Duration::from_millis(200);

const POLL: Duration = Duration::from_millis(20);

/// RTP packets of each kind each side waits for before hanging up.
const PACKETS_PER_KIND: u64 = 3;

/// Extra file descriptors tolerated after the calls. Each call opens one ICE UDP socket per
/// side with loopback options, so 50 leaked calls would add 100; the tolerance leaves room
/// only for descriptors the runtime or the allocator may open lazily.
const FD_TOLERANCE: usize = 4;

/// Maximum growth of the resident set over the 50 calls. One run (debug build, 2-core Linux
/// virtual machine) grew by 2.8 MiB, which includes the de-duplication memory of both clients:
/// about 350 server message ids each after 50 calls, kept for 10 minutes, so not asserted.
/// The bound leaves room for allocator caching on other machines.
// NOTE: a leaked peer connection is caught first by the descriptor and task checks; the memory
// of one peer connection was not measured.
const MAX_RSS_GROWTH_KIB: u64 = 20 * 1024;

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
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

/// Resources of the process and of both clients at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snapshot {
    tasks: usize,
    fds: usize,
    rss_kib: u64,
    caller: StateSizes,
    callee: StateSizes,
    server_listeners: usize,
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd is readable on Linux")
        .count()
}

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status is readable");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// Returns the number of listeners the mock keeps on the call routes.
fn server_listeners(server: &MockServer) -> usize {
    [
        routes::CALL_RECEIVE,
        routes::LISTEN_FOR_A_CALL,
        routes::ICE_CANDIDATE_LIST,
        routes::CALL_RESPONSE,
    ]
    .into_iter()
    .map(|route| server.listener_count(route))
    .sum()
}

struct User {
    calls: CallClient,
    client: AsklessClient,
}

async fn snapshot(server: &MockServer, caller: &User, callee: &User) -> Snapshot {
    Snapshot {
        tasks: tokio::runtime::Handle::current().metrics().num_alive_tasks(),
        fds: open_fds(),
        rss_kib: resident_kib(),
        caller: caller.client.state_sizes().await.unwrap(),
        callee: callee.client.state_sizes().await.unwrap(),
        server_listeners: server_listeners(server),
    }
}

/// Returns whether tasks, descriptors and listeners are back to `baseline`.
fn settled(now: &Snapshot, baseline: &Snapshot) -> bool {
    now.tasks <= baseline.tasks
        && now.fds <= baseline.fds + FD_TOLERANCE
        && now.caller.listeners <= baseline.caller.listeners
        && now.caller.open_streams <= baseline.caller.open_streams
        && now.callee.listeners <= baseline.callee.listeners
        && now.callee.open_streams <= baseline.callee.open_streams
        && now.server_listeners <= baseline.server_listeners
}

async fn user(server: &MockServer, user_id: i64) -> User {
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
    User {
        calls: CallClient::new(Arc::new(signalling), CallOptions::loopback()),
        client,
    }
}

async fn wait_for_media(who: &str, call: &LiveCall) {
    within(&format!("{who} to receive audio and video"), async {
        loop {
            let stats = call.media_stats();
            if stats.audio_packets_received >= PACKETS_PER_KIND
                && stats.video_packets_received >= PACKETS_PER_KIND
            {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
    })
    .await;
}

/// Checks the reason the peer of the side that hung up saw. The server ends the peer's
/// signalling stream when it relays the hang-up, so the hang-up value may be lost behind it.
fn assert_remote_close(number: usize, reason: CloseReason) {
    assert!(
        matches!(reason, CloseReason::ClosedByRemote | CloseReason::SignallingEnded),
        "call {number}: the peer saw the call end with {reason:?}"
    );
}

/// Makes one call from `caller` to user 2, exchanges media and hangs up from the caller when
/// `caller_hangs_up`, from the callee otherwise.
async fn one_call(
    number: usize,
    server: &MockServer,
    caller: &User,
    incoming: &mut IncomingCalls,
    caller_hangs_up: bool,
) {
    let caller_media = LocalMedia::audio_and_video().unwrap();
    let callee_media = LocalMedia::audio_and_video().unwrap();
    let sources = [
        SyntheticMedia::start(&caller_media).unwrap(),
        SyntheticMedia::start(&callee_media).unwrap(),
    ];

    let request = caller
        .calls
        .request_call_to_user(UserId::from(2), caller_media, Map::new())
        .unwrap();
    let receiving = within("the incoming call", incoming.next())
        .await
        .unwrap_or_else(|| panic!("call {number}: the incoming call stream ended"));
    let mut callee_call = within("the accept", receiving.accept(callee_media, Map::new()))
        .await
        .unwrap_or_else(|error| panic!("call {number}: the accept failed: {error}"));
    let mut caller_call = match within("the response", request.response()).await {
        CallResponse::Accepted { call, .. } => call,
        other => panic!("call {number}: expected an accepted call, got {other:?}"),
    };

    wait_for_media("the caller", &caller_call).await;
    wait_for_media("the callee", &callee_call).await;

    if caller_hangs_up {
        assert_eq!(
            within("the close", caller_call.close()).await,
            CloseReason::ClosedLocally
        );
        let seen = within("the callee to see the close", callee_call.closed()).await;
        assert_remote_close(number, seen);
    } else {
        assert_eq!(
            within("the close", callee_call.close()).await,
            CloseReason::ClosedLocally
        );
        let seen = within("the caller to see the close", caller_call.closed()).await;
        assert_remote_close(number, seen);
    }
    drop(sources);

    // NOTE: after a hang-up the server sends stop-listening for both users' listen-for-a-call
    // listeners but keeps them until a ping omits them. Removing the second of them cleans up
    // the call state of the pair, which stops the listen-for-a-call listeners of a new call
    // between the same users made in the meantime. A call made at once after a hang-up may
    // also receive the late `{"callClosed": true}` of the previous one. So the next call
    // starts once the server has dropped every listen-for-a-call listener.
    server
        .wait_until(
            |server| server.listener_count(routes::LISTEN_FOR_A_CALL) == 0,
            WAIT,
        )
        .await
        .unwrap_or_else(|_| panic!("call {number}: the server kept its listen-for-a-call listeners"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_calls_release_resources() {
    init_tracing();
    let server = MockServer::builder()
        .configure(|config| {
            config.notify_grace = Duration::ZERO;
            config.client_ping_interval = PING_INTERVAL;
        })
        .start()
        .await;
    server.authenticate_with(|credential| async move {
        match credential.get("userId").and_then(UserId::from_value) {
            Some(user) => AuthDecision::user(user),
            None => AuthDecision::unauthenticated(),
        }
    });
    let caller = user(&server, 1).await;
    let callee = user(&server, 2).await;
    let mut incoming = callee.calls.incoming_calls().await.unwrap();

    // The warm-up call makes the lazily created state exist before the baseline: runtime
    // worker state, the webrtc crate's statics, the allocator's arenas.
    one_call(0, &server, &caller, &mut incoming, true).await;
    // The listeners of the warm-up call leave the clients with the first ping after their
    // grace period, and the server drops them when that ping omits them.
    tokio::time::sleep(LISTENER_GRACE_AND_PING).await;
    let baseline = snapshot(&server, &caller, &callee).await;

    let started = Instant::now();
    for number in 1..=CALLS {
        one_call(number, &server, &caller, &mut incoming, number % 2 == 0).await;
    }
    let calls_took = started.elapsed();
    let after = wait_until_settled(&server, &caller, &callee, &baseline).await;
    eprintln!("{CALLS} calls took {calls_took:?}\nbaseline: {baseline:#?}\nafter: {after:#?}");

    assert!(
        after.tasks <= baseline.tasks,
        "tokio tasks grew: {baseline:?} -> {after:?}"
    );
    assert!(
        after.fds <= baseline.fds + FD_TOLERANCE,
        "file descriptors grew by more than {FD_TOLERANCE}: {baseline:?} -> {after:?}"
    );
    assert_eq!(
        after.caller.listeners, baseline.caller.listeners,
        "caller listeners"
    );
    assert_eq!(
        after.caller.open_streams, baseline.caller.open_streams,
        "caller streams"
    );
    assert_eq!(after.caller.pending_requests, 0, "caller pending requests");
    assert_eq!(
        after.callee.listeners, baseline.callee.listeners,
        "callee listeners"
    );
    assert_eq!(
        after.callee.open_streams, baseline.callee.open_streams,
        "callee streams"
    );
    assert_eq!(after.callee.pending_requests, 0, "callee pending requests");
    assert_eq!(
        after.server_listeners, baseline.server_listeners,
        "server listeners"
    );
    let growth = after.rss_kib.saturating_sub(baseline.rss_kib);
    assert!(
        growth <= MAX_RSS_GROWTH_KIB,
        "resident memory grew by {growth} KiB over {CALLS} calls (bound {MAX_RSS_GROWTH_KIB} KiB)"
    );

    drop(incoming);
    caller.client.close().await;
    callee.client.close().await;
}

/// Polls until the resources are back to `baseline`, for at most `SETTLE`, and returns the
/// last snapshot. The caller's assertions report what did not settle.
async fn wait_until_settled(
    server: &MockServer,
    caller: &User,
    callee: &User,
    baseline: &Snapshot,
) -> Snapshot {
    let deadline = tokio::time::Instant::now() + SETTLE;
    loop {
        let now = snapshot(server, caller, callee).await;
        if settled(&now, baseline) || tokio::time::Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
