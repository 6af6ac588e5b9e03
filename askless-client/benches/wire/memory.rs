//! Idle connections and idle streams, measured in a fresh child process per round.
//!
//! The parent starts the bench server in one child process and runs each memory round in
//! another, so the resident memory of a round holds the client side only (its runtime, its
//! sockets' user-space buffers and its state), with nothing left over from earlier rounds.

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use askless_client::{AsklessClient, ReadStream};
use futures::StreamExt;
use serde_json::json;

use crate::floor::FloorClient;
use crate::server::IDLE_ROUTE;

/// Kind of resource a memory round opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idle {
    /// Idle connections, each configured, with nothing else to do.
    Connections,
    /// Idle streams of distinct params on one connection.
    Streams,
}

impl Idle {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Idle::Connections => "connections",
            Idle::Streams => "streams",
        }
    }

    fn parse(text: &str) -> Idle {
        match text {
            "connections" => Idle::Connections,
            "streams" => Idle::Streams,
            other => panic!("unknown memory workload `{other}`: expected connections or streams"),
        }
    }
}

/// The outcome of one memory round.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MemoryRound {
    /// From the first open to the last first value (streams) or configured connection.
    pub(crate) open: Duration,
    /// VmRSS after the round minus VmRSS before it, in bytes.
    pub(crate) rss_growth: u64,
}

/// Returns VmRSS of this process, in bytes, from /proc/self/status.
pub(crate) fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status failed");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kib| kib.trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .expect("/proc/self/status has no VmRSS line")
}

/// Runs one memory round in a child process of this binary and returns its outcome.
pub(crate) fn run_child(url: &str, floor: bool, idle: Idle, count: usize) -> MemoryRound {
    let exe = std::env::current_exe().expect("the bench binary's path is unknown");
    let output = Command::new(exe)
        .args([
            "--memory-child",
            if floor { "floor" } else { "askless" },
            idle.as_str(),
        ])
        .arg(count.to_string())
        .arg(url)
        .output()
        .expect("starting a memory child process failed");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the memory child failed ({}): {stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|line| line.strip_prefix("MEMORY "))
        .unwrap_or_else(|| panic!("the memory child printed no result: {stdout}"));
    let mut fields = line
        .split_whitespace()
        .map(|field| field.parse::<u64>().unwrap_or(0));
    MemoryRound {
        open: Duration::from_micros(fields.next().unwrap_or(0)),
        rss_growth: fields.next().unwrap_or(0),
    }
}

/// The entry point of a memory child: `--memory-child floor|askless connections|streams COUNT URL`.
pub(crate) fn child_main(args: &[String]) {
    let [client, idle, count, url] = args else {
        panic!("usage: --memory-child floor|askless connections|streams COUNT URL");
    };
    let floor = client == "floor";
    let idle = Idle::parse(idle);
    let count: usize = count.parse().expect("COUNT must be a number");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the runtime failed");
    let round = runtime.block_on(async {
        match (idle, floor) {
            (Idle::Connections, true) => floor_connections(url, count).await,
            (Idle::Connections, false) => askless_connections(url, count).await,
            (Idle::Streams, true) => floor_streams(url, count).await,
            (Idle::Streams, false) => askless_streams(url, count).await,
        }
    });
    println!("MEMORY {} {}", round.open.as_micros(), round.rss_growth);
}

/// Lets allocator and runtime settle before reading VmRSS.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(300)).await;
}

async fn floor_connections(url: &str, count: usize) -> MemoryRound {
    // One connection first, so that code pages and runtime structures are not counted.
    let warm_up = tokio::spawn(idle_floor_connection(FloorClient::connect(url).await));
    settle().await;
    let before = resident_bytes();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let client = FloorClient::connect(url).await;
        tasks.push(tokio::spawn(idle_floor_connection(client)));
    }
    let open = started.elapsed();
    settle().await;
    let after = resident_bytes();
    warm_up.abort();
    for task in tasks {
        task.abort();
    }
    MemoryRound {
        open,
        rss_growth: after.saturating_sub(before),
    }
}

/// The task a floor connection needs while idle: read frames and ping once a second.
async fn idle_floor_connection(mut client: FloorClient) {
    loop {
        // NOTE: a frame arriving while the ping is written would lose its confirm-receipt;
        // idle connections receive only `pong`, which needs none.
        if tokio::time::timeout(Duration::from_secs(1), client.next_event())
            .await
            .is_err()
        {
            client.send_ping().await;
        }
    }
}

async fn askless_connections(url: &str, count: usize) -> MemoryRound {
    let warm_up = connect_askless(url).await;
    settle().await;
    let before = resident_bytes();
    let started = Instant::now();
    let mut clients = Vec::with_capacity(count);
    for _ in 0..count {
        clients.push(connect_askless(url).await);
    }
    let open = started.elapsed();
    settle().await;
    let after = resident_bytes();
    drop(warm_up);
    drop(clients);
    MemoryRound {
        open,
        rss_growth: after.saturating_sub(before),
    }
}

pub(crate) async fn connect_askless(url: &str) -> AsklessClient {
    AsklessClient::builder(url)
        .connect()
        .await
        .expect("askless failed to connect to the bench server")
}

async fn floor_streams(url: &str, count: usize) -> MemoryRound {
    let mut client = FloorClient::connect(url).await;
    // One stream first, for the same reason as the warm-up connection.
    let mut warm_up = HashMap::new();
    warm_up.insert(client.send_listen(IDLE_ROUTE, r#"{"i":-1}"#).await, None);
    client.wait_values(&mut warm_up).await;
    settle().await;
    let before = resident_bytes();
    let started = Instant::now();
    // The floor keeps what a client needs to listen again after a reconnection (the params)
    // and the last value of each stream.
    let mut params = Vec::with_capacity(count);
    let mut streams = HashMap::with_capacity(count);
    for i in 0..count {
        let text = format!(r#"{{"i":{i}}}"#);
        let listen_id = client.send_listen(IDLE_ROUTE, &text).await;
        params.push((listen_id.clone(), text));
        streams.insert(listen_id, None);
    }
    client.wait_values(&mut streams).await;
    let open = started.elapsed();
    settle().await;
    let after = resident_bytes();
    std::hint::black_box((&params, &streams));
    MemoryRound {
        open,
        rss_growth: after.saturating_sub(before),
    }
}

async fn askless_streams(url: &str, count: usize) -> MemoryRound {
    let client = connect_askless(url).await;
    let mut warm_up = client
        .read_stream(IDLE_ROUTE, json!({"i": -1}))
        .await
        .expect("opening a stream failed");
    let _ = warm_up.next().await;
    settle().await;
    let before = resident_bytes();
    let started = Instant::now();
    let mut streams: Vec<ReadStream> = Vec::with_capacity(count);
    for i in 0..count {
        let stream = client
            .read_stream(IDLE_ROUTE, json!({ "i": i }))
            .await
            .expect("opening a stream failed");
        streams.push(stream);
    }
    for stream in &mut streams {
        let first = stream.next().await;
        assert!(
            matches!(first, Some(Ok(_))),
            "a stream ended without a value: {first:?}"
        );
    }
    let open = started.elapsed();
    settle().await;
    let after = resident_bytes();
    std::hint::black_box(&streams);
    MemoryRound {
        open,
        rss_growth: after.saturating_sub(before),
    }
}
