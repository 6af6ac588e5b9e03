//! [`CallSignalling`] over an authenticated [`AsklessClient`] connection.

use std::fmt;

use askless_client::{AsklessClient, StreamBuffer, StreamOptions};
use askless_protocol::call::{
    CallCloseBody, CallInfo, CallReceiveValue, CallRequestBody, CallResponseBody, IceCandidateList,
    ListenForACallValue, RemoteUserParams,
};
use askless_protocol::{ErrorBody, UserId, routes};
use async_trait::async_trait;
use futures::{StreamExt, future};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::signalling::{CallSignalling, SignalStream, SignallingError};

/// Call signalling through the internal call routes of an Askless server.
///
/// The client must be authenticated: every call route returns `PENDING_AUTHENTICATION`
/// otherwise, and streams wait for the authentication. Dropping a stream stops its listener
/// at the client's next ping after a grace period (4.5 s in `askless-client`), which is also
/// when the server learns that a call request was cancelled.
///
/// A ping lists only listeners whose listen has succeeded, and the server stops every
/// listener a ping leaves out. So a ping sent while a listen-for-a-call request is in flight
/// stops that listener, and the server then cancels a pending call between the two users.
/// The reference Flutter client has the same race; its window is one round trip per ping
/// interval.
#[derive(Clone)]
pub struct AsklessCallSignalling {
    client: AsklessClient,
}

impl AsklessCallSignalling {
    /// Wraps an authenticated client.
    pub fn new(client: AsklessClient) -> Self {
        Self { client }
    }
}

impl fmt::Debug for AsklessCallSignalling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsklessCallSignalling")
            .field("client_id", self.client.client_id())
            .finish()
    }
}

/// Values a signalling stream keeps while the call code is busy; older ones are dropped past it.
const SIGNAL_BUFFER: usize = 64;

fn signalling_error(error: askless_client::Error) -> SignallingError {
    if error.is_server() {
        SignallingError::Server(ErrorBody {
            code: error.code(),
            description: error.description().map(str::to_owned),
        })
    } else {
        SignallingError::Unavailable(error.to_string())
    }
}

impl AsklessCallSignalling {
    async fn listen<T: DeserializeOwned + Send + 'static>(
        &self,
        route: &'static str,
        params: Value,
    ) -> Result<SignalStream<T>, SignallingError> {
        // Signalling values are events (a call request, the peer leaving and coming back), so
        // the stream keeps every one rather than only the latest.
        let options = StreamOptions {
            buffer: StreamBuffer::Bounded(SIGNAL_BUFFER),
            ..StreamOptions::default()
        };
        let stream = self
            .client
            .read_stream_with(route, params, options)
            .await
            .map_err(signalling_error)?
            .json::<T>();
        // A failed listen or an undecodable value ends the stream, which the call treats as
        // the end of the signalling about the peer.
        let values = stream.scan((), move |_, item| {
            future::ready(match item {
                Ok(value) => Some(value),
                Err(error) => {
                    tracing::debug!(route, %error, "call signalling stream failed");
                    None
                }
            })
        });
        Ok(Box::pin(values))
    }

    async fn create<T: DeserializeOwned>(
        &self,
        route: &'static str,
        body: impl serde::Serialize,
    ) -> Result<T, SignallingError> {
        let output = self
            .client
            .create(route, body, Value::Null)
            .await
            .map_err(signalling_error)?;
        output.json::<T>().map_err(signalling_error)
    }
}

fn remote_params(remote_user_id: UserId) -> Value {
    serde_json::to_value(RemoteUserParams { remote_user_id }).unwrap_or(Value::Null)
}

#[async_trait]
impl CallSignalling for AsklessCallSignalling {
    async fn listen_call_receive(&self) -> Result<SignalStream<CallReceiveValue>, SignallingError> {
        self.listen(routes::CALL_RECEIVE, Value::Null).await
    }

    async fn listen_for_a_call(
        &self,
        remote_user_id: UserId,
    ) -> Result<SignalStream<ListenForACallValue>, SignallingError> {
        self.listen(routes::LISTEN_FOR_A_CALL, remote_params(remote_user_id))
            .await
    }

    async fn listen_ice_candidate_list(
        &self,
        remote_user_id: UserId,
    ) -> Result<SignalStream<IceCandidateList>, SignallingError> {
        self.listen(routes::ICE_CANDIDATE_LIST, remote_params(remote_user_id))
            .await
    }

    async fn create_call_request(&self, body: CallRequestBody) -> Result<CallInfo, SignallingError> {
        self.create(routes::CALL_REQUEST, body).await
    }

    async fn create_call_response(&self, body: CallResponseBody) -> Result<CallInfo, SignallingError> {
        self.create(routes::CALL_RESPONSE, body).await
    }

    async fn create_ice_candidate_list(&self, body: IceCandidateList) -> Result<(), SignallingError> {
        self.create::<Value>(routes::ICE_CANDIDATE_LIST, body)
            .await
            .map(|_| ())
    }

    async fn create_call_close(&self, body: CallCloseBody) -> Result<(), SignallingError> {
        self.create::<Value>(routes::CALL_CLOSE, body).await.map(|_| ())
    }
}
