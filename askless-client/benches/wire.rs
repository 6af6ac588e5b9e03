//! Wire benchmark: `askless-client` against the floor, a minimal client written straight on
//! `tokio-tungstenite` that sends and reads exactly the frames the protocol needs.
//!
//! Both clients talk to the same testkit mock server in one run, in alternating rounds (floor,
//! then askless, then floor again), so that load from other processes hits both. The figures
//! that matter are the askless / floor ratios. BENCHMARKS.md at the repository root records
//! them and describes each workload.
//!
//! ```text
//! cargo bench -p askless-client --bench wire -- [--quick] [--rounds N] [--only LIST]
//!     [--server process|in-process] [--caller main|task]
//! ```
//!
//! `--quick` runs one round with smaller counts. `--rounds N` sets the number of rounds of each
//! workload (default 5). `--only` takes a comma-separated list of `latency`, `pipelined`,
//! `push`, `reconnect` and `memory`. `--server` places the bench server in a child process
//! (`process`, the default) or on the bench's own runtime (`in-process`). `--caller` runs the
//! timed workloads in the main thread's `block_on` (`main`, the default) or on a spawned task
//! (`task`). The binary also runs as its own bench server (`--serve`) and as a memory round
//! (`--memory-child`); the parent starts those itself.

#[path = "wire/floor.rs"]
mod floor;
#[path = "wire/memory.rs"]
mod memory;
#[path = "wire/server.rs"]
mod server;

use std::collections::HashMap;
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use askless_client::{AsklessClient, ReadStream, StreamBuffer, StreamOptions};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::json;

use crate::floor::FloorClient;
use crate::memory::{Idle, MemoryRound};
use crate::server::{
    ASKLESS_PUSH_ROUTE, FLOOR_PUSH_ROUTE, GENERATION_ROUTE, IDLE_ROUTE, LARGE_ROUTE, NOTIFY_ROUTE,
    SMALL_ROUTE, TOKEN,
};

/// The workloads `--only` accepts.
const WORKLOADS: [&str; 5] = ["latency", "pipelined", "push", "reconnect", "memory"];

const USAGE: &str = "usage: cargo bench -p askless-client --bench wire -- [--quick] [--rounds N] \
[--only latency,pipelined,push,reconnect,memory] [--server process|in-process] [--caller main|task]";

/// Prints `problem` and the usage, and exits with status 2.
fn usage(problem: &str) -> ! {
    eprintln!("wire: {problem}\n{USAGE}");
    std::process::exit(2);
}

/// Counts of one run.
#[derive(Debug, Clone)]
struct Settings {
    rounds: usize,
    sequential_reads: usize,
    pipelined_reads: usize,
    pushes: usize,
    idle_streams: usize,
    idle_connections: usize,
    reconnect_streams: usize,
    only: Option<Vec<String>>,
    /// Whether the bench server runs in a child process (the default) or on the bench's own
    /// runtime.
    server_in_process: bool,
    /// Whether the timed workloads run on a task spawned on the runtime instead of the main
    /// thread's `block_on` (the default, as in a `#[tokio::main]` body).
    caller_task: bool,
}

impl Settings {
    fn parse(args: &[String]) -> Settings {
        let mut settings = Settings {
            rounds: 5,
            sequential_reads: 2000,
            pipelined_reads: 20_000,
            pushes: 10_000,
            idle_streams: 10_000,
            idle_connections: 1000,
            reconnect_streams: 1000,
            only: None,
            server_in_process: false,
            caller_task: false,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => {
                    settings.rounds = 1;
                    settings.sequential_reads = 500;
                    settings.pipelined_reads = 5000;
                    settings.pushes = 2000;
                }
                "--rounds" => {
                    let value = args.next().and_then(|value| value.parse::<usize>().ok());
                    settings.rounds = match value {
                        Some(rounds) if rounds > 0 => rounds,
                        _ => usage("--rounds takes a number of rounds of at least 1"),
                    };
                }
                "--only" => {
                    let Some(list) = args.next() else {
                        usage("--only takes a comma-separated list of workloads");
                    };
                    let only: Vec<String> = list.split(',').map(str::to_owned).collect();
                    if let Some(unknown) = only.iter().find(|name| !WORKLOADS.contains(&name.as_str())) {
                        usage(&format!("--only: unknown workload `{unknown}`"));
                    }
                    settings.only = Some(only);
                }
                "--server" => match args.next().map(String::as_str) {
                    Some("process") => settings.server_in_process = false,
                    Some("in-process") => settings.server_in_process = true,
                    _ => usage("--server takes `process` or `in-process`"),
                },
                "--caller" => match args.next().map(String::as_str) {
                    Some("main") => settings.caller_task = false,
                    Some("task") => settings.caller_task = true,
                    _ => usage("--caller takes `main` or `task`"),
                },
                // `cargo bench` passes `--bench`.
                "--bench" => {}
                "--help" | "-h" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => usage(&format!("unknown argument `{other}`")),
            }
        }
        settings
    }

    fn runs(&self, workload: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|only| only.iter().any(|name| name == workload))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        server::serve_for_parent();
        return;
    }
    if args.first().map(String::as_str) == Some("--memory-child") {
        memory::child_main(&args[1..]);
        return;
    }
    let settings = Settings::parse(&args);
    println!("# askless-client wire benchmark");
    println!();
    println!("{settings:?}");
    println!();
    println!("| workload | askless | floor | askless / floor | goal |");
    println!("|---|---|---|---|---|");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the runtime failed");
    let mut child = (!settings.server_in_process).then(start_server_child);
    let child_url = child.as_mut().map(server_url);
    runtime.block_on(async {
        // The in-process server lives as long as the workloads.
        let (_in_process, url) = match child_url {
            Some(url) => (None, url),
            None => {
                let server = server::start().await;
                let url = server.url();
                (Some(server), url)
            }
        };
        let workloads = timed_workloads(url, settings.clone());
        if settings.caller_task {
            tokio::spawn(workloads).await.expect("a workload panicked");
        } else {
            workloads.await;
        }
    });
    drop(runtime);
    if let Some(mut child) = child {
        drop(child.stdin.take());
        let _ = child.wait();
    }
    if settings.runs("memory") {
        idle_memory(&settings);
    }
}

/// Runs the timed workloads against the bench server at `url`.
async fn timed_workloads(url: String, settings: Settings) {
    // Triggers pushes and raises the idle route's generation; never measured.
    let control = memory::connect_askless(&url).await;
    if settings.runs("latency") {
        for route in [SMALL_ROUTE, LARGE_ROUTE] {
            sequential_latency(&url, &settings, route).await;
        }
    }
    if settings.runs("pipelined") {
        for depth in [1, 16, 128] {
            pipelined(&url, &settings, depth).await;
        }
    }
    if settings.runs("push") {
        pushes(&url, &control, &settings).await;
    }
    if settings.runs("reconnect") {
        reconnect(&url, &control, &settings).await;
    }
    control.close().await;
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn row(workload: &str, askless: String, floor: String, ratio: f64, goal: &str) {
    println!("| {workload} | {askless} | {floor} | {ratio:.2} | {goal} |");
}

async fn askless_client(url: &str) -> AsklessClient {
    memory::connect_askless(url).await
}

/// Sequential reads of `route`: the latency of each, floor and askless in alternate rounds.
async fn sequential_latency(url: &str, settings: &Settings, route: &str) {
    let mut floor = FloorClient::connect(url).await;
    let askless = askless_client(url).await;
    // Warm-up: connections, allocator and caches.
    for _ in 0..200 {
        floor.read(route).await;
        askless.read(route, ()).await.expect("read failed");
    }
    let mut floor_samples = Vec::new();
    let mut askless_samples = Vec::new();
    for _ in 0..settings.rounds {
        for _ in 0..settings.sequential_reads {
            let started = Instant::now();
            std::hint::black_box(floor.read(route).await);
            floor_samples.push(started.elapsed());
        }
        for _ in 0..settings.sequential_reads {
            let started = Instant::now();
            std::hint::black_box(askless.read(route, ()).await.expect("read failed"));
            askless_samples.push(started.elapsed());
        }
    }
    floor_samples.sort();
    askless_samples.sort();
    for (name, fraction, goal) in [("p50", 0.5, "<= 1.15"), ("p99", 0.99, "<= 1.30")] {
        let floor_value = percentile(&floor_samples, fraction);
        let askless_value = percentile(&askless_samples, fraction);
        row(
            &format!("sequential read {route}, {name}"),
            format!("{:.1} µs", micros(askless_value)),
            format!("{:.1} µs", micros(floor_value)),
            askless_value.as_secs_f64() / floor_value.as_secs_f64(),
            goal,
        );
    }
    floor.close().await;
    askless.close().await;
}

/// Reads of the small route with `depth` in flight on one connection.
async fn pipelined(url: &str, settings: &Settings, depth: usize) {
    let mut floor = FloorClient::connect(url).await;
    let askless = askless_client(url).await;
    let total = settings.pipelined_reads;
    floor.pipelined_reads(SMALL_ROUTE, depth, total / 10).await;
    askless_pipelined(&askless, depth, total / 10).await;
    let mut floor_time = Duration::ZERO;
    let mut askless_time = Duration::ZERO;
    for _ in 0..settings.rounds {
        let started = Instant::now();
        floor.pipelined_reads(SMALL_ROUTE, depth, total).await;
        floor_time += started.elapsed();
        let started = Instant::now();
        askless_pipelined(&askless, depth, total).await;
        askless_time += started.elapsed();
    }
    let count = (total * settings.rounds) as f64;
    let floor_rate = count / floor_time.as_secs_f64();
    let askless_rate = count / askless_time.as_secs_f64();
    let goal = if depth == 128 { ">= 0.80" } else { "" };
    row(
        &format!("pipelined reads, {depth} in flight"),
        format!("{askless_rate:.0} req/s"),
        format!("{floor_rate:.0} req/s"),
        askless_rate / floor_rate,
        goal,
    );
    floor.close().await;
    askless.close().await;
}

async fn askless_pipelined(client: &AsklessClient, depth: usize, total: usize) {
    let mut reads = futures::stream::iter(0..total)
        .map(|_| client.read(SMALL_ROUTE, ()))
        .buffer_unordered(depth);
    while let Some(result) = reads.next().await {
        std::hint::black_box(result.expect("read failed"));
    }
}

/// Values pushed by the server to one stream, as fast as the server sends them.
async fn pushes(url: &str, control: &AsklessClient, settings: &Settings) {
    let count = settings.pushes;
    let mut floor = FloorClient::connect(url).await;
    let mut floor_streams = HashMap::new();
    floor_streams.insert(floor.send_listen(FLOOR_PUSH_ROUTE, "null").await, None);
    floor.wait_values(&mut floor_streams).await;

    let askless = askless_client(url).await;
    let options = StreamOptions {
        buffer: StreamBuffer::Bounded(count + 1),
        ..StreamOptions::default()
    };
    let mut stream = askless
        .read_stream_with(ASKLESS_PUSH_ROUTE, (), options)
        .await
        .expect("opening the push stream failed");
    stream
        .next()
        .await
        .expect("the push stream ended")
        .expect("listen failed");

    let mut floor_time = Duration::ZERO;
    let mut askless_time = Duration::ZERO;
    for _ in 0..settings.rounds {
        let started = Instant::now();
        notify(control, FLOOR_PUSH_ROUTE, count).await;
        floor.count_values(count).await;
        floor_time += started.elapsed();

        let started = Instant::now();
        notify(control, ASKLESS_PUSH_ROUTE, count).await;
        for _ in 0..count {
            let value = stream.next().await.expect("the push stream ended");
            std::hint::black_box(value.expect("the push stream failed"));
        }
        askless_time += started.elapsed();
        assert_eq!(stream.skipped(), 0, "the push stream dropped values");
    }
    let total = (count * settings.rounds) as f64;
    let floor_rate = total / floor_time.as_secs_f64();
    let askless_rate = total / askless_time.as_secs_f64();
    row(
        "pushes to one stream",
        format!("{askless_rate:.0} values/s"),
        format!("{floor_rate:.0} values/s"),
        askless_rate / floor_rate,
        ">= 0.80",
    );
    floor.close().await;
    askless.close().await;
}

/// Makes the server push the values 1 to `count` to the listeners of `route`.
async fn notify(control: &AsklessClient, route: &str, count: usize) {
    control
        .create(NOTIFY_ROUTE, json!({"route": route, "count": count}), ())
        .await
        .expect("asking the bench server for pushes failed");
}

/// A client with 1000 streams reconnects: the time until every stream has its value again.
async fn reconnect(url: &str, control: &AsklessClient, settings: &Settings) {
    let count = settings.reconnect_streams;
    let askless = askless_client(url).await;
    askless
        .authenticate(json!({"accessToken": TOKEN}))
        .await
        .expect("authentication failed");
    let mut streams = Vec::with_capacity(count);
    for i in 0..count {
        let stream = askless
            .read_stream(IDLE_ROUTE, json!({ "i": i }))
            .await
            .expect("opening a stream failed");
        streams.push(stream);
    }
    let missing = value_of_generation_on_each(&mut streams, 0).await;
    assert_eq!(
        missing, 0,
        "{missing} streams received no first value within {RECONNECT_LIMIT:?}"
    );

    let mut exchange = Vec::new();
    let mut floor_total = Vec::new();
    let mut askless_total = Vec::new();
    // A round takes about 40 ms, and the goal is a difference of about 2 ms, less than the
    // spread between rounds, so the median is taken over three times as many rounds.
    // The floor's connection of the previous round, with its 1000 streams: a reconnection
    // closes it, as askless closes its own, and the server's work of dropping its listeners
    // falls into the measurement of both.
    let mut previous_floor: Option<FloorClient> = None;
    for round in 0..=settings.rounds * 3 {
        // The server drops a closed connection's 1000 listeners after the close; that work
        // must not fall into the other client's measurement.
        tokio::time::sleep(SERVER_SETTLE).await;
        // The floor closes its connection, opens a new one, configures, authenticates and
        // listens again.
        let started = Instant::now();
        if let Some(previous) = previous_floor.take() {
            previous.close().await;
        }
        let exchange_started = Instant::now();
        let mut floor = FloorClient::connect(url).await;
        floor.authenticate(TOKEN).await;
        let exchanged = exchange_started.elapsed();
        let mut values = HashMap::with_capacity(count);
        for i in 0..count {
            let params = format!(r#"{{"i":{i}}}"#);
            values.insert(floor.send_listen(IDLE_ROUTE, &params).await, None);
        }
        floor.wait_values(&mut values).await;
        let floor_elapsed = started.elapsed();
        previous_floor = Some(floor);
        tokio::time::sleep(SERVER_SETTLE).await;

        let generation = control
            .create(GENERATION_ROUTE, json!({}), ())
            .await
            .expect("raising the generation failed")
            .json::<u64>()
            .expect("the generation route returned no number");
        let started = Instant::now();
        askless.reconnect().await.expect("reconnect failed");
        let missing = value_of_generation_on_each(&mut streams, generation).await;
        let askless_elapsed = started.elapsed();
        if missing > 0 {
            println!(
                "| reconnect with {count} streams | {missing} streams had no value after {RECONNECT_LIMIT:?} | | | |"
            );
            askless.close().await;
            return;
        }
        // Round 0 warms up.
        if round > 0 {
            exchange.push(exchanged);
            floor_total.push(floor_elapsed);
            askless_total.push(askless_elapsed);
        }
    }
    exchange.sort();
    floor_total.sort();
    askless_total.sort();
    let exchange = percentile(&exchange, 0.5);
    let floor_value = percentile(&floor_total, 0.5);
    let askless_value = percentile(&askless_total, 0.5);
    row(
        &format!("reconnect with {count} streams, median time to every value"),
        format!("{:.2} ms", askless_value.as_secs_f64() * 1e3),
        format!("{:.2} ms", floor_value.as_secs_f64() * 1e3),
        askless_value.as_secs_f64() / floor_value.as_secs_f64(),
        "",
    );
    // Negative when askless was faster than the floor.
    let extra = askless_value.as_secs_f64() - floor_value.as_secs_f64();
    println!(
        "| connect, configure and authenticate (floor), median | | {:.2} ms | | |",
        exchange.as_secs_f64() * 1e3
    );
    println!(
        "| reconnect: askless minus floor, in configure-and-authenticate round trips | {:.2} | | | <= 2 |",
        extra / exchange.as_secs_f64()
    );
    askless.close().await;
}

/// Waits until every stream yielded a value of `generation` (older values are skipped).
/// Returns how many did not within `RECONNECT_LIMIT`.
async fn value_of_generation_on_each(streams: &mut [ReadStream], generation: u64) -> usize {
    let deadline = tokio::time::Instant::now() + RECONNECT_LIMIT;
    let mut pending: FuturesUnordered<_> = streams
        .iter_mut()
        .map(|stream| async move {
            loop {
                let value = stream.next().await;
                let Some(Ok(value)) = value else {
                    panic!("a stream ended without a value: {value:?}");
                };
                if value["generation"] == json!(generation) {
                    return;
                }
            }
        })
        .collect();
    while let Ok(Some(())) = tokio::time::timeout_at(deadline, pending.next()).await {}
    pending.len()
}

/// How long the reconnect workload lets the server finish with one client's connection before
/// it measures the other client.
const SERVER_SETTLE: Duration = Duration::from_millis(200);

/// How long the reconnect workload waits for the values of every stream.
const RECONNECT_LIMIT: Duration = Duration::from_secs(20);

/// Idle connections and idle streams, each round in its own child process.
fn idle_memory(settings: &Settings) {
    let rounds = settings.rounds.clamp(1, 3);
    for (idle, count, goal) in [
        (Idle::Connections, settings.idle_connections, 64 * 1024),
        (Idle::Streams, settings.idle_streams, 1024),
    ] {
        let mut floor_rounds = Vec::new();
        let mut askless_rounds = Vec::new();
        for _ in 0..rounds {
            floor_rounds.push(memory_round_on_fresh_server(true, idle, count));
            askless_rounds.push(memory_round_on_fresh_server(false, idle, count));
        }
        report_memory(idle, count, goal, &floor_rounds, &askless_rounds);
    }
}

/// Runs one memory round against a server process of its own: a server that kept the records
/// of earlier rounds would respond to later rounds more slowly, and the clients would ping more
/// often while their streams open.
fn memory_round_on_fresh_server(floor: bool, idle: Idle, count: usize) -> MemoryRound {
    let mut server = start_server_child();
    let url = server_url(&mut server);
    let round = memory::run_child(&url, floor, idle, count);
    drop(server.stdin.take());
    let _ = server.wait();
    round
}

fn report_memory(idle: Idle, count: usize, goal: u64, floor: &[MemoryRound], askless: &[MemoryRound]) {
    let median = |rounds: &[MemoryRound], pick: &dyn Fn(&MemoryRound) -> f64| {
        let mut values: Vec<f64> = rounds.iter().map(pick).collect();
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let per_item = |round: &MemoryRound| round.rss_growth as f64 / count as f64;
    let open_ms = |round: &MemoryRound| round.open.as_secs_f64() * 1e3;
    let name = idle.as_str();
    let (floor_bytes, askless_bytes) = (median(floor, &per_item), median(askless, &per_item));
    row(
        &format!(
            "resident memory per idle {} ({count} open)",
            name.trim_end_matches('s')
        ),
        format!("{:.0} B", askless_bytes),
        format!("{:.0} B", floor_bytes),
        askless_bytes / floor_bytes.max(1.0),
        &format!("askless <= {goal} B"),
    );
    let (floor_open, askless_open) = (median(floor, &open_ms), median(askless, &open_ms));
    row(
        &format!("time to open {count} idle {name}"),
        format!("{askless_open:.1} ms"),
        format!("{floor_open:.1} ms"),
        askless_open / floor_open,
        "",
    );
}

fn start_server_child() -> Child {
    let exe = std::env::current_exe().expect("the bench binary's path is unknown");
    Command::new(exe)
        .arg("--serve")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("starting the bench server process failed")
}

fn server_url(server: &mut Child) -> String {
    let stdout = server.stdout.take().expect("the server's stdout is piped");
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("reading the server's URL failed");
    let url = line.trim().to_owned();
    assert!(
        url.starts_with("ws://127.0.0.1:"),
        "the server printed no URL: {line:?}"
    );
    url
}
