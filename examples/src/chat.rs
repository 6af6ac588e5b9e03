//! The simple-chat app: the users "blue" and "green" exchange messages live, each on its own
//! client, in one process.
//!
//! Like the Flutter app, each user authenticates with `{"myColor": <color>}` (the server takes
//! the color as the user id), then streams the `message` route and sends with a create on the
//! same route. The first value of the stream is the whole history, and every later value is a
//! list of new messages to append. So the stream keeps every value instead of only the latest.

use std::time::Duration;

use anyhow::Context as _;
use askless_client::{
    AsklessClient, AuthenticateOptions, ReadStream, RequestOptions, StatusListenerGuard, StreamBuffer,
    StreamOptions,
};
use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::{Console, describe_error, print_status_changes};

/// The route that streams and stores the messages.
pub const ROUTE: &str = "message";

/// How long a user waits for an expected message before the conversation fails.
const MESSAGE_WAIT: Duration = Duration::from_secs(10);

/// A message as one user saw it on its stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenMessage {
    /// The user whose stream delivered it.
    pub seen_by: String,
    /// The message's `origin`: the sender's user id. The server's own notices carry the
    /// receiver's user id.
    pub origin: String,
    /// The message's `text`.
    pub text: String,
}

/// One signed-in user with its message stream.
struct Participant {
    color: &'static str,
    client: AsklessClient,
    messages: ReadStream,
    status: StatusListenerGuard,
}

/// Runs the scripted conversation against `url`, printing every message as each user sees it,
/// and returns those messages in the order they were seen.
///
/// Blue joins and sends a greeting, green joins and answers, blue replies, green leaves, and blue sees
/// the server's notice that green left. Fails when a connection, a sign-in or a message fails,
/// or when an expected message does not arrive within 10 s.
pub async fn run(url: &str, console: &Console) -> anyhow::Result<Vec<SeenMessage>> {
    let mut seen = Vec::new();
    console.line(format!("connecting to {url}"));

    let mut blue = Participant::join(url, "blue", console).await?;
    blue.see_until("Welcome", console, &mut seen).await?;
    blue.send("Hi, blue here", console).await?;
    blue.see_until("Hi, blue here", console, &mut seen).await?;

    let mut green = Participant::join(url, "green", console).await?;
    green.see_until("Welcome", console, &mut seen).await?;
    green.send("Hello blue, green here", console).await?;
    blue.see_until("Hello blue, green here", console, &mut seen)
        .await?;
    green
        .see_until("Hello blue, green here", console, &mut seen)
        .await?;

    blue.send("Nice to meet you", console).await?;
    green.see_until("Nice to meet you", console, &mut seen).await?;
    blue.see_until("Nice to meet you", console, &mut seen).await?;

    console.line("[green] leaves the chat");
    green.leave().await;
    blue.see_until("has been disconnected", console, &mut seen)
        .await?;

    console.line("[blue] leaves the chat");
    blue.leave().await;
    Ok(seen)
}

impl Participant {
    /// Connects, signs in as `color` and opens the message stream.
    async fn join(url: &str, color: &'static str, console: &Console) -> anyhow::Result<Self> {
        let client = AsklessClient::builder(url)
            .connect()
            .await
            .with_context(|| format!("{color} could not connect"))?;
        let status = print_status_changes(&client, console, &format!("[{color}] "));
        console.line(format!("[{color}] connected"));

        let options = AuthenticateOptions { never_timeout: true };
        if let Err(error) = client
            .authenticate_with(json!({ "myColor": color }), options)
            .await
        {
            console.line(format!("[{color}] error: {}", describe_error(&error)));
            client.close().await;
            return Err(error).with_context(|| format!("{color} could not sign in"));
        }
        console.line(format!("[{color}] signed in"));

        // Every value matters (a value is a list of new messages), so keep them all.
        let options = StreamOptions {
            buffer: StreamBuffer::Bounded(256),
            ..StreamOptions::default()
        };
        let messages = client.read_stream_with(ROUTE, (), options).await?;
        Ok(Participant {
            color,
            client,
            messages,
            status,
        })
    }

    async fn send(&self, text: &str, console: &Console) -> anyhow::Result<()> {
        console.line(format!("[{}] sends: {text}", self.color));
        let result = self
            .client
            .create_with(
                ROUTE,
                json!({ "text": text }),
                (),
                RequestOptions::never_timeout(),
            )
            .await;
        if let Err(error) = result {
            console.line(format!("[{}] error: {}", self.color, describe_error(&error)));
            return Err(error.into());
        }
        Ok(())
    }

    /// Prints the messages of each value of the stream until one message contains `needle`.
    async fn see_until(
        &mut self,
        needle: &str,
        console: &Console,
        seen: &mut Vec<SeenMessage>,
    ) -> anyhow::Result<()> {
        loop {
            let value = match tokio::time::timeout(MESSAGE_WAIT, self.messages.next()).await {
                Ok(Some(Ok(value))) => value,
                Ok(Some(Err(error))) => {
                    console.line(format!("[{}] error: {}", self.color, describe_error(&error)));
                    return Err(error.into());
                }
                Ok(None) => anyhow::bail!("the message stream of {} ended", self.color),
                Err(_) => anyhow::bail!(
                    "{} saw no message containing {needle:?} within {MESSAGE_WAIT:?}",
                    self.color
                ),
            };
            let mut found = false;
            for message in value.as_array().map(Vec::as_slice).unwrap_or_default() {
                let text = message.get("text").and_then(Value::as_str).unwrap_or_default();
                let origin = match message.get("origin") {
                    Some(Value::String(origin)) => origin.clone(),
                    Some(other) => other.to_string(),
                    None => "?".to_owned(),
                };
                console.line(format!("[{} sees] {origin}: {text}", self.color));
                found |= text.contains(needle);
                seen.push(SeenMessage {
                    seen_by: self.color.to_owned(),
                    origin,
                    text: text.to_owned(),
                });
            }
            if found {
                return Ok(());
            }
        }
    }

    /// Drops the stream and closes the connection. The status printer goes first, so that the
    /// output does not depend on when the closing status arrives.
    async fn leave(self) {
        drop(self.status);
        drop(self.messages);
        self.client.close().await;
    }
}
