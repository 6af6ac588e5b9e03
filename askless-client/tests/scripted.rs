//! Narrow tests of the connection task against a scripted peer over the in-memory transport:
//! each test plays the server frame by frame and checks exactly what the client sends.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use askless_client::{AsklessClient, ConnectionStatus, DisconnectionReason, ErrorKind, StatusStreamOptions};
use askless_protocol::{
    ClientMessage, ClientVersionCodeSupported, ConnectionConfiguration, ErrorBody, Response,
    ServerConfirmReceipt, ServerId, ServerMessage, decode_client_frame,
};
use askless_transport::Connection;
use askless_transport::memory::{MemoryListener, MemoryTransport};
use futures::StreamExt;
use serde_json::json;

/// The server end of one in-memory connection.
struct Peer {
    conn: Connection,
}

impl Peer {
    /// Accepts the next connection and sends the greeting.
    async fn accept(listener: &mut MemoryListener) -> Peer {
        let conn = listener.accept().await.expect("client connects");
        let mut peer = Peer { conn };
        peer.conn.send("welcome").await.expect("welcome sent");
        peer
    }

    /// Receives the next client message other than a ping, and responds to pings with `pong`.
    async fn recv(&mut self) -> ClientMessage {
        loop {
            let text = self.conn.recv().await.expect("client frame");
            let message = decode_client_frame(&text).expect("well-formed client frame");
            if !matches!(message, ClientMessage::Ping(_)) {
                return message;
            }
            self.conn.send("pong").await.expect("pong sent");
        }
    }

    /// Returns a server id unique within the test process, as a real server's are.
    fn server_id(&mut self) -> ServerId {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        ServerId::new(format!("RES-test{n:07}"))
    }

    async fn send(&mut self, message: ServerMessage) {
        self.conn.send(message.encode()).await.expect("server frame sent");
    }

    /// Responds to the configure request with a receipt and `config`.
    async fn configure_with(&mut self, config: ConnectionConfiguration) {
        let ClientMessage::ConfigureConnection(request) = self.recv().await else {
            panic!("expected a configure request first");
        };
        assert_eq!(request.client_type.as_deref(), Some("flutter"));
        let receipt = ServerConfirmReceipt {
            client_request_id: request.client_request_id.clone(),
            server_id: self.server_id(),
        };
        self.send(ServerMessage::ServerConfirmReceipt(receipt)).await;
        let server_id = self.server_id();
        let response = Response::configure_connection(request.client_request_id, server_id.clone(), &config);
        self.send(ServerMessage::Response(response)).await;
        let ClientMessage::ConfirmReceipt(confirm) = self.recv().await else {
            panic!("expected the configure response to be confirmed");
        };
        assert_eq!(confirm.server_id, Some(server_id));
    }

    async fn configure(&mut self) {
        self.configure_with(ConnectionConfiguration::server_defaults())
            .await;
    }
}

fn client(transport: &MemoryTransport) -> AsklessClient {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    AsklessClient::builder("ws://127.0.0.1:1/")
        .transport(transport.clone())
        .build()
        .expect("valid client")
}

#[tokio::test(start_paused = true)]
async fn handshake_then_read() {
    let (transport, mut listener) = askless_transport::memory::listener();
    let client = client(&transport);
    let mut statuses = client.status_stream(StatusStreamOptions {
        emit_current_first: true,
    });
    let mut peer = Peer::accept(&mut listener).await;
    peer.configure().await;

    let reader = tokio::spawn({
        let client = client.clone();
        async move { client.read("items", json!({"search": "a"})).await }
    });
    let ClientMessage::Read(read) = peer.recv().await else {
        panic!("expected a read")
    };
    assert_eq!(read.route, "items");
    assert_eq!(read.params, json!({"search": "a"}));
    let server_id = peer.server_id();
    peer.send(ServerMessage::Response(Response::success(
        read.client_request_id,
        server_id.clone(),
        Some(json!([1])),
    )))
    .await;
    let ClientMessage::ConfirmReceipt(confirm) = peer.recv().await else {
        panic!("expected a confirm")
    };

    assert_eq!(confirm.server_id, Some(server_id));
    let output = reader.await.unwrap().expect("read succeeds");
    assert_eq!(output.value(), Some(&json!([1])));
    assert_eq!(statuses.next().await, Some(ConnectionStatus::InProgress));
    assert_eq!(statuses.next().await, Some(ConnectionStatus::Connected));
}

#[tokio::test(start_paused = true)]
async fn repeated_response_confirmed_twice_processed_once() {
    let (transport, mut listener) = askless_transport::memory::listener();
    let client = client(&transport);
    let mut peer = Peer::accept(&mut listener).await;
    peer.configure().await;

    let reader = tokio::spawn({
        let client = client.clone();
        async move { client.delete("items", json!({"id": 1})).await }
    });
    let ClientMessage::Modify(delete) = peer.recv().await else {
        panic!("expected a delete")
    };
    assert_eq!(delete.body, json!({}));
    let server_id = peer.server_id();
    let response = Response::success(delete.client_request_id, server_id.clone(), None);
    peer.send(ServerMessage::Response(response.clone())).await;
    peer.send(ServerMessage::Response(response)).await;

    for _ in 0..2 {
        let ClientMessage::ConfirmReceipt(confirm) = peer.recv().await else {
            panic!("expected a confirm")
        };
        assert_eq!(confirm.server_id.as_ref(), Some(&server_id));
    }
    let output = reader.await.unwrap().expect("delete succeeds");
    assert_eq!(output.value(), None);
}

#[tokio::test(start_paused = true)]
async fn server_error_keeps_code() {
    let (transport, mut listener) = askless_transport::memory::listener();
    let client = client(&transport);
    let mut peer = Peer::accept(&mut listener).await;
    peer.configure().await;

    let creator = tokio::spawn({
        let client = client.clone();
        async move { client.create("items", json!({"name": "b"}), ()).await }
    });
    let ClientMessage::Modify(create) = peer.recv().await else {
        panic!("expected a create")
    };
    let server_id = peer.server_id();
    let body = ErrorBody {
        code: None,
        description: Some("nocode".into()),
    };
    peer.send(ServerMessage::Response(Response::failure(
        create.client_request_id,
        server_id,
        body,
    )))
    .await;

    let error = creator.await.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Server);
    assert_eq!(error.code().unwrap().as_str(), "none");
    assert_eq!(error.description(), Some("nocode"));
}

#[tokio::test(start_paused = true)]
async fn request_resent_until_receipt() {
    let (transport, mut listener) = askless_transport::memory::listener();
    let client = client(&transport);
    let mut peer = Peer::accept(&mut listener).await;
    peer.configure().await;

    let reader = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .read_with("slow", (), askless_client::RequestOptions::never_timeout())
                .await
        }
    });
    let ClientMessage::Read(first) = peer.recv().await else {
        panic!("expected a read")
    };
    let ClientMessage::Read(again) = peer.recv().await else {
        panic!("expected the read again")
    };
    assert_eq!(again.client_request_id, first.client_request_id);
    let receipt = ServerConfirmReceipt {
        client_request_id: first.client_request_id.clone(),
        server_id: peer.server_id(),
    };
    peer.send(ServerMessage::ServerConfirmReceipt(receipt)).await;

    let quiet = tokio::time::timeout(Duration::from_secs(30), peer.recv()).await;
    assert!(quiet.is_err(), "no resend after the receipt, got {quiet:?}");
    let server_id = peer.server_id();
    peer.send(ServerMessage::Response(Response::success(
        first.client_request_id,
        server_id,
        Some(json!(1)),
    )))
    .await;
    assert_eq!(reader.await.unwrap().unwrap().value(), Some(&json!(1)));
}

#[tokio::test(start_paused = true)]
async fn unanswered_request_times_out() {
    let (transport, mut listener) = askless_transport::memory::listener();
    let client = client(&transport);
    let mut peer = Peer::accept(&mut listener).await;
    peer.configure().await;

    let started = tokio::time::Instant::now();
    let reader = tokio::spawn({
        let client = client.clone();
        async move { client.read("silent", ()).await }
    });
    let ClientMessage::Read(read) = peer.recv().await else {
        panic!("expected a read")
    };
    let receipt = ServerConfirmReceipt {
        client_request_id: read.client_request_id,
        server_id: peer.server_id(),
    };
    peer.send(ServerMessage::ServerConfirmReceipt(receipt)).await;
    let pongs = tokio::spawn(async move {
        // Keep the connection alive by responding to every ping.
        loop {
            match peer.conn.recv().await {
                Ok(text) if text.contains("_class_type_pingpong") => {
                    if peer.conn.send("pong").await.is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    });

    let error = reader.await.unwrap().unwrap_err();

    assert_eq!(error.kind(), ErrorKind::Timeout);
    assert_eq!(error.timeout(), Some(Duration::from_secs(7)));
    assert_eq!(started.elapsed(), Duration::from_secs(7));
    assert!(client.status().is_connected());
    pongs.abort();
}

#[tokio::test(start_paused = true)]
async fn request_without_server_fails_no_connection() {
    let transport = MemoryTransport::new();
    let client = client(&transport);

    let error = client.read("items", ()).await.unwrap_err();

    assert_eq!(error.kind(), ErrorKind::NoConnection);
}

#[tokio::test(start_paused = true)]
async fn unsupported_version_stops_reconnecting() {
    let (transport, mut listener) = askless_transport::memory::listener();
    let client = client(&transport);
    let mut peer = Peer::accept(&mut listener).await;
    let config = ConnectionConfiguration {
        client_version_code_supported: ClientVersionCodeSupported::JAVASCRIPT,
        ..ConnectionConfiguration::server_defaults()
    };
    peer.configure_with(config).await;

    let closed = peer.conn.recv().await.unwrap_err();
    assert_eq!(closed.close_code(), Some(1000));
    let mut watch = client.status_watch();
    let status = watch
        .wait_for(|status| !matches!(status, ConnectionStatus::InProgress))
        .await
        .unwrap()
        .clone();
    assert!(
        matches!(
            status.disconnection_reason(),
            Some(DisconnectionReason::UnsupportedVersionCode { server_version, .. }) if server_version == "2.0.3"
        ),
        "{status:?}"
    );
    let again = tokio::time::timeout(Duration::from_secs(120), listener.accept()).await;
    assert!(again.is_err(), "the client reconnected by itself");
    assert_eq!(
        client.read("items", ()).await.unwrap_err().kind(),
        ErrorKind::UnsupportedVersion
    );

    client.reconnect().await.unwrap();
    let mut peer = Peer::accept(&mut listener).await;
    peer.configure().await;
    watch.wait_for(ConnectionStatus::is_connected).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn silent_server_is_replaced() {
    let (transport, mut listener) = askless_transport::memory::listener();
    let client = client(&transport);
    let mut peer = Peer::accept(&mut listener).await;
    peer.configure().await;
    let mut statuses = client.status_stream(StatusStreamOptions::default());

    let started = tokio::time::Instant::now();
    let replacement = listener.accept().await.unwrap();

    assert!(
        started.elapsed() >= Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(7),
        "{:?}",
        started.elapsed()
    );
    let disconnected = statuses.next().await.unwrap();
    assert_eq!(
        disconnected.disconnection_reason(),
        Some(&DisconnectionReason::ServerSilent {
            silence: Duration::from_secs(6)
        })
    );
    assert_eq!(statuses.next().await, Some(ConnectionStatus::InProgress));
    drop(replacement);
    drop(peer);
}

#[tokio::test(start_paused = true)]
async fn same_client_id_on_reconnection() {
    let (transport, mut listener) = askless_transport::memory::listener();
    let client = client(&transport);
    let mut peer = Peer::accept(&mut listener).await;
    let ClientMessage::ConfigureConnection(first) = peer.recv().await else {
        panic!("expected configure")
    };
    drop(peer);

    let mut peer = Peer::accept(&mut listener).await;
    let ClientMessage::ConfigureConnection(second) = peer.recv().await else {
        panic!("expected configure")
    };

    assert_eq!(first.client_id_internal_app, second.client_id_internal_app);
    assert_eq!(&first.client_id_internal_app, client.client_id());
    assert_ne!(
        first.client_request_id, second.client_request_id,
        "a configure request belongs to one socket"
    );
}

#[tokio::test(start_paused = true)]
async fn close_fails_pending_requests() {
    let (transport, mut listener) = askless_transport::memory::listener();
    let client = client(&transport);
    let mut peer = Peer::accept(&mut listener).await;
    peer.configure().await;
    let reader = tokio::spawn({
        let client = client.clone();
        async move { client.read("items", ()).await }
    });
    let ClientMessage::Read(_) = peer.recv().await else {
        panic!("expected a read")
    };

    client.close().await;

    assert_eq!(reader.await.unwrap().unwrap_err().kind(), ErrorKind::Closed);
    let closed = peer.conn.recv().await.unwrap_err();
    assert_eq!(closed.close_code(), Some(1000));
    assert_eq!(
        client.status(),
        ConnectionStatus::Disconnected {
            reason: DisconnectionReason::ClientClosed
        }
    );
    assert_eq!(
        client.read("items", ()).await.unwrap_err().kind(),
        ErrorKind::Closed
    );
}

#[tokio::test(start_paused = true)]
async fn configure_error_disconnects_and_retries() {
    let (transport, mut listener) = askless_transport::memory::listener();
    let client = client(&transport);
    let mut statuses = client.status_stream(StatusStreamOptions::default());
    let mut peer = Peer::accept(&mut listener).await;
    let ClientMessage::ConfigureConnection(request) = peer.recv().await else {
        panic!("expected configure")
    };
    let server_id = peer.server_id();
    let body = ErrorBody::new("INTERNAL_ERROR", "An internal error occurred");
    peer.send(ServerMessage::Response(Response::failure(
        request.client_request_id,
        server_id,
        body,
    )))
    .await;

    let disconnected = statuses.next().await.unwrap();
    let started = tokio::time::Instant::now();
    let mut retry = Peer::accept(&mut listener).await;
    retry.configure().await;

    assert_eq!(
        disconnected.disconnection_reason(),
        Some(&DisconnectionReason::ConfigureFailed {
            code: askless_protocol::AsklessErrorCode::InternalError,
            description: "An internal error occurred".into(),
        })
    );
    assert!(
        started.elapsed() <= Duration::from_millis(250),
        "first retry after {:?}",
        started.elapsed()
    );
    let mut watch = client.status_watch();
    watch.wait_for(ConnectionStatus::is_connected).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn missing_greeting_abandons_socket() {
    let (transport, mut listener) = askless_transport::memory::listener();
    let client = client(&transport);
    let mut statuses = client.status_stream(StatusStreamOptions::default());
    let mut silent = listener.accept().await.unwrap();

    let started = tokio::time::Instant::now();
    let closed = silent.recv().await.unwrap_err();
    let waited = started.elapsed();

    assert_eq!(closed.close_code(), Some(1000));
    assert_eq!(waited, Duration::from_secs(10));
    assert_eq!(
        statuses.next().await.unwrap().disconnection_reason(),
        Some(&DisconnectionReason::ServerSilent {
            silence: Duration::from_secs(10)
        })
    );
    let mut retry = Peer::accept(&mut listener).await;
    retry.configure().await;
}

#[tokio::test(start_paused = true)]
async fn reconnect_replaces_healthy_connection() {
    let (transport, mut listener) = askless_transport::memory::listener();
    let client = client(&transport);
    let mut first = Peer::accept(&mut listener).await;
    first.configure().await;
    let mut statuses = client.status_stream(StatusStreamOptions::default());

    client.reconnect().await.unwrap();
    let closed = first.conn.recv().await.unwrap_err();
    let mut second = Peer::accept(&mut listener).await;
    second.configure().await;

    assert_eq!(
        closed.close_code(),
        Some(1000),
        "the old socket closes before the new one opens"
    );
    assert_eq!(
        statuses.next().await,
        Some(ConnectionStatus::Disconnected {
            reason: DisconnectionReason::ReconnectRequested
        })
    );
    assert_eq!(statuses.next().await, Some(ConnectionStatus::InProgress));
    assert_eq!(statuses.next().await, Some(ConnectionStatus::Connected));
}
