//! The `askless-mock-server` binary: start-up line, a configure handshake, a demo route, the
//! help text, the loopback restriction and shutdown on SIGTERM.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use askless_transport::{Connection, Transport, WebSocketTransport, url::Url};
use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_askless-mock-server");
/// Bound on every wait of these tests.
const WAIT: Duration = Duration::from_secs(20);

/// A running binary, killed on drop if a test failed before stopping it.
struct RunningServer {
    child: Child,
    url: Url,
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts the binary on a free loopback port and waits for its ready line.
fn start(extra_args: &[&str]) -> RunningServer {
    let mut child = Command::new(BINARY)
        .args(["--port", "0"])
        .args(extra_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("starting {BINARY} failed: {error}"));
    let stdout = child.stdout.take().expect("stdout is piped");
    let (lines, ready) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let line = match ready.recv_timeout(WAIT) {
        Ok(line) => line,
        Err(error) => {
            let _ = child.kill();
            panic!("the binary printed no ready line within {WAIT:?}: {error}");
        }
    };
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("ws://"))
        .unwrap_or_else(|| panic!("the ready line has no ws:// URL: {line:?}"));
    RunningServer {
        url: Url::parse(url).expect("the printed URL is valid"),
        child,
    }
}

async fn recv_json(connection: &mut Connection) -> Value {
    let text = tokio::time::timeout(WAIT, connection.recv())
        .await
        .expect("a frame within the wait bound")
        .expect("the connection is open");
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// Sends SIGTERM through the system's `kill` command and waits for the exit status.
fn terminate(server: &mut RunningServer) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(status.success(), "kill -TERM failed: {status}");
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = server.child.try_wait().expect("reading the exit status") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the binary did not exit within {WAIT:?} of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn binary_serves_handshake_and_demo() {
    let mut server = start(&[]);
    assert_eq!(server.url.host_str(), Some("127.0.0.1"));

    let mut connection = WebSocketTransport::default()
        .connect(&server.url)
        .await
        .expect("connecting to the binary");
    assert_eq!(recv_json(&mut connection).await, json!("welcome"));

    let configure = json!({
        "clientRequestId": "REQ-_bin-configure", "requestType": "CONFIGURE_CONNECTION",
        "_class_type_configureconnectionrequest": "_", "clientIdInternalApp": "bin-test",
        "clientType": "flutter"
    });
    connection
        .send(configure.to_string())
        .await
        .expect("sending configure");
    let receipt = recv_json(&mut connection).await;
    assert_eq!(receipt["output"], json!("RECEIVED"));
    assert_eq!(receipt["clientRequestId"], json!("REQ-_bin-configure"));
    let response = recv_json(&mut connection).await;
    assert_eq!(response["dataType"], json!("ConfigureConnectionResponse"));
    let configuration = &response["output"]["connectionConfiguration"];
    assert_eq!(configuration["serverVersion"], json!("2.0.3"));
    assert_eq!(configuration["requestTimeoutInMs"], json!(7000));

    let read = json!({
        "clientRequestId": "REQ-_bin-read", "requestType": "READ", "_class_type_read": "_",
        "route": "generated-random-number", "params": null
    });
    connection.send(read.to_string()).await.expect("sending read");
    assert_eq!(recv_json(&mut connection).await["output"], json!("RECEIVED"));
    let value = recv_json(&mut connection).await;
    assert_eq!(value["clientRequestId"], json!("REQ-_bin-read"));
    let number = value["output"]["currentRandomNumber"]
        .as_u64()
        .expect("a random number");
    assert!(number <= 1000, "random number {number} out of range");
    assert!(value["output"]["generatedAtTimestamp"].is_u64());

    let _ = connection.close(1000, "").await;
    let status = terminate(&mut server);
    assert!(status.success(), "the binary exited with {status} after SIGTERM");
}

#[tokio::test]
async fn binary_reference_routes_advertise_timeout() {
    let mut server = start(&["--routes", "reference", "--request-timeout-ms", "1234"]);
    let mut connection = WebSocketTransport::default()
        .connect(&server.url)
        .await
        .expect("connecting to the binary");
    assert_eq!(recv_json(&mut connection).await, json!("welcome"));
    let configure = json!({
        "clientRequestId": "REQ-_bin-configure", "requestType": "CONFIGURE_CONNECTION",
        "_class_type_configureconnectionrequest": "_", "clientIdInternalApp": "bin-test",
        "clientType": "flutter"
    });
    connection
        .send(configure.to_string())
        .await
        .expect("sending configure");
    let _receipt = recv_json(&mut connection).await;
    let response = recv_json(&mut connection).await;
    assert_eq!(
        response["output"]["connectionConfiguration"]["requestTimeoutInMs"],
        json!(1234)
    );

    let read = json!({
        "clientRequestId": "REQ-_bin-products", "requestType": "READ", "_class_type_read": "_",
        "route": "product/all", "params": {"nameContains": "an"}
    });
    connection.send(read.to_string()).await.expect("sending read");
    let _receipt = recv_json(&mut connection).await;
    let products = recv_json(&mut connection).await;
    assert_eq!(
        products["output"],
        json!([{"id": 2, "name": "Banana", "price": 2, "ownerUserId": null}])
    );

    let _ = connection.close(1000, "").await;
    assert!(terminate(&mut server).success());
}

#[test]
fn binary_help_documents_every_flag() {
    let output = Command::new(BINARY)
        .arg("--help")
        .output()
        .expect("running --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for flag in [
        "--port",
        "--host",
        "--routes",
        "--notify-grace-ms",
        "--request-timeout-ms",
        "--counter-interval-ms",
        "--slow-default-delay-ms",
        "--random-number-interval-ms",
        "--catalog-product-interval-ms",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}:\n{help}");
    }
    assert!(help.contains("[default: 127.0.0.1]"), "{help}");
    assert!(help.contains("[default: demo]"), "{help}");
    assert!(help.contains("[default: 3000]"), "{help}");
}

#[test]
fn binary_rejects_non_loopback_host() {
    let output = Command::new(BINARY)
        .args(["--host", "0.0.0.0", "--port", "0"])
        .output()
        .expect("running the binary");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}
