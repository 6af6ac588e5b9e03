//! The caller's side: requesting a call and waiting for the answer.

use std::fmt;
use std::sync::Arc;

use askless_protocol::UserId;
use askless_protocol::call::{CallRequestBody, IceCandidateList, ListenForACallValue, SdpType};
use askless_protocol::routes;
use futures::StreamExt;
use serde_json::{Map, Value};
use tokio::sync::{oneshot, watch};

use crate::client::CallContext;
use crate::error::CallError;
use crate::live::{LiveCall, LiveStreams};
use crate::media::LocalMedia;
use crate::peer::{PeerSession, sdp_type_name};
use crate::signalling::SignalStream;

/// The outcome of a call request.
#[derive(Debug)]
pub enum CallResponse {
    /// The callee accepted. The answer is applied and the caller's candidates are sent, but
    /// media flows only once ICE connects. The reference client reports acceptance later, when
    /// the first remote media arrives.
    Accepted {
        /// The call in progress.
        call: LiveCall,
        /// The callee's application data.
        additional_data: Map<String, Value>,
    },
    /// The callee rejected the call.
    Rejected {
        /// The callee's application data.
        additional_data: Map<String, Value>,
    },
    /// The call could not be set up.
    Failed(CallError),
}

/// A call request waiting for its answer.
///
/// Dropping it before the answer cancels the request: the signalling stream about the callee
/// ends, which tells the server to withdraw the request.
pub struct OutgoingCall {
    remote_user_id: UserId,
    result_rx: oneshot::Receiver<CallResponse>,
    remote_connected: watch::Receiver<Option<bool>>,
    /// Dropping this sender cancels the request while it is unanswered.
    _cancel_tx: oneshot::Sender<()>,
}

impl fmt::Debug for OutgoingCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingCall")
            .field("remote_user_id", &self.remote_user_id)
            .finish_non_exhaustive()
    }
}

impl OutgoingCall {
    pub(crate) fn start(
        context: Arc<CallContext>,
        remote_user_id: UserId,
        media: LocalMedia,
        additional_data: Map<String, Value>,
    ) -> Result<Self, CallError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| CallError::NoRuntime)?;
        let (result_tx, result_rx) = oneshot::channel();
        let (cancel_tx, cancel_rx) = oneshot::channel();
        let (connected_tx, remote_connected) = watch::channel(None);
        runtime.spawn(run_caller(Caller {
            context,
            remote_user_id: remote_user_id.clone(),
            media,
            additional_data,
            cancel_rx,
            result_tx,
            connected_tx,
        }));
        Ok(Self {
            remote_user_id,
            result_rx,
            remote_connected,
            _cancel_tx: cancel_tx,
        })
    }

    /// Returns the callee.
    pub fn remote_user_id(&self) -> &UserId {
        &self.remote_user_id
    }

    /// Returns whether the callee's signalling connection is up, as last reported by the
    /// server; `None` before any report. The server reports `true` when the callee starts
    /// handling the call.
    pub fn remote_user_is_connected(&self) -> Option<bool> {
        *self.remote_connected.borrow()
    }

    /// Waits for the answer. Dropping this future before it completes cancels the request.
    pub async fn response(self) -> CallResponse {
        let Self {
            result_rx,
            _cancel_tx,
            ..
        } = self;
        let response = result_rx.await;
        drop(_cancel_tx);
        response.unwrap_or(CallResponse::Failed(CallError::CallEnded))
    }

    /// Cancels the request; the same as dropping the handle.
    pub fn cancel(self) {}
}

struct Caller {
    context: Arc<CallContext>,
    remote_user_id: UserId,
    media: LocalMedia,
    additional_data: Map<String, Value>,
    cancel_rx: oneshot::Receiver<()>,
    result_tx: oneshot::Sender<CallResponse>,
    connected_tx: watch::Sender<Option<bool>>,
}

enum Negotiated {
    Accepted {
        stream: SignalStream<ListenForACallValue>,
        additional_data: Map<String, Value>,
    },
    Rejected {
        additional_data: Map<String, Value>,
    },
    Failed(CallError),
}

async fn run_caller(caller: Caller) {
    let Caller {
        context,
        remote_user_id,
        media,
        additional_data,
        mut cancel_rx,
        result_tx,
        connected_tx,
    } = caller;
    tracing::debug!(remote_user_id = %remote_user_id, "requesting a call");

    let mut session = None;
    let negotiated = tokio::select! {
        biased;
        _ = &mut cancel_rx => None,
        negotiated = negotiate(
            &context,
            &remote_user_id,
            &media,
            additional_data,
            &mut session,
            &connected_tx,
        ) => Some(negotiated),
    };

    let response = match negotiated {
        None => {
            // The negotiation future, and with it the signalling stream, is already dropped.
            tracing::debug!(remote_user_id = %remote_user_id, "call request cancelled before an answer");
            if let Some(session) = session {
                session.close().await;
            }
            return;
        }
        Some(Negotiated::Accepted {
            stream,
            additional_data,
        }) => {
            let Some(session) = session else {
                return;
            };
            let streams = LiveStreams {
                listen_for_a_call: stream,
                ice_candidates: None,
            };
            let call = LiveCall::start(context, remote_user_id.clone(), session, streams, None);
            CallResponse::Accepted {
                call,
                additional_data,
            }
        }
        Some(Negotiated::Rejected { additional_data }) => {
            tracing::debug!(remote_user_id = %remote_user_id, "call rejected");
            if let Some(session) = session {
                session.close().await;
            }
            CallResponse::Rejected { additional_data }
        }
        Some(Negotiated::Failed(error)) => {
            tracing::debug!(remote_user_id = %remote_user_id, %error, "call request failed");
            if let Some(session) = session {
                session.close().await;
            }
            CallResponse::Failed(error)
        }
    };
    // When the handle is gone, the response is dropped here, which closes an accepted call.
    let _ = result_tx.send(response);
}

async fn negotiate(
    context: &Arc<CallContext>,
    remote_user_id: &UserId,
    media: &LocalMedia,
    additional_data: Map<String, Value>,
    session_slot: &mut Option<Arc<PeerSession>>,
    connected_tx: &watch::Sender<Option<bool>>,
) -> Negotiated {
    let mut stream = match context.signalling.listen_for_a_call(remote_user_id.clone()).await {
        Ok(stream) => stream,
        Err(error) => {
            return Negotiated::Failed(CallError::signalling(routes::LISTEN_FOR_A_CALL)(error));
        }
    };

    let parameters = (context.options.parameters)(remote_user_id);
    let session = match PeerSession::build(&context.options, &parameters, media, remote_user_id).await {
        Ok(session) => Arc::new(session),
        Err(error) => return Negotiated::Failed(error),
    };
    *session_slot = Some(Arc::clone(&session));
    if let Err(error) = session.add_receive_only(&parameters, media).await {
        return Negotiated::Failed(error);
    }
    let offer = match session.create_offer(context.options.ice_gathering_timeout).await {
        Ok(offer) => offer,
        Err(error) => return Negotiated::Failed(error),
    };

    let body = CallRequestBody {
        remote_user_id: remote_user_id.clone(),
        sdp: offer,
        additional_data,
    };
    if let Err(error) = context.signalling.create_call_request(body).await {
        return Negotiated::Failed(CallError::signalling(routes::CALL_REQUEST)(error));
    }
    tracing::debug!(remote_user_id = %remote_user_id, "call requested; waiting for the answer");

    while let Some(value) = stream.next().await {
        if let Some(connected) = value.remote_user_is_connected {
            tracing::debug!(remote_user_id = %remote_user_id, connected, "callee connection changed");
            connected_tx.send_replace(Some(connected));
        }
        match value.call_accepted {
            Some(false) => {
                return Negotiated::Rejected {
                    additional_data: value.additional_data.unwrap_or_default(),
                };
            }
            Some(true) => {
                return accept_answer(context, remote_user_id, &session, stream, value).await;
            }
            None => {}
        }
        if value.call_closed == Some(true) {
            return Negotiated::Failed(CallError::CallEnded);
        }
    }
    Negotiated::Failed(CallError::SignallingStopped)
}

/// Applies the callee's answer, then sends the candidates gathered for the offer once, as
/// the reference client does.
async fn accept_answer(
    context: &Arc<CallContext>,
    remote_user_id: &UserId,
    session: &PeerSession,
    stream: SignalStream<ListenForACallValue>,
    value: ListenForACallValue,
) -> Negotiated {
    let Some(answer) = value.sdp else {
        return Negotiated::Failed(CallError::MissingAnswer);
    };
    if answer.sdp_type != SdpType::Answer {
        return Negotiated::Failed(CallError::UnexpectedSdpType {
            expected: "answer",
            received: sdp_type_name(answer.sdp_type),
        });
    }
    if let Err(error) = session.set_remote_description(&answer).await {
        return Negotiated::Failed(error);
    }
    let candidates = IceCandidateList {
        remote_user_id: remote_user_id.clone(),
        ice_candidate_list: session.local_candidates().await,
    };
    tracing::debug!(
        remote_user_id = %remote_user_id,
        count = candidates.ice_candidate_list.len(),
        "sending the offer's ICE candidates"
    );
    if let Err(error) = context.signalling.create_ice_candidate_list(candidates).await {
        return Negotiated::Failed(CallError::signalling(routes::ICE_CANDIDATE_LIST)(error));
    }
    Negotiated::Accepted {
        stream,
        additional_data: value.additional_data.unwrap_or_default(),
    }
}
