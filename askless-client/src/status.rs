//! The connection status model: current value, change events, stream and listeners.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use askless_protocol::{AsklessErrorCode, ClientVersionCodeSupported};
use futures::Stream;
use tokio::sync::{broadcast, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;

/// Capacity of the status event channel; a subscriber that falls further behind skips events.
const STATUS_EVENT_CAPACITY: usize = 256;

/// The state of the client's connection to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionStatus {
    /// The connection is configured: requests are sent as soon as they are made.
    Connected,
    /// A connection attempt is running: opening the socket, waiting for the greeting or for the
    /// configure response.
    InProgress,
    /// No usable connection, for the given reason.
    Disconnected {
        /// The cause of the disconnection.
        reason: DisconnectionReason,
    },
}

impl ConnectionStatus {
    /// Returns whether the status is [`ConnectionStatus::Connected`].
    pub fn is_connected(&self) -> bool {
        matches!(self, ConnectionStatus::Connected)
    }

    /// Returns the reason when the status is [`ConnectionStatus::Disconnected`].
    pub fn disconnection_reason(&self) -> Option<&DisconnectionReason> {
        match self {
            ConnectionStatus::Disconnected { reason } => Some(reason),
            _ => None,
        }
    }
}

impl fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectionStatus::Connected => f.write_str("connected"),
            ConnectionStatus::InProgress => f.write_str("connection in progress"),
            ConnectionStatus::Disconnected { reason } => write!(f, "disconnected: {reason}"),
        }
    }
}

/// The cause of a disconnection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectionReason {
    /// The server's window of supported client version codes excludes this client. The client
    /// does not reconnect until [`AsklessClient::reconnect`](crate::AsklessClient::reconnect) is
    /// called.
    UnsupportedVersionCode {
        /// The version the server reported.
        server_version: String,
        /// The version codes the server supports.
        supported: ClientVersionCodeSupported,
    },
    /// The connection was closed by the server or the network.
    Closed {
        /// WebSocket close code: the server's code, 1005 for a close frame without a code, 1006
        /// for a connection lost without a close frame.
        code: Option<u16>,
        /// Close reason sent by the server, empty when none.
        reason: String,
    },
    /// Opening the connection failed.
    ConnectFailed {
        /// The category of the transport error.
        kind: askless_transport::ErrorKind,
        /// The transport error's message (credentials removed by the transport).
        message: String,
    },
    /// Sending on the connection failed.
    SendFailed {
        /// The category of the transport error.
        kind: askless_transport::ErrorKind,
        /// The transport error's message.
        message: String,
    },
    /// The server sent no frame within the limit after the connection opened, or while it was
    /// open.
    ServerSilent {
        /// How long the server was silent.
        silence: Duration,
    },
    /// The server responded to the configure request with an error.
    ConfigureFailed {
        /// The server's error code (`none` when it sent none).
        code: AsklessErrorCode,
        /// The server's description (`none` when it sent none).
        description: String,
    },
    /// The configure response held a configuration the client cannot use.
    InvalidConfiguration {
        /// The problem with the configuration.
        message: String,
    },
    /// The reconnect policy's maximum number of attempts was reached; the client no longer
    /// reconnects until [`AsklessClient::reconnect`](crate::AsklessClient::reconnect) is called.
    ReconnectAttemptsExhausted {
        /// Attempts made since the last successful connection.
        attempts: u32,
    },
    /// The application asked for a reconnection.
    ReconnectRequested,
    /// The client was closed, or every handle to it was dropped.
    ClientClosed,
}

impl DisconnectionReason {
    /// Returns whether the client reconnects by itself after this reason.
    pub fn reconnects_automatically(&self) -> bool {
        !matches!(
            self,
            DisconnectionReason::UnsupportedVersionCode { .. }
                | DisconnectionReason::ReconnectAttemptsExhausted { .. }
                | DisconnectionReason::ClientClosed
        )
    }
}

impl fmt::Display for DisconnectionReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DisconnectionReason::UnsupportedVersionCode {
                server_version,
                supported,
            } => write!(
                f,
                "server version {server_version} supports client version codes {}, this client has {}",
                crate::error::describe_window(supported),
                askless_protocol::CLIENT_VERSION_CODE
            ),
            DisconnectionReason::Closed {
                code: Some(code),
                reason,
            } if !reason.is_empty() => {
                write!(f, "connection closed with code {code} ({reason})")
            }
            DisconnectionReason::Closed { code: Some(code), .. } => {
                write!(f, "connection closed with code {code}")
            }
            DisconnectionReason::Closed { code: None, .. } => f.write_str("connection closed"),
            DisconnectionReason::ConnectFailed { message, .. } => write!(f, "connect failed: {message}"),
            DisconnectionReason::SendFailed { message, .. } => write!(f, "send failed: {message}"),
            DisconnectionReason::ServerSilent { silence } => write!(f, "server silent for {silence:?}"),
            DisconnectionReason::ConfigureFailed { code, description } => {
                write!(f, "configure request failed with code {code}: {description}")
            }
            DisconnectionReason::InvalidConfiguration { message } => {
                write!(f, "invalid connection configuration: {message}")
            }
            DisconnectionReason::ReconnectAttemptsExhausted { attempts } => {
                write!(f, "gave up after {attempts} reconnection attempts")
            }
            DisconnectionReason::ReconnectRequested => f.write_str("reconnection requested"),
            DisconnectionReason::ClientClosed => f.write_str("client closed"),
        }
    }
}

/// Options of [`AsklessClient::status_stream`](crate::AsklessClient::status_stream).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusStreamOptions {
    /// Whether the stream starts with the current status before the first change. Default:
    /// `false`.
    pub emit_current_first: bool,
}

/// Publishes status changes: the current value through a watch channel and every change through
/// a broadcast channel. Owned by the connection task.
#[derive(Debug)]
pub(crate) struct StatusPublisher {
    current: watch::Sender<ConnectionStatus>,
    events: broadcast::Sender<ConnectionStatus>,
}

/// The receiving ends a client handle keeps.
#[derive(Debug)]
pub(crate) struct StatusReceivers {
    pub(crate) current: watch::Receiver<ConnectionStatus>,
    pub(crate) events: broadcast::Receiver<ConnectionStatus>,
}

impl StatusPublisher {
    pub(crate) fn new(initial: ConnectionStatus) -> (Self, StatusReceivers) {
        let (current, current_rx) = watch::channel(initial);
        let (events, events_rx) = broadcast::channel(STATUS_EVENT_CAPACITY);
        (
            StatusPublisher { current, events },
            StatusReceivers {
                current: current_rx,
                events: events_rx,
            },
        )
    }

    /// Sets the status and emits an event when it changed. Returns whether it changed.
    pub(crate) fn set(&self, status: ConnectionStatus) -> bool {
        if *self.current.borrow() == status {
            return false;
        }
        match &status {
            ConnectionStatus::Disconnected { reason } => {
                tracing::info!(%reason, "askless client disconnected")
            }
            ConnectionStatus::Connected => tracing::info!("askless client connected"),
            ConnectionStatus::InProgress => tracing::debug!("askless connection attempt started"),
        }
        self.current.send_replace(status.clone());
        // No subscriber is not an error: events are only for those who subscribed.
        let _ = self.events.send(status);
        true
    }
}

/// A stream of connection status changes, from
/// [`AsklessClient::status_stream`](crate::AsklessClient::status_stream).
///
/// It ends when the client's connection task ends. A subscriber that falls more than 256 events
/// behind skips the oldest ones.
pub struct StatusStream {
    inner: Pin<Box<dyn Stream<Item = ConnectionStatus> + Send>>,
}

impl StatusStream {
    pub(crate) fn new(
        events: broadcast::Receiver<ConnectionStatus>,
        current: Option<ConnectionStatus>,
    ) -> Self {
        let changes = BroadcastStream::new(events).filter_map(|event| event.ok());
        let inner: Pin<Box<dyn Stream<Item = ConnectionStatus> + Send>> = match current {
            Some(current) => Box::pin(tokio_stream::once(current).chain(changes)),
            None => Box::pin(changes),
        };
        StatusStream { inner }
    }
}

impl fmt::Debug for StatusStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatusStream").finish_non_exhaustive()
    }
}

impl Stream for StatusStream {
    type Item = ConnectionStatus;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Keeps a status listener registered; dropping it removes the listener.
///
/// Returned by [`AsklessClient::on_status_change`](crate::AsklessClient::on_status_change).
#[derive(Debug)]
#[must_use = "the listener is removed when the guard is dropped"]
pub struct StatusListenerGuard {
    task: tokio::task::AbortHandle,
}

impl StatusListenerGuard {
    pub(crate) fn new(task: tokio::task::AbortHandle) -> Self {
        StatusListenerGuard { task }
    }
}

impl Drop for StatusListenerGuard {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publisher_emits_only_changes() {
        let (publisher, mut receivers) = StatusPublisher::new(ConnectionStatus::InProgress);

        assert!(!publisher.set(ConnectionStatus::InProgress));
        assert!(publisher.set(ConnectionStatus::Connected));

        assert_eq!(receivers.events.try_recv().unwrap(), ConnectionStatus::Connected);
        assert!(receivers.events.try_recv().is_err());
        assert_eq!(*receivers.current.borrow(), ConnectionStatus::Connected);
    }

    #[test]
    fn terminal_reasons_do_not_reconnect() {
        let unsupported = DisconnectionReason::UnsupportedVersionCode {
            server_version: "2.0.3".into(),
            supported: ClientVersionCodeSupported::JAVASCRIPT,
        };

        assert!(!unsupported.reconnects_automatically());
        assert!(
            DisconnectionReason::Closed {
                code: Some(1006),
                reason: String::new()
            }
            .reconnects_automatically()
        );
    }

    #[test]
    fn reason_display_names_the_close_code() {
        let reason = DisconnectionReason::Closed {
            code: Some(1006),
            reason: String::new(),
        };

        assert_eq!(reason.to_string(), "connection closed with code 1006");
    }
}
