//! Messages a server sends, and the classifier a client applies to them.

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::auth::AuthenticateOutput;
use crate::config::ConnectionConfiguration;
use crate::error::{AsklessErrorCode, DecodeError, ErrorBody, JsonType};
use crate::fields::{Fields, is_present};
use crate::ids::{ClientRequestId, ListenId, ServerId};
use crate::marker::{self, MARKER_VALUE, MessageKind};

/// `dataType` of ordinary responses.
pub const DATA_TYPE_RESPONSE: &str = "AsklessResponse";
/// `dataType` of configure-connection responses, and also of authenticate responses.
pub const DATA_TYPE_CONFIGURE_CONNECTION: &str = "ConfigureConnectionResponse";
/// `dataType` of server receipts.
pub const DATA_TYPE_SERVER_RECEIPT: &str = "ServerConfirmReceiptCli";
/// `dataType` of new data for a listener.
pub const DATA_TYPE_NEW_DATA: &str = "NewDataForListener";
/// `dataType` of stop-listening events.
pub const DATA_TYPE_STOP_LISTENING: &str = "StopListening";
/// `output` of every server receipt.
pub const RECEIPT_OUTPUT: &str = "RECEIVED";

/// Server receipt: the server got a request. Never retransmitted, never confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfirmReceipt {
    /// Id of the received request.
    pub client_request_id: ClientRequestId,
    /// Id of this receipt.
    pub server_id: ServerId,
}

/// Kind of a [`Response`], given by its extra marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseKind {
    /// An ordinary response: read, create, update, delete and listen, and failures sent
    /// without the more specific marker.
    Plain,
    /// The response to a configure-connection request.
    ConfigureConnection,
    /// The response to an authenticate request.
    Authenticate,
}

impl ResponseKind {
    /// Returns the `dataType` the reference server writes for this kind.
    ///
    /// Authenticate responses carry the configure-connection value too.
    pub fn data_type(self) -> &'static str {
        match self {
            Self::Plain => DATA_TYPE_RESPONSE,
            Self::ConfigureConnection | Self::Authenticate => DATA_TYPE_CONFIGURE_CONNECTION,
        }
    }
}

/// Response to a request. A success when `error` is `None`, whatever `output` holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// Id of the request this response belongs to.
    pub client_request_id: ClientRequestId,
    /// The result. `None` when the key is absent (a route that produced no value);
    /// `Some(Value::Null)` when it is `null`, as on every failure.
    pub output: Option<Value>,
    /// The failure, if any.
    pub error: Option<ErrorBody>,
    /// Id of this message, identical on every retransmission.
    pub server_id: ServerId,
    /// Kind of response, given by its extra marker.
    pub kind: ResponseKind,
}

impl Response {
    /// Builds a successful ordinary response. `output` `None` leaves the key out.
    pub fn success(client_request_id: ClientRequestId, server_id: ServerId, output: Option<Value>) -> Self {
        Self {
            client_request_id,
            output,
            error: None,
            server_id,
            kind: ResponseKind::Plain,
        }
    }

    /// Builds a failed ordinary response, with `output` `null` as the reference server writes.
    pub fn failure(client_request_id: ClientRequestId, server_id: ServerId, error: ErrorBody) -> Self {
        Self {
            client_request_id,
            output: Some(Value::Null),
            error: Some(error),
            server_id,
            kind: ResponseKind::Plain,
        }
    }

    /// Builds a successful configure-connection response.
    pub fn configure_connection(
        client_request_id: ClientRequestId,
        server_id: ServerId,
        configuration: &ConnectionConfiguration,
    ) -> Self {
        let mut output = Map::new();
        output.insert(
            "connectionConfiguration".to_owned(),
            serde_json::to_value(configuration).unwrap_or(Value::Null),
        );
        Self {
            client_request_id,
            output: Some(Value::Object(output)),
            error: None,
            server_id,
            kind: ResponseKind::ConfigureConnection,
        }
    }

    /// Returns whether the request succeeded: `error` is absent or `null`.
    pub fn is_success(&self) -> bool {
        self.error.is_none()
    }

    /// Returns the error code, when the response is a failure that carries one.
    pub fn error_code(&self) -> Option<&AsklessErrorCode> {
        self.error.as_ref().and_then(|error| error.code.as_ref())
    }

    /// Reads `output.connectionConfiguration` of a configure-connection response.
    ///
    /// # Errors
    /// Fails when the object is absent or lacks any field, as the reference client does.
    pub fn connection_configuration(&self) -> Result<ConnectionConfiguration, DecodeError> {
        let invalid = |found: String| DecodeError::InvalidField {
            kind: MessageKind::Response,
            field: "output.connectionConfiguration".into(),
            expected: "a complete connection configuration object",
            found: found.into(),
            client_request_id: Some(self.client_request_id.as_str().to_owned()),
        };
        let Some(value) = self
            .output
            .as_ref()
            .and_then(|output| output.get("connectionConfiguration"))
        else {
            return Err(DecodeError::MissingField {
                kind: MessageKind::Response,
                field: "output.connectionConfiguration".into(),
                client_request_id: Some(self.client_request_id.as_str().to_owned()),
            });
        };
        if !value.is_object() {
            return Err(invalid(JsonType::of(value).to_string()));
        }
        // serde's message names the missing or mistyped field; configurations carry no secrets.
        ConnectionConfiguration::deserialize(value).map_err(|e| invalid(e.to_string()))
    }

    /// Reads the output of an authenticate response (user id, claims, credential error code).
    pub fn authenticate_output(&self) -> AuthenticateOutput {
        AuthenticateOutput::from_output(self.output.as_ref())
    }
}

/// A value for a stream. Retransmitted until confirmed.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDataForListener {
    /// The value. `None` when the key is absent; `Some(Value::Null)` when it is `null`.
    pub output: Option<Value>,
    /// The stream it belongs to.
    pub listen_id: ListenId,
    /// Id of this message (`NEW-xxxxx-<listenId>`), identical on every retransmission.
    pub server_id: ServerId,
}

/// Stop-listening event: a request from the server to drop a stream. Never retransmitted,
/// never confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopListening {
    /// The stream to drop.
    pub listen_id: ListenId,
    /// Id of this event (`STOP-xxxxx-<listenId>`).
    pub server_id: ServerId,
}

/// Any message a server sends.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ServerMessage {
    /// The plain-text `welcome` greeting, first on every connection.
    Welcome,
    /// The plain-text `pong`, one per ping on a configured connection.
    Pong,
    /// Receipt of a request.
    ServerConfirmReceipt(ServerConfirmReceipt),
    /// Response to a request.
    Response(Response),
    /// A value for a stream.
    NewDataForListener(NewDataForListener),
    /// A request from the server to drop a stream.
    StopListening(StopListening),
}

impl ServerMessage {
    /// Returns the kind of this message.
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::Welcome => MessageKind::Welcome,
            Self::Pong => MessageKind::Pong,
            Self::ServerConfirmReceipt(_) => MessageKind::ServerConfirmReceipt,
            Self::Response(_) => MessageKind::Response,
            Self::NewDataForListener(_) => MessageKind::NewDataForListener,
            Self::StopListening(_) => MessageKind::StopListening,
        }
    }

    /// Returns the `serverId` of a message the client must confirm (responses and new data),
    /// or `None` for the messages that are never confirmed.
    pub fn server_id_to_confirm(&self) -> Option<&ServerId> {
        match self {
            Self::Response(m) => Some(&m.server_id),
            Self::NewDataForListener(m) => Some(&m.server_id),
            _ => None,
        }
    }

    /// Encodes the message as the text of one frame.
    pub fn encode(&self) -> String {
        match self {
            Self::Welcome => marker::WELCOME_TEXT.to_owned(),
            Self::Pong => marker::PONG_TEXT.to_owned(),
            _ => crate::encode_json(self),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding, in the key order the reference server writes.
// ---------------------------------------------------------------------------------------------

impl Serialize for ServerConfirmReceipt {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(6))?;
        map.serialize_entry("clientRequestId", &self.client_request_id)?;
        map.serialize_entry("output", RECEIPT_OUTPUT)?;
        map.serialize_entry("dataType", DATA_TYPE_SERVER_RECEIPT)?;
        map.serialize_entry(marker::RESPONSE, MARKER_VALUE)?;
        map.serialize_entry("serverId", &self.server_id)?;
        map.serialize_entry(marker::SERVER_CONFIRM_RECEIPT, MARKER_VALUE)?;
        map.end()
    }
}

impl Serialize for Response {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("clientRequestId", &self.client_request_id)?;
        if let Some(output) = &self.output {
            map.serialize_entry("output", output)?;
        }
        if let Some(error) = &self.error {
            map.serialize_entry("error", error)?;
        }
        map.serialize_entry("dataType", self.kind.data_type())?;
        map.serialize_entry(marker::RESPONSE, MARKER_VALUE)?;
        map.serialize_entry("serverId", &self.server_id)?;
        match self.kind {
            ResponseKind::Plain => {}
            ResponseKind::ConfigureConnection => {
                map.serialize_entry(marker::CONFIGURE_CONNECTION_RESPONSE, MARKER_VALUE)?;
            }
            ResponseKind::Authenticate => map.serialize_entry(marker::AUTHENTICATE_RESPONSE, MARKER_VALUE)?,
        }
        map.end()
    }
}

impl Serialize for NewDataForListener {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        if let Some(output) = &self.output {
            map.serialize_entry("output", output)?;
        }
        map.serialize_entry("listenId", &self.listen_id)?;
        map.serialize_entry(marker::NEW_DATA_FOR_LISTENER, MARKER_VALUE)?;
        map.serialize_entry("dataType", DATA_TYPE_NEW_DATA)?;
        map.serialize_entry("serverId", &self.server_id)?;
        map.end()
    }
}

impl Serialize for StopListening {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("listenId", &self.listen_id)?;
        map.serialize_entry(marker::STOP_LISTENING, MARKER_VALUE)?;
        map.serialize_entry("dataType", DATA_TYPE_STOP_LISTENING)?;
        map.serialize_entry("serverId", &self.server_id)?;
        map.end()
    }
}

impl Serialize for ServerMessage {
    /// Serializes the JSON messages as objects and the plain-text frames as JSON strings.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Welcome => serializer.serialize_str(marker::WELCOME_TEXT),
            Self::Pong => serializer.serialize_str(marker::PONG_TEXT),
            Self::ServerConfirmReceipt(m) => m.serialize(serializer),
            Self::Response(m) => m.serialize(serializer),
            Self::NewDataForListener(m) => m.serialize(serializer),
            Self::StopListening(m) => m.serialize(serializer),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding, in the order the reference client tests the markers.
// ---------------------------------------------------------------------------------------------

/// Decodes one frame received by a client, classifying it as the reference client does.
///
/// The text frames `welcome` and `pong` carry no data. Any other frame must be a JSON object with
/// a `serverId`; its kind is decided by the markers, tested in this order: server receipt (it
/// also carries the response marker), new data for a listener, response (configure and
/// authenticate responses included), stop-listening. `dataType` is never used. Unknown keys are
/// ignored. Decoding never panics; errors name the field but never include received values.
pub fn decode_server_frame(text: &str) -> Result<ServerMessage, DecodeError> {
    match text {
        marker::WELCOME_TEXT => return Ok(ServerMessage::Welcome),
        marker::PONG_TEXT => return Ok(ServerMessage::Pong),
        _ => {}
    }
    if let Some(message) = crate::server_fast::decode(text) {
        return Ok(message);
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(_) if looks_like_plain_text(text) => return Err(DecodeError::UnexpectedText { len: text.len() }),
        Err(error) => return Err(DecodeError::from_json(&error)),
    };
    decode_server_value(value)
}

/// Tells whether a frame does not even start like JSON, so it is reported as unexpected text.
fn looks_like_plain_text(text: &str) -> bool {
    let first = text.trim_start().chars().next();
    !matches!(first, Some('{' | '[' | '"' | '-' | '0'..='9' | 't' | 'f' | 'n'))
}

/// Decodes a server message from an already parsed JSON value; see [`decode_server_frame`].
///
/// A JSON string `"welcome"` or `"pong"` is accepted as the matching plain-text frame, so that
/// [`ServerMessage`]'s `Serialize` output decodes again.
pub fn decode_server_value(value: Value) -> Result<ServerMessage, DecodeError> {
    let map = match value {
        Value::Object(map) => map,
        Value::String(text) if text == marker::WELCOME_TEXT => return Ok(ServerMessage::Welcome),
        Value::String(text) if text == marker::PONG_TEXT => return Ok(ServerMessage::Pong),
        other => {
            return Err(DecodeError::NotAnObject {
                found: JsonType::of(&other),
            });
        }
    };
    let kind = classify_server_object(&map).ok_or_else(|| DecodeError::UnknownMessage {
        client_request_id: match map.get("clientRequestId") {
            Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
            _ => None,
        },
    })?;
    let mut fields = Fields::new(map, kind);
    let server_id = ServerId::new(fields.id("serverId")?);
    let message = match kind {
        MessageKind::ServerConfirmReceipt => ServerMessage::ServerConfirmReceipt(ServerConfirmReceipt {
            client_request_id: ClientRequestId::new(fields.id("clientRequestId")?),
            server_id,
        }),
        MessageKind::NewDataForListener => ServerMessage::NewDataForListener(NewDataForListener {
            output: fields.take_raw("output"),
            listen_id: ListenId::new(fields.id("listenId")?),
            server_id,
        }),
        MessageKind::Response => ServerMessage::Response(decode_response(&mut fields, server_id)?),
        _ => ServerMessage::StopListening(StopListening {
            listen_id: ListenId::new(fields.id("listenId")?),
            server_id,
        }),
    };
    Ok(message)
}

/// Returns the kind a client assigns to a JSON object by its markers, or `None` for no marker.
pub fn classify_server_object(map: &Map<String, Value>) -> Option<MessageKind> {
    const ORDER: [(&str, MessageKind); 4] = [
        (marker::SERVER_CONFIRM_RECEIPT, MessageKind::ServerConfirmReceipt),
        (marker::NEW_DATA_FOR_LISTENER, MessageKind::NewDataForListener),
        (marker::RESPONSE, MessageKind::Response),
        (marker::STOP_LISTENING, MessageKind::StopListening),
    ];
    ORDER
        .iter()
        .find(|(key, _)| is_present(map, key))
        .map(|&(_, kind)| kind)
}

fn decode_response(fields: &mut Fields, server_id: ServerId) -> Result<Response, DecodeError> {
    let kind = if fields.has(marker::CONFIGURE_CONNECTION_RESPONSE) {
        ResponseKind::ConfigureConnection
    } else if fields.has(marker::AUTHENTICATE_RESPONSE) {
        ResponseKind::Authenticate
    } else {
        ResponseKind::Plain
    };
    let client_request_id = ClientRequestId::new(fields.id("clientRequestId")?);
    let error = fields.optional_object("error")?.map(decode_error_body);
    Ok(Response {
        client_request_id,
        output: fields.take_raw("output"),
        error,
        server_id,
        kind,
    })
}

/// Reads an `error` object leniently: a failure must reach its caller even when the server
/// wrote a number where a string belongs, so such members are kept as their JSON text.
fn decode_error_body(mut map: Map<String, Value>) -> ErrorBody {
    let text = |value: Option<Value>| match value {
        None | Some(Value::Null) => None,
        Some(Value::String(text)) => Some(text),
        Some(other) => Some(other.to_string()),
    };
    ErrorBody {
        code: text(map.remove("code")).map(AsklessErrorCode::from),
        description: text(map.remove("description")),
    }
}

// ---------------------------------------------------------------------------------------------
// serde::Deserialize, through the decoder.
// ---------------------------------------------------------------------------------------------

macro_rules! deserialize_via_decoder {
    ($type:ty, $variant:ident, $expected:literal) => {
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = Value::deserialize(deserializer)?;
                match decode_server_value(value).map_err(serde::de::Error::custom)? {
                    ServerMessage::$variant(message) => Ok(message),
                    other => Err(serde::de::Error::custom(format_args!(
                        "expected {}, found {}",
                        $expected,
                        other.kind()
                    ))),
                }
            }
        }
    };
}

deserialize_via_decoder!(ServerConfirmReceipt, ServerConfirmReceipt, "a server receipt");
deserialize_via_decoder!(Response, Response, "a response");
deserialize_via_decoder!(NewDataForListener, NewDataForListener, "new data for a listener");
deserialize_via_decoder!(StopListening, StopListening, "a stop-listening event");

impl<'de> Deserialize<'de> for ServerMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        decode_server_value(value).map_err(serde::de::Error::custom)
    }
}
