//! Public types of authentication.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use askless_protocol::{AsklessErrorCode, UserId};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::task::Command;

/// The outcome of a successful [`AsklessClient::authenticate`](crate::AsklessClient::authenticate).
#[derive(Debug, Clone, PartialEq)]
pub struct Authenticated {
    /// The user id the server accepted, or `None` when the server accepted the connection as
    /// unauthenticated (the client is then not authenticated).
    pub user_id: Option<UserId>,
    /// The claims the server sent, if any.
    pub claims: Option<Value>,
}

/// The client's authentication state.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AuthenticationStatus {
    /// Not authenticated: initially, after `clear_authentication`, after a failed
    /// authentication, and while the automatic re-authentication after a reconnection runs.
    NotAuthenticated,
    /// An authenticate request is waiting for its response.
    InProgress,
    /// Authenticated on the current connection.
    Authenticated {
        /// The user id.
        user_id: UserId,
        /// The claims the server sent, if any.
        claims: Option<Value>,
    },
}

/// Options of [`AsklessClient::authenticate_with`](crate::AsklessClient::authenticate_with).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuthenticateOptions {
    /// Whether the authentication waits for the connection and for its response without a
    /// time limit. Default: `false` (at most 3 s for the connection, then the request timeout).
    pub never_timeout: bool,
}

/// Tells the application that the automatic re-authentication after a reconnection failed
/// with a credential error. Passed to the callback set with
/// [`AsklessClientBuilder::on_auto_reauthentication_fails`](crate::AsklessClientBuilder::on_auto_reauthentication_fails).
#[derive(Debug)]
pub struct ReauthenticationFailure {
    /// The error code of the failed authenticate response: the credential error code, such as
    /// `EXPIRED_ACCESS_TOKEN`, `INVALID_CREDENTIAL` for a rejection without code, or
    /// `AUTHORIZE_TIMEOUT` when the server did not decide in time.
    pub code: AsklessErrorCode,
    /// Clears the stored authentication, for example when the user must sign in again.
    pub clear: ClearAuthentication,
}

/// A handle that clears the client's authentication; it does not keep the client alive.
#[derive(Debug, Clone)]
pub struct ClearAuthentication {
    pub(crate) commands: mpsc::WeakSender<Command>,
}

impl ClearAuthentication {
    /// Clears the authentication like
    /// [`AsklessClient::clear_authentication`](crate::AsklessClient::clear_authentication).
    /// Does nothing when the client is gone.
    ///
    /// Cancel safe: once the command is queued, the authentication is cleared even if the
    /// future is dropped.
    pub async fn clear(&self) -> Result<()> {
        let Some(commands) = self.commands.upgrade() else {
            return Ok(());
        };
        clear_authentication(&commands, false).await
    }
}

/// Sends the clear command and waits for the logout response, when one was sent. With
/// `only_if_authenticated`, nothing happens unless the client is authenticated.
pub(crate) async fn clear_authentication(
    commands: &mpsc::Sender<Command>,
    only_if_authenticated: bool,
) -> Result<()> {
    let (reply, done) = oneshot::channel();
    let command = Command::ClearAuthentication {
        only_if_authenticated,
        reply,
    };
    commands
        .send(command)
        .await
        .map_err(|_| Error::closed(None, ""))?;
    match done.await {
        Ok(result) => result.map(|_| ()),
        Err(_) => Err(Error::closed(None, "")),
    }
}

/// The callback of [`AsklessClientBuilder::on_auto_reauthentication_fails`](crate::AsklessClientBuilder::on_auto_reauthentication_fails).
pub(crate) type ReauthenticationCallback = Arc<dyn Fn(ReauthenticationFailure) + Send + Sync>;

/// A future that returns a fresh credential, or `None` to use the stored one.
pub type CredentialFuture = Pin<Box<dyn Future<Output = Option<Value>> + Send>>;

/// The credential provider of [`AsklessClientBuilder::credential_provider`](crate::AsklessClientBuilder::credential_provider).
pub(crate) type CredentialProvider = Arc<dyn Fn() -> CredentialFuture + Send + Sync>;

/// A credential, kept out of `Debug` output.
#[derive(Clone, PartialEq)]
pub(crate) struct Credential(pub(crate) Value);

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(askless_protocol::REDACTED)
    }
}
