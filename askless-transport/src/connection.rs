//! The transport traits and the connection type they produce.

use std::fmt;
use std::net::SocketAddr;

use async_trait::async_trait;
use url::Url;

use crate::error::TransportError;
use crate::redact::RedactedUrl;

/// A way to open connections that carry Askless text frames.
///
/// # Contract
///
/// - [`Transport::connect`] opens one connection to `url` and returns it once it
///   can carry frames (for WebSocket: after the HTTP upgrade). It applies the
///   options the transport was built with, including its own timeout.
/// - The returned [`Connection`] sends and receives whole text messages, in
///   order, and ends with a close: [`TransportError::ClosedByPeer`] when the peer
///   sent a close frame, [`TransportError::ClosedAbnormally`] when the connection
///   ended without one.
/// - Control traffic such as WebSocket ping and pong is handled by the
///   implementation and never surfaces as a message.
/// - Errors are [`TransportError`] values whose `Display` and `Debug` contain no
///   credentials.
///
/// The trait is object safe: clients store it as `Arc<dyn Transport>`.
///
/// # Cancel safety
///
/// `connect` is cancel safe in the sense that dropping its future drops any
/// half-open socket, so no connection leaks. It is not resumable.
#[async_trait]
pub trait Transport: Send + Sync + fmt::Debug + 'static {
    /// Opens a connection to `url`.
    async fn connect(&self, url: &Url) -> Result<Connection, TransportError>;
}

/// The sending half of a connection.
#[async_trait]
pub trait FrameSender: Send + fmt::Debug {
    /// Sends one text message.
    ///
    /// Returns [`TransportError::MessageTooLarge`] without sending anything when
    /// the text exceeds the transport's maximum message size, and
    /// [`TransportError::AlreadyClosed`] after a close.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: if the future is dropped before it completes, the
    /// message may have been sent in full, in part or not at all. A connection
    /// whose send was cancelled should be closed.
    async fn send(&mut self, text: String) -> Result<(), TransportError>;

    /// Sends a close frame with `code` and `reason` and flushes it.
    ///
    /// The reason is truncated to 123 bytes, at a UTF-8 character boundary,
    /// because a close frame's payload is limited to 125 bytes. Codes that RFC
    /// 6455 reserves for local use (1006, 1015) must not be sent: a WebSocket
    /// peer replaces them with 1002 (protocol error). To make the peer report
    /// 1006, drop the connection with [`Connection::abort`] instead. With
    /// [`NO_STATUS_RECEIVED`](crate::NO_STATUS_RECEIVED) (1005) the WebSocket
    /// transport sends a close frame without status code and reason, which the
    /// peer reports as 1005, as the Askless server does when it deletes a client
    /// record. Calling close
    /// again after a successful close has no further effect. The receiving half
    /// then returns the peer's acknowledgement as
    /// [`TransportError::ClosedByPeer`].
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe, for the same reason as [`FrameSender::send`].
    async fn close(&mut self, code: u16, reason: &str) -> Result<(), TransportError>;
}

/// The receiving half of a connection.
#[async_trait]
pub trait FrameReceiver: Send + fmt::Debug {
    /// Receives the next text message.
    ///
    /// Binary messages that are valid UTF-8 are returned as text, and invalid
    /// ones fail with [`TransportError::InvalidUtf8`], after which the
    /// connection stays usable. The connection ends with
    /// [`TransportError::ClosedByPeer`] or [`TransportError::ClosedAbnormally`],
    /// and later calls return the same close again. After any other error,
    /// such as an incoming [`TransportError::MessageTooLarge`], the connection
    /// is unusable, later calls return [`TransportError::AlreadyClosed`], and
    /// the caller should drop it.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: when the future is dropped before it completes, for example
    /// in a `tokio::select!` branch that lost, no message is lost, and the next
    /// call returns the message that would have been returned.
    async fn recv(&mut self) -> Result<String, TransportError>;
}

/// Facts about a connection that are known when it opens.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// Local socket address, when the transport uses sockets.
    pub local_addr: Option<SocketAddr>,
    /// Peer socket address, when the transport uses sockets.
    pub peer_addr: Option<SocketAddr>,
    /// The URL a client connected to, redacted.
    pub url: Option<RedactedUrl>,
    /// The path of the upgrade request, on the server side. The query is not kept.
    pub request_path: Option<String>,
    /// Whether the connection runs over TLS.
    pub tls: bool,
}

impl fmt::Debug for ConnectionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionInfo")
            .field("local_addr", &self.local_addr)
            .field("peer_addr", &self.peer_addr)
            .field("url", &self.url)
            .field("request_path", &self.request_path)
            .field("tls", &self.tls)
            .finish()
    }
}

/// An open connection: a sending half, a receiving half and what is known about it.
///
/// Use it directly, or call [`Connection::into_split`] to move the halves into
/// different tasks, which may then send and receive at the same time.
///
/// Dropping a connection (or both of its halves) without calling
/// [`FrameSender::close`] ends it without a close frame, so the peer reports
/// an abnormal closure (code 1006). [`Connection::abort`] does this on purpose.
#[derive(Debug)]
pub struct Connection {
    sender: Box<dyn FrameSender>,
    receiver: Box<dyn FrameReceiver>,
    info: ConnectionInfo,
}

impl Connection {
    /// Builds a connection from two halves, for transport implementations and mocks.
    pub fn new(sender: Box<dyn FrameSender>, receiver: Box<dyn FrameReceiver>, info: ConnectionInfo) -> Self {
        Connection {
            sender,
            receiver,
            info,
        }
    }

    /// Returns what is known about the connection.
    pub fn info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// Sends one text message. See [`FrameSender::send`]; not cancel safe.
    pub async fn send(&mut self, text: impl Into<String>) -> Result<(), TransportError> {
        self.sender.send(text.into()).await
    }

    /// Receives the next text message. See [`FrameReceiver::recv`]; cancel safe.
    pub async fn recv(&mut self) -> Result<String, TransportError> {
        self.receiver.recv().await
    }

    /// Sends a close frame. See [`FrameSender::close`]; not cancel safe.
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<(), TransportError> {
        self.sender.close(code, reason).await
    }

    /// Borrows both halves at once, so one `tokio::select!` can send and receive.
    pub fn split(&mut self) -> (&mut dyn FrameSender, &mut dyn FrameReceiver) {
        (self.sender.as_mut(), self.receiver.as_mut())
    }

    /// Splits the connection into halves that can move to different tasks.
    pub fn into_split(self) -> (Box<dyn FrameSender>, Box<dyn FrameReceiver>) {
        (self.sender, self.receiver)
    }

    /// Drops the connection without a close frame. For WebSocket connections this
    /// closes the TCP connection, and the peer reports an abnormal closure (1006).
    pub fn abort(self) {
        tracing::debug!(peer_addr = ?self.info.peer_addr, "aborting connection without a close frame");
        drop(self);
    }
}

/// Truncates a close reason to the 123 bytes that fit in a close frame, at a
/// character boundary.
pub(crate) fn truncate_close_reason(reason: &str) -> &str {
    const MAX_REASON_BYTES: usize = 123;
    if reason.len() <= MAX_REASON_BYTES {
        return reason;
    }
    let mut end = MAX_REASON_BYTES;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// Builds the [`ConnectionInfo`] of a client connection to `url`.
pub(crate) fn client_info(url: &Url) -> ConnectionInfo {
    ConnectionInfo {
        url: Some(RedactedUrl::new(url)),
        tls: url.scheme() == "wss",
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reason_truncates_at_char_boundary() {
        let reason = "é".repeat(100);

        let truncated = truncate_close_reason(&reason);

        assert_eq!(truncated.len(), 122);
        assert!(truncated.chars().all(|c| c == 'é'));
    }

    #[test]
    fn close_reason_keeps_short_text() {
        assert_eq!(truncate_close_reason("bye"), "bye");
    }
}
