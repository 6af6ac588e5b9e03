//! The sending and receiving halves of a WebSocket connection, and the mapping
//! of tungstenite errors to [`TransportError`].

use std::fmt;
use std::io;

use async_trait::async_trait;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::{CapacityError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use super::{BoxedIo, FrameLimits};
use crate::connection::{Connection, ConnectionInfo, FrameReceiver, FrameSender, truncate_close_reason};
use crate::error::{Direction, NO_STATUS_RECEIVED, TransportError};

type Stream = WebSocketStream<BoxedIo>;

/// Splits an upgraded WebSocket stream into a [`Connection`].
pub(crate) fn into_connection(stream: Stream, limits: FrameLimits, info: ConnectionInfo) -> Connection {
    let (sink, stream) = stream.split();
    let peer = info
        .peer_addr
        .map(|addr| addr.to_string())
        .unwrap_or_else(|| "unknown".to_owned());
    let sender = WebSocketSender {
        sink,
        max_message_size: limits.max_message_size,
        peer: peer.clone(),
    };
    let receiver = WebSocketReceiver {
        stream,
        peer,
        end: None,
    };
    Connection::new(Box::new(sender), Box::new(receiver), info)
}

/// The sending half of a WebSocket connection.
struct WebSocketSender {
    sink: SplitSink<Stream, Message>,
    max_message_size: usize,
    peer: String,
}

impl fmt::Debug for WebSocketSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketSender")
            .field("peer", &self.peer)
            .field("max_message_size", &self.max_message_size)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl FrameSender for WebSocketSender {
    async fn send(&mut self, text: String) -> Result<(), TransportError> {
        let size = text.len();
        if size > self.max_message_size {
            return Err(TransportError::MessageTooLarge {
                direction: Direction::Outgoing,
                size,
                limit: self.max_message_size,
            });
        }
        tracing::trace!(peer = %self.peer, len = size, "sending text frame");
        self.sink
            .send(Message::text(text))
            .await
            .map_err(|error| map_ws_error(error, Direction::Outgoing, "sending a frame"))
    }

    async fn close(&mut self, code: u16, reason: &str) -> Result<(), TransportError> {
        let reason = truncate_close_reason(reason);
        tracing::debug!(peer = %self.peer, code, "sending close frame");
        // 1005 never travels on the wire: it is how a peer reports a close frame without status.
        let frame = (code != NO_STATUS_RECEIVED).then(|| CloseFrame {
            code: code.into(),
            reason: reason.to_owned().into(),
        });
        self.sink
            .send(Message::Close(frame))
            .await
            .map_err(|error| map_ws_error(error, Direction::Outgoing, "sending a close frame"))
    }
}

/// Terminal state of a receiving half, kept so that later calls report the same end.
#[derive(Debug, Clone)]
enum End {
    ClosedByPeer { code: u16, reason: String },
    Abnormal,
    Failed,
}

impl End {
    fn to_error(&self) -> TransportError {
        match self {
            End::ClosedByPeer { code, reason } => TransportError::ClosedByPeer {
                code: *code,
                reason: reason.clone(),
            },
            End::Abnormal => TransportError::ClosedAbnormally { source: None },
            End::Failed => TransportError::AlreadyClosed,
        }
    }
}

/// The receiving half of a WebSocket connection.
struct WebSocketReceiver {
    stream: SplitStream<Stream>,
    peer: String,
    end: Option<End>,
}

impl fmt::Debug for WebSocketReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketReceiver")
            .field("peer", &self.peer)
            .field("end", &self.end)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl FrameReceiver for WebSocketReceiver {
    // Cancel safety: the only await is `StreamExt::next` on a tokio-tungstenite
    // stream, which keeps partly read frames in its own buffer. Everything after
    // it runs without awaiting, so a dropped future loses no message.
    async fn recv(&mut self) -> Result<String, TransportError> {
        loop {
            if let Some(end) = &self.end {
                return Err(end.to_error());
            }
            let Some(item) = self.stream.next().await else {
                tracing::debug!(peer = %self.peer, "connection ended without a close frame");
                return Err(self.finish(End::Abnormal));
            };
            let message = match item {
                Ok(message) => message,
                Err(error) => {
                    let error = map_ws_error(error, Direction::Incoming, "receiving a frame");
                    tracing::debug!(peer = %self.peer, %error, "receiving failed");
                    let end = if error.kind() == crate::ErrorKind::ClosedAbnormally {
                        End::Abnormal
                    } else {
                        End::Failed
                    };
                    self.end = Some(end);
                    return Err(error);
                }
            };
            if let Some(result) = self.handle(message) {
                return result;
            }
        }
    }
}

impl WebSocketReceiver {
    /// Turns one message into a result, or `None` for control frames, which are
    /// not returned to the caller.
    fn handle(&mut self, message: Message) -> Option<Result<String, TransportError>> {
        match message {
            Message::Text(text) => {
                tracing::trace!(peer = %self.peer, len = text.len(), "received text frame");
                Some(Ok(text.as_str().to_owned()))
            }
            Message::Binary(bytes) => {
                tracing::trace!(peer = %self.peer, len = bytes.len(), "received binary frame");
                let text = std::str::from_utf8(&bytes).map(str::to_owned).map_err(|source| {
                    TransportError::InvalidUtf8 {
                        len: bytes.len(),
                        source,
                    }
                });
                Some(text)
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {
                tracing::trace!(peer = %self.peer, "handled control frame");
                None
            }
            Message::Close(frame) => {
                let (code, reason) = match frame {
                    Some(frame) => (u16::from(frame.code), frame.reason.as_str().to_owned()),
                    None => (NO_STATUS_RECEIVED, String::new()),
                };
                tracing::debug!(peer = %self.peer, code, "received close frame");
                let error = self.finish(End::ClosedByPeer { code, reason });
                self.flush_close_reply();
                Some(Err(error))
            }
        }
    }

    fn finish(&mut self, end: End) -> TransportError {
        let error = end.to_error();
        self.end = Some(end);
        error
    }

    /// Polls the stream once without waiting, which makes tungstenite write the
    /// close reply it queued. Without this the reply would wait for a later
    /// call, and callers usually stop receiving after a close.
    fn flush_close_reply(&mut self) {
        let _ = self.stream.next().now_or_never();
    }
}

/// Maps a tungstenite error to a [`TransportError`]. Frame and message
/// contents in the error are dropped, so no payload reaches the message.
pub(crate) fn map_ws_error(error: WsError, direction: Direction, operation: &str) -> TransportError {
    match error {
        WsError::ConnectionClosed | WsError::AlreadyClosed => TransportError::AlreadyClosed,
        WsError::Protocol(ProtocolError::SendAfterClosing) => TransportError::AlreadyClosed,
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            TransportError::ClosedAbnormally { source: None }
        }
        WsError::Io(source) if is_connection_lost(&source) => {
            TransportError::ClosedAbnormally { source: Some(source) }
        }
        WsError::Io(source) => TransportError::io(operation, source),
        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            TransportError::MessageTooLarge {
                direction,
                size,
                limit: max_size,
            }
        }
        WsError::Capacity(other) => TransportError::Protocol {
            detail: other.to_string(),
        },
        WsError::WriteBufferFull(_) => TransportError::io(
            operation,
            io::Error::new(io::ErrorKind::WouldBlock, "WebSocket write buffer is full"),
        ),
        WsError::Utf8(detail) => TransportError::Protocol {
            detail: format!("invalid UTF-8 in a text frame: {detail}"),
        },
        WsError::Protocol(other) => TransportError::Protocol {
            detail: other.to_string(),
        },
        other => TransportError::Protocol {
            detail: describe_other(&other),
        },
    }
}

/// Describes errors that only occur during the handshake, without any header
/// values or bodies.
fn describe_other(error: &WsError) -> String {
    match error {
        WsError::Http(response) => format!("unexpected HTTP status {}", response.status()),
        WsError::HttpFormat(_) => "malformed HTTP request or response".to_owned(),
        WsError::Url(url_error) => format!("unusable URL: {url_error}"),
        WsError::Tls(_) => "TLS error".to_owned(),
        WsError::AttackAttempt => "the peer's request looks like an attack".to_owned(),
        _ => "unexpected WebSocket error".to_owned(),
    }
}

fn is_connection_lost(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}
