//! An in-memory signalling server for tests: the call routes of the Askless server, for
//! several users in one process.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll};

use askless_protocol::call::{
    CallCloseBody, CallInfo, CallReceiveValue, CallRequestBody, CallResponseBody, IceCandidate,
    IceCandidateList, ListenForACallValue,
};
use askless_protocol::{AsklessErrorCode, ErrorBody, UserId};
use async_trait::async_trait;
use futures::Stream;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::signalling::{CallSignalling, SignalStream, SignallingError};

/// The key of a user in the hub's maps. User ids compare loosely, as the server compares
/// them in map keys: the number 2 and the string "2" are one user.
type UserKey = String;

fn key_of(user_id: &UserId) -> UserKey {
    user_id.to_string()
}

/// A signalling hub shared by the users of one process; it reproduces the call routes of the
/// Askless server.
///
/// It keeps the server's call state: the last signal and ICE candidate list each user posted
/// for another, the pending call requests of each callee, and the users whose peer stopped
/// listening. Listeners are per user. Each [`MemorySignalling`] handle is one user's
/// connection; it can be disconnected and reconnected to simulate a dropped connection.
///
/// The hub differs from the real server in four ways. A listener stopped by the server is
/// removed as soon as the client drops its stream, instead of at the next ping. Every value
/// is acknowledged as soon as it is delivered. Membership in the pending and peer-gone lists
/// compares user ids loosely. One user has at most one connection.
#[derive(Clone, Default)]
pub struct MemorySignallingHub {
    state: Arc<Mutex<HubState>>,
}

impl fmt::Debug for MemorySignallingHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let listeners = self.lock().listeners.len();
        f.debug_struct("MemorySignallingHub")
            .field("listeners", &listeners)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct HubState {
    /// The last signalling object posted by one user for another, keyed by (from, to).
    signal: HashMap<(UserKey, UserKey), Map<String, Value>>,
    /// The last ICE candidate list posted by one user for another, keyed by (from, to).
    ice: HashMap<(UserKey, UserKey), Vec<IceCandidate>>,
    /// The callers whose request to a callee is unanswered, keyed by callee; a list once
    /// created stays, possibly empty.
    pending: HashMap<UserKey, Vec<UserId>>,
    /// Users whose peer's listen-for-a-call listener stopped; a user may appear more than once.
    alone: Vec<UserKey>,
    /// Whether each user's connection is up.
    connected: HashMap<UserKey, bool>,
    listeners: Vec<Listener>,
    next_listener_id: u64,
    /// Listen-for-a-call values waiting for [`HubState::flush`], by listener id.
    outbox: Vec<(u64, ListenForACallValue)>,
}

struct Listener {
    id: u64,
    user: UserKey,
    /// Registered on the server side: false while the user's connection is down.
    registered: bool,
    /// Stopped by the server: the client's stream has ended and later values are lost.
    stopped: bool,
    sink: ListenerSink,
}

enum ListenerSink {
    CallReceive(mpsc::UnboundedSender<CallReceiveValue>),
    ListenForACall {
        remote: UserId,
        sender: mpsc::UnboundedSender<ListenForACallValue>,
    },
    IceCandidateList {
        remote: UserId,
        sender: mpsc::UnboundedSender<IceCandidateList>,
    },
}

impl ListenerSink {
    fn listen_for_a_call_remote(&self) -> Option<&UserId> {
        match self {
            Self::ListenForACall { remote, .. } => Some(remote),
            _ => None,
        }
    }

    /// Closes the client's stream, as a stop-listening event does.
    fn close(&mut self) {
        // Replacing the sender with a closed one drops the original, which ends the stream.
        match self {
            Self::CallReceive(sender) => *sender = mpsc::unbounded_channel().0,
            Self::ListenForACall { sender, .. } => *sender = mpsc::unbounded_channel().0,
            Self::IceCandidateList { sender, .. } => *sender = mpsc::unbounded_channel().0,
        }
    }
}

impl MemorySignallingHub {
    /// Creates an empty hub.
    pub fn new() -> Self {
        Self::default()
    }

    /// Connects `user_id` as an authenticated user and returns its signalling handle.
    pub fn connect(&self, user_id: impl Into<UserId>) -> MemorySignalling {
        let user_id = user_id.into();
        self.lock().connected.insert(key_of(&user_id), true);
        tracing::info!(user_id = %user_id, "memory signalling user connected");
        MemorySignalling {
            hub: self.clone(),
            user_id,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Returns the number of listeners currently registered on the server side for `user_id`.
    pub fn registered_listeners(&self, user_id: &UserId) -> usize {
        let user = key_of(user_id);
        self.lock()
            .listeners
            .iter()
            .filter(|listener| listener.user == user && listener.registered)
            .count()
    }

    /// Returns whether a call request from `caller` to `callee` is pending.
    pub fn is_call_pending(&self, caller: &UserId, callee: &UserId) -> bool {
        let state = self.lock();
        state
            .pending
            .get(&key_of(callee))
            .is_some_and(|callers| callers.iter().any(|c| c.loosely_equals(caller)))
    }

    fn remove_listener(&self, id: u64) {
        let mut state = self.lock();
        let Some(index) = state.listeners.iter().position(|l| l.id == id) else {
            return;
        };
        if state.listeners[index].registered {
            state.on_listener_removed(index);
        }
        state.flush();
        if let Some(index) = state.listeners.iter().position(|l| l.id == id) {
            state.listeners.remove(index);
        }
    }
}

impl HubState {
    fn is_connected(&self, user: &UserKey) -> bool {
        self.connected.get(user).copied().unwrap_or(false)
    }

    fn add_listener(&mut self, user: UserKey, sink: ListenerSink) -> u64 {
        self.next_listener_id += 1;
        let id = self.next_listener_id;
        self.listeners.push(Listener {
            id,
            user,
            registered: true,
            stopped: false,
            sink,
        });
        id
    }

    /// Computes the call-receive value of `user`: the first pending caller, if any.
    fn call_receive_value(&self, user: &UserKey) -> CallReceiveValue {
        let first = self.pending.get(user).and_then(|callers| callers.first());
        match first {
            Some(caller) => {
                let signal = self.signal.get(&(key_of(caller), user.clone()));
                CallReceiveValue {
                    has_call_request: true,
                    remote_user_id: Some(caller.clone()),
                    sdp: signal
                        .and_then(|s| s.get("sdp"))
                        .and_then(|v| serde_json::from_value(v.clone()).ok()),
                    additional_data: signal
                        .and_then(|s| s.get("additionalData"))
                        .and_then(|v| v.as_object().cloned()),
                }
            }
            None => CallReceiveValue {
                has_call_request: false,
                remote_user_id: None,
                sdp: None,
                additional_data: None,
            },
        }
    }

    /// Computes the listen-for-a-call value of `user` about `remote`: the signal `remote`
    /// stored for `user`, plus the user id of `remote`.
    fn listen_for_a_call_value(&self, user: &UserKey, remote: &UserId) -> ListenForACallValue {
        let mut object = self
            .signal
            .get(&(key_of(remote), user.clone()))
            .cloned()
            .unwrap_or_default();
        object.insert("remoteUserId".to_owned(), remote.to_value());
        serde_json::from_value(Value::Object(object)).unwrap_or_default()
    }

    fn ice_value(&mut self, user: &UserKey, remote: &UserId) -> IceCandidateList {
        // Delivery is the acknowledgement, which deletes the stored list.
        let list = self
            .ice
            .remove(&(key_of(remote), user.clone()))
            .unwrap_or_default();
        IceCandidateList {
            remote_user_id: remote.clone(),
            ice_candidate_list: list,
        }
    }

    /// Queues a value for one listen-for-a-call listener. Like the server, the hub sends the
    /// stop-listening events of an operation first and its values afterwards, in
    /// [`flush`](Self::flush).
    fn push_listen_for_a_call(&mut self, index: usize, value: ListenForACallValue) {
        let listener = &self.listeners[index];
        if listener.registered {
            self.outbox.push((listener.id, value));
        }
    }

    /// Delivers the queued listen-for-a-call values. A listener that the server stopped but
    /// that is still registered loses the value, yet the client acknowledges it: a rejection
    /// or cancellation value, once acknowledged, cleans the call up.
    fn flush(&mut self) {
        while !self.outbox.is_empty() {
            for (id, value) in std::mem::take(&mut self.outbox) {
                let Some(listener) = self.listeners.iter().find(|l| l.id == id) else {
                    continue;
                };
                let ListenerSink::ListenForACall { remote, sender } = &listener.sink else {
                    continue;
                };
                if !listener.registered {
                    continue;
                }
                let remote = key_of(remote);
                let user = listener.user.clone();
                let rejected = value.call_accepted == Some(false);
                if !listener.stopped {
                    let _ = sender.send(value);
                }
                if rejected {
                    self.clean_up(&user, &remote);
                }
            }
        }
    }

    /// Sends `value` to every listen-for-a-call listener of `user`, optionally only those about
    /// `about`.
    fn push_fixed(&mut self, user: &UserKey, about: Option<&UserKey>, value: &ListenForACallValue) {
        let targets: Vec<usize> = self
            .listeners
            .iter()
            .enumerate()
            .filter(|(_, l)| &l.user == user)
            .filter(|(_, l)| match (l.sink.listen_for_a_call_remote(), about) {
                (Some(remote), Some(about)) => &key_of(remote) == about,
                (Some(_), None) => true,
                (None, _) => false,
            })
            .map(|(index, _)| index)
            .collect();
        for index in targets {
            self.push_listen_for_a_call(index, value.clone());
        }
    }

    /// Recomputes and sends the value of every listen-for-a-call listener of `user`.
    fn notify_listen_for_a_call(&mut self, user: &UserKey) {
        let targets: Vec<(usize, UserId)> = self
            .listeners
            .iter()
            .enumerate()
            .filter(|(_, l)| &l.user == user)
            .filter_map(|(index, l)| l.sink.listen_for_a_call_remote().map(|r| (index, r.clone())))
            .collect();
        for (index, remote) in targets {
            let value = self.listen_for_a_call_value(user, &remote);
            self.push_listen_for_a_call(index, value);
        }
    }

    fn notify_call_receive(&mut self, user: &UserKey) {
        let value = self.call_receive_value(user);
        for listener in &self.listeners {
            if &listener.user != user || !listener.registered || listener.stopped {
                continue;
            }
            if let ListenerSink::CallReceive(sender) = &listener.sink {
                let _ = sender.send(value.clone());
            }
        }
    }

    fn notify_ice(&mut self, user: &UserKey) {
        let targets: Vec<(usize, UserId)> = self
            .listeners
            .iter()
            .enumerate()
            .filter(|(_, l)| &l.user == user && l.registered && !l.stopped)
            .filter_map(|(index, l)| match &l.sink {
                ListenerSink::IceCandidateList { remote, .. } => Some((index, remote.clone())),
                _ => None,
            })
            .collect();
        for (index, remote) in targets {
            let value = self.ice_value(user, &remote);
            if let ListenerSink::IceCandidateList { sender, .. } = &self.listeners[index].sink {
                let _ = sender.send(value);
            }
        }
    }

    /// Clean-up of the call between `x` and `y`: stops every listen-for-a-call listener of
    /// both users and deletes their call state.
    fn clean_up(&mut self, x: &UserKey, y: &UserKey) {
        tracing::debug!(x = %x, y = %y, "memory signalling cleans up a call");
        for listener in &mut self.listeners {
            let involved = &listener.user == x || &listener.user == y;
            if involved && listener.sink.listen_for_a_call_remote().is_some() {
                listener.stopped = true;
                listener.sink.close();
            }
        }
        for (from, to) in [(x, y), (y, x)] {
            self.signal.remove(&(from.clone(), to.clone()));
            self.ice.remove(&(from.clone(), to.clone()));
        }
        if let Some(callers) = self.pending.get_mut(y) {
            callers.retain(|caller| &key_of(caller) != x);
        }
        if let Some(callers) = self.pending.get_mut(x) {
            callers.retain(|caller| &key_of(caller) != y);
        }
        for user in [x, y] {
            if let Some(position) = self.alone.iter().position(|u| u == user) {
                self.alone.remove(position);
            }
        }
    }

    fn is_pending_between(&self, a: &UserKey, b: &UserKey) -> bool {
        let pending = |callee: &UserKey, caller: &UserKey| {
            self.pending
                .get(callee)
                .is_some_and(|callers| callers.iter().any(|c| &key_of(c) == caller))
        };
        pending(a, b) || pending(b, a)
    }

    /// The server's hook when a listener leaves the server side (the client dropped it, or
    /// its connection went down).
    fn on_listener_removed(&mut self, index: usize) {
        let listener = &mut self.listeners[index];
        listener.registered = false;
        let Some(remote) = listener.sink.listen_for_a_call_remote().cloned() else {
            return;
        };
        let user = listener.user.clone();
        let remote = key_of(&remote);

        if let Some(position) = self.alone.iter().position(|u| u == &user) {
            self.alone.remove(position);
            self.clean_up(&user, &remote);
        } else {
            self.alone.push(remote.clone());
            let gone = ListenForACallValue {
                remote_user_is_connected: Some(false),
                ..Default::default()
            };
            self.push_fixed(&remote, None, &gone);
        }

        if self.is_pending_between(&user, &remote) {
            let cancelled = ListenForACallValue {
                call_closed: Some(true),
                call_accepted: Some(false),
                ..Default::default()
            };
            for (x, y) in [(&user, &remote), (&remote, &user)] {
                self.clean_up(x, y);
                self.push_fixed(y, Some(x), &cancelled);
            }
        }
    }

    /// The server's hook when `user` starts listening to listen-for-a-call about `remote`.
    fn on_listen_for_a_call_started(&mut self, remote: &UserId) {
        let remote = key_of(remote);
        if let Some(position) = self.alone.iter().position(|u| u == &remote) {
            self.alone.remove(position);
        }
        let back = ListenForACallValue {
            remote_user_is_connected: Some(true),
            ..Default::default()
        };
        self.push_fixed(&remote, None, &back);
    }
}

/// One user's connection to a [`MemorySignallingHub`].
#[derive(Clone)]
pub struct MemorySignalling {
    hub: MemorySignallingHub,
    user_id: UserId,
}

impl fmt::Debug for MemorySignalling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemorySignalling")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl MemorySignalling {
    /// Returns the user this handle is connected as.
    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    /// Drops the connection: the server removes every listener of the user, as it does when
    /// the WebSocket closes, while the client's streams stay open waiting for a reconnection.
    pub fn disconnect(&self) {
        let user = key_of(&self.user_id);
        let mut state = self.hub.lock();
        state.connected.insert(user.clone(), false);
        let indexes: Vec<usize> = state
            .listeners
            .iter()
            .enumerate()
            .filter(|(_, l)| l.user == user && l.registered)
            .map(|(index, _)| index)
            .collect();
        for index in indexes {
            state.on_listener_removed(index);
        }
        state.flush();
        tracing::info!(user_id = %self.user_id, "memory signalling user disconnected");
    }

    /// Restores the connection: the client listens again with every stream still open, and
    /// the server runs its start hooks and sends each listener its current value.
    pub fn reconnect(&self) {
        let user = key_of(&self.user_id);
        let mut state = self.hub.lock();
        state.connected.insert(user.clone(), true);
        tracing::info!(user_id = %self.user_id, "memory signalling user reconnected");
        let indexes: Vec<usize> = state
            .listeners
            .iter()
            .enumerate()
            .filter(|(_, l)| l.user == user && !l.registered && !l.stopped)
            .map(|(index, _)| index)
            .collect();
        for index in indexes {
            state.listeners[index].registered = true;
            match &state.listeners[index].sink {
                ListenerSink::CallReceive(sender) => {
                    let value = state.call_receive_value(&user);
                    let _ = sender.send(value);
                }
                ListenerSink::ListenForACall { remote, .. } => {
                    let remote = remote.clone();
                    let value = state.listen_for_a_call_value(&user, &remote);
                    state.push_listen_for_a_call(index, value);
                    state.on_listen_for_a_call_started(&remote);
                }
                ListenerSink::IceCandidateList { remote, .. } => {
                    let remote = remote.clone();
                    let value = state.ice_value(&user, &remote);
                    if let ListenerSink::IceCandidateList { sender, .. } = &state.listeners[index].sink {
                        let _ = sender.send(value);
                    }
                }
            }
        }
        state.flush();
    }

    fn check_connected(&self, state: &HubState) -> Result<UserKey, SignallingError> {
        let user = key_of(&self.user_id);
        if state.is_connected(&user) {
            Ok(user)
        } else {
            Err(SignallingError::Unavailable(format!(
                "user {} is not connected to the memory signalling hub",
                self.user_id
            )))
        }
    }

    fn stream<T: Send + 'static>(&self, id: u64, receiver: mpsc::UnboundedReceiver<T>) -> SignalStream<T> {
        Box::pin(ListenerStream {
            receiver,
            hub: Arc::downgrade(&self.hub.state),
            id,
        })
    }
}

/// The client's end of a listener; dropping it removes the listener from the hub.
struct ListenerStream<T> {
    receiver: mpsc::UnboundedReceiver<T>,
    hub: Weak<Mutex<HubState>>,
    id: u64,
}

impl<T> Stream for ListenerStream<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.receiver.poll_recv(cx)
    }
}

impl<T> Drop for ListenerStream<T> {
    fn drop(&mut self) {
        if let Some(state) = self.hub.upgrade() {
            MemorySignallingHub { state }.remove_listener(self.id);
        }
    }
}

#[async_trait]
impl CallSignalling for MemorySignalling {
    async fn listen_call_receive(&self) -> Result<SignalStream<CallReceiveValue>, SignallingError> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut state = self.hub.lock();
        let user = self.check_connected(&state)?;
        let _ = sender.send(state.call_receive_value(&user));
        let id = state.add_listener(user, ListenerSink::CallReceive(sender));
        drop(state);
        Ok(self.stream(id, receiver))
    }

    async fn listen_for_a_call(
        &self,
        remote_user_id: UserId,
    ) -> Result<SignalStream<ListenForACallValue>, SignallingError> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut state = self.hub.lock();
        let user = self.check_connected(&state)?;
        let id = state.add_listener(
            user.clone(),
            ListenerSink::ListenForACall {
                remote: remote_user_id.clone(),
                sender,
            },
        );
        let index = state.listeners.len() - 1;
        let value = state.listen_for_a_call_value(&user, &remote_user_id);
        state.push_listen_for_a_call(index, value);
        state.on_listen_for_a_call_started(&remote_user_id);
        state.flush();
        drop(state);
        Ok(self.stream(id, receiver))
    }

    async fn listen_ice_candidate_list(
        &self,
        remote_user_id: UserId,
    ) -> Result<SignalStream<IceCandidateList>, SignallingError> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut state = self.hub.lock();
        let user = self.check_connected(&state)?;
        let value = state.ice_value(&user, &remote_user_id);
        let _ = sender.send(value);
        let id = state.add_listener(
            user,
            ListenerSink::IceCandidateList {
                remote: remote_user_id,
                sender,
            },
        );
        drop(state);
        Ok(self.stream(id, receiver))
    }

    async fn create_call_request(&self, body: CallRequestBody) -> Result<CallInfo, SignallingError> {
        let mut state = self.hub.lock();
        let user = self.check_connected(&state)?;
        let callee = key_of(&body.remote_user_id);
        state
            .pending
            .entry(callee.clone())
            .or_default()
            .push(self.user_id.clone());
        let mut signal = Map::new();
        signal.insert(
            "sdp".to_owned(),
            serde_json::to_value(&body.sdp).unwrap_or(Value::Null),
        );
        signal.insert("additionalData".to_owned(), Value::Object(body.additional_data));
        state.signal.insert((user, callee.clone()), signal);
        state.notify_call_receive(&callee);
        Ok(CallInfo {
            info: "You requested a call".to_owned(),
        })
    }

    async fn create_call_response(&self, body: CallResponseBody) -> Result<CallInfo, SignallingError> {
        let mut state = self.hub.lock();
        let user = self.check_connected(&state)?;
        let caller = key_of(&body.remote_user_id);
        if caller == user {
            // The reference server process exits on this input, so the hub returns an error.
            return Err(SignallingError::Server(ErrorBody::new(
                AsklessErrorCode::InternalError,
                "remoteUserId must be another user",
            )));
        }
        if !state.pending.contains_key(&user) {
            return Err(SignallingError::Server(ErrorBody::new(
                AsklessErrorCode::CallNotAvailableAnymore,
                "The call is no longer available",
            )));
        }
        let mut signal = Map::new();
        if body.call_accepted {
            signal.insert("callAccepted".to_owned(), Value::Bool(true));
            if let Some(sdp) = &body.sdp {
                signal.insert("sdp".to_owned(), serde_json::to_value(sdp).unwrap_or(Value::Null));
            }
        } else {
            signal.insert("callClosed".to_owned(), Value::Bool(true));
            signal.insert("callAccepted".to_owned(), Value::Bool(false));
        }
        signal.insert("additionalData".to_owned(), Value::Object(body.additional_data));
        state.signal.insert((user.clone(), caller.clone()), signal);
        if let Some(callers) = state.pending.get_mut(&user) {
            callers.retain(|c| key_of(c) != caller);
        }
        state.notify_listen_for_a_call(&caller);
        state.flush();
        let verb = if body.call_accepted {
            "accepted"
        } else {
            "rejected"
        };
        Ok(CallInfo {
            info: format!(
                "You (user {}) {verb} the call of user {}",
                self.user_id, body.remote_user_id
            ),
        })
    }

    async fn create_ice_candidate_list(&self, body: IceCandidateList) -> Result<(), SignallingError> {
        let mut state = self.hub.lock();
        let user = self.check_connected(&state)?;
        let peer = key_of(&body.remote_user_id);
        state.ice.insert((user, peer.clone()), body.ice_candidate_list);
        state.notify_ice(&peer);
        Ok(())
    }

    async fn create_call_close(&self, body: CallCloseBody) -> Result<(), SignallingError> {
        let mut state = self.hub.lock();
        let user = self.check_connected(&state)?;
        let peer = key_of(&body.remote_user_id);
        state.clean_up(&user, &peer);
        let closed = ListenForACallValue {
            call_closed: Some(true),
            ..Default::default()
        };
        state.push_fixed(&peer, Some(&user), &closed);
        state.flush();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use askless_protocol::call::{SdpType, SessionDescription};
    use futures::{FutureExt, StreamExt};
    use serde_json::json;

    fn offer() -> SessionDescription {
        SessionDescription {
            sdp: "v=0 offer".into(),
            sdp_type: SdpType::Offer,
        }
    }

    fn request(to: i64) -> CallRequestBody {
        CallRequestBody {
            remote_user_id: UserId::from(to),
            sdp: offer(),
            additional_data: json!({"videoCall": true}).as_object().cloned().unwrap(),
        }
    }

    fn rejection(to: i64) -> CallResponseBody {
        CallResponseBody {
            call_accepted: false,
            remote_user_id: UserId::from(to),
            sdp: None,
            additional_data: json!({"reason": "busy"}).as_object().cloned().unwrap(),
        }
    }

    /// Returns the next item that is already available: `Some(None)` when the stream ended,
    /// `None` when nothing is ready.
    fn ready<T>(stream: &mut SignalStream<T>) -> Option<Option<T>> {
        stream.next().now_or_never()
    }

    #[tokio::test]
    async fn response_without_request_is_unavailable() {
        let hub = MemorySignallingHub::new();
        let bob = hub.connect(2);
        let error = bob.create_call_response(rejection(1)).await.unwrap_err();
        let SignallingError::Server(body) = error else {
            panic!("expected a server error, got {error:?}");
        };
        assert_eq!(body.code, Some(AsklessErrorCode::CallNotAvailableAnymore));
    }

    #[tokio::test]
    async fn rejection_cleans_up_both_streams() {
        let hub = MemorySignallingHub::new();
        let alice = hub.connect(1);
        let bob = hub.connect(2);
        let mut receive = bob.listen_call_receive().await.unwrap();
        assert_eq!(
            ready(&mut receive).flatten().map(|v| v.has_call_request),
            Some(false)
        );

        let mut alice_call = alice.listen_for_a_call(UserId::from(2)).await.unwrap();
        let first = ready(&mut alice_call).flatten().unwrap();
        assert_eq!(first.remote_user_id, Some(UserId::from(2)));
        assert_eq!(first.call_accepted, None);

        let info = alice.create_call_request(request(2)).await.unwrap();
        assert_eq!(info.info, "You requested a call");
        let incoming = ready(&mut receive).flatten().unwrap();
        assert!(incoming.has_call_request);
        assert_eq!(incoming.remote_user_id, Some(UserId::from(1)));
        assert_eq!(incoming.sdp, Some(offer()));

        let mut bob_call = bob.listen_for_a_call(UserId::from(1)).await.unwrap();
        let offer_value = ready(&mut bob_call).flatten().unwrap();
        assert_eq!(offer_value.sdp, Some(offer()));
        let presence = ready(&mut alice_call).flatten().unwrap();
        assert_eq!(presence.remote_user_is_connected, Some(true));

        let info = bob.create_call_response(rejection(1)).await.unwrap();
        assert_eq!(info.info, "You (user 2) rejected the call of user 1");
        let rejected = ready(&mut alice_call).flatten().unwrap();
        assert_eq!(rejected.call_closed, Some(true));
        assert_eq!(rejected.call_accepted, Some(false));
        assert_eq!(rejected.additional_data.unwrap()["reason"], "busy");

        // Acknowledging the rejection cleans up: both call streams are stopped.
        assert!(matches!(ready(&mut alice_call), Some(None)));
        assert!(matches!(ready(&mut bob_call), Some(None)));
        assert!(!hub.is_call_pending(&UserId::from(1), &UserId::from(2)));
    }

    #[tokio::test]
    async fn caller_cancel_stops_callee_stream() {
        let hub = MemorySignallingHub::new();
        let alice = hub.connect(5);
        let bob = hub.connect(6);
        let alice_call = alice.listen_for_a_call(UserId::from(6)).await.unwrap();
        alice.create_call_request(request(6)).await.unwrap();
        let mut bob_call = bob.listen_for_a_call(UserId::from(5)).await.unwrap();
        assert!(ready(&mut bob_call).flatten().unwrap().sdp.is_some());

        drop(alice_call);

        // The stop-listening events come before the values, so the callee's stream just ends.
        assert!(matches!(ready(&mut bob_call), Some(None)));
        assert!(!hub.is_call_pending(&UserId::from(5), &UserId::from(6)));
        let mut receive = bob.listen_call_receive().await.unwrap();
        assert_eq!(
            ready(&mut receive).flatten().map(|v| v.has_call_request),
            Some(false)
        );
    }

    #[tokio::test]
    async fn late_response_spoils_next_call() {
        let hub = MemorySignallingHub::new();
        let alice = hub.connect(1);
        let bob = hub.connect(2);
        let alice_call = alice.listen_for_a_call(UserId::from(2)).await.unwrap();
        alice.create_call_request(request(2)).await.unwrap();
        drop(alice_call);

        // The call is gone, yet a late rejection still succeeds and is stored.
        bob.create_call_response(rejection(1)).await.unwrap();
        let mut next_call = alice.listen_for_a_call(UserId::from(2)).await.unwrap();
        let first = ready(&mut next_call).flatten().unwrap();
        assert_eq!(first.call_closed, Some(true));
        assert_eq!(first.call_accepted, Some(false));
    }

    #[tokio::test]
    async fn user_ids_compare_loosely() {
        let hub = MemorySignallingHub::new();
        let alice = hub.connect(1);
        let bob = hub.connect("2");
        let mut receive = bob.listen_call_receive().await.unwrap();
        ready(&mut receive);
        alice.create_call_request(request(2)).await.unwrap();
        let incoming = ready(&mut receive).flatten().unwrap();
        assert!(incoming.has_call_request);
    }

    #[tokio::test]
    async fn disconnect_reports_presence_to_peer() {
        let hub = MemorySignallingHub::new();
        let alice = hub.connect(1);
        let bob = hub.connect(2);
        let mut alice_call = alice.listen_for_a_call(UserId::from(2)).await.unwrap();
        ready(&mut alice_call);
        let bob_call = bob.listen_for_a_call(UserId::from(1)).await.unwrap();
        let back = ready(&mut alice_call).flatten().unwrap();
        assert_eq!(back.remote_user_is_connected, Some(true));

        bob.disconnect();
        let gone = ready(&mut alice_call).flatten().unwrap();
        assert_eq!(gone.remote_user_is_connected, Some(false));
        assert_eq!(hub.registered_listeners(&UserId::from(2)), 0);
        let error = bob.create_call_close(CallCloseBody::new(UserId::from(1))).await;
        assert!(matches!(error, Err(SignallingError::Unavailable(_))));

        bob.reconnect();
        let back = ready(&mut alice_call).flatten().unwrap();
        assert_eq!(back.remote_user_is_connected, Some(true));
        assert_eq!(hub.registered_listeners(&UserId::from(2)), 1);
        drop(bob_call);
    }
}
