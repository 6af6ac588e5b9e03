//! Names of the internal routes every Askless server registers.

/// DELETE route a client calls to clear its authentication (logout).
pub const AUTHENTICATION: &str = "askless-internal/authentication";
/// READ route, listened by a user to receive incoming calls.
pub const CALL_RECEIVE: &str = "askless-internal/call/receive";
/// CREATE route on which the caller requests a call (with its SDP offer).
pub const CALL_REQUEST: &str = "askless-internal/call/request";
/// CREATE route on which the callee accepts (with its SDP answer) or rejects a call.
pub const CALL_RESPONSE: &str = "askless-internal/call/response";
/// READ route, listened per peer: answer, rejection, closing and the peer's presence.
pub const LISTEN_FOR_A_CALL: &str = "askless-internal/call/listen-for-a-call";
/// READ route (listened) and CREATE route (publish) for the ICE candidates of a peer.
pub const ICE_CANDIDATE_LIST: &str = "askless-internal/call/ice-candidate-list";
/// CREATE route that hangs up a call.
pub const CALL_CLOSE: &str = "askless-internal/call/close";
/// Prefix reserved for the internal routes.
pub const INTERNAL_PREFIX: &str = "askless-internal/";
