//! The client handle.

use std::fmt;
use std::sync::Arc;

use askless_protocol::{
    ClientIdInternalApp, ClientMessage, ClientRequestId, ModifyKind, ModifyRequest, ReadRequest,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::sync::{Semaphore, broadcast, mpsc, oneshot, watch};

use crate::auth::{AuthenticateOptions, Authenticated, AuthenticationStatus};
use crate::builder::AsklessClientBuilder;
use crate::error::{Error, Operation, Result};
use crate::introspect::StateSizes;
use crate::options::RequestOptions;
use crate::stats::{ClientStats, StatsCounters, bump};
use crate::status::{
    ConnectionStatus, StatusListenerGuard, StatusReceivers, StatusStream, StatusStreamOptions,
};
use crate::stream::{ReadStream, StreamOptions, SubscriberQueue};
use crate::task::StreamCommand;
use crate::task::{Command, DirectSlot, Registered, RequestCommand};

/// A handle to an Askless client.
///
/// Cloning is cheap: every clone talks to the same connection task, which owns the one
/// WebSocket connection, the pending requests and the timers. The task ends, closing the
/// connection and failing pending requests with [`ErrorKind::Closed`](crate::ErrorKind::Closed),
/// when [`close`](Self::close) is called or the last handle is dropped.
#[derive(Clone)]
pub struct AsklessClient {
    inner: Arc<Inner>,
}

struct Inner {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<ConnectionStatus>,
    /// Never read; new status subscribers are made from it with `resubscribe`.
    events: broadcast::Receiver<ConnectionStatus>,
    authentication: watch::Receiver<AuthenticationStatus>,
    runtime: tokio::runtime::Handle,
    client_id: ClientIdInternalApp,
    stats: Arc<StatsCounters>,
    /// The socket requests are written on while they flow; see `task::direct`.
    direct: Arc<DirectSlot>,
    /// One permit per request that may be pending at once.
    pending_permits: Arc<Semaphore>,
    max_pending_requests: usize,
}

/// The parts of a new client handle that the builder makes besides the channels.
pub(crate) struct Shared {
    pub(crate) runtime: tokio::runtime::Handle,
    pub(crate) client_id: ClientIdInternalApp,
    pub(crate) stats: Arc<StatsCounters>,
    pub(crate) direct: Arc<DirectSlot>,
    pub(crate) max_pending_requests: usize,
}

impl fmt::Debug for AsklessClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsklessClient")
            .field("client_id", &self.inner.client_id)
            .field("status", &*self.inner.status.borrow())
            .finish()
    }
}

/// The output of a successful request.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    operation: Operation,
    route: String,
    value: Option<Value>,
}

impl Output {
    /// Returns the output, or `None` when the server sent no `output` (a route that produced
    /// no value). A JSON `null` output is `Some(Value::Null)`.
    pub fn value(&self) -> Option<&Value> {
        self.value.as_ref()
    }

    /// Returns the output, consuming `self`.
    pub fn into_value(self) -> Option<Value> {
        self.value
    }

    /// Returns the route of the request.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// Deserializes the output into `T`. An absent output deserializes like JSON `null`, so
    /// `Option<T>` and `()` accept it.
    ///
    /// Fails with [`ErrorKind::Decode`](crate::ErrorKind::Decode) naming the route and the type.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        let value = self.value.clone().unwrap_or(Value::Null);
        serde_json::from_value(value)
            .map_err(|error| Error::decode(self.operation, &self.route, std::any::type_name::<T>(), error))
    }
}

impl AsklessClient {
    /// Starts building a client for the server at `url` (ws:// or wss://).
    pub fn builder(url: impl Into<String>) -> AsklessClientBuilder {
        AsklessClientBuilder::new(url)
    }

    pub(crate) fn new(
        commands: mpsc::Sender<Command>,
        status: StatusReceivers,
        authentication: watch::Receiver<AuthenticationStatus>,
        shared: Shared,
    ) -> Self {
        let Shared {
            runtime,
            client_id,
            stats,
            direct,
            max_pending_requests,
        } = shared;
        AsklessClient {
            inner: Arc::new(Inner {
                commands,
                status: status.current,
                events: status.events,
                authentication,
                runtime,
                client_id,
                stats,
                direct,
                pending_permits: Arc::new(Semaphore::new(max_pending_requests.min(Semaphore::MAX_PERMITS))),
                max_pending_requests,
            }),
        }
    }

    /// Returns the `clientIdInternalApp` this client uses on every connection.
    pub fn client_id(&self) -> &ClientIdInternalApp {
        &self.inner.client_id
    }

    /// Returns a snapshot of the client's counters: frames received, malformed frames and
    /// duplicates ignored, reconnections and more (see [`ClientStats`]).
    pub fn stats(&self) -> ClientStats {
        self.inner.stats.snapshot()
    }

    /// Returns the current connection status.
    pub fn status(&self) -> ConnectionStatus {
        self.inner.status.borrow().clone()
    }

    /// Returns a watch receiver of the current status. It keeps only the latest value, so a
    /// slow reader can miss intermediate states; use [`status_stream`](Self::status_stream) to
    /// see every change.
    pub fn status_watch(&self) -> watch::Receiver<ConnectionStatus> {
        self.inner.status.clone()
    }

    /// Returns a stream of every status change, each with its disconnection reason. With
    /// [`StatusStreamOptions::emit_current_first`] it starts with the current status.
    pub fn status_stream(&self, options: StatusStreamOptions) -> StatusStream {
        // Subscribe before reading the current value, so no change falls between the two.
        let events = self.inner.events.resubscribe();
        let current = options.emit_current_first.then(|| self.status());
        StatusStream::new(events, current)
    }

    /// Calls `listener` with every status change, on a task of the client's runtime, until the
    /// returned guard is dropped. Changes are delivered in order; a listener that falls more
    /// than 256 changes behind skips the oldest ones.
    pub fn on_status_change<F>(&self, mut listener: F) -> StatusListenerGuard
    where
        F: FnMut(&ConnectionStatus) + Send + 'static,
    {
        let mut events = self.inner.events.resubscribe();
        let task = self.inner.runtime.spawn(async move {
            loop {
                match events.recv().await {
                    Ok(status) => listener(&status),
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::debug!(skipped, "status listener fell behind and skipped changes");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        StatusListenerGuard::new(task.abort_handle())
    }

    /// Reads `route` with `params` (a JSON object, or `()`/`null` for none).
    ///
    /// See [`read_with`](Self::read_with) for the timing and the errors.
    pub async fn read(&self, route: &str, params: impl Serialize) -> Result<Output> {
        self.read_with(route, params, RequestOptions::default()).await
    }

    /// Reads `route` with `params` and `options`.
    ///
    /// When not connected, the request waits for the connection for at most the request
    /// timeout. Once registered, it times out after the request timeout without a response
    /// ([`ErrorKind::Timeout`](crate::ErrorKind::Timeout)). It fails with
    /// [`ErrorKind::NoConnection`](crate::ErrorKind::NoConnection) when the wait for a
    /// connection ran out with no socket open, and with
    /// [`ErrorKind::Server`](crate::ErrorKind::Server) when the server responded with an error.
    ///
    /// Cancel safe: dropping the future stops waiting, but a request already sent may still
    /// run on the server.
    pub async fn read_with(
        &self,
        route: &str,
        params: impl Serialize,
        options: RequestOptions,
    ) -> Result<Output> {
        self.request(Operation::Read, route, params, None, options).await
    }

    /// Creates `body` on `route`; `params` is a JSON object or `()`/`null`. The body must not
    /// be null. See [`read_with`](Self::read_with) for the timing, errors and cancel safety.
    pub async fn create(&self, route: &str, body: impl Serialize, params: impl Serialize) -> Result<Output> {
        self.create_with(route, body, params, RequestOptions::default())
            .await
    }

    /// Like [`create`](Self::create), with options; the same timing, errors and cancel safety.
    pub async fn create_with(
        &self,
        route: &str,
        body: impl Serialize,
        params: impl Serialize,
        options: RequestOptions,
    ) -> Result<Output> {
        let body = to_body(Operation::Create, body)?;
        self.request(Operation::Create, route, params, Some(body), options)
            .await
    }

    /// Updates `route` with `body`; `params` is a JSON object or `()`/`null`. The body must not
    /// be null. See [`read_with`](Self::read_with) for the timing, errors and cancel safety.
    pub async fn update(&self, route: &str, body: impl Serialize, params: impl Serialize) -> Result<Output> {
        self.update_with(route, body, params, RequestOptions::default())
            .await
    }

    /// Like [`update`](Self::update), with options; the same timing, errors and cancel safety.
    pub async fn update_with(
        &self,
        route: &str,
        body: impl Serialize,
        params: impl Serialize,
        options: RequestOptions,
    ) -> Result<Output> {
        let body = to_body(Operation::Update, body)?;
        self.request(Operation::Update, route, params, Some(body), options)
            .await
    }

    /// Deletes on `route` what `params` identifies; the body sent is `{}`, as the reference
    /// client sends. See [`read_with`](Self::read_with) for the timing, errors and cancel
    /// safety.
    pub async fn delete(&self, route: &str, params: impl Serialize) -> Result<Output> {
        self.delete_with(route, params, RequestOptions::default()).await
    }

    /// Like [`delete`](Self::delete), with options; the same timing, errors and cancel safety.
    pub async fn delete_with(
        &self,
        route: &str,
        params: impl Serialize,
        options: RequestOptions,
    ) -> Result<Output> {
        let body = Value::Object(serde_json::Map::new());
        self.request(Operation::Delete, route, params, Some(body), options)
            .await
    }

    async fn request(
        &self,
        operation: Operation,
        route: &str,
        params: impl Serialize,
        body: Option<Value>,
        options: RequestOptions,
    ) -> Result<Output> {
        if route.is_empty() {
            return Err(Error::invalid_option(
                "route",
                format!("the route of a {operation} must not be empty"),
            ));
        }
        let params = to_params(operation, route, params)?;
        let permit = Arc::clone(&self.inner.pending_permits)
            .try_acquire_owned()
            .map_err(|_| {
                let limit = self.inner.max_pending_requests;
                let rejected = bump(&self.inner.stats.requests_rejected);
                tracing::debug!(%route, %operation, limit, rejected, "too many pending requests, rejecting");
                Error::too_many_pending(operation, route, limit)
            })?;
        let id = ClientRequestId::generate_request(&mut rand::rng());
        let message = match operation {
            Operation::Read => ClientMessage::Read(ReadRequest::new(id.clone(), route, params)),
            Operation::Create | Operation::Update | Operation::Delete => {
                let kind = match operation {
                    Operation::Create => ModifyKind::Create,
                    Operation::Update => ModifyKind::Update,
                    _ => ModifyKind::Delete,
                };
                let body = body.unwrap_or_else(|| Value::Object(Default::default()));
                ClientMessage::Modify(ModifyRequest::new(id.clone(), kind, route, body, params))
            }
            Operation::Listen => {
                return Err(Error::invalid_option(
                    "operation",
                    "a listen is not a request; use read_stream".to_owned(),
                ));
            }
        };
        let frame = message.encode();
        let (reply, mut response) = oneshot::channel();
        let created_at = tokio::time::Instant::now();
        let never_timeout = options.never_timeout;
        let command = RequestCommand {
            operation,
            route: route.to_owned(),
            id,
            message,
            frame: frame.clone(),
            written_on: None,
            created_at,
            options,
            permit: Some(permit),
            reply,
        };
        // While requests flow, the caller registers the request and writes the frame itself,
        // without waking the connection task (see `task::direct`).
        let registered = match self.inner.direct.register_with(command, |command, link| {
            command.written_on = Some(link.generation);
        }) {
            Ok(registered) => Some(registered),
            Err(command) => {
                self.inner
                    .commands
                    .send(Command::Request(Box::new(command)))
                    .await
                    .map_err(|_| Error::closed(Some(operation), route))?;
                None
            }
        };
        let outcome = match registered {
            Some(Registered { link, task_wakes_at }) => {
                let deadline = link
                    .request_timeout
                    .filter(|_| !never_timeout)
                    .map(|timeout| created_at + timeout);
                let write = async {
                    tracing::trace!(frame = %frame, "sending frame");
                    let mut sender = link.sender.lock().await;
                    if let Err(error) = sender.send(frame).await {
                        // The connection task detects the failed socket too and sends the request
                        // again on the next connection.
                        tracing::debug!(%error, "writing a request failed");
                    }
                };
                let outcome = tokio::select! {
                    biased;
                    outcome = &mut response => Some(outcome),
                    () = write => None,
                };
                if deadline.is_some_and(|deadline| task_wakes_at.is_none_or(|wakes| deadline < wakes)) {
                    // The task would look at the request only after it timed out. A full
                    // channel means the task is busy and looks soon anyway.
                    let _ = self.inner.commands.try_send(Command::Wake);
                }
                outcome
            }
            None => None,
        };
        let outcome = match outcome {
            Some(outcome) => outcome,
            None => response.await,
        };
        let value = outcome.map_err(|_| Error::closed(Some(operation), route))??;
        Ok(Output {
            operation,
            route: route.to_owned(),
            value,
        })
    }

    /// Authenticates with `credential` (any JSON value; the reference client sends an object).
    ///
    /// When the client is authenticated, the authentication is cleared first, which logs out
    /// on the server and fails pending requests (see
    /// [`clear_authentication`](Self::clear_authentication)). When it is not, pending requests
    /// are kept, and those waiting for an authentication are sent again once it succeeds. The request waits at most 3 s for the connection, then the request
    /// timeout for the response. On success with a user id the client is authenticated and
    /// re-authenticates with the same credential after every reconnection. A success without
    /// user id means the server accepted the connection as unauthenticated.
    ///
    /// Errors: [`ErrorKind::Credential`](crate::ErrorKind::Credential) when the server rejected
    /// the credential ([`Error::code`] gives the credential error code),
    /// [`ErrorKind::Server`](crate::ErrorKind::Server) for other server errors,
    /// [`ErrorKind::Timeout`](crate::ErrorKind::Timeout),
    /// [`ErrorKind::NoConnection`](crate::ErrorKind::NoConnection) and
    /// [`ErrorKind::Conflict`](crate::ErrorKind::Conflict) while another authentication runs.
    /// The credential never appears in errors or logs.
    ///
    /// Cancel safe in that dropping the future stops waiting, but an authenticate request
    /// already sent still takes effect when its response arrives.
    pub async fn authenticate(&self, credential: impl Serialize) -> Result<Authenticated> {
        self.authenticate_with(credential, AuthenticateOptions::default())
            .await
    }

    /// Like [`authenticate`](Self::authenticate), with options; the same errors and cancel
    /// safety.
    pub async fn authenticate_with(
        &self,
        credential: impl Serialize,
        options: AuthenticateOptions,
    ) -> Result<Authenticated> {
        let credential = serde_json::to_value(credential).map_err(|_| {
            Error::invalid_option(
                "credential",
                "the credential does not serialize to JSON".to_owned(),
            )
        })?;
        // Log out first when authenticated. Unlike the reference client, an unauthenticated
        // client keeps its pending requests, so that requests waiting for this authentication
        // complete.
        crate::auth::clear_authentication(&self.inner.commands, true).await?;

        let mut status = self.inner.status.clone();
        let connected = status.wait_for(ConnectionStatus::is_connected);
        let wait = crate::task::AUTHENTICATE_CONNECTION_WAIT;
        let outcome = if options.never_timeout {
            Ok(connected.await.map(|_| ()))
        } else {
            tokio::time::timeout(wait, connected)
                .await
                .map(|result| result.map(|_| ()))
        };
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(Error::closed(None, "")),
            Err(_) => return Err(Error::authentication_no_connection(wait)),
        }

        let (reply, response) = oneshot::channel();
        let command = Command::Authenticate {
            credential: crate::auth::Credential(credential),
            never_timeout: options.never_timeout,
            reply,
        };
        self.inner
            .commands
            .send(command)
            .await
            .map_err(|_| Error::closed(None, ""))?;
        response.await.map_err(|_| Error::closed(None, ""))?
    }

    /// Clears the authentication: when authenticated, sends the logout request
    /// (`DELETE askless-internal/authentication`) and waits for its response. It then drops the
    /// stored credential so that reconnections no longer re-authenticate; fails requests waiting for
    /// authentication that are not persevere with
    /// [`ErrorKind::PendingAuthentication`](crate::ErrorKind::PendingAuthentication), and every
    /// other pending request with [`ErrorKind::NotAuthenticated`](crate::ErrorKind::NotAuthenticated).
    /// Streams keep running.
    ///
    /// Cancel safe: once the command is queued, the authentication is cleared even if the
    /// future is dropped.
    pub async fn clear_authentication(&self) -> Result<()> {
        crate::auth::clear_authentication(&self.inner.commands, false).await
    }

    /// Returns the current authentication status.
    pub fn authentication_status(&self) -> AuthenticationStatus {
        self.inner.authentication.borrow().clone()
    }

    /// Returns a watch receiver of the authentication status.
    pub fn authentication_watch(&self) -> watch::Receiver<AuthenticationStatus> {
        self.inner.authentication.clone()
    }

    /// Opens a live stream of `route` with `params` (a JSON object, or `()`/`null`), with the
    /// default [`StreamOptions`]. See [`ReadStream`].
    ///
    /// Fails at once only for invalid arguments or a closed client; listen errors arrive on the
    /// stream. Cancel safe: dropping the future before it returns opens no stream.
    pub async fn read_stream(&self, route: &str, params: impl Serialize) -> Result<ReadStream> {
        self.read_stream_with(route, params, StreamOptions::default())
            .await
    }

    /// Like [`read_stream`](Self::read_stream), with options; the same cancel safety.
    ///
    /// Streams of the same route and equal params (compared as JSON values) share one listener
    /// on the server. A stream whose route needs authentication waits for one, without time
    /// limit, and listens again after the next successful authentication, also when the server
    /// required one while the client was authenticated. After a reconnection the stream
    /// receives the server's current value again.
    pub async fn read_stream_with(
        &self,
        route: &str,
        params: impl Serialize,
        options: StreamOptions,
    ) -> Result<ReadStream> {
        if route.is_empty() {
            return Err(Error::invalid_option(
                "route",
                "the route of a stream must not be empty".to_owned(),
            ));
        }
        let params = to_params(Operation::Listen, route, params)?;
        let queue = SubscriberQueue::new(options.buffer);
        let command = StreamCommand {
            route: route.into(),
            params,
            options,
            queue: Arc::clone(&queue),
        };
        self.inner
            .commands
            .send(Command::Stream(command))
            .await
            .map_err(|_| Error::closed(Some(Operation::Listen), route))?;
        Ok(ReadStream::new(queue, route.into()))
    }

    /// Returns the sizes of the connection task's tables: listeners, open streams, pending
    /// requests and de-duplication entries. Meant for leak tests, not a stable API.
    ///
    /// Fails with [`ErrorKind::Closed`](crate::ErrorKind::Closed) after [`close`](Self::close).
    #[doc(hidden)]
    pub async fn state_sizes(&self) -> Result<StateSizes> {
        let (reply, sizes) = oneshot::channel();
        self.inner
            .commands
            .send(Command::StateSizes { reply })
            .await
            .map_err(|_| Error::closed(None, ""))?;
        sizes.await.map_err(|_| Error::closed(None, ""))
    }

    /// Drops the current connection, if any, and connects again at once with a fresh retry
    /// count. This is the only way out of an unsupported version or exhausted reconnect
    /// attempts.
    ///
    /// Fails with [`ErrorKind::Closed`](crate::ErrorKind::Closed) after [`close`](Self::close).
    /// Cancel safe: once the command is queued, the reconnection happens even if the future is
    /// dropped.
    pub async fn reconnect(&self) -> Result<()> {
        let (done, finished) = oneshot::channel();
        self.inner
            .commands
            .send(Command::Reconnect { done })
            .await
            .map_err(|_| Error::closed(None, ""))?;
        finished.await.map_err(|_| Error::closed(None, ""))
    }

    /// Closes the client: sends a close frame, fails pending requests with
    /// [`ErrorKind::Closed`](crate::ErrorKind::Closed) and ends the connection task. Other
    /// handles then fail every request with the same error. Closing twice does nothing.
    ///
    /// Cancel safe: once the command is queued, the client closes even if the future is
    /// dropped.
    pub async fn close(&self) {
        let (done, finished) = oneshot::channel();
        if self.inner.commands.send(Command::Close { done }).await.is_ok() {
            let _ = finished.await;
        }
    }
}

fn to_params(operation: Operation, route: &str, params: impl Serialize) -> Result<Value> {
    let value = serde_json::to_value(params).map_err(|error| {
        Error::invalid_option(
            "params",
            format!("the params of {operation} on `{route}` do not serialize: {error}"),
        )
    })?;
    match value {
        Value::Object(_) | Value::Null => Ok(value),
        other => Err(Error::invalid_option(
            "params",
            format!(
                "the params of {operation} on `{route}` must be a JSON object or null, got {}",
                askless_protocol::JsonType::of(&other)
            ),
        )),
    }
}

fn to_body(operation: Operation, body: impl Serialize) -> Result<Value> {
    let value = serde_json::to_value(body).map_err(|error| {
        Error::invalid_option(
            "body",
            format!("the body of a {operation} does not serialize: {error}"),
        )
    })?;
    if value.is_null() {
        return Err(Error::invalid_option(
            "body",
            format!("the body of a {operation} must not be null"),
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use serde_json::json;

    #[test]
    fn params_must_be_object_or_null() {
        assert!(to_params(Operation::Read, "items", json!({"a": 1})).is_ok());
        assert!(to_params(Operation::Read, "items", ()).is_ok());

        let error = to_params(Operation::Read, "items", json!([1])).unwrap_err();

        assert_eq!(error.kind(), ErrorKind::InvalidOption);
        assert!(
            error.to_string().contains("must be a JSON object or null"),
            "{error}"
        );
    }

    #[test]
    fn create_body_must_not_be_null() {
        let error = to_body(Operation::Create, ()).unwrap_err();

        assert_eq!(error.kind(), ErrorKind::InvalidOption);
    }

    #[test]
    fn output_deserializes_into_type() {
        let output = Output {
            operation: Operation::Read,
            route: "n".into(),
            value: Some(json!(5)),
        };
        let absent = Output {
            operation: Operation::Read,
            route: "n".into(),
            value: None,
        };

        assert_eq!(output.json::<u32>().unwrap(), 5);
        assert_eq!(absent.json::<Option<u32>>().unwrap(), None);
        assert_eq!(output.json::<String>().unwrap_err().kind(), ErrorKind::Decode);
    }
}
