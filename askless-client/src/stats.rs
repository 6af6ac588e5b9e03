//! Counters of what the connection task received, dropped and retried, for monitoring and
//! for tests that check that bad input was noticed.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of the client's counters, from
/// [`AsklessClient::stats`](crate::AsklessClient::stats).
///
/// Every counter starts at zero when the client is built and only grows. Counters are updated
/// by the connection task as it handles each frame or event, so a snapshot taken right after
/// a request completes already includes the frames that completed it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientStats {
    /// Text frames received from the server, malformed ones included.
    pub frames_received: u64,
    /// Frames ignored because they are not a valid server message: invalid JSON, JSON of the
    /// wrong shape or an unknown message type. Each one is also logged at `warn`.
    pub malformed_frames: u64,
    /// Server messages ignored because their `serverId` was already processed (they are
    /// confirmed again, as the protocol requires).
    pub duplicates_dropped: u64,
    /// Responses ignored because no pending request, stream or authentication has their
    /// `clientRequestId`.
    pub unmatched_responses: u64,
    /// Listener values and stop-listening messages ignored because no stream has their
    /// `listenId`.
    pub unknown_listen_ids: u64,
    /// Listener values dropped while a stream's listen was not confirmed yet, because more than
    /// 256 values arrived for it. The newest 256 values are kept.
    pub held_values_dropped: u64,
    /// Sockets opened to the server, the first one included.
    pub connections_opened: u64,
    /// Connection attempts started after the first one (automatic or requested reconnections).
    pub reconnect_attempts: u64,
    /// Requests rejected at once with [`ErrorKind::TooManyPending`](crate::ErrorKind::TooManyPending)
    /// because the pending-request limit was reached.
    pub requests_rejected: u64,
}

/// The live counters shared by the connection task and the client handles.
#[derive(Debug, Default)]
pub(crate) struct StatsCounters {
    pub(crate) frames_received: AtomicU64,
    pub(crate) malformed_frames: AtomicU64,
    pub(crate) duplicates_dropped: AtomicU64,
    pub(crate) unmatched_responses: AtomicU64,
    pub(crate) unknown_listen_ids: AtomicU64,
    pub(crate) held_values_dropped: AtomicU64,
    pub(crate) connections_opened: AtomicU64,
    pub(crate) connection_attempts: AtomicU64,
    pub(crate) requests_rejected: AtomicU64,
}

/// Adds one to `counter` and returns the new value.
pub(crate) fn bump(counter: &AtomicU64) -> u64 {
    counter.fetch_add(1, Ordering::Relaxed) + 1
}

impl StatsCounters {
    pub(crate) fn snapshot(&self) -> ClientStats {
        let read = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        ClientStats {
            frames_received: read(&self.frames_received),
            malformed_frames: read(&self.malformed_frames),
            duplicates_dropped: read(&self.duplicates_dropped),
            unmatched_responses: read(&self.unmatched_responses),
            unknown_listen_ids: read(&self.unknown_listen_ids),
            held_values_dropped: read(&self.held_values_dropped),
            connections_opened: read(&self.connections_opened),
            reconnect_attempts: read(&self.connection_attempts).saturating_sub(1),
            requests_rejected: read(&self.requests_rejected),
        }
    }
}
