//! Listeners: first value, notifications, ping reconciliation, server-side stops, errors.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use askless_testkit::{MockServer, Notify, Route, RouteError};
use common::{TestClient, assert_error, assert_receipt, listen_frame};
use serde_json::{Value, json};

type Log = Arc<Mutex<Vec<String>>>;

async fn catalog_server(log: &Log) -> MockServer {
    let server = MockServer::builder()
        .configure(|c| c.notify_grace = Duration::ZERO)
        .start()
        .await;
    let (started, stopped) = (log.clone(), log.clone());
    server
        .route(
            Route::read("catalog")
                .handler(|ctx| async move {
                    Ok(Some(
                        json!({"filter": ctx.params["name"], "user": ctx.user_id.map(|u| u.to_value())}),
                    ))
                })
                .on_start_listening(move |info| {
                    started.lock().unwrap().push(format!("start {}", info.listen_id))
                })
                .on_stop_listening(move |info| {
                    stopped.lock().unwrap().push(format!("stop {}", info.listen_id))
                }),
        )
        .route(Route::read("denied").handler(|_| async { Err(RouteError::new("PERMISSION_DENIED", "no")) }))
        .route(Route::read("custom-error").handler(|_| async { Err(RouteError::new("NOT_FOUND", "gone")) }))
        .route(Route::read("nocode").handler(|_| async { Err(RouteError::description("broken")) }))
        .route(Route::read("private").for_authenticated_users());
    server
}

/// Listens and returns (response, first value), checking the receipt.
async fn listen(client: &mut TestClient, route: &str, params: Value, listen_id: &str) -> (Value, Value) {
    let id = client.send_listen(route, params, listen_id).await;
    assert_receipt(&client.recv().await, &id);
    let response = client.recv().await;
    assert_eq!(response["clientRequestId"], json!(id));
    if response.get("error").is_some() {
        return (response, Value::Null);
    }
    let data = client.recv().await;
    (response, data)
}

#[tokio::test]
async fn listen_sends_response_then_first_value() {
    let log = Log::default();
    let server = catalog_server(&log).await;
    let mut client = TestClient::configured(&server.url(), "app1").await;

    let (response, data) = listen(&mut client, "catalog", json!({"name": "pear"}), "LIS-L1").await;

    assert_eq!(response["output"], json!("LIS-L1"));
    assert_eq!(data["output"], json!({"filter": "pear", "user": null}));
    assert_eq!(data["listenId"], json!("LIS-L1"));
    assert_eq!(data["dataType"], json!("NewDataForListener"));
    assert!(data["serverId"].as_str().unwrap().starts_with("NEW-"));
    assert!(data["serverId"].as_str().unwrap().ends_with("-LIS-L1"));
    server
        .wait_until(|_| log.lock().unwrap().len() == 1, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(*log.lock().unwrap(), vec!["start LIS-L1"]);
    assert_eq!(server.listener_count("catalog"), 1);
}

#[tokio::test]
async fn notify_reaches_each_listener_with_its_params() {
    let log = Log::default();
    let server = catalog_server(&log).await;
    let mut client = TestClient::configured(&server.url(), "app1").await;
    listen(&mut client, "catalog", json!({"name": "a"}), "LIS-A").await;
    listen(&mut client, "catalog", json!({"name": "b"}), "LIS-B").await;

    server.notify_changes("catalog", Notify::all());

    let mut outputs = [client.recv().await, client.recv().await];
    outputs.sort_by_key(|f| f["listenId"].as_str().unwrap().to_owned());
    assert_eq!(outputs[0]["output"]["filter"], json!("a"));
    assert_eq!(outputs[1]["output"]["filter"], json!("b"));
    client.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn notify_where_and_override() {
    let log = Log::default();
    let server = catalog_server(&log).await;
    let mut client = TestClient::configured(&server.url(), "app1").await;
    listen(&mut client, "catalog", json!({"name": "a"}), "LIS-A").await;
    listen(&mut client, "catalog", json!({"name": "b"}), "LIS-B").await;

    server.notify_changes(
        "catalog",
        Notify::all()
            .where_(|target| target.params["name"] == json!("b"))
            .override_value(json!("fresh")),
    );

    let frame = client.recv().await;
    assert_eq!(frame["listenId"], json!("LIS-B"));
    assert_eq!(frame["output"], json!("fresh"));
    client.expect_silence(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn ping_stops_absent_and_recreates_listed() {
    let log = Log::default();
    let server = catalog_server(&log).await;
    let mut client = TestClient::configured(&server.url(), "app1").await;
    listen(&mut client, "catalog", json!({"name": "a"}), "LIS-A").await;

    client.ping(vec![]).await;
    assert_eq!(client.recv_text().await, "pong");
    assert_eq!(server.listener_count("catalog"), 0);
    server
        .wait_until(|_| log.lock().unwrap().len() == 2, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(log.lock().unwrap()[1], "stop LIS-A");

    client
        .ping(vec![listen_frame(
            "LIS-_orig",
            "catalog",
            json!({"name": "a"}),
            "LIS-A",
        )])
        .await;
    assert_eq!(client.recv_text().await, "pong");
    let response = client.recv().await;
    assert_eq!(response["clientRequestId"], json!("LIS-_orig"));
    assert_eq!(response["output"], json!("LIS-A"));
    let data = client.recv().await;
    assert_eq!(data["output"]["filter"], json!("a"));
    assert_eq!(server.listener_count("catalog"), 1);
}

#[tokio::test]
async fn relisten_with_same_id_replaces() {
    let log = Log::default();
    let server = catalog_server(&log).await;
    let mut client = TestClient::configured(&server.url(), "app1").await;
    listen(&mut client, "catalog", json!({"name": "a"}), "LIS-A").await;

    let (_, data) = listen(&mut client, "catalog", json!({"name": "z"}), "LIS-A").await;

    assert_eq!(data["output"]["filter"], json!("z"));
    assert_eq!(server.listener_count("catalog"), 1);
    server
        .wait_until(|_| log.lock().unwrap().len() == 3, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        vec!["start LIS-A", "stop LIS-A", "start LIS-A"]
    );
}

#[tokio::test]
async fn stop_listening_for_user_sends_event() {
    let log = Log::default();
    let server = catalog_server(&log).await;
    server.authenticate_with(|_| async { askless_testkit::AuthDecision::user(9) });
    let mut client = TestClient::configured(&server.url(), "app1").await;
    let id = client.send_authenticate("app1", json!({})).await;
    assert_receipt(&client.recv().await, &id);
    client.recv().await;
    listen(&mut client, "catalog", json!(null), "LIS-A").await;

    server.stop_listening_for_user("catalog", 9);

    let event = client.recv().await;
    assert_eq!(event["listenId"], json!("LIS-A"));
    assert_eq!(event["dataType"], json!("StopListening"));
    assert!(event["serverId"].as_str().unwrap().starts_with("STOP-"));
    assert_eq!(
        server.listener_count("catalog"),
        1,
        "the listener stays until the next ping"
    );
}

#[tokio::test]
async fn listen_errors_follow_reference_table() {
    let log = Log::default();
    let server = catalog_server(&log).await;
    let mut client = TestClient::configured(&server.url(), "app1").await;

    let id = client.send_listen("nope", json!(null), "LIS-1").await;
    let first = client.recv().await;
    assert_receipt(&first, &id);
    let unknown = client.recv().await;
    assert_error(&unknown, "INVALID_ROUTE", "route not found: READ nope");

    let (private, _) = listen(&mut client, "private", json!(null), "LIS-2").await;
    assert_error(
        &private,
        "PENDING_AUTHENTICATION",
        "Could not perform the operation on (LISTEN) \"private\" because authentication is required",
    );
    assert_eq!(server.listener_count("private"), 0);

    let (denied, _) = listen(&mut client, "denied", json!(null), "LIS-3").await;
    assert_error(&denied, "PERMISSION_DENIED", "no");
    assert_eq!(server.listener_count("denied"), 0);

    let (custom, _) = listen(&mut client, "custom-error", json!(null), "LIS-4").await;
    assert_error(&custom, "NOT_FOUND", "gone");
    assert_eq!(server.listener_count("custom-error"), 1);

    let (nocode, _) = listen(&mut client, "nocode", json!(null), "LIS-5").await;
    assert_error(&nocode, "INTERNAL_ERROR", "broken");

    client
        .send(
            json!({"clientRequestId": "LIS-_no-listen-id", "requestType": "LISTEN", "_class_type_listen": "_",
        "route": "catalog", "params": null}),
        )
        .await;
    assert_receipt(&client.recv().await, "LIS-_no-listen-id");
    assert_error(
        &client.recv().await,
        "INTERNAL_ERROR",
        "An internal error occurred",
    );
}

#[tokio::test]
async fn notify_skips_private_listeners_of_unauthenticated() {
    let log = Log::default();
    let server = catalog_server(&log).await;
    let mut client = TestClient::configured(&server.url(), "app1").await;
    listen(&mut client, "catalog", json!(null), "LIS-A").await;

    server.notify_changes("private", Notify::all());
    server.notify_changes("catalog", Notify::all().override_value(json!(1)));

    assert_eq!(client.recv().await["listenId"], json!("LIS-A"));
}

#[tokio::test(start_paused = true)]
async fn notify_held_until_grace_ends() {
    let mut config = askless_testkit::MockConfig::default();
    config.liveness_tick = None;
    let server = MockServer::builder().config(config).start().await;
    server.route(Route::read("counter").handler(|_| async { Ok(Some(json!(1))) }));
    let start = tokio::time::Instant::now();
    let mut client = TestClient::configured(&server.url(), "app1").await;
    listen(&mut client, "counter", json!(null), "LIS-A").await;

    server.notify_changes("counter", Notify::all());

    let mut data = client.recv().await;
    while data["listenId"] != json!("LIS-A") || data.get("clientRequestId").is_some() {
        data = client.recv().await;
    }
    assert!(
        start.elapsed() >= Duration::from_millis(4000),
        "{:?}",
        start.elapsed()
    );
}
