//! Replays the client side of a recorded transcript against a server and checks every server
//! frame against the recorded one, connection by connection.

use std::collections::HashMap;
use std::time::Duration;

use askless_transport::{Connection, Transport, WebSocketTransport, url::Url};
use tokio::time::{Instant, sleep_until, timeout};

use super::compare::FrameComparer;
use super::transcript::{Entry, EntryKind, Transcript};

/// How long after its recorded time a server frame may arrive.
const FRAME_DEADLINE: Duration = Duration::from_secs(15);
/// How long the replay waits at the end for frames that were not recorded.
const FINAL_QUIET: Duration = Duration::from_millis(1500);

/// Receives the next frame, waiting at most until `deadline`; `None` when nothing came.
///
/// The wait advances in steps of one millisecond. Under paused tokio time a single long timeout
/// lets the clock jump to its end while a frame is still between the socket and the
/// transport's reader, so a frame that is already on its way would be reported missing.
pub(crate) async fn recv_until(
    connection: &mut Connection,
    deadline: Instant,
) -> Option<Result<String, askless_transport::TransportError>> {
    loop {
        // `recv` is cancel safe, so a step that times out loses nothing.
        if let Ok(result) = timeout(STEP, connection.recv()).await {
            return Some(result);
        }
        if Instant::now() >= deadline {
            return None;
        }
    }
}

/// Granularity of the waits for frames.
const STEP: Duration = Duration::from_millis(1);

/// A replay of one transcript against the server at `url`.
#[derive(Debug)]
pub(crate) struct Replay {
    url: Url,
    comparer: FrameComparer,
    connections: HashMap<String, Connection>,
    /// Frames received per label, for the failure message.
    received: HashMap<String, Vec<String>>,
}

impl Replay {
    /// Prepares a replay against `url`.
    pub(crate) fn new(url: Url) -> Self {
        Self {
            url,
            comparer: FrameComparer::new(),
            connections: HashMap::new(),
            received: HashMap::new(),
        }
    }

    /// Plays every client frame and event of `transcript` at its recorded time (relative to
    /// now) and compares every server frame, in order per connection.
    ///
    /// Client frames go out as text, binary ones included. A confirm-receipt names the
    /// `serverId` the server sent for the recorded message.
    pub(crate) async fn run(self, transcript: &Transcript) -> Result<(), String> {
        self.run_from(Instant::now(), transcript).await
    }

    /// Like [`Replay::run`], with the transcript's time 0 at `start`, which may lie in the past.
    pub(crate) async fn run_from(mut self, start: Instant, transcript: &Transcript) -> Result<(), String> {
        for entry in &transcript.entries {
            self.play(start, entry)
                .await
                .map_err(|error| format!("{}, line {}: {error}", transcript.path.display(), entry.seq))?;
        }
        self.expect_quiet_everywhere().await
    }

    async fn play(&mut self, start: Instant, entry: &Entry) -> Result<(), String> {
        let Some(label) = entry.label.clone() else {
            return Ok(());
        };
        let at = start + Duration::from_secs_f64(entry.t_ms.max(0.0) / 1000.0);
        match &entry.kind {
            EntryKind::Open => {
                sleep_until(at).await;
                let connection = WebSocketTransport::default()
                    .connect(&self.url)
                    .await
                    .map_err(|error| format!("connection {label} failed to open: {error}"))?;
                self.connections.insert(label, connection);
                Ok(())
            }
            EntryKind::ClientFrame { raw, .. } => {
                sleep_until(at).await;
                let text = self.comparer.substitute_server_id(raw);
                self.connection(&label)?
                    .send(text)
                    .await
                    .map_err(|error| format!("connection {label} failed to send: {error}"))
            }
            EntryKind::ServerFrame { raw } => {
                let deadline = at.max(Instant::now()) + FRAME_DEADLINE;
                let actual = self.receive(&label, deadline).await?;
                self.comparer
                    .compare(raw, &actual)
                    .map_err(|error| format!("connection {label}: {error}"))
            }
            EntryKind::Close { code: Some(1006) } => self.expect_termination(&label, at).await,
            EntryKind::Close { .. } => {
                sleep_until(at).await;
                self.expect_quiet(&label, Duration::ZERO).await?;
                let mut connection = self
                    .connections
                    .remove(&label)
                    .ok_or_else(|| format!("connection {label} is not open"))?;
                // The server may already be gone; the close is best effort.
                let _ = connection.close(1000, "").await;
                Ok(())
            }
            EntryKind::Other => Ok(()),
        }
    }

    fn connection(&mut self, label: &str) -> Result<&mut Connection, String> {
        self.connections
            .get_mut(label)
            .ok_or_else(|| format!("connection {label} is not open"))
    }

    async fn receive(&mut self, label: &str, deadline: Instant) -> Result<String, String> {
        let received = self.received.get(label).cloned().unwrap_or_default();
        let connection = self.connection(label)?;
        match recv_until(connection, deadline).await {
            Some(Ok(text)) => {
                self.received
                    .entry(label.to_owned())
                    .or_default()
                    .push(text.clone());
                Ok(text)
            }
            Some(Err(error)) => Err(format!(
                "connection {label} ended while a frame was expected: {error}; received so far: {received:#?}"
            )),
            None => Err(format!(
                "connection {label} received no frame in time; received so far: {received:#?}"
            )),
        }
    }

    /// Fails when a frame arrives on `label` within `window`.
    async fn expect_quiet(&mut self, label: &str, window: Duration) -> Result<(), String> {
        let connection = self.connection(label)?;
        // A zero window still polls once, so a frame that is already buffered is found.
        match timeout(window.max(Duration::from_millis(1)), connection.recv()).await {
            Ok(Ok(text)) => Err(format!(
                "connection {label} received a frame that was not recorded: {text}"
            )),
            Ok(Err(_)) | Err(_) => Ok(()),
        }
    }

    async fn expect_quiet_everywhere(&mut self) -> Result<(), String> {
        sleep_until(Instant::now() + FINAL_QUIET).await;
        let mut labels: Vec<String> = self.connections.keys().cloned().collect();
        labels.sort();
        for label in labels {
            self.expect_quiet(&label, Duration::ZERO).await?;
            if let Some(mut connection) = self.connections.remove(&label) {
                let _ = connection.close(1000, "").await;
            }
        }
        Ok(())
    }

    /// Waits for the server to drop connection `label` without a close frame around `at`.
    async fn expect_termination(&mut self, label: &str, at: Instant) -> Result<(), String> {
        let deadline = at + FRAME_DEADLINE;
        let mut connection = self
            .connections
            .remove(label)
            .ok_or_else(|| format!("connection {label} is not open"))?;
        match recv_until(&mut connection, deadline).await {
            Some(Ok(text)) => Err(format!(
                "connection {label} received a frame instead of being terminated: {text}"
            )),
            Some(Err(error)) if error.close_code().is_none_or(|code| code == 1006) => Ok(()),
            Some(Err(error)) => Err(format!(
                "connection {label} closed with {error}, expected a termination without close frame"
            )),
            None => Err(format!(
                "connection {label} was not terminated by the server in time"
            )),
        }
    }
}
