//! A mock Askless server for integration tests.
//!
//! [`MockServer::start`] binds a free port on 127.0.0.1 and serves the Askless protocol the way
//! the Askless server 2.0.3 does: `welcome`, configure with the connection configuration, server
//! receipts before responses, retransmission of unconfirmed messages, de-duplication of request
//! ids, listeners with ping reconciliation and change notifications, authentication with every
//! outcome of the reference server, the internal logout route, and the reference server's
//! observable quirks (switchable through [`Quirks`]). Malformed frames that crash the reference
//! server are logged and dropped instead: the mock keeps serving every connection.
//!
//! Like wiremock, the server records every frame ([`ServerHandle::frames`]), can wait for one
//! ([`ServerHandle::wait_for_frame`]) so that tests need no sleeps, verifies [`Expect`]ations when
//! it drops, and injects faults at run time ([`ServerHandle::faults`], [`MockServer::restart`]).
//!
//! # Example
//!
//! ```
//! use askless_protocol::{
//!     ClientIdInternalApp, ClientMessage, ClientRequestId, ConfigureConnectionRequest, ReadRequest,
//!     ServerMessage, decode_server_frame,
//! };
//! use askless_testkit::{MockServer, Route};
//! use askless_transport::{Transport, WebSocketTransport, url::Url};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = MockServer::start().await;
//! server.route(Route::read("product/all").handler(|_ctx| async move {
//!     Ok(Some(json!([{"id": 1, "name": "Apple"}])))
//! }));
//!
//! // A raw protocol client: every frame is written and read by hand.
//! let mut socket = WebSocketTransport::default().connect(&Url::parse(&server.url())?).await?;
//! assert_eq!(decode_server_frame(&socket.recv().await?)?, ServerMessage::Welcome);
//! let configure = ConfigureConnectionRequest::new(
//!     ClientRequestId::new("REQ-_configure1"),
//!     ClientIdInternalApp::new("app1"),
//! );
//! socket.send(ClientMessage::ConfigureConnection(configure).encode()).await?;
//! let read = ReadRequest::new(ClientRequestId::new("REQ-_read1"), "product/all", json!(null));
//! socket.send(ClientMessage::Read(read).encode()).await?;
//!
//! // Receipt and response of the configure request, then of the read.
//! let mut frames = Vec::new();
//! while frames.len() < 4 {
//!     frames.push(decode_server_frame(&socket.recv().await?)?);
//! }
//! assert!(matches!(frames[2], ServerMessage::ServerConfirmReceipt(_)));
//! let ServerMessage::Response(response) = &frames[3] else { panic!("expected the read's response") };
//! assert_eq!(response.output, Some(json!([{"id": 1, "name": "Apple"}])));
//! # Ok(())
//! # }
//! ```
//!
//! # Handlers
//!
//! A handler is an async closure from [`RouteContext`] to [`RouteResult`]: `Ok(Some(entity))`
//! answers with the entity after the route's output conversion, `Ok(None)` answers without the
//! `output` key, `Err(RouteError::new(code, description))` fails, and
//! `Err(RouteError::NoAnswer)` never answers. A handler that panics is caught and logged; the
//! request keeps its receipt and gets nothing more, as with the reference server.
//!
//! Handlers run inside the task of the connection that received the request: one that finishes
//! without waiting answers before the next frame of that connection is read, as the reference
//! server does with synchronous handlers.
//!
//! # Paused tokio time
//!
//! Every timer uses `tokio::time`, so tests may run with `#[tokio::test(start_paused = true)]`.
//! With paused time the clock jumps to the next timer whenever the runtime is idle, even while a
//! frame is on its way through a loopback socket from a task that is not ready yet. Keep these
//! rules:
//!
//! - wait for frames with a timeout (never a bare `.await` on something that may not come),
//!   because the periodic tasks keep the clock moving forever;
//! - switch off the periodic tasks a test does not exercise (`liveness_tick` and
//!   `record_cleanup_tick` accept `None`), so that a long virtual wait does not terminate or
//!   delete the connection under test;
//! - set `notify_grace` to zero (or use [`MockConfig::well_behaved`]) unless the test is about it;
//! - set `TCP_NODELAY` on the client socket (the mock sets it on its side), because otherwise a
//!   second small frame waits for a delayed ACK and the clock jumps meanwhile;
//! - while awaiting a frame that is on its way, keep the clock still for a moment of real time:
//!   tokio does not auto-advance while a `spawn_blocking` task runs, so racing the wait against
//!   `spawn_blocking(|| std::thread::sleep(Duration::from_millis(500)))` lets loopback frames
//!   arrive before any timer fires, even on a loaded machine.

mod authentication;
pub mod calls;
mod config;
mod engine;
mod expect;
mod faults;
mod inspect;
mod notify;
mod route;
pub mod route_sets;
mod server;

pub use authentication::AuthDecision;
pub use config::{MockConfig, Quirks};
pub use expect::{Expect, Times};
pub use faults::{Faults, Withhold};
pub use inspect::{
    Authentication, ConnectionId, Direction, Frame, ListenerSnapshot, RecordSnapshot, WaitTimeout,
};
pub use notify::{Notify, NotifyTarget};
pub use route::{Access, HookContext, ListenerInfo, Route, RouteContext, RouteError, RouteKind, RouteResult};
pub use server::{MockServer, MockServerBuilder, ServerHandle};
