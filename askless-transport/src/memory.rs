//! An in-memory transport for tests: connected pairs and a listener that
//! [`MemoryTransport::connect`] reaches without any socket.
//!
//! It follows WebSocket close semantics: closing one end makes the other end's
//! receiver return [`TransportError::ClosedByPeer`] with the same code and
//! reason and replies with a close of its own, and dropping an end without
//! closing it makes the other end's receiver return
//! [`TransportError::ClosedAbnormally`].

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::mpsc;
use url::Url;

use crate::connection::{
    Connection, ConnectionInfo, FrameReceiver, FrameSender, Transport, client_info, truncate_close_reason,
};
use crate::error::TransportError;

/// Frames each direction buffers before [`FrameSender::send`] waits, like a
/// socket buffer that fills when the peer stops reading.
const CHANNEL_CAPACITY: usize = 64;

/// A frame sent through the in-memory channel.
#[derive(Debug)]
enum Frame {
    Text(String),
    Close { code: u16, reason: String },
}

/// Close state shared by the two halves of one end.
#[derive(Debug, Default)]
struct EndState {
    /// Set once this end sent or received a close frame.
    closing: AtomicBool,
}

/// Builds two connected in-memory connections: what one sends, the other receives.
pub fn pair() -> (Connection, Connection) {
    pair_with_info(ConnectionInfo::default(), ConnectionInfo::default())
}

fn pair_with_info(first_info: ConnectionInfo, second_info: ConnectionInfo) -> (Connection, Connection) {
    let (first_tx, second_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let (second_tx, first_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let first = end(first_tx, first_rx, first_info);
    let second = end(second_tx, second_rx, second_info);
    (first, second)
}

fn end(tx: mpsc::Sender<Frame>, rx: mpsc::Receiver<Frame>, info: ConnectionInfo) -> Connection {
    let state = Arc::new(EndState::default());
    let sender = MemorySender {
        tx: tx.clone(),
        state: state.clone(),
    };
    let receiver = MemoryReceiver {
        rx,
        reply: Some(tx),
        state,
        end: None,
    };
    Connection::new(Box::new(sender), Box::new(receiver), info)
}

/// Builds a transport and the listener its connects reach.
///
/// Each [`MemoryTransport::connect`] returns one end of a new [`pair`] and
/// queues the other end for [`MemoryListener::accept`].
pub fn listener() -> (MemoryTransport, MemoryListener) {
    let transport = MemoryTransport::new();
    let listener = transport.listen();
    (transport, listener)
}

/// A [`Transport`] whose connections end in a [`MemoryListener`].
///
/// Clones share the same listener slot. While no listener is attached, or after
/// it was dropped, `connect` fails with [`TransportError::ConnectionRefused`],
/// which lets tests stop and restart a server.
#[derive(Clone, Default)]
pub struct MemoryTransport {
    listener: Arc<Mutex<Option<mpsc::UnboundedSender<Connection>>>>,
}

impl fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let listening = self.listener.lock().map(|slot| slot.is_some()).unwrap_or(false);
        f.debug_struct("MemoryTransport")
            .field("listening", &listening)
            .finish()
    }
}

impl MemoryTransport {
    /// Builds a transport with no listener attached.
    pub fn new() -> Self {
        MemoryTransport::default()
    }

    /// Attaches a new listener, replacing any previous one. Connections queued
    /// for the previous listener stay with it.
    pub fn listen(&self) -> MemoryListener {
        let (queue, incoming) = mpsc::unbounded_channel();
        if let Ok(mut slot) = self.listener.lock() {
            *slot = Some(queue);
        }
        MemoryListener { incoming }
    }
}

#[async_trait]
impl Transport for MemoryTransport {
    /// Opens an in-memory connection; the URL is only recorded in the
    /// connection info. Completes without waiting.
    async fn connect(&self, url: &Url) -> Result<Connection, TransportError> {
        let refused = || TransportError::ConnectionRefused {
            addr: "in-memory listener".to_owned(),
            source: None,
        };
        let mut slot = self.listener.lock().map_err(|_| refused())?;
        let queue = slot.as_ref().ok_or_else(refused)?;
        let server_info = ConnectionInfo {
            request_path: Some(url.path().to_owned()),
            ..Default::default()
        };
        let (client, server) = pair_with_info(client_info(url), server_info);
        if queue.send(server).is_err() {
            *slot = None;
            return Err(refused());
        }
        tracing::debug!("in-memory connection open");
        Ok(client)
    }
}

/// The accepting side of a [`MemoryTransport`].
#[derive(Debug)]
pub struct MemoryListener {
    incoming: mpsc::UnboundedReceiver<Connection>,
}

impl MemoryListener {
    /// Waits for the next connection.
    ///
    /// Returns [`TransportError::AlreadyClosed`] once every transport that could
    /// reach this listener is dropped or attached to a newer listener.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: no connection is lost when the future is dropped.
    pub async fn accept(&mut self) -> Result<Connection, TransportError> {
        self.incoming.recv().await.ok_or(TransportError::AlreadyClosed)
    }
}

/// The sending half of an in-memory connection.
#[derive(Debug)]
struct MemorySender {
    tx: mpsc::Sender<Frame>,
    state: Arc<EndState>,
}

#[async_trait]
impl FrameSender for MemorySender {
    async fn send(&mut self, text: String) -> Result<(), TransportError> {
        if self.state.closing.load(Ordering::Acquire) {
            return Err(TransportError::AlreadyClosed);
        }
        tracing::trace!(len = text.len(), "sending in-memory frame");
        self.tx
            .send(Frame::Text(text))
            .await
            .map_err(|_| TransportError::ClosedAbnormally { source: None })
    }

    async fn close(&mut self, code: u16, reason: &str) -> Result<(), TransportError> {
        if self.state.closing.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let frame = Frame::Close {
            code,
            reason: truncate_close_reason(reason).to_owned(),
        };
        self.tx
            .send(frame)
            .await
            .map_err(|_| TransportError::ClosedAbnormally { source: None })
    }
}

/// The receiving half of an in-memory connection.
#[derive(Debug)]
struct MemoryReceiver {
    rx: mpsc::Receiver<Frame>,
    /// This end's outgoing channel, used once to reply to a close frame.
    reply: Option<mpsc::Sender<Frame>>,
    state: Arc<EndState>,
    end: Option<TransportError>,
}

#[async_trait]
impl FrameReceiver for MemoryReceiver {
    // Cancel safety: `mpsc::Receiver::recv` is cancel safe and nothing else awaits.
    async fn recv(&mut self) -> Result<String, TransportError> {
        if let Some(end) = &self.end {
            return Err(repeat(end));
        }
        match self.rx.recv().await {
            Some(Frame::Text(text)) => Ok(text),
            Some(Frame::Close { code, reason }) => {
                self.reply_to_close(code, &reason);
                Err(self.finish(TransportError::ClosedByPeer { code, reason }))
            }
            None => Err(self.finish(TransportError::ClosedAbnormally { source: None })),
        }
    }
}

impl MemoryReceiver {
    /// Replies to the peer's close with the same code and reason, unless this end
    /// already sent its own close.
    fn reply_to_close(&mut self, code: u16, reason: &str) {
        let reply = self.reply.take();
        let already_closing = self.state.closing.swap(true, Ordering::AcqRel);
        if let (Some(reply), false) = (reply, already_closing) {
            let _ = reply.try_send(Frame::Close {
                code,
                reason: reason.to_owned(),
            });
        }
    }

    fn finish(&mut self, error: TransportError) -> TransportError {
        self.reply = None;
        self.end = Some(repeat(&error));
        error
    }
}

/// Rebuilds a terminal error so later calls can return it again.
fn repeat(error: &TransportError) -> TransportError {
    match error {
        TransportError::ClosedByPeer { code, reason } => TransportError::ClosedByPeer {
            code: *code,
            reason: reason.clone(),
        },
        TransportError::ClosedAbnormally { .. } => TransportError::ClosedAbnormally { source: None },
        _ => TransportError::AlreadyClosed,
    }
}
