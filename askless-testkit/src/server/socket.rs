//! The WebSocket side: the accept loop and one task per connection.
//!
//! NOTE: this is a private adapter over tokio-tungstenite until `askless-transport` offers its
//! server-side `WebSocketListener`; only this file touches sockets.

use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::stream::FuturesUnordered;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::engine::{Connection, FrameClass, Outgoing, Shared, Work, dispatch, records};
use crate::faults::WriteDecision;
use crate::inspect::{ConnectionId, Direction};

/// Accepts connections until the task is aborted; aborting it also aborts every connection task.
pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        match listener.accept().await {
            Ok((stream, peer)) => {
                connections.spawn(serve(shared.clone(), stream, peer));
            }
            Err(error) => {
                tracing::warn!(%error, "accepting a TCP connection failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    // Without TCP_NODELAY a second small frame waits for the client's delayed ACK, which under
    // paused tokio time lets the clock jump past the client's timeout.
    if let Err(error) = stream.set_nodelay(true) {
        tracing::debug!(%peer, %error, "setting TCP_NODELAY failed");
    }
    let max = shared.config.max_frame_size;
    let config = WebSocketConfig::default()
        .max_frame_size(Some(max))
        .max_message_size(Some(max));
    let socket = match tokio_tungstenite::accept_async_with_config(stream, Some(config)).await {
        Ok(socket) => socket,
        Err(error) => {
            tracing::debug!(%peer, %error, "WebSocket handshake failed");
            return;
        }
    };
    let (outbox, outgoing) = mpsc::unbounded_channel();
    let kill = Arc::new(tokio::sync::Notify::new());
    let connection = register(&shared, outbox.clone(), kill.clone());
    tracing::info!(connection = connection.get(), %peer, "connection opened");
    let _ = outbox.send(Outgoing::Frame {
        text: askless_protocol::marker::WELCOME_TEXT.to_owned(),
        class: FrameClass::Welcome,
    });
    drop(outbox);

    let (sink, stream) = socket.split();
    let mut in_flight: FuturesUnordered<Work> = FuturesUnordered::new();
    tokio::select! {
        () = read_loop(&shared, connection, stream, &kill, &mut in_flight) => {}
        () = write_loop(&shared, connection, sink, outgoing) => {}
    }
    records::connection_closed(&shared, connection);
    if !in_flight.is_empty() {
        // Handlers still running keep going: their responses are queued in the record.
        tokio::spawn(async move { while in_flight.next().await.is_some() {} });
    }
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

type Stream = futures_util::stream::SplitStream<WebSocketStream<TcpStream>>;
type Sink = futures_util::stream::SplitSink<WebSocketStream<TcpStream>, Message>;

async fn read_loop(
    shared: &Arc<Shared>,
    connection: ConnectionId,
    mut stream: Stream,
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
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) => on_text(shared, connection, text.as_str(), in_flight),
                Some(Ok(Message::Binary(bytes))) => match std::str::from_utf8(&bytes) {
                    Ok(text) => on_text(shared, connection, text, in_flight),
                    Err(_) => tracing::warn!(connection = connection.get(), "binary frame is not UTF-8; dropped"),
                },
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    tracing::debug!(connection = connection.get(), %error, "connection read failed");
                    return;
                }
                None => return,
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
    mut sink: Sink,
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
                let _ = sink.send(Message::Close(None)).await;
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
            if sink.send(Message::text(text.clone())).await.is_err() {
                // The reader notices the broken connection and ends the connection.
                std::future::pending::<()>().await;
            }
            tracing::trace!(connection = connection.get(), len = text.len(), "frame sent");
            shared.record_frame(connection, Direction::Sent, text.clone());
        }
    }
    // The connection entry was removed (server restart): terminate without close frame.
}
