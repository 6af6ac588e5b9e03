//! Authentication and live streams against the testkit's mock server over loopback WebSockets.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use askless_client::{
    AsklessClient, AuthenticationStatus, ConnectionStatus, ErrorKind, ReadStream, StreamBuffer,
    StreamOptions, StreamSource, UserId,
};
use askless_protocol::ClientMessage;
use askless_testkit::{AuthDecision, MockServer, Notify, Route, RouteError};
use futures::StreamExt;
use serde_json::{Value, json};

/// Maximum virtual wait for anything a test expects to happen.
const WAIT: Duration = Duration::from_secs(60);

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
    server.authenticate_with(|credential| async move {
        match credential["token"].as_str() {
            Some("good") => AuthDecision::user(7).with_claims(json!(["admin"])),
            Some("zero") => AuthDecision::user(0),
            Some("guest") => AuthDecision::unauthenticated(),
            _ => AuthDecision::reject("EXPIRED_ACCESS_TOKEN"),
        }
    });
    server
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

fn received(server: &MockServer) -> Vec<ClientMessage> {
    server
        .received_frames()
        .iter()
        .filter_map(|frame| frame.client_message())
        .collect()
}

async fn wait_connected(client: &AsklessClient) {
    let mut watch = client.status_watch();
    tokio::time::timeout(WAIT, watch.wait_for(ConnectionStatus::is_connected))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn authenticate_returns_user_and_claims() {
    let server = server().await;
    server.route(
        Route::create("secret")
            .for_authenticated_users()
            .handler(|ctx| async move { Ok(Some(json!({"user": ctx.user_id.map(|id| id.to_value())}))) }),
    );
    let client = connect(&server).await;

    let authenticated = client.authenticate(json!({"token": "good"})).await.unwrap();

    assert_eq!(
        authenticated.user_id,
        Some(UserId::from_value(&json!(7)).unwrap())
    );
    assert_eq!(authenticated.claims, Some(json!(["admin"])));
    assert!(matches!(
        client.authentication_status(),
        AuthenticationStatus::Authenticated { .. }
    ));
    let output = client.create("secret", json!({"n": 1}), ()).await.unwrap();
    assert_eq!(output.value(), Some(&json!({"user": 7})));
}

#[tokio::test(start_paused = true)]
async fn rejected_credential_is_a_credential_error() {
    let server = server().await;
    let client = connect(&server).await;

    let error = client
        .authenticate(json!({"token": "s3cr3t-expired"}))
        .await
        .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::Credential);
    assert_eq!(error.code().unwrap().as_str(), "EXPIRED_ACCESS_TOKEN");
    assert_eq!(
        client.authentication_status(),
        AuthenticationStatus::NotAuthenticated
    );
    for text in [error.to_string(), format!("{error:?}"), format!("{client:?}")] {
        assert!(!text.contains("s3cr3t"), "{text}");
    }
}

#[tokio::test(start_paused = true)]
async fn server_failure_is_not_a_credential_error() {
    let server = server().await;
    let client = connect(&server).await;

    let error = client.authenticate(json!({"token": "zero"})).await.unwrap_err();

    assert_eq!(error.kind(), ErrorKind::Server);
    assert_eq!(error.code().unwrap().as_str(), "INTERNAL_ERROR");
}

#[tokio::test(start_paused = true)]
async fn unauthenticated_acceptance_has_no_user() {
    let server = server().await;
    let client = connect(&server).await;

    let outcome = client.authenticate(json!({"token": "guest"})).await.unwrap();

    assert_eq!(outcome.user_id, None);
    assert_eq!(
        client.authentication_status(),
        AuthenticationStatus::NotAuthenticated
    );
}

#[tokio::test(start_paused = true)]
async fn clear_authentication_logs_out() {
    let server = server().await;
    let client = connect(&server).await;
    client.authenticate(json!({"token": "good"})).await.unwrap();

    client.clear_authentication().await.unwrap();

    assert_eq!(
        client.authentication_status(),
        AuthenticationStatus::NotAuthenticated
    );
    let logout = received(&server).into_iter().find_map(|message| match message {
        ClientMessage::Modify(modify) if modify.route == "askless-internal/authentication" => Some(modify),
        _ => None,
    });
    let logout = logout.expect("a logout request");
    assert_eq!(logout.request_type.as_str(), "DELETE");
    assert_eq!(logout.body, json!({}));
}

#[tokio::test(start_paused = true)]
async fn reauthentication_precedes_queued_requests() {
    let server = server().await;
    server.route(
        Route::create("secret")
            .for_authenticated_users()
            .handler(|_ctx| async move { Ok(Some(json!(1))) }),
    );
    let client = connect(&server).await;
    client.authenticate(json!({"token": "good"})).await.unwrap();
    let mut watch = client.status_watch();

    server.faults().drop_connections();
    tokio::time::timeout(WAIT, watch.wait_for(|status| !status.is_connected()))
        .await
        .unwrap()
        .unwrap();
    let created = client.create("secret", json!({"n": 1}), ()).await.unwrap();

    assert_eq!(created.value(), Some(&json!(1)));
    let kinds: Vec<&'static str> = received(&server)
        .iter()
        .filter_map(|message| match message {
            ClientMessage::ConfigureConnection(_) => Some("configure"),
            ClientMessage::Authenticate(_) => Some("authenticate"),
            ClientMessage::Modify(_) => Some("create"),
            _ => None,
        })
        .collect();
    assert_eq!(
        kinds,
        ["configure", "authenticate", "configure", "authenticate", "create"]
    );
    assert!(matches!(
        client.authentication_status(),
        AuthenticationStatus::Authenticated { .. }
    ));
}

#[tokio::test(start_paused = true)]
async fn failed_reauthentication_calls_back_once() {
    let server = server().await;
    let accepted = Arc::new(AtomicUsize::new(0));
    server.authenticate_with({
        let accepted = Arc::clone(&accepted);
        move |_credential| {
            let first = accepted.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    AuthDecision::user(7)
                } else {
                    AuthDecision::reject("EXPIRED_ACCESS_TOKEN")
                }
            }
        }
    });
    let codes = Arc::new(Mutex::new(Vec::new()));
    let client = AsklessClient::builder(server.url())
        .on_auto_reauthentication_fails({
            let codes = Arc::clone(&codes);
            move |failure| codes.lock().unwrap().push(failure.code.as_str().to_owned())
        })
        .connect()
        .await
        .unwrap();
    client.authenticate(json!({"token": "any"})).await.unwrap();
    let mut watch = client.status_watch();

    server.faults().drop_connections();
    tokio::time::timeout(WAIT, watch.wait_for(|status| !status.is_connected()))
        .await
        .unwrap()
        .unwrap();
    wait_connected(&client).await;
    tokio::time::sleep(Duration::from_secs(30)).await;

    assert_eq!(*codes.lock().unwrap(), ["EXPIRED_ACCESS_TOKEN"]);
    assert_eq!(
        client.authentication_status(),
        AuthenticationStatus::NotAuthenticated
    );
}

#[tokio::test(start_paused = true)]
async fn credential_provider_refreshes_on_reconnect() {
    let server = server().await;
    let client = AsklessClient::builder(server.url())
        .credential_provider(|| Box::pin(async { Some(json!({"token": "good", "refreshed": true})) }))
        .connect()
        .await
        .unwrap();
    client.authenticate(json!({"token": "good"})).await.unwrap();
    let mut watch = client.status_watch();

    server.faults().drop_connections();
    tokio::time::timeout(WAIT, watch.wait_for(|status| !status.is_connected()))
        .await
        .unwrap()
        .unwrap();
    wait_connected(&client).await;
    let mut auth = client.authentication_watch();
    tokio::time::timeout(
        WAIT,
        auth.wait_for(|status| matches!(status, AuthenticationStatus::Authenticated { .. })),
    )
    .await
    .unwrap()
    .unwrap();

    let credentials: Vec<Value> = received(&server)
        .into_iter()
        .filter_map(|message| match message {
            ClientMessage::Authenticate(request) => request.credential,
            _ => None,
        })
        .collect();
    assert_eq!(
        credentials,
        [
            json!({"token": "good"}),
            json!({"token": "good", "refreshed": true})
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn pending_authentication_request_waits_for_login() {
    let server = server().await;
    server.route(
        Route::create("secret")
            .for_authenticated_users()
            .handler(|_ctx| async move { Ok(Some(json!(1))) }),
    );
    let client = connect(&server).await;

    let create = tokio::spawn({
        let client = client.clone();
        async move { client.create("secret", json!({"n": 1}), ()).await }
    });
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
        .unwrap();
    client.authenticate(json!({"token": "good"})).await.unwrap();

    assert_eq!(create.await.unwrap().unwrap().value(), Some(&json!(1)));
    let ids: Vec<String> = received(&server)
        .into_iter()
        .filter_map(|message| match message {
            ClientMessage::Modify(modify) if modify.route == "secret" => {
                Some(modify.client_request_id.as_str().to_owned())
            }
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1], "the request is sent again with a new id");
}

#[tokio::test(start_paused = true)]
async fn pending_authentication_times_out() {
    let server = server().await;
    server.route(
        Route::create("secret")
            .for_authenticated_users()
            .handler(|_ctx| async move { Ok(Some(json!(1))) }),
    );
    let client = connect(&server).await;

    let error = client.create("secret", json!({"n": 1}), ()).await.unwrap_err();

    assert_eq!(error.kind(), ErrorKind::PendingAuthentication);
    assert_eq!(error.code().unwrap().as_str(), "PENDING_AUTHENTICATION");
}

/// Registers a READ route `counter` whose value is `value`.
fn counter_route(server: &MockServer, value: Arc<Mutex<Value>>) {
    server.route(Route::read("counter").handler(move |_ctx| {
        let current = value.lock().unwrap().clone();
        async move { Ok(Some(current)) }
    }));
}

#[tokio::test(start_paused = true)]
async fn stream_receives_first_value_and_changes() {
    let server = server().await;
    let value = Arc::new(Mutex::new(json!(1)));
    counter_route(&server, Arc::clone(&value));
    let client = connect(&server).await;

    let mut stream = client.read_stream("counter", ()).await.unwrap();
    assert_eq!(next_value(&mut stream).await, json!(1));

    *value.lock().unwrap() = json!(2);
    server.notify_changes("counter", Notify::all());

    assert_eq!(next_value(&mut stream).await, json!(2));
}

#[tokio::test(start_paused = true)]
async fn streams_share_one_listener() {
    let server = server().await;
    counter_route(&server, Arc::new(Mutex::new(json!(1))));
    let client = connect(&server).await;

    let mut first = client
        .read_stream("counter", json!({"a": 1, "b": 2}))
        .await
        .unwrap();
    assert_eq!(next_value(&mut first).await, json!(1));
    let options = StreamOptions {
        source: StreamSource::CacheAndRemote,
        ..StreamOptions::default()
    };
    let mut second = client
        .read_stream_with("counter", json!({"b": 2, "a": 1}), options)
        .await
        .unwrap();

    assert_eq!(
        next_value(&mut second).await,
        json!(1),
        "the cached value goes to the new stream"
    );
    let listens = received(&server)
        .into_iter()
        .filter(|message| matches!(message, ClientMessage::Listen(_)))
        .count();
    assert_eq!(listens, 1);
    assert_eq!(server.listener_count("counter"), 1);
}

#[tokio::test(start_paused = true)]
async fn dropped_stream_stops_after_grace() {
    let server = server().await;
    counter_route(&server, Arc::new(Mutex::new(json!(1))));
    let client = connect(&server).await;
    let mut stream = client.read_stream("counter", ()).await.unwrap();
    next_value(&mut stream).await;

    drop(stream);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        server.listener_count("counter"),
        1,
        "still listening during the grace period"
    );

    server
        .wait_until(
            |server| server.listener_count("counter") == 0,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn server_stop_ends_stream() {
    let server = server().await;
    counter_route(&server, Arc::new(Mutex::new(json!(1))));
    let client = connect(&server).await;
    client.authenticate(json!({"token": "good"})).await.unwrap();
    let mut stream = client.read_stream("counter", ()).await.unwrap();
    next_value(&mut stream).await;

    server.stop_listening_for_user("counter", 7);

    let end = tokio::time::timeout(WAIT, stream.next()).await.unwrap();
    assert!(end.is_none(), "{end:?}");
}

#[tokio::test(start_paused = true)]
async fn stream_resumes_after_reconnect() {
    let server = server().await;
    let value = Arc::new(Mutex::new(json!(1)));
    counter_route(&server, Arc::clone(&value));
    let client = connect(&server).await;
    let mut stream = client.read_stream("counter", ()).await.unwrap();
    assert_eq!(next_value(&mut stream).await, json!(1));

    server.faults().drop_connections();
    *value.lock().unwrap() = json!(5);

    assert_eq!(next_value(&mut stream).await, json!(5));
    assert!(client.status().is_connected());
}

#[tokio::test(start_paused = true)]
async fn unknown_route_fails_stream() {
    let server = server().await;
    let client = connect(&server).await;

    let mut stream = client.read_stream("nope", ()).await.unwrap();

    let error = tokio::time::timeout(WAIT, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(error.code().unwrap().as_str(), "INVALID_ROUTE");
    assert!(tokio::time::timeout(WAIT, stream.next()).await.unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn authenticated_stream_waits_for_login() {
    let server = server().await;
    server.route(
        Route::read("inbox")
            .for_authenticated_users()
            .handler(|ctx| async move { Ok(Some(json!({"user": ctx.user_id.map(|id| id.to_value())}))) }),
    );
    let client = connect(&server).await;
    let mut stream = client.read_stream("inbox", ()).await.unwrap();
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
        .unwrap();

    client.authenticate(json!({"token": "good"})).await.unwrap();

    assert_eq!(next_value(&mut stream).await, json!({"user": 7}));
}

#[tokio::test(start_paused = true)]
async fn slow_reader_keeps_latest_value() {
    let server = server().await;
    counter_route(&server, Arc::new(Mutex::new(json!(0))));
    let client = connect(&server).await;
    let mut stream = client.read_stream("counter", ()).await.unwrap();
    assert_eq!(next_value(&mut stream).await, json!(0));

    for n in 1..=5 {
        server.notify_changes("counter", Notify::all().override_value(json!(n)));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    assert_eq!(next_value(&mut stream).await, json!(5));
    assert_eq!(stream.skipped(), 4);
}

#[tokio::test(start_paused = true)]
async fn duplicated_value_delivered_once() {
    let server = server().await;
    counter_route(&server, Arc::new(Mutex::new(json!(0))));
    let client = connect(&server).await;
    let options = StreamOptions {
        buffer: StreamBuffer::Bounded(16),
        ..StreamOptions::default()
    };
    let mut stream = client.read_stream_with("counter", (), options).await.unwrap();
    assert_eq!(next_value(&mut stream).await, json!(0));

    server.faults().duplicate_frames(usize::MAX);
    server.notify_changes("counter", Notify::all().override_value(json!(1)));
    assert_eq!(next_value(&mut stream).await, json!(1));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let extra = tokio::time::timeout(Duration::from_millis(100), stream.next()).await;
    assert!(extra.is_err(), "the repeated value was emitted again: {extra:?}");
    let new_data_confirms = server
        .received_frames()
        .iter()
        .filter_map(|frame| frame.client_message())
        .filter(|message| {
            matches!(message, ClientMessage::ConfirmReceipt(confirm)
                if confirm.server_id.as_ref().is_some_and(|id| id.as_str().starts_with("NEW-")))
        })
        .count();
    assert_eq!(
        new_data_confirms, 3,
        "first value once, the duplicated value twice"
    );
}

#[tokio::test(start_paused = true)]
async fn stream_error_for_failing_handler() {
    let server = server().await;
    server.route(
        Route::read("broken").handler(|_ctx| async move { Err(RouteError::new("BROKEN", "always fails")) }),
    );
    let client = connect(&server).await;

    let mut stream = client.read_stream("broken", ()).await.unwrap();

    let error = tokio::time::timeout(WAIT, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(error.code().unwrap().as_str(), "BROKEN");
    assert_eq!(error.description(), Some("always fails"));
}

#[tokio::test(start_paused = true)]
async fn authenticated_stream_survives_reconnect() {
    let server = server().await;
    let value = Arc::new(Mutex::new(json!(1)));
    server.route(Route::read("inbox").for_authenticated_users().handler({
        let value = Arc::clone(&value);
        move |_ctx| {
            let current = value.lock().unwrap().clone();
            async move { Ok(Some(current)) }
        }
    }));
    let client = connect(&server).await;
    client.authenticate(json!({"token": "good"})).await.unwrap();
    let mut stream = client.read_stream("inbox", ()).await.unwrap();
    assert_eq!(next_value(&mut stream).await, json!(1));

    server.faults().drop_connections();
    *value.lock().unwrap() = json!(2);

    assert_eq!(next_value(&mut stream).await, json!(2));
    assert!(matches!(
        client.authentication_status(),
        AuthenticationStatus::Authenticated { .. }
    ));
    let pending_errors = server
        .sent_frames()
        .iter()
        .filter(|frame| {
            frame
                .json()
                .is_some_and(|json| json["error"]["code"] == "PENDING_AUTHENTICATION")
        })
        .count();
    assert_eq!(
        pending_errors, 0,
        "pings list no stream before the re-authentication"
    );
}

#[tokio::test(start_paused = true)]
async fn clear_releases_waiting_stream() {
    let server = server().await;
    server.route(
        Route::read("inbox")
            .for_authenticated_users()
            .handler(|_ctx| async move { Ok(Some(json!(1))) }),
    );
    let client = connect(&server).await;
    let options = StreamOptions {
        persevere: false,
        ..StreamOptions::default()
    };
    let mut stream = client.read_stream_with("inbox", (), options).await.unwrap();
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
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    client.clear_authentication().await.unwrap();

    let error = tokio::time::timeout(WAIT, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PendingAuthentication);
    assert!(tokio::time::timeout(WAIT, stream.next()).await.unwrap().is_none());
}

#[tokio::test(start_paused = true)]
async fn persevere_request_survives_clear() {
    let server = server().await;
    server.route(
        Route::create("secret")
            .for_authenticated_users()
            .handler(|_ctx| async move { Ok(Some(json!(1))) }),
    );
    let client = connect(&server).await;
    let options = askless_client::RequestOptions {
        never_timeout: true,
        persevere: true,
    };
    let create = tokio::spawn({
        let client = client.clone();
        async move { client.create_with("secret", json!({"n": 1}), (), options).await }
    });
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
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    client.clear_authentication().await.unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(
        !create.is_finished(),
        "a persevere request keeps waiting after the clear"
    );
    client.authenticate(json!({"token": "good"})).await.unwrap();

    let output = tokio::time::timeout(WAIT, create)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(output.value(), Some(&json!(1)));
}

#[tokio::test(start_paused = true)]
async fn clear_fails_waiting_request() {
    let server = server().await;
    server.route(
        Route::create("secret")
            .for_authenticated_users()
            .handler(|_ctx| async move { Ok(Some(json!(1))) }),
    );
    let client = connect(&server).await;
    let create = tokio::spawn({
        let client = client.clone();
        async move { client.create("secret", json!({"n": 1}), ()).await }
    });
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
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    client.clear_authentication().await.unwrap();

    let error = create.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PendingAuthentication);
}
