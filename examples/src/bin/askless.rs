//! `askless`: a command-line client for people who develop Askless servers.
//!
//! It reads, streams, creates, updates and deletes on one route of any server and prints the
//! output as JSON on standard output. Status and errors go to standard error, and the exit code
//! identifies the kind of failure (see `EXIT_CODES`).

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use askless_client::{AsklessClient, ConnectionStatus, Error, ErrorKind, Output};
use askless_examples::{describe_error, init_tracing};
use clap::{Args, Parser, Subcommand};
use futures::StreamExt as _;
use serde_json::Value;

/// The exit codes, as `--help` shows them.
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  any other failure (such as a stream the server ended before --count values)
  2  usage error: an invalid flag, or --params, --body or --credential that is not valid JSON
  3  connection failure: the server cannot be reached, refused the connection or closed it
  4  timeout: no connection or no response within --timeout
  5  authentication failure: the server rejected --credential, or the route needs an
     authenticated user and none was given
  6  the server answered the request with an error code (printed on standard error)";

const EXIT_OTHER: u8 = 1;
const EXIT_USAGE: u8 = 2;
const EXIT_CONNECTION: u8 = 3;
const EXIT_TIMEOUT: u8 = 4;
const EXIT_AUTHENTICATION: u8 = 5;
const EXIT_SERVER_ERROR: u8 = 6;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(
    name = "askless",
    version,
    about = "Send requests to an Askless server and print the output as JSON.",
    long_about = "Send requests to an Askless server and print the output as JSON on standard \
        output (one value per line for stream). Status and errors go to standard error. Logs go \
        to standard error too, filtered by RUST_LOG (default warn). The credential is never \
        printed.",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read a route once and print its output.
    #[command(after_help = EXIT_CODES)]
    Read {
        #[command(flatten)]
        connection: ConnectionArgs,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Stream a route and print each value on its own line, across reconnections.
    #[command(after_help = EXIT_CODES)]
    Stream {
        #[command(flatten)]
        connection: ConnectionArgs,
        #[command(flatten)]
        target: TargetArgs,
        /// Number of values to print before stopping. [default: none, stream until Ctrl-C]
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Create on a route with --body and print the output.
    #[command(after_help = EXIT_CODES)]
    Create {
        #[command(flatten)]
        connection: ConnectionArgs,
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        body: BodyArgs,
    },
    /// Update on a route with --body and print the output.
    #[command(after_help = EXIT_CODES)]
    Update {
        #[command(flatten)]
        connection: ConnectionArgs,
        #[command(flatten)]
        target: TargetArgs,
        #[command(flatten)]
        body: BodyArgs,
    },
    /// Delete on a route what --params identifies and print the output.
    #[command(after_help = EXIT_CODES)]
    Delete {
        #[command(flatten)]
        connection: ConnectionArgs,
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// Connection options: the server URL, the credential and the timeout.
#[derive(Debug, Args)]
struct ConnectionArgs {
    /// Server URL, ws://host:port or wss://host:port.
    #[arg(long, value_name = "URL", value_parser = parse_url)]
    url: String,

    /// Credential to authenticate with before the request, as JSON, such as
    /// '{"Authorization": "Bearer abcd"}'. Never printed. [default: no authentication]
    #[arg(long, value_name = "JSON", hide_default_value = true)]
    credential: Option<String>,

    /// Seconds to wait for the connection, for the authentication and for each response (not
    /// between stream values).
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, value_parser = parse_timeout)]
    timeout: f64,
}

/// The route and its params.
#[derive(Debug, Args)]
struct TargetArgs {
    /// Route of the request.
    #[arg(long)]
    route: String,

    /// Params of the request, a JSON object or null. The default is the empty object, because
    /// some servers fail on null params.
    #[arg(long, value_name = "JSON", default_value = "{}", value_parser = parse_params)]
    params: Value,
}

/// The body of a create or update.
#[derive(Debug, Args)]
struct BodyArgs {
    /// Body of the request, any JSON value but null.
    #[arg(long, value_name = "JSON", value_parser = parse_body)]
    body: Value,
}

/// Why the command failed: the exit code and the message for standard error.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// Classifies a client error into an exit code, with its description in plain words.
    fn from_client(error: &Error) -> Self {
        let code = match error.kind() {
            ErrorKind::Timeout => EXIT_TIMEOUT,
            ErrorKind::NoConnection | ErrorKind::Transport | ErrorKind::UnsupportedVersion => EXIT_CONNECTION,
            ErrorKind::Credential | ErrorKind::PendingAuthentication | ErrorKind::NotAuthenticated => {
                EXIT_AUTHENTICATION
            }
            ErrorKind::Server => EXIT_SERVER_ERROR,
            ErrorKind::InvalidUrl | ErrorKind::InvalidOption => EXIT_USAGE,
            _ => EXIT_OTHER,
        };
        Failure::new(code, describe_error(error))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("askless: starting the async runtime failed: {error}");
            return ExitCode::from(EXIT_OTHER);
        }
    };
    let outcome = runtime.block_on(run(cli.command));
    runtime.shutdown_timeout(Duration::from_millis(500));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("askless: error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

async fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Read { connection, target } => {
            let client = connect(&connection).await?;
            let output = client.read(&target.route, &target.params).await;
            finish(&client, output).await
        }
        Command::Create {
            connection,
            target,
            body,
        } => {
            let client = connect(&connection).await?;
            let output = client.create(&target.route, &body.body, &target.params).await;
            finish(&client, output).await
        }
        Command::Update {
            connection,
            target,
            body,
        } => {
            let client = connect(&connection).await?;
            let output = client.update(&target.route, &body.body, &target.params).await;
            finish(&client, output).await
        }
        Command::Delete { connection, target } => {
            let client = connect(&connection).await?;
            let output = client.delete(&target.route, &target.params).await;
            finish(&client, output).await
        }
        Command::Stream {
            connection,
            target,
            count,
        } => {
            let client = connect(&connection).await?;
            let outcome = tokio::select! {
                outcome = stream(&client, &target, count) => outcome,
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("askless: stopped by Ctrl-C");
                    Ok(())
                }
            };
            client.close().await;
            outcome
        }
    }
}

/// Connects, then authenticates when a credential was given.
async fn connect(args: &ConnectionArgs) -> Result<AsklessClient, Failure> {
    // The credential is checked before connecting, and its value never appears in a message.
    let credential = match &args.credential {
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(credential) => Some(credential),
            Err(error) => {
                return Err(Failure::new(
                    EXIT_USAGE,
                    format!(
                        "invalid value for --credential: not valid JSON ({} at line {}, column {}); \
                         pass a JSON object such as '{{\"Authorization\": \"Bearer <token>\"}}'",
                        describe_json_error(&error),
                        error.line(),
                        error.column()
                    ),
                ));
            }
        },
        None => None,
    };
    let timeout = Duration::from_secs_f64(args.timeout);

    let connecting = AsklessClient::builder(args.url.as_str())
        .request_timeout(timeout)
        .connect();
    let client = match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(client)) => client,
        Ok(Err(error)) => {
            let mut failure = Failure::from_client(&error);
            if failure.code != EXIT_USAGE {
                failure.code = EXIT_CONNECTION;
            }
            return Err(failure);
        }
        Err(_) => {
            return Err(Failure::new(
                EXIT_TIMEOUT,
                format!(
                    "no connection to {} within {timeout:?}; check that the server is running, or raise --timeout",
                    args.url
                ),
            ));
        }
    };
    eprintln!("askless: connected to {}", args.url);

    let Some(credential) = credential else {
        return Ok(client);
    };
    match client.authenticate(credential).await {
        Ok(authenticated) => {
            match authenticated.user_id {
                Some(user_id) => eprintln!("askless: authenticated as user {user_id}"),
                None => eprintln!("askless: the server accepted the credential as unauthenticated (no user)"),
            }
            Ok(client)
        }
        Err(error) => {
            let mut failure = Failure::from_client(&error);
            if failure.code == EXIT_SERVER_ERROR || failure.code == EXIT_OTHER {
                failure.code = EXIT_AUTHENTICATION;
            }
            client.close().await;
            Err(failure)
        }
    }
}

/// Prints the output of a request, closes the client and classifies the error, if any.
async fn finish(client: &AsklessClient, output: askless_client::Result<Output>) -> Result<(), Failure> {
    client.close().await;
    match output {
        Ok(output) => {
            print_json(output.value().unwrap_or(&Value::Null));
            Ok(())
        }
        Err(error) => Err(Failure::from_client(&error)),
    }
}

/// Prints each value of the stream until `count` values or the end of the stream.
async fn stream(client: &AsklessClient, target: &TargetArgs, count: Option<u64>) -> Result<(), Failure> {
    let lost = Arc::new(AtomicBool::new(false));
    let _status = {
        let lost = Arc::clone(&lost);
        client.on_status_change(move |status| match status {
            ConnectionStatus::Disconnected { reason } if reason.reconnects_automatically() => {
                lost.store(true, Ordering::Relaxed);
                eprintln!("askless: connection lost ({reason}); reconnecting, the stream will continue");
            }
            ConnectionStatus::Connected if lost.swap(false, Ordering::Relaxed) => {
                eprintln!("askless: reconnected; the stream continues");
            }
            _ => {}
        })
    };

    let mut values = client
        .read_stream(&target.route, &target.params)
        .await
        .map_err(|error| Failure::from_client(&error))?;
    eprintln!("askless: streaming {}", target.route);
    let mut received = 0_u64;
    while count.is_none_or(|count| received < count) {
        match values.next().await {
            Some(Ok(value)) => {
                received += 1;
                if !print_json(&value) {
                    return Ok(());
                }
            }
            Some(Err(error)) => return Err(Failure::from_client(&error)),
            None => {
                return Err(Failure::new(
                    EXIT_OTHER,
                    format!(
                        "the server ended the stream of `{}` after {received} values",
                        target.route
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Prints one JSON value on its own line; returns `false` when standard output is closed.
fn print_json(value: &Value) -> bool {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{value}").and_then(|()| stdout.flush()).is_ok()
}

fn parse_url(text: &str) -> Result<String, String> {
    if text.starts_with("ws://") || text.starts_with("wss://") {
        Ok(text.to_owned())
    } else {
        Err("expected a ws:// or wss:// URL, such as ws://127.0.0.1:3000".to_owned())
    }
}

fn parse_timeout(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| "expected a number of seconds, such as 10 or 0.5".to_owned())?;
    if seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0 {
        Ok(seconds)
    } else {
        Err("expected more than 0 and at most 86400 seconds".to_owned())
    }
}

fn parse_params(text: &str) -> Result<Value, String> {
    let value = parse_json(text)?;
    match value {
        Value::Object(_) | Value::Null => Ok(value),
        _ => Err("params must be a JSON object, such as '{\"id\": 1}', or null".to_owned()),
    }
}

fn parse_body(text: &str) -> Result<Value, String> {
    let value = parse_json(text)?;
    if value.is_null() {
        return Err(
            "the body must not be null; pass a JSON value such as '{\"name\": \"Mouse\"}'".to_owned(),
        );
    }
    Ok(value)
}

fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|error| format!("not valid JSON ({error})"))
}

/// Describes a JSON syntax error without quoting the input.
fn describe_json_error(error: &serde_json::Error) -> &'static str {
    match error.classify() {
        serde_json::error::Category::Eof => "unexpected end of input",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected data",
        serde_json::error::Category::Io => "read error",
    }
}
