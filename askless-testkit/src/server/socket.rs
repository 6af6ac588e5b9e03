//! The WebSocket side: the accept loop and one task per connection, on `askless-transport`.

use std::net::SocketAddr;
use std::sync::Arc;

use askless_transport::{
    Connection as TransportConnection, ErrorKind, FrameReceiver, FrameSender, ListenerOptions,
    NO_STATUS_RECEIVED, WebSocketListener,
};
use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::engine::{Connection, FrameClass, Outgoing, Shared, Work, dispatch, records};
use crate::faults::WriteDecision;
use crate::inspect::{ConnectionId, Direction};

/// Binds a WebSocket listener that accepts frames and messages up to `max_frame_size` bytes.
///
/// The transport sets `TCP_NODELAY` on every accepted socket. Without it a second small frame
/// waits for the client's delayed ACK, which under paused tokio time lets the clock jump past
/// the client's timeout.
pub(crate) async fn bind(address: SocketAddr, max_frame_size: usize) -> std::io::Result<WebSocketListener> {
    let options = ListenerOptions::default()
        .with_max_frame_size(max_frame_size)
        .with_max_message_size(max_frame_size);
    WebSocketListener::bind_with_options(address, options)
        .await
        .map_err(std::io::Error::other)
}

/// Accepts connections until the task is aborted; aborting it also aborts every connection task.
pub(crate) async fn accept_loop(shared: Arc<Shared>, mut listener: WebSocketListener) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        match listener.accept().await {
            Ok(connection) => {
                connections.spawn(serve(shared.clone(), connection));
            }
            Err(error) => {
                tracing::warn!(%error, "the WebSocket listener stopped accepting connections");
                return;
            }
        }
    }
}

async fn serve(shared: Arc<Shared>, connection: TransportConnection) {
    let peer = connection.info().peer_addr;
    let (outbox, outgoing) = mpsc::unbounded_channel();
    let kill = Arc::new(tokio::sync::Notify::new());
    let id = register(&shared, outbox.clone(), kill.clone());
    tracing::info!(connection = id.get(), ?peer, "connection opened");
    let _ = outbox.send(Outgoing::Frame {
        text: askless_protocol::marker::WELCOME_TEXT.to_owned(),
        class: FrameClass::Welcome,
    });
    drop(outbox);

    let (sender, receiver) = connection.into_split();
    let mut in_flight: FuturesUnordered<Work> = FuturesUnordered::new();
    tokio::select! {
        () = read_loop(&shared, id, receiver, &kill, &mut in_flight) => {}
        () = write_loop(&shared, id, sender, outgoing) => {}
    }
    records::connection_closed(&shared, id);
    if !in_flight.is_empty() {
        // Handlers still running keep going: their responses are queued in the record.
        tokio::spawn(async move { while in_flight.next().await.is_some() {} });
    }
    // Dropping both halves here ends the connection without a close frame, unless one was sent.
}

fn register(
    shared: &Arc<Shared>,
    outbox: mpsc::UnboundedSender<Outgoing>,
    kill: Arc<tokio::sync::Notify>,
) -> ConnectionId {
    let mut state = shared.lock();
    let connection = ConnectionId(state.next_connection);
    state.next_connection += 1;
    state.connections.insert(
        connection,
        Connection {
            client_id: None,
            outbox,
            kill,
            alive: true,
        },
    );
    connection
}

async fn read_loop(
    shared: &Arc<Shared>,
    connection: ConnectionId,
    mut receiver: Box<dyn FrameReceiver>,
    kill: &tokio::sync::Notify,
    in_flight: &mut FuturesUnordered<Work>,
) {
    loop {
        tokio::select! {
            biased;
            () = kill.notified() => {
                tracing::debug!(connection = connection.get(), "connection terminated without close frame");
                return;
            }
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            received = receiver.recv() => match received {
                Ok(text) => on_text(shared, connection, &text, in_flight),
                Err(error) if error.kind() == ErrorKind::InvalidUtf8 => {
                    tracing::warn!(connection = connection.get(), %error, "binary frame is not UTF-8; dropped");
                }
                Err(error) => {
                    tracing::debug!(connection = connection.get(), %error, "connection ended");
                    return;
                }
            },
        }
    }
}

fn on_text(
    shared: &Arc<Shared>,
    connection: ConnectionId,
    text: &str,
    in_flight: &mut FuturesUnordered<Work>,
) {
    {
        let mut state = shared.lock();
        if state.faults.half_open {
            return;
        }
        if let Some(conn) = state.connections.get_mut(&connection) {
            conn.alive = true;
        }
    }
    tracing::trace!(connection = connection.get(), len = text.len(), "frame received");
    shared.record_frame(connection, Direction::Received, text.to_owned());
    if let Some(work) = dispatch::handle_frame(shared, connection, text) {
        in_flight.push(work);
    }
}

async fn write_loop(
    shared: &Arc<Shared>,
    connection: ConnectionId,
    mut sender: Box<dyn FrameSender>,
    mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
) {
    while let Some(command) = outgoing.recv().await {
        let (text, class) = match command {
            Outgoing::Frame { text, class } => (text, class),
            Outgoing::Close => {
                tracing::debug!(
                    connection = connection.get(),
                    "closing with a close frame without status code"
                );
                let _ = sender.close(NO_STATUS_RECEIVED, "").await;
                continue;
            }
        };
        let decision = shared.lock().faults.decide(connection, &text, class);
        let WriteDecision::Write { delay, copies } = decision else {
            continue;
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        for _ in 0..copies {
            if sender.send(text.clone()).await.is_err() {
                // The reader notices the broken connection and ends the connection.
                std::future::pending::<()>().await;
            }
            tracing::trace!(connection = connection.get(), len = text.len(), "frame sent");
            shared.record_frame(connection, Direction::Sent, text.clone());
        }
    }
    // The connection entry was removed (server restart or drop): end without close frame.
}
