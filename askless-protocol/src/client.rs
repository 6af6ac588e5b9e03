//! Messages a client sends, and the classifier a server applies to them.

use std::fmt;

use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::config::CLIENT_TYPE_FLUTTER;
use crate::error::{DecodeError, JsonType};
use crate::fields::{Fields, is_present};
use crate::ids::{ClientIdInternalApp, ClientRequestId, ListenId, ServerId};
use crate::marker::{self, MARKER_VALUE, MessageKind};

/// The `requestType` field of a client request.
///
/// Servers dispatch on the marker keys and read `requestType` only for modify requests, so any
/// other string received is kept in [`RequestType::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RequestType {
    /// `CREATE`
    Create,
    /// `UPDATE`
    Update,
    /// `DELETE`
    Delete,
    /// `LISTEN`
    Listen,
    /// `CONFIRM_RECEIPT`
    ConfirmReceipt,
    /// `CONFIGURE_CONNECTION`
    ConfigureConnection,
    /// `AUTHENTICATE`
    Authenticate,
    /// `READ`
    Read,
    /// Any other value, kept unchanged.
    Other(String),
}

impl RequestType {
    /// Returns the value as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
            Self::Listen => "LISTEN",
            Self::ConfirmReceipt => "CONFIRM_RECEIPT",
            Self::ConfigureConnection => "CONFIGURE_CONNECTION",
            Self::Authenticate => "AUTHENTICATE",
            Self::Read => "READ",
            Self::Other(other) => other,
        }
    }

    fn from_wire(value: String) -> Self {
        match value.as_str() {
            "CREATE" => Self::Create,
            "UPDATE" => Self::Update,
            "DELETE" => Self::Delete,
            "LISTEN" => Self::Listen,
            "CONFIRM_RECEIPT" => Self::ConfirmReceipt,
            "CONFIGURE_CONNECTION" => Self::ConfigureConnection,
            "AUTHENTICATE" => Self::Authenticate,
            "READ" => Self::Read,
            _ => Self::Other(value),
        }
    }
}

impl fmt::Display for RequestType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The operation of a modify request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModifyKind {
    /// Create an entity.
    Create,
    /// Update an entity.
    Update,
    /// Delete an entity.
    Delete,
}

impl ModifyKind {
    /// Returns the matching `requestType`.
    pub fn request_type(self) -> RequestType {
        match self {
            Self::Create => RequestType::Create,
            Self::Update => RequestType::Update,
            Self::Delete => RequestType::Delete,
        }
    }
}

/// Configure-connection request: the first request on every connection.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigureConnectionRequest {
    /// Id of this request.
    pub client_request_id: ClientRequestId,
    /// `CONFIGURE_CONNECTION` when sent by a well-behaved client.
    pub request_type: RequestType,
    /// Identity of the client instance.
    pub client_id_internal_app: ClientIdInternalApp,
    /// `flutter` when sent by this client; servers treat an absent value as `flutter`.
    pub client_type: Option<String>,
}

impl ConfigureConnectionRequest {
    /// Builds the request as this client sends it, with `clientType` `flutter`.
    pub fn new(client_request_id: ClientRequestId, client_id_internal_app: ClientIdInternalApp) -> Self {
        Self {
            client_request_id,
            request_type: RequestType::ConfigureConnection,
            client_id_internal_app,
            client_type: Some(CLIENT_TYPE_FLUTTER.to_owned()),
        }
    }
}

/// Authenticate request. Its `Debug` output leaves out the credential.
#[derive(Clone, PartialEq)]
pub struct AuthenticateRequest {
    /// Id of this request.
    pub client_request_id: ClientRequestId,
    /// `AUTHENTICATE` when sent by a well-behaved client.
    pub request_type: RequestType,
    /// Identity of the client instance, the same as in the configure request.
    pub client_id_internal_app: ClientIdInternalApp,
    /// `flutter` by convention; servers ignore it.
    pub client_type: Option<String>,
    /// The credential passed to the server's authenticate function. `None` when the key is
    /// absent; `Some(Value::Null)` when it is `null`.
    pub credential: Option<Value>,
}

impl AuthenticateRequest {
    /// Builds the request as this client sends it.
    pub fn new(
        client_request_id: ClientRequestId,
        client_id_internal_app: ClientIdInternalApp,
        credential: Value,
    ) -> Self {
        Self {
            client_request_id,
            request_type: RequestType::Authenticate,
            client_id_internal_app,
            client_type: Some(CLIENT_TYPE_FLUTTER.to_owned()),
            credential: Some(credential),
        }
    }
}

impl fmt::Debug for AuthenticateRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthenticateRequest")
            .field("client_request_id", &self.client_request_id)
            .field("request_type", &self.request_type)
            .field("client_id_internal_app", &self.client_id_internal_app)
            .field("client_type", &self.client_type)
            .field("credential", &self.credential.as_ref().map(|_| crate::REDACTED))
            .finish()
    }
}

/// Read request: one value of a route, without listening.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadRequest {
    /// Id of this request.
    pub client_request_id: ClientRequestId,
    /// `READ` when sent by a well-behaved client; servers ignore it.
    pub request_type: RequestType,
    /// Route name, compared exactly.
    pub route: String,
    /// Route parameters: a JSON object or `null`.
    pub params: Value,
}

impl ReadRequest {
    /// Builds the request as this client sends it.
    pub fn new(client_request_id: ClientRequestId, route: impl Into<String>, params: Value) -> Self {
        Self {
            client_request_id,
            request_type: RequestType::Read,
            route: route.into(),
            params,
        }
    }
}

/// Create, update or delete request.
#[derive(Debug, Clone, PartialEq)]
pub struct ModifyRequest {
    /// Id of this request.
    pub client_request_id: ClientRequestId,
    /// The operation; servers look the route up by this value exactly as sent.
    pub request_type: RequestType,
    /// Route name.
    pub route: String,
    /// The data to create or the fields to update; `{}` for a delete.
    pub body: Value,
    /// Additional parameters; for a delete they identify what to delete.
    pub params: Value,
}

impl ModifyRequest {
    /// Builds the request as this client sends it.
    pub fn new(
        client_request_id: ClientRequestId,
        kind: ModifyKind,
        route: impl Into<String>,
        body: Value,
        params: Value,
    ) -> Self {
        Self {
            client_request_id,
            request_type: kind.request_type(),
            route: route.into(),
            body,
            params,
        }
    }

    /// Returns the operation when `requestType` is one of `CREATE`, `UPDATE` and `DELETE`.
    pub fn kind(&self) -> Option<ModifyKind> {
        match self.request_type {
            RequestType::Create => Some(ModifyKind::Create),
            RequestType::Update => Some(ModifyKind::Update),
            RequestType::Delete => Some(ModifyKind::Delete),
            _ => None,
        }
    }
}

/// Listen request: starts a stream of a read route. Also the shape of each ping entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenRequest {
    /// Id of this listen attempt (`LIS-_` form); new for every attempt.
    pub client_request_id: ClientRequestId,
    /// `LISTEN` when sent by a well-behaved client.
    pub request_type: RequestType,
    /// Name of a read route.
    pub route: String,
    /// Route parameters: a JSON object or `null`.
    pub params: Value,
    /// Id of the stream, stable for its life.
    pub listen_id: ListenId,
}

impl ListenRequest {
    /// Builds the request as this client sends it.
    pub fn new(
        client_request_id: ClientRequestId,
        route: impl Into<String>,
        params: Value,
        listen_id: ListenId,
    ) -> Self {
        Self {
            client_request_id,
            request_type: RequestType::Listen,
            route: route.into(),
            params,
            listen_id,
        }
    }
}

/// Confirm-receipt of a response or of new data for a listener.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfirmReceipt {
    /// A fresh id; servers do not use it.
    pub client_request_id: ClientRequestId,
    /// `CONFIRM_RECEIPT` when sent by a well-behaved client.
    pub request_type: RequestType,
    /// The `serverId` of the message being confirmed. This client always sends it; a frame
    /// without it is still a confirm-receipt, which servers handle in their own way.
    pub server_id: Option<ServerId>,
}

impl ConfirmReceipt {
    /// Builds the confirm-receipt as this client sends it.
    pub fn new(client_request_id: ClientRequestId, server_id: ServerId) -> Self {
        Self {
            client_request_id,
            request_type: RequestType::ConfirmReceipt,
            server_id: Some(server_id),
        }
    }
}

/// Ping: keeps the connection alive and lists the streams the client considers live.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ping {
    /// One entry per live stream, each the listen request that started it.
    pub listening_to_routes: Vec<ListenRequest>,
}

/// Any message a client sends.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientMessage {
    /// Configure-connection request.
    ConfigureConnection(ConfigureConnectionRequest),
    /// Authenticate request.
    Authenticate(AuthenticateRequest),
    /// Read request.
    Read(ReadRequest),
    /// Create, update or delete request.
    Modify(ModifyRequest),
    /// Listen request.
    Listen(ListenRequest),
    /// Confirm-receipt.
    ConfirmReceipt(ConfirmReceipt),
    /// Ping.
    Ping(Ping),
}

impl ClientMessage {
    /// Returns the kind of this message.
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::ConfigureConnection(_) => MessageKind::ConfigureConnection,
            Self::Authenticate(_) => MessageKind::Authenticate,
            Self::Read(_) => MessageKind::Read,
            Self::Modify(_) => MessageKind::Modify,
            Self::Listen(_) => MessageKind::Listen,
            Self::ConfirmReceipt(_) => MessageKind::ConfirmReceipt,
            Self::Ping(_) => MessageKind::Ping,
        }
    }

    /// Returns the `clientRequestId`; a ping has none.
    pub fn client_request_id(&self) -> Option<&ClientRequestId> {
        match self {
            Self::ConfigureConnection(m) => Some(&m.client_request_id),
            Self::Authenticate(m) => Some(&m.client_request_id),
            Self::Read(m) => Some(&m.client_request_id),
            Self::Modify(m) => Some(&m.client_request_id),
            Self::Listen(m) => Some(&m.client_request_id),
            Self::ConfirmReceipt(m) => Some(&m.client_request_id),
            Self::Ping(_) => None,
        }
    }

    /// Encodes the message as the JSON text of one frame.
    pub fn encode(&self) -> String {
        crate::encode_json(self)
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding. Keys follow the order the reference client writes: id, requestType, marker, payload.
// ---------------------------------------------------------------------------------------------

fn request_head<M: SerializeMap>(
    map: &mut M,
    client_request_id: &ClientRequestId,
    request_type: &RequestType,
    marker: &str,
) -> Result<(), M::Error> {
    map.serialize_entry("clientRequestId", client_request_id)?;
    map.serialize_entry("requestType", request_type.as_str())?;
    map.serialize_entry(marker, MARKER_VALUE)
}

impl Serialize for ConfigureConnectionRequest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        request_head(
            &mut map,
            &self.client_request_id,
            &self.request_type,
            marker::CONFIGURE_CONNECTION_REQUEST,
        )?;
        map.serialize_entry("clientIdInternalApp", &self.client_id_internal_app)?;
        if let Some(client_type) = &self.client_type {
            map.serialize_entry("clientType", client_type)?;
        }
        map.end()
    }
}

impl Serialize for AuthenticateRequest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        request_head(
            &mut map,
            &self.client_request_id,
            &self.request_type,
            marker::AUTHENTICATE_REQUEST,
        )?;
        map.serialize_entry("clientIdInternalApp", &self.client_id_internal_app)?;
        if let Some(client_type) = &self.client_type {
            map.serialize_entry("clientType", client_type)?;
        }
        if let Some(credential) = &self.credential {
            map.serialize_entry("credential", credential)?;
        }
        map.end()
    }
}

impl Serialize for ReadRequest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        request_head(
            &mut map,
            &self.client_request_id,
            &self.request_type,
            marker::READ,
        )?;
        map.serialize_entry("route", &self.route)?;
        map.serialize_entry("params", &self.params)?;
        map.end()
    }
}

impl Serialize for ModifyRequest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        request_head(
            &mut map,
            &self.client_request_id,
            &self.request_type,
            marker::MODIFY,
        )?;
        map.serialize_entry("route", &self.route)?;
        map.serialize_entry("body", &self.body)?;
        map.serialize_entry("params", &self.params)?;
        map.end()
    }
}

impl Serialize for ListenRequest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        request_head(
            &mut map,
            &self.client_request_id,
            &self.request_type,
            marker::LISTEN,
        )?;
        map.serialize_entry("route", &self.route)?;
        map.serialize_entry("params", &self.params)?;
        map.serialize_entry("listenId", &self.listen_id)?;
        map.end()
    }
}

impl Serialize for ConfirmReceipt {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        request_head(
            &mut map,
            &self.client_request_id,
            &self.request_type,
            marker::CLIENT_CONFIRM_RECEIPT,
        )?;
        if let Some(server_id) = &self.server_id {
            map.serialize_entry("serverId", server_id)?;
        }
        map.end()
    }
}

impl Serialize for Ping {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_ping(serializer, &self.listening_to_routes)
    }
}

fn serialize_ping<S: Serializer, L: Serialize + ?Sized>(
    serializer: S,
    listening: &L,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(2))?;
    map.serialize_entry(marker::PING_PONG, MARKER_VALUE)?;
    map.serialize_entry("listeningToRoutes", listening)?;
    map.end()
}

impl Ping {
    /// Encodes a ping that lists `entries`, the same text as encoding a [`Ping`] of them, but
    /// making and serializing one entry at a time. A client with thousands of streams then
    /// never keeps every entry's params as a `Value` at once.
    pub fn encode_entries<I>(entries: I) -> String
    where
        I: IntoIterator<Item = ListenRequest>,
    {
        /// The entries, taken by the one serialization that encoding runs.
        struct Entries<I>(std::cell::Cell<Option<I>>);

        impl<I: IntoIterator<Item = ListenRequest>> Serialize for Entries<I> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_seq(self.0.take().into_iter().flatten())
            }
        }

        struct LazyPing<I>(Entries<I>);

        impl<I: IntoIterator<Item = ListenRequest>> Serialize for LazyPing<I> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serialize_ping(serializer, &self.0)
            }
        }

        crate::encode_json(&LazyPing(Entries(std::cell::Cell::new(Some(entries)))))
    }
}

impl Serialize for ClientMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::ConfigureConnection(m) => m.serialize(serializer),
            Self::Authenticate(m) => m.serialize(serializer),
            Self::Read(m) => m.serialize(serializer),
            Self::Modify(m) => m.serialize(serializer),
            Self::Listen(m) => m.serialize(serializer),
            Self::ConfirmReceipt(m) => m.serialize(serializer),
            Self::Ping(m) => m.serialize(serializer),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding, in the order the reference server tests the markers.
// ---------------------------------------------------------------------------------------------

/// Decodes one frame received by a server, classifying it as the reference server does.
///
/// The reference server tests, in order: the ping marker (a ping needs no `clientRequestId`);
/// a non-empty string `clientRequestId`; then the configure, authenticate, confirm-receipt, read,
/// listen and modify markers. A frame with an id but none of these markers is
/// [`DecodeError::UnknownMessage`], to which the reference server replies with `INTERNAL_ERROR`. Every error
/// carries the frame's kind and `clientRequestId` where they could be determined, so that a
/// server can answer a frame it could classify but not decode.
///
/// Binary frames must be converted to text by the caller (the reference server accepts binary
/// frames holding UTF-8 JSON). Decoding never panics.
pub fn decode_client_frame(text: &str) -> Result<ClientMessage, DecodeError> {
    let value: Value = serde_json::from_str(text).map_err(|e| DecodeError::from_json(&e))?;
    decode_client_value(value)
}

/// Decodes a client message from an already parsed JSON value; see [`decode_client_frame`].
pub fn decode_client_value(value: Value) -> Result<ClientMessage, DecodeError> {
    let Value::Object(map) = value else {
        return Err(DecodeError::NotAnObject {
            found: JsonType::of(&value),
        });
    };
    let kind = classify_client_object(&map).ok_or_else(|| DecodeError::UnknownMessage {
        client_request_id: match map.get("clientRequestId") {
            Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
            _ => None,
        },
    })?;
    let mut fields = Fields::new(map, kind);
    if kind == MessageKind::Ping {
        return decode_ping(&mut fields).map(ClientMessage::Ping);
    }
    if fields.client_request_id().is_none() {
        // The reference server fails on such a frame before it looks at any marker.
        return Err(match fields.take_raw("clientRequestId") {
            None | Some(Value::Null) => fields.missing("clientRequestId"),
            Some(Value::String(_)) => {
                fields.invalid("clientRequestId", "a non-empty string", "an empty string")
            }
            Some(other) => fields.invalid(
                "clientRequestId",
                "a non-empty string",
                JsonType::of(&other).to_string(),
            ),
        });
    }
    let message = match kind {
        MessageKind::ConfigureConnection => {
            ClientMessage::ConfigureConnection(decode_configure(&mut fields)?)
        }
        MessageKind::Authenticate => ClientMessage::Authenticate(decode_authenticate(&mut fields)?),
        MessageKind::ConfirmReceipt => ClientMessage::ConfirmReceipt(decode_confirm(&mut fields)?),
        MessageKind::Read => ClientMessage::Read(decode_read(&mut fields)?),
        MessageKind::Listen => ClientMessage::Listen(decode_listen(&mut fields)?),
        _ => ClientMessage::Modify(decode_modify(&mut fields)?),
    };
    Ok(message)
}

/// Returns the kind a server assigns to a JSON object by its markers, or `None` for no marker.
pub fn classify_client_object(map: &Map<String, Value>) -> Option<MessageKind> {
    const ORDER: [(&str, MessageKind); 7] = [
        (marker::PING_PONG, MessageKind::Ping),
        (
            marker::CONFIGURE_CONNECTION_REQUEST,
            MessageKind::ConfigureConnection,
        ),
        (marker::AUTHENTICATE_REQUEST, MessageKind::Authenticate),
        (marker::CLIENT_CONFIRM_RECEIPT, MessageKind::ConfirmReceipt),
        (marker::READ, MessageKind::Read),
        (marker::LISTEN, MessageKind::Listen),
        (marker::MODIFY, MessageKind::Modify),
    ];
    ORDER
        .iter()
        .find(|(key, _)| is_present(map, key))
        .map(|&(_, kind)| kind)
}

fn request_id(fields: &mut Fields) -> Result<ClientRequestId, DecodeError> {
    fields.id("clientRequestId").map(ClientRequestId::new)
}

fn request_type(fields: &mut Fields) -> Result<RequestType, DecodeError> {
    fields.string("requestType").map(RequestType::from_wire)
}

fn decode_configure(fields: &mut Fields) -> Result<ConfigureConnectionRequest, DecodeError> {
    Ok(ConfigureConnectionRequest {
        client_request_id: request_id(fields)?,
        request_type: request_type(fields)?,
        client_id_internal_app: ClientIdInternalApp::new(fields.id("clientIdInternalApp")?),
        client_type: fields.optional_string("clientType")?,
    })
}

fn decode_authenticate(fields: &mut Fields) -> Result<AuthenticateRequest, DecodeError> {
    Ok(AuthenticateRequest {
        client_request_id: request_id(fields)?,
        request_type: request_type(fields)?,
        client_id_internal_app: ClientIdInternalApp::new(fields.id("clientIdInternalApp")?),
        client_type: fields.optional_string("clientType")?,
        credential: fields.take_raw("credential"),
    })
}

fn decode_confirm(fields: &mut Fields) -> Result<ConfirmReceipt, DecodeError> {
    Ok(ConfirmReceipt {
        client_request_id: request_id(fields)?,
        request_type: request_type(fields)?,
        server_id: fields.optional_id("serverId")?.map(ServerId::new),
    })
}

fn decode_read(fields: &mut Fields) -> Result<ReadRequest, DecodeError> {
    Ok(ReadRequest {
        client_request_id: request_id(fields)?,
        request_type: request_type(fields)?,
        route: fields.string("route")?,
        params: fields.take_or_null("params"),
    })
}

fn decode_modify(fields: &mut Fields) -> Result<ModifyRequest, DecodeError> {
    Ok(ModifyRequest {
        client_request_id: request_id(fields)?,
        request_type: request_type(fields)?,
        route: fields.string("route")?,
        body: fields.take_or_null("body"),
        params: fields.take_or_null("params"),
    })
}

fn decode_listen(fields: &mut Fields) -> Result<ListenRequest, DecodeError> {
    Ok(ListenRequest {
        client_request_id: request_id(fields)?,
        request_type: request_type(fields)?,
        route: fields.string("route")?,
        params: fields.take_or_null("params"),
        listen_id: ListenId::new(fields.id("listenId")?),
    })
}

fn decode_ping(fields: &mut Fields) -> Result<Ping, DecodeError> {
    let entries = fields.array("listeningToRoutes")?;
    let mut listening_to_routes = Vec::with_capacity(entries.len());
    for (index, entry) in entries.into_iter().enumerate() {
        listening_to_routes.push(decode_ping_entry(fields, index, entry)?);
    }
    Ok(Ping { listening_to_routes })
}

/// Decodes one `listeningToRoutes` entry; errors name the entry, as in `listeningToRoutes[2].route`.
fn decode_ping_entry(ping: &Fields, index: usize, entry: Value) -> Result<ListenRequest, DecodeError> {
    let Value::Object(map) = entry else {
        return Err(ping.invalid(
            format!("listeningToRoutes[{index}]"),
            "an object",
            JsonType::of(&entry).to_string(),
        ));
    };
    let mut fields = Fields::new(map, MessageKind::Ping);
    let request_type = fields
        .optional_string("requestType")
        .map_err(|e| rename_entry_error(ping, index, e))?
        .map_or(RequestType::Listen, RequestType::from_wire);
    let decoded = (|| {
        Ok(ListenRequest {
            client_request_id: request_id(&mut fields)?,
            request_type,
            route: fields.string("route")?,
            params: fields.take_or_null("params"),
            listen_id: ListenId::new(fields.id("listenId")?),
        })
    })();
    decoded.map_err(|e| rename_entry_error(ping, index, e))
}

fn rename_entry_error(ping: &Fields, index: usize, error: DecodeError) -> DecodeError {
    match error {
        DecodeError::MissingField { field, .. } => {
            ping.missing(format!("listeningToRoutes[{index}].{field}"))
        }
        DecodeError::InvalidField {
            field,
            expected,
            found,
            ..
        } => ping.invalid(format!("listeningToRoutes[{index}].{field}"), expected, found),
        other => other,
    }
}

// ---------------------------------------------------------------------------------------------
// serde::Deserialize, through the decoder so that both paths accept and reject the same input.
// ---------------------------------------------------------------------------------------------

macro_rules! deserialize_via_decoder {
    ($type:ty, $variant:ident, $expected:literal) => {
        impl<'de> Deserialize<'de> for $type {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = Value::deserialize(deserializer)?;
                match decode_client_value(value).map_err(serde::de::Error::custom)? {
                    ClientMessage::$variant(message) => Ok(message),
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

deserialize_via_decoder!(
    ConfigureConnectionRequest,
    ConfigureConnection,
    "a configure-connection request"
);
deserialize_via_decoder!(AuthenticateRequest, Authenticate, "an authenticate request");
deserialize_via_decoder!(ReadRequest, Read, "a read request");
deserialize_via_decoder!(ModifyRequest, Modify, "a modify request");
deserialize_via_decoder!(ListenRequest, Listen, "a listen request");
deserialize_via_decoder!(ConfirmReceipt, ConfirmReceipt, "a confirm-receipt");
deserialize_via_decoder!(Ping, Ping, "a ping");

impl<'de> Deserialize<'de> for ClientMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        decode_client_value(value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<ListenRequest> {
        (0..3)
            .map(|n| {
                ListenRequest::new(
                    ClientRequestId::new(format!("LIS-_{n}")),
                    "items",
                    serde_json::json!({"i": n}),
                    ListenId::new(format!("LIS-{n}")),
                )
            })
            .collect()
    }

    #[test]
    fn ping_entries_encode_like_a_ping() {
        let ping = Ping {
            listening_to_routes: entries(),
        };

        assert_eq!(
            Ping::encode_entries(entries()),
            ClientMessage::Ping(ping).encode()
        );
    }

    #[test]
    fn empty_ping_entries_encode_like_an_empty_ping() {
        assert_eq!(
            Ping::encode_entries(Vec::new()),
            ClientMessage::Ping(Ping::default()).encode()
        );
    }
}
