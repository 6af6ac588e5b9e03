//! WebSocket client and listener over loopback.

use std::time::{Duration, Instant};

use askless_transport::{
    ErrorKind, ListenerOptions, Transport, TransportError, WebSocketListener, WebSocketOptions,
    WebSocketTransport,
};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use url::Url;

/// Upper bound for waits that should finish quickly, so a hang fails the test.
const GENEROUS: Duration = Duration::from_secs(10);

fn ws_url(addr: std::net::SocketAddr, path: &str) -> Url {
    Url::parse(&format!("ws://{addr}{path}")).unwrap()
}

async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(GENEROUS, future)
        .await
        .expect("operation did not finish within 10 s")
}

/// Binds a listener and connects one default client to it.
async fn connected_pair(
    options: WebSocketOptions,
) -> (
    askless_transport::Connection,
    askless_transport::Connection,
    WebSocketListener,
) {
    let mut listener = WebSocketListener::bind("127.0.0.1:0").await.unwrap();
    let transport = WebSocketTransport::new(options);
    let url = ws_url(listener.local_addr(), "/");
    let client = within(transport.connect(&url)).await.unwrap();
    let server = within(listener.accept()).await.unwrap();
    (client, server, listener)
}

/// Accepts one raw tokio-tungstenite connection, for frames the listener never sends.
async fn raw_server() -> (TcpListener, Url) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = ws_url(listener.local_addr().unwrap(), "/");
    (listener, url)
}

#[tokio::test]
async fn ws_round_trip() {
    let (mut client, mut server, _listener) = connected_pair(WebSocketOptions::default()).await;

    within(client.send("hello from client")).await.unwrap();
    let received = within(server.recv()).await.unwrap();
    within(server.send("hello from server")).await.unwrap();
    let answer = within(client.recv()).await.unwrap();

    assert_eq!(received, "hello from client");
    assert_eq!(answer, "hello from server");
    assert!(client.info().peer_addr.is_some());
    assert_eq!(server.info().request_path.as_deref(), Some("/"));
}

#[tokio::test]
async fn listener_accepts_any_path() {
    let mut listener = WebSocketListener::bind("127.0.0.1:0").await.unwrap();
    let transport = WebSocketTransport::default();
    let url = ws_url(listener.local_addr(), "/some/deep/path?token=abc");

    let _client = within(transport.connect(&url)).await.unwrap();
    let server = within(listener.accept()).await.unwrap();

    assert_eq!(server.info().request_path.as_deref(), Some("/some/deep/path"));
}

#[tokio::test]
async fn split_halves_work_from_different_tasks() {
    let (client, mut server, _listener) = connected_pair(WebSocketOptions::default()).await;
    let (mut sender, mut receiver) = client.into_split();

    let reader = tokio::spawn(async move { receiver.recv().await });
    let writer = tokio::spawn(async move { sender.send("from writer task".to_owned()).await });
    within(writer).await.unwrap().unwrap();
    let received = within(server.recv()).await.unwrap();
    within(server.send("to reader task")).await.unwrap();

    assert_eq!(received, "from writer task");
    assert_eq!(within(reader).await.unwrap().unwrap(), "to reader task");
}

#[tokio::test]
async fn peer_close_reports_code_and_reason() {
    let (mut client, mut server, _listener) = connected_pair(WebSocketOptions::default()).await;

    within(server.close(4001, "server going away")).await.unwrap();
    let error = within(client.recv()).await.unwrap_err();

    assert_eq!(error.kind(), ErrorKind::ClosedByPeer);
    assert_eq!(error.close_code(), Some(4001));
    assert_eq!(error.close_reason(), Some("server going away"));
    let again = within(client.recv()).await.unwrap_err();
    assert_eq!(again.close_code(), Some(4001));
}

#[tokio::test]
async fn client_close_is_acknowledged() {
    let (mut client, mut server, _listener) = connected_pair(WebSocketOptions::default()).await;

    within(client.close(1000, "bye")).await.unwrap();
    let server_side = within(server.recv()).await.unwrap_err();
    let client_side = within(client.recv()).await.unwrap_err();
    let send_after_close = within(client.send("late")).await.unwrap_err();

    assert_eq!(server_side.close_code(), Some(1000));
    assert_eq!(server_side.close_reason(), Some("bye"));
    assert_eq!(client_side.kind(), ErrorKind::ClosedByPeer);
    assert_eq!(client_side.close_code(), Some(1000));
    assert_eq!(send_after_close.kind(), ErrorKind::AlreadyClosed);
}

#[tokio::test]
async fn abort_is_abnormal_closure() {
    let (mut client, server, _listener) = connected_pair(WebSocketOptions::default()).await;

    server.abort();
    let error = within(client.recv()).await.unwrap_err();

    assert_eq!(error.kind(), ErrorKind::ClosedAbnormally);
    assert_eq!(error.close_code(), Some(1006));
    assert!(error.is_retryable());
}

#[tokio::test]
async fn oversized_incoming_message_is_size_error() {
    let options = WebSocketOptions::default()
        .with_max_message_size(1024)
        .with_max_frame_size(1024);
    let (mut client, mut server, _listener) = connected_pair(options).await;

    within(server.send("x".repeat(4096))).await.unwrap();
    let error = within(client.recv()).await.unwrap_err();

    assert_eq!(error.kind(), ErrorKind::MessageTooLarge);
    match error {
        TransportError::MessageTooLarge {
            direction,
            size,
            limit,
        } => {
            assert_eq!(direction, askless_transport::Direction::Incoming);
            assert_eq!(size, 4096);
            assert_eq!(limit, 1024);
        }
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
}

#[tokio::test]
async fn oversized_outgoing_message_is_rejected_before_sending() {
    let options = WebSocketOptions::default().with_max_message_size(1024);
    let (mut client, mut server, _listener) = connected_pair(options).await;

    let error = within(client.send("y".repeat(2048))).await.unwrap_err();
    within(client.send("small")).await.unwrap();

    assert_eq!(error.kind(), ErrorKind::MessageTooLarge);
    assert!(error.to_string().contains("2048"));
    assert_eq!(within(server.recv()).await.unwrap(), "small");
}

#[tokio::test]
async fn listener_enforces_its_own_limit() {
    let options = ListenerOptions::default()
        .with_max_message_size(512)
        .with_max_frame_size(512);
    let mut listener = WebSocketListener::bind_with_options("127.0.0.1:0", options)
        .await
        .unwrap();
    let transport = WebSocketTransport::default();
    let mut client = within(transport.connect(&ws_url(listener.local_addr(), "/")))
        .await
        .unwrap();
    let mut server = within(listener.accept()).await.unwrap();

    within(client.send("z".repeat(1000))).await.unwrap();
    let error = within(server.recv()).await.unwrap_err();

    assert_eq!(error.kind(), ErrorKind::MessageTooLarge);
}

#[test]
fn listener_default_limit_is_at_least_100_mib() {
    let options = ListenerOptions::default();

    assert!(options.max_message_size >= 100 * 1024 * 1024);
    assert!(options.max_frame_size >= 100 * 1024 * 1024);
}

#[tokio::test]
async fn binary_utf8_arrives_as_text() {
    let (listener, url) = raw_server().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
        socket
            .send(Message::binary("héllo as binary".as_bytes().to_vec()))
            .await
            .unwrap();
        socket
            .send(Message::binary(vec![0xff, 0xfe, 0x00]))
            .await
            .unwrap();
        socket
    });
    let transport = WebSocketTransport::default();

    let mut client = within(transport.connect(&url)).await.unwrap();
    let text = within(client.recv()).await.unwrap();
    let invalid = within(client.recv()).await.unwrap_err();

    assert_eq!(text, "héllo as binary");
    assert_eq!(invalid.kind(), ErrorKind::InvalidUtf8);
    drop(within(server).await.unwrap());
}

#[tokio::test]
async fn ping_is_answered_and_not_returned() {
    let (listener, url) = raw_server().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
        socket
            .send(Message::Ping(b"are you there".to_vec().into()))
            .await
            .unwrap();
        socket.send(Message::text("after ping")).await.unwrap();
        loop {
            match socket.next().await {
                Some(Ok(Message::Pong(payload))) => return payload.to_vec(),
                Some(Ok(_)) => continue,
                other => panic!("expected a pong, got {other:?}"),
            }
        }
    });
    let transport = WebSocketTransport::default();

    let mut client = within(transport.connect(&url)).await.unwrap();
    let text = within(client.recv()).await.unwrap();
    let receive_more = tokio::spawn(async move { client.recv().await });
    let pong = within(server).await.unwrap();

    assert_eq!(text, "after ping");
    assert_eq!(pong, b"are you there");
    receive_more.abort();
}

#[tokio::test]
async fn extra_headers_reach_the_server() {
    let (listener, url) = raw_server().await;
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut seen = None;
        // The error type is fixed by tungstenite's handshake callback trait.
        #[allow(clippy::result_large_err)]
        let callback = |request: &tokio_tungstenite::tungstenite::handshake::server::Request, response| {
            seen = Some(request.headers().clone());
            Ok(response)
        };
        let _socket = tokio_tungstenite::accept_hdr_async(tcp, callback).await.unwrap();
        seen.unwrap()
    });
    let options = WebSocketOptions::default()
        .header("x-client".parse().unwrap(), "askless-rs".parse().unwrap())
        .sensitive_header("x-token".parse().unwrap(), "secret-token".parse().unwrap());
    let url_with_user = Url::parse(&url.as_str().replace("ws://", "ws://alice:pw@")).unwrap();

    let _client = within(WebSocketTransport::new(options).connect(&url_with_user))
        .await
        .unwrap();
    let headers = within(server).await.unwrap();

    assert_eq!(headers.get("x-client").unwrap(), "askless-rs");
    assert_eq!(headers.get("x-token").unwrap(), "secret-token");
    assert!(headers.get("authorization").is_none());
}

#[tokio::test]
async fn upgrade_rejection_reports_status() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = ws_url(listener.local_addr().unwrap(), "/missing");
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buffer = [0u8; 2048];
        let _ = tcp.read(&mut buffer).await.unwrap();
        let response = "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
        tcp.write_all(response.as_bytes()).await.unwrap();
        tcp
    });

    let error = within(WebSocketTransport::default().connect(&url))
        .await
        .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::UpgradeRejected);
    assert!(error.to_string().contains("404"));
    assert!(!error.is_retryable());
    drop(within(server).await.unwrap());
}

#[tokio::test]
async fn closed_port_is_connection_refused() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = ws_url(listener.local_addr().unwrap(), "/");
    drop(listener);
    let options = WebSocketOptions::default().with_connect_timeout(GENEROUS);

    let error = within(WebSocketTransport::new(options).connect(&url))
        .await
        .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
    assert!(error.is_retryable());
}

#[tokio::test]
async fn silent_server_is_connect_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = ws_url(listener.local_addr().unwrap(), "/");
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        // Hold the connection open without ever responding to the upgrade.
        tokio::time::sleep(GENEROUS).await;
        drop(tcp);
    });
    let timeout = Duration::from_millis(200);
    let options = WebSocketOptions::default().with_connect_timeout(timeout);

    let started = Instant::now();
    let error = within(WebSocketTransport::new(options).connect(&url))
        .await
        .unwrap_err();
    let elapsed = started.elapsed();

    assert_eq!(error.kind(), ErrorKind::ConnectTimeout);
    assert!(
        elapsed >= timeout,
        "returned after {elapsed:?}, before the timeout"
    );
    assert!(elapsed < GENEROUS, "took {elapsed:?}");
    server.abort();
}

#[tokio::test]
async fn listener_survives_idle_probe() {
    let options = ListenerOptions::default().with_handshake_timeout(Duration::from_millis(300));
    let mut listener = WebSocketListener::bind_with_options("127.0.0.1:0", options)
        .await
        .unwrap();
    let addr = listener.local_addr();
    let idle_probe = tokio::net::TcpStream::connect(addr).await.unwrap();

    let transport = WebSocketTransport::default();
    let mut client = within(transport.connect(&ws_url(addr, "/"))).await.unwrap();
    let mut server = within(listener.accept()).await.unwrap();
    within(client.send("served despite probe")).await.unwrap();

    assert_eq!(within(server.recv()).await.unwrap(), "served despite probe");
    let mut probe = idle_probe;
    let mut buffer = [0u8; 16];
    let read = within(probe.read(&mut buffer)).await;
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "idle probe should be dropped after the handshake timeout"
    );
}

#[tokio::test]
async fn non_websocket_url_is_invalid() {
    let url = Url::parse("http://127.0.0.1:1/").unwrap();

    let error = WebSocketTransport::default().connect(&url).await.unwrap_err();

    assert_eq!(error.kind(), ErrorKind::InvalidUrl);
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn zero_sizes_are_invalid_options() {
    let url = Url::parse("ws://127.0.0.1:1/").unwrap();
    let client_options = WebSocketOptions::default().with_read_buffer_size(0);
    let listener_options = ListenerOptions::default().with_max_message_size(0);

    let client_error = WebSocketTransport::new(client_options)
        .connect(&url)
        .await
        .unwrap_err();
    let listener_error = WebSocketListener::bind_with_options("127.0.0.1:0", listener_options)
        .await
        .unwrap_err();

    assert_eq!(client_error.kind(), ErrorKind::InvalidOption);
    assert!(client_error.to_string().contains("read_buffer_size"));
    assert_eq!(listener_error.kind(), ErrorKind::InvalidOption);
}

#[tokio::test]
async fn server_closing_during_upgrade_is_retryable_io() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = ws_url(listener.local_addr().unwrap(), "/");
    let server = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buffer = [0u8; 2048];
        let _ = tcp.read(&mut buffer).await.unwrap();
        drop(tcp);
    });

    let error = within(WebSocketTransport::default().connect(&url))
        .await
        .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::Io, "unexpected error: {error}");
    assert!(error.is_retryable());
    within(server).await.unwrap();
}

#[tokio::test]
async fn bind_to_taken_port_says_in_use() {
    let first = WebSocketListener::bind("127.0.0.1:0").await.unwrap();
    let error = WebSocketListener::bind(first.local_addr())
        .await
        .expect_err("the port is taken");

    assert_eq!(error.kind(), ErrorKind::Io);
    let message = error.to_string();
    assert!(message.contains("binding the listener"), "{message}");
    assert!(message.contains("already in use"), "{message}");
    assert!(!message.contains("reconnect"), "{message}");
}
