//! User ids and the output of an authenticate response.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A user id as the server's application chose it: a JSON number or a string.
///
/// The type matters on the wire: servers compare user ids strictly in some places (call
/// signalling), so a client sends back a user id with the JSON type the server used.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UserId {
    /// A numeric id, such as `42`.
    Number(serde_json::Number),
    /// A string id, such as `"alice"`.
    String(String),
}

impl UserId {
    /// Compares two ids the way JavaScript's `==` does for numbers and strings: `2` equals `"2"`.
    pub fn loosely_equals(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Number(a), Self::Number(b)) => a.as_f64() == b.as_f64(),
            (Self::String(a), Self::String(b)) => a == b,
            (Self::Number(n), Self::String(s)) | (Self::String(s), Self::Number(n)) => {
                s.trim().parse::<f64>().ok() == n.as_f64()
            }
        }
    }

    /// Converts a JSON value into a user id; only numbers and strings qualify.
    pub fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Number(number) => Some(Self::Number(number.clone())),
            Value::String(text) => Some(Self::String(text.clone())),
            _ => None,
        }
    }

    /// Returns the id as a JSON value.
    pub fn to_value(&self) -> Value {
        match self {
            Self::Number(number) => Value::Number(number.clone()),
            Self::String(text) => Value::String(text.clone()),
        }
    }
}

impl From<i64> for UserId {
    fn from(id: i64) -> Self {
        Self::Number(id.into())
    }
}

impl From<&str> for UserId {
    fn from(id: &str) -> Self {
        Self::String(id.to_owned())
    }
}

impl From<String> for UserId {
    fn from(id: String) -> Self {
        Self::String(id)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(number) => write!(f, "{number}"),
            Self::String(text) => f.write_str(text),
        }
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(number) => write!(f, "UserId({number})"),
            Self::String(text) => write!(f, "UserId({text:?})"),
        }
    }
}

/// The `output` of an authenticate response.
///
/// On success as a user it contains `userId` and `claims`. Accepted as unauthenticated, it is
/// `{}`. On a rejection it contains `credentialErrorCode`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AuthenticateOutput {
    /// The authenticated user, when the server accepted the credential as a user.
    pub user_id: Option<UserId>,
    /// The user's claims, as the server sent them.
    pub claims: Option<Value>,
    /// The credential error code of a rejection, such as `EXPIRED_ACCESS_TOKEN`.
    pub credential_error_code: Option<String>,
}

impl AuthenticateOutput {
    /// Reads the fields from a response output; anything missing or of another type is `None`.
    pub fn from_output(output: Option<&Value>) -> Self {
        let Some(Value::Object(map)) = output else {
            return Self::default();
        };
        Self {
            user_id: map.get("userId").and_then(UserId::from_value),
            claims: map.get("claims").filter(|claims| !claims.is_null()).cloned(),
            credential_error_code: match map.get("credentialErrorCode") {
                Some(Value::String(code)) => Some(code.clone()),
                _ => None,
            },
        }
    }

    /// Returns whether the output marks a credential error (the key is present).
    pub fn is_credential_error(&self) -> bool {
        self.credential_error_code.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn user_ids_compare_loosely() {
        assert!(UserId::from(2).loosely_equals(&UserId::from("2")));
        assert!(!UserId::from(2).loosely_equals(&UserId::from("3")));
        assert_ne!(UserId::from(2), UserId::from("2"));
    }

    #[test]
    fn user_id_keeps_its_json_type() {
        assert_eq!(serde_json::to_value(UserId::from(42)).unwrap(), json!(42));
        assert_eq!(serde_json::to_value(UserId::from("blue")).unwrap(), json!("blue"));
        let parsed: UserId = serde_json::from_value(json!("7")).unwrap();
        assert_eq!(parsed, UserId::String("7".into()));
    }

    #[test]
    fn authenticate_output_reads_each_outcome() {
        let user = AuthenticateOutput::from_output(Some(&json!({"userId": 7, "claims": ["admin"]})));
        assert_eq!(user.user_id, Some(UserId::from(7)));
        assert_eq!(user.claims, Some(json!(["admin"])));
        assert!(!user.is_credential_error());

        let unauthenticated = AuthenticateOutput::from_output(Some(&json!({})));
        assert_eq!(unauthenticated, AuthenticateOutput::default());

        let rejected =
            AuthenticateOutput::from_output(Some(&json!({"credentialErrorCode": "EXPIRED_ACCESS_TOKEN"})));
        assert_eq!(
            rejected.credential_error_code.as_deref(),
            Some("EXPIRED_ACCESS_TOKEN")
        );
        assert!(rejected.is_credential_error());
    }
}
