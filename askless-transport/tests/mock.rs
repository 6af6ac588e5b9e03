//! The mockall mocks behind the `mock` feature.
#![cfg(feature = "mock")]

use std::sync::Arc;

use askless_transport::mock::{MockFrameReceiver, MockFrameSender, MockTransport};
use askless_transport::{Connection, ConnectionInfo, ErrorKind, Transport, TransportError};
use url::Url;

#[tokio::test]
async fn mock_transport_returns_scripted_connection() {
    let mut transport = MockTransport::new();
    transport.expect_connect().times(1).returning(|_| {
        let mut sender = MockFrameSender::new();
        sender.expect_send().returning(|_| Ok(()));
        let mut receiver = MockFrameReceiver::new();
        receiver.expect_recv().returning(|| Ok("scripted".to_owned()));
        Ok(Connection::new(
            Box::new(sender),
            Box::new(receiver),
            ConnectionInfo::default(),
        ))
    });
    let shared: Arc<dyn Transport> = Arc::new(transport);

    let mut connection = shared
        .connect(&Url::parse("ws://mock.test/").unwrap())
        .await
        .unwrap();

    connection.send("anything").await.unwrap();
    assert_eq!(connection.recv().await.unwrap(), "scripted");
}

#[tokio::test]
async fn mock_transport_returns_scripted_error() {
    let mut transport = MockTransport::new();
    transport.expect_connect().returning(|_| {
        Err(TransportError::ConnectionRefused {
            addr: "127.0.0.1:9".to_owned(),
            source: None,
        })
    });

    let error = transport
        .connect(&Url::parse("ws://mock.test/").unwrap())
        .await
        .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
}
