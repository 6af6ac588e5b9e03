//! The application's authentication decision.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use askless_protocol::UserId;
use serde_json::{Value, json};

/// The decision of the authenticate handler registered with
/// [`authenticate_with`](crate::ServerHandle::authenticate_with).
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum AuthDecision {
    /// Accept the credential as a user.
    User {
        /// The user id; a falsy id (0 or the empty string) makes the server answer
        /// `INTERNAL_ERROR`, as the reference server does.
        user_id: UserId,
        /// The claims sent back and given to handlers. Default: `[]`.
        claims: Value,
        /// Per-user data given to handlers, never sent. Default: `{}`.
        locals: Value,
    },
    /// Accept the connection as unauthenticated: the response is a success with output `{}`.
    Unauthenticated,
    /// Reject the credential, with a credential error code (`INVALID_CREDENTIAL` when `None`).
    Reject {
        /// The credential error code.
        credential_error_code: Option<String>,
    },
    /// Never decide: the server answers `AUTHORIZE_TIMEOUT` after its authorize timeout.
    Never,
}

impl fmt::Debug for AuthDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Locals may hold tokens, so they stay out of Debug output.
            Self::User { user_id, claims, .. } => f
                .debug_struct("User")
                .field("user_id", user_id)
                .field("claims", claims)
                .finish_non_exhaustive(),
            Self::Unauthenticated => f.write_str("Unauthenticated"),
            Self::Reject {
                credential_error_code,
            } => f
                .debug_struct("Reject")
                .field("credential_error_code", credential_error_code)
                .finish(),
            Self::Never => f.write_str("Never"),
        }
    }
}

impl AuthDecision {
    /// Accepts as `user_id`, with claims `[]` and locals `{}`.
    pub fn user(user_id: impl Into<UserId>) -> Self {
        Self::User {
            user_id: user_id.into(),
            claims: json!([]),
            locals: json!({}),
        }
    }

    /// Sets the claims of a [`AuthDecision::User`] decision; other decisions are unchanged.
    pub fn with_claims(mut self, new_claims: Value) -> Self {
        if let Self::User { claims, .. } = &mut self {
            *claims = new_claims;
        }
        self
    }

    /// Sets the locals of a [`AuthDecision::User`] decision; other decisions are unchanged.
    pub fn with_locals(mut self, new_locals: Value) -> Self {
        if let Self::User { locals, .. } = &mut self {
            *locals = new_locals;
        }
        self
    }

    /// Accepts as unauthenticated.
    pub fn unauthenticated() -> Self {
        Self::Unauthenticated
    }

    /// Rejects with a credential error code such as `EXPIRED_ACCESS_TOKEN`.
    pub fn reject(credential_error_code: impl Into<String>) -> Self {
        Self::Reject {
            credential_error_code: Some(credential_error_code.into()),
        }
    }

    /// Rejects without a code; the server reports `INVALID_CREDENTIAL`.
    pub fn reject_without_code() -> Self {
        Self::Reject {
            credential_error_code: None,
        }
    }

    /// Never decides, so that the server times out.
    pub fn never() -> Self {
        Self::Never
    }
}

pub(crate) type AuthFuture = Pin<Box<dyn Future<Output = AuthDecision> + Send>>;
pub(crate) type Authenticator = Arc<dyn Fn(Value) -> AuthFuture + Send + Sync>;
