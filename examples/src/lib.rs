//! Example apps of askless-rs, ported from the example apps of the Askless Flutter client 3.1.0,
//! and the `askless` command-line client.
//!
//! Each app is a library function that takes a server URL and a [`Console`], so the binaries in
//! `src/bin/` stay thin and the tests can drive the same code against a mock server:
//!
//! - [`random_numbers::run`] streams the numbers of the `generated-random-number` route;
//! - [`chat::run`] lets the users "blue" and "green" exchange messages on the `message` route;
//! - [`catalog::run`] authenticates, streams `product-list`, adds and removes products and shows
//!   the errors of users without permission;
//! - [`call::run`] signs in two users who make a WebRTC call with synthetic audio and video
//!   through the server's call routes.
//!
//! Without `--url`, each binary starts an [`EmbeddedServer`]: the mock server of
//! `askless-testkit` with its demo route set, on a free port of 127.0.0.1. With `--url` they talk
//! to any server that serves the routes of the Askless example servers.

mod console;
mod embedded;
mod messages;

pub mod call;
pub mod catalog;
pub mod chat;
pub mod random_numbers;
pub mod session;
pub mod tour;

pub use console::{Console, DEFAULT_LOG_FILTER, init_tracing};
pub use embedded::{EmbeddedServer, ExampleApp};
pub use messages::{describe_error, describe_status, print_status_changes};
