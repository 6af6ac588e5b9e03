//! Client records: identity, authentication, listeners, outgoing queue, de-duplication memory,
//! and the liveness and clean-up tasks that act on them.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use askless_protocol::{ClientIdInternalApp, ClientRequestId, ListenId, ServerId, UserId};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{Deferred, FrameClass, Outgoing, ReceivedHook, Shared, State};
use crate::inspect::{Authentication, ConnectionId, ListenerSnapshot, RecordSnapshot};
use crate::route::{ListenerInfo, Route};
use crate::server::ServerHandle;

/// A listener held by a record.
#[derive(Clone)]
pub(crate) struct Listener {
    pub(crate) route: Arc<Route>,
    pub(crate) params: Value,
    pub(crate) listen_id: ListenId,
    pub(crate) client_request_id: ClientRequestId,
    /// Copy of the record's locals when the listener was registered.
    pub(crate) locals: Value,
}

/// An unconfirmed message.
pub(crate) struct Queued {
    pub(crate) server_id: ServerId,
    pub(crate) text: String,
    pub(crate) class: FrameClass,
    pub(crate) first_sent: Instant,
    pub(crate) hook: Option<ReceivedHook>,
}

/// Everything the server keeps for one `clientIdInternalApp`, across connections.
pub(crate) struct Record {
    pub(crate) client_id: ClientIdInternalApp,
    pub(crate) authentication: Authentication,
    pub(crate) user_id: Option<UserId>,
    pub(crate) claims: Value,
    pub(crate) locals: Value,
    pub(crate) credential_error: Option<String>,
    pub(crate) listeners: Vec<Listener>,
    pub(crate) queue: Vec<Queued>,
    /// Each remembered request id, with when and in which order it was last seen.
    pub(crate) seen: HashMap<String, (Instant, u64)>,
    /// The ids of `seen` in the order they were last seen. An id seen again leaves a stale
    /// entry behind, recognised because its order differs from the one in `seen`.
    seen_order: VecDeque<(String, u64)>,
    /// The order number of the next id seen.
    next_seen: u64,
    pub(crate) connection: Option<ConnectionId>,
    pub(crate) client_type: Option<String>,
    pub(crate) created_at: Instant,
    pub(crate) disconnected_at: Option<Instant>,
    pub(crate) ever_bound: bool,
}

impl Record {
    fn new(client_id: ClientIdInternalApp) -> Self {
        Self {
            client_id,
            authentication: Authentication::Pending,
            user_id: None,
            claims: Value::Null,
            locals: json!({}),
            credential_error: None,
            listeners: Vec::new(),
            queue: Vec::new(),
            seen: HashMap::new(),
            seen_order: VecDeque::new(),
            next_seen: 0,
            connection: None,
            client_type: None,
            created_at: Instant::now(),
            disconnected_at: None,
            ever_bound: false,
        }
    }

    pub(crate) fn is_authenticated(&self) -> bool {
        self.authentication == Authentication::Authenticated
    }

    /// Resets authentication and empties the queue, as configure and authenticate do.
    /// Listeners and the de-duplication memory are kept.
    pub(crate) fn reset_for_new_session(&mut self) {
        self.authentication = Authentication::Pending;
        self.user_id = None;
        self.claims = Value::Null;
        self.locals = json!({});
        self.credential_error = None;
        self.queue.clear();
    }

    /// Remembers a request id; returns false when it was already remembered (a duplicate),
    /// refreshing its time.
    pub(crate) fn remember_request(
        &mut self,
        id: &ClientRequestId,
        memory: std::time::Duration,
        threshold: usize,
    ) -> bool {
        let now = Instant::now();
        let order = self.next_seen;
        self.next_seen += 1;
        if let Some(seen) = self.seen.get_mut(id.as_str()) {
            *seen = (now, order);
            self.seen_order.push_back((id.as_str().to_owned(), order));
            self.compact_seen_order();
            return false;
        }
        if self.seen.len() > threshold {
            self.forget_requests_older_than(now, memory);
        }
        self.seen.insert(id.as_str().to_owned(), (now, order));
        self.seen_order.push_back((id.as_str().to_owned(), order));
        true
    }

    /// Forgets the ids last seen more than `memory` before `now`. They sit at the front of
    /// `seen_order`, so this costs only the entries it removes, where scanning every id at
    /// every request past the threshold made a busy client's requests ever slower.
    fn forget_requests_older_than(&mut self, now: Instant, memory: std::time::Duration) {
        while let Some((id, order)) = self.seen_order.front() {
            match self.seen.get(id) {
                Some((seen_at, current)) if current == order => {
                    if now.duration_since(*seen_at) <= memory {
                        break;
                    }
                    self.seen.remove(id);
                }
                // A stale entry: the id was seen again later.
                _ => {}
            }
            self.seen_order.pop_front();
        }
        self.compact_seen_order();
    }

    /// Drops the stale entries of `seen_order` when they outnumber the live ones, so that a
    /// client repeating one id cannot grow it.
    fn compact_seen_order(&mut self) {
        if self.seen_order.len() > 2 * self.seen.len() + 1024 {
            let seen = &self.seen;
            self.seen_order
                .retain(|(id, order)| seen.get(id).is_some_and(|(_, current)| current == order));
        }
    }

    pub(crate) fn snapshot(&self) -> RecordSnapshot {
        RecordSnapshot {
            client_id: self.client_id.clone(),
            authentication: self.authentication,
            user_id: self.user_id.clone(),
            claims: self.claims.clone(),
            listeners: self
                .listeners
                .iter()
                .map(|listener| ListenerSnapshot {
                    route: listener.route.name.clone(),
                    params: listener.params.clone(),
                    listen_id: listener.listen_id.clone(),
                    client_request_id: listener.client_request_id.clone(),
                })
                .collect(),
            queued: self.queue.iter().map(|queued| queued.server_id.clone()).collect(),
            remembered_request_ids: self.seen.len(),
            connection: self.connection,
        }
    }
}

/// Builds the deferred call of a listener's stop hook.
pub(crate) fn stop_hook(
    shared: &Arc<Shared>,
    record: &Record,
    listener: &Listener,
) -> Option<Box<dyn FnOnce() + Send>> {
    let hook = listener.route.on_stop_listening.clone()?;
    let info = listener_info(shared, record, listener);
    Some(Box::new(move || hook(&info)))
}

/// Builds the deferred call of a listener's start hook.
pub(crate) fn start_hook(
    shared: &Arc<Shared>,
    record: &Record,
    listener: &Listener,
) -> Option<Box<dyn FnOnce() + Send>> {
    let hook = listener.route.on_start_listening.clone()?;
    let info = listener_info(shared, record, listener);
    Some(Box::new(move || hook(&info)))
}

fn listener_info(shared: &Arc<Shared>, record: &Record, listener: &Listener) -> ListenerInfo {
    ListenerInfo {
        route: listener.route.name.clone(),
        params: listener.params.clone(),
        listen_id: listener.listen_id.clone(),
        client_id: record.client_id.clone(),
        user_id: record.user_id.clone(),
        server: ServerHandle::from_shared(shared.clone()),
    }
}

impl State {
    pub(crate) fn record(&self, client_id: &ClientIdInternalApp) -> Option<&Record> {
        self.records.iter().find(|record| &record.client_id == client_id)
    }

    pub(crate) fn record_mut(&mut self, client_id: &ClientIdInternalApp) -> Option<&mut Record> {
        self.records
            .iter_mut()
            .find(|record| &record.client_id == client_id)
    }

    /// Returns the record of a client id, creating it when needed.
    pub(crate) fn record_or_create(&mut self, client_id: &ClientIdInternalApp) -> &mut Record {
        let position = match self
            .records
            .iter()
            .position(|record| &record.client_id == client_id)
        {
            Some(position) => position,
            None => {
                self.records.push(Record::new(client_id.clone()));
                self.records.len() - 1
            }
        };
        &mut self.records[position]
    }

    /// Removes every listener of a record matching `predicate`, collecting their stop hooks.
    pub(crate) fn remove_listeners(
        &mut self,
        shared: &Arc<Shared>,
        client_id: &ClientIdInternalApp,
        mut predicate: impl FnMut(&Listener) -> bool,
        deferred: &mut Deferred,
    ) {
        let Some(record) = self.record_mut(client_id) else {
            return;
        };
        let (removed, kept): (Vec<Listener>, Vec<Listener>) = std::mem::take(&mut record.listeners)
            .into_iter()
            .partition(|l| predicate(l));
        record.listeners = kept;
        let record = &*record;
        deferred.extend(
            removed
                .iter()
                .filter_map(|listener| stop_hook(shared, record, listener)),
        );
    }
}

/// Runs the close handler of a connection: the record it is bound to loses its listeners (stop
/// hooks run), its authentication and its sender, and remembers when it was disconnected.
pub(crate) fn connection_closed(shared: &Arc<Shared>, connection: ConnectionId) {
    let mut deferred = Deferred::new();
    {
        let mut state = shared.lock();
        let Some(conn) = state.connections.remove(&connection) else {
            return;
        };
        let strips_any = shared.config.quirks.old_connection_close_strips_record;
        if let Some(client_id) = conn.client_id {
            let bound_here = state
                .record(&client_id)
                .is_some_and(|r| r.connection == Some(connection));
            if bound_here || strips_any {
                state.remove_listeners(shared, &client_id, |_| true, &mut deferred);
                if let Some(record) = state.record_mut(&client_id) {
                    record.user_id = None;
                    record.claims = Value::Null;
                    record.authentication = Authentication::Undefined;
                    record.connection = None;
                    record.disconnected_at = Some(Instant::now());
                }
            }
        }
    }
    tracing::info!(connection = connection.get(), "connection closed");
    super::run_deferred(deferred);
}

/// Runs one tick of the liveness task, which terminates the connections that sent nothing since the
/// previous tick and unmarks the others.
pub(crate) fn liveness_tick(shared: &Arc<Shared>) {
    let mut state = shared.lock();
    for (id, conn) in state.connections.iter_mut() {
        if conn.alive {
            conn.alive = false;
        } else {
            tracing::debug!(
                connection = id.get(),
                "terminating a connection silent for a whole liveness tick"
            );
            conn.kill.notify_one();
        }
    }
}

/// Runs one tick of the record clean-up task.
pub(crate) fn cleanup_tick(shared: &Arc<Shared>) {
    let now = Instant::now();
    let config = &shared.config;
    let mut state = shared.lock();
    let (expired, kept): (Vec<Record>, Vec<Record>) = std::mem::take(&mut state.records)
        .into_iter()
        .partition(|record| {
            let disconnected_long_ago = record
                .disconnected_at
                .is_some_and(|at| now.duration_since(at) > config.record_cleanup_age);
            let never_bound =
                !record.ever_bound && now.duration_since(record.created_at) > config.never_bound_record_age;
            disconnected_long_ago || never_bound
        });
    state.records = kept;
    for record in expired {
        tracing::debug!(client_id = %record.client_id, "clean-up deleted a client record");
        if let Some(connection) = record.connection {
            if let Some(conn) = state.connections.get(&connection) {
                let _ = conn.outbox.send(Outgoing::Close);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MEMORY: Duration = Duration::from_secs(600);

    fn request(n: usize) -> ClientRequestId {
        ClientRequestId::new(format!("REQ-_{n}"))
    }

    #[tokio::test(start_paused = true)]
    async fn duplicate_request_is_recognised() {
        let mut record = Record::new(ClientIdInternalApp::new("app"));

        assert!(record.remember_request(&request(1), MEMORY, 100));
        assert!(!record.remember_request(&request(1), MEMORY, 100));
    }

    #[tokio::test(start_paused = true)]
    async fn expired_ids_are_forgotten_past_the_threshold() {
        let mut record = Record::new(ClientIdInternalApp::new("app"));
        for n in 0..5 {
            record.remember_request(&request(n), MEMORY, 3);
        }
        tokio::time::advance(MEMORY - Duration::from_secs(1)).await;
        assert!(!record.remember_request(&request(4), MEMORY, 3), "seen again");
        tokio::time::advance(Duration::from_secs(2)).await;

        assert!(record.remember_request(&request(5), MEMORY, 3));

        assert_eq!(record.seen.len(), 2, "{:?}", record.seen.keys());
        assert!(!record.remember_request(&request(4), MEMORY, 3));
        assert!(
            record.remember_request(&request(0), MEMORY, 3),
            "an expired id is new again"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn repeated_id_does_not_grow_the_order() {
        let mut record = Record::new(ClientIdInternalApp::new("app"));

        for _ in 0..10_000 {
            record.remember_request(&request(1), MEMORY, 100);
        }

        assert_eq!(record.seen.len(), 1);
        assert!(
            record.seen_order.len() <= 1026,
            "{} entries",
            record.seen_order.len()
        );
    }
}
