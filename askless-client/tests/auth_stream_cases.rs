//! Authentication and stream cases that users of realtime clients run into: streams opened
//! before login, server restarts, logging in again, status handlers that subscribe, leaks and
//! slow readers. Every test talks to the testkit's mock server over loopback WebSockets, under
//! paused tokio time.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use askless_client::{
    AsklessClient, AuthenticationStatus, ConnectionStatus, ErrorKind, ReadStream, StatusListenerGuard,
    StreamBuffer, StreamOptions,
};
use askless_protocol::ClientMessage;
use askless_testkit::{AuthDecision, MockServer, Notify, Route, RouteError};
use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};

/// Maximum virtual wait for anything a test expects to happen.
const WAIT: Duration = Duration::from_secs(60);

/// The ping interval the mock advertises.
const PING_INTERVAL: Duration = Duration::from_secs(1);

/// How long after its last stream is dropped the client stops a listener (4.5 s), plus two ping
/// intervals for the ping that omits it to reach the server.
const STOP_GRACE_AND_PING: Duration = Duration::from_millis(6500);

async fn server() -> MockServer {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let server = MockServer::builder()
        .well_behaved()
        .configure(|config| config.record_cleanup_tick = None)
        .start()
        .await;
    accept_good_token(&server);
    server
}

/// Accepts `{"token": "good"}` as user 7 and rejects every other credential as expired.
fn accept_good_token(server: &MockServer) {
    server.authenticate_with(|credential| async move {
        match credential["token"].as_str() {
            Some("good") => AuthDecision::user(7),
            _ => AuthDecision::reject("EXPIRED_ACCESS_TOKEN"),
        }
    });
}

async fn connect(server: &MockServer) -> AsklessClient {
    AsklessClient::builder(server.url())
        .connect()
        .await
        .expect("client connects to the mock")
}

async fn next_value(stream: &mut ReadStream) -> Value {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("a stream value in time")
        .expect("stream still open")
        .expect("a value, not an error")
}

/// Returns the values already buffered in `stream`, without waiting.
fn drain(stream: &mut ReadStream) -> Vec<Value> {
    let mut values = Vec::new();
    while let Some(Some(event)) = stream.next().now_or_never() {
        values.push(event.expect("a value, not an error"));
    }
    values
}

/// Reads values from `stream` until one equals `expected`.
async fn wait_for_value(stream: &mut ReadStream, expected: &Value) {
    tokio::time::timeout(WAIT, async {
        loop {
            if next_value(stream).await == *expected {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the stream never received {expected}"));
}

fn received(server: &MockServer) -> Vec<ClientMessage> {
    server
        .received_frames()
        .iter()
        .filter_map(|frame| frame.client_message())
        .collect()
}

/// Returns how many listen requests for `route` the server received.
fn listens(server: &MockServer, route: &str) -> usize {
    received(server)
        .iter()
        .filter(|message| matches!(message, ClientMessage::Listen(listen) if listen.route == route))
        .count()
}

/// Returns how many authenticate requests the server received.
fn authenticates(server: &MockServer) -> usize {
    received(server)
        .iter()
        .filter(|message| matches!(message, ClientMessage::Authenticate(_)))
        .count()
}

/// Returns how many `PENDING_AUTHENTICATION` error responses the server sent.
fn pending_authentication_errors(server: &MockServer) -> usize {
    server
        .sent_frames()
        .iter()
        .filter(|frame| {
            frame
                .json()
                .is_some_and(|json| json["error"]["code"] == "PENDING_AUTHENTICATION")
        })
        .count()
}

async fn wait_for_pending_authentication(server: &MockServer) {
    server
        .wait_for_frame(
            |frame| {
                frame
                    .json()
                    .is_some_and(|json| json["error"]["code"] == "PENDING_AUTHENTICATION")
            },
            WAIT,
        )
        .await
        .expect("the server answers PENDING_AUTHENTICATION");
}

async fn wait_connected(client: &AsklessClient) {
    let mut watch = client.status_watch();
    tokio::time::timeout(WAIT, watch.wait_for(ConnectionStatus::is_connected))
        .await
        .expect("connected in time")
        .expect("client still running");
}

async fn wait_disconnected(client: &AsklessClient) {
    let mut watch = client.status_watch();
    tokio::time::timeout(WAIT, watch.wait_for(|status| !status.is_connected()))
        .await
        .expect("disconnected in time")
        .expect("client still running");
}

/// Registers an authenticated-only READ route whose value names the user.
fn inbox_route(server: &MockServer) {
    server.route(
        Route::read("inbox")
            .for_authenticated_users()
            .handler(|ctx| async move { Ok(Some(json!({"user": ctx.user_id.map(|id| id.to_value())}))) }),
    );
}

/// Registers a READ route `name` whose value is `value`.
fn value_route(server: &MockServer, name: &str, value: Arc<Mutex<Value>>) {
    server.route(Route::read(name).handler(move |_ctx| {
        let current = value.lock().unwrap().clone();
        async move { Ok(Some(current)) }
    }));
}

fn bounded(capacity: usize) -> StreamOptions {
    StreamOptions {
        buffer: StreamBuffer::Bounded(capacity),
        ..StreamOptions::default()
    }
}

#[tokio::test(start_paused = true)]
async fn stream_before_login_starts_once() {
    let server = server().await;
    inbox_route(&server);
    let client = connect(&server).await;

    let mut stream = client.read_stream("inbox", ()).await.unwrap();
    wait_for_pending_authentication(&server).await;
    client.authenticate(json!({"token": "good"})).await.unwrap();

    assert_eq!(next_value(&mut stream).await, json!({"user": 7}));
    tokio::time::sleep(PING_INTERVAL * 6).await;
    assert_eq!(
        listens(&server, "inbox"),
        2,
        "one listen answered PENDING_AUTHENTICATION, one after the login"
    );
    assert_eq!(pending_authentication_errors(&server), 1);
    assert_eq!(server.listener_count("inbox"), 1);
}

#[tokio::test(start_paused = true)]
async fn restart_reauthenticates_once() {
    let server = server().await;
    server.route(
        Route::create("secret")
            .for_authenticated_users()
            .handler(|ctx| async move { Ok(Some(json!({"user": ctx.user_id.map(|id| id.to_value())}))) }),
    );
    let client = connect(&server).await;
    client.authenticate(json!({"token": "good"})).await.unwrap();

    server.restart().await;
    wait_disconnected(&client).await;
    let created = client.create("secret", json!({"n": 1}), ()).await.unwrap();

    assert_eq!(created.value(), Some(&json!({"user": 7})));
    assert_eq!(authenticates(&server), 2, "the login and one re-authentication");
    tokio::time::sleep(PING_INTERVAL * 10).await;
    assert_eq!(authenticates(&server), 2, "no further re-authentication");
    assert!(matches!(
        client.authentication_status(),
        AuthenticationStatus::Authenticated { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn restart_with_expired_credential_calls_back_once() {
    let server = server().await;
    let decisions = Arc::new(AtomicUsize::new(0));
    server.authenticate_with({
        let decisions = Arc::clone(&decisions);
        move |_credential| {
            let first = decisions.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    AuthDecision::user(7)
                } else {
                    AuthDecision::reject("EXPIRED_ACCESS_TOKEN")
                }
            }
        }
    });
    let calls = Arc::new(AtomicUsize::new(0));
    let codes = Arc::new(Mutex::new(Vec::new()));
    let client = AsklessClient::builder(server.url())
        .on_auto_reauthentication_fails({
            let calls = Arc::clone(&calls);
            let codes = Arc::clone(&codes);
            move |failure| {
                calls.fetch_add(1, Ordering::SeqCst);
                codes.lock().unwrap().push(failure.code.as_str().to_owned());
            }
        })
        .connect()
        .await
        .unwrap();
    client.authenticate(json!({"token": "any"})).await.unwrap();

    server.restart().await;
    wait_disconnected(&client).await;
    wait_connected(&client).await;
    tokio::time::sleep(Duration::from_secs(30)).await;

    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(*codes.lock().unwrap(), ["EXPIRED_ACCESS_TOKEN"]);
    assert_eq!(authenticates(&server), 2, "a rejected credential is not retried");
    assert_eq!(
        client.authentication_status(),
        AuthenticationStatus::NotAuthenticated
    );
}

#[tokio::test(start_paused = true)]
async fn login_again_keeps_stream() {
    let server = server().await;
    server.route(
        Route::read("orders")
            .for_authenticated_users()
            .handler(|ctx| async move {
                let user = ctx.user_id.map(|id| id.to_value());
                Ok(Some(json!({"public": ["catalog"], "own": [{"owner": user}]})))
            }),
    );
    let client = connect(&server).await;
    client.authenticate(json!({"token": "good"})).await.unwrap();
    let mut stream = client.read_stream_with("orders", (), bounded(16)).await.unwrap();
    let expected = json!({"public": ["catalog"], "own": [{"owner": 7}]});
    assert_eq!(next_value(&mut stream).await, expected);

    client.clear_authentication().await.unwrap();
    tokio::time::sleep(PING_INTERVAL * 3).await;
    drain(&mut stream);
    client.authenticate(json!({"token": "good"})).await.unwrap();

    assert_eq!(next_value(&mut stream).await, expected);
    tokio::time::sleep(PING_INTERVAL * 6).await;
    assert_eq!(server.listener_count("orders"), 1);
    assert_eq!(server.records().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn restart_delivers_each_change_once() {
    let server = server().await;
    let routes = ["alpha", "beta", "gamma"];
    let values: Vec<Arc<Mutex<Value>>> = routes
        .iter()
        .map(|_| Arc::new(Mutex::new(json!("before"))))
        .collect();
    for (route, value) in routes.iter().zip(&values) {
        value_route(&server, route, Arc::clone(value));
    }
    let client = connect(&server).await;
    let mut streams = Vec::new();
    for route in routes {
        let mut stream = client.read_stream_with(route, (), bounded(64)).await.unwrap();
        assert_eq!(next_value(&mut stream).await, json!("before"));
        streams.push(stream);
    }

    for value in &values {
        *value.lock().unwrap() = json!("after restart");
    }
    server.restart().await;
    for stream in &mut streams {
        wait_for_value(stream, &json!("after restart")).await;
    }
    tokio::time::sleep(PING_INTERVAL * 3).await;
    for stream in &mut streams {
        drain(stream);
    }
    for (n, route) in routes.iter().enumerate() {
        server.notify_changes(route, Notify::all().override_value(json!({"change": n})));
    }
    tokio::time::sleep(PING_INTERVAL * 6).await;

    for (n, (route, stream)) in routes.iter().zip(&mut streams).enumerate() {
        assert_eq!(
            drain(stream),
            [json!({"change": n})],
            "stream of {route} receives its change once"
        );
        assert_eq!(server.listener_count(route), 1, "one listener of {route}");
    }
}

/// The stream a status handler opened last, how many it opened, and its guard.
type Subscriptions = (
    Arc<Mutex<Option<ReadStream>>>,
    Arc<AtomicUsize>,
    StatusListenerGuard,
);

/// Installs a status handler that opens a stream of `counter` with `params` every time the
/// client connects, replacing (and so dropping) the stream it opened before.
fn subscribe_on_connect(client: &AsklessClient, params: Value) -> Subscriptions {
    let live: Arc<Mutex<Option<ReadStream>>> = Arc::new(Mutex::new(None));
    let opened = Arc::new(AtomicUsize::new(0));
    let guard = client.on_status_change({
        let client = client.clone();
        let live = Arc::clone(&live);
        let opened = Arc::clone(&opened);
        move |status| {
            if !status.is_connected() {
                return;
            }
            let client = client.clone();
            let live = Arc::clone(&live);
            let opened = Arc::clone(&opened);
            let params = params.clone();
            tokio::spawn(async move {
                let stream = client
                    .read_stream_with("counter", params, bounded(64))
                    .await
                    .expect("the stream opens");
                *live.lock().unwrap() = Some(stream);
                opened.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (live, opened, guard)
}

#[tokio::test(start_paused = true)]
async fn status_handler_subscriptions_do_not_multiply() {
    const RECONNECTS: usize = 5;
    let server = server().await;
    value_route(&server, "counter", Arc::new(Mutex::new(json!(0))));
    let client = connect(&server).await;
    let (live, opened, guard) = subscribe_on_connect(&client, Value::Null);

    for reconnect in 1..=RECONNECTS {
        client.reconnect().await.unwrap();
        tokio::time::timeout(WAIT, async {
            while opened.load(Ordering::SeqCst) < reconnect {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the status handler opened a stream");
    }
    tokio::time::sleep(STOP_GRACE_AND_PING).await;
    let mut stream = live.lock().unwrap().take().expect("a live stream");
    drain(&mut stream);
    server.notify_changes("counter", Notify::all().override_value(json!("change")));
    tokio::time::sleep(PING_INTERVAL * 3).await;

    assert_eq!(opened.load(Ordering::SeqCst), RECONNECTS);
    assert_eq!(drain(&mut stream), [json!("change")]);
    assert_eq!(server.listener_count("counter"), 1);
    drop(guard);
}

#[tokio::test(start_paused = true)]
async fn open_and_drop_cycles_leave_nothing() {
    const CYCLES: usize = 10_000;
    const PARAM_SETS: usize = 8;
    let server = server().await;
    server.route(Route::read("page").handler(|ctx| async move { Ok(Some(ctx.params)) }));
    let client = connect(&server).await;
    let baseline = client.state_sizes().await.unwrap();

    for cycle in 0..CYCLES {
        let params = json!({"page": cycle % PARAM_SETS});
        let stream = client.read_stream("page", params).await.unwrap();
        drop(stream);
    }
    let during = client.state_sizes().await.unwrap();
    assert!(
        during.listeners <= PARAM_SETS,
        "cycles on one route and params share a listener: {during:?}"
    );
    assert_eq!(during.open_streams, 0);
    server
        .wait_until(
            |server| server.listener_count("page") == 0,
            STOP_GRACE_AND_PING * 2,
        )
        .await
        .expect("the server stops every listener after the grace period");
    // Server ids are remembered for 10 minutes.
    tokio::time::sleep(Duration::from_secs(11 * 60)).await;
    let after = client.state_sizes().await.unwrap();

    assert_eq!(after.listeners, baseline.listeners);
    assert_eq!(after.open_streams, baseline.open_streams);
    assert_eq!(after.pending_requests, baseline.pending_requests);
    assert!(
        after.dedup_entries <= baseline.dedup_entries,
        "{after:?} against {baseline:?}"
    );
    assert_eq!(server.listener_count("page"), 0);
    let mut stream = client.read_stream("page", json!({"page": 0})).await.unwrap();
    assert_eq!(next_value(&mut stream).await, json!({"page": 0}));
}

#[tokio::test(start_paused = true)]
async fn slow_reader_memory_stays_bounded() {
    const PUSHES: u64 = 100_000;
    const CAPACITY: usize = 64;
    let server = server().await;
    value_route(&server, "counter", Arc::new(Mutex::new(json!(0))));
    let client = connect(&server).await;
    let mut latest = client.read_stream("counter", ()).await.unwrap();
    assert_eq!(next_value(&mut latest).await, json!(0));
    let mut buffered = client
        .read_stream_with("counter", (), bounded(CAPACITY))
        .await
        .unwrap();

    for n in 1..=PUSHES {
        server.notify_changes("counter", Notify::all().override_value(json!(n)));
    }
    tokio::time::timeout(WAIT, async {
        while latest.skipped() < PUSHES - 1 {
            assert!(latest.buffered_len() <= 1, "keep-latest holds one value");
            assert!(
                buffered.buffered_len() <= CAPACITY,
                "the bounded buffer holds at most {CAPACITY}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("every push arrives");

    assert_eq!(latest.buffered_len(), 1);
    assert_eq!(latest.skipped(), PUSHES - 1);
    assert_eq!(drain(&mut latest), [json!(PUSHES)]);
    assert_eq!(buffered.buffered_len(), CAPACITY);
    assert_eq!(buffered.skipped(), PUSHES - CAPACITY as u64);
    let newest = drain(&mut buffered);
    let expected: Vec<Value> = (PUSHES - CAPACITY as u64 + 1..=PUSHES)
        .map(|n| json!(n))
        .collect();
    assert_eq!(newest, expected, "the bounded buffer keeps the newest values");
}

#[tokio::test(start_paused = true)]
async fn concurrent_authenticate_conflicts() {
    let server = server().await;
    server.authenticate_with(|_credential| async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        AuthDecision::user(7)
    });
    let client = connect(&server).await;

    let first = tokio::spawn({
        let client = client.clone();
        async move { client.authenticate(json!({"token": "good"})).await }
    });
    server
        .wait_for_frame(
            |frame| matches!(frame.client_message(), Some(ClientMessage::Authenticate(_))),
            WAIT,
        )
        .await
        .unwrap();
    let second = client.authenticate(json!({"token": "good"})).await.unwrap_err();

    assert_eq!(second.kind(), ErrorKind::Conflict);
    assert!(first.await.unwrap().is_ok());
    assert_eq!(authenticates(&server), 1, "the conflicting call sends nothing");
}

#[tokio::test(start_paused = true)]
async fn authenticate_without_connection_does_not_stick() {
    let server = server().await;
    let address = server.address();
    let client = connect(&server).await;

    drop(server);
    wait_disconnected(&client).await;
    let first = client.authenticate(json!({"token": "good"})).await.unwrap_err();
    let second = client.authenticate(json!({"token": "good"})).await.unwrap_err();

    assert_eq!(first.kind(), ErrorKind::NoConnection);
    assert_eq!(
        second.kind(),
        ErrorKind::NoConnection,
        "no authentication is left in progress"
    );
    assert_eq!(
        client.authentication_status(),
        AuthenticationStatus::NotAuthenticated
    );
    let server = MockServer::builder()
        .well_behaved()
        .configure(|config| config.record_cleanup_tick = None)
        .bind_address(address)
        .start()
        .await;
    accept_good_token(&server);
    wait_connected(&client).await;
    let authenticated = client.authenticate(json!({"token": "good"})).await.unwrap();
    assert!(authenticated.user_id.is_some());
}

#[tokio::test(start_paused = true)]
async fn clear_completes_request_in_flight() {
    let server = server().await;
    server.route(Route::create("slow").handler(|_ctx| async move { Err(RouteError::no_answer()) }));
    let client = connect(&server).await;
    client.authenticate(json!({"token": "good"})).await.unwrap();
    let create = tokio::spawn({
        let client = client.clone();
        async move { client.create("slow", json!({"n": 1}), ()).await }
    });
    server
        .wait_for_frame(|frame| frame.route().as_deref() == Some("slow"), WAIT)
        .await
        .unwrap();

    client.clear_authentication().await.unwrap();

    let error = tokio::time::timeout(WAIT, create)
        .await
        .expect("the caller is answered")
        .unwrap()
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotAuthenticated);
    assert_eq!(error.code(), None, "not an error code the server emits");
}

#[tokio::test(start_paused = true)]
async fn typed_params_make_two_listeners() {
    let server = server().await;
    server.route(Route::read("item").handler(|ctx| async move { Ok(Some(ctx.params)) }));
    let client = connect(&server).await;

    let mut number = client.read_stream("item", json!({"id": 1})).await.unwrap();
    let mut text = client.read_stream("item", json!({"id": "1"})).await.unwrap();

    assert_eq!(next_value(&mut number).await, json!({"id": 1}));
    assert_eq!(next_value(&mut text).await, json!({"id": "1"}));
    assert_eq!(listens(&server, "item"), 2);
    assert_eq!(server.listener_count("item"), 2);
}

#[tokio::test(start_paused = true)]
async fn repeated_stop_events_are_harmless() {
    let server = server().await;
    value_route(&server, "counter", Arc::new(Mutex::new(json!(1))));
    let client = connect(&server).await;
    client.authenticate(json!({"token": "good"})).await.unwrap();
    let mut stream = client.read_stream("counter", ()).await.unwrap();
    assert_eq!(next_value(&mut stream).await, json!(1));

    server.stop_listening_for_user("counter", 7);
    server.stop_listening_for_user("counter", 7);

    let end = tokio::time::timeout(WAIT, stream.next()).await.unwrap();
    assert!(end.is_none(), "the stream ends: {end:?}");
    server
        .wait_until(|server| server.listener_count("counter") == 0, PING_INTERVAL * 3)
        .await
        .expect("the next ping omits the stopped listener");
    let mut again = client.read_stream("counter", ()).await.unwrap();
    assert_eq!(next_value(&mut again).await, json!(1));
    assert_eq!(server.listener_count("counter"), 1);
}

#[tokio::test(start_paused = true)]
async fn unauthenticated_ping_cycle_stops() {
    let server = server().await;
    inbox_route(&server);
    let client = connect(&server).await;
    client.authenticate(json!({"token": "good"})).await.unwrap();
    let mut stream = client.read_stream("inbox", ()).await.unwrap();
    assert_eq!(next_value(&mut stream).await, json!({"user": 7}));

    client.clear_authentication().await.unwrap();
    server.faults().drop_connections();
    wait_disconnected(&client).await;
    wait_connected(&client).await;
    tokio::time::sleep(PING_INTERVAL * 8).await;

    assert_eq!(
        pending_authentication_errors(&server),
        1,
        "the client stops listing the listener after one PENDING_AUTHENTICATION"
    );
    client.authenticate(json!({"token": "good"})).await.unwrap();
    server
        .wait_until(|server| server.listener_count("inbox") == 1, WAIT)
        .await
        .expect("the stream listens again after the login");
    server.notify_changes("inbox", Notify::all().override_value(json!({"user": 7, "n": 2})));
    wait_for_value(&mut stream, &json!({"user": 7, "n": 2})).await;
}

#[tokio::test(start_paused = true)]
async fn login_racing_stream_starts_once() {
    let server = server().await;
    inbox_route(&server);
    server.authenticate_with(|_credential| async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        AuthDecision::user(7)
    });
    let client = connect(&server).await;

    let mut stream = client.read_stream("inbox", ()).await.unwrap();
    client.authenticate(json!({"token": "good"})).await.unwrap();

    assert_eq!(next_value(&mut stream).await, json!({"user": 7}));
    tokio::time::sleep(PING_INTERVAL * 6).await;
    assert!(
        listens(&server, "inbox") <= 2,
        "at most one listen after the login"
    );
    assert!(pending_authentication_errors(&server) <= 1);
    assert_eq!(server.listener_count("inbox"), 1);
}

#[tokio::test(start_paused = true)]
async fn offline_stream_starts_after_login() {
    let server = server().await;
    inbox_route(&server);
    let address = server.address();
    let client = connect(&server).await;
    drop(server);
    wait_disconnected(&client).await;

    let mut stream = client.read_stream("inbox", ()).await.unwrap();
    let server = MockServer::builder()
        .well_behaved()
        .configure(|config| config.record_cleanup_tick = None)
        .bind_address(address)
        .start()
        .await;
    accept_good_token(&server);
    inbox_route(&server);
    wait_connected(&client).await;
    wait_for_pending_authentication(&server).await;
    client.authenticate(json!({"token": "good"})).await.unwrap();

    assert_eq!(next_value(&mut stream).await, json!({"user": 7}));
    tokio::time::sleep(PING_INTERVAL * 6).await;
    assert_eq!(listens(&server, "inbox"), 2);
    assert_eq!(pending_authentication_errors(&server), 1);
}

#[tokio::test(start_paused = true)]
async fn restart_resumes_authenticated_stream() {
    let server = server().await;
    let value = Arc::new(Mutex::new(json!(1)));
    server.route(Route::read("inbox").for_authenticated_users().handler({
        let value = Arc::clone(&value);
        move |ctx| {
            let current = json!({"user": ctx.user_id.map(|id| id.to_value()), "n": *value.lock().unwrap()});
            async move { Ok(Some(current)) }
        }
    }));
    let client = connect(&server).await;
    client.authenticate(json!({"token": "good"})).await.unwrap();
    let mut stream = client.read_stream_with("inbox", (), bounded(16)).await.unwrap();
    assert_eq!(next_value(&mut stream).await, json!({"user": 7, "n": 1}));

    *value.lock().unwrap() = json!(2);
    server.restart().await;
    wait_for_value(&mut stream, &json!({"user": 7, "n": 2})).await;
    tokio::time::sleep(PING_INTERVAL * 6).await;

    assert_eq!(authenticates(&server), 2);
    assert_eq!(
        pending_authentication_errors(&server),
        0,
        "pings list no stream before the re-authentication"
    );
    assert_eq!(server.listener_count("inbox"), 1);
    server.notify_changes("inbox", Notify::all().override_value(json!("change")));
    tokio::time::sleep(PING_INTERVAL * 2).await;
    assert_eq!(drain(&mut stream), [json!("change")]);
}

#[tokio::test(start_paused = true)]
async fn login_again_with_reference_quirks() {
    let server = MockServer::builder()
        .configure(|config| config.record_cleanup_tick = None)
        .start()
        .await;
    accept_good_token(&server);
    server.route(
        Route::read("orders")
            .for_authenticated_users()
            .handler(|ctx| async move {
                Ok(Some(
                    json!({"own": [{"owner": ctx.user_id.map(|id| id.to_value())}]}),
                ))
            }),
    );
    let client = connect(&server).await;
    client.authenticate(json!({"token": "good"})).await.unwrap();
    let mut stream = client.read_stream_with("orders", (), bounded(16)).await.unwrap();
    let expected = json!({"own": [{"owner": 7}]});
    assert_eq!(next_value(&mut stream).await, expected);

    client.clear_authentication().await.unwrap();
    tokio::time::sleep(PING_INTERVAL * 3).await;
    drain(&mut stream);
    client.authenticate(json!({"token": "good"})).await.unwrap();

    assert_eq!(next_value(&mut stream).await, expected);
    tokio::time::sleep(PING_INTERVAL * 6).await;
    assert_eq!(server.listener_count("orders"), 1);
}

#[tokio::test(start_paused = true)]
async fn status_handler_survives_dropped_connections() {
    const DROPS: usize = 4;
    let server = server().await;
    value_route(&server, "counter", Arc::new(Mutex::new(json!(0))));
    let client = connect(&server).await;
    let (live, opened, guard) = subscribe_on_connect(&client, json!({"n": 1}));

    for drop_number in 1..=DROPS {
        server.faults().drop_connections();
        wait_disconnected(&client).await;
        tokio::time::timeout(WAIT, async {
            while opened.load(Ordering::SeqCst) < drop_number {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the status handler opened a stream");
    }
    tokio::time::sleep(STOP_GRACE_AND_PING).await;
    let mut stream = live.lock().unwrap().take().expect("a live stream");
    drain(&mut stream);
    server.notify_changes("counter", Notify::all().override_value(json!("change")));
    tokio::time::sleep(PING_INTERVAL * 3).await;

    assert_eq!(drain(&mut stream), [json!("change")]);
    assert_eq!(server.listener_count("counter"), 1);
    drop(guard);
}

#[tokio::test(start_paused = true)]
async fn connection_lost_during_login_settles() {
    let server = server().await;
    server.authenticate_with(|_credential| async move {
        tokio::time::sleep(Duration::from_secs(2)).await;
        AuthDecision::user(7)
    });
    let client = connect(&server).await;

    let login = tokio::spawn({
        let client = client.clone();
        async move { client.authenticate(json!({"token": "good"})).await }
    });
    server
        .wait_for_frame(
            |frame| matches!(frame.client_message(), Some(ClientMessage::Authenticate(_))),
            WAIT,
        )
        .await
        .unwrap();
    server.faults().drop_connections();
    let outcome = tokio::time::timeout(WAIT, login)
        .await
        .expect("the login settles")
        .unwrap();
    tokio::time::sleep(PING_INTERVAL * 2).await;

    let status = client.authentication_status();
    assert_ne!(status, AuthenticationStatus::InProgress);
    assert_eq!(
        outcome.is_ok(),
        matches!(status, AuthenticationStatus::Authenticated { .. }),
        "{outcome:?} against {status:?}"
    );
    let again = client.authenticate(json!({"token": "good"})).await;
    assert!(again.is_ok(), "{again:?}");
}

#[tokio::test(start_paused = true)]
async fn handler_pending_authentication_does_not_loop() {
    let server = server().await;
    server.route(Route::read("verified").handler(|_ctx| async move {
        Err(RouteError::new(
            "PENDING_AUTHENTICATION",
            "a verified session is required",
        ))
    }));
    server.route(Route::create("verified-create").handler(|_ctx| async move {
        Err(RouteError::new(
            "PENDING_AUTHENTICATION",
            "a verified session is required",
        ))
    }));
    let client = connect(&server).await;
    client.authenticate(json!({"token": "good"})).await.unwrap();

    let _stream = client.read_stream("verified", ()).await.unwrap();
    let create = tokio::spawn({
        let client = client.clone();
        async move { client.create("verified-create", json!({"n": 1}), ()).await }
    });
    tokio::time::sleep(PING_INTERVAL * 5).await;

    assert!(
        listens(&server, "verified") <= 2,
        "{} listens",
        listens(&server, "verified")
    );
    let creates = received(&server)
        .iter()
        .filter(
            |message| matches!(message, ClientMessage::Modify(modify) if modify.route == "verified-create"),
        )
        .count();
    assert!(creates <= 2, "{creates} creates");
    let error = tokio::time::timeout(WAIT, create)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PendingAuthentication);
}

#[tokio::test(start_paused = true)]
async fn failed_reauthentication_keeps_public_streams() {
    let server = server().await;
    let decisions = Arc::new(AtomicUsize::new(0));
    server.authenticate_with({
        let decisions = Arc::clone(&decisions);
        move |_credential| {
            let rejected = decisions.fetch_add(1, Ordering::SeqCst) == 1;
            async move {
                if rejected {
                    AuthDecision::reject("EXPIRED_ACCESS_TOKEN")
                } else {
                    AuthDecision::user(7)
                }
            }
        }
    });
    value_route(&server, "counter", Arc::new(Mutex::new(json!(0))));
    inbox_route(&server);
    let client = AsklessClient::builder(server.url())
        .on_auto_reauthentication_fails(|_failure| {})
        .connect()
        .await
        .unwrap();
    client.authenticate(json!({"token": "any"})).await.unwrap();
    let mut public = client.read_stream_with("counter", (), bounded(16)).await.unwrap();
    assert_eq!(next_value(&mut public).await, json!(0));
    let mut inbox = client.read_stream_with("inbox", (), bounded(16)).await.unwrap();
    assert_eq!(next_value(&mut inbox).await, json!({"user": 7}));

    server.faults().drop_connections();
    wait_disconnected(&client).await;
    wait_connected(&client).await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    drain(&mut public);
    server.notify_changes("counter", Notify::all().override_value(json!("change")));
    tokio::time::sleep(PING_INTERVAL * 2).await;

    assert_eq!(
        server.listener_count("counter"),
        1,
        "pings list the public stream once the re-authentication gave up"
    );
    assert_eq!(drain(&mut public), [json!("change")]);
    assert_eq!(
        pending_authentication_errors(&server),
        1,
        "the authenticated-only stream waits after one PENDING_AUTHENTICATION"
    );
    client.authenticate(json!({"token": "any"})).await.unwrap();
    server
        .wait_until(|server| server.listener_count("inbox") == 1, WAIT)
        .await
        .expect("the authenticated-only stream listens again after the login");
}

#[tokio::test(start_paused = true)]
async fn callback_clear_ends_reauthentication() {
    let server = server().await;
    let decisions = Arc::new(AtomicUsize::new(0));
    server.authenticate_with({
        let decisions = Arc::clone(&decisions);
        move |_credential| {
            let first = decisions.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    AuthDecision::user(7)
                } else {
                    AuthDecision::reject("EXPIRED_ACCESS_TOKEN")
                }
            }
        }
    });
    server.route(Route::read("public").handler(|_ctx| async move { Ok(Some(json!("open"))) }));
    let client = AsklessClient::builder(server.url())
        .on_auto_reauthentication_fails(|failure| {
            tokio::spawn(async move { failure.clear.clear().await });
        })
        .connect()
        .await
        .unwrap();
    client.authenticate(json!({"token": "any"})).await.unwrap();

    server.restart().await;
    wait_disconnected(&client).await;
    let held = tokio::time::timeout(WAIT, client.read("public", ()))
        .await
        .expect("the held read completes");
    tokio::time::sleep(PING_INTERVAL * 5).await;
    let read = client.read("public", ()).await.unwrap();

    // Clearing the authentication fails every pending request, like the reference client,
    // which drops them.
    let error = held.expect_err("the clear fails the read held for the re-authentication");
    assert_eq!(error.kind(), ErrorKind::NotAuthenticated);
    assert_eq!(read.value(), Some(&json!("open")));
    assert_eq!(
        client.authentication_status(),
        AuthenticationStatus::NotAuthenticated
    );
    assert_eq!(authenticates(&server), 2, "no re-authentication after the clear");
}
