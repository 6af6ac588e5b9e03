//! Bounded soak test: two clients chat through the mock server for a few minutes, with idle
//! gaps, dropped connections and server restarts, then the test checks that tasks, open file
//! descriptors and memory are back near their starting level.
//!
//! Ignored by default. Run it with
//! `cargo test -p askless-client --test soak -- --ignored --nocapture`; set
//! `ASKLESS_SOAK_SECS` to change the duration (default 120 seconds).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use askless_client::{AsklessClient, ReadStream};
use askless_testkit::{MockServer, Notify, Route};
use futures::StreamExt;
use serde_json::{Value, json};

/// Messages the chat route keeps; older ones are dropped.
const HISTORY: usize = 50;

/// Extra tasks allowed at the end: timers and connection tasks that are mid-replacement.
const TASK_TOLERANCE: usize = 4;

/// Extra file descriptors allowed at the end: a socket being replaced on each side.
const FD_TOLERANCE: usize = 6;

/// Extra resident memory allowed at the end, in KiB. Allocator caches keep some freed memory.
const RSS_TOLERANCE_KIB: u64 = 16 * 1024;

#[derive(Debug, Clone, Copy)]
struct Usage {
    tasks: usize,
    fds: usize,
    rss_kib: u64,
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

fn usage() -> Usage {
    Usage {
        tasks: tokio::runtime::Handle::current().metrics().num_alive_tasks(),
        fds: open_fds(),
        rss_kib: rss_kib(),
    }
}

fn soak_duration() -> Duration {
    let secs = std::env::var("ASKLESS_SOAK_SECS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(120);
    Duration::from_secs(secs)
}

async fn chat_server(history: Arc<Mutex<Vec<Value>>>) -> MockServer {
    let server = MockServer::builder().well_behaved().start().await;
    server
        .route(Route::read("chat/messages").handler({
            let history = Arc::clone(&history);
            move |_ctx| {
                let messages = Value::Array(history.lock().unwrap().clone());
                async move { Ok(Some(messages)) }
            }
        }))
        .route(Route::create("chat/messages").handler({
            let history = Arc::clone(&history);
            let handle = server.handle();
            move |ctx| {
                {
                    let mut history = history.lock().unwrap();
                    history.push(ctx.body.clone());
                    let excess = history.len().saturating_sub(HISTORY);
                    history.drain(..excess);
                }
                handle.notify_changes("chat/messages", Notify::all());
                async move { Ok(Some(json!({"stored": true}))) }
            }
        }));
    server
}

/// Takes every value already buffered in `stream`, without waiting, and returns the last one.
fn latest(stream: &mut ReadStream, seen: &mut u64) -> Option<Value> {
    let mut last = None;
    while let Some(Some(item)) = futures::FutureExt::now_or_never(stream.next()) {
        if let Ok(value) = item {
            *seen += 1;
            last = Some(value);
        }
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "soak test of a few minutes; run with --ignored"]
async fn chat_soak_returns_to_baseline() {
    let duration = soak_duration();
    let history = Arc::new(Mutex::new(Vec::new()));
    let server = chat_server(Arc::clone(&history)).await;
    let alice = AsklessClient::builder(server.url()).connect().await.unwrap();
    let bob = AsklessClient::builder(server.url()).connect().await.unwrap();
    let mut alice_stream = alice.read_stream("chat/messages", ()).await.unwrap();
    let mut bob_stream = bob.read_stream("chat/messages", ()).await.unwrap();
    alice
        .create("chat/messages", json!({"from": "alice", "n": 0}), ())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (mut alice_seen, mut bob_seen) = (0, 0);
    latest(&mut alice_stream, &mut alice_seen);
    latest(&mut bob_stream, &mut bob_seen);
    let start = usage();

    let started = Instant::now();
    let mut sent = 0u64;
    let mut failed = 0u64;
    let mut drops = 0u64;
    let mut restarts = 0u64;
    let mut round = 0u64;
    while started.elapsed() < duration {
        round += 1;
        for (client, from) in [(&alice, "alice"), (&bob, "bob")] {
            match client
                .create("chat/messages", json!({"from": from, "n": round}), ())
                .await
            {
                Ok(_) => sent += 1,
                Err(_) => failed += 1,
            }
        }
        latest(&mut alice_stream, &mut alice_seen);
        latest(&mut bob_stream, &mut bob_seen);
        if round % 50 == 0 {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        if round % 200 == 0 {
            server.faults().drop_connections();
            drops += 1;
        }
        if round % 700 == 0 {
            server.restart().await;
            restarts += 1;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Let reconnections, retransmissions and the stop grace of streams settle.
    tokio::time::sleep(Duration::from_secs(15)).await;
    alice
        .create("chat/messages", json!({"from": "alice", "n": "last"}), ())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let expected = Value::Array(history.lock().unwrap().clone());
    let alice_last = latest(&mut alice_stream, &mut alice_seen);
    let bob_last = latest(&mut bob_stream, &mut bob_seen);
    let end = usage();

    let stats = alice.stats();
    println!(
        "soak: {:?}, rounds {round}, creates ok {sent}, failed {failed}, drops {drops}, restarts {restarts}",
        duration
    );
    println!("soak: stream values seen: alice {alice_seen}, bob {bob_seen}");
    println!("soak: alice stats {stats:?}");
    println!(
        "soak: start tasks {} fds {} rss {} KiB; end tasks {} fds {} rss {} KiB",
        start.tasks, start.fds, start.rss_kib, end.tasks, end.fds, end.rss_kib
    );

    assert_eq!(
        alice_last.as_ref(),
        Some(&expected),
        "alice's stream ends on the server's history"
    );
    assert_eq!(
        bob_last.as_ref(),
        Some(&expected),
        "bob's stream ends on the server's history"
    );
    assert!(sent > 0, "messages went through");
    assert!(
        end.tasks <= start.tasks + TASK_TOLERANCE,
        "tasks grew from {} to {}",
        start.tasks,
        end.tasks
    );
    assert!(
        end.fds <= start.fds + FD_TOLERANCE,
        "fds grew from {} to {}",
        start.fds,
        end.fds
    );
    assert!(
        end.rss_kib <= start.rss_kib + RSS_TOLERANCE_KIB,
        "RSS grew from {} KiB to {} KiB",
        start.rss_kib,
        end.rss_kib
    );

    alice.close().await;
    bob.close().await;
    drop(server);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let closed = usage();
    println!(
        "soak: after close tasks {} fds {} rss {} KiB",
        closed.tasks, closed.fds, closed.rss_kib
    );
}
