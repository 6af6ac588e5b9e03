//! The WebSocket listener used by test servers such as askless-testkit.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

use super::frames::{into_connection, map_ws_error};
use super::{BoxedIo, FrameLimits};
use crate::connection::{Connection, ConnectionInfo};
use crate::error::{Direction, TransportError};
use crate::options::ListenerOptions;

/// Upgraded connections waiting for [`WebSocketListener::accept`]. Handshakes
/// that finish while the queue is full wait for room.
const ACCEPT_QUEUE: usize = 64;

/// Pause after a failed TCP accept (for example, too many open files), so the
/// loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// A WebSocket server socket that yields a [`Connection`] per client.
///
/// It upgrades requests on any path. Each TCP connection runs its TLS
/// handshake and HTTP upgrade in its own task, bounded by
/// [`ListenerOptions::handshake_timeout`], so a client that connects and never
/// sends a request does not delay other clients. Dropping the listener stops
/// accepting; connections already returned stay open.
pub struct WebSocketListener {
    local_addr: SocketAddr,
    incoming: mpsc::Receiver<Connection>,
    accept_loop: JoinHandle<()>,
}

impl fmt::Debug for WebSocketListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketListener")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl WebSocketListener {
    /// Binds to `addr` with default [`ListenerOptions`]. Port 0 picks a free
    /// port, which [`WebSocketListener::local_addr`] returns.
    ///
    /// Must be called inside a Tokio runtime, because it spawns the accept loop.
    pub async fn bind(addr: impl ToSocketAddrs) -> Result<WebSocketListener, TransportError> {
        WebSocketListener::bind_with_options(addr, ListenerOptions::default()).await
    }

    /// Binds to `addr` with `options`.
    pub async fn bind_with_options(
        addr: impl ToSocketAddrs,
        options: ListenerOptions,
    ) -> Result<WebSocketListener, TransportError> {
        options.limits().validate()?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|error| TransportError::io("binding the listener", error))?;
        let local_addr = listener
            .local_addr()
            .map_err(|error| TransportError::io("reading the listener address", error))?;
        let (queue, incoming) = mpsc::channel(ACCEPT_QUEUE);
        tracing::debug!(%local_addr, tls = options.tls.is_some(), "WebSocket listener bound");
        let accept_loop = tokio::spawn(accept_loop(listener, Arc::new(options), queue));
        Ok(WebSocketListener {
            local_addr,
            incoming,
            accept_loop,
        })
    }

    /// Returns the address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits for the next upgraded connection.
    ///
    /// Connections whose handshake fails or times out are logged at debug level
    /// and skipped.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a connection upgraded while the future was pending stays
    /// queued for the next call.
    pub async fn accept(&mut self) -> Result<Connection, TransportError> {
        self.incoming.recv().await.ok_or_else(|| {
            TransportError::io(
                "accepting connections",
                io::Error::other("the accept loop stopped"),
            )
        })
    }
}

impl ListenerOptions {
    fn limits(&self) -> FrameLimits {
        FrameLimits {
            max_message_size: self.max_message_size,
            max_frame_size: self.max_frame_size,
            read_buffer_size: self.read_buffer_size,
            write_buffer_size: self.write_buffer_size,
        }
    }
}

impl Drop for WebSocketListener {
    fn drop(&mut self) {
        self.accept_loop.abort();
    }
}

async fn accept_loop(listener: TcpListener, options: Arc<ListenerOptions>, queue: mpsc::Sender<Connection>) {
    loop {
        let (tcp, peer_addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "TCP accept failed; retrying");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        if queue.is_closed() {
            return;
        }
        tracing::debug!(%peer_addr, "accepted TCP connection");
        tokio::spawn(handshake_task(tcp, peer_addr, options.clone(), queue.clone()));
    }
}

async fn handshake_task(
    tcp: TcpStream,
    peer_addr: SocketAddr,
    options: Arc<ListenerOptions>,
    queue: mpsc::Sender<Connection>,
) {
    let timeout = options.handshake_timeout;
    let connection = match tokio::time::timeout(timeout, upgrade(tcp, peer_addr, &options)).await {
        Ok(Ok(connection)) => connection,
        Ok(Err(error)) => {
            tracing::debug!(%peer_addr, %error, "WebSocket handshake failed");
            return;
        }
        Err(_elapsed) => {
            tracing::debug!(%peer_addr, ?timeout, "WebSocket handshake timed out; dropping connection");
            return;
        }
    };
    if queue.send(connection).await.is_err() {
        tracing::debug!(%peer_addr, "listener dropped before the connection was accepted");
    }
}

async fn upgrade(
    tcp: TcpStream,
    peer_addr: SocketAddr,
    options: &ListenerOptions,
) -> Result<Connection, TransportError> {
    let _ = tcp.set_nodelay(true);
    let local_addr = tcp.local_addr().ok();
    let io: BoxedIo = match &options.tls {
        Some(config) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
            let stream = acceptor
                .accept(tcp)
                .await
                .map_err(|error| TransportError::io("running the server TLS handshake", error))?;
            Box::new(stream)
        }
        None => Box::new(tcp),
    };

    let limits = options.limits();
    let request_path = Arc::new(Mutex::new(None));
    let path_slot = request_path.clone();
    // The error type is fixed by tungstenite's handshake callback trait.
    #[allow(clippy::result_large_err)]
    let record_path = move |request: &Request, response: Response| {
        if let Ok(mut slot) = path_slot.lock() {
            *slot = Some(request.uri().path().to_owned());
        }
        Ok(response)
    };
    let stream =
        tokio_tungstenite::accept_hdr_async_with_config(io, record_path, Some(limits.tungstenite_config()))
            .await
            .map_err(|error| map_ws_error(error, Direction::Incoming, "running the WebSocket upgrade"))?;

    let request_path = request_path.lock().ok().and_then(|mut slot| slot.take());
    let info = ConnectionInfo {
        local_addr,
        peer_addr: Some(peer_addr),
        url: None,
        request_path,
        tls: options.tls.is_some(),
    };
    tracing::debug!(%peer_addr, path = ?info.request_path, "WebSocket connection accepted");
    Ok(into_connection(stream, limits, info))
}
