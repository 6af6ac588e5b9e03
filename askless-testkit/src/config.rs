//! Timings, advertised values and quirk switches of the mock server.

use std::time::Duration;

use askless_protocol::{ClientVersionCodeSupported, ConnectionConfiguration, REFERENCE_SERVER_VERSION};

/// Configuration of a [`MockServer`](crate::MockServer).
///
/// [`MockConfig::default`] reproduces the Askless server 2.0.3 with its default settings,
/// including its observable quirks. [`MockConfig::well_behaved`] keeps the reference timings
/// but turns every quirk off and delivers notifications without the start-up grace period.
///
/// A periodic task set to `None` does not run at all, which helps tests under paused tokio time
/// (see the crate documentation).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MockConfig {
    /// Period of the retransmission task, which re-sends every unconfirmed response and listener
    /// value on a grid that starts when the server starts. Also advertised as
    /// `intervalInMsServerSendSameMessage`. Default: 5000 ms.
    pub retransmission_interval: Duration,
    /// Age after which an unconfirmed message is dropped from the queue, checked after each
    /// retransmission. Default: 40000 ms.
    pub retransmission_give_up: Duration,
    /// Period of the liveness task: at each tick, every connection that sent no frame since the
    /// previous tick is terminated without a close frame. `None` disables it.
    /// Default: `Some(12008 ms)`.
    pub liveness_tick: Option<Duration>,
    /// Period of the record clean-up task. `None` disables it. Default: `Some(53000 ms)`.
    pub record_cleanup_tick: Option<Duration>,
    /// A record whose connection closed more than this long ago is deleted by the clean-up task.
    /// Default: 53000 ms.
    pub record_cleanup_age: Duration,
    /// A record that never had a connection bound is deleted by the clean-up task once it is this
    /// old. Default: 20000 ms.
    pub never_bound_record_age: Duration,
    /// How long the server waits for the authenticate handler before answering
    /// `AUTHORIZE_TIMEOUT`. Default: 4000 ms.
    pub authorize_timeout: Duration,
    /// Notifications requested earlier than this after the server started are held until then.
    /// Default: 4000 ms (0 in [`MockConfig::well_behaved`]).
    pub notify_grace: Duration,
    /// Delay between a notification request and its processing. Default: 1 ms.
    pub notify_delay: Duration,
    /// How long a `clientRequestId` is remembered for de-duplication. Default: 10 minutes.
    pub dedup_memory: Duration,
    /// The de-duplication memory of a record is pruned only when it holds more ids than this.
    /// Default: 100.
    pub dedup_prune_threshold: usize,
    /// Advertised `requestTimeoutInMs`; `None` advertises 0, which means "never time out".
    /// Default: `Some(7000 ms)`.
    pub request_timeout: Option<Duration>,
    /// Advertised `waitForAuthenticationTimeoutInMs`. Default: 4000 ms.
    pub wait_for_authentication_timeout: Duration,
    /// Advertised `intervalInMsClientPing`. Default: 1000 ms.
    pub client_ping_interval: Duration,
    /// Advertised `intervalInMsClientSendSameMessage`. Default: 5000 ms.
    pub client_resend_interval: Duration,
    /// Advertised `reconnectClientAfterMillisecondsWithoutServerPong`. Default: 6000 ms.
    pub reconnect_without_pong: Duration,
    /// Advertised `millisecondsToDisconnectClientAfterWithoutClientPing`, informative only.
    /// Default: 12000 ms.
    pub disconnect_without_ping: Duration,
    /// Advertised `serverVersion`. Default: `"2.0.3"`.
    pub server_version: String,
    /// Client version window advertised to `flutter` clients and to clients that send no
    /// `clientType`, for testing how a client reacts to a server it does not support.
    /// Default: `None`, the window of server 2.0.3 (codes 4 and above).
    pub client_version_window: Option<ClientVersionCodeSupported>,
    /// Largest accepted WebSocket frame and message, in bytes. Default: 100 MiB.
    pub max_frame_size: usize,
    /// Switches for the reference server's observable quirks. Default: all on.
    pub quirks: Quirks,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            retransmission_interval: Duration::from_millis(5000),
            retransmission_give_up: Duration::from_millis(40_000),
            liveness_tick: Some(Duration::from_millis(12_008)),
            record_cleanup_tick: Some(Duration::from_millis(53_000)),
            record_cleanup_age: Duration::from_millis(53_000),
            never_bound_record_age: Duration::from_millis(20_000),
            authorize_timeout: Duration::from_millis(4000),
            notify_grace: Duration::from_millis(4000),
            notify_delay: Duration::from_millis(1),
            dedup_memory: Duration::from_secs(600),
            dedup_prune_threshold: 100,
            request_timeout: Some(Duration::from_millis(7000)),
            wait_for_authentication_timeout: Duration::from_millis(4000),
            client_ping_interval: Duration::from_millis(1000),
            client_resend_interval: Duration::from_millis(5000),
            reconnect_without_pong: Duration::from_millis(6000),
            disconnect_without_ping: Duration::from_millis(12_000),
            server_version: REFERENCE_SERVER_VERSION.to_owned(),
            client_version_window: None,
            max_frame_size: 100 * 1024 * 1024,
            quirks: Quirks::default(),
        }
    }
}

impl MockConfig {
    /// Returns the reference timings with every quirk off and no notification grace period.
    pub fn well_behaved() -> Self {
        Self {
            notify_grace: Duration::ZERO,
            quirks: Quirks::none(),
            ..Self::default()
        }
    }

    /// Builds the configuration object sent in configure responses, with the given version
    /// window.
    pub(crate) fn connection_configuration(
        &self,
        window: ClientVersionCodeSupported,
    ) -> ConnectionConfiguration {
        ConnectionConfiguration {
            interval_in_ms_server_send_same_message: millis(self.retransmission_interval),
            interval_in_ms_client_send_same_message: millis(self.client_resend_interval),
            interval_in_ms_client_ping: millis(self.client_ping_interval),
            milliseconds_to_disconnect_client_after_without_client_ping: millis(self.disconnect_without_ping),
            reconnect_client_after_milliseconds_without_server_pong: millis(self.reconnect_without_pong),
            wait_for_authentication_timeout_in_ms: millis(self.wait_for_authentication_timeout),
            request_timeout_in_ms: self.request_timeout.map_or(0, millis),
            is_from_server: true,
            server_version: self.server_version.clone(),
            client_version_code_supported: window,
        }
    }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Switches for behaviours of the Askless server 2.0.3 that a well-behaved server would not have.
///
/// Every switch is on by default, because clients must cope with the real server. Turn them off
/// with [`Quirks::none`] (or [`MockConfig::well_behaved`]) for tests that need a simpler server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Quirks {
    /// READ requests on routes for authenticated users only are served to unauthenticated
    /// connections, with a null user id. Off: they are answered `PENDING_AUTHENTICATION`.
    /// Default: on.
    pub read_ignores_authentication: bool,
    /// The close of an older connection of a client id strips the newer connection bound to the
    /// same record (its sender, authentication and listeners) until it configures again.
    /// Default: on.
    pub old_connection_close_strips_record: bool,
    /// The clean-up task deletes records that disconnected long enough ago even when they
    /// reconnected since, closing the new connection with a close frame without status code.
    /// Off: a new configure clears the disconnection time. Default: on.
    pub cleanup_ignores_reconnection: bool,
    /// `DELETE askless-internal/authentication` answers but leaves the record authenticated.
    /// Off: it also ends the record's authentication. Default: on.
    pub logout_keeps_authentication: bool,
    /// A confirm-receipt without `serverId` runs the hooks of every eligible queued message but
    /// removes only every other one (first, third, ...). Off: such a confirm is ignored.
    /// Default: on.
    pub confirm_without_server_id_removes_every_other: bool,
}

impl Default for Quirks {
    fn default() -> Self {
        Self {
            read_ignores_authentication: true,
            old_connection_close_strips_record: true,
            cleanup_ignores_reconnection: true,
            logout_keeps_authentication: true,
            confirm_without_server_id_removes_every_other: true,
        }
    }
}

impl Quirks {
    /// Returns the switches with every quirk off.
    pub fn none() -> Self {
        Self {
            read_ignores_authentication: false,
            old_connection_close_strips_record: false,
            cleanup_ignores_reconnection: false,
            logout_keeps_authentication: false,
            confirm_without_server_id_removes_every_other: false,
        }
    }
}
