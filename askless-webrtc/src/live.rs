//! A call in progress, whichever side started it.

use std::fmt;
use std::sync::Arc;

use askless_protocol::UserId;
use askless_protocol::call::{CallCloseBody, IceCandidateList, ListenForACallValue};
use askless_protocol::routes;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use webrtc::peer_connection::RTCPeerConnectionState;

use crate::client::{ActiveCallGuard, CallContext};
use crate::media::{MediaCounters, MediaStats, RemoteTrack};
use crate::peer::PeerSession;
use crate::signalling::SignalStream;

/// The reason a live call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The local application closed or dropped the call; a hang-up was sent to the peer.
    ClosedLocally,
    /// The peer hung up: its hang-up value arrived.
    ClosedByRemote,
    /// The server stopped the signalling stream about the peer. The server does this when the
    /// peer hangs up (its hang-up value then arrives after the stream has ended and is lost)
    /// and when it cleans the call up for another reason.
    SignallingEnded,
    /// The media connection failed (ICE or DTLS); a hang-up was sent to the peer.
    ConnectionFailed,
}

/// Something that happened to a live call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveCallEvent {
    /// The peer's signalling connection dropped (`false`) or came back (`true`). The media
    /// connection does not depend on it and may go on.
    RemoteUserConnection(bool),
    /// The call ended; no event follows.
    Closed(CloseReason),
}

/// A call in progress: media flows peer to peer until either side closes it.
///
/// Dropping a `LiveCall` closes the call as [`close`](Self::close) does, in the background.
/// A hang-up is sent only when this side ends the call. The reference client also sends one
/// after the peer hung up, which makes the server clean up a second time.
pub struct LiveCall {
    remote_user_id: UserId,
    counters: Arc<MediaCounters>,
    events: mpsc::UnboundedReceiver<LiveCallEvent>,
    remote_tracks: Option<mpsc::UnboundedReceiver<RemoteTrack>>,
    closed: watch::Receiver<Option<CloseReason>>,
    remote_connected: watch::Receiver<Option<bool>>,
    close_tx: Option<oneshot::Sender<()>>,
    driver: Option<JoinHandle<()>>,
}

impl fmt::Debug for LiveCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveCall")
            .field("remote_user_id", &self.remote_user_id)
            .field("closed", &*self.closed.borrow())
            .finish_non_exhaustive()
    }
}

/// The signalling streams a live call keeps.
pub(crate) struct LiveStreams {
    pub(crate) listen_for_a_call: SignalStream<ListenForACallValue>,
    /// Only the callee listens to the peer's candidates; the callee never sends its own.
    pub(crate) ice_candidates: Option<SignalStream<IceCandidateList>>,
}

impl LiveCall {
    pub(crate) fn start(
        context: Arc<CallContext>,
        remote_user_id: UserId,
        session: Arc<PeerSession>,
        streams: LiveStreams,
        guard: Option<ActiveCallGuard>,
    ) -> Self {
        let (events_tx, events) = mpsc::unbounded_channel();
        let (closed_tx, closed) = watch::channel(None);
        let (connected_tx, remote_connected) = watch::channel(None);
        let (close_tx, close_rx) = oneshot::channel();
        let counters = session.counters();
        let remote_tracks = session.take_remote_tracks();
        let driver = tokio::spawn(drive(Driver {
            context,
            remote_user_id: remote_user_id.clone(),
            session,
            streams,
            close_rx,
            events_tx,
            closed_tx,
            connected_tx,
            _guard: guard,
        }));
        tracing::info!(remote_user_id = %remote_user_id, "call started");
        Self {
            remote_user_id,
            counters,
            events,
            remote_tracks,
            closed,
            remote_connected,
            close_tx: Some(close_tx),
            driver: Some(driver),
        }
    }

    /// Returns the other participant.
    pub fn remote_user_id(&self) -> &UserId {
        &self.remote_user_id
    }

    /// Waits for the next event; `None` after the [`LiveCallEvent::Closed`] event was taken.
    pub async fn next_event(&mut self) -> Option<LiveCallEvent> {
        self.events.recv().await
    }

    /// Waits for the next track the peer sends; `None` once the call has ended.
    pub async fn next_remote_track(&mut self) -> Option<RemoteTrack> {
        match &mut self.remote_tracks {
            Some(tracks) => tracks.recv().await,
            None => None,
        }
    }

    /// Returns the received RTP packet counts so far.
    pub fn media_stats(&self) -> MediaStats {
        self.counters.snapshot()
    }

    /// Returns whether the peer's signalling connection is up, as last reported by the
    /// server; `None` before any report.
    pub fn remote_user_is_connected(&self) -> Option<bool> {
        *self.remote_connected.borrow()
    }

    /// Returns why the call ended, or `None` while it goes on.
    pub fn close_reason(&self) -> Option<CloseReason> {
        *self.closed.borrow()
    }

    /// Waits until the call ends, from either side, and returns why.
    pub async fn closed(&mut self) -> CloseReason {
        let waited = match self.closed.wait_for(Option::is_some).await {
            Ok(reason) => *reason,
            Err(_) => None,
        };
        // The driver is gone without a reason only if its task was cancelled at shutdown.
        waited
            .or_else(|| self.close_reason())
            .unwrap_or(CloseReason::ClosedLocally)
    }

    /// Hangs up: sends the hang-up to the peer, closes the media connection and waits for
    /// both. Returns at once when the call has already ended.
    pub async fn close(mut self) -> CloseReason {
        if let Some(close_tx) = self.close_tx.take() {
            let _ = close_tx.send(());
        }
        if let Some(driver) = self.driver.take() {
            let _ = driver.await;
        }
        self.close_reason().unwrap_or(CloseReason::ClosedLocally)
    }
}

impl Drop for LiveCall {
    fn drop(&mut self) {
        // Dropping the close sender makes the driver hang up; the driver task goes on alone.
        self.close_tx.take();
    }
}

struct Driver {
    context: Arc<CallContext>,
    remote_user_id: UserId,
    session: Arc<PeerSession>,
    streams: LiveStreams,
    close_rx: oneshot::Receiver<()>,
    events_tx: mpsc::UnboundedSender<LiveCallEvent>,
    closed_tx: watch::Sender<Option<CloseReason>>,
    connected_tx: watch::Sender<Option<bool>>,
    _guard: Option<ActiveCallGuard>,
}

async fn drive(mut driver: Driver) {
    let mut state = driver.session.state();
    let mut state_open = true;
    let remote = driver.remote_user_id.clone();
    let reason = loop {
        tokio::select! {
            _ = &mut driver.close_rx => break CloseReason::ClosedLocally,
            value = driver.streams.listen_for_a_call.next() => match value {
                Some(value) => {
                    if let Some(connected) = value.remote_user_is_connected {
                        tracing::info!(remote_user_id = %remote, connected, "remote user connection changed");
                        driver.connected_tx.send_replace(Some(connected));
                        let _ = driver.events_tx.send(LiveCallEvent::RemoteUserConnection(connected));
                    }
                    if value.call_closed == Some(true) {
                        break CloseReason::ClosedByRemote;
                    }
                }
                None => break CloseReason::SignallingEnded,
            },
            list = next_or_pending(&mut driver.streams.ice_candidates) => match list {
                Some(list) => {
                    tracing::debug!(remote_user_id = %remote, count = list.ice_candidate_list.len(), "remote ICE candidates received");
                    driver.session.add_remote_candidates(list.ice_candidate_list).await;
                }
                None => driver.streams.ice_candidates = None,
            },
            changed = state.changed(), if state_open => {
                if changed.is_err() {
                    state_open = false;
                    continue;
                }
                let current = *state.borrow_and_update();
                if current == RTCPeerConnectionState::Failed {
                    break CloseReason::ConnectionFailed;
                }
            },
        }
    };
    tracing::debug!(remote_user_id = %remote, ?reason, "call ending");

    // Hang up before dropping the streams, so the server cleans up with the hang-up rather
    // than by noticing a missing listener.
    if matches!(reason, CloseReason::ClosedLocally | CloseReason::ConnectionFailed) {
        let body = CallCloseBody::new(remote.clone());
        if let Err(error) = driver.context.signalling.create_call_close(body).await {
            tracing::debug!(remote_user_id = %remote, route = routes::CALL_CLOSE, %error, "hang-up not delivered");
        }
    }
    drop(driver.streams);
    driver.session.close().await;
    tracing::info!(remote_user_id = %remote, ?reason, "call ended");
    driver.closed_tx.send_replace(Some(reason));
    let _ = driver.events_tx.send(LiveCallEvent::Closed(reason));
}

/// Waits for the next item of an optional stream; never resolves when there is none.
pub(crate) async fn next_or_pending<T>(stream: &mut Option<SignalStream<T>>) -> Option<T> {
    match stream {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}
