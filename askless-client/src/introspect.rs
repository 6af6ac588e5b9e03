//! Sizes of the connection task's tables, for tests that check that nothing leaks.

/// Sizes of the client's internal tables at one moment, from
/// [`AsklessClient::state_sizes`](crate::AsklessClient::state_sizes). Meant for leak tests:
/// the fields may change between versions.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateSizes {
    /// Stream listeners, one per route and params, live or waiting. A listener whose last
    /// stream was dropped stays until the ping after its 4.5 s grace period.
    pub listeners: usize,
    /// Streams attached to those listeners that their readers have not dropped.
    pub open_streams: usize,
    /// Requests waiting for their response, a connection or an authentication.
    pub pending_requests: usize,
    /// Server message ids remembered for de-duplication, after forgetting those older than
    /// 10 minutes.
    pub dedup_entries: usize,
}
