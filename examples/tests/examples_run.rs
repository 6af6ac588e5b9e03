//! Runs each example binary to completion, against its embedded server and with `--url`
//! against a mock server started by the test.

use std::process::Output;
use std::time::Duration;

use askless_examples::{EmbeddedServer, ExampleApp};
use tokio::process::Command;

/// Upper bound for one run of an example; each ends by itself within a few seconds.
const RUN_LIMIT: Duration = Duration::from_secs(90);

async fn run_binary(path: &str, args: &[&str]) -> Output {
    let mut command = Command::new(path);
    command.args(args).kill_on_drop(true);
    tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{path} {args:?} did not end within {RUN_LIMIT:?}"))
        .unwrap_or_else(|error| panic!("{path} could not be started: {error}"))
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "exit status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout_of(output),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn assert_catalog_output(stdout: &str) {
    assert!(stdout.contains("signed in as user 1"), "{stdout}");
    assert!(stdout.contains("added Keyboard (id 1, price 30)"), "{stdout}");
    assert!(
        stdout.contains("products: Keyboard (id 1, price 30), Mouse (id 2, price 15)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("newest first: Mouse (id 2, price 15), Keyboard (id 1, price 30)"),
        "{stdout}"
    );
    assert!(stdout.contains("removed Keyboard (id 1, price 30)"), "{stdout}");
    assert!(stdout.contains("[visitor] error: sign-in rejected"), "{stdout}");
    assert!(stdout.contains("INVALID_CREDENTIAL"), "{stdout}");
    assert!(stdout.contains("[visitor] error: permission denied"), "{stdout}");
    assert!(stdout.contains("PENDING_AUTHENTICATION"), "{stdout}");
    assert!(stdout.trim_end().ends_with("done"), "{stdout}");
}

fn assert_chat_output(stdout: &str) {
    assert!(stdout.contains("[blue sees] blue: Hi, blue here"), "{stdout}");
    assert!(stdout.contains("[green sees] blue: Hi, blue here"), "{stdout}");
    assert!(
        stdout.contains("[blue sees] green: Hello blue, green here"),
        "{stdout}"
    );
    assert!(stdout.contains("[green sees] blue: Nice to meet you"), "{stdout}");
    assert!(
        stdout.contains("[blue sees] blue: server said: green has been disconnected"),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("[blue] leaves the chat"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_runs_on_embedded_server() {
    let output = run_binary(env!("CARGO_BIN_EXE_catalog"), &[]).await;
    assert_success(&output);
    let stdout = stdout_of(&output);
    assert!(
        stdout.starts_with("started an embedded mock server at ws://127.0.0.1:"),
        "{stdout}"
    );
    assert_catalog_output(&stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_runs_with_url() {
    let server = EmbeddedServer::start(ExampleApp::Catalog).await.unwrap();
    let url = server.url();
    let output = run_binary(env!("CARGO_BIN_EXE_catalog"), &["--url", &url]).await;
    assert_success(&output);
    let stdout = stdout_of(&output);
    assert!(stdout.starts_with(&format!("connecting to {url}")), "{stdout}");
    assert_catalog_output(&stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_runs_on_embedded_server() {
    let output = run_binary(env!("CARGO_BIN_EXE_chat"), &[]).await;
    assert_success(&output);
    assert_chat_output(&stdout_of(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_runs_with_url() {
    let server = EmbeddedServer::start(ExampleApp::Chat).await.unwrap();
    let output = run_binary(env!("CARGO_BIN_EXE_chat"), &["--url", &server.url()]).await;
    assert_success(&output);
    assert_chat_output(&stdout_of(&output));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_numbers_runs_on_embedded_server() {
    let output = run_binary(env!("CARGO_BIN_EXE_random_numbers"), &["--count", "2"]).await;
    assert_success(&output);
    let stdout = stdout_of(&output);
    assert!(stdout.contains("random number 1 of 2: "), "{stdout}");
    assert!(stdout.contains("random number 2 of 2: "), "{stdout}");
    assert!(!stdout.contains("random number 3"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_numbers_runs_with_url() {
    let server = EmbeddedServer::start(ExampleApp::RandomNumbers).await.unwrap();
    let args = ["--url", &server.url(), "--count", "3"];
    let output = run_binary(env!("CARGO_BIN_EXE_random_numbers"), &args).await;
    assert_success(&output);
    let stdout = stdout_of(&output);
    let numbers: Vec<i64> = stdout
        .lines()
        .filter_map(|line| line.split_once(" of 3: "))
        .map(|(_, number)| number.parse().unwrap())
        .collect();
    assert_eq!(numbers.len(), 3, "{stdout}");
    assert!(
        numbers.iter().all(|number| (0..=1000).contains(number)),
        "{numbers:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_fail_on_unreachable_url() {
    // A port that was free a moment ago: nothing listens on it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    drop(listener);
    for path in [env!("CARGO_BIN_EXE_catalog"), env!("CARGO_BIN_EXE_chat")] {
        let output = run_binary(path, &["--url", &url]).await;
        assert_eq!(output.status.code(), Some(1), "{path}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("connection refused"), "{path}: {stderr}");
        assert!(!stderr.contains("panicked"), "{path}: {stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_document_their_flags() {
    for path in [
        env!("CARGO_BIN_EXE_catalog"),
        env!("CARGO_BIN_EXE_chat"),
        env!("CARGO_BIN_EXE_random_numbers"),
    ] {
        let output = run_binary(path, &["--help"]).await;
        assert_success(&output);
        let help = stdout_of(&output);
        assert!(help.contains("--url <URL>"), "{path}: {help}");
        assert!(
            help.contains("[default: an embedded mock server]"),
            "{path}: {help}"
        );
    }
    let output = run_binary(env!("CARGO_BIN_EXE_random_numbers"), &["--help"]).await;
    assert!(stdout_of(&output).contains("[default: 5]"));
}
