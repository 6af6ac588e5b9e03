//! The wire vocabulary of the Askless realtime protocol, as spoken by the Askless server 2.0.3
//! and its reference Flutter client 3.1.0.
//!
//! Askless carries every message as one WebSocket text frame: the plain texts `welcome` and
//! `pong`, and JSON objects recognised by `_class_type_*` marker keys. This crate has a type for
//! every message in both directions, the connection configuration, the error codes, the user
//! ids and the call-signalling payloads, and two decoders:
//!
//! - [`decode_server_frame`] classifies what a *client* receives, in the order the reference
//!   client tests the markers;
//! - [`decode_client_frame`] classifies what a *server* receives, in the order the reference
//!   server tests them.
//!
//! Both are used by `askless-client` and by the mock server of `askless-testkit`, so the two
//! sides cannot drift apart. Decoding never panics: malformed JSON, wrong types, missing fields
//! and unknown markers are [`DecodeError`]s that name the field and the JSON type found, never a
//! received value, so they are safe to log. Encoding writes keys in the order the reference
//! implementations write them.
//!
//! The crate does no I/O, spawns nothing and never reads a clock: durations in the
//! configuration are plain values, and id generators take the random number generator as an
//! argument.
//!
//! # Example
//!
//! ```
//! use askless_protocol::{
//!     ClientMessage, ClientRequestId, ReadRequest, ServerMessage, decode_client_frame, decode_server_frame,
//! };
//! use serde_json::json;
//!
//! // A client builds a read request and encodes it as one text frame.
//! let id = ClientRequestId::generate_request(&mut rand::rng());
//! let frame = ClientMessage::Read(ReadRequest::new(id.clone(), "product/all", json!({"nameContains": "an"}))).encode();
//!
//! // A server classifies the frame the way the reference server does.
//! let ClientMessage::Read(read) = decode_client_frame(&frame)? else { unreachable!() };
//! assert_eq!(read.route, "product/all");
//!
//! // The client classifies the server's answer the way the reference client does.
//! let answer = format!(
//!     r#"{{"clientRequestId":"{id}","output":[{{"id":2,"name":"Banana"}}],"dataType":"AsklessResponse","_class_type_response":"_","serverId":"RES-0mmIXIMAo59"}}"#
//! );
//! let ServerMessage::Response(response) = decode_server_frame(&answer)? else { unreachable!() };
//! assert!(response.is_success());
//! assert_eq!(response.client_request_id, id);
//!
//! // Malformed input is a typed error, never a panic.
//! assert!(decode_server_frame("{not json").is_err());
//! # Ok::<(), askless_protocol::DecodeError>(())
//! ```

mod auth;
pub mod call;
mod client;
mod config;
mod error;
mod fields;
mod ids;
pub mod marker;
pub mod routes;
mod server;
mod server_fast;

pub use auth::{AuthenticateOutput, UserId};
pub use client::{
    AuthenticateRequest, ClientMessage, ConfigureConnectionRequest, ConfirmReceipt, ListenRequest,
    ModifyKind, ModifyRequest, Ping, ReadRequest, RequestType, classify_client_object, decode_client_frame,
    decode_client_value,
};
pub use config::{
    CLIENT_TYPE_FLUTTER, CLIENT_VERSION_CODE, ClientVersionCodeSupported, ConnectionConfiguration,
    REFERENCE_SERVER_VERSION,
};
pub use error::{AsklessErrorCode, DecodeError, ErrorBody, JsonType};
pub use ids::{CLIENT_ID_RANDOM_LEN, ClientIdInternalApp, ClientRequestId, ListenId, ServerId};
pub use marker::MessageKind;
pub use server::{
    DATA_TYPE_CONFIGURE_CONNECTION, DATA_TYPE_NEW_DATA, DATA_TYPE_RESPONSE, DATA_TYPE_SERVER_RECEIPT,
    DATA_TYPE_STOP_LISTENING, NewDataForListener, RECEIPT_OUTPUT, Response, ResponseKind,
    ServerConfirmReceipt, ServerMessage, StopListening, classify_server_object, decode_server_frame,
    decode_server_value,
};

/// Text printed in `Debug` output in place of a credential.
pub const REDACTED: &str = "<redacted>";

/// Encodes a message whose `Serialize` implementation only writes string keys and JSON values.
fn encode_json<T: serde::Serialize>(message: &T) -> String {
    // Serializing to a string fails only for non-string map keys or a failing custom
    // implementation; the protocol types have neither.
    serde_json::to_string(message).unwrap_or_else(|_| String::from("{}"))
}
