//! Async Rust client for Askless servers.
//!
//! [Askless](https://github.com/RodrigoBertotti/askless) is a realtime framework: a Node.js
//! server exposes routes that apps read, create, update, delete and stream over one WebSocket of
//! JSON text frames, with its own receipts, retransmissions, pings and authentication. This
//! crate speaks that protocol as the reference Flutter client 3.1.0 does, against the Askless
//! server 2.0.3. It improves on the reference client where that client is weak. A timeout is
//! its own error kind, and repeated server messages are processed once. A closed connection is
//! replaced at once, with exponential backoff and full jitter. A configure request never
//! outlives its connection.
//!
//! One [`AsklessClient`] handle, cheap to clone, talks to one task that owns the connection.
//! Requests made while offline wait for the connection and go out in the order they were made.
//! Requests the server has not acknowledged are re-sent, and the connection is watched for
//! silence and replaced when it goes quiet.
//!
//! Everything is async and needs a Tokio runtime.
//!
//! # Example
//!
//! A read against the mock server of `askless-testkit`, which serves the protocol on a loopback
//! port:
//!
//! ```
//! use askless_client::AsklessClient;
//! use askless_testkit::{MockServer, Route};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), askless_client::Error> {
//! let server = MockServer::start().await;
//! server.route(Route::read("product/all").handler(|ctx| async move {
//!     assert_eq!(ctx.params, json!({"nameContains": "an"}));
//!     Ok(Some(json!([{"id": 2, "name": "Banana"}])))
//! }));
//!
//! let client = AsklessClient::builder(server.url()).connect().await?;
//! let products = client.read("product/all", json!({"nameContains": "an"})).await?;
//! println!("{:?}", products.value());
//! assert_eq!(products.value(), Some(&json!([{"id": 2, "name": "Banana"}])));
//!
//! client.close().await;
//! # Ok(())
//! # }
//! ```

mod auth;
mod builder;
mod client;
mod error;
mod introspect;
mod options;
mod policy;
mod stats;
mod status;
mod stream;
mod task;

pub use auth::{
    AuthenticateOptions, Authenticated, AuthenticationStatus, ClearAuthentication, CredentialFuture,
    ReauthenticationFailure,
};
pub use builder::{AsklessClientBuilder, DEFAULT_MAX_PENDING_REQUESTS};
pub use client::{AsklessClient, Output};
pub use error::{Error, ErrorKind, Operation, Result};
pub use options::RequestOptions;
pub use policy::ReconnectPolicy;
pub use stats::ClientStats;
pub use status::{
    ConnectionStatus, DisconnectionReason, StatusListenerGuard, StatusStream, StatusStreamOptions,
};
pub use stream::{ReadStream, StreamBuffer, StreamOptions, StreamSource, TypedReadStream};

#[doc(hidden)]
pub use introspect::StateSizes;

pub use askless_protocol::{AsklessErrorCode, ClientIdInternalApp, ClientVersionCodeSupported, UserId};
pub use askless_transport::Transport;

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync + 'static>() {}
    fn assert_send<T: Send + 'static>() {}

    #[test]
    fn public_types_cross_threads() {
        assert_send_sync::<AsklessClient>();
        assert_send_sync::<Error>();
        assert_send_sync::<ConnectionStatus>();
        assert_send::<ReadStream>();
        assert_send::<StatusStream>();
        assert_send::<StatusListenerGuard>();
    }
}
