//! Replays the client side of every transcript recorded against the Askless server 2.0.3 (with
//! the reference application) on the mock with the reference route set. Every server frame must
//! equal the recorded one, apart from the random part of `serverId` and the counter values, in
//! the same order on every connection.
//!
//! Time is paused, so the recorded waits (up to 48 s) cost nothing. Each test lets the mock run
//! for a while before the first client frame so that the mock's timers (retransmission every
//! 5 s, liveness every 12.008 s, counter every second, all on grids that start with the server)
//! fall at the same moments of the scenario as the reference server's timers did.
//!
//! The scenario that needs the reference server process to die (malformed frames without the
//! application's guard) is not replayed: the mock stays up by design.

mod replay;

use std::time::Duration;

use askless_testkit::MockServer;
use askless_testkit::route_sets::{self, ReferenceOptions};
use askless_transport::url::Url;

use replay::driver::Replay;
use replay::transcript::Transcript;

/// Server age at the first client frame when no timer phase matters: past the 4 s start-up
/// grace of notifications, like the capture program's 4.5 s wait.
const DEFAULT_AGE: Duration = Duration::from_millis(4600);

/// Starts a mock with the reference route set, waits `server_age`, then replays `scenarios` one
/// after the other on it.
async fn replay_on_reference_mock(scenarios: &[&str], server_age: Duration) {
    let server = MockServer::builder()
        .config(route_sets::reference::config())
        .start()
        .await;
    let _timers = route_sets::install_reference(&server, ReferenceOptions::default());
    tokio::time::sleep(server_age).await;

    let url = Url::parse(&server.url()).expect("the mock's URL is valid");
    for scenario in scenarios {
        let transcript = Transcript::recorded(scenario);
        if let Err(error) = Replay::new(url.clone()).run(&transcript).await {
            panic!("scenario {scenario} differs from the recording: {error}");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_connect_configure() {
    replay_on_reference_mock(&["a"], DEFAULT_AGE).await;
}

#[tokio::test(start_paused = true)]
async fn b_read_public() {
    replay_on_reference_mock(&["b"], DEFAULT_AGE).await;
}

#[tokio::test(start_paused = true)]
async fn c_auth_route_without_auth() {
    replay_on_reference_mock(&["c"], DEFAULT_AGE).await;
}

#[tokio::test(start_paused = true)]
async fn d_authenticate() {
    replay_on_reference_mock(&["d"], DEFAULT_AGE).await;
}

#[tokio::test(start_paused = true)]
async fn e_create_update_delete_notify() {
    replay_on_reference_mock(&["e"], DEFAULT_AGE).await;
}

/// The liveness ticks fall 5.952 s and 17.960 s into the scenario (the silent client is cut at
/// the second), and the counter ticks about 946 ms past each second, as recorded.
#[tokio::test(start_paused = true)]
async fn f_listen_ping_stop() {
    replay_on_reference_mock(&["f"], Duration::from_millis(6056)).await;
}

#[tokio::test(start_paused = true)]
async fn g1_confirm_receipts_both_ways() {
    replay_on_reference_mock(&["g1"], DEFAULT_AGE).await;
}

/// The retransmission ticks fall 2.46 s past each 5 s step of the scenario, as recorded.
#[tokio::test(start_paused = true)]
async fn g2_no_confirm_retransmit_until_giveup() {
    replay_on_reference_mock(&["g2"], Duration::from_millis(7538)).await;
}

/// The retransmission ticks fall 4.43 s past each 5 s step of the scenario, as recorded.
#[tokio::test(start_paused = true)]
async fn g3_late_confirm() {
    replay_on_reference_mock(&["g3"], Duration::from_millis(5571)).await;
}

/// The retransmission ticks fall 3.99 s past each 5 s step of the scenario, as recorded.
#[tokio::test(start_paused = true)]
async fn g4_confirm_edge_cases() {
    replay_on_reference_mock(&["g4"], Duration::from_millis(6010)).await;
}

#[tokio::test(start_paused = true)]
async fn g5_reconnect_with_pending() {
    replay_on_reference_mock(&["g5"], DEFAULT_AGE).await;
}

/// The recording ran scenario e before h on the same server, so h's note got id 2; replaying e
/// first gives the mock the same note ids.
#[tokio::test(start_paused = true)]
async fn h_duplicate_client_request_id() {
    replay_on_reference_mock(&["e", "h"], DEFAULT_AGE).await;
}

#[tokio::test(start_paused = true)]
async fn i_request_timeout_slow_route() {
    replay_on_reference_mock(&["i"], DEFAULT_AGE).await;
}

/// The recorded server ran with its application's guard, which logs the errors of malformed
/// frames and keeps the process alive. The mock does the same by design, so every frame must
/// match. The recorded binary frame is replayed as a text frame because the transport sends
/// text only, and the server treats both alike.
#[tokio::test(start_paused = true)]
async fn j_malformed_frames() {
    replay_on_reference_mock(&["j"], DEFAULT_AGE).await;
}

#[tokio::test(start_paused = true)]
async fn k1_call_accepted() {
    replay_on_reference_mock(&["k1"], DEFAULT_AGE).await;
}

#[tokio::test(start_paused = true)]
async fn k2_call_rejected() {
    replay_on_reference_mock(&["k2"], DEFAULT_AGE).await;
}

#[tokio::test(start_paused = true)]
async fn k3_call_canceled() {
    replay_on_reference_mock(&["k3"], DEFAULT_AGE).await;
}
