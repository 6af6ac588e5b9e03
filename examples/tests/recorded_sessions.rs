//! Compares the requests each example sends with the recorded session of the matching Flutter
//! app against the real example server (Askless 2.0.3).
//!
//! Both sides are reduced to their request sequence per connection: message kind, route, the
//! shape of params and body, and the keys of the credential. Pings, confirmations of receipt,
//! ids and timing are left out. The example runs against an in-process mock server with the demo
//! route set, which records every frame it receives.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use askless_examples::session::{RequestShape, received_requests, recorded_requests};
use askless_examples::{Console, EmbeddedServer, ExampleApp, catalog, chat, random_numbers};
use askless_testkit::route_sets::DemoOptions;

fn recorded(name: &str) -> BTreeMap<String, Vec<RequestShape>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../askless-protocol/tests/data/upstream-examples")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {path:?}: {error}"));
    recorded_requests(&text).unwrap()
}

fn render(requests: &[RequestShape]) -> String {
    requests.iter().map(|request| format!("  {request}\n")).collect()
}

fn assert_same_requests(label: &str, ours: &[RequestShape], recorded: &[RequestShape]) {
    assert_eq!(
        ours,
        recorded,
        "requests of {label} differ\nours:\n{}recorded:\n{}",
        render(ours),
        render(recorded)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_numbers_sends_recorded_requests() {
    let mut options = DemoOptions::default();
    options.random_number_interval = Some(Duration::from_millis(50));
    let server = EmbeddedServer::start_with(ExampleApp::RandomNumbers, options)
        .await
        .unwrap();

    let numbers = random_numbers::run(&server.url(), 5, &Console::recording())
        .await
        .unwrap();
    assert_eq!(numbers.len(), 5);

    let ours = received_requests(server.server());
    let recorded = recorded("random-numbers.jsonl");
    assert_eq!(ours.len(), 1, "one connection expected, got {}", ours.len());
    assert_same_requests("the random-numbers client", &ours[0], &recorded["R"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_sends_recorded_requests() {
    let server = EmbeddedServer::start(ExampleApp::Chat).await.unwrap();

    let console = Console::recording();
    let seen = chat::run(&server.url(), &console).await.unwrap();
    assert!(
        seen.iter()
            .any(|message| message.seen_by == "green" && message.text == "Hi, blue here"),
        "green must receive the history: {seen:?}"
    );

    let ours = received_requests(server.server());
    let recorded = recorded("simple-chat.jsonl");
    assert_eq!(
        ours.len(),
        2,
        "one connection per user expected, got {}",
        ours.len()
    );
    assert_same_requests("blue", &ours[0], &recorded["blue"]);
    assert_same_requests("green", &ours[1], &recorded["green"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_interleaves_users_as_recorded() {
    let server = EmbeddedServer::start(ExampleApp::Chat).await.unwrap();
    chat::run(&server.url(), &Console::recording()).await.unwrap();

    // Across the two connections, the requests come in the recorded order: blue's CREATE of
    // "Nice to meet you" follows green's CREATE, and green connects after blue's first CREATE.
    let ours: Vec<(u64, String)> = server
        .server()
        .received_frames()
        .iter()
        .filter_map(|frame| {
            let request = askless_examples::session::reduce_client_frame(&frame.json()?)?;
            Some((frame.connection.get(), request.kind))
        })
        .collect();
    let expected: Vec<(u64, &str)> = vec![
        (1, "CONFIGURE_CONNECTION"),
        (1, "AUTHENTICATE"),
        (1, "LISTEN"),
        (1, "CREATE"),
        (2, "CONFIGURE_CONNECTION"),
        (2, "AUTHENTICATE"),
        (2, "LISTEN"),
        (2, "CREATE"),
        (1, "CREATE"),
    ];
    let ours: Vec<(u64, &str)> = ours
        .iter()
        .map(|(connection, kind)| (*connection, kind.as_str()))
        .collect();
    assert_eq!(ours, expected);
}

/// The catalog example differs from the recorded catalog session on purpose, because the
/// recording exercises four users and the example shows one story in a few seconds:
///
/// - the recording's viewer V (two unauthenticated streams, an authentication with `{}`, a
///   search stream) has no counterpart: the example's owner streams the same two lists;
/// - the example's owner is the recording's A up to its two creates. It then deletes the
///   product it created, as the recording's B (user 2) does with A's product. Any signed-in
///   user may delete any product on the catalog server, so the request is the same;
/// - the owner does not switch back to unauthenticated as A does at the end of the recording;
/// - the example's visitor is the recording's W: configure, authenticate with a rejected
///   credential, create.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_sends_recorded_requests() {
    let server = EmbeddedServer::start(ExampleApp::Catalog).await.unwrap();

    let report = catalog::run(&server.url(), &Console::recording()).await.unwrap();
    assert_eq!(report.added, vec![1, 2]);
    assert_eq!(report.removed, vec![1]);
    assert_eq!(report.rejections.len(), 2, "{:?}", report.rejections);

    let ours = received_requests(server.server());
    let recorded = recorded("catalog.jsonl");
    assert_eq!(
        ours.len(),
        2,
        "an owner and a visitor connection expected, got {}",
        ours.len()
    );

    let owner_part = &recorded["A"][..6];
    let delete_by_id = recorded["B"]
        .iter()
        .find(|request| request.kind == "DELETE" && request.params == "{id:number}")
        .expect("the recording deletes a product by id");
    let mut owner_expected = owner_part.to_vec();
    owner_expected.push(delete_by_id.clone());
    assert_same_requests("the owner", &ours[0], &owner_expected);

    assert_same_requests("the visitor", &ours[1], &recorded["W"]);
}

#[test]
fn catalog_recording_never_sends_null_list_params() {
    // The catalog server exits on null params for product-list, so neither the Flutter app nor
    // the example may send them.
    for (client, requests) in recorded("catalog.jsonl") {
        for request in requests {
            if request.route.as_deref() == Some(catalog::LIST_ROUTE) {
                assert_ne!(request.params, "null", "client {client}: {request}");
            }
        }
    }
}
