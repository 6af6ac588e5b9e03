//! `call`: two users in one process make a WebRTC call signalled through an Askless server.

use std::process::ExitCode;

use askless_examples::{Console, EmbeddedServer, ExampleApp, call, init_tracing};
use clap::Parser;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Two users in one process make a WebRTC call through an Askless server.",
    long_about = "User 1 signs in with {\"Authorization\": \"Bearer abcd\"} and calls user 2 \
        (\"Bearer efgh\") with additional data. User 2 accepts, synthetic audio and video flow \
        both ways for 2 seconds, each user prints the packets it received per kind and the \
        reports about the other user's connection, then user 1 hangs up and both print how the \
        call ended.\n\nMedia goes directly between the two users over 127.0.0.1 only: no STUN \
        server or other host is contacted. Without --url it starts a mock server with the demo \
        routes on a free port of 127.0.0.1. Logs go to standard error, filtered by RUST_LOG \
        (default warn, and error for the media crates rtc and webrtc)."
)]
struct Args {
    /// Server to use, ws://host:port or wss://host:port, with the Askless call routes and
    /// an authentication handler that accepts the two credentials above.
    /// [default: an embedded mock server]
    #[arg(long, value_name = "URL")]
    url: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing();
    let console = Console::stdout();

    let (url, _embedded) = match args.url {
        Some(url) => (url, None),
        None => match EmbeddedServer::start(ExampleApp::Call).await {
            Ok(server) => {
                console.line(format!("started an embedded mock server at {}", server.url()));
                (server.url(), Some(server))
            }
            Err(error) => {
                eprintln!("error: {error:#}");
                return ExitCode::FAILURE;
            }
        },
    };

    tokio::select! {
        outcome = call::run(&url, &console) => match outcome {
            Ok(_) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => {
            console.line("stopped by Ctrl-C");
            ExitCode::SUCCESS
        }
    }
}
