//! Replays the client side of the sessions recorded against the three Askless example servers
//! (random-numbers, simple-chat and catalog) on the mock with the demo route set, and compares
//! every server frame with the recorded one. Random numbers, clock readings and the random part
//! of `serverId` are left out of the comparison.
//!
//! The recordings count time from just before the example server process started, and the
//! servers' timers (a new random number every second, a generated product every 20 s) run from
//! the moment the process was ready, about 120 ms later. Each test starts the replay clock that
//! long before the mock, so the mock's timers fall where the recorded ones did. Time is paused.

mod replay;

use std::time::Duration;

use askless_testkit::MockServer;
use askless_testkit::route_sets::{self, DemoOptions};
use askless_transport::url::Url;
use tokio::time::Instant;

use replay::driver::Replay;
use replay::transcript::{Transcript, upstream_examples_dir};

/// `waitForAuthenticationTimeoutInMs` of the random-numbers and simple-chat servers, the
/// library default.
const LIBRARY_WAIT: Duration = Duration::from_millis(4000);

/// Starts a mock with the demo route set, advertising `wait_for_authentication` as
/// `waitForAuthenticationTimeoutInMs`, and replays `example`, whose recorded server timers ran
/// `timer_offset` after the recording's time 0.
async fn replay_on_demo_mock(example: &str, timer_offset: Duration, wait_for_authentication: Duration) {
    let mut config = route_sets::demo::config();
    config.wait_for_authentication_timeout = wait_for_authentication;
    let server = MockServer::builder().config(config).start().await;
    let _timers = route_sets::install_demo(&server, DemoOptions::default());
    let start = Instant::now()
        .checked_sub(timer_offset)
        .expect("the clock is past the timer offset");

    let url = Url::parse(&server.url()).expect("the mock's URL is valid");
    let transcript = Transcript::read(&upstream_examples_dir().join(format!("{example}.jsonl")));
    if let Err(error) = Replay::new(url).run_from(start, &transcript).await {
        panic!("example {example} differs from the recording: {error}");
    }
}

/// New numbers were pushed 133 ms past each second of the recording.
#[tokio::test(start_paused = true)]
async fn random_numbers_example() {
    replay_on_demo_mock("random-numbers", Duration::from_millis(133), LIBRARY_WAIT).await;
}

#[tokio::test(start_paused = true)]
async fn simple_chat_example() {
    replay_on_demo_mock("simple-chat", Duration::from_millis(100), LIBRARY_WAIT).await;
}

/// The generated product was pushed at 20.120 s of the recording. The catalog server advertises
/// `waitForAuthenticationTimeoutInMs` 0, where the demo route set keeps the library default.
#[tokio::test(start_paused = true)]
async fn catalog_example() {
    replay_on_demo_mock("catalog", Duration::from_millis(120), Duration::ZERO).await;
}
