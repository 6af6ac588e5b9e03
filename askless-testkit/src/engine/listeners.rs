//! Listeners: registration by LISTEN or ping, ping reconciliation, change notifications and
//! server-initiated stops.

use std::collections::HashSet;
use std::sync::Arc;

use askless_protocol::{ClientIdInternalApp, ClientRequestId, ListenId, Response, ServerId, UserId};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::records::{Listener, start_hook, stop_hook};
use super::{Deferred, FrameClass, NotifyJob, ReceivedHook, Shared, Work, run_deferred, run_handler};
use crate::notify::{Notify, NotifyTarget};
use crate::route::{HookContext, Route, RouteContext, RouteError, RouteKind};
use crate::server::ServerHandle;

/// Filter on the records a notification visits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordFilter {
    /// Every record.
    All,
    /// Records whose user id equals that of this record when the notification runs (records
    /// without user id when it has none).
    SameUserAs(ClientIdInternalApp),
    /// One record only.
    #[allow(dead_code, reason = "used by the call-signalling routes")]
    Only(ClientIdInternalApp),
}

/// A listen to register: from a LISTEN request or from a ping entry.
pub(crate) struct ListenSpec {
    pub(crate) client_id: ClientIdInternalApp,
    pub(crate) client_request_id: ClientRequestId,
    pub(crate) route: String,
    pub(crate) params: Value,
    pub(crate) listen_id: ListenId,
}

/// Registers a listener and returns the work that computes its first value.
///
/// The caller has already sent the receipt (or none, for a ping re-creation).
pub(crate) fn listen(shared: &Arc<Shared>, spec: ListenSpec) -> Option<Work> {
    let mut deferred = Deferred::new();
    let prepared = {
        let mut state = shared.lock();
        let Some(route) = state.read_route(&spec.route) else {
            let description = format!("route not found: READ {}", spec.route);
            state.send_failure(
                &spec.client_id,
                &spec.client_request_id,
                "INVALID_ROUTE",
                description,
            );
            return None;
        };
        let listen_id = spec.listen_id.clone();
        state.remove_listeners(
            shared,
            &spec.client_id,
            |l| l.listen_id == listen_id,
            &mut deferred,
        );
        let record = state.record_or_create(&spec.client_id);
        let listener = Listener {
            route: route.clone(),
            params: spec.params.clone(),
            listen_id: spec.listen_id.clone(),
            client_request_id: spec.client_request_id.clone(),
            locals: record.locals.clone(),
        };
        if route.is_authenticated_only() && !record.is_authenticated() {
            deferred.extend(stop_hook(shared, record, &listener));
            let description = format!(
                "Could not perform the operation on (LISTEN) \"{}\" because authentication is required",
                spec.route
            );
            state.send_failure(
                &spec.client_id,
                &spec.client_request_id,
                "PENDING_AUTHENTICATION",
                description,
            );
            None
        } else {
            let ctx = listener_context(
                shared,
                &route,
                &spec.client_id,
                record.user_id.clone(),
                record.claims.clone(),
                &listener,
            );
            record.listeners.push(listener);
            Some((route, ctx))
        }
    };
    run_deferred(deferred);
    let (route, ctx) = prepared?;
    let shared = shared.clone();
    Some(Box::pin(async move {
        let Some(result) = run_handler(&route, ctx).await else {
            return;
        };
        finish_listen(&shared, &route, &spec, result);
    }))
}

fn listener_context(
    shared: &Arc<Shared>,
    route: &Route,
    client_id: &ClientIdInternalApp,
    user_id: Option<UserId>,
    claims: Value,
    listener: &Listener,
) -> RouteContext {
    RouteContext {
        route: route.name.clone(),
        kind: RouteKind::Read,
        params: listener.params.clone(),
        body: Value::Null,
        user_id,
        claims,
        locals: listener.locals.clone(),
        client_id: client_id.clone(),
        listen_id: Some(listener.listen_id.clone()),
        server: ServerHandle::from_shared(shared.clone()),
    }
}

/// Sends the outcome of a listener's first value.
fn finish_listen(shared: &Arc<Shared>, route: &Arc<Route>, spec: &ListenSpec, result: super::RouteResult) {
    let mut deferred = Deferred::new();
    {
        let mut state = shared.lock();
        match result {
            Ok(entity) => {
                let response = Response::success(
                    spec.client_request_id.clone(),
                    ServerId::generate_response(&mut rand::rng()),
                    Some(Value::String(spec.listen_id.as_str().to_owned())),
                );
                state.send_response(&spec.client_id, response, None);
                let output = entity.and_then(|entity| route.convert(entity));
                let hook = value_hook(
                    route,
                    &spec.client_id,
                    state.record(&spec.client_id).and_then(|r| r.user_id.clone()),
                    &output,
                    &spec.listen_id,
                );
                state.send_new_data(&spec.client_id, &spec.listen_id, output, hook);
                if let Some(record) = state.record(&spec.client_id) {
                    if let Some(listener) = record.listeners.iter().find(|l| l.listen_id == spec.listen_id) {
                        deferred.extend(start_hook(shared, record, listener));
                    }
                }
            }
            Err(RouteError::NoAnswer) => {}
            Err(RouteError::Failed { code, description }) => {
                let removes = matches!(
                    code.as_deref(),
                    Some("PERMISSION_DENIED" | "PENDING_AUTHENTICATION")
                );
                let error = match code {
                    Some(code) => askless_protocol::ErrorBody {
                        code: Some(code.into()),
                        description,
                    },
                    None => askless_protocol::ErrorBody {
                        code: Some(askless_protocol::AsklessErrorCode::InternalError),
                        description,
                    },
                };
                let response = Response::failure(
                    spec.client_request_id.clone(),
                    ServerId::generate_response(&mut rand::rng()),
                    error,
                );
                state.send_response(&spec.client_id, response, None);
                if removes {
                    let crid = spec.client_request_id.clone();
                    let listen_id = spec.listen_id.clone();
                    state.remove_listeners(
                        shared,
                        &spec.client_id,
                        |l| l.listen_id == listen_id && l.client_request_id == crid,
                        &mut deferred,
                    );
                }
            }
        }
    }
    run_deferred(deferred);
}

/// Builds the "on received" hook of a listener value.
pub(crate) fn value_hook(
    route: &Arc<Route>,
    client_id: &ClientIdInternalApp,
    user_id: Option<UserId>,
    output: &Option<Value>,
    listen_id: &ListenId,
) -> Option<ReceivedHook> {
    let hook = route.on_received.clone()?;
    let route_name = route.name.clone();
    let client_id = client_id.clone();
    let output = output.clone();
    let listen_id = listen_id.clone();
    Some(Arc::new(move |shared: &Arc<Shared>| {
        hook(&HookContext {
            route: route_name.clone(),
            kind: RouteKind::Read,
            client_id: client_id.clone(),
            user_id: user_id.clone(),
            output: output.clone(),
            listen_id: Some(listen_id.clone()),
            server: ServerHandle::from_shared(shared.clone()),
        });
    }))
}

/// One entry of a ping's `listeningToRoutes`, read leniently so that a bad entry only matters
/// when the server has to re-create it.
#[derive(Debug, Clone)]
pub(crate) struct PingEntry {
    pub(crate) client_request_id: Option<ClientRequestId>,
    pub(crate) route: Option<String>,
    pub(crate) params: Value,
    pub(crate) listen_id: Option<ListenId>,
}

impl PingEntry {
    pub(crate) fn from_value(entry: &Value) -> Self {
        let text = |key: &str| {
            entry
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Self {
            client_request_id: text("clientRequestId").map(ClientRequestId::new),
            route: text("route"),
            params: entry.get("params").cloned().unwrap_or(Value::Null),
            listen_id: text("listenId").map(ListenId::new),
        }
    }
}

/// Handles a ping from a connection: `pong` through the record's current connection, then
/// listener reconciliation. `entries` is `None` when the ping had no usable `listeningToRoutes`.
pub(crate) fn ping(
    shared: &Arc<Shared>,
    connection: crate::ConnectionId,
    entries: Option<Vec<PingEntry>>,
) -> Option<Work> {
    let mut deferred = Deferred::new();
    let (client_id, to_recreate) = {
        let mut state = shared.lock();
        let Some(client_id) = state.connection_client_id(connection) else {
            tracing::debug!(connection = connection.get(), "ping before configure ignored");
            return None;
        };
        state.record_or_create(&client_id);
        state.send_direct(
            &client_id,
            askless_protocol::marker::PONG_TEXT.to_owned(),
            FrameClass::Pong,
        );
        let Some(entries) = entries else {
            tracing::warn!(
                connection = connection.get(),
                "ping without a listeningToRoutes array; the reference server fails here, the mock ignores the rest of the frame"
            );
            return None;
        };
        // Sets, not vectors: a ping lists every listener, so a scan per listener would make a
        // ping of n listeners cost n² comparisons.
        let listed: HashSet<ListenId> = entries.iter().filter_map(|e| e.listen_id.clone()).collect();
        state.remove_listeners(
            shared,
            &client_id,
            |l| !listed.contains(&l.listen_id),
            &mut deferred,
        );
        let held: HashSet<ListenId> = state
            .record(&client_id)
            .map(|r| r.listeners.iter().map(|l| l.listen_id.clone()).collect())
            .unwrap_or_default();
        let to_recreate: Vec<PingEntry> = entries
            .into_iter()
            .filter(|e| e.listen_id.as_ref().is_none_or(|id| !held.contains(id)))
            .collect();
        (client_id, to_recreate)
    };
    run_deferred(deferred);
    if to_recreate.is_empty() {
        return None;
    }
    let shared = shared.clone();
    Some(Box::pin(async move {
        for entry in to_recreate {
            let Some(spec) = recreation_spec(&shared, &client_id, entry) else {
                return;
            };
            if let Some(work) = listen(&shared, spec) {
                work.await;
            }
        }
    }))
}

/// Checks a ping entry the server must re-create; the reference server fails on the entries
/// rejected here, so the mock logs them and drops the rest of the ping.
fn recreation_spec(
    shared: &Arc<Shared>,
    client_id: &ClientIdInternalApp,
    entry: PingEntry,
) -> Option<ListenSpec> {
    let route_known = entry
        .route
        .as_deref()
        .is_some_and(|route| shared.lock().read_route(route).is_some());
    match (entry.client_request_id, entry.route, entry.listen_id) {
        (Some(client_request_id), Some(route), Some(listen_id)) if route_known => Some(ListenSpec {
            client_id: client_id.clone(),
            client_request_id,
            route,
            params: entry.params,
            listen_id,
        }),
        _ => {
            tracing::warn!(client_id = %client_id, "ping lists a listener the mock cannot re-create (unknown READ route, or no clientRequestId or listenId); the reference server fails here, the mock ignores the rest of the ping");
            None
        }
    }
}

/// Queues a notification for the notifier task.
pub(crate) fn schedule_notify(shared: &Arc<Shared>, route: &str, notify: Notify, filter: RecordFilter) {
    let now = Instant::now();
    let grace_end = shared.lock().started_at + shared.config.notify_grace;
    let due = (now + shared.config.notify_delay).max(grace_end);
    let job = NotifyJob {
        due,
        route: route.to_owned(),
        notify,
        filter,
    };
    if shared.notify_jobs.send(job).is_err() {
        tracing::warn!(route, "notification dropped: the server is shut down");
    }
}

/// Processes notifications (the notifier task) in request order, each at its due time.
pub(crate) async fn notifier(shared: std::sync::Weak<Shared>, mut jobs: mpsc::UnboundedReceiver<NotifyJob>) {
    while let Some(job) = jobs.recv().await {
        tokio::time::sleep_until(job.due).await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        run_notify(&shared, &job.route, &job.notify, &job.filter).await;
    }
}

struct Target {
    route: Arc<Route>,
    client_id: ClientIdInternalApp,
    listener: Listener,
    user_id: Option<UserId>,
    claims: Value,
}

fn collect_targets(shared: &Arc<Shared>, route: &str, filter: &RecordFilter) -> Vec<Target> {
    let state = shared.lock();
    let same_user = match filter {
        RecordFilter::SameUserAs(client_id) => match state.record(client_id) {
            Some(record) => Some(record.user_id.clone()),
            None => return Vec::new(),
        },
        _ => None,
    };
    let mut targets = Vec::new();
    for record in &state.records {
        if let Some(user_id) = &same_user {
            if &record.user_id != user_id {
                continue;
            }
        }
        if let RecordFilter::Only(only) = filter {
            if &record.client_id != only {
                continue;
            }
        }
        for listener in record.listeners.iter().filter(|l| l.route.name == route) {
            if listener.route.is_authenticated_only() && !record.is_authenticated() {
                continue;
            }
            targets.push(Target {
                route: listener.route.clone(),
                client_id: record.client_id.clone(),
                listener: listener.clone(),
                user_id: record.user_id.clone(),
                claims: record.claims.clone(),
            });
        }
    }
    targets
}

/// Pushes one value to every matching listener of `route`, evaluated now.
pub(crate) async fn run_notify(shared: &Arc<Shared>, route: &str, notify: &Notify, filter: &RecordFilter) {
    for target in collect_targets(shared, route, filter) {
        let visible = NotifyTarget {
            params: target.listener.params.clone(),
            user_id: target.user_id.clone(),
            claims: target.claims.clone(),
        };
        let accepted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| notify.accepts(&visible)));
        if !accepted.unwrap_or_else(|_| {
            tracing::warn!(route, "a notification's where filter panicked; listener skipped");
            false
        }) {
            continue;
        }
        let entity = match &notify.override_value {
            Some(value) => Some(value.clone()),
            None => {
                let ctx = listener_context(
                    shared,
                    &target.route,
                    &target.client_id,
                    target.user_id.clone(),
                    target.claims.clone(),
                    &target.listener,
                );
                match run_handler(&target.route, ctx).await {
                    Some(Ok(entity)) => entity,
                    Some(Err(_)) | None => continue,
                }
            }
        };
        let output = entity.and_then(|entity| target.route.convert(entity));
        let hook = value_hook(
            &target.route,
            &target.client_id,
            target.user_id.clone(),
            &output,
            &target.listener.listen_id,
        );
        shared
            .lock()
            .send_new_data(&target.client_id, &target.listener.listen_id, output, hook);
    }
}

/// Sends a stop-listening event for every listener of `route` on the first record of `user_id`,
/// without removing the listeners.
pub(crate) fn stop_listening_for_user(shared: &Arc<Shared>, route: &str, user_id: &UserId) {
    let state = shared.lock();
    let Some(record) = state.records.iter().find(|r| r.user_id.as_ref() == Some(user_id)) else {
        tracing::debug!(route, "stop listening: no record for this user");
        return;
    };
    for listener in record.listeners.iter().filter(|l| l.route.name == route) {
        state.send_stop_listening(&record.client_id, &listener.listen_id);
    }
}
