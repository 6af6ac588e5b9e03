//! The examples end with a plain error, instead of hanging, when the server stops responding.
//! These run in paused tokio time, so the 10 s waits of the examples pass at once.

use std::time::Duration;

use askless_examples::{Console, catalog, chat};
use askless_testkit::{MockServer, Route, RouteError};

/// Starts a mock with `routes`, with the periodic tasks that would end the connection during a
/// long virtual wait switched off.
async fn silent_server(routes: &[Route]) -> MockServer {
    let server = MockServer::builder()
        .well_behaved()
        .configure(|config| {
            config.liveness_tick = None;
            config.record_cleanup_tick = None;
        })
        .start()
        .await;
    for route in routes {
        server.route(route.clone());
    }
    server
}

fn never_answers(route: Route) -> Route {
    route.handler(|_ctx| async move { Err(RouteError::no_answer()) })
}

#[tokio::test(start_paused = true)]
async fn catalog_fails_when_list_never_arrives() {
    let server = silent_server(&[never_answers(Route::read(catalog::LIST_ROUTE))]).await;
    let console = Console::recording();

    let url = server.url();
    let run = catalog::run(&url, &console);
    let error = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the catalog app must end by itself")
        .unwrap_err();

    let message = format!("{error:#}");
    assert!(message.contains("product list"), "{message}");
    assert!(!message.contains("abcd"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn chat_fails_when_sign_in_times_out() {
    let server = silent_server(&[]).await;
    // The server responds AUTHORIZE_TIMEOUT when its authenticate handler has not decided in 4 s.
    server.authenticate_with(|_credential| async move { askless_testkit::AuthDecision::never() });
    let console = Console::recording();

    let url = server.url();
    let run = chat::run(&url, &console);
    let error = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the chat app must end by itself")
        .unwrap_err();

    let message = format!("{error:#}");
    assert!(message.contains("blue could not sign in"), "{message}");
    let lines = console.lines();
    assert!(
        lines.iter().any(|line| line.starts_with("[blue] error: ")),
        "{lines:?}"
    );
}
