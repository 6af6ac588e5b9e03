//! The in-memory transport: pairs, listener and close semantics.

use std::time::Duration;

use askless_transport::memory::{self, MemoryTransport};
use askless_transport::{ErrorKind, Transport};
use url::Url;

const GENEROUS: Duration = Duration::from_secs(10);

async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(GENEROUS, future)
        .await
        .expect("operation did not finish within 10 s")
}

fn url() -> Url {
    Url::parse("ws://memory.test/askless").unwrap()
}

#[tokio::test]
async fn pair_round_trip() {
    let (mut left, mut right) = memory::pair();

    within(left.send("to right")).await.unwrap();
    within(right.send("to left")).await.unwrap();

    assert_eq!(within(right.recv()).await.unwrap(), "to right");
    assert_eq!(within(left.recv()).await.unwrap(), "to left");
}

#[tokio::test]
async fn close_reaches_peer_with_code_and_reason() {
    let (mut left, mut right) = memory::pair();

    within(left.close(4000, "test over")).await.unwrap();
    let peer_side = within(right.recv()).await.unwrap_err();
    let acknowledgement = within(left.recv()).await.unwrap_err();

    assert_eq!(peer_side.kind(), ErrorKind::ClosedByPeer);
    assert_eq!(peer_side.close_code(), Some(4000));
    assert_eq!(peer_side.close_reason(), Some("test over"));
    assert_eq!(acknowledgement.close_code(), Some(4000));
}

#[tokio::test]
async fn messages_before_close_are_delivered() {
    let (mut left, mut right) = memory::pair();

    within(left.send("last words")).await.unwrap();
    within(left.close(1000, "")).await.unwrap();

    assert_eq!(within(right.recv()).await.unwrap(), "last words");
    assert_eq!(within(right.recv()).await.unwrap_err().close_code(), Some(1000));
}

#[tokio::test]
async fn send_after_close_fails_on_both_ends() {
    let (mut left, mut right) = memory::pair();

    within(left.close(1000, "done")).await.unwrap();
    let _ = within(right.recv()).await;

    assert_eq!(
        within(left.send("late")).await.unwrap_err().kind(),
        ErrorKind::AlreadyClosed
    );
    assert_eq!(
        within(right.send("late")).await.unwrap_err().kind(),
        ErrorKind::AlreadyClosed
    );
}

#[tokio::test]
async fn drop_without_close_is_abnormal() {
    let (left, mut right) = memory::pair();

    left.abort();
    let error = within(right.recv()).await.unwrap_err();
    let again = within(right.recv()).await.unwrap_err();

    assert_eq!(error.kind(), ErrorKind::ClosedAbnormally);
    assert_eq!(error.close_code(), Some(1006));
    assert_eq!(again.kind(), ErrorKind::ClosedAbnormally);
}

#[tokio::test]
async fn recv_is_cancel_safe() {
    let (mut left, mut right) = memory::pair();

    let cancelled = tokio::time::timeout(Duration::from_millis(20), right.recv()).await;
    within(left.send("after cancel")).await.unwrap();

    assert!(cancelled.is_err());
    assert_eq!(within(right.recv()).await.unwrap(), "after cancel");
}

#[tokio::test]
async fn listener_receives_other_end() {
    let (transport, mut listener) = memory::listener();

    let mut client = within(transport.connect(&url())).await.unwrap();
    let mut server = within(listener.accept()).await.unwrap();
    within(client.send("hello server")).await.unwrap();
    within(server.send("hello client")).await.unwrap();

    assert_eq!(within(server.recv()).await.unwrap(), "hello server");
    assert_eq!(within(client.recv()).await.unwrap(), "hello client");
    assert_eq!(server.info().request_path.as_deref(), Some("/askless"));
    assert!(client.info().url.is_some());
}

#[tokio::test]
async fn transport_works_as_trait_object() {
    let (transport, mut listener) = memory::listener();
    let shared: std::sync::Arc<dyn Transport> = std::sync::Arc::new(transport);

    let _client = within(shared.connect(&url())).await.unwrap();

    assert!(within(listener.accept()).await.is_ok());
}

#[tokio::test]
async fn dropped_listener_refuses_and_new_listener_accepts() {
    let (transport, listener) = memory::listener();
    drop(listener);

    let refused = within(transport.connect(&url())).await.unwrap_err();
    let mut restarted = transport.listen();
    let _client = within(transport.connect(&url())).await.unwrap();

    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
    assert!(refused.is_retryable());
    assert!(within(restarted.accept()).await.is_ok());
}

#[tokio::test]
async fn transport_without_listener_refuses() {
    let transport = MemoryTransport::new();

    let error = within(transport.connect(&url())).await.unwrap_err();

    assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
}
