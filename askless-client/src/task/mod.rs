//! The connection task: the one task that owns the connection, the pending requests and every
//! timer.
//!
//! Client handles talk to it through a bounded command channel. The task runs one
//! `tokio::select!` loop over three sources, in this order: commands, the current connection
//! (its attempt or its incoming frames) and the earliest timer. Nothing else touches the
//! receiving half, the pending table or the stream table, so they need no lock. The sending
//! half is shared with callers, who write their own requests on it while requests flow (see
//! [`direct`]). The loop ends when every handle is dropped or [`Command::Close`] arrives, and
//! [`ExitReason`] records which.
mod auth;
mod connection;
pub(crate) mod dedup;
mod direct;
mod frames;
mod liveness;
pub(crate) mod pending;
mod streams;

use std::sync::Arc;
use std::time::Duration;

use askless_protocol::{ClientIdInternalApp, ClientMessage, ClientRequestId, ConnectionConfiguration};
use askless_transport::Transport;
use rand::rngs::StdRng;
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, mpsc, oneshot, watch};
use tokio::time::Instant;
use url::Url;

use crate::auth::{
    Authenticated, AuthenticationStatus, Credential, CredentialProvider, ReauthenticationCallback,
};
use crate::error::{Error, Operation, Result};
use crate::options::RequestOptions;
use crate::policy::ReconnectPolicy;
use crate::stats::StatsCounters;
use crate::status::{ConnectionStatus, DisconnectionReason, StatusPublisher};

pub(crate) use self::auth::AUTHENTICATE_CONNECTION_WAIT;
use self::auth::AuthState;
use self::connection::ConnState;
pub(crate) use self::connection::redacted as redacted_url;
use self::dedup::ServerIdMemory;
pub(crate) use self::direct::{DirectSlot, Registered};
use self::liveness::Timers;
use self::pending::{Expiry, PendingTable};
pub(crate) use self::streams::StreamCommand;
use self::streams::StreamTable;

/// Capacity of the command channel; a caller whose command does not fit waits.
pub(crate) const COMMAND_CAPACITY: usize = 1024;

/// How long the client waits for the first frame after the socket opens.
pub(crate) const FIRST_FRAME_TIMEOUT: Duration = Duration::from_secs(10);

/// When nothing is due, the task's timer is set this far ahead.
const IDLE_WAKE: Duration = Duration::from_secs(24 * 60 * 60);

/// How long the client waits for a close frame to be sent before dropping the socket.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// WebSocket close code of a normal closure.
const NORMAL_CLOSURE: u16 = 1000;

/// A message from a client handle to the connection task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Send a read, create, update or delete request. Boxed, because the channel allocates
    /// its slots in blocks of 32 commands, each the size of the largest variant.
    Request(Box<RequestCommand>),
    /// Drop the current connection, if any, and connect again now.
    Reconnect { done: oneshot::Sender<()> },
    /// Close the connection, fail pending requests and end the task.
    Close { done: oneshot::Sender<()> },
    /// Look at the registered requests now: one of them times out before the task's timer.
    Wake,
    /// Subscribe to a stream.
    Stream(streams::StreamCommand),
    /// Report the sizes of the task's tables.
    StateSizes {
        reply: oneshot::Sender<crate::introspect::StateSizes>,
    },
    /// Authenticate with a credential.
    Authenticate {
        credential: Credential,
        never_timeout: bool,
        reply: oneshot::Sender<Result<Authenticated>>,
    },
    /// Clear the authentication; the reply carries the logout response when one was sent.
    ClearAuthentication {
        only_if_authenticated: bool,
        reply: oneshot::Sender<Result<Option<Value>>>,
    },
}

/// A read, create, update or delete request, encoded by the caller.
#[derive(Debug)]
pub(crate) struct RequestCommand {
    pub(crate) operation: Operation,
    pub(crate) route: String,
    pub(crate) id: ClientRequestId,
    pub(crate) message: ClientMessage,
    /// `message`, encoded.
    pub(crate) frame: String,
    /// The socket generation the caller writes the frame on itself; `None` when the task is
    /// to send it.
    pub(crate) written_on: Option<u64>,
    /// When the caller made the request; its timeout counts from here.
    pub(crate) created_at: Instant,
    pub(crate) options: RequestOptions,
    /// Held while the request is pending; see `AsklessClientBuilder::max_pending_requests`. `None` for the logout
    /// request the task makes itself.
    pub(crate) permit: Option<OwnedSemaphorePermit>,
    pub(crate) reply: oneshot::Sender<Result<Option<Value>>>,
}

/// The cause of the connection task's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ExitReason {
    /// Every client handle was dropped.
    HandlesDropped,
    /// A handle called `close`.
    CloseRequested,
}

/// Everything the task needs from the builder.
pub(crate) struct TaskSettings {
    pub(crate) url: Url,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) client_id: ClientIdInternalApp,
    /// Overrides the server's `requestTimeoutInMs`; zero means never.
    pub(crate) request_timeout: Option<Duration>,
    pub(crate) policy: ReconnectPolicy,
    pub(crate) rng: StdRng,
    /// Told the outcome of the first connection attempt.
    pub(crate) first_outcome: Option<oneshot::Sender<Result<()>>>,
    /// Called when the automatic re-authentication is rejected.
    pub(crate) on_reauthentication_fails: Option<ReauthenticationCallback>,
    /// Asked for a fresh credential before each automatic re-authentication.
    pub(crate) credential_provider: Option<CredentialProvider>,
    /// The task's own command channel, weakly, for handles given to callbacks.
    pub(crate) commands: mpsc::WeakSender<Command>,
    /// Counters read by `AsklessClient::stats`.
    pub(crate) stats: Arc<StatsCounters>,
    /// The slot through which the task lends the current socket to callers.
    pub(crate) direct: Arc<DirectSlot>,
}

impl std::fmt::Debug for TaskSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskSettings")
            .field("url", &redacted_url(&self.url))
            .field("transport", &self.transport)
            .field("client_id", &self.client_id)
            .field("request_timeout", &self.request_timeout)
            .field("policy", &self.policy)
            .field(
                "on_reauthentication_fails",
                &self.on_reauthentication_fails.is_some(),
            )
            .field("credential_provider", &self.credential_provider.is_some())
            .finish_non_exhaustive()
    }
}

/// The state owned by the connection task.
#[derive(Debug)]
pub(crate) struct ConnectionTask {
    settings: TaskSettings,
    commands: mpsc::Receiver<Command>,
    status: StatusPublisher,
    conn: ConnState,
    /// The configuration in force: the client defaults until a configure response arrives.
    config: ConnectionConfiguration,
    pending: PendingTable,
    dedup: ServerIdMemory,
    timers: Timers,
    auth: AuthState,
    streams: StreamTable,
    /// Retries made since the last successful configure.
    retries: u32,
    /// Set when the client stopped reconnecting (unsupported version, attempts exhausted):
    /// new requests fail at once with this error until `reconnect` is called.
    halted: Option<Error>,
    /// Sockets opened so far; the current one's number identifies it to callers.
    link_generation: u64,
    /// The generation published in the direct slot, if any.
    published_link: Option<u64>,
}

impl ConnectionTask {
    pub(crate) fn new(
        settings: TaskSettings,
        commands: mpsc::Receiver<Command>,
        status: StatusPublisher,
    ) -> (Self, watch::Receiver<AuthenticationStatus>) {
        let (auth, auth_status) = AuthState::new();
        let task = ConnectionTask {
            settings,
            commands,
            status,
            conn: ConnState::Idle { retry_at: None },
            config: ConnectionConfiguration::client_defaults(),
            pending: PendingTable::default(),
            dedup: ServerIdMemory::default(),
            timers: Timers::new(),
            auth,
            streams: StreamTable::default(),
            retries: 0,
            halted: None,
            link_generation: 0,
            published_link: None,
        };
        (task, auth_status)
    }

    /// Runs the task until every handle is dropped or a close is requested.
    pub(crate) async fn run(mut self) -> ExitReason {
        self.start_attempt();
        // One timer for the task's whole life, moved only when the earliest deadline changes:
        // a new `Sleep` per iteration would register and remove a timer for every frame.
        let timer = tokio::time::sleep(IDLE_WAKE);
        tokio::pin!(timer);
        let exit = loop {
            self.publish_direct_link().await;
            self.prepare_to_wait(&mut timer).await;
            tokio::select! {
                // Commands first, then frames: both may complete requests, and a command that
                // waits is a caller that waits.
                biased;
                command = self.commands.recv() => match command {
                    None => break ExitReason::HandlesDropped,
                    Some(Command::Close { done }) => {
                        self.shut_down().await;
                        let _ = done.send(());
                        break ExitReason::CloseRequested;
                    }
                    Some(command) => self.handle_command(command).await,
                },
                event = connection::next_event(&mut self.conn) => self.handle_conn_event(event).await,
                () = &mut timer => self.on_timers().await,
            }
        };
        if exit == ExitReason::HandlesDropped {
            self.shut_down().await;
        }
        tracing::info!(reason = ?exit, client_id = %self.settings.client_id, "askless connection task ended");
        exit
    }

    async fn handle_command(&mut self, command: Command) {
        // A command may act on pending requests (clearing the authentication fails some), so
        // the requests callers registered before it must be pending by now.
        self.take_registrations().await;
        match command {
            Command::Request(request) => self.handle_request(*request).await,
            Command::Reconnect { done } => {
                tracing::info!("reconnection requested by the application");
                self.retries = 0;
                self.halted = None;
                self.drop_link_quietly(true).await;
                let reason = DisconnectionReason::ReconnectRequested;
                self.status.set(ConnectionStatus::Disconnected { reason });
                self.start_attempt();
                let _ = done.send(());
            }
            Command::Close { .. } | Command::Wake => {}
            Command::Authenticate {
                credential,
                never_timeout,
                reply,
            } => {
                self.handle_authenticate(credential, never_timeout, reply).await;
            }
            Command::ClearAuthentication {
                only_if_authenticated,
                reply,
            } => {
                self.handle_clear_authentication(only_if_authenticated, reply)
                    .await;
            }
            Command::Stream(command) => self.handle_stream_command(command).await,
            Command::StateSizes { reply } => {
                self.dedup.prune(Instant::now());
                let sizes = crate::introspect::StateSizes {
                    listeners: self.streams.listener_count(),
                    open_streams: self.streams.open_stream_count(),
                    pending_requests: self.pending.len(),
                    dedup_entries: self.dedup.len(),
                };
                let _ = reply.send(sizes);
            }
        }
    }

    /// Returns the request timeout for `options`: `None` means never.
    fn request_timeout(&self, options: &RequestOptions) -> Option<Duration> {
        if options.never_timeout {
            return None;
        }
        match self.settings.request_timeout {
            Some(timeout) if timeout.is_zero() => None,
            Some(timeout) => Some(timeout),
            None => self.config.request_timeout(),
        }
    }

    /// Returns the earliest instant at which a timer needs attention; `None` when none does.
    fn next_wake(&self) -> Option<Instant> {
        [
            self.pending.next_deadline(),
            self.conn.deadline(&self.config),
            self.timers.next_due(),
            self.auth.next_due(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    async fn on_timers(&mut self) {
        let now = Instant::now();
        self.expire_requests(now);
        self.check_connection_deadline(now).await;
        self.check_authentication_timers(now).await;
        self.run_periodic(now).await;
    }

    fn expire_requests(&mut self, now: Instant) {
        let has_socket = self.conn.has_socket();
        for (request, expiry) in self.pending.take_expired(now, has_socket) {
            let error = match expiry {
                Expiry::Timeout => {
                    let after = request.timeout.unwrap_or_default();
                    tracing::debug!(id = %request.id, route = %request.route, ?after, "request timed out");
                    Error::timed_out(request.operation, &request.route, after)
                }
                Expiry::NotAuthenticated => {
                    tracing::debug!(id = %request.id, route = %request.route, "no authentication arrived in time");
                    let description = request
                        .authentication_error
                        .as_ref()
                        .map_or("none", |error| error.description_or_none());
                    Error::pending_authentication(request.operation, &request.route, description)
                }
                Expiry::NoConnection => {
                    tracing::debug!(id = %request.id, route = %request.route, "request found no connection");
                    Error::no_connection(
                        request.operation,
                        &request.route,
                        "no connection became available within the request timeout",
                    )
                }
            };
            request.complete(Err(error));
        }
    }

    /// Returns whether requests are sent as soon as they are made: connected, and not waiting
    /// for the automatic re-authentication.
    fn flow_open(&self) -> bool {
        self.conn.is_connected() && !self.auth.is_holding()
    }

    /// Lends the socket to callers while requests flow on it, and takes it back otherwise.
    /// Requests registered on a link being taken back are handled here.
    async fn publish_direct_link(&mut self) {
        let link = match &self.conn {
            ConnState::Open(link) if self.flow_open() && self.halted.is_none() => Some(link),
            _ => None,
        };
        let generation = link.map(|link| link.generation);
        if generation == self.published_link {
            return;
        }
        tracing::debug!(?generation, "callers write their requests on this socket");
        let request_timeout = self.request_timeout(&RequestOptions::default());
        let registered = self.settings.direct.publish(link.map(|link| direct::DirectLink {
            generation: link.generation,
            sender: Arc::clone(&link.sender),
            request_timeout,
        }));
        self.published_link = generation;
        for command in registered {
            self.handle_request(command).await;
        }
    }

    /// Handles the requests callers registered, moves the timer to the earliest deadline and
    /// records in the slot when it fires.
    async fn prepare_to_wait(&mut self, timer: &mut std::pin::Pin<&mut tokio::time::Sleep>) {
        let mut registered = self.settings.direct.take_registrations(None);
        loop {
            for command in registered {
                self.handle_request(command).await;
            }
            let wake_at = self.next_wake().unwrap_or_else(|| {
                // Nothing is due: the timer stays where it is while it is far enough ahead.
                let now = Instant::now();
                if timer.deadline() > now + IDLE_WAKE / 2 {
                    timer.deadline()
                } else {
                    now + IDLE_WAKE
                }
            });
            if timer.deadline() != wake_at {
                timer.as_mut().reset(wake_at);
            }
            // Requests registered meanwhile may time out earlier: handle them and look again.
            registered = self.settings.direct.take_registrations(Some(wake_at));
            if registered.is_empty() {
                return;
            }
        }
    }

    /// Handles the requests callers registered; called before a frame or a command is handled,
    /// so that the requests it concerns are known.
    pub(super) async fn take_registrations(&mut self) {
        for command in self.settings.direct.take_registrations(None) {
            self.handle_request(command).await;
        }
    }

    /// Sends every pending request once, in the order they were made, then the listens of the
    /// streams that are not live yet. Called once per connection, when requests start flowing.
    async fn flush_pending(&mut self) {
        if !self.flow_open() {
            return;
        }
        self.pending.register_waiting(Instant::now());
        let rng = &mut self.settings.rng;
        let frames = self
            .pending
            .frames_to_send(|| ClientRequestId::generate_request(rng));
        if !frames.is_empty() {
            tracing::debug!(count = frames.len(), "sending pending requests");
        }
        for frame in frames {
            if !self.send_frame(frame).await {
                return;
            }
        }
        self.send_pending_listens().await;
        if self.conn.is_connected() {
            self.resume_live_streams().await;
        }
    }

    /// Closes the connection, fails every pending request and publishes the final status.
    async fn shut_down(&mut self) {
        // Callers stop writing, and what they registered fails with the rest below.
        self.published_link = None;
        for command in self.settings.direct.publish(None) {
            self.handle_request(command).await;
        }
        self.drop_link_quietly(true).await;
        self.conn = ConnState::Idle { retry_at: None };
        for request in self.pending.drain() {
            let error = Error::closed(Some(request.operation), &request.route);
            request.complete(Err(error));
        }
        self.streams.close_all(&Error::closed(None, ""));
        if let Some(first) = self.settings.first_outcome.take() {
            let _ = first.send(Err(Error::closed(None, "")));
        }
        self.status.set(ConnectionStatus::Disconnected {
            reason: DisconnectionReason::ClientClosed,
        });
    }
}
