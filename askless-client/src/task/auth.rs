//! Authentication inside the connection task: explicit authentication, clearing it, the
//! automatic re-authentication after every reconnection, and requests waiting for
//! authentication.

use std::fmt;
use std::time::Duration;

use askless_protocol::{
    AsklessErrorCode, AuthenticateRequest, ClientMessage, ClientRequestId, ModifyKind, ModifyRequest,
    Response, routes,
};
use serde_json::Value;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use super::{ConnectionTask, RequestCommand};
use crate::auth::{
    Authenticated, AuthenticationStatus, ClearAuthentication, Credential, ReauthenticationFailure,
};
use crate::error::{Error, Operation, Result};
use crate::options::RequestOptions;

/// Delay before the automatic re-authentication tries again after a failure that is not a
/// credential error.
const REAUTHENTICATION_RETRY: Duration = Duration::from_secs(1);

/// How long an explicit authentication waits for the connection unless it never times out.
pub(crate) const AUTHENTICATE_CONNECTION_WAIT: Duration = Duration::from_secs(3);

/// The waiter of an authenticate response.
enum AuthOrigin {
    /// The application, through `authenticate`.
    Explicit(oneshot::Sender<Result<Authenticated>>),
    /// The automatic re-authentication after a reconnection.
    Automatic,
}

/// The authenticate request waiting for its response. At most one exists at a time.
struct AuthInFlight {
    id: ClientRequestId,
    /// The encoded request; it contains the credential, so it is never logged.
    frame: String,
    credential: Credential,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    origin: AuthOrigin,
}

impl fmt::Debug for AuthInFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let origin = match self.origin {
            AuthOrigin::Explicit(_) => "explicit",
            AuthOrigin::Automatic => "automatic",
        };
        f.debug_struct("AuthInFlight")
            .field("id", &self.id)
            .field("deadline", &self.deadline)
            .field("origin", &origin)
            .finish_non_exhaustive()
    }
}

/// The authentication state of the client.
#[derive(Debug)]
pub(super) struct AuthState {
    status: watch::Sender<AuthenticationStatus>,
    /// Set by a successful authentication with a user id, cleared by `clear_authentication`.
    should_be_authenticated: bool,
    /// The credential of the last successful authentication.
    credential: Option<Credential>,
    in_flight: Option<AuthInFlight>,
    /// While set, requests are held back for the automatic re-authentication, at most until
    /// this instant.
    hold_until: Option<Instant>,
    /// When the automatic re-authentication tries again.
    retry_at: Option<Instant>,
}

impl AuthState {
    pub(super) fn new() -> (Self, watch::Receiver<AuthenticationStatus>) {
        let (status, receiver) = watch::channel(AuthenticationStatus::NotAuthenticated);
        let state = AuthState {
            status,
            should_be_authenticated: false,
            credential: None,
            in_flight: None,
            hold_until: None,
            retry_at: None,
        };
        (state, receiver)
    }

    pub(super) fn is_authenticated(&self) -> bool {
        matches!(*self.status.borrow(), AuthenticationStatus::Authenticated { .. })
    }

    /// Returns whether the application authenticated and did not clear the authentication since.
    pub(super) fn expects_authentication(&self) -> bool {
        self.should_be_authenticated
    }

    /// Returns whether requests are held back for the automatic re-authentication.
    pub(super) fn is_holding(&self) -> bool {
        self.hold_until.is_some()
    }

    /// Returns whether pings must list no stream: the client should be authenticated, is not
    /// yet, and an authentication is in flight, due for a retry or holding requests back.
    ///
    /// Once the automatic re-authentication has given up, pings list the streams again, so
    /// that the server re-creates the streams of routes for all users. It responds to the others
    /// with `PENDING_AUTHENTICATION`, which makes them wait for the next authentication.
    pub(super) fn hides_streams(&self) -> bool {
        let reauthenticating =
            self.in_flight.is_some() || self.retry_at.is_some() || self.hold_until.is_some();
        self.should_be_authenticated && !self.is_authenticated() && reauthenticating
    }

    pub(super) fn next_due(&self) -> Option<Instant> {
        let deadline = self.in_flight.as_ref().and_then(|in_flight| in_flight.deadline);
        [deadline, self.hold_until, self.retry_at]
            .into_iter()
            .flatten()
            .min()
    }

    fn set_status(&self, status: AuthenticationStatus) {
        self.status.send_if_modified(|current| {
            if *current == status {
                return false;
            }
            *current = status;
            true
        });
    }
}

impl ConnectionTask {
    /// Sends an explicit authenticate request.
    pub(super) async fn handle_authenticate(
        &mut self,
        credential: Credential,
        never_timeout: bool,
        reply: oneshot::Sender<Result<Authenticated>>,
    ) {
        if self.auth.in_flight.is_some() {
            let _ = reply.send(Err(Error::conflict()));
            return;
        }
        if !self.conn.is_connected() {
            let _ = reply.send(Err(Error::authentication_no_connection(
                AUTHENTICATE_CONNECTION_WAIT,
            )));
            return;
        }
        let options = RequestOptions {
            never_timeout,
            ..RequestOptions::default()
        };
        let timeout = self.request_timeout(&options);
        self.auth.set_status(AuthenticationStatus::InProgress);
        self.send_authenticate(credential, timeout, AuthOrigin::Explicit(reply))
            .await;
    }

    async fn send_authenticate(
        &mut self,
        credential: Credential,
        timeout: Option<Duration>,
        origin: AuthOrigin,
    ) {
        let id = ClientRequestId::generate_request(&mut self.settings.rng);
        let request =
            AuthenticateRequest::new(id.clone(), self.settings.client_id.clone(), credential.0.clone());
        let frame = ClientMessage::Authenticate(request).encode();
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        tracing::debug!(%id, automatic = matches!(origin, AuthOrigin::Automatic), "sending authenticate request");
        self.auth.in_flight = Some(AuthInFlight {
            id,
            frame: frame.clone(),
            credential,
            timeout,
            deadline,
            origin,
        });
        self.send_secret_frame(frame).await;
    }

    /// Returns whether `id` is the authenticate request waiting for its response.
    pub(super) fn is_authenticate_response(&self, id: &ClientRequestId) -> bool {
        self.auth
            .in_flight
            .as_ref()
            .is_some_and(|in_flight| &in_flight.id == id)
    }

    /// Handles the response to the authenticate request in flight.
    pub(super) async fn handle_authenticate_response(&mut self, response: Response) {
        let Some(in_flight) = self.auth.in_flight.take() else {
            return;
        };
        let output = response.authenticate_output();
        let result = match &response.error {
            None => {
                let claims = output.claims.clone();
                match output.user_id.clone() {
                    Some(user_id) => {
                        tracing::debug!(user_id = %user_id.to_value(), "authenticated");
                        self.auth.should_be_authenticated = true;
                        self.auth.credential = Some(in_flight.credential);
                        self.auth.retry_at = None;
                        self.auth.set_status(AuthenticationStatus::Authenticated {
                            user_id: user_id.clone(),
                            claims: claims.clone(),
                        });
                    }
                    None => {
                        tracing::debug!("the server accepted the connection as unauthenticated");
                        self.auth.set_status(AuthenticationStatus::NotAuthenticated);
                    }
                }
                Ok(Authenticated {
                    user_id: output.user_id,
                    claims,
                })
            }
            Some(error) => {
                let code = AsklessErrorCode::from(error.code_or_none());
                let description = error.description_or_none().to_owned();
                tracing::debug!(%code, credential_error = output.is_credential_error(), "authentication failed");
                self.auth.set_status(AuthenticationStatus::NotAuthenticated);
                if output.is_credential_error() {
                    Err(Error::credential(code, description))
                } else {
                    Err(Error::authentication_failed(code, description))
                }
            }
        };
        let authenticated = self.auth.is_authenticated();
        match in_flight.origin {
            AuthOrigin::Explicit(reply) => {
                let _ = reply.send(result);
            }
            AuthOrigin::Automatic => match &result {
                Ok(_) => {}
                Err(error) if error.is_credential_error() => self.report_reauthentication_failure(error),
                Err(_) => self.auth.retry_at = Some(Instant::now() + REAUTHENTICATION_RETRY),
            },
        }
        if authenticated {
            self.after_authenticated().await;
        }
    }

    /// Calls the application's callback once for a failed automatic re-authentication, then
    /// keeps requests back until the application authenticates or the wait runs out.
    fn report_reauthentication_failure(&mut self, error: &Error) {
        let code = error.code().unwrap_or(AsklessErrorCode::InvalidCredential);
        tracing::debug!(%code, "automatic re-authentication rejected");
        let hold = Instant::now() + self.config.wait_for_authentication_timeout();
        self.auth.hold_until = Some(self.auth.hold_until.map_or(hold, |current| current.max(hold)));
        match &self.settings.on_reauthentication_fails {
            Some(callback) => {
                let clear = ClearAuthentication {
                    commands: self.settings.commands.clone(),
                };
                callback(ReauthenticationFailure { code, clear });
            }
            None => tracing::warn!(%code, "automatic re-authentication failed and no callback is set"),
        }
    }

    /// Resumes what waited for authentication: the held requests and the requests that received
    /// `PENDING_AUTHENTICATION`.
    async fn after_authenticated(&mut self) {
        if self.auth.hold_until.take().is_some() {
            self.flush_pending().await;
        }
        if !self.conn.is_connected() {
            return;
        }
        let rng = &mut self.settings.rng;
        let frames = self
            .pending
            .resume_after_authentication(Instant::now(), || ClientRequestId::generate_request(rng));
        if !frames.is_empty() {
            tracing::debug!(
                count = frames.len(),
                "sending requests again after authentication"
            );
        }
        for frame in frames {
            if !self.send_frame(frame).await {
                return;
            }
        }
        self.resume_streams_after_authentication().await;
    }

    /// Starts the connection's requests once it is configured: re-sends an explicit
    /// authentication in flight, or re-authenticates with the stored credential first, then
    /// sends the pending requests.
    pub(super) async fn start_request_flow(&mut self) {
        let now = Instant::now();
        if let Some(in_flight) = &self.auth.in_flight {
            let frame = in_flight.frame.clone();
            tracing::debug!(id = %in_flight.id, "sending the pending authenticate request again");
            if !self.send_secret_frame(frame).await {
                return;
            }
        } else if self.auth.should_be_authenticated {
            self.auth.hold_until = Some(now + self.config.wait_for_authentication_timeout());
            self.start_reauthentication().await;
            return;
        }
        self.flush_pending().await;
    }

    /// Sends an automatic authenticate request with the stored or a fresh credential.
    async fn start_reauthentication(&mut self) {
        self.auth.retry_at = None;
        let fresh = match &self.settings.credential_provider {
            Some(provider) => {
                tracing::debug!("asking the credential provider for a fresh credential");
                let limit = self.config.wait_for_authentication_timeout();
                match tokio::time::timeout(limit, provider()).await {
                    Ok(fresh) => fresh,
                    Err(_) => {
                        tracing::warn!(
                            ?limit,
                            "the credential provider did not return in time, using the stored credential"
                        );
                        None
                    }
                }
            }
            None => None,
        };
        if let Some(fresh) = fresh {
            self.auth.credential = Some(Credential(fresh));
        }
        let Some(credential) = self.auth.credential.clone() else {
            self.auth.hold_until = None;
            self.flush_pending().await;
            return;
        };
        if !self.conn.is_connected() {
            return;
        }
        tracing::debug!("re-authenticating with the stored credential");
        self.auth.set_status(AuthenticationStatus::InProgress);
        let timeout = self.request_timeout(&RequestOptions::default());
        self.send_authenticate(credential, timeout, AuthOrigin::Automatic)
            .await;
    }

    /// Handles the authentication timers: the authenticate deadline, the re-authentication
    /// retry and the end of the hold.
    pub(super) async fn check_authentication_timers(&mut self, now: Instant) {
        let expired = self
            .auth
            .in_flight
            .as_ref()
            .and_then(|in_flight| in_flight.deadline)
            .is_some_and(|at| at <= now);
        if expired {
            if let Some(in_flight) = self.auth.in_flight.take() {
                self.auth.set_status(AuthenticationStatus::NotAuthenticated);
                let after = in_flight.timeout.unwrap_or_default();
                tracing::debug!(?after, "authenticate request timed out");
                match in_flight.origin {
                    AuthOrigin::Explicit(reply) => {
                        let _ = reply.send(Err(Error::authentication_timed_out(after)));
                    }
                    AuthOrigin::Automatic => self.auth.retry_at = Some(now + REAUTHENTICATION_RETRY),
                }
            }
        }
        if self.auth.retry_at.is_some_and(|at| at <= now) {
            self.auth.retry_at = None;
            let retry = self.conn.is_connected()
                && self.auth.should_be_authenticated
                && !self.auth.is_authenticated()
                && self.auth.in_flight.is_none();
            if retry {
                self.start_reauthentication().await;
            }
        }
        if self.auth.hold_until.is_some_and(|at| at <= now) {
            self.auth.hold_until = None;
            tracing::debug!("stopped waiting for the automatic re-authentication");
            self.flush_pending().await;
        }
    }

    /// Forgets the authentication state that belongs to a connection that ended.
    pub(super) fn reset_authentication_for_disconnect(&mut self) {
        if matches!(
            self.auth.in_flight,
            Some(AuthInFlight {
                origin: AuthOrigin::Automatic,
                ..
            })
        ) {
            self.auth.in_flight = None;
        }
        self.auth.hold_until = None;
        self.auth.retry_at = None;
        if self.auth.in_flight.is_none() {
            self.auth.set_status(AuthenticationStatus::NotAuthenticated);
        }
    }

    /// Clears the authentication: drops the stored credential, releases non-persevere waiters,
    /// fails every other pending request, and logs out on the server when authenticated.
    pub(super) async fn handle_clear_authentication(
        &mut self,
        only_if_authenticated: bool,
        reply: oneshot::Sender<Result<Option<Value>>>,
    ) {
        let was_authenticated = self.auth.is_authenticated();
        if only_if_authenticated && !was_authenticated {
            let _ = reply.send(Ok(None));
            return;
        }

        tracing::debug!(was_authenticated, "clearing the authentication");
        self.auth.should_be_authenticated = false;
        self.auth.credential = None;
        self.auth.retry_at = None;
        if matches!(
            self.auth.in_flight,
            Some(AuthInFlight {
                origin: AuthOrigin::Automatic,
                ..
            })
        ) {
            self.auth.in_flight = None;
        }
        if self.auth.in_flight.is_none() {
            self.auth.set_status(AuthenticationStatus::NotAuthenticated);
        }
        for request in self.pending.take_released_by_clear() {
            let description = request
                .authentication_error
                .as_ref()
                .map_or("none", |error| error.description_or_none());
            let error = Error::pending_authentication(request.operation, &request.route, description);
            request.complete(Err(error));
        }
        for request in self.pending.take_not_waiting_for_authentication() {
            let error = Error::not_authenticated(request.operation, &request.route);
            request.complete(Err(error));
        }
        self.release_streams_on_clear();

        if self.auth.hold_until.take().is_some() {
            self.flush_pending().await;
        }
        if !was_authenticated {
            let _ = reply.send(Ok(None));
            return;
        }
        let id = ClientRequestId::generate_request(&mut self.settings.rng);
        let message = ClientMessage::Modify(ModifyRequest::new(
            id.clone(),
            ModifyKind::Delete,
            routes::AUTHENTICATION,
            Value::Object(serde_json::Map::new()),
            Value::Null,
        ));
        let logout = RequestCommand {
            operation: Operation::Delete,
            route: routes::AUTHENTICATION.to_owned(),
            frame: message.encode(),
            id,
            message,
            written_on: None,
            created_at: Instant::now(),
            options: RequestOptions::default(),
            permit: None,
            reply,
        };
        self.handle_request(logout).await;
    }

    /// Sends a frame that contains a credential; it is never logged.
    async fn send_secret_frame(&mut self, frame: String) -> bool {
        tracing::trace!("sending authenticate request (credential not logged)");
        self.send_frame_unlogged(frame).await
    }
}
