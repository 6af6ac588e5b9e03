//! Call signalling: the internal `askless-internal/call/*` routes of an Askless 2.0.3 server.
//!
//! Two authenticated users signal a WebRTC call to each other through these routes. This module
//! contains the server's call state and its rules as pure logic. Every operation updates the
//! state and returns the [`CallEffect`]s the engine has to apply (stop-listening events, the
//! response, notifications), in the order the reference server puts them on the wire. The
//! engine does the I/O, so nothing here touches a socket, a clock or a record.
//!
//! # State
//!
//! The state is kept per user id for the whole server, not per connection:
//!
//! - `signal[A→B]`: the last signalling object user A posted for user B: the body of its call
//!   request or acceptance without `remoteUserId`, or a rejection;
//! - `ice[A→B]`: the last ICE candidate list A posted for B;
//! - `pending[B]`: the users whose call request to B is unanswered, oldest first. Once created
//!   for B the list stays, possibly empty, and that matters: an accept is refused with
//!   `CALL_NOT_AVAILABLE_ANYMORE` only when B never had a list;
//! - `alone`: a multiset of users whose peer's listen-for-a-call stream stopped.
//!
//! Map keys and notification filters compare user ids the way JavaScript object keys and `==`
//! do, so `2` and `"2"` are the same user. The membership tests on `pending` and `alone` compare
//! strictly, so there `2` and `"2"` differ. The reference server does both.
//!
//! # Contract with the engine
//!
//! - [`CallSignalling::handle_create`] runs the handler of a CREATE route and returns effects
//!   that contain exactly one of [`CallEffect::Respond`], [`CallEffect::Fail`] or
//!   [`CallEffect::NoResponse`].
//! - [`CallSignalling::read`] computes the value of a READ route for one listener or read; the
//!   engine calls it for the first value of a listen, for reads and for every
//!   [`CallEffect::Notify`] whose `value` is `None`.
//! - [`CallSignalling::on_listen_started`] runs after a listener received its first value;
//!   [`CallSignalling::on_listener_removed`] runs while the removed listener is still registered
//!   (so a [`CallEffect::StopListeningAll`] it returns also reaches that listener), and the
//!   engine removes the listener before it computes the notifications;
//!   [`CallSignalling::on_value_acknowledged`] runs when a client confirms a pushed value.
//! - Effects are ordered: every stop-listening effect of an operation comes first, then the
//!   response, then the notifications. Stop-listening events are sent at once; notifications
//!   are processed like every other notification (after the start-up grace, on a short timer),
//!   so they reach the wire after the response.

mod server_routes;
mod state;
#[cfg(test)]
mod tests;

use askless_protocol::{ErrorBody, UserId, routes};
use serde_json::Value;

pub(crate) use server_routes::call_routes;
pub use state::CallSignalling;

/// The READ routes of call signalling, in the order the reference server registers them.
pub const CALL_READ_ROUTES: [&str; 3] = [
    routes::CALL_RECEIVE,
    routes::LISTEN_FOR_A_CALL,
    routes::ICE_CANDIDATE_LIST,
];

/// The CREATE routes of call signalling, in the order the reference server registers them.
pub const CALL_CREATE_ROUTES: [&str; 4] = [
    routes::CALL_REQUEST,
    routes::CALL_RESPONSE,
    routes::ICE_CANDIDATE_LIST,
    routes::CALL_CLOSE,
];

/// Description of the `CALL_NOT_AVAILABLE_ANYMORE` error.
pub const CALL_NOT_AVAILABLE_DESCRIPTION: &str = "The call is no longer available";

/// One thing the engine has to do as the result of a call-signalling operation.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEffect {
    /// Send a stop-listening event, at once, to every listener on `route` of the first client
    /// record whose user id loosely equals `user`. The listeners stay registered.
    StopListeningAll {
        /// The user whose first record receives the events.
        user: UserId,
        /// The READ route of the listeners; always the listen-for-a-call route.
        route: &'static str,
    },
    /// Finish the CREATE request with a successful response carrying `output`.
    Respond {
        /// The response output.
        output: Value,
    },
    /// Finish the CREATE request with an error response.
    Fail {
        /// The error of the response.
        error: ErrorBody,
    },
    /// Send nothing for the CREATE request after its receipt.
    ///
    /// The reference server's handler throws, and its process dies, on a call response without
    /// `remoteUserId` or with the responding user's own id, and on a body that is not an
    /// object. The mock stays up, logs the reason and sends nothing more.
    NoResponse {
        /// The reason the request gets no response, for the log.
        reason: &'static str,
    },
    /// Notify the listeners on `route` of every record whose user id loosely equals `to_user`.
    Notify {
        /// The READ route to notify.
        route: &'static str,
        /// Only records of this user are notified.
        to_user: UserId,
        /// When set, only listeners whose `params.remoteUserId` loosely equals this id.
        where_remote_user_id: Option<UserId>,
        /// The value to push as is; `None` means: compute each listener's value with
        /// [`CallSignalling::read`] when the notification runs.
        value: Option<Value>,
    },
}

/// Returns whether `route` is one of the call-signalling routes.
pub fn is_call_route(route: &str) -> bool {
    CALL_READ_ROUTES.contains(&route) || CALL_CREATE_ROUTES.contains(&route)
}
