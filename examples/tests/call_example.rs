//! Runs the `call` example binary to completion, against its embedded server and with `--url`
//! against a mock server started by the test.

use std::process::Output;
use std::time::Duration;

use askless_examples::{EmbeddedServer, ExampleApp};
use tokio::process::Command;

/// Upper bound for one run; the example ends by itself after about 3 s.
const RUN_LIMIT: Duration = Duration::from_secs(90);

async fn run_call(args: &[&str]) -> Output {
    let path = env!("CARGO_BIN_EXE_call");
    let mut command = Command::new(path);
    command.args(args).kill_on_drop(true);
    tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{path} {args:?} did not end within {RUN_LIMIT:?}"))
        .unwrap_or_else(|error| panic!("{path} could not be started: {error}"))
}

/// Checks the exit status and the printed steps of one run, and returns its standard output.
fn assert_call_output(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "exit status {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("[caller] signed in as user 1"), "{stdout}");
    assert!(stdout.contains("[callee] signed in as user 2"), "{stdout}");
    assert!(
        stdout.contains(r#"[callee] incoming call from user 1 with {"callerName":"Ana","videoCall":true}"#),
        "{stdout}"
    );
    assert!(
        stdout.contains(r#"[caller] the call was accepted with {"camera":"on"}"#),
        "{stdout}"
    );
    for side in ["caller", "callee"] {
        let received = stdout
            .lines()
            .find(|line| line.starts_with(&format!("[{side}] received ")))
            .unwrap_or_else(|| panic!("no packet counts of the {side}:\n{stdout}"));
        assert!(!received.contains(" 0 audio"), "{received}");
        assert!(!received.contains(" 0 video"), "{received}");
    }
    assert!(stdout.contains("[caller] call ended: hung up here"), "{stdout}");
    assert!(stdout.contains("[callee] call ended: "), "{stdout}");
    assert!(stdout.trim_end().ends_with("done"), "{stdout}");
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_runs_on_embedded_server() {
    let output = run_call(&[]).await;

    let stdout = assert_call_output(&output);
    assert!(
        stdout.starts_with("started an embedded mock server at ws://127.0.0.1:"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_runs_against_given_url() {
    let server = EmbeddedServer::start(ExampleApp::Call).await.unwrap();

    let output = run_call(&["--url", &server.url()]).await;

    let stdout = assert_call_output(&output);
    assert!(!stdout.contains("started an embedded mock server"), "{stdout}");
    let calls_received = server
        .server()
        .received_frames()
        .iter()
        .filter(|frame| frame.route().as_deref() == Some("askless-internal/call/request"))
        .count();
    assert_eq!(calls_received, 1, "call requests the server received");
}
