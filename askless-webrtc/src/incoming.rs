//! The callee's side: incoming call requests, accepting and rejecting them.

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use askless_protocol::UserId;
use askless_protocol::call::{CallResponseBody, ListenForACallValue, SdpType, SessionDescription};
use askless_protocol::routes;
use futures::{FutureExt, Stream, StreamExt};
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::client::{ActiveCallGuard, CallContext};
use crate::error::CallError;
use crate::live::{LiveCall, LiveStreams};
use crate::media::LocalMedia;
use crate::peer::{PeerSession, sdp_type_name};
use crate::signalling::SignalStream;

/// The stream of incoming calls; dropping it stops listening for new ones.
///
/// Calls already handed out are not affected by dropping the stream.
pub struct IncomingCalls {
    calls: mpsc::UnboundedReceiver<ReceivingCall>,
    task: JoinHandle<()>,
}

impl fmt::Debug for IncomingCalls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingCalls").finish_non_exhaustive()
    }
}

impl IncomingCalls {
    pub(crate) async fn start(context: Arc<CallContext>) -> Result<Self, CallError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| CallError::NoRuntime)?;
        let requests = context
            .signalling
            .listen_call_receive()
            .await
            .map_err(CallError::signalling(routes::CALL_RECEIVE))?;
        let (calls_tx, calls) = mpsc::unbounded_channel();
        let task = runtime.spawn(receive_calls(context, requests, calls_tx));
        Ok(Self { calls, task })
    }
}

impl Stream for IncomingCalls {
    type Item = ReceivingCall;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<ReceivingCall>> {
        self.calls.poll_recv(cx)
    }
}

impl Drop for IncomingCalls {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive_calls(
    context: Arc<CallContext>,
    mut requests: SignalStream<askless_protocol::call::CallReceiveValue>,
    calls_tx: mpsc::UnboundedSender<ReceivingCall>,
) {
    while let Some(value) = requests.next().await {
        if !value.has_call_request {
            continue;
        }
        let (Some(remote_user_id), Some(offer)) = (value.remote_user_id, value.sdp) else {
            tracing::debug!("incoming call without a caller id or an offer ignored");
            continue;
        };
        // The server presents the first pending caller again at every notification.
        let Some(guard) = context.claim_incoming(&remote_user_id) else {
            tracing::debug!(remote_user_id = %remote_user_id, "incoming call already being handled");
            continue;
        };
        let stream = match context.signalling.listen_for_a_call(remote_user_id.clone()).await {
            Ok(stream) => stream,
            Err(error) => {
                tracing::debug!(remote_user_id = %remote_user_id, %error, "listening to the caller failed; call ignored");
                continue;
            }
        };
        tracing::debug!(remote_user_id = %remote_user_id, "incoming call");
        let call = ReceivingCall::new(
            Arc::clone(&context),
            remote_user_id,
            offer,
            value.additional_data.unwrap_or_default(),
            stream,
            guard,
        );
        if calls_tx.send(call).is_err() {
            return;
        }
    }
    tracing::debug!("the incoming-call stream ended");
}

/// An incoming call waiting for the local user's answer.
///
/// Dropping it unanswered rejects the call, unless the caller has cancelled it already: a
/// late answer would be stored by the server and spoil the caller's next call.
pub struct ReceivingCall {
    context: Arc<CallContext>,
    remote_user_id: UserId,
    additional_data: Map<String, Value>,
    offer: SessionDescription,
    cancelled: watch::Receiver<bool>,
    take_stream_tx: Option<oneshot::Sender<oneshot::Sender<SignalStream<ListenForACallValue>>>>,
    guard: Option<ActiveCallGuard>,
    answered: bool,
}

impl fmt::Debug for ReceivingCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivingCall")
            .field("remote_user_id", &self.remote_user_id)
            .field("cancelled", &*self.cancelled.borrow())
            .field("answered", &self.answered)
            .finish_non_exhaustive()
    }
}

impl ReceivingCall {
    fn new(
        context: Arc<CallContext>,
        remote_user_id: UserId,
        offer: SessionDescription,
        additional_data: Map<String, Value>,
        stream: SignalStream<ListenForACallValue>,
        guard: ActiveCallGuard,
    ) -> Self {
        let (cancelled_tx, cancelled) = watch::channel(false);
        let (take_stream_tx, take_stream_rx) = oneshot::channel();
        tokio::spawn(watch_caller(
            remote_user_id.clone(),
            stream,
            take_stream_rx,
            cancelled_tx,
        ));
        Self {
            context,
            remote_user_id,
            additional_data,
            offer,
            cancelled,
            take_stream_tx: Some(take_stream_tx),
            guard: Some(guard),
            answered: false,
        }
    }

    /// Returns the caller.
    pub fn remote_user_id(&self) -> &UserId {
        &self.remote_user_id
    }

    /// Returns the caller's application data.
    pub fn additional_data(&self) -> &Map<String, Value> {
        &self.additional_data
    }

    /// Returns whether the caller cancelled the call (or the server ended it) before an answer.
    pub fn is_cancelled(&self) -> bool {
        *self.cancelled.borrow()
    }

    /// Waits until the caller cancels the call or the server ends it.
    pub async fn cancelled(&mut self) {
        // An error means the watcher is gone, which happens only after it set the flag or
        // after the call was answered.
        let _ = self.cancelled.wait_for(|cancelled| *cancelled).await;
    }

    /// Accepts the call, sending `media` and showing `additional_data` to the caller.
    ///
    /// Returns the live call once the answer is sent; media flows when ICE connects.
    /// Fails with [`CallError::CallEnded`], sending nothing, when the caller has cancelled.
    pub async fn accept(
        mut self,
        media: LocalMedia,
        additional_data: Map<String, Value>,
    ) -> Result<LiveCall, CallError> {
        let mut stream = self.take_stream().await?;
        self.answered = true;
        let remote = self.remote_user_id.clone();
        let parameters = (self.context.options.parameters)(&remote);

        let session = match PeerSession::build(&self.context.options, &parameters, &media, &remote).await {
            Ok(session) => Arc::new(session),
            Err(error) => {
                self.reject_after_failure(&mut stream).await;
                return Err(error);
            }
        };
        match self.negotiate_answer(&session).await {
            Ok(answer) => {
                let ice_candidates = match self
                    .context
                    .signalling
                    .listen_ice_candidate_list(remote.clone())
                    .await
                {
                    Ok(ice) => ice,
                    Err(error) => {
                        session.close().await;
                        self.reject_after_failure(&mut stream).await;
                        return Err(CallError::signalling(routes::ICE_CANDIDATE_LIST)(error));
                    }
                };
                if call_has_ended(&mut stream) {
                    tracing::debug!(remote_user_id = %remote, "caller cancelled while the answer was prepared");
                    session.close().await;
                    return Err(CallError::CallEnded);
                }
                let body = CallResponseBody {
                    call_accepted: true,
                    remote_user_id: remote.clone(),
                    sdp: Some(answer),
                    additional_data,
                };
                if let Err(error) = self.context.signalling.create_call_response(body).await {
                    session.close().await;
                    return Err(CallError::signalling(routes::CALL_RESPONSE)(error));
                }
                tracing::debug!(remote_user_id = %remote, "call accepted");
                let streams = LiveStreams {
                    listen_for_a_call: stream,
                    ice_candidates: Some(ice_candidates),
                };
                Ok(LiveCall::start(
                    Arc::clone(&self.context),
                    remote,
                    session,
                    streams,
                    self.guard.take(),
                ))
            }
            Err(error) => {
                session.close().await;
                self.reject_after_failure(&mut stream).await;
                Err(error)
            }
        }
    }

    async fn negotiate_answer(&self, session: &PeerSession) -> Result<SessionDescription, CallError> {
        if self.offer.sdp_type != SdpType::Offer {
            return Err(CallError::UnexpectedSdpType {
                expected: "offer",
                received: sdp_type_name(self.offer.sdp_type),
            });
        }
        session.set_remote_description(&self.offer).await?;
        session
            .create_answer(self.context.options.ice_gathering_timeout)
            .await
    }

    /// Rejects the call, showing `additional_data` to the caller.
    ///
    /// Fails with [`CallError::CallEnded`], sending nothing, when the caller has cancelled.
    pub async fn reject(mut self, additional_data: Map<String, Value>) -> Result<(), CallError> {
        self.answered = true;
        let take_stream_tx = self.take_stream_tx.take();
        // Holding the stream while the rejection goes out keeps the listener, as the server
        // expects until it cleans the call up.
        let Some(_stream) = open_stream(take_stream_tx).await else {
            return Err(CallError::CallEnded);
        };
        send_rejection(&self.context, &self.remote_user_id, additional_data).await
    }

    async fn take_stream(&mut self) -> Result<SignalStream<ListenForACallValue>, CallError> {
        open_stream(self.take_stream_tx.take())
            .await
            .ok_or(CallError::CallEnded)
    }

    /// Rejects a call whose local setup failed, so the caller is not left waiting.
    async fn reject_after_failure(&self, stream: &mut SignalStream<ListenForACallValue>) {
        if call_has_ended(stream) {
            return;
        }
        if let Err(error) = send_rejection(&self.context, &self.remote_user_id, Map::new()).await {
            tracing::debug!(remote_user_id = %self.remote_user_id, %error, "rejection after a failed setup not delivered");
        }
    }
}

impl Drop for ReceivingCall {
    fn drop(&mut self) {
        if self.answered || self.is_cancelled() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(remote_user_id = %self.remote_user_id, "no Tokio runtime to reject a dropped call");
            return;
        };
        tracing::debug!(remote_user_id = %self.remote_user_id, "unanswered call dropped; rejecting it");
        let context = Arc::clone(&self.context);
        let remote = self.remote_user_id.clone();
        let take_stream_tx = self.take_stream_tx.take();
        runtime.spawn(async move {
            let Some(_stream) = open_stream(take_stream_tx).await else {
                tracing::debug!(remote_user_id = %remote, "dropped call already ended; no rejection sent");
                return;
            };
            if let Err(error) = send_rejection(&context, &remote, Map::new()).await {
                tracing::debug!(remote_user_id = %remote, %error, "rejection of a dropped call not delivered");
            }
        });
    }
}

async fn send_rejection(
    context: &CallContext,
    remote_user_id: &UserId,
    additional_data: Map<String, Value>,
) -> Result<(), CallError> {
    let body = CallResponseBody {
        call_accepted: false,
        remote_user_id: remote_user_id.clone(),
        sdp: None,
        additional_data,
    };
    context
        .signalling
        .create_call_response(body)
        .await
        .map(|_| ())
        .map_err(CallError::signalling(routes::CALL_RESPONSE))
}

/// Takes the signalling stream from the watcher; `None` when the call has ended, so that no
/// answer is sent for it.
async fn open_stream(
    take_stream_tx: Option<oneshot::Sender<oneshot::Sender<SignalStream<ListenForACallValue>>>>,
) -> Option<SignalStream<ListenForACallValue>> {
    let (reply_tx, reply_rx) = oneshot::channel();
    take_stream_tx?.send(reply_tx).ok()?;
    let mut stream = reply_rx.await.ok()?;
    if call_has_ended(&mut stream) {
        return None;
    }
    Some(stream)
}

/// Returns whether values already received on the stream show that the call has ended.
fn call_has_ended(stream: &mut SignalStream<ListenForACallValue>) -> bool {
    while let Some(next) = stream.next().now_or_never() {
        match next {
            Some(value) if value.call_closed == Some(true) => return true,
            Some(_) => {}
            None => return true,
        }
    }
    false
}

/// Owns the signalling stream about the caller until the call is answered, and flags a
/// cancellation: a hang-up value or the end of the stream.
async fn watch_caller(
    remote_user_id: UserId,
    mut stream: SignalStream<ListenForACallValue>,
    mut take_stream_rx: oneshot::Receiver<oneshot::Sender<SignalStream<ListenForACallValue>>>,
    cancelled_tx: watch::Sender<bool>,
) {
    loop {
        tokio::select! {
            request = &mut take_stream_rx => {
                if let Ok(reply) = request {
                    let _ = reply.send(stream);
                }
                return;
            }
            value = stream.next() => match value {
                Some(value) if value.call_closed == Some(true) => break,
                Some(value) => {
                    if let Some(connected) = value.remote_user_is_connected {
                        tracing::debug!(remote_user_id = %remote_user_id, connected, "caller connection changed");
                    }
                }
                None => break,
            },
        }
    }
    tracing::debug!(remote_user_id = %remote_user_id, "incoming call cancelled");
    cancelled_tx.send_replace(true);
}
