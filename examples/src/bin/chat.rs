//! `chat`: two users exchange messages live on an Askless server.

use std::process::ExitCode;

use askless_examples::{Console, EmbeddedServer, ExampleApp, chat, init_tracing};
use clap::Parser;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Let the users blue and green exchange messages live on an Askless server.",
    long_about = "Let the users blue and green exchange messages live on an Askless server, each \
        on its own connection in this process, and print every message as each user sees it. \
        Each user signs in with the credential {\"myColor\": <color>}. The scripted conversation \
        ends by itself.\n\nWithout --url it starts a mock server with the demo routes on a free \
        port of 127.0.0.1. Logs go to standard error, filtered by RUST_LOG (default warn)."
)]
struct Args {
    /// Server to use, ws://host:port or wss://host:port (such as the simple-chat example
    /// server). [default: an embedded mock server]
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
        None => match EmbeddedServer::start(ExampleApp::Chat).await {
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
        outcome = chat::run(&url, &console) => match outcome {
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
