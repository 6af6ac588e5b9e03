//! Errors of call operations.

use crate::signalling::SignallingError;

/// A failed call operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// A signalling request on an internal call route failed.
    #[error("\"{route}\" failed: {source}")]
    Signalling {
        /// The internal route, such as `askless-internal/call/request`.
        route: &'static str,
        /// Message of the signalling layer.
        source: SignallingError,
    },
    /// The WebRTC stack failed at one step of the call setup.
    #[error("WebRTC failed to {step}: {source}")]
    WebRtc {
        /// The step that failed, such as `create the offer`.
        step: &'static str,
        /// The error of the WebRTC stack.
        source: webrtc::error::Error,
    },
    /// A STUN or TURN server given by the parameters callback is invalid.
    #[error("invalid ICE server URL {url:?}: {reason}")]
    InvalidIceServer {
        /// The URL at fault (empty when the server has none). Never contains the credential.
        url: String,
        /// Description of the problem and how to fix it.
        reason: &'static str,
    },
    /// The callee accepted but its value carries no SDP answer, so the call cannot start.
    #[error("the callee accepted the call without an SDP answer")]
    MissingAnswer,
    /// A received SDP is not of the expected type.
    #[error("expected an SDP {expected}, received an SDP {received}")]
    UnexpectedSdpType {
        /// The type the call needed.
        expected: &'static str,
        /// The type received.
        received: &'static str,
    },
    /// The call ended (cancelled, closed or its signalling stream stopped) before the
    /// operation; nothing was sent.
    #[error("the call already ended; nothing was sent")]
    CallEnded,
    /// The signalling stream about the peer stopped before the callee answered.
    #[error("the signalling stream about the remote user stopped before an answer")]
    SignallingStopped,
    /// The operation needs a Tokio runtime and was called outside one.
    #[error("no Tokio runtime is running; call this from inside a Tokio runtime")]
    NoRuntime,
}

impl CallError {
    pub(crate) fn webrtc(step: &'static str) -> impl FnOnce(webrtc::error::Error) -> Self {
        move |source| Self::WebRtc { step, source }
    }

    pub(crate) fn signalling(route: &'static str) -> impl FnOnce(SignallingError) -> Self {
        move |source| Self::Signalling { route, source }
    }
}
