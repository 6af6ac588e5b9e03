//! The call-signalling routes of the mock server: [`CallSignalling`] applied through the
//! engine's internal-route interface.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use askless_protocol::{ClientIdInternalApp, ListenId, UserId};
use serde_json::Value;

use super::{CALL_CREATE_ROUTES, CALL_READ_ROUTES, CallEffect, CallSignalling};
use crate::notify::Notify;
use crate::route::{ListenerInfo, Route, RouteError, RouteResult};
use crate::server::ServerHandle;

type SharedCalls = Arc<Mutex<CallSignalling>>;

fn lock(calls: &SharedCalls) -> MutexGuard<'_, CallSignalling> {
    // The state machine has no panicking paths (no indexing or unwrap), so a poisoned lock
    // still holds consistent state.
    calls.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Builds the internal call routes, all for authenticated users only, in the order the
/// reference server registers them, sharing one new call state.
pub(crate) fn call_routes() -> Vec<Route> {
    let calls: SharedCalls = Arc::new(Mutex::new(CallSignalling::new()));
    let mut all = Vec::new();
    for route in CALL_READ_ROUTES {
        all.push(read_route(route, &calls));
    }
    for route in CALL_CREATE_ROUTES {
        all.push(create_route(route, &calls));
    }
    all
}

fn read_route(name: &'static str, calls: &SharedCalls) -> Route {
    let reader = calls.clone();
    let starter = calls.clone();
    let stopper = calls.clone();
    let receiver = calls.clone();
    Route::read(name)
        .for_authenticated_users()
        .handler(move |ctx| {
            let value = lock(&reader).read(name, ctx.user_id.as_ref(), &ctx.params);
            async move {
                match value {
                    Some(value) => Ok(Some(value)),
                    None => {
                        tracing::warn!(
                            route = name,
                            "call route params are not an object; the reference server's handler throws here, so nothing is sent"
                        );
                        Err(RouteError::NoAnswer)
                    }
                }
            }
        })
        .on_start_listening(move |info| {
            let effects = lock(&starter).on_listen_started(name, info.user_id.as_ref(), &info.params);
            apply_hook(&info.server, effects, None);
        })
        .on_stop_listening(move |info| {
            let effects = lock(&stopper).on_listener_removed(name, info.user_id.as_ref(), &info.params);
            apply_hook(&info.server, effects, Some(info));
        })
        .on_received(move |hook| {
            let Some(listen_id) = &hook.listen_id else {
                return;
            };
            let Some(params) = listener_params(&hook.server, name, &hook.client_id, listen_id) else {
                tracing::debug!(route = name, %listen_id, "confirmed call value of a listener that is gone");
                return;
            };
            let output = hook.output.clone().unwrap_or(Value::Null);
            let effects = lock(&receiver).on_value_acknowledged(name, hook.user_id.as_ref(), &params, &output);
            apply_hook(&hook.server, effects, None);
        })
}

fn create_route(name: &'static str, calls: &SharedCalls) -> Route {
    let calls = calls.clone();
    Route::create(name).for_authenticated_users().handler(move |ctx| {
        let result = match &ctx.user_id {
            Some(user) => {
                let effects = lock(&calls)
                    .handle_create(name, user, &ctx.body)
                    .unwrap_or_default();
                apply(&ctx.server, effects, None)
            }
            None => {
                // The authentication gate rejects unauthenticated creates before the handler runs.
                tracing::warn!(route = name, "call create without user id; nothing is sent");
                Err(RouteError::NoAnswer)
            }
        };
        async move { result }
    })
}

/// Applies the effects of a hook, which never contain a response.
fn apply_hook(server: &ServerHandle, effects: Vec<CallEffect>, removed: Option<&ListenerInfo>) {
    if let Err(error) = apply(server, effects, removed) {
        tracing::warn!(?error, "a call hook produced a request outcome; ignored");
    }
}

/// Applies effects in order and returns the outcome of a create request (`Ok(None)` when the
/// effects contain no outcome).
///
/// `removed` is the listener whose stop hook produced the effects: the engine has already taken
/// it off its record, but the reference server still sends it the stop-listening events of the
/// clean-up it triggers.
fn apply(server: &ServerHandle, effects: Vec<CallEffect>, removed: Option<&ListenerInfo>) -> RouteResult {
    let mut outcome = Ok(None);
    for effect in effects {
        match effect {
            CallEffect::StopListeningAll { user, route } => stop_listening_all(server, &user, route, removed),
            CallEffect::Respond { output } => outcome = Ok(Some(output)),
            CallEffect::Fail { error } => {
                outcome = Err(RouteError::Failed {
                    code: error.code.map(|code| code.as_str().to_owned()),
                    description: error.description,
                });
            }
            CallEffect::NoResponse { reason } => {
                tracing::warn!(
                    reason,
                    "the reference server process dies on this call request; the mock sends nothing"
                );
                outcome = Err(RouteError::NoAnswer);
            }
            CallEffect::Notify {
                route,
                to_user,
                where_remote_user_id,
                value,
            } => {
                let mut notify = Notify::all().where_(move |target| {
                    let is_user = target
                        .user_id
                        .as_ref()
                        .is_some_and(|id| id.loosely_equals(&to_user));
                    let is_about = where_remote_user_id.as_ref().is_none_or(|remote| {
                        target
                            .params
                            .get("remoteUserId")
                            .and_then(UserId::from_value)
                            .is_some_and(|id| id.loosely_equals(remote))
                    });
                    is_user && is_about
                });
                if let Some(value) = value {
                    notify = notify.override_value(value);
                }
                server.notify_changes(route, notify);
            }
        }
    }
    outcome
}

/// Sends a stop-listening event to every listener of `route` on the first record of `user`.
fn stop_listening_all(server: &ServerHandle, user: &UserId, route: &str, removed: Option<&ListenerInfo>) {
    let records = server.records();
    let Some(first) = records
        .iter()
        .find(|record| record.user_id.as_ref().is_some_and(|id| id.loosely_equals(user)))
    else {
        tracing::debug!(route, "call clean-up: no record for this user");
        return;
    };
    let mut listen_ids: Vec<ListenId> = Vec::new();
    if let Some(removed) = removed {
        if removed.route == route && removed.client_id.as_str() == first.client_id.as_str() {
            listen_ids.push(removed.listen_id.clone());
        }
    }
    for listener in first.listeners.iter().filter(|listener| listener.route == route) {
        if !listen_ids.contains(&listener.listen_id) {
            listen_ids.push(listener.listen_id.clone());
        }
    }
    for listen_id in &listen_ids {
        server.send_stop_listening(&first.client_id, listen_id);
    }
}

fn listener_params(
    server: &ServerHandle,
    route: &str,
    client_id: &ClientIdInternalApp,
    listen_id: &ListenId,
) -> Option<Value> {
    server
        .listeners_of(route)
        .into_iter()
        .find(|listener| &listener.client_id == client_id && &listener.listen_id == listen_id)
        .map(|listener| listener.params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use askless_protocol::routes;

    #[test]
    fn call_routes_are_authenticated_only_and_ordered() {
        let routes = call_routes();
        let names: Vec<(&str, crate::RouteKind)> =
            routes.iter().map(|route| (route.name(), route.kind())).collect();
        assert_eq!(
            names,
            vec![
                (routes::CALL_RECEIVE, crate::RouteKind::Read),
                (routes::LISTEN_FOR_A_CALL, crate::RouteKind::Read),
                (routes::ICE_CANDIDATE_LIST, crate::RouteKind::Read),
                (routes::CALL_REQUEST, crate::RouteKind::Create),
                (routes::CALL_RESPONSE, crate::RouteKind::Create),
                (routes::ICE_CANDIDATE_LIST, crate::RouteKind::Create),
                (routes::CALL_CLOSE, crate::RouteKind::Create),
            ]
        );
        assert!(
            routes
                .iter()
                .all(|route| route.access() == crate::Access::AuthenticatedUsers)
        );
    }
}
