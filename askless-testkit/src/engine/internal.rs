//! The interface internal routes use to reach the engine, and the internal logout route.
//!
//! Internal routes (the call-signalling routes of `calls.rs`, then
//! `askless-internal/authentication`) are ordinary [`Route`]s registered before any
//! application route, so an application route with the same name and kind is never reached.
//! Their handlers and hooks receive a [`ServerHandle`] (in `RouteContext::server`,
//! `HookContext::server` and `ListenerInfo::server`) whose crate-private methods below give
//! access to the engine:
//!
//! - [`ServerHandle::listeners_of`]: the listeners of a route, with their record and user;
//! - [`ServerHandle::notify_filtered`]: a notification restricted to some records, with the
//!   public `where` filter and override value;
//! - [`ServerHandle::send_stop_listening`]: a stop-listening event to one listener;
//! - [`ServerHandle::stop_listening_for_user`] (public): stop-listening events for every listener
//!   of a route on the user's first record;
//! - [`ServerHandle::end_authentication`]: clears a record's authentication.
//!
//! "On received" hooks come from `Route::on_received` (run when the client confirms a successful
//! response or listener value) and stop hooks from `Route::on_stop_listening` (run for each
//! listener removed, whatever the reason). None of these methods may be called while the engine
//! lock is held; handlers and hooks always run without it.

use askless_protocol::{ClientIdInternalApp, ListenId, UserId, routes};
use serde_json::{Value, json};

use super::listeners::{RecordFilter, schedule_notify};
use crate::inspect::Authentication;
use crate::notify::Notify;
use crate::route::Route;
use crate::server::ServerHandle;

/// A listener as internal routes see it.
#[derive(Debug, Clone, PartialEq)]
#[allow(dead_code, reason = "read by the call-signalling routes")]
pub(crate) struct ListenerRef {
    pub(crate) client_id: ClientIdInternalApp,
    pub(crate) user_id: Option<UserId>,
    pub(crate) listen_id: ListenId,
    pub(crate) params: Value,
}

#[allow(dead_code, reason = "used by the call-signalling routes")]
impl ServerHandle {
    /// Returns every listener of `route`, in record creation order.
    pub(crate) fn listeners_of(&self, route: &str) -> Vec<ListenerRef> {
        let state = self.shared.lock();
        state
            .records
            .iter()
            .flat_map(|record| {
                record
                    .listeners
                    .iter()
                    .filter(|l| l.route.name == route)
                    .map(|l| ListenerRef {
                        client_id: record.client_id.clone(),
                        user_id: record.user_id.clone(),
                        listen_id: l.listen_id.clone(),
                        params: l.params.clone(),
                    })
            })
            .collect()
    }

    /// Schedules a notification of `route` restricted by `filter`.
    pub(crate) fn notify_filtered(&self, route: &str, notify: Notify, filter: RecordFilter) {
        schedule_notify(&self.shared, route, notify, filter);
    }

    /// Sends a stop-listening event for one listener of one record.
    pub(crate) fn send_stop_listening(&self, client_id: &ClientIdInternalApp, listen_id: &ListenId) {
        self.shared.lock().send_stop_listening(client_id, listen_id);
    }

    /// Ends the authentication of a record (used by the logout route when its quirk is off).
    pub(crate) fn end_authentication(&self, client_id: &ClientIdInternalApp) {
        if let Some(record) = self.shared.lock().record_mut(client_id) {
            record.authentication = Authentication::Unauthenticated;
            record.user_id = None;
            record.claims = Value::Null;
        }
    }
}

/// Builds the DELETE route `askless-internal/authentication`, which returns `{"result":"OK"}` when the record has a
/// user id, `{"result":"NO-OP"}` otherwise. Like the reference server it leaves the record
/// authenticated unless the quirk is switched off.
pub(crate) fn logout_route(keeps_authentication: bool) -> Route {
    Route::delete(routes::AUTHENTICATION)
        .for_all_users()
        .handler(move |ctx| async move {
            if ctx.user_id.is_none() {
                return Ok(Some(json!({"result": "NO-OP"})));
            }
            if !keeps_authentication {
                ctx.server.end_authentication(&ctx.client_id);
            }
            Ok(Some(json!({"result": "OK"})))
        })
}
