//! Error codes carried in responses, and the errors of decoding a frame.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::MessageKind;

/// An Askless error code.
///
/// Codes are strings on the wire. The ones the protocol defines are variants; any other string,
/// such as an application's own code or a credential error code like `EXPIRED_ACCESS_TOKEN`, is
/// kept unchanged in [`AsklessErrorCode::Custom`].
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AsklessErrorCode {
    /// `INTERNAL_ERROR`: the server failed for an internal reason.
    InternalError,
    /// `INVALID_ROUTE`: no route with this name and operation exists.
    InvalidRoute,
    /// `PENDING_AUTHENTICATION`: the route is for authenticated users only.
    PendingAuthentication,
    /// `PERMISSION_DENIED`: returned by application handlers.
    PermissionDenied,
    /// `INVALID_CREDENTIAL`: the authentication was rejected without a specific code.
    InvalidCredential,
    /// `AUTHORIZE_TIMEOUT`: the server's authenticate function did not decide in time.
    AuthorizeTimeout,
    /// `CALL_NOT_AVAILABLE_ANYMORE`: the call to answer no longer exists.
    CallNotAvailableAnymore,
    /// `NO_CONNECTION`: produced by clients, never by a server.
    NoConnection,
    /// `CONFLICT`: produced by clients when an authentication is already in progress.
    Conflict,
    /// Any other code, kept exactly as the server sent it.
    Custom(String),
}

impl AsklessErrorCode {
    /// Returns the code as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InternalError => "INTERNAL_ERROR",
            Self::InvalidRoute => "INVALID_ROUTE",
            Self::PendingAuthentication => "PENDING_AUTHENTICATION",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::InvalidCredential => "INVALID_CREDENTIAL",
            Self::AuthorizeTimeout => "AUTHORIZE_TIMEOUT",
            Self::CallNotAvailableAnymore => "CALL_NOT_AVAILABLE_ANYMORE",
            Self::NoConnection => "NO_CONNECTION",
            Self::Conflict => "CONFLICT",
            Self::Custom(code) => code,
        }
    }
}

impl From<&str> for AsklessErrorCode {
    fn from(code: &str) -> Self {
        match code {
            "INTERNAL_ERROR" => Self::InternalError,
            "INVALID_ROUTE" => Self::InvalidRoute,
            "PENDING_AUTHENTICATION" => Self::PendingAuthentication,
            "PERMISSION_DENIED" => Self::PermissionDenied,
            "INVALID_CREDENTIAL" => Self::InvalidCredential,
            "AUTHORIZE_TIMEOUT" => Self::AuthorizeTimeout,
            "CALL_NOT_AVAILABLE_ANYMORE" => Self::CallNotAvailableAnymore,
            "NO_CONNECTION" => Self::NoConnection,
            "CONFLICT" => Self::Conflict,
            other => Self::Custom(other.to_owned()),
        }
    }
}

impl From<String> for AsklessErrorCode {
    fn from(code: String) -> Self {
        match Self::from(code.as_str()) {
            Self::Custom(_) => Self::Custom(code),
            known => known,
        }
    }
}

impl fmt::Display for AsklessErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for AsklessErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AsklessErrorCode({})", self.as_str())
    }
}

impl Serialize for AsklessErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AsklessErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

/// The `error` object of a failed response: `{"code": …, "description": …}`.
///
/// Either member may be absent on the wire (a route may fail without a code), so both are
/// optional here and absent ones stay absent when encoded again.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error code, if the server gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<AsklessErrorCode>,
    /// The human-readable description, if the server gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl ErrorBody {
    /// Builds an error body with both members present.
    pub fn new(code: impl Into<AsklessErrorCode>, description: impl Into<String>) -> Self {
        Self {
            code: Some(code.into()),
            description: Some(description.into()),
        }
    }

    /// Returns the code, or `none` when the server sent no code, as the reference client does.
    pub fn code_or_none(&self) -> &str {
        self.code.as_ref().map_or("none", AsklessErrorCode::as_str)
    }

    /// Returns the description, or `none` when the server sent none, as the reference client does.
    pub fn description_or_none(&self) -> &str {
        self.description.as_deref().unwrap_or("none")
    }
}

/// The JSON type of a value, named in decode errors in place of the value itself.
///
/// Decode errors never include received values, because a frame can carry credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonType {
    /// `null`
    Null,
    /// `true` or `false`
    Bool,
    /// A number.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl JsonType {
    /// Returns the type of `value`.
    pub fn of(value: &serde_json::Value) -> Self {
        match value {
            serde_json::Value::Null => Self::Null,
            serde_json::Value::Bool(_) => Self::Bool,
            serde_json::Value::Number(_) => Self::Number,
            serde_json::Value::String(_) => Self::String,
            serde_json::Value::Array(_) => Self::Array,
            serde_json::Value::Object(_) => Self::Object,
        }
    }
}

impl fmt::Display for JsonType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Null => "null",
            Self::Bool => "a boolean",
            Self::Number => "a number",
            Self::String => "a string",
            Self::Array => "an array",
            Self::Object => "an object",
        })
    }
}

/// Error of decoding a frame into a protocol message.
///
/// The message names the field and the expected and received JSON types but never a received
/// value, so it is safe to log even when the frame carried a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The frame is not valid JSON.
    #[error("frame is not valid JSON ({reason} at line {line}, column {column})")]
    InvalidJson {
        /// Message of the JSON parser, without any of the input.
        reason: String,
        /// Line of the error, starting at 1.
        line: usize,
        /// Column of the error, starting at 1.
        column: usize,
    },
    /// The frame is JSON but not an object.
    #[error("frame is {found}, expected a JSON object or one of the text frames `welcome` and `pong`")]
    NotAnObject {
        /// JSON type of the frame.
        found: JsonType,
    },
    /// A text frame that is neither JSON nor one of the known plain-text frames.
    #[error("unexpected plain-text frame of {len} bytes, expected JSON or `welcome`/`pong`")]
    UnexpectedText {
        /// Length of the frame in bytes.
        len: usize,
    },
    /// The object carries no `_class_type_*` marker of a known message.
    #[error("frame has no known `_class_type_*` marker{}", for_request(.client_request_id))]
    UnknownMessage {
        /// The frame's `clientRequestId`, if it had a usable one.
        client_request_id: Option<String>,
    },
    /// A field the message needs is absent or `null`.
    #[error("{kind} frame is missing the field `{field}`{}", for_request(.client_request_id))]
    MissingField {
        /// Kind of message the frame was classified as.
        kind: MessageKind,
        /// The missing field, as named on the wire.
        field: Cow<'static, str>,
        /// The frame's `clientRequestId`, if it had a usable one.
        client_request_id: Option<String>,
    },
    /// A field has the wrong JSON type or an invalid value.
    #[error("{kind} frame has an invalid `{field}`: expected {expected}, found {found}{}", for_request(.client_request_id))]
    InvalidField {
        /// Kind of message the frame was classified as.
        kind: MessageKind,
        /// The invalid field, as named on the wire (`listeningToRoutes[2].route` for nested ones).
        field: Cow<'static, str>,
        /// Description of the expected value.
        expected: &'static str,
        /// The JSON type found, or a short description of why the value is invalid.
        found: Cow<'static, str>,
        /// The frame's `clientRequestId`, if it had a usable one.
        client_request_id: Option<String>,
    },
}

fn for_request(client_request_id: &Option<String>) -> String {
    match client_request_id {
        Some(id) => format!(" (clientRequestId {id})"),
        None => String::new(),
    }
}

impl DecodeError {
    /// Returns the `clientRequestId` of the frame, when it had a usable one.
    ///
    /// A server uses it to reply to a frame it could classify but not decode.
    pub fn client_request_id(&self) -> Option<&str> {
        match self {
            Self::UnknownMessage { client_request_id }
            | Self::MissingField {
                client_request_id, ..
            }
            | Self::InvalidField {
                client_request_id, ..
            } => client_request_id.as_deref(),
            _ => None,
        }
    }

    /// Returns the kind of message the frame was classified as, when classification succeeded.
    pub fn kind(&self) -> Option<MessageKind> {
        match self {
            Self::MissingField { kind, .. } | Self::InvalidField { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// Returns the wire name of the missing or invalid field, when the error is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            Self::MissingField { field, .. } | Self::InvalidField { field, .. } => Some(field),
            _ => None,
        }
    }

    pub(crate) fn from_json(error: &serde_json::Error) -> Self {
        // serde_json's syntax errors describe the position and the category, never the input.
        let message = error.to_string();
        let reason = match message.rfind(" at line ") {
            Some(cut) => message[..cut].to_owned(),
            None => message,
        };
        Self::InvalidJson {
            reason,
            line: error.line(),
            column: error.column(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_codes_parse_to_variants() {
        assert_eq!(
            AsklessErrorCode::from("INVALID_ROUTE"),
            AsklessErrorCode::InvalidRoute
        );
        assert_eq!(
            AsklessErrorCode::from("PENDING_AUTHENTICATION"),
            AsklessErrorCode::PendingAuthentication
        );
    }

    #[test]
    fn custom_codes_are_kept_unchanged() {
        let code = AsklessErrorCode::from("EXPIRED_ACCESS_TOKEN");
        assert_eq!(code, AsklessErrorCode::Custom("EXPIRED_ACCESS_TOKEN".into()));
        assert_eq!(code.as_str(), "EXPIRED_ACCESS_TOKEN");
        let json = serde_json::to_string(&code).unwrap();
        assert_eq!(json, "\"EXPIRED_ACCESS_TOKEN\"");
    }

    #[test]
    fn error_body_placeholders_are_none() {
        let body = ErrorBody::default();
        assert_eq!(body.code_or_none(), "none");
        assert_eq!(body.description_or_none(), "none");
    }

    #[test]
    fn invalid_json_error_omits_the_input() {
        let error = serde_json::from_str::<serde_json::Value>("{\"secret-token-123\" x").unwrap_err();
        let decoded = DecodeError::from_json(&error);
        assert!(!decoded.to_string().contains("secret-token-123"));
        assert!(!format!("{decoded:?}").contains("secret-token-123"));
    }
}
