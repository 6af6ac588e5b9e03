//! Options of the WebSocket client transport and listener.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use rustls_pki_types::CertificateDer;

/// One MiB in bytes.
const MIB: usize = 1024 * 1024;

/// Default [`WebSocketOptions::connect_timeout`]: 10 seconds.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default client [`WebSocketOptions::max_message_size`]: 16 MiB.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 16 * MIB;
/// Default client [`WebSocketOptions::max_frame_size`]: 16 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16 * MIB;
/// Default [`WebSocketOptions::read_buffer_size`]: 8 KiB.
pub const DEFAULT_READ_BUFFER_SIZE: usize = 8 * 1024;
/// Default [`WebSocketOptions::write_buffer_size`]: 8 KiB.
pub const DEFAULT_WRITE_BUFFER_SIZE: usize = 8 * 1024;
/// Default listener message and frame size limit: 100 MiB, the payload limit
/// of the Node.js `ws` package that the reference server runs on.
pub const DEFAULT_LISTENER_MAX_MESSAGE_SIZE: usize = 100 * MIB;
/// Default [`ListenerOptions::handshake_timeout`]: 10 seconds.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Source of the root certificates that the rustls client trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TlsRoots {
    /// The Mozilla root program, compiled into the binary by the `webpki-roots`
    /// crate. Works the same on every platform and needs no file access. Default.
    #[default]
    WebPki,
    /// The operating system's trust store, loaded by `rustls-native-certs` on
    /// the first wss:// connect. Use it where a company or device installs its
    /// own roots.
    Native,
    /// No built-in roots: only [`WebSocketOptions::extra_root_certificates`].
    None,
}

/// TLS library for wss:// connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TlsBackend {
    /// rustls with the `ring` crypto provider, passed explicitly so no
    /// process-wide provider has to be installed. Default.
    #[default]
    Rustls,
    /// The platform library through `native-tls` (OpenSSL on Linux, Secure
    /// Transport on macOS, SChannel on Windows). It always trusts the system
    /// store; [`WebSocketOptions::tls_roots`] is ignored, but
    /// [`WebSocketOptions::extra_root_certificates`] are added.
    #[cfg(feature = "native-tls")]
    NativeTls,
}

/// An extra HTTP header for the upgrade request.
#[derive(Clone)]
pub struct Header {
    name: HeaderName,
    value: HeaderValue,
}

impl Header {
    /// Builds a header. Values of `Authorization`, `Proxy-Authorization` and
    /// `Cookie` are always marked sensitive.
    pub fn new(name: HeaderName, mut value: HeaderValue) -> Self {
        let always_sensitive = name == http::header::AUTHORIZATION
            || name == http::header::PROXY_AUTHORIZATION
            || name == http::header::COOKIE;
        if always_sensitive {
            value.set_sensitive(true);
        }
        Header { name, value }
    }

    /// Builds a header whose value is never printed or logged.
    pub fn sensitive(name: HeaderName, mut value: HeaderValue) -> Self {
        value.set_sensitive(true);
        Header { name, value }
    }

    /// Returns the header name.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }

    /// Returns the header value.
    pub fn value(&self) -> &HeaderValue {
        &self.value
    }

    /// Returns whether the value is kept out of `Debug` output and logs.
    pub fn is_sensitive(&self) -> bool {
        self.value.is_sensitive()
    }
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Header");
        out.field("name", &self.name.as_str());
        if self.value.is_sensitive() {
            out.field("value", &"<redacted>");
        } else {
            out.field("value", &self.value);
        }
        out.finish()
    }
}

/// Options of [`WebSocketTransport`](crate::WebSocketTransport).
///
/// The defaults suit a mobile-class client that keeps one long-lived connection:
///
/// - `connect_timeout` 10 s covers DNS, TCP, TLS and the upgrade on a slow
///   cellular link, yet lets a reconnect loop retry a dead network quickly.
/// - `max_message_size` and `max_frame_size` 16 MiB: Askless messages are JSON
///   documents, typically well under 1 MiB, and tungstenite's own 64 MiB default
///   would let one message take a large share of a phone app's memory. A
///   message is buffered whole before it is returned, so this is also the peak
///   memory of one incoming message.
/// - `read_buffer_size` and `write_buffer_size` 8 KiB: tungstenite allocates the
///   read buffer eagerly, and its default of 128 KiB would make every idle
///   connection cost more than 128 KiB. With these defaults the test
///   `tests/idle_memory.rs` counts about 19 KiB of heap for an idle ws://
///   client and server pair and about 35 KiB for a wss:// pair (dhat
///   allocator, debug build). One client end therefore stays well under
///   64 KiB. Kernel socket buffers are not counted.
///
/// NOTE: tungstenite 0.30 keeps the capacity its read and write buffers grew
/// to. After a 1 MiB message in each direction, a ws:// end retains about
/// 2 MiB until the connection closes (measured the same way as above).
#[derive(Clone)]
#[non_exhaustive]
pub struct WebSocketOptions {
    /// Limit on DNS lookup, TCP connect, TLS handshake and HTTP upgrade
    /// together. Default: [`DEFAULT_CONNECT_TIMEOUT`] (10 s).
    pub connect_timeout: Duration,
    /// Maximum size in bytes of a message, received or sent. Default:
    /// [`DEFAULT_MAX_MESSAGE_SIZE`] (16 MiB).
    pub max_message_size: usize,
    /// Maximum payload size in bytes of one received frame. Default:
    /// [`DEFAULT_MAX_FRAME_SIZE`] (16 MiB).
    pub max_frame_size: usize,
    /// Size in bytes of the read buffer, allocated when the connection opens.
    /// Default: [`DEFAULT_READ_BUFFER_SIZE`] (8 KiB).
    pub read_buffer_size: usize,
    /// Bytes of outgoing frames collected before they are written to the
    /// socket. Every send flushes, so this only limits batching inside one
    /// send. Default: [`DEFAULT_WRITE_BUFFER_SIZE`] (8 KiB).
    pub write_buffer_size: usize,
    /// Root certificates the rustls backend trusts. Default: [`TlsRoots::WebPki`].
    pub tls_roots: TlsRoots,
    /// DER certificates trusted in addition to [`WebSocketOptions::tls_roots`],
    /// for example a private or test certificate authority. Default: none.
    pub extra_root_certificates: Vec<CertificateDer<'static>>,
    /// TLS library. Default: [`TlsBackend::Rustls`].
    pub tls_backend: TlsBackend,
    /// A complete rustls configuration that replaces `tls_roots` and
    /// `extra_root_certificates`, for client certificates or custom verifiers.
    /// Default: `None`.
    pub rustls_config: Option<Arc<rustls::ClientConfig>>,
    /// Extra HTTP headers sent with the upgrade request. Default: none.
    pub headers: Vec<Header>,
}

impl Default for WebSocketOptions {
    fn default() -> Self {
        WebSocketOptions {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            read_buffer_size: DEFAULT_READ_BUFFER_SIZE,
            write_buffer_size: DEFAULT_WRITE_BUFFER_SIZE,
            tls_roots: TlsRoots::default(),
            extra_root_certificates: Vec::new(),
            tls_backend: TlsBackend::default(),
            rustls_config: None,
            headers: Vec::new(),
        }
    }
}

impl WebSocketOptions {
    /// Sets [`WebSocketOptions::connect_timeout`].
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`WebSocketOptions::max_message_size`].
    pub fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets [`WebSocketOptions::max_frame_size`].
    pub fn with_max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Sets [`WebSocketOptions::read_buffer_size`].
    pub fn with_read_buffer_size(mut self, bytes: usize) -> Self {
        self.read_buffer_size = bytes;
        self
    }

    /// Sets [`WebSocketOptions::write_buffer_size`].
    pub fn with_write_buffer_size(mut self, bytes: usize) -> Self {
        self.write_buffer_size = bytes;
        self
    }

    /// Sets [`WebSocketOptions::tls_roots`].
    pub fn with_tls_roots(mut self, roots: TlsRoots) -> Self {
        self.tls_roots = roots;
        self
    }

    /// Adds a DER root certificate to [`WebSocketOptions::extra_root_certificates`].
    pub fn add_root_certificate(mut self, der: CertificateDer<'static>) -> Self {
        self.extra_root_certificates.push(der);
        self
    }

    /// Sets [`WebSocketOptions::tls_backend`].
    pub fn with_tls_backend(mut self, backend: TlsBackend) -> Self {
        self.tls_backend = backend;
        self
    }

    /// Sets [`WebSocketOptions::rustls_config`].
    pub fn with_rustls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.rustls_config = Some(config);
        self
    }

    /// Adds a header to the upgrade request; see [`Header::new`].
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push(Header::new(name, value));
        self
    }

    /// Adds a header whose value is never printed or logged; see [`Header::sensitive`].
    pub fn sensitive_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push(Header::sensitive(name, value));
        self
    }
}

impl fmt::Debug for WebSocketOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketOptions")
            .field("connect_timeout", &self.connect_timeout)
            .field("max_message_size", &self.max_message_size)
            .field("max_frame_size", &self.max_frame_size)
            .field("read_buffer_size", &self.read_buffer_size)
            .field("write_buffer_size", &self.write_buffer_size)
            .field("tls_roots", &self.tls_roots)
            .field("extra_root_certificates", &self.extra_root_certificates.len())
            .field("tls_backend", &self.tls_backend)
            .field("rustls_config", &self.rustls_config.as_ref().map(|_| "custom"))
            .field("headers", &self.headers)
            .finish()
    }
}

/// Options of [`WebSocketListener`](crate::WebSocketListener).
#[derive(Clone)]
#[non_exhaustive]
pub struct ListenerOptions {
    /// Limit on the TLS handshake and HTTP upgrade of one accepted TCP
    /// connection. A connection that does not finish in time is dropped without
    /// affecting others. Default: [`DEFAULT_HANDSHAKE_TIMEOUT`] (10 s).
    pub handshake_timeout: Duration,
    /// Maximum size in bytes of a received message. Default:
    /// [`DEFAULT_LISTENER_MAX_MESSAGE_SIZE`] (100 MiB).
    pub max_message_size: usize,
    /// Maximum payload size in bytes of one received frame. Default:
    /// [`DEFAULT_LISTENER_MAX_MESSAGE_SIZE`] (100 MiB).
    pub max_frame_size: usize,
    /// Size in bytes of each connection's read buffer. Default:
    /// [`DEFAULT_READ_BUFFER_SIZE`] (8 KiB).
    pub read_buffer_size: usize,
    /// Bytes of outgoing frames collected before writing. Default:
    /// [`DEFAULT_WRITE_BUFFER_SIZE`] (8 KiB).
    pub write_buffer_size: usize,
    /// TLS configuration; when set, the listener accepts only wss://. Default:
    /// `None` (plain ws://).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl Default for ListenerOptions {
    fn default() -> Self {
        ListenerOptions {
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_message_size: DEFAULT_LISTENER_MAX_MESSAGE_SIZE,
            max_frame_size: DEFAULT_LISTENER_MAX_MESSAGE_SIZE,
            read_buffer_size: DEFAULT_READ_BUFFER_SIZE,
            write_buffer_size: DEFAULT_WRITE_BUFFER_SIZE,
            tls: None,
        }
    }
}

impl ListenerOptions {
    /// Sets [`ListenerOptions::handshake_timeout`].
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets [`ListenerOptions::max_message_size`].
    pub fn with_max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// Sets [`ListenerOptions::max_frame_size`].
    pub fn with_max_frame_size(mut self, bytes: usize) -> Self {
        self.max_frame_size = bytes;
        self
    }

    /// Sets [`ListenerOptions::tls`].
    pub fn with_tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }
}

impl fmt::Debug for ListenerOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ListenerOptions")
            .field("handshake_timeout", &self.handshake_timeout)
            .field("max_message_size", &self.max_message_size)
            .field("max_frame_size", &self.max_frame_size)
            .field("read_buffer_size", &self.read_buffer_size)
            .field("write_buffer_size", &self.write_buffer_size)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}
