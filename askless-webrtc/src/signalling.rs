//! The signalling channel a call needs, as a trait the Askless client implements.

use std::fmt;
use std::pin::Pin;

use askless_protocol::call::{
    CallCloseBody, CallInfo, CallReceiveValue, CallRequestBody, CallResponseBody, IceCandidateList,
    ListenForACallValue,
};
use askless_protocol::{ErrorBody, UserId};
use async_trait::async_trait;
use futures::Stream;

/// A stream of values of one listened route.
///
/// The stream ends when the server stops the listener (a stop-listening event) or when the
/// connection is gone for good. Dropping it stops listening: the next ping omits the listener,
/// which is how the reference client cancels a call request.
pub type SignalStream<T> = Pin<Box<dyn Stream<Item = T> + Send + 'static>>;

/// A failed signalling operation.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SignallingError {
    /// The server answered the request with an error, such as `CALL_NOT_AVAILABLE_ANYMORE`.
    #[error("the server rejected the request: {}", describe_error_body(.0))]
    Server(ErrorBody),
    /// The request could not reach the server; the text gives the reason, such as a lost connection.
    #[error("the request could not be sent: {0}")]
    Unavailable(String),
}

fn describe_error_body(body: &ErrorBody) -> String {
    let code = body.code.as_ref().map_or("no code", |code| code.as_str());
    match &body.description {
        Some(description) => format!("{code}: {description}"),
        None => code.to_owned(),
    }
}

/// The call-signalling operations of an authenticated Askless connection.
///
/// Each method maps to one request on an internal call route and carries exactly the payload
/// types of [`askless_protocol::call`]. The Askless client implements this trait once its
/// authentication and streams exist; [`MemorySignallingHub`](crate::MemorySignallingHub)
/// implements it in memory for tests.
///
/// Implementations acknowledge every received value, as the Askless client does: the server
/// cleans up a rejected or cancelled call when the caller acknowledges the rejection value.
#[async_trait]
pub trait CallSignalling: Send + Sync + 'static {
    /// Listens to `askless-internal/call/receive`: incoming call requests for the local user.
    async fn listen_call_receive(&self) -> Result<SignalStream<CallReceiveValue>, SignallingError>;

    /// Listens to `askless-internal/call/listen-for-a-call` about `remote_user_id`: the peer's
    /// answer, rejection, hang-up and connection changes.
    async fn listen_for_a_call(
        &self,
        remote_user_id: UserId,
    ) -> Result<SignalStream<ListenForACallValue>, SignallingError>;

    /// Listens to `askless-internal/call/ice-candidate-list` about `remote_user_id`: the ICE
    /// candidates the peer publishes.
    async fn listen_ice_candidate_list(
        &self,
        remote_user_id: UserId,
    ) -> Result<SignalStream<IceCandidateList>, SignallingError>;

    /// Creates on `askless-internal/call/request`: requests a call with an SDP offer.
    async fn create_call_request(&self, body: CallRequestBody) -> Result<CallInfo, SignallingError>;

    /// Creates on `askless-internal/call/response`: accepts with an SDP answer, or rejects.
    async fn create_call_response(&self, body: CallResponseBody) -> Result<CallInfo, SignallingError>;

    /// Creates on `askless-internal/call/ice-candidate-list`: publishes ICE candidates to the
    /// peer, replacing the list published before.
    async fn create_ice_candidate_list(&self, body: IceCandidateList) -> Result<(), SignallingError>;

    /// Creates on `askless-internal/call/close`: hangs up.
    async fn create_call_close(&self, body: CallCloseBody) -> Result<(), SignallingError>;
}

impl fmt::Debug for dyn CallSignalling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("dyn CallSignalling")
    }
}
