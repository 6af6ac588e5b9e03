//! The error type of the client.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use askless_protocol::{AsklessErrorCode, ClientVersionCodeSupported};
use askless_transport::TransportError;

/// Result type of the client's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The operation a request performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// A read request.
    Read,
    /// A create request.
    Create,
    /// An update request.
    Update,
    /// A delete request.
    Delete,
    /// A listen request of a stream.
    Listen,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Read => "read",
            Operation::Create => "create",
            Operation::Update => "update",
            Operation::Delete => "delete",
            Operation::Listen => "listen",
        })
    }
}

/// The category of an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The request was sent, or registered, and no response arrived within the request timeout.
    Timeout,
    /// No connection to the server could be used for the request.
    NoConnection,
    /// The server responded with an error.
    Server,
    /// The server rejected the credential; [`Error::code`] has the credential error code, such as
    /// `EXPIRED_ACCESS_TOKEN`.
    Credential,
    /// The request needs an authentication the client does not have: it was discarded by
    /// `clear_authentication`.
    NotAuthenticated,
    /// The server responded `PENDING_AUTHENTICATION` and no authentication arrived in time.
    PendingAuthentication,
    /// Another authentication is in progress.
    Conflict,
    /// The output could not be deserialized into the requested type.
    Decode,
    /// The client was closed.
    Closed,
    /// The transport failed.
    Transport,
    /// The server URL is invalid.
    InvalidUrl,
    /// An option or argument has an unusable value.
    InvalidOption,
    /// The server does not support this client's version.
    UnsupportedVersion,
    /// The request was rejected at once because the client already had the maximum number of
    /// pending requests (see
    /// [`AsklessClientBuilder::max_pending_requests`](crate::AsklessClientBuilder::max_pending_requests)).
    TooManyPending,
}

/// The error of every client operation.
///
/// Use [`Error::kind`] or the `is_*` methods to decide what to do. `Display` is one lowercase
/// sentence that names the operation and route and suggests a fix; the underlying cause, if any,
/// is available through [`std::error::Error::source`]. Neither `Display` nor `Debug` ever
/// contains a credential.
#[derive(Clone)]
pub struct Error {
    repr: Box<Repr>,
}

#[derive(Clone, Debug, thiserror::Error)]
enum Repr {
    #[error(
        "{operation} on route `{route}` timed out after {after:?} without a response; retry, or raise the request timeout"
    )]
    Timeout {
        operation: Operation,
        route: String,
        after: Duration,
    },

    #[error(
        "{operation} on route `{route}` failed: no connection to the server ({detail}); check the network and that the server is running"
    )]
    NoConnection {
        operation: Operation,
        route: String,
        detail: String,
    },

    #[error("{operation} on route `{route}` failed on the server with code {code}: {description}")]
    Server {
        operation: Operation,
        route: String,
        code: AsklessErrorCode,
        description: String,
    },

    #[error(
        "{operation} on route `{route}` requires authentication and none arrived in time (server: {description}); authenticate first, or use persevere to keep waiting"
    )]
    PendingAuthentication {
        operation: Operation,
        route: String,
        description: String,
    },

    #[error(
        "{operation} on route `{route}` was discarded because the authentication was cleared; send it again if it is still needed"
    )]
    NotAuthenticated { operation: Operation, route: String },

    #[error(
        "the server rejected the credential with code {code}: {description}; ask the user to sign in again or refresh the credential"
    )]
    Credential {
        code: AsklessErrorCode,
        description: String,
    },

    #[error("authentication failed on the server with code {code}: {description}")]
    AuthenticationFailed {
        code: AsklessErrorCode,
        description: String,
    },

    #[error(
        "authentication timed out after {after:?} without a response; retry, or raise the request timeout"
    )]
    AuthenticationTimeout { after: Duration },

    #[error("authentication failed: no connection to the server within {waited:?}; retry when connected")]
    AuthenticationNoConnection { waited: Duration },

    #[error("another authentication is in progress; wait for it to finish before authenticating again")]
    Conflict,

    #[error("failed to deserialize the output of {operation} on route `{route}` into `{target}`: {source}")]
    Decode {
        operation: Operation,
        route: String,
        target: &'static str,
        #[source]
        source: Arc<serde_json::Error>,
    },

    #[error(
        "failed to connect to the server: {detail}; check the URL, the network and that the server is running"
    )]
    Connect { detail: String },

    #[error("{} on route `{route}` failed: the client was closed; build a new client", operation.map_or("request", |op| match op {
        Operation::Read => "read",
        Operation::Create => "create",
        Operation::Update => "update",
        Operation::Delete => "delete",
        Operation::Listen => "listen",
    }))]
    Closed {
        operation: Option<Operation>,
        route: String,
    },

    #[error("transport failed: {source}")]
    Transport {
        #[source]
        source: Arc<TransportError>,
    },

    #[error("invalid server URL `{url}`: {reason}; use a ws:// or wss:// URL with a host")]
    InvalidUrl { url: String, reason: String },

    #[error("invalid value for {option}: {reason}")]
    InvalidOption { option: &'static str, reason: String },

    #[error(
        "the server (version {server_version}) does not support this client (version code {client_code}); supported version codes: {supported}; update the client or the server, then call reconnect"
    )]
    UnsupportedVersion {
        server_version: String,
        client_code: i64,
        supported: String,
    },

    #[error(
        "{operation} on route `{route}` was rejected: {limit} requests are already pending; wait for some to complete, or raise max_pending_requests"
    )]
    TooManyPending {
        operation: Operation,
        route: String,
        limit: usize,
    },
}

impl Error {
    /// Returns the category of this error.
    pub fn kind(&self) -> ErrorKind {
        match &*self.repr {
            Repr::Timeout { .. } => ErrorKind::Timeout,
            Repr::NoConnection { .. } | Repr::Connect { .. } => ErrorKind::NoConnection,
            Repr::Server { .. } | Repr::AuthenticationFailed { .. } => ErrorKind::Server,
            Repr::Credential { .. } => ErrorKind::Credential,
            Repr::NotAuthenticated { .. } => ErrorKind::NotAuthenticated,
            Repr::PendingAuthentication { .. } => ErrorKind::PendingAuthentication,
            Repr::AuthenticationTimeout { .. } => ErrorKind::Timeout,
            Repr::AuthenticationNoConnection { .. } => ErrorKind::NoConnection,
            Repr::Conflict => ErrorKind::Conflict,
            Repr::Decode { .. } => ErrorKind::Decode,
            Repr::Closed { .. } => ErrorKind::Closed,
            Repr::Transport { .. } => ErrorKind::Transport,
            Repr::InvalidUrl { .. } => ErrorKind::InvalidUrl,
            Repr::InvalidOption { .. } => ErrorKind::InvalidOption,
            Repr::UnsupportedVersion { .. } => ErrorKind::UnsupportedVersion,
            Repr::TooManyPending { .. } => ErrorKind::TooManyPending,
        }
    }

    /// Returns whether the request timed out.
    pub fn is_timeout(&self) -> bool {
        self.kind() == ErrorKind::Timeout
    }

    /// Returns whether no connection could be used.
    pub fn is_no_connection(&self) -> bool {
        self.kind() == ErrorKind::NoConnection
    }

    /// Returns whether the server responded with an error.
    pub fn is_server(&self) -> bool {
        self.kind() == ErrorKind::Server
    }

    /// Returns whether the server rejected the credential.
    pub fn is_credential_error(&self) -> bool {
        self.kind() == ErrorKind::Credential
    }

    /// Returns whether the output did not deserialize into the requested type.
    pub fn is_decode(&self) -> bool {
        self.kind() == ErrorKind::Decode
    }

    /// Returns whether the client was closed.
    pub fn is_closed(&self) -> bool {
        self.kind() == ErrorKind::Closed
    }

    /// Returns whether the transport failed.
    pub fn is_transport(&self) -> bool {
        self.kind() == ErrorKind::Transport
    }

    /// Returns whether the server does not support this client's version.
    pub fn is_unsupported_version(&self) -> bool {
        self.kind() == ErrorKind::UnsupportedVersion
    }

    /// Returns the Askless error code: the server's code for [`ErrorKind::Server`] (`none`
    /// when the server sent no code), `NO_CONNECTION` for [`ErrorKind::Timeout`] and
    /// [`ErrorKind::NoConnection`] (the code the reference client uses for both), and `None`
    /// otherwise.
    pub fn code(&self) -> Option<AsklessErrorCode> {
        match &*self.repr {
            Repr::Server { code, .. }
            | Repr::Credential { code, .. }
            | Repr::AuthenticationFailed { code, .. } => Some(code.clone()),
            Repr::PendingAuthentication { .. } => Some(AsklessErrorCode::PendingAuthentication),
            Repr::AuthenticationTimeout { .. } | Repr::AuthenticationNoConnection { .. } => {
                Some(AsklessErrorCode::NoConnection)
            }
            Repr::Conflict => Some(AsklessErrorCode::Conflict),
            Repr::Timeout { .. } | Repr::NoConnection { .. } => Some(AsklessErrorCode::NoConnection),
            _ => None,
        }
    }

    /// Returns the server's error description for [`ErrorKind::Server`] (`none` when the
    /// server sent none).
    pub fn description(&self) -> Option<&str> {
        match &*self.repr {
            Repr::Server { description, .. }
            | Repr::Credential { description, .. }
            | Repr::AuthenticationFailed { description, .. }
            | Repr::PendingAuthentication { description, .. } => Some(description),
            _ => None,
        }
    }

    /// Returns the route of the failed request, when the error belongs to one.
    pub fn route(&self) -> Option<&str> {
        match &*self.repr {
            Repr::Timeout { route, .. }
            | Repr::NoConnection { route, .. }
            | Repr::Server { route, .. }
            | Repr::PendingAuthentication { route, .. }
            | Repr::NotAuthenticated { route, .. }
            | Repr::Decode { route, .. }
            | Repr::Closed { route, .. }
            | Repr::TooManyPending { route, .. } => Some(route),
            _ => None,
        }
    }

    /// Returns the timeout that expired, for [`ErrorKind::Timeout`].
    pub fn timeout(&self) -> Option<Duration> {
        match &*self.repr {
            Repr::Timeout { after, .. } | Repr::AuthenticationTimeout { after } => Some(*after),
            _ => None,
        }
    }

    fn new(repr: Repr) -> Self {
        Error { repr: Box::new(repr) }
    }

    pub(crate) fn timed_out(operation: Operation, route: &str, after: Duration) -> Self {
        Error::new(Repr::Timeout {
            operation,
            route: route.to_owned(),
            after,
        })
    }

    pub(crate) fn no_connection(operation: Operation, route: &str, detail: impl Into<String>) -> Self {
        Error::new(Repr::NoConnection {
            operation,
            route: route.to_owned(),
            detail: detail.into(),
        })
    }

    pub(crate) fn connect_failed(detail: impl Into<String>) -> Self {
        Error::new(Repr::Connect {
            detail: detail.into(),
        })
    }

    pub(crate) fn server(
        operation: Operation,
        route: &str,
        code: AsklessErrorCode,
        description: impl Into<String>,
    ) -> Self {
        Error::new(Repr::Server {
            operation,
            route: route.to_owned(),
            code,
            description: description.into(),
        })
    }

    pub(crate) fn pending_authentication(
        operation: Operation,
        route: &str,
        description: impl Into<String>,
    ) -> Self {
        Error::new(Repr::PendingAuthentication {
            operation,
            route: route.to_owned(),
            description: description.into(),
        })
    }

    pub(crate) fn not_authenticated(operation: Operation, route: &str) -> Self {
        Error::new(Repr::NotAuthenticated {
            operation,
            route: route.to_owned(),
        })
    }

    pub(crate) fn credential(code: AsklessErrorCode, description: impl Into<String>) -> Self {
        Error::new(Repr::Credential {
            code,
            description: description.into(),
        })
    }

    pub(crate) fn authentication_failed(code: AsklessErrorCode, description: impl Into<String>) -> Self {
        Error::new(Repr::AuthenticationFailed {
            code,
            description: description.into(),
        })
    }

    pub(crate) fn authentication_timed_out(after: Duration) -> Self {
        Error::new(Repr::AuthenticationTimeout { after })
    }

    pub(crate) fn authentication_no_connection(waited: Duration) -> Self {
        Error::new(Repr::AuthenticationNoConnection { waited })
    }

    pub(crate) fn conflict() -> Self {
        Error::new(Repr::Conflict)
    }

    pub(crate) fn decode(
        operation: Operation,
        route: &str,
        target: &'static str,
        source: serde_json::Error,
    ) -> Self {
        Error::new(Repr::Decode {
            operation,
            route: route.to_owned(),
            target,
            source: Arc::new(source),
        })
    }

    pub(crate) fn too_many_pending(operation: Operation, route: &str, limit: usize) -> Self {
        Error::new(Repr::TooManyPending {
            operation,
            route: route.to_owned(),
            limit,
        })
    }

    pub(crate) fn closed(operation: Option<Operation>, route: &str) -> Self {
        Error::new(Repr::Closed {
            operation,
            route: route.to_owned(),
        })
    }

    pub(crate) fn transport(source: Arc<TransportError>) -> Self {
        Error::new(Repr::Transport { source })
    }

    pub(crate) fn invalid_url(url: String, reason: impl Into<String>) -> Self {
        Error::new(Repr::InvalidUrl {
            url,
            reason: reason.into(),
        })
    }

    pub(crate) fn invalid_option(option: &'static str, reason: String) -> Self {
        Error::new(Repr::InvalidOption { option, reason })
    }

    pub(crate) fn unsupported_version(server_version: &str, supported: &ClientVersionCodeSupported) -> Self {
        Error::new(Repr::UnsupportedVersion {
            server_version: server_version.to_owned(),
            client_code: askless_protocol::CLIENT_VERSION_CODE,
            supported: describe_window(supported),
        })
    }

    /// Returns a copy of this error attached to another request, for terminal states such as an
    /// unsupported version that fail every request the same way.
    pub(crate) fn for_request(&self, operation: Operation, route: &str) -> Self {
        match &*self.repr {
            Repr::NoConnection { detail, .. } | Repr::Connect { detail } => {
                Error::no_connection(operation, route, detail.clone())
            }
            Repr::Closed { .. } => Error::closed(Some(operation), route),
            _ => self.clone(),
        }
    }
}

/// Describes a version window such as `>= 4` or `>= 1 and <= 3`.
pub(crate) fn describe_window(window: &ClientVersionCodeSupported) -> String {
    match (window.more_than_or_equal, window.less_than_or_equal) {
        (Some(low), Some(high)) => format!(">= {low} and <= {high}"),
        (Some(low), None) => format!(">= {low}"),
        (None, Some(high)) => format!("<= {high}"),
        (None, None) => "any".to_owned(),
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.repr {
            Repr::Closed { operation: None, .. } => f.write_str("the client was closed; build a new client"),
            repr => fmt::Display::fmt(repr, f),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind())
            .field("repr", &self.repr)
            .finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.repr {
            Repr::Decode { source, .. } => Some(&**source),
            Repr::Transport { source } => Some(&**source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_error_keeps_code_and_description() {
        let error = Error::server(
            Operation::Create,
            "items",
            AsklessErrorCode::from("OUT_OF_STOCK"),
            "none left",
        );

        assert_eq!(error.kind(), ErrorKind::Server);
        assert_eq!(error.code().unwrap().as_str(), "OUT_OF_STOCK");
        assert_eq!(error.description(), Some("none left"));
        assert_eq!(error.route(), Some("items"));
        assert_eq!(
            error.to_string(),
            "create on route `items` failed on the server with code OUT_OF_STOCK: none left"
        );
    }

    #[test]
    fn timeout_and_no_connection_differ() {
        let timeout = Error::timed_out(Operation::Read, "items", Duration::from_secs(7));
        let offline = Error::no_connection(Operation::Read, "items", "the server is unreachable");

        assert!(timeout.is_timeout());
        assert!(!timeout.is_no_connection());
        assert!(offline.is_no_connection());
        assert_eq!(timeout.timeout(), Some(Duration::from_secs(7)));
        assert!(timeout.to_string().contains("timed out after 7s"), "{timeout}");
    }

    #[test]
    fn decode_error_has_source() {
        let source = serde_json::from_str::<u32>("\"x\"").unwrap_err();
        let error = Error::decode(Operation::Read, "items", "u32", source);

        assert!(std::error::Error::source(&error).is_some());
        assert!(error.to_string().starts_with("failed to deserialize"), "{error}");
    }

    #[test]
    fn unsupported_version_names_both_versions() {
        let error = Error::unsupported_version("2.0.3", &ClientVersionCodeSupported::JAVASCRIPT);

        let text = error.to_string();

        assert!(text.contains("2.0.3"), "{text}");
        assert!(text.contains("<= 3"), "{text}");
        assert!(text.contains("version code 7"), "{text}");
    }
}
