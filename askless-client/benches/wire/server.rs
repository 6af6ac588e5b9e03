//! The bench server: the testkit's mock server with the routes every workload uses.

use std::io::BufRead;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use askless_testkit::{AuthDecision, MockConfig, MockServer, Notify, Route};
use serde_json::{Value, json};

/// A read route whose output serializes to about 200 bytes.
pub(crate) const SMALL_ROUTE: &str = "bench/small";
/// A read route whose output serializes to about 4 KiB.
pub(crate) const LARGE_ROUTE: &str = "bench/large";
/// A read route for idle streams: its output is the `i` param.
pub(crate) const IDLE_ROUTE: &str = "bench/idle";
/// The stream route the floor's push rounds listen to.
pub(crate) const FLOOR_PUSH_ROUTE: &str = "bench/push-floor";
/// The stream route askless's push rounds listen to.
pub(crate) const ASKLESS_PUSH_ROUTE: &str = "bench/push-askless";
/// A create route that makes the server push values: body `{"route": ROUTE, "count": N}`
/// notifies ROUTE's listeners N times, with the values 1 to N.
pub(crate) const NOTIFY_ROUTE: &str = "bench/notify";
/// A create route that raises [`GENERATION`].
pub(crate) const GENERATION_ROUTE: &str = "bench/generation";
/// The access token the bench server accepts, as user 1.
pub(crate) const TOKEN: &str = "bench-token";

/// Part of every value of the idle route. The reconnect workload raises it (through
/// [`GENERATION_ROUTE`]) before each reconnection, because the client drops a value that is sent again unchanged after a
/// reconnection, and the workload waits for a value on every stream.
pub(crate) static GENERATION: AtomicU64 = AtomicU64::new(0);

/// Builds an array of product objects whose JSON text is at least `size` bytes long.
pub(crate) fn payload(size: usize) -> Value {
    let mut items = Vec::new();
    let mut length = 2;
    let mut id = 0;
    while length < size {
        let item = json!({"id": id, "name": format!("product {id}"), "price": id * 3 % 97});
        length += item.to_string().len() + 1;
        items.push(item);
        id += 1;
    }
    Value::Array(items)
}

/// The mock configuration of every workload: no quirks, no notification grace period and no
/// notification delay (so that pushes measure the clients, not a timer), and no liveness tick
/// (so that idle clients that do not ping stay connected during a measurement).
fn config() -> MockConfig {
    let mut config = MockConfig::well_behaved();
    config.notify_delay = Duration::ZERO;
    config.liveness_tick = None;
    config.record_cleanup_tick = None;
    config
}

/// Starts the bench server on 127.0.0.1 and a free port.
pub(crate) async fn start() -> MockServer {
    let server = MockServer::builder().config(config()).start().await;
    let small = payload(200);
    let large = payload(4 * 1024);
    server.route(Route::read(SMALL_ROUTE).handler(move |_| {
        let output = small.clone();
        async move { Ok(Some(output)) }
    }));
    server.route(Route::read(LARGE_ROUTE).handler(move |_| {
        let output = large.clone();
        async move { Ok(Some(output)) }
    }));
    server.route(Route::read(IDLE_ROUTE).handler(|ctx| async move {
        let i = ctx.params.get("i").cloned().unwrap_or(Value::Null);
        Ok(Some(
            json!({"i": i, "generation": GENERATION.load(Ordering::Relaxed)}),
        ))
    }));
    let handle = server.handle();
    server.route(Route::create(NOTIFY_ROUTE).handler(move |ctx| {
        let route = ctx.body["route"].as_str().unwrap_or_default().to_owned();
        let count = ctx.body["count"].as_u64().unwrap_or(0);
        for value in 1..=count {
            handle.notify_changes(&route, Notify::all().override_value(json!(value)));
        }
        async move { Ok(Some(json!(count))) }
    }));
    server.route(
        Route::create(GENERATION_ROUTE)
            .handler(|_| async move { Ok(Some(json!(GENERATION.fetch_add(1, Ordering::Relaxed) + 1))) }),
    );
    for route in [FLOOR_PUSH_ROUTE, ASKLESS_PUSH_ROUTE] {
        server.route(Route::read(route).handler(|_| async move { Ok(Some(json!(0))) }));
    }
    server.authenticate_with(|credential| async move {
        if credential["accessToken"] == TOKEN {
            AuthDecision::user(1)
        } else {
            AuthDecision::reject("INVALID_CREDENTIAL")
        }
    });
    server
}

/// Runs the bench server in this process for a parent bench process: prints its URL on the
/// first line of stdout and serves until stdin closes.
pub(crate) fn serve_for_parent() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the server runtime failed");
    runtime.block_on(async {
        let server = start().await;
        println!("{}", server.url());
        let stdin_closed = tokio::task::spawn_blocking(|| {
            let mut sink = String::new();
            while std::io::stdin()
                .lock()
                .read_line(&mut sink)
                .is_ok_and(|read| read > 0)
            {
                sink.clear();
            }
        });
        let _ = stdin_closed.await;
        drop(server);
    });
}
