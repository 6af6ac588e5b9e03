//! The client against broken and hostile servers, scripted frame by frame on a
//! `WebSocketListener` bound to 127.0.0.1:0.
//!
//! Each test checks that the client does not panic, keeps its memory bounded, reports a typed
//! error or counts the bad input in `AsklessClient::stats`, and still completes a request once the
//! server behaves.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use askless_client::{AsklessClient, ErrorKind, ReconnectPolicy, RequestOptions};
use askless_protocol::{
    ClientMessage, ClientRequestId, ConnectionConfiguration, ListenId, NewDataForListener, Response,
    ServerConfirmReceipt, ServerId, ServerMessage, StopListening, decode_client_frame,
};
use askless_transport::{FrameSender, WebSocketListener, WebSocketOptions, WebSocketTransport};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Maximum virtual wait for anything a test expects to happen.
const WAIT: Duration = Duration::from_secs(60);

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
}

/// Returns a server id unique within the test process, as a real server's are.
fn server_id() -> ServerId {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    ServerId::new(format!("RES-hostile{n:07}"))
}

/// The server end of one WebSocket connection. A reader task drains the client's frames into a
/// channel, so the client never blocks on a full socket while the script sends.
struct Peer {
    sender: Box<dyn FrameSender>,
    frames: mpsc::UnboundedReceiver<String>,
}

impl Peer {
    /// Accepts the next connection without sending anything.
    async fn accept(listener: &mut WebSocketListener) -> Peer {
        let conn = tokio::time::timeout(WAIT, listener.accept())
            .await
            .expect("the client connects in time")
            .expect("the WebSocket handshake succeeds");
        let (sender, mut receiver) = conn.into_split();
        let (tx, frames) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(text) = receiver.recv().await {
                if tx.send(text).is_err() {
                    break;
                }
            }
        });
        Peer { sender, frames }
    }

    async fn send_raw(&mut self, text: impl Into<String>) {
        // The client may have dropped the connection on purpose; the script goes on.
        let _ = self.sender.send(text.into()).await;
    }

    async fn send(&mut self, message: ServerMessage) {
        self.send_raw(message.encode()).await;
    }

    /// Returns the next client message other than a ping (each ping gets a `pong`), or `None` when
    /// the connection ended or nothing came in time.
    async fn next(&mut self) -> Option<ClientMessage> {
        loop {
            let text = tokio::time::timeout(WAIT, self.frames.recv()).await.ok()??;
            let message = decode_client_frame(&text).expect("the client sends well-formed frames");
            if matches!(message, ClientMessage::Ping(_)) {
                self.send_raw("pong").await;
                continue;
            }
            return Some(message);
        }
    }

    /// Returns the next message that is not a confirm-receipt.
    async fn next_request(&mut self) -> Option<ClientMessage> {
        loop {
            let message = self.next().await?;
            if !matches!(message, ClientMessage::ConfirmReceipt(_)) {
                return Some(message);
            }
        }
    }

    /// Sends `welcome` and responds to the configure request.
    async fn handshake(&mut self) {
        self.send_raw("welcome").await;
        let Some(ClientMessage::ConfigureConnection(request)) = self.next_request().await else {
            panic!("expected a configure request first");
        };
        let config = ConnectionConfiguration::server_defaults();
        self.receipt(&request.client_request_id).await;
        let response = Response::configure_connection(request.client_request_id, server_id(), &config);
        self.send(ServerMessage::Response(response)).await;
    }

    async fn receipt(&mut self, id: &ClientRequestId) {
        let receipt = ServerConfirmReceipt {
            client_request_id: id.clone(),
            server_id: server_id(),
        };
        self.send(ServerMessage::ServerConfirmReceipt(receipt)).await;
    }

    /// Waits for a read and answers it with `output`.
    async fn answer_read(&mut self, output: Value) {
        loop {
            match self.next_request().await {
                Some(ClientMessage::Read(read)) => {
                    self.receipt(&read.client_request_id).await;
                    let response = Response::success(read.client_request_id, server_id(), Some(output));
                    self.send(ServerMessage::Response(response)).await;
                    return;
                }
                Some(_) => continue,
                None => panic!("expected a read request"),
            }
        }
    }
}

async fn listener() -> WebSocketListener {
    init_logs();
    WebSocketListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port")
}

fn url(listener: &WebSocketListener) -> String {
    format!("ws://{}/", listener.local_addr())
}

/// Starts a read of route `health` that never times out.
fn spawn_read(
    client: &AsklessClient,
) -> tokio::task::JoinHandle<askless_client::Result<askless_client::Output>> {
    let client = client.clone();
    tokio::spawn(async move {
        client
            .read_with("health", (), RequestOptions::never_timeout())
            .await
    })
}

async fn expect_healthy_read(read: tokio::task::JoinHandle<askless_client::Result<askless_client::Output>>) {
    let output = tokio::time::timeout(WAIT, read)
        .await
        .expect("the read completes in time")
        .expect("the read task does not panic")
        .expect("the read succeeds");
    assert_eq!(output.value(), Some(&json!("up")));
}

#[tokio::test(start_paused = true)]
async fn malformed_frames_counted_and_ignored() {
    let mut listener = listener().await;
    let client = AsklessClient::builder(url(&listener)).build().unwrap();
    let mut peer = Peer::accept(&mut listener).await;
    peer.handshake().await;

    let garbage = [
        "{\"garbled\":",
        "not json at all",
        "",
        "[1, 2, 3]",
        "42",
        "null",
        "{}",
        "{\"_class_type_unknownmarker\": \"_\"}",
        "{\"_class_type_response\": \"_\", \"clientRequestId\": 5}",
        "{\"_class_type_newDataForListener\": \"_\", \"listenId\": []}",
        "\u{0}\u{1}\u{2}",
    ];
    for frame in garbage {
        peer.send_raw(frame).await;
    }
    let read = spawn_read(&client);
    peer.answer_read(json!("up")).await;
    expect_healthy_read(read).await;

    let stats = client.stats();
    assert!(stats.malformed_frames >= 9, "malformed frames counted: {stats:?}");
    assert!(stats.frames_received >= garbage.len() as u64, "{stats:?}");
    assert_eq!(
        stats.connections_opened, 1,
        "garbage does not cost the connection"
    );
}

#[tokio::test(start_paused = true)]
async fn unknown_ids_counted_and_ignored() {
    let mut listener = listener().await;
    let client = AsklessClient::builder(url(&listener)).build().unwrap();
    let mut peer = Peer::accept(&mut listener).await;
    peer.handshake().await;

    let mut rng = rand::rng();
    for _ in 0..5 {
        let stray = Response::success(
            ClientRequestId::generate_request(&mut rng),
            server_id(),
            Some(json!(1)),
        );
        peer.send(ServerMessage::Response(stray)).await;
    }
    for _ in 0..4 {
        let listen_id = ListenId::generate(&mut rng);
        let push = NewDataForListener {
            output: Some(json!("stray")),
            server_id: ServerId::generate_new_data(&mut rng, &listen_id),
            listen_id,
        };
        peer.send(ServerMessage::NewDataForListener(push)).await;
    }
    let listen_id = ListenId::generate(&mut rng);
    let stop = StopListening {
        server_id: ServerId::generate_stop_listening(&mut rng, &listen_id),
        listen_id,
    };
    peer.send(ServerMessage::StopListening(stop)).await;

    let read = spawn_read(&client);
    peer.answer_read(json!("up")).await;
    expect_healthy_read(read).await;

    let stats = client.stats();
    assert_eq!(stats.unmatched_responses, 5, "{stats:?}");
    assert_eq!(stats.unknown_listen_ids, 5, "{stats:?}");
}

#[tokio::test(start_paused = true)]
async fn duplicated_response_counted_once() {
    let mut listener = listener().await;
    let client = AsklessClient::builder(url(&listener)).build().unwrap();
    let mut peer = Peer::accept(&mut listener).await;
    peer.handshake().await;

    let read = spawn_read(&client);
    let Some(ClientMessage::Read(request)) = peer.next_request().await else {
        panic!("expected a read");
    };
    let response = Response::success(request.client_request_id, server_id(), Some(json!("up")));
    for _ in 0..3 {
        peer.send(ServerMessage::Response(response.clone())).await;
    }
    expect_healthy_read(read).await;
    // Let the copies arrive.
    let second = spawn_read(&client);
    peer.answer_read(json!("up")).await;
    expect_healthy_read(second).await;

    assert_eq!(client.stats().duplicates_dropped, 2, "{:?}", client.stats());
}

#[tokio::test(start_paused = true)]
async fn oversized_frame_drops_connection() {
    let mut listener = listener().await;
    let options = WebSocketOptions::default().with_max_message_size(64 * 1024);
    let client = AsklessClient::builder(url(&listener))
        .transport(WebSocketTransport::new(options))
        .build()
        .unwrap();
    let mut peer = Peer::accept(&mut listener).await;
    peer.handshake().await;

    let read = spawn_read(&client);
    peer.send_raw("x".repeat(256 * 1024)).await;

    // The client drops that connection and opens a new one, where the read goes out again.
    let mut second = Peer::accept(&mut listener).await;
    second.handshake().await;
    second.answer_read(json!("up")).await;
    expect_healthy_read(read).await;
    assert_eq!(client.stats().connections_opened, 2);
}

#[tokio::test(start_paused = true)]
async fn push_flood_keeps_latest_value() {
    const PUSHES: usize = 20_000;
    let mut listener = listener().await;
    let client = AsklessClient::builder(url(&listener)).build().unwrap();
    let mut peer = Peer::accept(&mut listener).await;
    peer.handshake().await;

    let stream = tokio::spawn({
        let client = client.clone();
        async move { client.read_stream("ticks", ()).await }
    });
    let Some(ClientMessage::Listen(listen)) = peer.next_request().await else {
        panic!("expected a listen request");
    };
    peer.receipt(&listen.client_request_id).await;
    let response = Response::success(listen.client_request_id.clone(), server_id(), None);
    peer.send(ServerMessage::Response(response)).await;
    let mut stream = stream.await.unwrap().expect("the stream opens");

    // The reader is slower than the server: it reads nothing while the flood arrives.
    let mut rng = rand::rng();
    for n in 0..PUSHES {
        let push = NewDataForListener {
            output: Some(json!(n)),
            server_id: ServerId::generate_new_data(&mut rng, &listen.listen_id),
            listen_id: listen.listen_id.clone(),
        };
        peer.send(ServerMessage::NewDataForListener(push)).await;
    }
    let read = spawn_read(&client);
    peer.answer_read(json!("up")).await;
    expect_healthy_read(read).await;

    let value = tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("a value in time")
        .expect("the stream is open")
        .expect("a value");
    assert_eq!(value, json!(PUSHES - 1), "the buffer keeps the newest value");
    assert_eq!(
        stream.skipped(),
        (PUSHES - 1) as u64,
        "every older value was dropped and counted"
    );
}

#[tokio::test(start_paused = true)]
async fn missing_welcome_times_out() {
    let mut listener = listener().await;
    let connect = tokio::spawn(AsklessClient::builder(url(&listener)).connect());
    let _silent = Peer::accept(&mut listener).await;

    let error = tokio::time::timeout(WAIT, connect)
        .await
        .expect("connect gives up in time")
        .unwrap()
        .expect_err("a server that never greets is not a connection");
    assert_eq!(error.kind(), ErrorKind::NoConnection, "{error}");
}

#[tokio::test(start_paused = true)]
async fn silent_configure_then_healthy_server() {
    let mut listener = listener().await;
    let client = AsklessClient::builder(url(&listener)).build().unwrap();
    let read = spawn_read(&client);

    // Greets, then never answers the configure request.
    let mut silent = Peer::accept(&mut listener).await;
    silent.send_raw("welcome").await;
    assert!(matches!(
        silent.next_request().await,
        Some(ClientMessage::ConfigureConnection(_))
    ));

    let mut healthy = Peer::accept(&mut listener).await;
    healthy.handshake().await;
    healthy.answer_read(json!("up")).await;
    expect_healthy_read(read).await;
    drop(silent);
}

#[tokio::test(start_paused = true)]
async fn server_closing_mid_exchange_then_healthy() {
    let mut listener = listener().await;
    let policy = ReconnectPolicy::default().with_max_delay(Duration::from_secs(2));
    let client = AsklessClient::builder(url(&listener))
        .reconnect_policy(policy)
        .build()
        .unwrap();
    let read = spawn_read(&client);

    // Each connection ends at a later step of the exchange.
    for step in 0..5 {
        let mut peer = Peer::accept(&mut listener).await;
        if step >= 1 {
            peer.send_raw("welcome").await;
        }
        let configure = if step >= 2 {
            peer.next_request().await
        } else {
            None
        };
        if step >= 3 {
            if let Some(ClientMessage::ConfigureConnection(request)) = configure {
                let config = ConnectionConfiguration::server_defaults();
                peer.receipt(&request.client_request_id).await;
                let response =
                    Response::configure_connection(request.client_request_id, server_id(), &config);
                peer.send(ServerMessage::Response(response)).await;
            }
        }
        if step >= 4 {
            if let Some(ClientMessage::Read(request)) = peer.next_request().await {
                peer.receipt(&request.client_request_id).await;
            }
        }
        peer.sender.close(1001, "going away").await.ok();
    }

    let mut healthy = Peer::accept(&mut listener).await;
    healthy.handshake().await;
    healthy.answer_read(json!("up")).await;
    expect_healthy_read(read).await;
    assert!(client.stats().reconnect_attempts >= 5, "{:?}", client.stats());
}

#[tokio::test(start_paused = true)]
async fn pending_limit_rejects_excess() {
    let mut listener = listener().await;
    let client = AsklessClient::builder(url(&listener))
        .max_pending_requests(3)
        .build()
        .unwrap();
    let mut peer = Peer::accept(&mut listener).await;
    peer.handshake().await;

    let held: Vec<_> = (0..3).map(|_| spawn_read(&client)).collect();
    for _ in 0..3 {
        assert!(matches!(peer.next_request().await, Some(ClientMessage::Read(_))));
    }
    let error = client.read("health", ()).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::TooManyPending, "{error}");
    assert!(error.to_string().contains("max_pending_requests"), "{error}");
    assert_eq!(client.stats().requests_rejected, 1);
    for read in held {
        read.abort();
    }
}

#[tokio::test(start_paused = true)]
async fn pushes_before_listen_response_bounded() {
    const PUSHES: usize = 1_000;
    const HELD: usize = 256;
    let mut listener = listener().await;
    let client = AsklessClient::builder(url(&listener)).build().unwrap();
    let mut peer = Peer::accept(&mut listener).await;
    peer.handshake().await;

    let stream = tokio::spawn({
        let client = client.clone();
        async move {
            let options = askless_client::StreamOptions {
                buffer: askless_client::StreamBuffer::Bounded(PUSHES),
                ..Default::default()
            };
            client.read_stream_with("ticks", (), options).await
        }
    });
    let Some(ClientMessage::Listen(listen)) = peer.next_request().await else {
        panic!("expected a listen request");
    };
    // Values for the listener arrive before the server confirms the listen.
    let mut rng = rand::rng();
    for n in 0..PUSHES {
        let push = NewDataForListener {
            output: Some(json!(n)),
            server_id: ServerId::generate_new_data(&mut rng, &listen.listen_id),
            listen_id: listen.listen_id.clone(),
        };
        peer.send(ServerMessage::NewDataForListener(push)).await;
    }
    peer.receipt(&listen.client_request_id).await;
    let response = Response::success(listen.client_request_id.clone(), server_id(), None);
    peer.send(ServerMessage::Response(response)).await;
    let mut stream = stream.await.unwrap().expect("the stream opens");

    let mut values = Vec::new();
    while let Ok(Some(item)) = tokio::time::timeout(Duration::from_secs(1), stream.next()).await {
        values.push(item.expect("a value"));
    }
    assert_eq!(values.len(), HELD, "only the newest held values are kept");
    assert_eq!(values.first(), Some(&json!(PUSHES - HELD)));
    assert_eq!(values.last(), Some(&json!(PUSHES - 1)));
    assert_eq!(client.stats().held_values_dropped, (PUSHES - HELD) as u64);
}

#[tokio::test]
async fn zero_pending_limit_rejected() {
    let error = AsklessClient::builder("ws://127.0.0.1:1/")
        .max_pending_requests(0)
        .build()
        .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::InvalidOption);
    assert!(error.to_string().contains("max_pending_requests"), "{error}");
}
