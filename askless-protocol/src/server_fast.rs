//! A fast path of `decode_server_frame` for the common, well-formed server frames.
//!
//! The general decoder parses a frame into a `serde_json::Value`, which allocates a `String`
//! for every key and every id before it classifies the object. This path deserializes the
//! top-level fields as borrowed strings and only the `output` into a `Value`.
//!
//! It accepts a frame only when every key is one of `CommonFrame`'s, every marker is `"_"`,
//! every id is a non-empty string and no `error` is present. For anything else it returns
//! `None`, and the caller runs the general decoder, which stays the reference for errors and
//! unusual frames. Both paths give equal messages for every frame this path accepts
//! (`tests/fast_decode.rs` checks the recorded frames and edge cases).

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::ids::{ClientRequestId, ListenId, ServerId};
use crate::marker::MARKER_VALUE;
use crate::server::{
    NewDataForListener, Response, ResponseKind, ServerConfirmReceipt, ServerMessage, StopListening,
};

/// The top-level fields of a common server frame. Unknown keys and repeated keys fail the
/// deserialization, which sends the frame to the general decoder.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommonFrame<'a> {
    #[serde(rename = "clientRequestId", borrow, default)]
    client_request_id: Option<Cow<'a, str>>,
    #[serde(rename = "serverId", borrow, default)]
    server_id: Option<Cow<'a, str>>,
    #[serde(rename = "listenId", borrow, default)]
    listen_id: Option<Cow<'a, str>>,
    #[serde(rename = "dataType", borrow, default)]
    _data_type: Option<Cow<'a, str>>,
    /// `None` when the key is absent, `Some(Value::Null)` when it is `null`.
    #[serde(default, deserialize_with = "present")]
    output: Option<Value>,
    #[serde(rename = "_class_type_serverconfirmreceipt", borrow, default)]
    server_confirm_receipt: Option<Cow<'a, str>>,
    #[serde(rename = "_class_type_newDataForListener", borrow, default)]
    new_data_for_listener: Option<Cow<'a, str>>,
    #[serde(rename = "_class_type_response", borrow, default)]
    response: Option<Cow<'a, str>>,
    #[serde(rename = "_class_type_stoplistening", borrow, default)]
    stop_listening: Option<Cow<'a, str>>,
    #[serde(rename = "_class_type_configureconnection", borrow, default)]
    configure_connection: Option<Cow<'a, str>>,
    #[serde(rename = "_class_type_authenticateresponse", borrow, default)]
    authenticate_response: Option<Cow<'a, str>>,
}

fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// Returns whether a marker is present. `None` means the frame must take the general path: the
/// marker has a value other than `"_"`, which this path does not interpret.
fn marker(value: &Option<Cow<'_, str>>) -> Option<bool> {
    match value.as_deref() {
        None => Some(false),
        Some(MARKER_VALUE) => Some(true),
        Some(_) => None,
    }
}

fn id(value: Option<Cow<'_, str>>) -> Option<String> {
    value.filter(|id| !id.is_empty()).map(Cow::into_owned)
}

/// Decodes a common server frame, or returns `None` to leave it to the general decoder.
pub(crate) fn decode(text: &str) -> Option<ServerMessage> {
    if !text.starts_with('{') {
        return None;
    }
    let frame: CommonFrame<'_> = serde_json::from_str(text).ok()?;
    let is_receipt = marker(&frame.server_confirm_receipt)?;
    let is_new_data = marker(&frame.new_data_for_listener)?;
    let is_response = marker(&frame.response)?;
    let is_stop = marker(&frame.stop_listening)?;
    let is_configure = marker(&frame.configure_connection)?;
    let is_authenticate = marker(&frame.authenticate_response)?;
    let server_id = ServerId::new(id(frame.server_id)?);
    // The same order of precedence as `classify_server_object`.
    let message = if is_receipt {
        ServerMessage::ServerConfirmReceipt(ServerConfirmReceipt {
            client_request_id: ClientRequestId::new(id(frame.client_request_id)?),
            server_id,
        })
    } else if is_new_data {
        ServerMessage::NewDataForListener(NewDataForListener {
            output: frame.output,
            listen_id: ListenId::new(id(frame.listen_id)?),
            server_id,
        })
    } else if is_response {
        let kind = if is_configure {
            ResponseKind::ConfigureConnection
        } else if is_authenticate {
            ResponseKind::Authenticate
        } else {
            ResponseKind::Plain
        };
        ServerMessage::Response(Response {
            client_request_id: ClientRequestId::new(id(frame.client_request_id)?),
            output: frame.output,
            error: None,
            server_id,
            kind,
        })
    } else if is_stop {
        ServerMessage::StopListening(StopListening {
            listen_id: ListenId::new(id(frame.listen_id)?),
            server_id,
        })
    } else {
        return None;
    };
    Some(message)
}
