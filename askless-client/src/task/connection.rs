//! The connection lifecycle: attempts, the greeting, the configure exchange, losing a
//! connection and scheduling the next attempt.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use askless_protocol::{
    ClientMessage, ClientRequestId, ConfigureConnectionRequest, ConnectionConfiguration, Response,
};
use askless_transport::{Connection, FrameReceiver, TransportError};
use tokio::time::Instant;

use super::direct::SharedSender;
use super::{CLOSE_TIMEOUT, ConnectionTask, FIRST_FRAME_TIMEOUT, NORMAL_CLOSURE};
use crate::error::Error;
use crate::stats::bump;
use crate::status::{ConnectionStatus, DisconnectionReason};

type ConnectFuture = Pin<Box<dyn Future<Output = Result<Connection, TransportError>> + Send>>;

/// The state of the connection.
pub(super) enum ConnState {
    /// No connection. The next attempt starts at `retry_at`; never when `None`.
    Idle { retry_at: Option<Instant> },
    /// The transport is opening a connection.
    Connecting { attempt: ConnectFuture },
    /// A socket is open.
    Open(OpenLink),
}

impl fmt::Debug for ConnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnState::Idle { retry_at } => f.debug_struct("Idle").field("retry_at", retry_at).finish(),
            ConnState::Connecting { .. } => f.write_str("Connecting"),
            ConnState::Open(link) => f.debug_tuple("Open").field(&link.phase).finish(),
        }
    }
}

/// An open socket and how far its setup went.
#[derive(Debug)]
pub(super) struct OpenLink {
    /// Shared with callers, who write their requests on it while requests flow.
    pub(super) sender: SharedSender,
    /// The number of this socket among those the task opened.
    pub(super) generation: u64,
    receiver: Box<dyn FrameReceiver>,
    pub(super) phase: LinkPhase,
    /// When the last frame of any kind arrived; `None` before the first one.
    pub(super) last_frame_at: Option<Instant>,
}

/// How far the setup of an open socket went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LinkPhase {
    /// Waiting for the server's first frame until `deadline`.
    AwaitingFirstFrame { deadline: Instant },
    /// The configure request with this id was sent; waiting for its response. The id belongs
    /// to this socket only and is never sent again on another one.
    Configuring { configure_id: ClientRequestId },
    /// Configured: requests flow.
    Connected,
}

/// An event of the connection.
#[derive(Debug)]
pub(super) enum ConnEvent {
    /// The attempt finished.
    Opened(Result<Connection, TransportError>),
    /// A frame arrived, or the connection ended.
    Frame(Result<String, TransportError>),
}

/// Waits for the next event of the connection; pending forever when idle.
///
/// Cancel safe: the attempt future stays in the state, and receiving is cancel safe.
pub(super) async fn next_event(conn: &mut ConnState) -> ConnEvent {
    match conn {
        ConnState::Idle { .. } => std::future::pending().await,
        ConnState::Connecting { attempt } => ConnEvent::Opened(attempt.as_mut().await),
        ConnState::Open(link) => ConnEvent::Frame(link.receiver.recv().await),
    }
}

impl ConnState {
    /// Returns whether a socket is open, configured or not.
    pub(super) fn has_socket(&self) -> bool {
        matches!(self, ConnState::Open(_))
    }

    /// Returns whether the socket is configured.
    pub(super) fn is_connected(&self) -> bool {
        matches!(
            self,
            ConnState::Open(OpenLink {
                phase: LinkPhase::Connected,
                ..
            })
        )
    }

    /// Returns when the connection state needs attention: the next attempt, the end of the
    /// wait for the first frame, or the silence limit of an open socket.
    pub(super) fn deadline(&self, config: &ConnectionConfiguration) -> Option<Instant> {
        match self {
            ConnState::Idle { retry_at } => *retry_at,
            ConnState::Connecting { .. } => None,
            ConnState::Open(link) => match &link.phase {
                LinkPhase::AwaitingFirstFrame { deadline } => Some(*deadline),
                _ => link.last_frame_at.map(|at| at + config.server_silence_limit()),
            },
        }
    }
}

impl ConnectionTask {
    /// Starts a connection attempt now. The previous socket, if any, was closed already.
    pub(super) fn start_attempt(&mut self) {
        self.config = ConnectionConfiguration::client_defaults();
        self.timers.stop();
        self.status.set(ConnectionStatus::InProgress);
        let transport = Arc::clone(&self.settings.transport);
        let url = self.settings.url.clone();
        tracing::debug!(url = %redacted(&url), retries = self.retries, "opening connection");
        bump(&self.settings.stats.connection_attempts);
        self.conn = ConnState::Connecting {
            attempt: Box::pin(async move { transport.connect(&url).await }),
        };
    }

    pub(super) async fn handle_conn_event(&mut self, event: ConnEvent) {
        match event {
            ConnEvent::Opened(Ok(connection)) => {
                tracing::debug!("socket open, waiting for the first frame");
                bump(&self.settings.stats.connections_opened);
                let (sender, receiver) = connection.into_split();
                self.link_generation += 1;
                self.conn = ConnState::Open(OpenLink {
                    sender: Arc::new(tokio::sync::Mutex::new(sender)),
                    generation: self.link_generation,
                    receiver,
                    phase: LinkPhase::AwaitingFirstFrame {
                        deadline: Instant::now() + FIRST_FRAME_TIMEOUT,
                    },
                    last_frame_at: None,
                });
            }
            ConnEvent::Opened(Err(error)) => {
                tracing::debug!(%error, "connection attempt failed");
                let reason = DisconnectionReason::ConnectFailed {
                    kind: error.kind(),
                    message: error.to_string(),
                };
                self.report_first_outcome(Err(Error::transport(Arc::new(error))));
                self.conn = ConnState::Idle { retry_at: None };
                self.after_disconnect(reason);
            }
            ConnEvent::Frame(Ok(text)) => {
                // The frame may respond to a request a caller registered since the loop began.
                self.take_registrations().await;
                self.handle_frame(text).await;
            }
            ConnEvent::Frame(Err(error)) => {
                let reason = DisconnectionReason::Closed {
                    code: error.close_code(),
                    reason: error.close_reason().unwrap_or_default().to_owned(),
                };
                tracing::debug!(%error, "connection ended");
                self.report_first_outcome(Err(Error::connect_failed(reason.to_string())));
                self.drop_link(reason, false).await;
            }
        }
    }

    /// Called for every frame before it is handled: refreshes the liveness time and, on the
    /// first frame of a socket, sends the configure request. Returns `false` when sending failed
    /// and the socket is gone.
    pub(super) async fn note_frame_arrival(&mut self) -> bool {
        let now = Instant::now();
        let ConnState::Open(link) = &mut self.conn else {
            return false;
        };
        link.last_frame_at = Some(now);
        if !matches!(link.phase, LinkPhase::AwaitingFirstFrame { .. }) {
            return true;
        }
        let configure_id = ClientRequestId::generate_request(&mut self.settings.rng);
        link.phase = LinkPhase::Configuring {
            configure_id: configure_id.clone(),
        };
        let request = ConfigureConnectionRequest::new(configure_id.clone(), self.settings.client_id.clone());
        tracing::debug!(id = %configure_id, "sending configure request");
        self.send_frame(ClientMessage::ConfigureConnection(request).encode())
            .await
    }

    /// Returns whether `id` is the configure request of the current socket.
    pub(super) fn is_current_configure(&self, id: &ClientRequestId) -> bool {
        match &self.conn {
            ConnState::Open(OpenLink {
                phase: LinkPhase::Configuring { configure_id },
                ..
            }) => configure_id == id,
            _ => false,
        }
    }

    /// Handles the response to the current configure request.
    pub(super) async fn handle_configure_response(&mut self, response: Response) {
        if let Some(error) = &response.error {
            let code = askless_protocol::AsklessErrorCode::from(error.code_or_none());
            let description = error.description_or_none().to_owned();
            tracing::debug!(%code, "configure request failed");
            let reason = DisconnectionReason::ConfigureFailed { code, description };
            self.report_first_outcome(Err(Error::connect_failed(reason.to_string())));
            self.drop_link(reason, true).await;
            return;
        }
        let config = match response.connection_configuration() {
            Ok(config) => config,
            Err(error) => {
                let reason = DisconnectionReason::InvalidConfiguration {
                    message: error.to_string(),
                };
                self.report_first_outcome(Err(Error::connect_failed(reason.to_string())));
                self.drop_link(reason, true).await;
                return;
            }
        };
        if !config.is_compatible() {
            let error =
                Error::unsupported_version(&config.server_version, &config.client_version_code_supported);
            tracing::warn!(server_version = %config.server_version, "server does not support this client version");
            let reason = DisconnectionReason::UnsupportedVersionCode {
                server_version: config.server_version.clone(),
                supported: config.client_version_code_supported,
            };
            self.report_first_outcome(Err(error));
            self.drop_link(reason, true).await;
            return;
        }
        self.on_configured(config).await;
    }

    /// Switches to connected: applies the configuration and sends every pending request once.
    async fn on_configured(&mut self, config: ConnectionConfiguration) {
        let now = Instant::now();
        if let ConnState::Open(link) = &mut self.conn {
            link.phase = LinkPhase::Connected;
        }
        tracing::debug!(
            ping = ?config.ping_interval(),
            silence_limit = ?config.server_silence_limit(),
            request_timeout = ?config.request_timeout(),
            "connection configured"
        );
        self.config = config;
        self.retries = 0;
        self.timers.start(now, &self.config);
        self.status.set(ConnectionStatus::Connected);
        self.report_first_outcome(Ok(()));
        self.start_request_flow().await;
    }

    /// Sends one frame on the open socket. On failure the socket is dropped and `false` is
    /// returned.
    pub(super) async fn send_frame(&mut self, text: String) -> bool {
        tracing::trace!(frame = %text, "sending frame");
        self.send_frame_unlogged(text).await
    }

    /// Like `send_frame`, without logging the frame's text.
    pub(super) async fn send_frame_unlogged(&mut self, text: String) -> bool {
        let ConnState::Open(link) = &mut self.conn else {
            return false;
        };
        let limit = self.config.server_silence_limit().max(Duration::from_secs(1));
        let send = async { link.sender.lock().await.send(text).await };
        let error = match tokio::time::timeout(limit, send).await {
            Ok(Ok(())) => return true,
            Ok(Err(error)) => error,
            Err(_) => {
                tracing::debug!(?limit, "sending a frame took too long");
                let reason = DisconnectionReason::ServerSilent { silence: limit };
                self.drop_link(reason, false).await;
                return false;
            }
        };
        tracing::debug!(%error, "sending a frame failed");
        let reason = DisconnectionReason::SendFailed {
            kind: error.kind(),
            message: error.to_string(),
        };
        self.drop_link(reason, false).await;
        false
    }

    /// Drops the current socket or attempt, publishes `Disconnected` with `reason` and
    /// schedules what comes next.
    pub(super) async fn drop_link(&mut self, reason: DisconnectionReason, send_close: bool) {
        self.drop_link_quietly(send_close).await;
        self.after_disconnect(reason);
    }

    /// Drops the current socket or attempt, sending a close frame first when `send_close`.
    pub(super) async fn drop_link_quietly(&mut self, send_close: bool) {
        let previous = std::mem::replace(&mut self.conn, ConnState::Idle { retry_at: None });
        self.timers.stop();
        self.reset_authentication_for_disconnect();
        self.streams.forget_pending_listens();
        if let ConnState::Open(link) = previous {
            if send_close {
                let close = async {
                    link.sender
                        .lock()
                        .await
                        .close(NORMAL_CLOSURE, "client closed")
                        .await
                };
                match tokio::time::timeout(CLOSE_TIMEOUT, close).await {
                    Ok(Ok(())) => tracing::debug!("close frame sent"),
                    Ok(Err(error)) => tracing::debug!(%error, "sending the close frame failed"),
                    Err(_) => tracing::debug!("sending the close frame timed out"),
                }
            }
        }
    }

    /// Publishes `Disconnected` and schedules the next attempt, or halts reconnection.
    pub(super) fn after_disconnect(&mut self, reason: DisconnectionReason) {
        self.status.set(ConnectionStatus::Disconnected {
            reason: reason.clone(),
        });
        if let DisconnectionReason::UnsupportedVersionCode {
            server_version,
            supported,
        } = &reason
        {
            let error = Error::unsupported_version(server_version, supported);
            self.halt(error);
            return;
        }
        if !reason.reconnects_automatically() {
            self.conn = ConnState::Idle { retry_at: None };
            return;
        }
        match self.settings.policy.delay(self.retries, &mut self.settings.rng) {
            Some(delay) => {
                self.retries += 1;
                tracing::info!(?delay, retry = self.retries, %reason, "reconnecting after a delay");
                self.conn = ConnState::Idle {
                    retry_at: Some(Instant::now() + delay),
                };
            }
            None => {
                let attempts = self.retries;
                tracing::info!(attempts, "reconnect attempts exhausted, no longer reconnecting");
                self.status.set(ConnectionStatus::Disconnected {
                    reason: DisconnectionReason::ReconnectAttemptsExhausted { attempts },
                });
                let error = Error::connect_failed(format!("gave up after {attempts} reconnection attempts"));
                self.halt(error);
            }
        }
    }

    /// Stops reconnecting: pending and new requests fail with `error` until `reconnect`.
    fn halt(&mut self, error: Error) {
        self.conn = ConnState::Idle { retry_at: None };
        self.pending
            .fail_all(|request| error.for_request(request.operation, &request.route));
        self.halted = Some(error);
    }

    /// Starts the next attempt when its time came, and drops a socket that stayed silent too
    /// long.
    pub(super) async fn check_connection_deadline(&mut self, now: Instant) {
        let Some(deadline) = self.conn.deadline(&self.config) else {
            return;
        };
        if deadline > now {
            return;
        }
        match &self.conn {
            ConnState::Idle { .. } => self.start_attempt(),
            ConnState::Connecting { .. } => {}
            ConnState::Open(link) => {
                let silence = match link.phase {
                    LinkPhase::AwaitingFirstFrame { .. } => FIRST_FRAME_TIMEOUT,
                    _ => self.config.server_silence_limit(),
                };
                tracing::debug!(?silence, "server silent, dropping the connection");
                let reason = DisconnectionReason::ServerSilent { silence };
                self.report_first_outcome(Err(Error::connect_failed(reason.to_string())));
                self.drop_link(reason, true).await;
            }
        }
    }

    /// Tells `AsklessClientBuilder::connect` how the first attempt ended.
    pub(super) fn report_first_outcome(&mut self, outcome: Result<(), Error>) {
        if let Some(first) = self.settings.first_outcome.take() {
            let _ = first.send(outcome);
        }
    }
}

/// Returns the URL without user-info and query, for logs.
pub(crate) fn redacted(url: &url::Url) -> String {
    let mut clean = url.clone();
    let _ = clean.set_username("");
    let _ = clean.set_password(None);
    clean.set_query(None);
    clean.set_fragment(None);
    clean.to_string()
}
