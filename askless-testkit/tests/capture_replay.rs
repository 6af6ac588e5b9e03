//! Runs the capture program that recorded the golden transcripts (Node.js and the `ws` package)
//! against the `askless-mock-server` binary with the reference routes, and compares what it
//! records with the recording made against the Askless server 2.0.3.
//!
//! The run takes about three minutes of wall time, mostly the retransmission scenario waiting
//! 48 s for the server to give up. Timers are not controlled here, so pushed counter values are
//! left out and retransmissions are compared by count. The scenario that needs the real server
//! to die is skipped.
//!
//! Requirements: `node` (18 or newer) and `npm` on the `PATH`, access to the npm registry for
//! `npm ci`, and the capture program in `DEFAULT_CAPTURE_DIR` or in the directory named by
//! `ASKLESS_CAPTURE_DIR`. The test fails when node or npm is missing. When the capture program
//! is missing it fails under `CI` and otherwise prints that it did not run, because a clone of
//! the repository alone does not contain the program.

mod replay;

use std::fs;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use replay::compare::compare_timing_tolerant;
use replay::transcript::Transcript;

const BINARY: &str = env!("CARGO_BIN_EXE_askless-mock-server");
/// Directory of the capture program relative to this crate, unless `ASKLESS_CAPTURE_DIR` names
/// another: the project's `shared` folder lies beside the repository checkout.
const DEFAULT_CAPTURE_DIR: &str = "../../shared/askless-reference/capture";
/// Files of the capture program the run needs (node_modules is installed by `npm ci`).
const CAPTURE_FILES: [&str; 4] = ["capture.js", "lib.js", "package.json", "package-lock.json"];
/// Every scenario that fits a mock, in the recorded order; later ones rely on the data earlier
/// ones created (product and note ids).
const SCENARIOS: [&str; 17] = [
    "a", "b", "c", "d", "e", "f", "g1", "g2", "g3", "g4", "g5", "h", "i", "j", "k1", "k2", "k3",
];

/// Listeners whose values depend on how fast the client sends its next request. Scenario d
/// authenticates several times in a row, and each re-push after an authentication shows the
/// record's state when the notification runs, about 1 ms after the confirmation. The Node.js
/// server and the mock respond at different speeds, so they can lose that race differently.
const RACING_LISTENERS: [&str; 1] = ["LIS-d-A-me"];

const NPM_LIMIT: Duration = Duration::from_secs(300);
const READY_LIMIT: Duration = Duration::from_secs(30);
const CAPTURE_LIMIT: Duration = Duration::from_secs(900);

/// A child process killed on drop, so a failing test leaves nothing running.
struct Guarded(Child);

impl Drop for Guarded {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let path = std::env::temp_dir().join(format!("askless-capture-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path)
            .unwrap_or_else(|error| panic!("creating {} failed: {error}", path.display()));
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Fails with an installation hint when `tool --version` does not run.
fn require_tool(tool: &str, hint: &str) {
    match Command::new(tool).arg("--version").output() {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!("`{tool} --version` failed ({}); {hint}", output.status),
        Err(error) => panic!("`{tool}` is not available ({error}); {hint}"),
    }
}

/// Runs `command` to completion within `limit`, with its output in `log`; fails on a non-zero
/// status or a timeout.
fn run_bounded(mut command: Command, what: &str, log: &Path, limit: Duration) {
    let log_file =
        fs::File::create(log).unwrap_or_else(|error| panic!("creating {} failed: {error}", log.display()));
    let err_file = log_file.try_clone().expect("cloning the log file handle");
    let child = command
        .stdout(Stdio::from(log_file))
        .stderr(Stdio::from(err_file))
        .spawn()
        .unwrap_or_else(|error| panic!("starting {what} failed: {error}"));
    let mut child = Guarded(child);
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child
            .0
            .try_wait()
            .unwrap_or_else(|error| panic!("waiting for {what} failed: {error}"))
        {
            if status.success() {
                return;
            }
            let output = fs::read_to_string(log).unwrap_or_default();
            panic!("{what} failed with {status}; its output:\n{output}");
        }
        if Instant::now() >= deadline {
            let output = fs::read_to_string(log).unwrap_or_default();
            panic!("{what} did not finish within {limit:?}; its output so far:\n{output}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts the binary on a free loopback port and returns it with its URL.
fn start_mock() -> (Guarded, String) {
    let mut child = Command::new(BINARY)
        .args(["--port", "0", "--routes", "reference", "--notify-grace-ms", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|error| panic!("starting {BINARY} failed: {error}"));
    let stdout = child.stdout.take().expect("the mock's stdout is piped");
    let mut child = Guarded(child);
    let (lines, ready) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let line = ready
        .recv_timeout(READY_LIMIT)
        .unwrap_or_else(|error| panic!("the mock printed no ready line within {READY_LIMIT:?}: {error}"));
    let url = line
        .split_whitespace()
        .find(|word| word.starts_with("ws://127.0.0.1:"))
        .unwrap_or_else(|| panic!("the ready line has no loopback URL: {line:?}"))
        .to_owned();
    assert!(
        matches!(child.0.try_wait(), Ok(None)),
        "the mock exited right after starting"
    );
    (child, url)
}

/// Returns the capture program's directory, or `None` when it is absent outside CI.
///
/// The capture program belongs to the project's reference material, which lies beside the
/// repository checkout and is not part of the repository. A clone without it cannot run this
/// comparison, so the test reports that it did not run; under `CI` the material is always
/// present, and its absence fails the test.
fn capture_directory() -> Option<PathBuf> {
    let source = std::env::var_os("ASKLESS_CAPTURE_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join(DEFAULT_CAPTURE_DIR),
        PathBuf::from,
    );
    if source.join("capture.js").is_file() {
        return Some(source);
    }
    let message = format!(
        "the capture program is not at {}: set ASKLESS_CAPTURE_DIR to the folder of capture.js \
         (askless-reference/capture of the project's reference material)",
        source.display()
    );
    assert!(std::env::var_os("CI").is_none(), "{message}");
    eprintln!("NOT RUN: capture_program_matches_recording, because {message}");
    None
}

#[test]
fn capture_program_matches_recording() {
    let Some(source) = capture_directory() else {
        return;
    };
    require_tool("node", "install Node.js 18 or newer to run the capture program");
    require_tool(
        "npm",
        "install npm (it comes with Node.js) to fetch the capture program's `ws` package",
    );

    let work = TempDir::new();
    for file in CAPTURE_FILES {
        let from = source.join(file);
        fs::copy(&from, work.0.join(file)).unwrap_or_else(|error| {
            panic!(
                "copying {} failed: {error}; set ASKLESS_CAPTURE_DIR to the directory of capture.js",
                from.display()
            )
        });
    }

    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund"]).current_dir(&work.0);
    run_bounded(npm, "npm ci", &work.0.join("npm.log"), NPM_LIMIT);

    let (_mock, url) = start_mock();
    let out_dir = work.0.join("out");
    let mut capture = Command::new("node");
    capture
        .args(["capture.js", "--only", &SCENARIOS.join(",")])
        .env("ASKLESS_URL", &url)
        .env("CAPTURE_OUT_DIR", &out_dir)
        .current_dir(&work.0);
    run_bounded(
        capture,
        "node capture.js",
        &work.0.join("capture.log"),
        CAPTURE_LIMIT,
    );

    let mut problems = Vec::new();
    for scenario in SCENARIOS {
        let recorded = Transcript::recorded(scenario);
        let file_name = recorded.path.file_name().expect("a transcript file name");
        let produced_path = out_dir.join(file_name);
        if !produced_path.exists() {
            problems.push(format!(
                "scenario {scenario}: the capture wrote no {}",
                produced_path.display()
            ));
            continue;
        }
        let produced = Transcript::read(&produced_path);
        for problem in compare_timing_tolerant(&recorded, &produced, &RACING_LISTENERS) {
            problems.push(format!("scenario {scenario}: {problem}"));
        }
    }
    assert!(
        problems.is_empty(),
        "the capture against the mock differs from the recording:\n{}",
        problems.join("\n")
    );
}
