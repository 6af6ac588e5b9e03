//! The server engine: shared state, records, dispatch of client frames and the periodic tasks.
//!
//! All state lives in one [`State`] behind a `std::sync::Mutex` in [`Shared`]. The lock is never
//! held across an `.await`, and application code (handlers, hooks, filters) always runs after it
//! is released: functions that change state collect the hooks to run in a [`Deferred`] list.
//!
//! Internal routes (call signalling, the logout route) are ordinary [`Route`]s registered before
//! the application's routes. They reach the engine through the crate-private methods of
//! [`ServerHandle`](crate::ServerHandle) documented in `internal.rs`.

pub(crate) mod auth;
pub(crate) mod dispatch;
pub(crate) mod internal;
pub(crate) mod listeners;
pub(crate) mod records;
pub(crate) mod reliability;

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use askless_protocol::{
    ClientIdInternalApp, ClientRequestId, ErrorBody, ListenId, NewDataForListener, Response,
    ServerConfirmReceipt, ServerId, ServerMessage, StopListening,
};
use futures_util::FutureExt as _;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::authentication::Authenticator;
use crate::config::MockConfig;
use crate::expect::Expect;
use crate::faults::FaultState;
use crate::inspect::{ConnectionId, Direction, Frame};
use crate::notify::Notify;
use crate::route::{Route, RouteContext, RouteResult};

pub(crate) use records::Record;

/// A piece of work started by a frame (a handler call and what follows it), polled by the
/// connection that received the frame so that handlers which finish at once respond before the
/// next frame is read.
pub(crate) type Work = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Hooks and other application callbacks to run once the state lock is released.
pub(crate) type Deferred = Vec<Box<dyn FnOnce() + Send>>;

pub(crate) fn run_deferred(deferred: Deferred) {
    for callback in deferred {
        if std::panic::catch_unwind(AssertUnwindSafe(callback)).is_err() {
            tracing::warn!("a route hook panicked; the mock keeps serving");
        }
    }
}

/// The "on received" action of a queued message, run when the client confirms it.
pub(crate) type ReceivedHook = Arc<dyn Fn(&Arc<Shared>) + Send + Sync>;

/// Class of an outgoing frame, by which faults apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameClass {
    Welcome,
    Pong,
    Receipt,
    Response,
    NewData,
    StopListening,
    /// Written as is, whatever the faults (garbled frames, released responses).
    Raw,
}

/// A command for the writer of a connection.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Frame {
        text: String,
        class: FrameClass,
    },
    /// A close frame without status code.
    Close,
}

/// A live WebSocket connection.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) client_id: Option<ClientIdInternalApp>,
    pub(crate) outbox: mpsc::UnboundedSender<Outgoing>,
    pub(crate) kill: Arc<tokio::sync::Notify>,
    pub(crate) alive: bool,
}

/// One change notification waiting for the notifier task.
pub(crate) struct NotifyJob {
    pub(crate) due: Instant,
    pub(crate) route: String,
    pub(crate) notify: Notify,
    pub(crate) filter: listeners::RecordFilter,
}

/// The whole server state, behind one lock.
pub(crate) struct State {
    pub(crate) routes: Vec<Arc<Route>>,
    pub(crate) authenticator: Option<Authenticator>,
    pub(crate) records: Vec<Record>,
    pub(crate) connections: BTreeMap<ConnectionId, Connection>,
    pub(crate) frames: Vec<Frame>,
    pub(crate) expectations: Vec<Expect>,
    pub(crate) faults: FaultState,
    pub(crate) started_at: Instant,
    pub(crate) next_connection: u64,
}

/// The state and the configuration, shared by every task of one server.
pub(crate) struct Shared {
    pub(crate) config: MockConfig,
    state: Mutex<State>,
    pub(crate) frame_events: watch::Sender<u64>,
    pub(crate) notify_jobs: mpsc::UnboundedSender<NotifyJob>,
}

impl Shared {
    pub(crate) fn new(config: MockConfig, notify_jobs: mpsc::UnboundedSender<NotifyJob>) -> Self {
        let state = State {
            routes: Vec::new(),
            authenticator: None,
            records: Vec::new(),
            connections: BTreeMap::new(),
            frames: Vec::new(),
            expectations: Vec::new(),
            faults: FaultState::default(),
            started_at: Instant::now(),
            next_connection: 1,
        };
        Self {
            config,
            state: Mutex::new(state),
            frame_events: watch::channel(0).0,
            notify_jobs,
        }
    }

    /// Locks the state. A panic while the lock was held cannot leave it inconsistent in a way
    /// that matters to a test server, so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a frame and wakes the waiters.
    pub(crate) fn record_frame(&self, connection: ConnectionId, direction: Direction, text: String) {
        let count = {
            let mut state = self.lock();
            let index = state.frames.len() as u64;
            state.frames.push(Frame {
                index,
                connection,
                direction,
                text,
                at: Instant::now(),
            });
            index + 1
        };
        self.frame_events.send_replace(count);
    }
}

impl State {
    /// Queues a frame on a connection; a connection that is gone is skipped.
    pub(crate) fn send_to_connection(&self, connection: ConnectionId, text: String, class: FrameClass) {
        if let Some(conn) = self.connections.get(&connection) {
            let _ = conn.outbox.send(Outgoing::Frame { text, class });
        }
    }

    /// Sends a frame through the record's current connection, if it has one.
    pub(crate) fn send_direct(&self, client_id: &ClientIdInternalApp, text: String, class: FrameClass) {
        let connection = self.record(client_id).and_then(|record| record.connection);
        if let Some(connection) = connection {
            self.send_to_connection(connection, text, class);
        }
    }

    /// Sends a server receipt for a request.
    pub(crate) fn send_receipt(&self, client_id: &ClientIdInternalApp, client_request_id: &ClientRequestId) {
        let receipt = ServerMessage::ServerConfirmReceipt(ServerConfirmReceipt {
            client_request_id: client_request_id.clone(),
            server_id: ServerId::generate_response(&mut rand::rng()),
        });
        self.send_direct(client_id, receipt.encode(), FrameClass::Receipt);
    }

    /// Queues a response in the record for retransmission and sends it.
    pub(crate) fn send_response(
        &mut self,
        client_id: &ClientIdInternalApp,
        response: Response,
        hook: Option<ReceivedHook>,
    ) {
        let server_id = response.server_id.clone();
        let text = ServerMessage::Response(response).encode();
        self.send_queued(client_id, server_id, text, FrameClass::Response, hook);
    }

    /// Sends a failed plain response.
    pub(crate) fn send_failure(
        &mut self,
        client_id: &ClientIdInternalApp,
        client_request_id: &ClientRequestId,
        code: &str,
        description: impl Into<String>,
    ) {
        let response = Response::failure(
            client_request_id.clone(),
            ServerId::generate_response(&mut rand::rng()),
            ErrorBody::new(code, description),
        );
        self.send_response(client_id, response, None);
    }

    /// Queues a listener value in the record for retransmission and sends it.
    pub(crate) fn send_new_data(
        &mut self,
        client_id: &ClientIdInternalApp,
        listen_id: &ListenId,
        output: Option<Value>,
        hook: Option<ReceivedHook>,
    ) {
        let server_id = ServerId::generate_new_data(&mut rand::rng(), listen_id);
        let message = ServerMessage::NewDataForListener(NewDataForListener {
            output,
            listen_id: listen_id.clone(),
            server_id: server_id.clone(),
        });
        self.send_queued(client_id, server_id, message.encode(), FrameClass::NewData, hook);
    }

    /// Sends a stop-listening event, which is never queued.
    pub(crate) fn send_stop_listening(&self, client_id: &ClientIdInternalApp, listen_id: &ListenId) {
        let message = ServerMessage::StopListening(StopListening {
            listen_id: listen_id.clone(),
            server_id: ServerId::generate_stop_listening(&mut rand::rng(), listen_id),
        });
        self.send_direct(client_id, message.encode(), FrameClass::StopListening);
    }

    fn send_queued(
        &mut self,
        client_id: &ClientIdInternalApp,
        server_id: ServerId,
        text: String,
        class: FrameClass,
        hook: Option<ReceivedHook>,
    ) {
        let Some(record) = self.record_mut(client_id) else {
            tracing::debug!(client_id = %client_id, "no record to queue a message in; dropped");
            return;
        };
        record.queue.push(records::Queued {
            server_id,
            text: text.clone(),
            class,
            first_sent: Instant::now(),
            hook,
        });
        self.send_direct(client_id, text, class);
    }

    /// Returns the client id bound to a connection, `None` when it is not configured.
    pub(crate) fn connection_client_id(&self, connection: ConnectionId) -> Option<ClientIdInternalApp> {
        self.connections.get(&connection)?.client_id.clone()
    }

    /// Returns the first route with this name, whatever its kind.
    pub(crate) fn first_route_named(&self, name: &str) -> Option<Arc<Route>> {
        self.routes.iter().find(|route| route.name == name).cloned()
    }

    /// Returns the first READ route with this name.
    pub(crate) fn read_route(&self, name: &str) -> Option<Arc<Route>> {
        self.routes
            .iter()
            .find(|route| route.name == name && route.kind == crate::RouteKind::Read)
            .cloned()
    }

    /// Returns the first route with this name whose kind is `kind` exactly as sent.
    pub(crate) fn route_of_kind(&self, name: &str, kind: &str) -> Option<Arc<Route>> {
        self.routes
            .iter()
            .find(|route| route.name == name && route.kind.as_str() == kind)
            .cloned()
    }
}

/// Runs a handler, turning a panic into `None` (the request then gets nothing more).
pub(crate) async fn run_handler(route: &Arc<Route>, ctx: RouteContext) -> Option<RouteResult> {
    let started = std::panic::catch_unwind(AssertUnwindSafe(|| (route.handler)(ctx)));
    let outcome = match started {
        Ok(future) => AssertUnwindSafe(future).catch_unwind().await,
        Err(panic) => Err(panic),
    };
    match outcome {
        Ok(result) => Some(result),
        Err(_) => {
            tracing::warn!(route = %route.name, kind = %route.kind, "route handler panicked; no response is sent");
            None
        }
    }
}
