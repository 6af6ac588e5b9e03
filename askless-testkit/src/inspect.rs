//! Recorded frames and snapshots of the server state, for assertions.

use std::borrow::Cow;
use std::fmt;

use askless_protocol::{
    ClientIdInternalApp, ClientMessage, ClientRequestId, ListenId, ServerId, ServerMessage, UserId,
    decode_client_frame, decode_server_frame,
};
use serde_json::Value;
use tokio::time::Instant;

/// Identifies one WebSocket connection accepted by the mock, numbered from 1 in accept order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnectionId(pub(crate) u64);

impl ConnectionId {
    /// Returns the number of the connection.
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection {}", self.0)
    }
}

/// Direction of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client to the mock.
    Received,
    /// From the mock to the client, as written on the socket (after faults applied).
    Sent,
}

/// One text frame seen by the mock.
///
/// Its `Debug` and `Display` output replace the `credential` of authenticate requests with
/// `<redacted>`; the `text` field keeps the frame unchanged.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct Frame {
    /// Position among every frame of the server, starting at 0.
    pub index: u64,
    /// The connection it travelled on.
    pub connection: ConnectionId,
    /// Direction of travel.
    pub direction: Direction,
    /// The frame's text (binary frames holding UTF-8 are recorded as text).
    pub text: String,
    /// When it was received or written, on the tokio clock.
    pub at: Instant,
}

impl Frame {
    /// Decodes a received frame as a client message; `None` for sent or undecodable frames.
    pub fn client_message(&self) -> Option<ClientMessage> {
        match self.direction {
            Direction::Received => decode_client_frame(&self.text).ok(),
            Direction::Sent => None,
        }
    }

    /// Decodes a sent frame as a server message; `None` for received or undecodable frames.
    pub fn server_message(&self) -> Option<ServerMessage> {
        match self.direction {
            Direction::Sent => decode_server_frame(&self.text).ok(),
            Direction::Received => None,
        }
    }

    /// Parses the frame as JSON; `None` for `welcome`, `pong` and invalid JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.text).ok()
    }

    /// Returns the frame's `route` field, if it has one.
    pub fn route(&self) -> Option<String> {
        self.json()?.get("route")?.as_str().map(str::to_owned)
    }
}

impl Frame {
    /// Returns the text with the credential of an authenticate request replaced.
    pub(crate) fn redacted_text(&self) -> Cow<'_, str> {
        let Some(Value::Object(mut map)) = self.json() else {
            return Cow::Borrowed(&self.text);
        };
        match map.get_mut("credential") {
            Some(credential) => {
                *credential = Value::String(askless_protocol::REDACTED.to_owned());
                Cow::Owned(Value::Object(map).to_string())
            }
            None => Cow::Borrowed(&self.text),
        }
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("index", &self.index)
            .field("connection", &self.connection)
            .field("direction", &self.direction)
            .field("text", &self.redacted_text())
            .field("at", &self.at)
            .finish()
    }
}

impl fmt::Display for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arrow = match self.direction {
            Direction::Received => "=>",
            Direction::Sent => "<=",
        };
        write!(
            f,
            "#{} {} {} {}",
            self.index,
            self.connection,
            arrow,
            self.redacted_text()
        )
    }
}

/// Authentication state of a client record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Authentication {
    /// After configure or while an authenticate request is being decided.
    Pending,
    /// Accepted as a user.
    Authenticated,
    /// Accepted as unauthenticated, rejected or timed out.
    Unauthenticated,
    /// After the connection closed.
    Undefined,
}

/// A listener held by a client record.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ListenerSnapshot {
    /// The READ route.
    pub route: String,
    /// The listener's params.
    pub params: Value,
    /// The listener.
    pub listen_id: ListenId,
    /// The `clientRequestId` of the listen that registered it.
    pub client_request_id: ClientRequestId,
}

/// The state of one client record (one `clientIdInternalApp`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RecordSnapshot {
    /// The client instance.
    pub client_id: ClientIdInternalApp,
    /// Authentication state.
    pub authentication: Authentication,
    /// The authenticated user, if any.
    pub user_id: Option<UserId>,
    /// The user's claims (`null` when not authenticated).
    pub claims: Value,
    /// The listeners, in registration order.
    pub listeners: Vec<ListenerSnapshot>,
    /// The `serverId`s of the unconfirmed messages, oldest first.
    pub queued: Vec<ServerId>,
    /// How many request ids the de-duplication memory holds.
    pub remembered_request_ids: usize,
    /// The connection currently bound, if any.
    pub connection: Option<ConnectionId>,
}

impl RecordSnapshot {
    /// Returns how many messages wait for a confirm-receipt.
    pub fn queue_len(&self) -> usize {
        self.queued.len()
    }

    /// Returns whether the record is authenticated.
    pub fn is_authenticated(&self) -> bool {
        self.authentication == Authentication::Authenticated
    }
}

/// Returned by the waiting methods when the condition did not hold in time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("timed out after {waited_ms} ms waiting for {what}")]
pub struct WaitTimeout {
    pub(crate) what: &'static str,
    pub(crate) waited_ms: u128,
}
