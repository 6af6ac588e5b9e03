//! The mock server the examples start in-process when no `--url` is given.

use std::time::Duration;

use anyhow::Context as _;
use askless_testkit::route_sets::{self, DemoOptions, RouteSetTimers};
use askless_testkit::{MockServer, MockServerBuilder};

/// The example app an embedded server is started for; it sets the server's timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExampleApp {
    /// The random-numbers app.
    RandomNumbers,
    /// The simple-chat app.
    Chat,
    /// The catalog app: the server advertises `waitForAuthenticationTimeoutInMs` 0, as the
    /// catalog example server does, so a request refused for lack of authentication fails at
    /// once.
    Catalog,
    /// The call app. It uses only the call routes, which every mock server serves.
    Call,
}

/// The mock server of `askless-testkit` with the demo route set (the routes of the three Askless
/// example servers) on a free port of 127.0.0.1. Dropping it stops the server.
#[derive(Debug)]
pub struct EmbeddedServer {
    server: MockServer,
    _timers: RouteSetTimers,
}

impl EmbeddedServer {
    /// Starts the server for `app` with the demo route set's default timers: a new random number
    /// every second and a server-generated product every 20 s.
    ///
    /// Unlike the example servers, it pushes changes from its first millisecond: they hold
    /// pushes back for 4 s after start, which would only make the examples wait.
    ///
    /// Fails when no loopback port can be bound.
    pub async fn start(app: ExampleApp) -> anyhow::Result<Self> {
        EmbeddedServer::start_with(app, DemoOptions::default()).await
    }

    /// Starts the server for `app` with the given demo route set options.
    ///
    /// Fails when no loopback port can be bound.
    pub async fn start_with(app: ExampleApp, options: DemoOptions) -> anyhow::Result<Self> {
        let builder: MockServerBuilder = MockServer::builder()
            .config(route_sets::demo::config())
            .configure(|config| {
                config.notify_grace = Duration::ZERO;
                if app == ExampleApp::Catalog {
                    config.wait_for_authentication_timeout = Duration::ZERO;
                }
            });
        let server = builder
            .try_start()
            .await
            .context("starting the embedded mock server on 127.0.0.1 failed")?;
        let timers = route_sets::install_demo(&server, options);
        tracing::info!(url = %server.url(), "embedded mock server started");
        Ok(EmbeddedServer {
            server,
            _timers: timers,
        })
    }

    /// Returns the URL of the server, `ws://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Returns the server, to inspect the frames it received.
    pub fn server(&self) -> &MockServer {
        &self.server
    }
}
