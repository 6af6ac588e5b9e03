//! Expectations: verified explicitly and on drop, with a report of what was received.

mod common;

use std::panic::AssertUnwindSafe;

use askless_testkit::{Expect, MockServer, Route, Times};
use common::TestClient;
use serde_json::json;

#[tokio::test]
async fn met_expectations_pass() {
    let server = MockServer::start().await;
    server.route(Route::create("product").expect(1));
    server.expect(Expect::read("product").never());
    server.expect(Expect::configure().times(Times::at_least(1)));
    let mut client = TestClient::configured(&server.url(), "app1").await;

    client
        .modify("CREATE", "product", json!({"name": "Pear"}), json!(null))
        .await;

    server.verify();
}

#[tokio::test]
async fn unmet_expectation_reports_frames() {
    let server = MockServer::start().await;
    server.route(Route::create("product"));
    server.expect(Expect::create("product").times(2));
    let mut client = TestClient::configured(&server.url(), "app1").await;
    client
        .modify("CREATE", "product", json!({"name": "Pear"}), json!(null))
        .await;

    let panic = std::panic::catch_unwind(AssertUnwindSafe(|| server.verify())).unwrap_err();

    let report = panic.downcast_ref::<String>().expect("a formatted report");
    assert!(
        report.contains("CREATE \"product\": expected exactly 2, received 1"),
        "{report}"
    );
    assert!(
        report.contains("frames received on route \"product\""),
        "{report}"
    );
    assert!(report.contains("\"name\":\"Pear\""), "{report}");
    assert!(report.contains("frame(s) received in total"), "{report}");
    server.clear_expectations();
}

#[tokio::test]
#[should_panic(expected = "LISTEN \"catalog\": expected at least 1, received 0")]
async fn drop_verifies_expectations() {
    let server = MockServer::start().await;
    server.expect(Expect::listen("catalog"));
    let _client = TestClient::configured(&server.url(), "app1").await;
}
