//! Heap cost of idle connections, measured with the dhat allocator.
//!
//! This file holds a single test because dhat allows one profiler per process.

use std::time::Duration;

use askless_transport::rustls::pki_types::PrivatePkcs8KeyDer;
use askless_transport::{
    Connection, ListenerOptions, Transport, WebSocketListener, WebSocketOptions, WebSocketTransport, tls,
};
use url::Url;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

/// Connections opened per measurement, so fixed costs average out.
const CONNECTIONS: usize = 8;

/// Upper bound on the heap that one idle client connection and its server end
/// may use together: 64 KiB each.
const MAX_BYTES_PER_PAIR: usize = 2 * 64 * 1024;

/// Opens a connection, exchanges one message each way, and keeps both ends.
async fn open_pair(
    transport: &WebSocketTransport,
    listener: &mut WebSocketListener,
    url: &Url,
) -> (Connection, Connection) {
    let mut client = transport.connect(url).await.unwrap();
    let mut server = listener.accept().await.unwrap();
    client.send("hello").await.unwrap();
    assert_eq!(server.recv().await.unwrap(), "hello");
    server.send("welcome").await.unwrap();
    assert_eq!(client.recv().await.unwrap(), "welcome");
    (client, server)
}

/// Returns the heap bytes that each idle client and server pair adds.
async fn bytes_per_idle_pair(
    transport: &WebSocketTransport,
    listener: &mut WebSocketListener,
    url: &Url,
) -> usize {
    // One warm-up connection initializes lazy statics, TLS configuration and
    // runtime structures, which later connections do not pay for again.
    let warm_up = open_pair(transport, listener, url).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let before = dhat::HeapStats::get().curr_bytes;

    let mut pairs = Vec::new();
    for _ in 0..CONNECTIONS {
        pairs.push(open_pair(transport, listener, url).await);
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let after = dhat::HeapStats::get().curr_bytes;

    drop(pairs);
    drop(warm_up);
    after.saturating_sub(before) / CONNECTIONS
}

#[tokio::test(flavor = "current_thread")]
async fn idle_connection_memory_stays_small() {
    let _profiler = dhat::Profiler::builder().testing().build();

    let mut plain_listener = WebSocketListener::bind("127.0.0.1:0").await.unwrap();
    let plain_url = Url::parse(&format!("ws://{}/", plain_listener.local_addr())).unwrap();
    let plain = bytes_per_idle_pair(&WebSocketTransport::default(), &mut plain_listener, &plain_url).await;

    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let server_config = tls::server_config(
        vec![certificate.der().clone()],
        PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    )
    .unwrap();
    let tls_options = ListenerOptions::default().with_tls(server_config);
    let mut tls_listener = WebSocketListener::bind_with_options("127.0.0.1:0", tls_options)
        .await
        .unwrap();
    let tls_url = Url::parse(&format!("wss://127.0.0.1:{}/", tls_listener.local_addr().port())).unwrap();
    let tls_transport =
        WebSocketTransport::new(WebSocketOptions::default().add_root_certificate(certificate.der().clone()));
    let secure = bytes_per_idle_pair(&tls_transport, &mut tls_listener, &tls_url).await;

    println!("idle ws:// pair: {plain} bytes, idle wss:// pair: {secure} bytes");
    assert!(plain < MAX_BYTES_PER_PAIR, "idle ws:// pair uses {plain} bytes");
    assert!(
        secure < MAX_BYTES_PER_PAIR,
        "idle wss:// pair uses {secure} bytes"
    );
}
