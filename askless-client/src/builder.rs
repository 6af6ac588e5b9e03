//! The client builder.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use askless_protocol::ClientIdInternalApp;
use askless_transport::{Transport, WebSocketTransport};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{mpsc, oneshot};
use url::Url;

use crate::auth::{CredentialFuture, CredentialProvider, ReauthenticationCallback, ReauthenticationFailure};
use crate::client::{AsklessClient, Shared};
use crate::error::{Error, Result};
use crate::policy::ReconnectPolicy;
use crate::stats::StatsCounters;
use crate::status::{ConnectionStatus, StatusPublisher};
use crate::task::{COMMAND_CAPACITY, ConnectionTask, DirectSlot, TaskSettings};

/// Default of [`AsklessClientBuilder::max_pending_requests`]: requests (reads, creates,
/// updates, deletes) that may wait for a response at once.
pub const DEFAULT_MAX_PENDING_REQUESTS: usize = 65_536;

/// Builds an [`AsklessClient`]. Created by [`AsklessClient::builder`].
pub struct AsklessClientBuilder {
    max_pending_requests: usize,
    url: String,
    transport: Option<Arc<dyn Transport>>,
    request_timeout: Option<Duration>,
    policy: ReconnectPolicy,
    client_id: Option<ClientIdInternalApp>,
    on_reauthentication_fails: Option<ReauthenticationCallback>,
    credential_provider: Option<CredentialProvider>,
}

impl fmt::Debug for AsklessClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsklessClientBuilder")
            .field("url", &redact_text(&self.url))
            .field("transport", &self.transport)
            .field("request_timeout", &self.request_timeout)
            .field("policy", &self.policy)
            .field("client_id", &self.client_id)
            .field(
                "on_reauthentication_fails",
                &self.on_reauthentication_fails.is_some(),
            )
            .field("credential_provider", &self.credential_provider.is_some())
            .field("max_pending_requests", &self.max_pending_requests)
            .finish()
    }
}

impl AsklessClientBuilder {
    pub(crate) fn new(url: impl Into<String>) -> Self {
        AsklessClientBuilder {
            max_pending_requests: DEFAULT_MAX_PENDING_REQUESTS,
            url: url.into(),
            transport: None,
            request_timeout: None,
            policy: ReconnectPolicy::default(),
            client_id: None,
            on_reauthentication_fails: None,
            credential_provider: None,
        }
    }

    /// Sets the callback called, once per failure, when the automatic re-authentication after
    /// a reconnection is rejected with a credential error. It receives the error code and a
    /// handle that clears the authentication. It runs on the connection task, so it must return
    /// quickly; spawn a task for slow work. Default: none (a warning is logged).
    pub fn on_auto_reauthentication_fails<F>(mut self, callback: F) -> Self
    where
        F: Fn(ReauthenticationFailure) + Send + Sync + 'static,
    {
        self.on_reauthentication_fails = Some(Arc::new(callback));
        self
    }

    /// Sets a provider asked for a fresh credential before each automatic re-authentication,
    /// for example to refresh an access token. Returning `None` keeps the stored credential.
    /// The connection task waits for it for at most the server's
    /// `waitForAuthenticationTimeoutInMs` (4 s by default), then uses the stored credential.
    /// Default: none.
    pub fn credential_provider<F>(mut self, provider: F) -> Self
    where
        F: Fn() -> CredentialFuture + Send + Sync + 'static,
    {
        self.credential_provider = Some(Arc::new(provider));
        self
    }

    /// Sets the transport that opens connections. Default: a [`WebSocketTransport`] with
    /// default options.
    pub fn transport(mut self, transport: impl Transport) -> Self {
        self.transport = Some(Arc::new(transport));
        self
    }

    /// Sets a shared transport. Default: a [`WebSocketTransport`] with default options.
    pub fn transport_arc(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Sets the request timeout, in place of the server's `requestTimeoutInMs`. Zero means
    /// requests never time out. Default: the server's value (7 s before the first
    /// configuration, and with the reference server's defaults).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = Some(timeout);
        self
    }

    /// Sets the reconnect policy. Default: [`ReconnectPolicy::default`].
    pub fn reconnect_policy(mut self, policy: ReconnectPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the `clientIdInternalApp` this client uses on every connection. The server keys its
    /// per-client state and its duplicate filter on it, so two running clients must never share
    /// one. Default: 28 random alphanumeric characters, generated once per client.
    pub fn client_id(mut self, client_id: ClientIdInternalApp) -> Self {
        self.client_id = Some(client_id);
        self
    }

    /// Sets how many requests (reads, creates, updates and deletes) may be pending at once,
    /// waiting for a connection or a response. A request made past the limit fails at once with
    /// [`ErrorKind::TooManyPending`](crate::ErrorKind::TooManyPending) and is never sent, so a
    /// dead or hostile server cannot make the pending table grow without bound. Streams and
    /// authentication are not counted. Must be at least 1. Default:
    /// [`DEFAULT_MAX_PENDING_REQUESTS`] (65 536).
    pub fn max_pending_requests(mut self, limit: usize) -> Self {
        self.max_pending_requests = limit;
        self
    }

    /// Validates the options, starts the connection task and returns the client at once; the
    /// first connection is opened in the background.
    ///
    /// Fails with [`ErrorKind::InvalidUrl`](crate::ErrorKind::InvalidUrl) when the URL is not a
    /// ws:// or wss:// URL with a host, [`ErrorKind::InvalidOption`](crate::ErrorKind::InvalidOption)
    /// for an unusable option or when called outside a Tokio runtime.
    pub fn build(self) -> Result<AsklessClient> {
        self.start(None)
    }

    /// Like [`build`](Self::build), then waits until the first connection is configured.
    ///
    /// Fails when the first attempt fails (connection refused, server silent, configure
    /// error, unsupported version); the client is then closed. Use [`build`](Self::build) to
    /// keep retrying in the background instead.
    ///
    /// Cancel safe: dropping the future drops the client, which closes its connection.
    pub async fn connect(self) -> Result<AsklessClient> {
        let (first_tx, first_rx) = oneshot::channel();
        let client = self.start(Some(first_tx))?;
        match first_rx.await {
            Ok(Ok(())) => Ok(client),
            Ok(Err(error)) => {
                client.close().await;
                Err(error)
            }
            Err(_) => Err(Error::closed(None, "")),
        }
    }

    fn start(self, first_outcome: Option<oneshot::Sender<Result<()>>>) -> Result<AsklessClient> {
        let url = parse_server_url(&self.url)?;
        self.policy.validate()?;
        if self.max_pending_requests == 0 {
            return Err(Error::invalid_option(
                "max_pending_requests",
                "0 would reject every request; use at least 1".to_owned(),
            ));
        }
        let client_id = match self.client_id {
            Some(id) => validate_client_id(id)?,
            None => ClientIdInternalApp::generate(&mut rand::rng()),
        };
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::invalid_option(
                "runtime",
                "no Tokio runtime is running; build the client inside a Tokio runtime".to_owned(),
            )
        })?;
        let transport = self
            .transport
            .unwrap_or_else(|| Arc::new(WebSocketTransport::default()));
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_CAPACITY);
        let stats = Arc::new(StatsCounters::default());
        let direct = Arc::new(DirectSlot::default());
        let (publisher, receivers) = StatusPublisher::new(ConnectionStatus::InProgress);
        let settings = TaskSettings {
            url,
            transport,
            client_id: client_id.clone(),
            request_timeout: self.request_timeout,
            policy: self.policy,
            rng: StdRng::from_rng(&mut rand::rng()),
            first_outcome,
            on_reauthentication_fails: self.on_reauthentication_fails,
            credential_provider: self.credential_provider,
            commands: commands_tx.downgrade(),
            stats: Arc::clone(&stats),
            direct: Arc::clone(&direct),
        };
        let (task, auth_status) = ConnectionTask::new(settings, commands_rx, publisher);
        runtime.spawn(task.run());
        let shared = Shared {
            runtime,
            client_id,
            stats,
            direct,
            max_pending_requests: self.max_pending_requests,
        };
        Ok(AsklessClient::new(commands_tx, receivers, auth_status, shared))
    }
}

/// Parses and checks the server URL: ws:// or wss:// with a host.
fn parse_server_url(text: &str) -> Result<Url> {
    let url = Url::parse(text).map_err(|error| Error::invalid_url(redact_text(text), error.to_string()))?;
    if url.scheme() != "ws" && url.scheme() != "wss" {
        return Err(Error::invalid_url(
            crate::task::redacted_url(&url),
            format!("the scheme is `{}`, expected ws or wss", url.scheme()),
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::invalid_url(
            crate::task::redacted_url(&url),
            "the URL has no host",
        ));
    }
    Ok(url)
}

/// Removes user-info and query from URL text that may not parse, for error messages.
fn redact_text(text: &str) -> String {
    let without_query = text.split(['?', '#']).next().unwrap_or_default();
    match without_query.split_once("://") {
        Some((scheme, rest)) => {
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://{rest}")
        }
        None => without_query
            .rsplit_once('@')
            .map_or(without_query, |(_, host)| host)
            .to_owned(),
    }
}

fn validate_client_id(id: ClientIdInternalApp) -> Result<ClientIdInternalApp> {
    if id.as_str().is_empty() || id.as_str() == "undefined" {
        return Err(Error::invalid_option(
            "client_id",
            format!(
                "`{}` is not accepted by the server; use a non-empty id other than `undefined`",
                id.as_str()
            ),
        ));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[test]
    fn url_must_be_websocket() {
        let error = parse_server_url("http://127.0.0.1:3000").unwrap_err();

        assert_eq!(error.kind(), ErrorKind::InvalidUrl);
        assert!(error.to_string().contains("`http`"), "{error}");
    }

    #[test]
    fn url_must_parse() {
        let error = parse_server_url("not a url").unwrap_err();

        assert_eq!(error.kind(), ErrorKind::InvalidUrl);
    }

    #[test]
    fn url_error_hides_credentials() {
        let error = parse_server_url("https://user:secret@example.test/?token=abc").unwrap_err();
        let unparsable = parse_server_url("ws://user:secret@[bad/?token=abc").unwrap_err();

        for text in [error.to_string(), format!("{error:?}"), unparsable.to_string()] {
            assert!(!text.contains("secret"), "{text}");
            assert!(!text.contains("abc"), "{text}");
        }
    }

    #[test]
    fn websocket_urls_are_accepted() {
        assert!(parse_server_url("ws://127.0.0.1:3000").is_ok());
        assert!(parse_server_url("wss://askless.example/path").is_ok());
    }

    #[test]
    fn undefined_client_id_is_rejected() {
        let error = validate_client_id(ClientIdInternalApp::new("undefined")).unwrap_err();

        assert_eq!(error.kind(), ErrorKind::InvalidOption);
    }

    #[test]
    fn build_outside_runtime_fails() {
        let error = AsklessClientBuilder::new("ws://127.0.0.1:1").build().unwrap_err();

        assert_eq!(error.kind(), ErrorKind::InvalidOption);
        assert!(error.to_string().contains("Tokio runtime"), "{error}");
    }
}
