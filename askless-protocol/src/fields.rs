//! Typed access to the fields of a decoded JSON object, with errors that name the field.

use std::borrow::Cow;

use serde_json::{Map, Value};

use crate::MessageKind;
use crate::error::{DecodeError, JsonType};

/// The fields of one JSON object being decoded as a message of `kind`.
pub(crate) struct Fields {
    map: Map<String, Value>,
    kind: MessageKind,
    client_request_id: Option<String>,
}

impl Fields {
    pub(crate) fn new(map: Map<String, Value>, kind: MessageKind) -> Self {
        let client_request_id = match map.get("clientRequestId") {
            Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
            _ => None,
        };
        Self {
            map,
            kind,
            client_request_id,
        }
    }

    pub(crate) fn missing(&self, field: impl Into<Cow<'static, str>>) -> DecodeError {
        DecodeError::MissingField {
            kind: self.kind,
            field: field.into(),
            client_request_id: self.client_request_id.clone(),
        }
    }

    pub(crate) fn invalid(
        &self,
        field: impl Into<Cow<'static, str>>,
        expected: &'static str,
        found: impl Into<Cow<'static, str>>,
    ) -> DecodeError {
        DecodeError::InvalidField {
            kind: self.kind,
            field: field.into(),
            expected,
            found: found.into(),
            client_request_id: self.client_request_id.clone(),
        }
    }

    fn invalid_type(&self, field: &'static str, expected: &'static str, value: &Value) -> DecodeError {
        self.invalid(field, expected, JsonType::of(value).to_string())
    }

    /// Removes a field; `null` counts as absent, as on the wire.
    fn take(&mut self, field: &'static str) -> Option<Value> {
        match self.map.remove(field) {
            None | Some(Value::Null) => None,
            Some(value) => Some(value),
        }
    }

    /// Removes a field and keeps the difference between absent (`None`) and `null`.
    pub(crate) fn take_raw(&mut self, field: &'static str) -> Option<Value> {
        self.map.remove(field)
    }

    /// Removes a field, treating absent as `null`.
    pub(crate) fn take_or_null(&mut self, field: &'static str) -> Value {
        self.map.remove(field).unwrap_or(Value::Null)
    }

    pub(crate) fn optional_string(&mut self, field: &'static str) -> Result<Option<String>, DecodeError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text)),
            Some(other) => Err(self.invalid_type(field, "a string", &other)),
        }
    }

    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        self.optional_string(field)?.ok_or_else(|| self.missing(field))
    }

    /// A required string that must not be empty, such as an id.
    pub(crate) fn id(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let id = self.string(field)?;
        if id.is_empty() {
            return Err(self.invalid(field, "a non-empty string", "an empty string"));
        }
        Ok(id)
    }

    pub(crate) fn optional_id(&mut self, field: &'static str) -> Result<Option<String>, DecodeError> {
        match self.optional_string(field)? {
            Some(id) if id.is_empty() => Err(self.invalid(field, "a non-empty string", "an empty string")),
            other => Ok(other),
        }
    }

    pub(crate) fn optional_object(
        &mut self,
        field: &'static str,
    ) -> Result<Option<Map<String, Value>>, DecodeError> {
        match self.take(field) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(map)),
            Some(other) => Err(self.invalid_type(field, "an object", &other)),
        }
    }

    pub(crate) fn array(&mut self, field: &'static str) -> Result<Vec<Value>, DecodeError> {
        match self.take(field) {
            None => Err(self.missing(field)),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(self.invalid_type(field, "an array", &other)),
        }
    }

    pub(crate) fn client_request_id(&self) -> Option<&str> {
        self.client_request_id.as_deref()
    }

    /// Checks that the marker is present, as every decoded message requires.
    pub(crate) fn has(&self, marker: &str) -> bool {
        is_present(&self.map, marker)
    }
}

/// Tests a marker the way receivers do: present with a non-null value.
pub(crate) fn is_present(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).is_some_and(|value| !value.is_null())
}
