//! The random-numbers app: streams the numbers the server draws every second.
//!
//! Like the Flutter app, it opens a stream of `generated-random-number` without params (the
//! route ignores them) and shows `currentRandomNumber` of each value. It never authenticates.

use askless_client::AsklessClient;
use futures::StreamExt as _;
use serde_json::Value;

use crate::{Console, describe_error, print_status_changes};

/// The route that streams the random numbers.
pub const ROUTE: &str = "generated-random-number";

/// Connects to `url`, streams `count` random numbers, printing each on `console`, and returns
/// them.
///
/// Fails when the connection cannot be opened, when the stream ends with an error (its message
/// is printed first) or when a value has no `currentRandomNumber`.
pub async fn run(url: &str, count: usize, console: &Console) -> anyhow::Result<Vec<i64>> {
    console.line(format!("connecting to {url}"));
    let client = AsklessClient::builder(url).connect().await?;
    let status = print_status_changes(&client, console, "");
    console.line("connected; streaming random numbers");

    let outcome = stream_numbers(&client, count, console).await;
    drop(status);
    client.close().await;
    outcome
}

async fn stream_numbers(client: &AsklessClient, count: usize, console: &Console) -> anyhow::Result<Vec<i64>> {
    // The Flutter app sends no params, so the stream's params are `null` on the wire too.
    let mut stream = client.read_stream(ROUTE, ()).await?;
    let mut numbers = Vec::with_capacity(count);
    while numbers.len() < count {
        let value = match stream.next().await {
            Some(Ok(value)) => value,
            Some(Err(error)) => {
                let message = describe_error(&error);
                console.line(format!("error: {message}"));
                return Err(error.into());
            }
            None => anyhow::bail!(
                "the server ended the stream of `{ROUTE}` after {} values",
                numbers.len()
            ),
        };
        let Some(number) = value.get("currentRandomNumber").and_then(Value::as_i64) else {
            anyhow::bail!("a value of `{ROUTE}` has no integer currentRandomNumber: {value}");
        };
        numbers.push(number);
        console.line(format!("random number {} of {count}: {number}", numbers.len()));
    }
    Ok(numbers)
}
