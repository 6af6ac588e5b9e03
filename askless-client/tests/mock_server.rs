//! Integration tests against the testkit's mock Askless server over real loopback WebSockets.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use askless_client::{
    AsklessClient, ConnectionStatus, DisconnectionReason, ErrorKind, ReconnectPolicy, RequestOptions,
    StatusStreamOptions,
};
use askless_protocol::{ClientMessage, ServerMessage};
use askless_testkit::{MockConfig, MockServer, Route, RouteError};
use askless_transport::{Connection, Transport, TransportError, WebSocketTransport};
use futures::StreamExt;
use serde_json::{Value, json};
use url::Url;

/// Maximum virtual wait for anything a test expects to happen.
const WAIT: Duration = Duration::from_secs(60);

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
}

/// Starts a mock server without the periodic clean-up, so that long virtual waits do not
/// delete the record under test.
async fn server() -> MockServer {
    init_logs();
    MockServer::builder()
        .well_behaved()
        .configure(|config| config.record_cleanup_tick = None)
        .start()
        .await
}

async fn connect(server: &MockServer) -> AsklessClient {
    AsklessClient::builder(server.url())
        .connect()
        .await
        .expect("client connects to the mock")
}

async fn next_status(stream: &mut askless_client::StatusStream) -> ConnectionStatus {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("a status change in time")
        .expect("status stream open")
}

/// Counts the `serverId`s of every confirm-receipt the server received.
fn confirmations_of(server: &MockServer, server_id: &str) -> usize {
    server
        .received_frames()
        .iter()
        .filter_map(|frame| frame.client_message())
        .filter(|message| match message {
            ClientMessage::ConfirmReceipt(confirm) => {
                confirm.server_id.as_ref().map(|id| id.as_str()) == Some(server_id)
            }
            _ => false,
        })
        .count()
}

#[tokio::test(start_paused = true)]
async fn status_sequence_on_connect_and_reconnect() {
    let server = server().await;
    let client = AsklessClient::builder(server.url()).build().unwrap();
    let mut statuses = client.status_stream(StatusStreamOptions {
        emit_current_first: true,
    });

    assert_eq!(next_status(&mut statuses).await, ConnectionStatus::InProgress);
    assert_eq!(next_status(&mut statuses).await, ConnectionStatus::Connected);

    server.faults().drop_connections();

    let disconnected = next_status(&mut statuses).await;
    assert!(
        matches!(
            disconnected.disconnection_reason(),
            Some(DisconnectionReason::Closed { code: Some(1006), .. })
        ),
        "{disconnected:?}"
    );
    assert_eq!(next_status(&mut statuses).await, ConnectionStatus::InProgress);
    assert_eq!(next_status(&mut statuses).await, ConnectionStatus::Connected);
}

#[tokio::test(start_paused = true)]
async fn status_listener_sees_changes() {
    let server = server().await;
    let client = connect(&server).await;
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    let guard = client.on_status_change(move |status| {
        let _ = seen_tx.send(status.clone());
    });

    server.faults().drop_connections();

    let first = tokio::time::timeout(WAIT, seen.recv()).await.unwrap().unwrap();
    assert!(
        matches!(first, ConnectionStatus::Disconnected { .. }),
        "{first:?}"
    );
    drop(guard);
}

#[tokio::test(start_paused = true)]
async fn read_create_update_delete_succeed() {
    let server = server().await;
    server
        .route(Route::read("items").handler(|ctx| async move { Ok(Some(json!({"params": ctx.params}))) }))
        .route(Route::create("items").handler(|ctx| async move { Ok(Some(json!({"created": ctx.body}))) }))
        .route(Route::update("items").handler(|ctx| async move { Ok(Some(json!({"updated": ctx.body}))) }))
        .route(Route::delete("items").handler(|_ctx| async move { Ok(None) }));
    let client = connect(&server).await;

    let read = client.read("items", json!({"search": "a"})).await.unwrap();
    let created = client.create("items", json!({"name": "b"}), ()).await.unwrap();
    let updated = client
        .update("items", json!({"name": "c"}), json!({"id": 1}))
        .await
        .unwrap();
    let deleted = client.delete("items", json!({"id": 1})).await.unwrap();

    assert_eq!(read.value(), Some(&json!({"params": {"search": "a"}})));
    assert_eq!(created.value(), Some(&json!({"created": {"name": "b"}})));
    assert_eq!(updated.value(), Some(&json!({"updated": {"name": "c"}})));
    assert_eq!(deleted.value(), None, "a route without output gives no output");
    let delete_body = server
        .received_frames()
        .iter()
        .filter_map(|frame| frame.client_message())
        .find_map(|message| match message {
            ClientMessage::Modify(modify) if modify.request_type.as_str() == "DELETE" => Some(modify.body),
            _ => None,
        });
    assert_eq!(delete_body, Some(json!({})));
}

#[tokio::test(start_paused = true)]
async fn typed_output_deserializes() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Item {
        id: u32,
        name: String,
    }
    let server = server().await;
    server
        .route(Route::read("items").handler(|_ctx| async move { Ok(Some(json!([{"id": 1, "name": "a"}]))) }));
    let client = connect(&server).await;

    let output = client.read("items", ()).await.unwrap();

    assert_eq!(
        output.json::<Vec<Item>>().unwrap(),
        vec![Item {
            id: 1,
            name: "a".into()
        }]
    );
    let error = output.json::<Vec<String>>().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Decode);
    assert!(error.to_string().contains("`items`"), "{error}");
}

#[tokio::test(start_paused = true)]
async fn server_errors_keep_code_and_description() {
    let server = server().await;
    server
        .route(
            Route::create("stock")
                .handler(|_ctx| async move { Err(RouteError::new("OUT_OF_STOCK", "none left")) }),
        )
        .route(Route::update("stock").handler(|_ctx| async move { Err(RouteError::description("nocode")) }))
        .route(Route::delete("stock").handler(|_ctx| async move { Err(RouteError::code("GONE")) }));
    let client = connect(&server).await;

    let custom = client.create("stock", json!({"n": 1}), ()).await.unwrap_err();
    let without_code = client.update("stock", json!({"n": 1}), ()).await.unwrap_err();
    let without_description = client.delete("stock", ()).await.unwrap_err();
    let unknown_route = client.read("nope", ()).await.unwrap_err();

    assert_eq!(custom.kind(), ErrorKind::Server);
    assert_eq!(custom.code().unwrap().as_str(), "OUT_OF_STOCK");
    assert_eq!(custom.description(), Some("none left"));
    assert_eq!(without_code.code().unwrap().as_str(), "none");
    assert_eq!(without_code.description(), Some("nocode"));
    assert_eq!(without_description.description(), Some("none"));
    assert_eq!(unknown_route.code().unwrap().as_str(), "INVALID_ROUTE");
    assert_eq!(unknown_route.route(), Some("nope"));
}

#[tokio::test(start_paused = true)]
async fn timeout_differs_from_no_connection() {
    let server = server().await;
    server.route(Route::read("silent").handler(|_ctx| async move { Err(RouteError::no_answer()) }));
    let client = connect(&server).await;

    let started = tokio::time::Instant::now();
    let timeout = client.read("silent", ()).await.unwrap_err();
    assert_eq!(timeout.kind(), ErrorKind::Timeout);
    assert_eq!(started.elapsed(), Duration::from_secs(7));

    drop(server);
    let mut watch = client.status_watch();
    tokio::time::timeout(WAIT, watch.wait_for(|status| !status.is_connected()))
        .await
        .unwrap()
        .unwrap();
    let offline = client.read("silent", ()).await.unwrap_err();
    assert_eq!(offline.kind(), ErrorKind::NoConnection);
}

#[tokio::test(start_paused = true)]
async fn request_timeout_override_applies() {
    let server = server().await;
    server.route(Route::read("silent").handler(|_ctx| async move { Err(RouteError::no_answer()) }));
    let client = AsklessClient::builder(server.url())
        .request_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap();

    let started = tokio::time::Instant::now();
    let error = client.read("silent", ()).await.unwrap_err();

    assert_eq!(error.timeout(), Some(Duration::from_secs(2)));
    assert_eq!(started.elapsed(), Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn timeout_shorter_than_ping_interval_is_on_time() {
    // The connection task sleeps until its next ping (1 s here), and a caller writes its own
    // request without waking it: the caller must wake it for an earlier deadline.
    let server = server().await;
    server.route(Route::read("silent").handler(|_ctx| async move { Err(RouteError::no_answer()) }));
    let client = AsklessClient::builder(server.url())
        .request_timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    // No receipt either, so no frame wakes the task before the deadline.
    server.faults().withhold_receipts(true);

    for _ in 0..3 {
        let started = tokio::time::Instant::now();
        let error = client.read("silent", ()).await.unwrap_err();

        assert_eq!(error.kind(), ErrorKind::Timeout, "{error}");
        assert_eq!(started.elapsed(), Duration::from_millis(300));
    }
}

#[tokio::test(start_paused = true)]
async fn resend_without_receipt_runs_once() {
    let server = server().await;
    let runs = Arc::new(AtomicUsize::new(0));
    server.route(Route::create("orders").handler({
        let runs = Arc::clone(&runs);
        move |_ctx| {
            runs.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(Duration::from_secs(6)).await;
                Ok(Some(json!({"id": 1})))
            }
        }
    }));
    let client = connect(&server).await;
    server.faults().withhold_receipts(true);

    let output = client
        .create_with("orders", json!({"n": 1}), (), RequestOptions::never_timeout())
        .await
        .unwrap();

    assert_eq!(output.value(), Some(&json!({"id": 1})));
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the server ran the create once");
    let sends = server
        .received_frames()
        .iter()
        .filter(|frame| frame.route().as_deref() == Some("orders"))
        .count();
    assert!(sends >= 2, "the create was sent {sends} times");
    let ids: std::collections::HashSet<String> = server
        .received_frames()
        .iter()
        .filter_map(|frame| frame.client_message())
        .filter_map(|message| match message {
            ClientMessage::Modify(modify) => Some(modify.client_request_id.as_str().to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 1, "every resend reuses the same clientRequestId");
}

#[tokio::test(start_paused = true)]
async fn duplicated_response_confirmed_twice() {
    let server = server().await;
    server.route(Route::read("items").handler(|_ctx| async move { Ok(Some(json!([1]))) }));
    let client = connect(&server).await;
    server.faults().duplicate_frames(usize::MAX);

    let output = client.read("items", ()).await.unwrap();
    let response = server
        .sent_frames()
        .iter()
        .filter_map(|frame| frame.server_message())
        .find_map(|message| match message {
            ServerMessage::Response(response) if response.output == Some(json!([1])) => Some(response),
            _ => None,
        })
        .expect("the response was sent");
    let server_id = response.server_id.as_str().to_owned();
    server
        .wait_until(|server| confirmations_of_handle(server, &server_id) >= 2, WAIT)
        .await
        .unwrap();

    assert_eq!(output.value(), Some(&json!([1])));
    assert_eq!(confirmations_of(&server, &server_id), 2);
    assert!(client.status().is_connected());
}

fn confirmations_of_handle(server: &askless_testkit::ServerHandle, server_id: &str) -> usize {
    server
        .received_frames()
        .iter()
        .filter_map(|frame| frame.client_message())
        .filter(|message| {
            matches!(message, ClientMessage::ConfirmReceipt(confirm)
                if confirm.server_id.as_ref().map(|id| id.as_str()) == Some(server_id))
        })
        .count()
}

#[tokio::test(start_paused = true)]
async fn half_open_connection_is_replaced() {
    let server = server().await;
    server.route(Route::read("items").handler(|_ctx| async move { Ok(Some(json!([1]))) }));
    let client = connect(&server).await;
    let mut statuses = client.status_stream(StatusStreamOptions::default());

    server.faults().half_open(true);
    let started = tokio::time::Instant::now();
    let disconnected = next_status(&mut statuses).await;
    let silent_for = started.elapsed();
    server.faults().half_open(false);

    assert!(
        matches!(
            disconnected.disconnection_reason(),
            Some(DisconnectionReason::ServerSilent { .. })
        ),
        "{disconnected:?}"
    );
    assert!(
        silent_for <= Duration::from_secs(7),
        "detected after {silent_for:?}"
    );
    let mut watch = client.status_watch();
    tokio::time::timeout(WAIT, watch.wait_for(ConnectionStatus::is_connected))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.read("items", ()).await.unwrap().value(), Some(&json!([1])));
}

#[tokio::test(start_paused = true)]
async fn server_restart_is_recovered() {
    let server = server().await;
    server.route(Route::read("items").handler(|_ctx| async move { Ok(Some(json!([1]))) }));
    let client = connect(&server).await;
    let mut statuses = client.status_stream(StatusStreamOptions::default());

    server.restart().await;

    assert!(matches!(
        next_status(&mut statuses).await,
        ConnectionStatus::Disconnected { .. }
    ));
    let mut watch = client.status_watch();
    tokio::time::timeout(WAIT, watch.wait_for(ConnectionStatus::is_connected))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.read("items", ()).await.unwrap().value(), Some(&json!([1])));
    let configures = server
        .received_frames()
        .iter()
        .filter_map(|frame| frame.client_message())
        .filter_map(|message| match message {
            ClientMessage::ConfigureConnection(configure) => Some(configure.client_id_internal_app),
            _ => None,
        })
        .collect::<Vec<_>>();
    assert_eq!(configures.len(), 2);
    assert!(
        configures.iter().all(|id| id == client.client_id()),
        "the same client id on every connection"
    );
}

#[tokio::test(start_paused = true)]
async fn requests_made_offline_complete_after_reconnect() {
    let server = server().await;
    server.route(Route::read("items").handler(|ctx| async move { Ok(Some(ctx.params)) }));
    let client = connect(&server).await;
    let mut watch = client.status_watch();

    server.restart().await;
    tokio::time::timeout(WAIT, watch.wait_for(|status| !status.is_connected()))
        .await
        .unwrap()
        .unwrap();
    let requests: Vec<_> = (0..5)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move { client.read("items", json!({"n": n})).await })
        })
        .collect();

    for (n, request) in requests.into_iter().enumerate() {
        let output = request
            .await
            .unwrap()
            .expect("queued read completes after reconnecting");
        assert_eq!(output.value(), Some(&json!({"n": n})));
    }
    let reads: Vec<Value> = server
        .received_frames()
        .iter()
        .filter_map(|frame| frame.client_message())
        .filter_map(|message| match message {
            ClientMessage::Read(read) => Some(read.params),
            _ => None,
        })
        .collect();
    let expected: Vec<Value> = (0..5).map(|n| json!({"n": n})).collect();
    assert_eq!(
        reads, expected,
        "queued requests go out in the order they were made"
    );
}

/// A transport that counts connection attempts.
#[derive(Debug, Default)]
struct CountingTransport {
    inner: WebSocketTransport,
    attempts: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl Transport for CountingTransport {
    async fn connect(&self, url: &Url) -> Result<Connection, TransportError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        self.inner.connect(url).await
    }
}

#[tokio::test(start_paused = true)]
async fn server_down_does_not_hot_loop() {
    let server = server().await;
    let url = server.url();
    drop(server);
    let transport = CountingTransport::default();
    let attempts = Arc::clone(&transport.attempts);
    let client = AsklessClient::builder(url).transport(transport).build().unwrap();

    tokio::time::sleep(Duration::from_secs(60)).await;

    let made = attempts.load(Ordering::SeqCst);
    assert!(made >= 5, "{made} attempts in one minute");
    assert!(made <= 25, "{made} attempts in one minute");
    assert!(matches!(
        client.status(),
        ConnectionStatus::Disconnected { .. } | ConnectionStatus::InProgress
    ));
}

#[tokio::test(start_paused = true)]
async fn exhausted_attempts_fail_pending_requests() {
    let server = server().await;
    let url = server.url();
    drop(server);
    let policy = ReconnectPolicy::default().with_max_attempts(3);
    let client = AsklessClient::builder(url)
        .reconnect_policy(policy)
        .build()
        .unwrap();

    let error = client
        .read_with("items", (), RequestOptions::never_timeout())
        .await
        .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::NoConnection);
    assert_eq!(
        client.status().disconnection_reason(),
        Some(&DisconnectionReason::ReconnectAttemptsExhausted { attempts: 3 })
    );
}

#[tokio::test(start_paused = true)]
async fn connect_fails_when_server_is_down() {
    let server = server().await;
    let url = server.url();
    drop(server);

    let error = AsklessClient::builder(url).connect().await.unwrap_err();

    assert_eq!(error.kind(), ErrorKind::Transport);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_concurrent_requests_match() {
    let server = server().await;
    server.route(Route::read("echo").handler(|ctx| async move { Ok(Some(ctx.params)) }));
    let client = connect(&server).await;

    let requests: Vec<_> = (0..10_000u32)
        .map(|n| {
            let client = client.clone();
            tokio::spawn(async move {
                (
                    n,
                    client
                        .read_with("echo", json!({"n": n}), RequestOptions::never_timeout())
                        .await,
                )
            })
        })
        .collect();

    for request in requests {
        let (n, result) = request.await.unwrap();
        let output = result.unwrap_or_else(|error| panic!("request {n} failed: {error}"));
        assert_eq!(output.value(), Some(&json!({"n": n})));
    }
}

#[tokio::test(start_paused = true)]
async fn close_completes_pending_requests() {
    let server = server().await;
    server.route(Route::read("silent").handler(|_ctx| async move { Err(RouteError::no_answer()) }));
    let client = connect(&server).await;
    let pending = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .read_with("silent", (), RequestOptions::never_timeout())
                .await
        }
    });
    server
        .wait_for_frame(|frame| frame.route().as_deref() == Some("silent"), WAIT)
        .await
        .unwrap();

    client.close().await;

    assert_eq!(pending.await.unwrap().unwrap_err().kind(), ErrorKind::Closed);
    assert_eq!(
        client.status(),
        ConnectionStatus::Disconnected {
            reason: DisconnectionReason::ClientClosed
        }
    );
    server
        .wait_until(|server| server.connection_count() == 0, WAIT)
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn dropping_last_handle_closes_connection() {
    let server = server().await;
    let client = connect(&server).await;
    let watch = client.status_watch();

    drop(client);

    server
        .wait_until(|server| server.connection_count() == 0, WAIT)
        .await
        .unwrap();
    assert_eq!(
        *watch.borrow(),
        ConnectionStatus::Disconnected {
            reason: DisconnectionReason::ClientClosed
        }
    );
}

#[tokio::test(start_paused = true)]
async fn pings_carry_empty_stream_list() {
    let server = server().await;
    let _client = connect(&server).await;

    let ping = server
        .wait_for_frame(
            |frame| matches!(frame.client_message(), Some(ClientMessage::Ping(_))),
            WAIT,
        )
        .await
        .unwrap();

    assert_eq!(ping.json().unwrap()["listeningToRoutes"], json!([]));
}

#[tokio::test(start_paused = true)]
async fn mock_config_timeout_is_used() {
    init_logs();
    let server = MockServer::builder()
        .config(MockConfig::well_behaved())
        .configure(|config| config.request_timeout = Some(Duration::from_secs(3)))
        .start()
        .await;
    server.route(Route::read("silent").handler(|_ctx| async move { Err(RouteError::no_answer()) }));
    let client = connect(&server).await;

    let error = client.read("silent", ()).await.unwrap_err();

    assert_eq!(error.timeout(), Some(Duration::from_secs(3)));
}

/// Plays a server on a real loopback socket that advertises a version window excluding this
/// client, because the mock server always advertises the window of Flutter clients.
#[tokio::test(start_paused = true)]
async fn unsupported_version_over_loopback() {
    init_logs();
    let mut listener = askless_transport::WebSocketListener::bind("127.0.0.1:0")
        .await
        .unwrap();
    let url = format!("ws://{}", listener.local_addr());
    let client = AsklessClient::builder(url).build().unwrap();
    let mut socket = listener.accept().await.unwrap();
    socket.send("welcome").await.unwrap();
    let configure = match askless_protocol::decode_client_frame(&socket.recv().await.unwrap()).unwrap() {
        ClientMessage::ConfigureConnection(configure) => configure,
        other => panic!("expected a configure request, got {other:?}"),
    };
    let config = askless_protocol::ConnectionConfiguration {
        client_version_code_supported: askless_protocol::ClientVersionCodeSupported::JAVASCRIPT,
        ..askless_protocol::ConnectionConfiguration::server_defaults()
    };
    let response = askless_protocol::Response::configure_connection(
        configure.client_request_id,
        askless_protocol::ServerId::new("RES-version0001"),
        &config,
    );
    socket
        .send(ServerMessage::Response(response).encode())
        .await
        .unwrap();

    let mut watch = client.status_watch();
    let status = tokio::time::timeout(
        WAIT,
        watch.wait_for(|status| !matches!(status, ConnectionStatus::InProgress)),
    )
    .await
    .unwrap()
    .unwrap()
    .clone();
    assert!(
        matches!(
            status.disconnection_reason(),
            Some(DisconnectionReason::UnsupportedVersionCode { .. })
        ),
        "{status:?}"
    );
    loop {
        match socket.recv().await {
            Ok(_) => continue,
            Err(error) => {
                assert_eq!(error.close_code(), Some(1000));
                break;
            }
        }
    }
    let again = tokio::time::timeout(Duration::from_secs(120), listener.accept()).await;
    assert!(again.is_err(), "the client reconnected by itself");
    assert_eq!(
        client.read("items", ()).await.unwrap_err().kind(),
        ErrorKind::UnsupportedVersion
    );
}

#[tokio::test(start_paused = true)]
async fn mock_version_window_stops_reconnecting() {
    init_logs();
    let server = MockServer::builder()
        .well_behaved()
        .configure(|config| {
            config.record_cleanup_tick = None;
            config.client_version_window = Some(askless_protocol::ClientVersionCodeSupported {
                less_than_or_equal: None,
                more_than_or_equal: Some(askless_protocol::CLIENT_VERSION_CODE + 1),
            });
        })
        .start()
        .await;

    let error = AsklessClient::builder(server.url())
        .connect()
        .await
        .expect_err("a server that needs a newer client is refused");
    assert_eq!(error.kind(), ErrorKind::UnsupportedVersion);

    tokio::time::sleep(Duration::from_secs(120)).await;
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
    assert_eq!(configures, 1, "the client configured again by itself");
}

#[tokio::test(start_paused = true)]
async fn read_lost_in_reconnect_completes() {
    let server = server().await;
    server.route(Route::read("items").handler(|_ctx| async move { Ok(Some(json!([1]))) }));
    let client = connect(&server).await;
    server.faults().delay_responses(Some(Duration::from_secs(30)));

    let read = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .read_with("items", (), RequestOptions::never_timeout())
                .await
        }
    });
    server
        .wait_for_frame(|frame| frame.route().as_deref() == Some("items"), WAIT)
        .await
        .unwrap();
    server.faults().drop_connections();
    server.faults().delay_responses(None);

    let output = tokio::time::timeout(WAIT, read)
        .await
        .expect("the read completes")
        .unwrap()
        .unwrap();
    assert_eq!(output.value(), Some(&json!([1])));
    let ids: std::collections::HashSet<String> = server
        .received_frames()
        .iter()
        .filter_map(|frame| frame.client_message())
        .filter_map(|message| match message {
            ClientMessage::Read(read) => Some(read.client_request_id.as_str().to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 2, "the read went out again with a new id");
}

#[tokio::test(start_paused = true)]
async fn create_lost_in_reconnect_runs_once() {
    let server = server().await;
    let runs = Arc::new(AtomicUsize::new(0));
    server.route(Route::create("orders").handler({
        let runs = Arc::clone(&runs);
        move |_ctx| {
            runs.fetch_add(1, Ordering::SeqCst);
            async move { Ok(Some(json!({"id": 1}))) }
        }
    }));
    let client = connect(&server).await;
    server.faults().delay_responses(Some(Duration::from_secs(30)));

    let create = tokio::spawn({
        let client = client.clone();
        async move { client.create("orders", json!({"n": 1}), ()).await }
    });
    server
        .wait_for_frame(|frame| frame.route().as_deref() == Some("orders"), WAIT)
        .await
        .unwrap();
    server.faults().drop_connections();
    server.faults().delay_responses(None);

    let error = tokio::time::timeout(WAIT, create)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "the create ran once");
}

#[tokio::test(start_paused = true)]
async fn reconnect_keeps_retry_budget() {
    let server = server().await;
    let transport = CountingTransport::default();
    let attempts = Arc::clone(&transport.attempts);
    let policy = ReconnectPolicy::default().with_max_attempts(1);
    let client = AsklessClient::builder(server.url())
        .transport(transport)
        .reconnect_policy(policy)
        .connect()
        .await
        .unwrap();
    drop(server);
    let mut watch = client.status_watch();
    tokio::time::timeout(WAIT, watch.wait_for(|status| !status.is_connected()))
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(
        WAIT,
        watch.wait_for(|status| {
            matches!(
                status.disconnection_reason(),
                Some(DisconnectionReason::ReconnectAttemptsExhausted { .. })
            )
        }),
    )
    .await
    .unwrap()
    .unwrap();
    let before = attempts.load(Ordering::SeqCst);

    client.reconnect().await.unwrap();
    tokio::time::timeout(
        WAIT,
        watch.wait_for(|status| {
            matches!(
                status.disconnection_reason(),
                Some(DisconnectionReason::ReconnectAttemptsExhausted { .. })
            )
        }),
    )
    .await
    .unwrap()
    .unwrap();

    assert_eq!(
        attempts.load(Ordering::SeqCst) - before,
        2,
        "the reconnect attempt, then one retry"
    );
}
