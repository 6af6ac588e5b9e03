//! Periodic work while connected: pings and the retransmission of requests the server has not
//! acknowledged. The silence watchdog is a deadline of the connection state (see
//! `ConnState::deadline`).
//!
//! A ping lists only the listeners whose listen succeeded, and the server stops every listener
//! a ping omits. A ping sent between a listen request and its response would therefore stop
//! the listener the server has just registered. So a ping that falls due while a listen of the
//! current connection awaits its response waits for that response, for at most half the
//! server-silence limit (`reconnectClientAfterMillisecondsWithoutServerPong`, 3 s of the
//! default 6 s) and at least one ping interval. After that it is sent anyway, so its pong still
//! arrives well before the silence watchdog would give up on a healthy connection. The listen
//! request itself is a frame, so the server's own liveness check sees the client meanwhile.
//! This also delays the ping that resumes live streams after a reconnection while the
//! listens of the other streams are in flight.

use std::time::Duration;

use askless_protocol::{ClientMessage, ConnectionConfiguration, Ping};
use tokio::time::Instant;

use super::ConnectionTask;
use super::pending::Phase;

/// Delay after connecting before the server's retransmission period replaces the default one.
const APPLY_SERVER_RESEND_AFTER: Duration = Duration::from_secs(1);

/// A request is retransmitted only when it is older than the period minus this margin.
const RESEND_AGE_MARGIN: Duration = Duration::from_millis(10);

/// The periodic timers; all stopped while not connected.
#[derive(Debug)]
pub(super) struct Timers {
    next_ping: Option<Instant>,
    ping_interval: Duration,
    /// When the due ping was first postponed because a listen was in flight; `None` when no
    /// ping is postponed.
    ping_postponed_since: Option<Instant>,
    next_resend: Option<Instant>,
    resend_interval: Duration,
    /// When the server's retransmission period takes effect.
    apply_server_resend_at: Option<Instant>,
    server_resend_interval: Duration,
}

impl Timers {
    pub(super) fn new() -> Self {
        let defaults = ConnectionConfiguration::client_defaults();
        Timers {
            next_ping: None,
            ping_interval: defaults.ping_interval(),
            ping_postponed_since: None,
            next_resend: None,
            resend_interval: defaults.client_resend_interval(),
            apply_server_resend_at: None,
            server_resend_interval: defaults.client_resend_interval(),
        }
    }

    /// Starts the timers for a connection configured at `now` with `config`.
    pub(super) fn start(&mut self, now: Instant, config: &ConnectionConfiguration) {
        let defaults = ConnectionConfiguration::client_defaults();
        self.ping_interval = nonzero(config.ping_interval());
        self.next_ping = Some(now + self.ping_interval);
        self.ping_postponed_since = None;
        self.resend_interval = nonzero(defaults.client_resend_interval());
        self.next_resend = Some(now + self.resend_interval);
        self.server_resend_interval = nonzero(config.client_resend_interval());
        self.apply_server_resend_at = Some(now + APPLY_SERVER_RESEND_AFTER);
    }

    pub(super) fn stop(&mut self) {
        self.next_ping = None;
        self.ping_postponed_since = None;
        self.next_resend = None;
        self.apply_server_resend_at = None;
    }

    pub(super) fn next_due(&self) -> Option<Instant> {
        [self.next_ping, self.next_resend, self.apply_server_resend_at]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Returns `period`, raised to one millisecond, because a zero period would fire in a loop.
fn nonzero(period: Duration) -> Duration {
    period.max(Duration::from_millis(1))
}

impl ConnectionTask {
    /// Runs the periodic timers that are due at `now`.
    pub(super) async fn run_periodic(&mut self, now: Instant) {
        if self.timers.apply_server_resend_at.is_some_and(|at| at <= now) {
            self.timers.apply_server_resend_at = None;
            self.timers.resend_interval = self.timers.server_resend_interval;
            tracing::debug!(interval = ?self.timers.resend_interval, "applying the server's retransmission period");
        }
        if !self.ping_if_due(now).await {
            return;
        }
        if self.timers.next_resend.is_some_and(|at| at <= now) {
            self.timers.next_resend = Some(now + self.timers.resend_interval);
            self.resend_unacknowledged(now).await;
        }
    }

    /// Makes the ping due at once when streams were live before this connection. The server
    /// re-creates a listener only from a ping's `listeningToRoutes`, so without it the streams
    /// would wait up to one ping interval (`intervalInMsClientPing`) for their values.
    ///
    /// Skipped while an expected authentication is missing (the automatic re-authentication
    /// gave up): the server responds to every authenticated-only entry with an error, and the
    /// periodic ping already lists them once.
    ///
    /// Sends the ping here rather than from the timer, whose resolution is a millisecond.
    pub(super) async fn resume_live_streams(&mut self) {
        if self.auth.expects_authentication() && !self.auth.is_authenticated() {
            return;
        }
        if self.auth.hides_streams() || !self.streams.has_live_listener() {
            return;
        }
        tracing::debug!("sending a ping at once to resume the live streams");
        let now = Instant::now();
        self.timers.next_ping = Some(now);
        self.ping_if_due(now).await;
    }

    /// Sends the ping when it is due at `now`, unless a listen in flight postpones it. Returns
    /// `false` when the socket is gone.
    async fn ping_if_due(&mut self, now: Instant) -> bool {
        if self.timers.next_ping.is_none_or(|at| at > now) {
            return true;
        }
        if let Some(until) = self.ping_postponement(now) {
            self.timers.next_ping = Some(until);
            return true;
        }
        self.timers.ping_postponed_since = None;
        self.timers.next_ping = Some(now + self.timers.ping_interval);
        self.send_ping().await
    }

    /// Returns the instant until which the ping due at `now` is postponed, or `None` when it
    /// goes out now: no listen is in flight, or the ping was postponed for the longest allowed
    /// time (see the module documentation).
    fn ping_postponement(&mut self, now: Instant) -> Option<Instant> {
        if !self.streams.has_listen_in_flight() {
            return None;
        }
        let since = *self.timers.ping_postponed_since.get_or_insert(now);
        let longest = (self.config.server_silence_limit() / 2).max(self.timers.ping_interval);
        let until = since + longest;
        if now >= until {
            tracing::debug!(postponed_for = ?now.duration_since(since), "sending the ping although a listen is still in flight");
            return None;
        }
        tracing::debug!(?until, "postponing the ping while a listen is in flight");
        Some(until)
    }

    /// Makes a postponed ping due at once when no listen is in flight any more; called after
    /// each listen response.
    pub(super) fn release_postponed_ping(&mut self) {
        if self.timers.ping_postponed_since.is_none() || self.streams.has_listen_in_flight() {
            return;
        }
        tracing::debug!("no listen in flight any more, sending the postponed ping");
        self.timers.next_ping = Some(Instant::now());
    }

    async fn send_ping(&mut self) -> bool {
        if !self.conn.is_connected() {
            return true;
        }
        self.streams.stop_unused(Instant::now());
        // `encode_ping` encodes one listen request at a time, where a `Ping` of thousands of
        // streams would contain a params `Value` for each.
        let frame = if self.auth.hides_streams() {
            ClientMessage::Ping(Ping::default()).encode()
        } else {
            self.streams.encode_ping()
        };
        self.send_frame(frame).await
    }

    /// Re-sends, unchanged, every request without a server receipt that is older than the
    /// retransmission period.
    async fn resend_unacknowledged(&mut self, now: Instant) {
        let abandoned = self.pending.remove_abandoned();
        if abandoned > 0 {
            tracing::debug!(abandoned, "forgot requests whose callers stopped waiting");
        }
        if !self.flow_open() {
            return;
        }
        let min_age = self.timers.resend_interval.saturating_sub(RESEND_AGE_MARGIN);
        let frames: Vec<String> = self
            .pending
            .iter()
            .filter(|request| {
                matches!(request.phase, Phase::Registered { .. })
                    && !request.received_by_server
                    && now.duration_since(request.created_at) >= min_age
            })
            .map(|request| request.frame.clone())
            .collect();
        if !frames.is_empty() {
            tracing::debug!(
                count = frames.len(),
                "re-sending requests without a server receipt"
            );
        }
        for frame in frames {
            if !self.send_frame(frame).await {
                return;
            }
        }
    }
}
