//! Per-request options.

/// Options of one read, create, update or delete request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestOptions {
    /// Whether the request waits for the connection and for its response without any time
    /// limit. Default: `false` (the request timeout applies).
    pub never_timeout: bool,
    /// Whether a request that received `PENDING_AUTHENTICATION` keeps waiting for an authentication
    /// even after the application clears the authentication. Default: `false`.
    pub persevere: bool,
}

impl RequestOptions {
    /// Returns options with [`never_timeout`](Self::never_timeout) set.
    pub fn never_timeout() -> Self {
        RequestOptions {
            never_timeout: true,
            ..RequestOptions::default()
        }
    }
}
