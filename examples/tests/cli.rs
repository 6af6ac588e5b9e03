//! Runs the `askless` command-line client against an in-process mock server and checks its
//! output and exit codes.

use std::process::Output;
use std::time::Duration;

use askless_examples::{EmbeddedServer, ExampleApp};
use askless_testkit::route_sets::DemoOptions;
use askless_testkit::{Route, RouteError};
use serde_json::{Value, json};
use tokio::process::Command;

/// Upper bound for one run of the client.
const RUN_LIMIT: Duration = Duration::from_secs(60);

const OWNER: &str = r#"{"Authorization": "Bearer abcd"}"#;

async fn askless(args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_askless"));
    command.args(args).kill_on_drop(true).env_remove("RUST_LOG");
    tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("askless {args:?} did not end within {RUN_LIMIT:?}"))
        .expect("the askless binary could not be started")
}

fn stdout_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_exit(output: &Output, code: i32) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout_of(output),
        stderr_of(output)
    );
}

/// Parses every line of standard output as JSON.
fn json_lines(output: &Output) -> Vec<Value> {
    stdout_of(output)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|error| panic!("{line:?}: {error}")))
        .collect()
}

async fn catalog_server() -> EmbeddedServer {
    EmbeddedServer::start(ExampleApp::Catalog).await.unwrap()
}

/// Returns a URL on a loopback port where nothing listens.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    drop(listener);
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_prints_output_as_json() {
    let server = catalog_server().await;
    let output = askless(&["read", "--url", &server.url(), "--route", "product-list"]).await;
    assert_exit(&output, 0);
    assert_eq!(json_lines(&output), vec![json!([])]);
    assert!(stderr_of(&output).contains("connected to ws://127.0.0.1:"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_sends_params() {
    let server = catalog_server().await;
    let url = server.url();
    let body = r#"{"id": null, "name": "Mouse", "price": 15}"#;
    let created = [
        "create",
        "--url",
        &url,
        "--route",
        "product",
        "--body",
        body,
        "--credential",
        OWNER,
    ];
    assert_exit(&askless(&created).await, 0);

    let params = r#"{"search": "keyboard", "reversed": false}"#;
    let output = askless(&[
        "read",
        "--url",
        &url,
        "--route",
        "product-list",
        "--params",
        params,
    ])
    .await;
    assert_exit(&output, 0);
    assert_eq!(json_lines(&output), vec![json!([])]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_prints_stored_product() {
    let server = catalog_server().await;
    let body = r#"{"id": null, "name": "Mouse", "price": 15}"#;
    let args = [
        "create",
        "--url",
        &server.url(),
        "--route",
        "product",
        "--body",
        body,
        "--credential",
        OWNER,
    ];
    let output = askless(&args).await;
    assert_exit(&output, 0);
    assert_eq!(
        json_lines(&output),
        vec![json!({"id": 1, "name": "Mouse", "price": 15})]
    );
    assert!(stderr_of(&output).contains("authenticated as user 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_prints_output() {
    let server = catalog_server().await;
    server
        .server()
        .route(Route::update("profile").handler(|ctx| async move { Ok(Some(json!({"saved": ctx.body}))) }));
    let args = [
        "update",
        "--url",
        &server.url(),
        "--route",
        "profile",
        "--body",
        r#"{"name": "Ada"}"#,
    ];
    let output = askless(&args).await;
    assert_exit(&output, 0);
    assert_eq!(json_lines(&output), vec![json!({"saved": {"name": "Ada"}})]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_prints_removed_product() {
    let server = catalog_server().await;
    let url = server.url();
    let body = r#"{"id": null, "name": "Mouse", "price": 15}"#;
    let created = [
        "create",
        "--url",
        &url,
        "--route",
        "product",
        "--body",
        body,
        "--credential",
        OWNER,
    ];
    assert_exit(&askless(&created).await, 0);

    let args = [
        "delete",
        "--url",
        &url,
        "--route",
        "product",
        "--params",
        r#"{"id": 1}"#,
        "--credential",
        OWNER,
    ];
    let output = askless(&args).await;
    assert_exit(&output, 0);
    assert_eq!(
        json_lines(&output),
        vec![json!({"id": 1, "name": "Mouse", "price": 15})]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_prints_count_values() {
    let mut options = DemoOptions::default();
    options.random_number_interval = Some(Duration::from_millis(50));
    let server = EmbeddedServer::start_with(ExampleApp::RandomNumbers, options)
        .await
        .unwrap();
    let args = [
        "stream",
        "--url",
        &server.url(),
        "--route",
        "generated-random-number",
        "--count",
        "3",
    ];
    let output = askless(&args).await;
    assert_exit(&output, 0);
    let values = json_lines(&output);
    assert_eq!(values.len(), 3, "{values:?}");
    for value in values {
        assert!(value["currentRandomNumber"].is_i64(), "{value}");
        assert!(value["generatedAtTimestamp"].is_i64(), "{value}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_continues_across_reconnect() {
    let mut options = DemoOptions::default();
    options.random_number_interval = Some(Duration::from_millis(100));
    let server = EmbeddedServer::start_with(ExampleApp::RandomNumbers, options)
        .await
        .unwrap();
    let args = [
        "stream",
        "--url",
        &server.url(),
        "--route",
        "generated-random-number",
        "--count",
        "20",
    ];
    let mut command = Command::new(env!("CARGO_BIN_EXE_askless"));
    command
        .args(args)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn().unwrap();

    // Drop the connection once the stream runs; the client reconnects and listens again.
    let handle = server.server().handle();
    handle
        .wait_until(
            |server| server.listener_count("generated-random-number") > 0,
            RUN_LIMIT,
        )
        .await
        .unwrap();
    handle.faults().drop_connections();

    let output = tokio::time::timeout(RUN_LIMIT, child.wait_with_output())
        .await
        .expect("the stream did not end")
        .unwrap();
    assert_exit(&output, 0);
    assert_eq!(json_lines(&output).len(), 20);
    let stderr = stderr_of(&output);
    assert!(stderr.contains("connection lost"), "{stderr}");
    assert!(stderr.contains("reconnected; the stream continues"), "{stderr}");
    let mut connections: Vec<u64> = handle
        .received_frames()
        .iter()
        .map(|frame| frame.connection.get())
        .collect();
    connections.dedup();
    assert!(connections.len() >= 2, "one connection only: {connections:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_failure_exits_3() {
    let output = askless(&["read", "--url", &closed_port_url(), "--route", "product-list"]).await;
    assert_exit(&output, 3);
    assert!(stdout_of(&output).is_empty());
    assert!(
        stderr_of(&output).contains("cannot reach the server"),
        "{}",
        stderr_of(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeout_exits_4() {
    let server = catalog_server().await;
    server
        .server()
        .route(Route::read("silent").handler(|_ctx| async move { Err(RouteError::no_answer()) }));
    let args = [
        "read",
        "--url",
        &server.url(),
        "--route",
        "silent",
        "--timeout",
        "0.5",
    ];
    let output = askless(&args).await;
    assert_exit(&output, 4);
    assert!(stdout_of(&output).is_empty());
    assert!(
        stderr_of(&output).contains("no response from the server on `silent`"),
        "{}",
        stderr_of(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_credential_exits_5() {
    let server = catalog_server().await;
    let credential = r#"{"Authorization": "Bearer wrong"}"#;
    let args = [
        "read",
        "--url",
        &server.url(),
        "--route",
        "product-list",
        "--credential",
        credential,
    ];
    let output = askless(&args).await;
    assert_exit(&output, 5);
    let stderr = stderr_of(&output);
    assert!(stderr.contains("INVALID_CREDENTIAL"), "{stderr}");
    assert!(
        !stderr.contains("Bearer wrong"),
        "the credential was printed: {stderr}"
    );
    assert!(stdout_of(&output).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_authentication_exits_5() {
    let server = catalog_server().await;
    let body = r#"{"id": null, "name": "Mouse", "price": 15}"#;
    let output = askless(&[
        "create",
        "--url",
        &server.url(),
        "--route",
        "product",
        "--body",
        body,
    ])
    .await;
    assert_exit(&output, 5);
    assert!(
        stderr_of(&output).contains("PENDING_AUTHENTICATION"),
        "{}",
        stderr_of(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_code_exits_6() {
    let server = catalog_server().await;
    let args = [
        "delete",
        "--url",
        &server.url(),
        "--route",
        "product",
        "--credential",
        OWNER,
    ];
    let output = askless(&args).await;
    assert_exit(&output, 6);
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains(r#"BAD_REQUEST: Please, inform "id" field on params"#),
        "{stderr}"
    );
    assert!(stdout_of(&output).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_route_exits_6() {
    let server = catalog_server().await;
    let output = askless(&["read", "--url", &server.url(), "--route", "no-such-route"]).await;
    assert_exit(&output, 6);
    assert!(
        stderr_of(&output).contains("INVALID_ROUTE"),
        "{}",
        stderr_of(&output)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_params_exit_2_naming_flag() {
    let url = closed_port_url();
    for params in ["{not json", "[1, 2]"] {
        let output = askless(&["read", "--url", &url, "--route", "r", "--params", params]).await;
        assert_exit(&output, 2);
        assert!(stderr_of(&output).contains("--params"), "{}", stderr_of(&output));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_body_exits_2_naming_flag() {
    let url = closed_port_url();
    for body in ["{", "null"] {
        let output = askless(&["create", "--url", &url, "--route", "r", "--body", body]).await;
        assert_exit(&output, 2);
        assert!(stderr_of(&output).contains("--body"), "{}", stderr_of(&output));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_credential_is_not_echoed() {
    let secret = r#"{"Authorization": "Bearer s3cr3t"#;
    let args = [
        "read",
        "--url",
        &closed_port_url(),
        "--route",
        "r",
        "--credential",
        secret,
    ];
    let output = askless(&args).await;
    assert_exit(&output, 2);
    let stderr = stderr_of(&output);
    assert!(stderr.contains("--credential"), "{stderr}");
    assert!(!stderr.contains("s3cr3t"), "the credential was printed: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_never_printed_on_success() {
    let server = catalog_server().await;
    let args = [
        "read",
        "--url",
        &server.url(),
        "--route",
        "product-list",
        "--credential",
        OWNER,
    ];
    let output = askless(&args).await;
    assert_exit(&output, 0);
    assert!(!stdout_of(&output).contains("abcd"));
    assert!(!stderr_of(&output).contains("abcd"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2() {
    let cases: [&[&str]; 4] = [
        &["read", "--route", "r"],
        &["read", "--url", "http://127.0.0.1:1", "--route", "r"],
        &[
            "read",
            "--url",
            "ws://127.0.0.1:1",
            "--route",
            "r",
            "--timeout",
            "0",
        ],
        &["frobnicate"],
    ];
    for args in cases {
        let output = askless(args).await;
        assert_exit(&output, 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_documents_flags_and_exit_codes() {
    let output = askless(&["--help"]).await;
    assert_exit(&output, 0);
    let help = stdout_of(&output);
    for line in [
        "3  connection failure",
        "4  timeout",
        "5  authentication failure",
        "6  the server",
    ] {
        assert!(help.contains(line), "{help}");
    }

    let output = askless(&["stream", "--help"]).await;
    let help = stdout_of(&output);
    for flag in [
        "--url <URL>",
        "--route <ROUTE>",
        "--params <JSON>",
        "--credential <JSON>",
        "--count <N>",
    ] {
        assert!(help.contains(flag), "{flag}: {help}");
    }
    for default in [
        "[default: {}]",
        "[default: 10]",
        "[default: no authentication]",
        "[default: none",
    ] {
        assert!(help.contains(default), "{default}: {help}");
    }
}
