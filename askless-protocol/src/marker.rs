//! The `_class_type_*` marker keys and the message kinds they identify.

use std::fmt;

/// The value every marker key carries on the wire.
pub const MARKER_VALUE: &str = "_";

/// Marker of a configure-connection request.
pub const CONFIGURE_CONNECTION_REQUEST: &str = "_class_type_configureconnectionrequest";
/// Marker of an authenticate request.
pub const AUTHENTICATE_REQUEST: &str = "_class_type_authenticaterequest";
/// Marker of a read request.
pub const READ: &str = "_class_type_read";
/// Marker of a create, update or delete request.
pub const MODIFY: &str = "_class_type_modify";
/// Marker of a listen request, and of each entry of a ping's `listeningToRoutes`.
pub const LISTEN: &str = "_class_type_listen";
/// Marker of a client confirm-receipt.
pub const CLIENT_CONFIRM_RECEIPT: &str = "_class_type_clientconfirmreceipt";
/// Marker of a ping.
pub const PING_PONG: &str = "_class_type_pingpong";
/// Marker of a server receipt (sent together with [`RESPONSE`]).
pub const SERVER_CONFIRM_RECEIPT: &str = "_class_type_serverconfirmreceipt";
/// Marker of every response, and of server receipts.
pub const RESPONSE: &str = "_class_type_response";
/// Extra marker of a configure-connection response.
pub const CONFIGURE_CONNECTION_RESPONSE: &str = "_class_type_configureconnection";
/// Extra marker of an authenticate response.
pub const AUTHENTICATE_RESPONSE: &str = "_class_type_authenticateresponse";
/// Marker of new data for a listener. Note the capital `D` and `L`.
pub const NEW_DATA_FOR_LISTENER: &str = "_class_type_newDataForListener";
/// Marker of a stop-listening event.
pub const STOP_LISTENING: &str = "_class_type_stoplistening";

/// The plain-text greeting the server sends first on every connection.
pub const WELCOME_TEXT: &str = "welcome";
/// The plain-text answer to a ping.
pub const PONG_TEXT: &str = "pong";

/// Every kind of message of the protocol, in both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageKind {
    /// Client to server: configure-connection request.
    ConfigureConnection,
    /// Client to server: authenticate request.
    Authenticate,
    /// Client to server: read request.
    Read,
    /// Client to server: create, update or delete request.
    Modify,
    /// Client to server: listen request.
    Listen,
    /// Client to server: confirm-receipt of a server message.
    ConfirmReceipt,
    /// Client to server: ping listing the live streams.
    Ping,
    /// Server to client: the `welcome` greeting.
    Welcome,
    /// Server to client: the `pong` answer.
    Pong,
    /// Server to client: receipt of a request.
    ServerConfirmReceipt,
    /// Server to client: response to a request.
    Response,
    /// Server to client: a value for a stream.
    NewDataForListener,
    /// Server to client: a request to drop a stream.
    StopListening,
}

impl MessageKind {
    /// Returns the kind's name as used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::ConfigureConnection => "configure-connection request",
            Self::Authenticate => "authenticate request",
            Self::Read => "read request",
            Self::Modify => "modify request",
            Self::Listen => "listen request",
            Self::ConfirmReceipt => "confirm-receipt",
            Self::Ping => "ping",
            Self::Welcome => "welcome",
            Self::Pong => "pong",
            Self::ServerConfirmReceipt => "server receipt",
            Self::Response => "response",
            Self::NewDataForListener => "new-data-for-listener",
            Self::StopListening => "stop-listening",
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
