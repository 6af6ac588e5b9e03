//! The public server: start, registration, notifications, inspection, expectations, restart.

mod socket;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use askless_protocol::{ClientIdInternalApp, UserId};
use askless_transport::WebSocketListener;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use crate::authentication::AuthDecision;
use crate::config::MockConfig;
use crate::engine::listeners::{RecordFilter, schedule_notify, stop_listening_for_user};
use crate::engine::{Shared, internal, records, reliability};
use crate::expect::{self, Expect};
use crate::faults::Faults;
use crate::inspect::{ConnectionId, Direction, Frame, RecordSnapshot, WaitTimeout};
use crate::notify::Notify;
use crate::route::Route;

/// A cloneable handle to a running mock server, given to handlers and hooks.
///
/// [`MockServer`] dereferences to it, so every method here is available on the server itself.
#[derive(Clone)]
pub struct ServerHandle {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle").finish_non_exhaustive()
    }
}

impl ServerHandle {
    pub(crate) fn from_shared(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// Registers a route after every route registered before it. Lookups take the first match
    /// in registration order, as the reference server does.
    pub fn route(&self, route: Route) -> &Self {
        let mut state = self.shared.lock();
        if let Some(expectation) = route.expectation() {
            state.expectations.push(expectation);
        }
        state.routes.push(Arc::new(route));
        self
    }

    /// Sets the authenticate handler, which receives the request's `credential` (`null` when
    /// absent). Default: every credential is accepted as unauthenticated.
    pub fn authenticate_with<F, Fut>(&self, handler: F) -> &Self
    where
        F: Fn(Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = AuthDecision> + Send + 'static,
    {
        self.shared.lock().authenticator = Some(Arc::new(move |credential| Box::pin(handler(credential))));
        self
    }

    /// Pushes a new value to every matching listener of the READ route `route`.
    ///
    /// The notification runs `notify_delay` (1 ms) after this call, or at the end of the
    /// start-up grace period (`notify_grace`) if that is later, against the state of that moment.
    /// Authenticated-only listeners of unauthenticated records are skipped, and a listener whose
    /// handler fails receives nothing.
    ///
    /// NOTE: notifications run one after the other in one task, so a handler that never
    /// completes holds back every later notification of the server.
    pub fn notify_changes(&self, route: &str, notify: Notify) {
        schedule_notify(&self.shared, route, notify, RecordFilter::All);
    }

    /// Sends a stop-listening event for every listener of `route` on the first record
    /// authenticated as `user_id`, without removing the listeners.
    pub fn stop_listening_for_user(&self, route: &str, user_id: impl Into<UserId>) {
        stop_listening_for_user(&self.shared, route, &user_id.into());
    }

    /// Returns the fault switches.
    pub fn faults(&self) -> Faults {
        Faults {
            shared: self.shared.clone(),
        }
    }

    /// Adds an expectation, checked when the server drops or by [`ServerHandle::verify`].
    pub fn expect(&self, expectation: Expect) -> &Self {
        self.shared.lock().expectations.push(expectation);
        self
    }

    /// Removes every expectation, those of routes included.
    pub fn clear_expectations(&self) {
        self.shared.lock().expectations.clear();
    }

    /// Checks every expectation now.
    ///
    /// # Panics
    /// Panics with a report of the unmet expectations and the frames received.
    pub fn verify(&self) {
        if let Err(report) = self.check_expectations() {
            panic!("{report}");
        }
    }

    fn check_expectations(&self) -> Result<(), String> {
        let state = self.shared.lock();
        expect::check(&state.expectations, &state.frames)
    }

    /// Returns every frame received and sent so far, in order.
    pub fn frames(&self) -> Vec<Frame> {
        self.shared.lock().frames.clone()
    }

    /// Returns the frames received from clients, in order.
    pub fn received_frames(&self) -> Vec<Frame> {
        self.frames_in(Direction::Received)
    }

    /// Returns the frames written to clients, in order.
    pub fn sent_frames(&self) -> Vec<Frame> {
        self.frames_in(Direction::Sent)
    }

    /// Returns the frames of one connection, both directions, in order.
    pub fn connection_frames(&self, connection: ConnectionId) -> Vec<Frame> {
        let state = self.shared.lock();
        state
            .frames
            .iter()
            .filter(|f| f.connection == connection)
            .cloned()
            .collect()
    }

    fn frames_in(&self, direction: Direction) -> Vec<Frame> {
        let state = self.shared.lock();
        state
            .frames
            .iter()
            .filter(|f| f.direction == direction)
            .cloned()
            .collect()
    }

    /// Returns how many WebSocket connections are open.
    pub fn connection_count(&self) -> usize {
        self.shared.lock().connections.len()
    }

    /// Returns how many listeners of `route` all records hold together.
    pub fn listener_count(&self, route: &str) -> usize {
        let state = self.shared.lock();
        state
            .records
            .iter()
            .map(|record| record.listeners.iter().filter(|l| l.route.name == route).count())
            .sum()
    }

    /// Returns a snapshot of every client record, in creation order.
    pub fn records(&self) -> Vec<RecordSnapshot> {
        self.shared
            .lock()
            .records
            .iter()
            .map(records::Record::snapshot)
            .collect()
    }

    /// Returns a snapshot of the record of a client id.
    pub fn record(&self, client_id: &str) -> Option<RecordSnapshot> {
        let client_id = ClientIdInternalApp::new(client_id);
        self.shared
            .lock()
            .record(&client_id)
            .map(records::Record::snapshot)
    }

    /// Waits for a frame, already recorded or future, for which `predicate` returns true.
    ///
    /// # Errors
    /// [`WaitTimeout`] when no such frame arrives within `timeout` (on the tokio clock).
    pub async fn wait_for_frame<P>(&self, mut predicate: P, timeout: Duration) -> Result<Frame, WaitTimeout>
    where
        P: FnMut(&Frame) -> bool,
    {
        let deadline = Instant::now() + timeout;
        let mut events = self.shared.frame_events.subscribe();
        let mut checked = 0;
        loop {
            {
                let state = self.shared.lock();
                if let Some(frame) = state.frames[checked..].iter().find(|f| predicate(f)) {
                    return Ok(frame.clone());
                }
                checked = state.frames.len();
            }
            if tokio::time::timeout_at(deadline, events.changed()).await.is_err() {
                return Err(WaitTimeout {
                    what: "a matching frame",
                    waited_ms: timeout.as_millis(),
                });
            }
        }
    }

    /// Waits until `condition` returns true, checking after every frame and every 10 ms.
    ///
    /// # Errors
    /// [`WaitTimeout`] when the condition still fails after `timeout` (on the tokio clock).
    pub async fn wait_until<C>(&self, mut condition: C, timeout: Duration) -> Result<(), WaitTimeout>
    where
        C: FnMut(&ServerHandle) -> bool,
    {
        let deadline = Instant::now() + timeout;
        let mut events = self.shared.frame_events.subscribe();
        loop {
            if condition(self) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(WaitTimeout {
                    what: "a condition",
                    waited_ms: timeout.as_millis(),
                });
            }
            let step = (Instant::now() + Duration::from_millis(10)).min(deadline);
            let _ = tokio::time::timeout_at(step, events.changed()).await;
        }
    }
}

/// Builds a [`MockServer`] with a custom configuration.
#[derive(Debug, Default)]
pub struct MockServerBuilder {
    config: MockConfig,
    // Added for the askless-mock-server binary, which serves on a port chosen by its user.
    address: Option<SocketAddr>,
}

impl MockServerBuilder {
    /// Replaces the whole configuration. Default: [`MockConfig::default`].
    pub fn config(mut self, config: MockConfig) -> Self {
        self.config = config;
        self
    }

    /// Uses [`MockConfig::well_behaved`]: no quirks, no notification grace period.
    pub fn well_behaved(mut self) -> Self {
        self.config = MockConfig::well_behaved();
        self
    }

    /// Changes the configuration in place.
    pub fn configure(mut self, change: impl FnOnce(&mut MockConfig)) -> Self {
        change(&mut self.config);
        self
    }

    /// Binds `address` instead of a free port on 127.0.0.1. Only loopback addresses are
    /// accepted, see [`MockServerBuilder::try_start`]. Default: `127.0.0.1:0`.
    pub fn bind_address(mut self, address: SocketAddr) -> Self {
        self.address = Some(address);
        self
    }

    /// Binds 127.0.0.1 on a free port (or the [bind address](Self::bind_address)) and starts
    /// serving.
    ///
    /// # Panics
    /// Panics when the port cannot be bound, which leaves a test nothing to do.
    pub async fn start(self) -> MockServer {
        let address = self.address.unwrap_or(DEFAULT_ADDRESS);
        MockServer::try_start_with(self.config, address)
            .await
            .unwrap_or_else(|error| panic!("askless-testkit: binding {address} failed: {error}"))
    }

    /// Starts serving like [`MockServerBuilder::start`], but returns an error instead of
    /// panicking when the address is not a loopback address or cannot be bound.
    pub async fn try_start(self) -> std::io::Result<MockServer> {
        MockServer::try_start_with(self.config, self.address.unwrap_or(DEFAULT_ADDRESS)).await
    }
}

/// The address a mock binds unless told otherwise: a free port on 127.0.0.1.
const DEFAULT_ADDRESS: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// A mock Askless server on a loopback port, behaving like the Askless server 2.0.3.
///
/// Dropping it stops every task, closes every connection and verifies the expectations.
pub struct MockServer {
    handle: ServerHandle,
    address: SocketAddr,
    accept_task: Mutex<Option<JoinHandle<()>>>,
    timers: Vec<JoinHandle<()>>,
}

impl fmt::Debug for MockServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockServer")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for MockServer {
    type Target = ServerHandle;

    fn deref(&self) -> &ServerHandle {
        &self.handle
    }
}

impl MockServer {
    /// Starts a server with [`MockConfig::default`] on 127.0.0.1 and a free port.
    ///
    /// # Panics
    /// Panics when no loopback port can be bound.
    pub async fn start() -> Self {
        Self::start_with(MockConfig::default()).await
    }

    /// Returns a builder for a server with another configuration.
    pub fn builder() -> MockServerBuilder {
        MockServerBuilder::default()
    }

    async fn start_with(config: MockConfig) -> Self {
        Self::try_start_with(config, DEFAULT_ADDRESS)
            .await
            .unwrap_or_else(|error| panic!("askless-testkit: binding 127.0.0.1:0 failed: {error}"))
    }

    async fn try_start_with(config: MockConfig, address: SocketAddr) -> std::io::Result<Self> {
        if !address.ip().is_loopback() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{} is not a loopback address; the mock serves 127.0.0.0/8 or ::1 only",
                    address.ip()
                ),
            ));
        }
        let listener = socket::bind(address, config.max_frame_size).await?;
        let address = listener.local_addr();
        let (jobs, job_queue) = mpsc::unbounded_channel();
        let quirks = config.quirks;
        let shared = Arc::new(Shared::new(config, jobs));
        register_internal_routes(&shared, quirks.logout_keeps_authentication);
        let timers = spawn_timers(&shared, job_queue);
        let accept_task = tokio::spawn(socket::accept_loop(shared.clone(), listener));
        tracing::info!(%address, "mock Askless server listening");
        Ok(Self {
            handle: ServerHandle { shared },
            address,
            accept_task: Mutex::new(Some(accept_task)),
            timers,
        })
    }

    /// Returns the URL clients connect to, `ws://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("ws://{}", self.address)
    }

    /// Returns the bound socket address.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Returns a cloneable handle, for handlers and hooks that need the server.
    pub fn handle(&self) -> ServerHandle {
        self.handle.clone()
    }

    /// Simulates a server restart on the same port: every connection is terminated without close
    /// frame, every record (authentication, listeners, queues, de-duplication memory) is
    /// forgotten, and the port is bound again. Routes, expectations, faults and recorded frames
    /// are kept.
    ///
    /// # Panics
    /// Panics when the port cannot be bound again within about one second.
    pub async fn restart(&self) {
        let previous = self.accept_task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(task) = previous {
            task.abort();
            let _ = task.await;
        }
        {
            let mut state = self.shared.lock();
            state.connections.clear();
            state.records.clear();
            state.started_at = Instant::now();
        }
        let listener = rebind(self.address, self.shared.config.max_frame_size).await;
        let task = tokio::spawn(socket::accept_loop(self.shared.clone(), listener));
        *self.accept_task.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
        tracing::info!(address = %self.address, "mock Askless server restarted");
    }
}

async fn rebind(address: SocketAddr, max_frame_size: usize) -> WebSocketListener {
    let mut last_error = None;
    for _ in 0..50 {
        match socket::bind(address, max_frame_size).await {
            Ok(listener) => return listener,
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("askless-testkit: binding {address} again failed: {last_error:?}");
}

fn register_internal_routes(shared: &Arc<Shared>, logout_keeps_authentication: bool) {
    let mut internal_routes = crate::calls::call_routes();
    internal_routes.push(internal::logout_route(logout_keeps_authentication));
    shared
        .lock()
        .routes
        .extend(internal_routes.into_iter().map(Arc::new));
}

fn spawn_timers(
    shared: &Arc<Shared>,
    job_queue: mpsc::UnboundedReceiver<crate::engine::NotifyJob>,
) -> Vec<JoinHandle<()>> {
    let config = &shared.config;
    let mut timers = vec![tokio::spawn(crate::engine::listeners::notifier(
        Arc::downgrade(shared),
        job_queue,
    ))];
    timers.push(periodic(
        shared,
        Some(config.retransmission_interval),
        reliability::retransmission_tick,
    ));
    timers.push(periodic(shared, config.liveness_tick, records::liveness_tick));
    timers.push(periodic(
        shared,
        config.record_cleanup_tick,
        records::cleanup_tick,
    ));
    timers
}

/// Runs `tick` every `period` on a grid starting at the server start; `None` runs nothing.
fn periodic(shared: &Arc<Shared>, period: Option<Duration>, tick: fn(&Arc<Shared>)) -> JoinHandle<()> {
    let weak = Arc::downgrade(shared);
    tokio::spawn(async move {
        let Some(period) = period.filter(|p| !p.is_zero()) else {
            return;
        };
        let mut interval = tokio::time::interval_at(Instant::now() + period, period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let Some(shared) = weak.upgrade() else {
                return;
            };
            tick(&shared);
        }
    })
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(task) = self.accept_task.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
        for timer in &self.timers {
            timer.abort();
        }
        {
            // Dropping the writers' senders ends every connection task still running.
            let mut state = self.shared.lock();
            state.connections.clear();
        }
        if std::thread::panicking() {
            return;
        }
        if let Err(report) = self.check_expectations() {
            panic!("{report}");
        }
    }
}
