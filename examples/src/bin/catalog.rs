//! `catalog`: adds and removes products while the product list streams.

use std::process::ExitCode;

use askless_examples::{Console, EmbeddedServer, ExampleApp, catalog, init_tracing};
use clap::Parser;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    version,
    about = "Add and remove products on an Askless server while the product list streams.",
    long_about = "Sign in with the credential {\"Authorization\": \"Bearer abcd\"}, stream the \
        product list, add two products and remove one, printing the list after each change. \
        Then a second connection signs in with a wrong credential and tries to add a product, \
        and both refusals are printed. Ends by itself in a few seconds.\n\nWithout --url it \
        starts a mock server with the demo routes on a free port of 127.0.0.1. Logs go to \
        standard error, filtered by RUST_LOG (default warn)."
)]
struct Args {
    /// Server to use, ws://host:port or wss://host:port (such as the catalog example server).
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
        None => match EmbeddedServer::start(ExampleApp::Catalog).await {
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
        outcome = catalog::run(&url, &console) => match outcome {
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
