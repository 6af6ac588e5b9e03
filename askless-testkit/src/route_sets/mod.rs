//! Ready-made route sets: the application of the reference server the golden transcripts were
//! recorded with, and the union of the Askless example servers.
//!
//! Each set registers its routes and its authenticate handler on a server and starts its
//! timers (the reference counter, the demo's random numbers and generated products). The timers
//! run until the returned [`RouteSetTimers`] is dropped, so keep it next to the server:
//!
//! ```
//! use askless_testkit::MockServer;
//! use askless_testkit::route_sets::{self, ReferenceOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let server = MockServer::builder().config(route_sets::reference::config()).start().await;
//! let _timers = route_sets::install_reference(&server, ReferenceOptions::default());
//! // Clients can now read `product/all`, listen to `counter`, authenticate as `good-7`, …
//! # }
//! ```

pub mod demo;
mod js;
pub mod reference;

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

pub use demo::{DemoOptions, DemoRoutes};
pub use reference::{ReferenceOptions, ReferenceRoutes};

use crate::notify::Notify;
use crate::server::ServerHandle;

/// The timers of an installed route set; dropping it stops them.
#[derive(Debug, Default)]
pub struct RouteSetTimers {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for RouteSetTimers {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Registers the reference route set and its authenticate handler on `server`, and starts its
/// counter.
///
/// Use [`reference::config`] for the server so that it advertises the reference server's
/// `requestTimeoutInMs`. The counter ticks on a grid that starts now.
///
/// # Panics
/// Panics when called outside a tokio runtime, because the counter is a tokio task.
pub fn install_reference(server: &ServerHandle, options: ReferenceOptions) -> RouteSetTimers {
    let routes = ReferenceRoutes::new(options);
    for route in routes.routes() {
        server.route(route);
    }
    server.authenticate_with(|credential| async move { reference::authenticate(&credential) });

    let mut timers = RouteSetTimers::default();
    if let Some(interval) = routes.options().counter_interval {
        let handle = server.clone();
        timers.tasks.push(spawn_ticker(interval, move || {
            routes.tick_counter();
            handle.notify_changes("counter", Notify::all());
        }));
    }
    timers
}

/// Registers the demo route set (random-numbers, simple-chat and catalog) and its authenticate
/// handler on `server`, and starts its timers.
///
/// The call-signalling routes are part of every server, so they need no installation.
///
/// # Panics
/// Panics when called outside a tokio runtime, because the timers are tokio tasks.
pub fn install_demo(server: &ServerHandle, options: DemoOptions) -> RouteSetTimers {
    let routes = DemoRoutes::new(options);
    for route in routes.routes() {
        server.route(route);
    }
    server.authenticate_with(|credential| async move { demo::authenticate(&credential) });

    let mut timers = RouteSetTimers::default();
    if let Some(interval) = routes.options().random_number_interval {
        let (routes, handle) = (routes.clone(), server.clone());
        timers.tasks.push(spawn_ticker(interval, move || {
            routes.draw_random_number();
            handle.notify_changes(demo::RANDOM_NUMBER_ROUTE, Notify::all());
        }));
    }
    if let Some(interval) = routes.options().catalog_product_interval {
        let (routes, handle) = (routes.clone(), server.clone());
        timers.tasks.push(spawn_ticker(interval, move || {
            routes.add_generated_product();
            handle.notify_changes(demo::PRODUCT_LIST_ROUTE, Notify::all());
        }));
    }
    timers
}

/// Runs `tick` every `period` on a grid starting now; a zero period runs nothing.
fn spawn_ticker(period: Duration, mut tick: impl FnMut() + Send + 'static) -> JoinHandle<()> {
    spawn(async move {
        if period.is_zero() {
            return;
        }
        let mut interval = tokio::time::interval_at(Instant::now() + period, period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            tick();
        }
    })
}

fn spawn(task: impl Future<Output = ()> + Send + 'static) -> JoinHandle<()> {
    tokio::spawn(task)
}
