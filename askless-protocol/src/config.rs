//! The connection configuration a server sends in its configure-connection response.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Version code of this client implementation, compared with the server's supported window.
///
/// The reference client 3.1.0 has code 7; server 2.0.3 accepts codes of 4 and above from clients
/// that present themselves as `flutter`.
pub const CLIENT_VERSION_CODE: i64 = 7;

/// Version of the reference server whose behaviour this crate describes.
pub const REFERENCE_SERVER_VERSION: &str = "2.0.3";

/// The `clientType` a client sends; the server picks its supported version window by it.
pub const CLIENT_TYPE_FLUTTER: &str = "flutter";

/// The window of client version codes a server supports; `None` means no bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ClientVersionCodeSupported {
    /// Highest supported code, inclusive.
    #[serde(rename = "lessThanOrEqual")]
    pub less_than_or_equal: Option<i64>,
    /// Lowest supported code, inclusive.
    #[serde(rename = "moreThanOrEqual")]
    pub more_than_or_equal: Option<i64>,
}

impl ClientVersionCodeSupported {
    /// The window server 2.0.3 sends to `flutter` clients (and when `clientType` is missing):
    /// 4 and above.
    pub const FLUTTER: Self = Self {
        less_than_or_equal: None,
        more_than_or_equal: Some(4),
    };

    /// The window server 2.0.3 sends to `javascript` clients: 3 and below.
    pub const JAVASCRIPT: Self = Self {
        less_than_or_equal: Some(3),
        more_than_or_equal: None,
    };

    /// Returns whether a client with version `code` is inside the window.
    pub fn accepts(&self, code: i64) -> bool {
        let above_min = self.more_than_or_equal.is_none_or(|min| code >= min);
        let below_max = self.less_than_or_equal.is_none_or(|max| code <= max);
        above_min && below_max
    }
}

/// Timings and version information a server sends when a connection is configured.
///
/// Every interval is in milliseconds on the wire; the accessor methods return [`Duration`]s.
/// Decoding fails when any field is missing, as it does in the reference client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionConfiguration {
    /// How often the server retransmits unconfirmed messages (informative).
    pub interval_in_ms_server_send_same_message: i64,
    /// How often the client retransmits requests without a server receipt.
    pub interval_in_ms_client_send_same_message: i64,
    /// How often the client pings.
    pub interval_in_ms_client_ping: i64,
    /// Advertised idle limit after which the server drops a silent client (informative).
    pub milliseconds_to_disconnect_client_after_without_client_ping: i64,
    /// How long the client tolerates a silent server before reconnecting.
    pub reconnect_client_after_milliseconds_without_server_pong: i64,
    /// How long a request waits for authentication.
    pub wait_for_authentication_timeout_in_ms: i64,
    /// How long a request waits for its response; zero or less means no timeout.
    pub request_timeout_in_ms: i64,
    /// Whether this configuration came from a server.
    pub is_from_server: bool,
    /// The server's version, for error messages.
    pub server_version: String,
    /// The client version codes the server supports.
    pub client_version_code_supported: ClientVersionCodeSupported,
}

impl ConnectionConfiguration {
    /// Returns the values a client uses before a server sent its own, and after every disconnection.
    pub fn client_defaults() -> Self {
        Self {
            interval_in_ms_server_send_same_message: 5000,
            interval_in_ms_client_send_same_message: 5000,
            interval_in_ms_client_ping: 1000,
            milliseconds_to_disconnect_client_after_without_client_ping: 12000,
            reconnect_client_after_milliseconds_without_server_pong: 6000,
            wait_for_authentication_timeout_in_ms: 4000,
            request_timeout_in_ms: 7000,
            is_from_server: false,
            server_version: "none".to_owned(),
            client_version_code_supported: ClientVersionCodeSupported::default(),
        }
    }

    /// Returns the values server 2.0.3 sends to a `flutter` client with its default settings.
    pub fn server_defaults() -> Self {
        Self {
            is_from_server: true,
            server_version: REFERENCE_SERVER_VERSION.to_owned(),
            client_version_code_supported: ClientVersionCodeSupported::FLUTTER,
            ..Self::client_defaults()
        }
    }

    /// Returns whether this client's [`CLIENT_VERSION_CODE`] is inside the server's window.
    pub fn is_compatible(&self) -> bool {
        self.client_version_code_supported.accepts(CLIENT_VERSION_CODE)
    }

    /// Client retransmission period.
    pub fn client_resend_interval(&self) -> Duration {
        millis(self.interval_in_ms_client_send_same_message)
    }

    /// Ping period.
    pub fn ping_interval(&self) -> Duration {
        millis(self.interval_in_ms_client_ping)
    }

    /// Silence after which the client considers the connection dead.
    pub fn server_silence_limit(&self) -> Duration {
        millis(self.reconnect_client_after_milliseconds_without_server_pong)
    }

    /// How long a request waits for authentication.
    pub fn wait_for_authentication_timeout(&self) -> Duration {
        millis(self.wait_for_authentication_timeout_in_ms)
    }

    /// Request timeout, or `None` when the server disabled it (a value of zero or less).
    pub fn request_timeout(&self) -> Option<Duration> {
        (self.request_timeout_in_ms > 0).then(|| millis(self.request_timeout_in_ms))
    }
}

impl Default for ConnectionConfiguration {
    /// Same as [`ConnectionConfiguration::client_defaults`].
    fn default() -> Self {
        Self::client_defaults()
    }
}

/// Converts wire milliseconds to a duration; negative values become zero.
fn millis(value: i64) -> Duration {
    Duration::from_millis(u64::try_from(value).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flutter_window_accepts_this_client() {
        assert!(ClientVersionCodeSupported::FLUTTER.accepts(CLIENT_VERSION_CODE));
        assert!(!ClientVersionCodeSupported::FLUTTER.accepts(3));
    }

    #[test]
    fn javascript_window_rejects_this_client() {
        assert!(!ClientVersionCodeSupported::JAVASCRIPT.accepts(CLIENT_VERSION_CODE));
        assert!(ClientVersionCodeSupported::JAVASCRIPT.accepts(2));
    }

    #[test]
    fn open_window_accepts_everything() {
        assert!(ClientVersionCodeSupported::default().accepts(i64::MAX));
    }

    #[test]
    fn server_defaults_match_the_reference_configure_response() {
        let expected = serde_json::json!({
            "intervalInMsServerSendSameMessage": 5000,
            "intervalInMsClientSendSameMessage": 5000,
            "intervalInMsClientPing": 1000,
            "millisecondsToDisconnectClientAfterWithoutClientPing": 12000,
            "reconnectClientAfterMillisecondsWithoutServerPong": 6000,
            "waitForAuthenticationTimeoutInMs": 4000,
            "requestTimeoutInMs": 7000,
            "isFromServer": true,
            "serverVersion": "2.0.3",
            "clientVersionCodeSupported": {"lessThanOrEqual": null, "moreThanOrEqual": 4}
        });
        let value = serde_json::to_value(ConnectionConfiguration::server_defaults()).unwrap();
        assert_eq!(value, expected);
    }

    #[test]
    fn configuration_without_an_interval_is_rejected() {
        let mut value = serde_json::to_value(ConnectionConfiguration::server_defaults()).unwrap();
        value.as_object_mut().unwrap().remove("intervalInMsClientPing");
        let error = serde_json::from_value::<ConnectionConfiguration>(value).unwrap_err();
        assert!(error.to_string().contains("intervalInMsClientPing"));
    }

    #[test]
    fn zero_request_timeout_means_none() {
        let config = ConnectionConfiguration {
            request_timeout_in_ms: 0,
            ..ConnectionConfiguration::client_defaults()
        };
        assert_eq!(config.request_timeout(), None);
        assert_eq!(
            ConnectionConfiguration::client_defaults().request_timeout(),
            Some(Duration::from_millis(7000))
        );
    }
}
