//! The error type shared by every transport.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::Duration;

use crate::redact::RedactedUrl;

/// Close code that WebSocket implementations report when a connection ended
/// without a close frame (RFC 6455, section 7.4.1).
pub const ABNORMAL_CLOSURE: u16 = 1006;

/// Close code reported when the peer sent a close frame without a status code
/// (RFC 6455, section 7.4.1).
pub const NO_STATUS_RECEIVED: u16 = 1005;

/// A boxed error used as the cause of TLS failures, which come from rustls or
/// from the platform TLS library.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Direction of a frame or message relative to this end of the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Data received from the peer.
    Incoming,
    /// Data this end tried to send.
    Outgoing,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Direction::Incoming => f.write_str("incoming"),
            Direction::Outgoing => f.write_str("outgoing"),
        }
    }
}

/// An error from connecting, sending, receiving or closing.
///
/// `Display` and `Debug` never contain a URL's user-info, its query string or a
/// header value: URLs are stored as [`RedactedUrl`] and header values are never
/// stored. The underlying cause, when there is one, is available through
/// [`std::error::Error::source`] and is not repeated in the message.
///
/// Use [`TransportError::kind`] to match on the category without fields, and
/// [`TransportError::is_retryable`] to decide whether reconnecting may help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The URL cannot be used to open a connection.
    #[error("invalid WebSocket URL `{url}`: {reason}; use a ws:// or wss:// URL with a host")]
    InvalidUrl {
        /// The URL with user-info and query removed.
        url: RedactedUrl,
        /// Reason the URL is invalid.
        reason: &'static str,
    },

    /// A configured option has a value that cannot be used.
    #[error("invalid transport option `{option}`: {reason}")]
    InvalidOption {
        /// Name of the option.
        option: &'static str,
        /// Reason the value is invalid, and how to fix it.
        reason: String,
        /// The underlying parse or validation error, if any.
        #[source]
        source: Option<BoxError>,
    },

    /// The host name did not resolve to any address.
    #[error("failed to resolve host `{host}`; check the host name and the network connection")]
    Dns {
        /// Host name and port that were looked up.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },

    /// Every resolved address refused the TCP connection.
    #[error("connection refused by {addr}; check that the server is running and listening on that port")]
    ConnectionRefused {
        /// The address (or addresses) that refused.
        addr: String,
        /// The operating system's error, if any.
        #[source]
        source: Option<io::Error>,
    },

    /// DNS, TCP connect, TLS and the HTTP upgrade together took longer than the
    /// connect timeout.
    #[error(
        "connecting to `{url}` timed out after {timeout:?}; check that the server responds, \
         or raise WebSocketOptions::connect_timeout"
    )]
    ConnectTimeout {
        /// The URL with user-info and query removed.
        url: RedactedUrl,
        /// The timeout that expired.
        timeout: Duration,
    },

    /// The server's certificate does not chain to a trusted root.
    #[error(
        "TLS handshake with `{host}` failed: the server certificate is not trusted; \
         add its root certificate to WebSocketOptions or use native roots"
    )]
    TlsUntrustedCertificate {
        /// The TLS server name.
        host: String,
        /// The TLS library's error.
        #[source]
        source: BoxError,
    },

    /// The server's certificate is not valid for the host name in the URL.
    #[error(
        "TLS handshake with `{host}` failed: the server certificate is not valid for this name; \
         connect with a host name that the certificate lists"
    )]
    TlsNameMismatch {
        /// The TLS server name.
        host: String,
        /// The TLS library's error.
        #[source]
        source: BoxError,
    },

    /// Any other TLS failure: handshake, protocol version, expired certificate or
    /// TLS configuration.
    #[error("TLS connection to `{host}` failed; check the server's TLS setup and certificate")]
    Tls {
        /// The TLS server name.
        host: String,
        /// The TLS library's error.
        #[source]
        source: BoxError,
    },

    /// The server responded to the WebSocket upgrade request with a status other than
    /// 101 Switching Protocols.
    #[error(
        "server rejected the WebSocket upgrade of `{url}` with HTTP status {status}; \
         check the URL path, the credentials and the server"
    )]
    UpgradeRejected {
        /// The URL with user-info and query removed.
        url: RedactedUrl,
        /// The HTTP status the server returned.
        status: http::StatusCode,
    },

    /// A frame or message is larger than the configured limit.
    #[error(
        "{direction} message of {size} bytes exceeds the limit of {limit} bytes; \
         raise the maximum message and frame size in the options or send smaller messages"
    )]
    MessageTooLarge {
        /// Whether the data was received or was being sent.
        direction: Direction,
        /// Size of the frame or message in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },

    /// The peer closed the connection with a close frame.
    ///
    /// When this end closed first, this is the peer's acknowledgement of that close.
    #[error("connection closed by peer with code {code}{}", format_reason(reason))]
    ClosedByPeer {
        /// Close code; [`NO_STATUS_RECEIVED`] (1005) when the frame had none.
        code: u16,
        /// Close reason, possibly empty.
        reason: String,
    },

    /// The connection ended without a close frame, for example because the peer
    /// dropped its TCP connection. WebSocket APIs report this as close code
    /// [`ABNORMAL_CLOSURE`] (1006).
    #[error("connection closed abnormally without a close frame (code 1006); reconnect")]
    ClosedAbnormally {
        /// The I/O error that ended the connection, if any.
        #[source]
        source: Option<io::Error>,
    },

    /// A send, close or receive was called after this end already closed or after
    /// the connection failed.
    #[error("connection is already closed; open a new connection")]
    AlreadyClosed,

    /// A binary frame from the peer was not valid UTF-8, so it cannot be read as text.
    #[error("received a binary message of {len} bytes that is not valid UTF-8; the peer must send text")]
    InvalidUtf8 {
        /// Size of the message in bytes.
        len: usize,
        /// The decoding error, with the byte offset where it failed.
        #[source]
        source: std::str::Utf8Error,
    },

    /// The peer broke the WebSocket protocol or the HTTP upgrade.
    #[error("WebSocket protocol error: {detail}; the peer is not a compatible WebSocket endpoint")]
    Protocol {
        /// Description of the violation, without any frame contents.
        detail: String,
    },

    /// An I/O error on the socket.
    #[error("I/O error while {operation}; {}", io_advice(source))]
    Io {
        /// Operation that failed, for example `sending a frame`.
        operation: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
}

/// Returns what to do about an I/O error, from the kind the operating system reported.
fn io_advice(source: &io::Error) -> &'static str {
    match source.kind() {
        io::ErrorKind::AddrInUse => {
            "the address is already in use: stop the program that holds it or choose another port"
        }
        io::ErrorKind::AddrNotAvailable => {
            "the address does not belong to this machine: choose a local address"
        }
        io::ErrorKind::PermissionDenied => {
            "permission denied: choose a port above 1023 or run with the needed privilege"
        }
        _ => "check the network and reconnect",
    }
}

fn format_reason(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(" and reason `{reason}`")
    }
}

/// The category of a [`TransportError`], without its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// See [`TransportError::InvalidUrl`].
    InvalidUrl,
    /// See [`TransportError::InvalidOption`].
    InvalidOption,
    /// See [`TransportError::Dns`].
    Dns,
    /// See [`TransportError::ConnectionRefused`].
    ConnectionRefused,
    /// See [`TransportError::ConnectTimeout`].
    ConnectTimeout,
    /// See [`TransportError::TlsUntrustedCertificate`].
    TlsUntrustedCertificate,
    /// See [`TransportError::TlsNameMismatch`].
    TlsNameMismatch,
    /// See [`TransportError::Tls`].
    Tls,
    /// See [`TransportError::UpgradeRejected`].
    UpgradeRejected,
    /// See [`TransportError::MessageTooLarge`].
    MessageTooLarge,
    /// See [`TransportError::ClosedByPeer`].
    ClosedByPeer,
    /// See [`TransportError::ClosedAbnormally`].
    ClosedAbnormally,
    /// See [`TransportError::AlreadyClosed`].
    AlreadyClosed,
    /// See [`TransportError::InvalidUtf8`].
    InvalidUtf8,
    /// See [`TransportError::Protocol`].
    Protocol,
    /// See [`TransportError::Io`].
    Io,
}

impl TransportError {
    /// Returns the category of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            TransportError::InvalidUrl { .. } => ErrorKind::InvalidUrl,
            TransportError::InvalidOption { .. } => ErrorKind::InvalidOption,
            TransportError::Dns { .. } => ErrorKind::Dns,
            TransportError::ConnectionRefused { .. } => ErrorKind::ConnectionRefused,
            TransportError::ConnectTimeout { .. } => ErrorKind::ConnectTimeout,
            TransportError::TlsUntrustedCertificate { .. } => ErrorKind::TlsUntrustedCertificate,
            TransportError::TlsNameMismatch { .. } => ErrorKind::TlsNameMismatch,
            TransportError::Tls { .. } => ErrorKind::Tls,
            TransportError::UpgradeRejected { .. } => ErrorKind::UpgradeRejected,
            TransportError::MessageTooLarge { .. } => ErrorKind::MessageTooLarge,
            TransportError::ClosedByPeer { .. } => ErrorKind::ClosedByPeer,
            TransportError::ClosedAbnormally { .. } => ErrorKind::ClosedAbnormally,
            TransportError::AlreadyClosed => ErrorKind::AlreadyClosed,
            TransportError::InvalidUtf8 { .. } => ErrorKind::InvalidUtf8,
            TransportError::Protocol { .. } => ErrorKind::Protocol,
            TransportError::Io { .. } => ErrorKind::Io,
        }
    }

    /// Returns whether opening a new connection later may succeed.
    ///
    /// True for DNS failures, refused or timed-out connects, I/O errors, closes
    /// (normal or abnormal) and upgrade rejections with status 408, 429 or 5xx,
    /// because these depend on the network or on the server's state. False for
    /// invalid URLs and options, TLS failures, other upgrade statuses, size limits,
    /// protocol violations and [`TransportError::AlreadyClosed`], which repeat
    /// until the configuration, the server or the calling code changes.
    pub fn is_retryable(&self) -> bool {
        match self {
            TransportError::Dns { .. }
            | TransportError::ConnectionRefused { .. }
            | TransportError::ConnectTimeout { .. }
            | TransportError::ClosedByPeer { .. }
            | TransportError::ClosedAbnormally { .. }
            | TransportError::Io { .. } => true,
            TransportError::UpgradeRejected { status, .. } => {
                status.is_server_error()
                    || *status == http::StatusCode::REQUEST_TIMEOUT
                    || *status == http::StatusCode::TOO_MANY_REQUESTS
            }
            _ => false,
        }
    }

    /// Returns whether this error means the connection is over: closed by the peer,
    /// closed abnormally, or already closed by this end.
    pub fn is_closed(&self) -> bool {
        matches!(
            self,
            TransportError::ClosedByPeer { .. }
                | TransportError::ClosedAbnormally { .. }
                | TransportError::AlreadyClosed
        )
    }

    /// Returns whether this is one of the TLS errors.
    pub fn is_tls(&self) -> bool {
        matches!(
            self,
            TransportError::TlsUntrustedCertificate { .. }
                | TransportError::TlsNameMismatch { .. }
                | TransportError::Tls { .. }
        )
    }

    /// Returns whether the connect timeout expired.
    pub fn is_timeout(&self) -> bool {
        matches!(self, TransportError::ConnectTimeout { .. })
    }

    /// Returns the WebSocket close code: the peer's code for
    /// [`TransportError::ClosedByPeer`], [`ABNORMAL_CLOSURE`] (1006) for
    /// [`TransportError::ClosedAbnormally`], and `None` otherwise.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            TransportError::ClosedByPeer { code, .. } => Some(*code),
            TransportError::ClosedAbnormally { .. } => Some(ABNORMAL_CLOSURE),
            _ => None,
        }
    }

    /// Returns the close reason for [`TransportError::ClosedByPeer`].
    pub fn close_reason(&self) -> Option<&str> {
        match self {
            TransportError::ClosedByPeer { reason, .. } => Some(reason),
            _ => None,
        }
    }

    pub(crate) fn io(operation: impl Into<String>, source: io::Error) -> Self {
        TransportError::Io {
            operation: operation.into(),
            source,
        }
    }
}
