//! Transports for the Askless client: everything that reads or writes a socket.
//!
//! An Askless connection is a stream of JSON text messages in both directions.
//! This crate carries those messages and nothing else:
//!
//! - [`Transport`] opens a [`Connection`], which sends and receives whole text
//!   messages and ends with a close. The trait is object safe, so a client
//!   stores an `Arc<dyn Transport>` and users can plug in their own.
//! - [`WebSocketTransport`] is the default implementation, on
//!   `tokio-tungstenite`, for ws:// and wss:// (rustls, or `native-tls` behind
//!   the `native-tls` feature). See [`WebSocketOptions`] for its limits.
//! - [`WebSocketListener`] accepts WebSocket connections, for mock servers.
//! - [`memory`] connects two ends in memory, for tests without sockets.
//! - `mock` (behind the `mock` feature) has mockall mocks of the traits.
//!
//! Every failure is a [`TransportError`] whose messages never contain URL
//! user-info or sensitive header values.
//!
//! # Example
//!
//! A round trip between a client and a listener over loopback:
//!
//! ```
//! use askless_transport::{Transport, WebSocketListener, WebSocketTransport};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), askless_transport::TransportError> {
//! let mut listener = WebSocketListener::bind("127.0.0.1:0").await?;
//! let url = url::Url::parse(&format!("ws://{}/", listener.local_addr())).unwrap();
//!
//! let transport = WebSocketTransport::default();
//! let mut client = transport.connect(&url).await?;
//! let mut server = listener.accept().await?;
//!
//! client.send("ping").await?;
//! assert_eq!(server.recv().await?, "ping");
//!
//! server.close(1000, "done").await?;
//! let closed = client.recv().await.unwrap_err();
//! assert_eq!(closed.close_code(), Some(1000));
//! # Ok(())
//! # }
//! ```
//!
//! # Using a connection in a select loop
//!
//! [`FrameReceiver::recv`] is cancel safe, so it can sit in a `tokio::select!`
//! next to a channel of outgoing messages or a timer. [`FrameSender::send`] and
//! [`FrameSender::close`] are not, so await them to completion inside a branch
//! instead of racing them. [`Connection::split`] lends both halves at once:
//!
//! ```
//! use askless_transport::memory;
//! use tokio::sync::mpsc;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let (mut client, mut server) = memory::pair();
//! let (outgoing, mut to_send) = mpsc::channel::<String>(8);
//! outgoing.send("hello".to_owned()).await.unwrap();
//! drop(outgoing);
//!
//! let echo = tokio::spawn(async move {
//!     let text = server.recv().await?;
//!     server.send(text).await?;
//!     server.close(1000, "done").await
//! });
//!
//! let (sender, receiver) = client.split();
//! let mut outgoing_open = true;
//! let end = loop {
//!     tokio::select! {
//!         received = receiver.recv() => match received {
//!             Ok(text) => assert_eq!(text, "hello"),
//!             Err(error) => break error,
//!         },
//!         next = to_send.recv(), if outgoing_open => match next {
//!             Some(text) => sender.send(text).await.unwrap(),
//!             None => outgoing_open = false,
//!         },
//!     }
//! };
//!
//! assert_eq!(end.close_code(), Some(1000));
//! assert!(end.is_retryable());
//! echo.await.unwrap().unwrap();
//! # }
//! ```

pub mod connection;
pub mod error;
pub mod memory;
#[cfg(feature = "mock")]
pub mod mock;
pub mod options;
mod redact;
pub mod tls;
pub mod websocket;

pub use connection::{Connection, ConnectionInfo, FrameReceiver, FrameSender, Transport};
pub use error::{ABNORMAL_CLOSURE, BoxError, Direction, ErrorKind, NO_STATUS_RECEIVED, TransportError};
pub use options::{Header, ListenerOptions, TlsBackend, TlsRoots, WebSocketOptions};
pub use redact::RedactedUrl;
pub use websocket::{WebSocketListener, WebSocketTransport};

/// Re-export of the `http` crate, for [`http::HeaderName`] and
/// [`http::HeaderValue`] in [`WebSocketOptions`].
pub use http;
/// Re-export of `rustls`, for [`rustls::ClientConfig`] and
/// [`rustls::ServerConfig`] in the options.
pub use rustls;
/// Re-export of `url`, for the [`url::Url`] that [`Transport::connect`] takes.
pub use url;
