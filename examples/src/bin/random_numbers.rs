//! `random_numbers`: streams the random numbers of an Askless server.

use std::process::ExitCode;

use askless_examples::{Console, EmbeddedServer, ExampleApp, init_tracing, random_numbers};
use clap::Parser;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Stream the random numbers an Askless server draws every second.",
    long_about = "Stream the random numbers an Askless server draws every second (route \
        generated-random-number) and print each one.\n\nWithout --url it starts a mock server \
        with the demo routes on a free port of 127.0.0.1. Stops after --count values or on \
        Ctrl-C. Logs go to standard error, filtered by RUST_LOG (default warn)."
)]
struct Args {
    /// Server to use, ws://host:port or wss://host:port (such as the random-numbers example
    /// server). [default: an embedded mock server]
    #[arg(long, value_name = "URL")]
    url: Option<String>,

    /// Number of values to print before stopping.
    #[arg(long, default_value_t = 5)]
    count: usize,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing();
    let console = Console::stdout();

    let (url, _embedded) = match args.url {
        Some(url) => (url, None),
        None => match EmbeddedServer::start(ExampleApp::RandomNumbers).await {
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
        outcome = random_numbers::run(&url, args.count, &console) => match outcome {
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
