//! Streams inside the connection task: one listener per (route, params), listen requests,
//! values, stops, and what reconnections and authentication do to them.
//!
//! Memory per listener matters, because an application may keep thousands of idle streams on
//! one connection. A listener keeps its params and its last value as compact JSON text, because
//! a `serde_json::Value` object allocates a B-tree node of about 630 bytes. The table finds
//! listeners through 64-bit fingerprints of their keys and ids, not through copies of them.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, RandomState};
use std::sync::Arc;
use std::time::Duration;

use askless_protocol::{
    AsklessErrorCode, ClientMessage, ClientRequestId, ListenId, ListenRequest, NewDataForListener, Ping,
    Response, StopListening,
};
use serde_json::Value;
use tokio::time::Instant;

use super::ConnectionTask;
use super::dedup::PassThroughHasher;
use crate::error::{Error, Operation};
use crate::stats::bump;
use crate::stream::{StreamOptions, StreamSource, SubscriberQueue};

/// How long a listener without streams is kept before the pings stop listing it, so that a
/// stream opened again shortly after reuses it.
pub(super) const STOP_GRACE: Duration = Duration::from_millis(4500);

/// Values kept for a listener whose listen response has not arrived yet; older ones are
/// dropped past it.
const MAX_HELD_VALUES: usize = 256;

/// A request for a new stream.
#[derive(Debug)]
pub(crate) struct StreamCommand {
    pub(crate) route: Box<str>,
    pub(crate) params: Value,
    pub(crate) options: StreamOptions,
    pub(crate) queue: Arc<SubscriberQueue>,
}

/// The identity of a listener: route and params compared as typed JSON, through the params'
/// canonical text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct StreamKey<'a> {
    route: &'a str,
    params: &'a str,
}

/// Encodes `value` with object keys sorted, so that equal JSON values give equal text.
fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(key, value)| (key.clone(), sorted(value)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // With serde_json's preserve_order feature, maps keep insertion order, hence the sorting.
    sorted(value).to_string()
}

/// Returns whether `value` contains a floating-point number anywhere.
fn contains_float(value: &Value) -> bool {
    match value {
        Value::Number(number) => number.is_f64(),
        Value::Array(items) => items.iter().any(contains_float),
        Value::Object(map) => map.values().any(contains_float),
        Value::Null | Value::Bool(_) | Value::String(_) => false,
    }
}

/// Parses JSON text that this module encoded itself.
fn parse_stored(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|error| {
        // Unreachable: the text is serde_json's own output for a `Value`.
        tracing::error!(%error, len = text.len(), "parsing a stored JSON value failed, using null");
        Value::Null
    })
}

/// A JSON value kept between frames in its smallest exact form.
///
/// Without its `float_roundtrip` feature, serde_json may parse a floating-point number back
/// one unit in the last place off, so a value that contains one is kept as a tree.
#[derive(Debug, Clone, PartialEq)]
enum StoredJson {
    /// Compact JSON text of a value without floating-point numbers.
    Text(Box<str>),
    Tree(Box<Value>),
}

impl StoredJson {
    fn new(value: &Value) -> Self {
        if contains_float(value) {
            StoredJson::Tree(Box::new(value.clone()))
        } else {
            StoredJson::Text(value.to_string().into_boxed_str())
        }
    }

    fn to_value(&self) -> Value {
        match self {
            StoredJson::Text(text) => parse_stored(text),
            StoredJson::Tree(value) => Value::clone(value),
        }
    }
}

/// Length of the listen ids this client generates: `LIS-` and the random part.
const LISTEN_ID_LEN: usize = 4 + askless_protocol::CLIENT_ID_RANDOM_LEN;

/// Length of the listen request ids this client generates: `LIS-_` and the random part.
const REQUEST_ID_LEN: usize = 5 + askless_protocol::CLIENT_ID_RANDOM_LEN;

/// An id this client generated, kept inline in `N` bytes, so that it needs no allocation.
#[derive(Clone, PartialEq, Eq)]
struct CompactId<const N: usize>([u8; N]);

impl<const N: usize> CompactId<N> {
    /// Keeps `id`, which has `N` bytes when it comes from the generators of askless-protocol.
    /// Another length is cut or padded with `0` to `N` bytes, and the listener then uses that
    /// id in its requests.
    fn new(id: &str) -> Self {
        let mut bytes = [b'0'; N];
        let mut kept = N.min(id.len());
        while !id.is_char_boundary(kept) {
            kept -= 1;
        }
        if kept != N {
            tracing::warn!(
                id,
                expected_len = N,
                "a generated id has an unexpected length, fitting it"
            );
        }
        bytes[..kept].copy_from_slice(&id.as_bytes()[..kept]);
        CompactId(bytes)
    }

    fn as_str(&self) -> &str {
        // The bytes are a prefix of a `&str` cut at a character boundary, and ASCII padding.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl<const N: usize> std::fmt::Debug for CompactId<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> std::fmt::Display for CompactId<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One listener shared by every stream of the same route and params.
#[derive(Debug)]
struct Listener {
    listen_id: CompactId<LISTEN_ID_LEN>,
    /// The route followed by the params as canonical JSON: the listener's key, and the route
    /// and params of its listen requests, in one allocation.
    key: Box<str>,
    /// The length of the route at the start of `key`.
    route_len: usize,
    /// The params themselves when they contain a floating-point number (see [`StoredJson`]).
    float_params: Option<Box<Value>>,
    /// The id of the last listen request sent, while it waits for its response (`live` is
    /// false) or after it succeeded (`live` is true: the listener is listed in pings).
    request_id: Option<CompactId<REQUEST_ID_LEN>>,
    live: bool,
    /// The listen received `PENDING_AUTHENTICATION`, so it is sent again after authentication.
    waiting_for_authentication: bool,
    persevere: bool,
    /// The connection of this listener ended after `last_value`. The server re-creates the
    /// listener from the next ping and sends its current value again, so the first value after
    /// that is dropped when it equals `last_value`. A new listen request clears it.
    resuming: bool,
    subscribers: Subscribers,
    last_value: Option<StoredJson>,
}

/// The streams of a listener, in the order they joined. The first is inline, because most
/// listeners have one stream.
#[derive(Debug, Default)]
struct Subscribers {
    first: Option<Arc<SubscriberQueue>>,
    /// `None` while `first` is `None`, and boxed to keep the listener small.
    #[expect(
        clippy::box_collection,
        reason = "a boxed Vec takes 8 bytes in the listener, a Vec 24"
    )]
    others: Option<Box<Vec<Arc<SubscriberQueue>>>>,
}

impl Subscribers {
    fn one(queue: Arc<SubscriberQueue>) -> Self {
        Subscribers {
            first: Some(queue),
            others: None,
        }
    }

    fn push(&mut self, queue: Arc<SubscriberQueue>) {
        if self.first.is_none() {
            self.first = Some(queue);
        } else {
            self.others.get_or_insert_default().push(queue);
        }
    }

    fn iter(&self) -> impl Iterator<Item = &Arc<SubscriberQueue>> {
        self.first
            .iter()
            .chain(self.others.iter().flat_map(|others| others.iter()))
    }

    fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// Drops the streams whose reader is gone.
    fn retain_open(&mut self) {
        if let Some(others) = &mut self.others {
            others.retain(|subscriber| !subscriber.is_dropped());
        }
        if self.first.as_ref().is_some_and(|first| first.is_dropped()) {
            self.first = self
                .others
                .as_mut()
                .and_then(|others| (!others.is_empty()).then(|| others.remove(0)));
        }
        if self.others.as_ref().is_some_and(|others| others.is_empty()) {
            self.others = None;
        }
    }
}

impl Listener {
    fn key(&self) -> StreamKey<'_> {
        StreamKey {
            route: self.route(),
            params: self.key.get(self.route_len..).unwrap_or_default(),
        }
    }

    fn route(&self) -> &str {
        self.key.get(..self.route_len).unwrap_or_default()
    }

    fn is_pending(&self) -> bool {
        self.request_id.is_some() && !self.live
    }

    fn params_value(&self) -> Value {
        match &self.float_params {
            Some(params) => Value::clone(params),
            None => parse_stored(self.key().params),
        }
    }

    fn listen_request(&self, id: ClientRequestId) -> ListenRequest {
        ListenRequest::new(
            id,
            self.route(),
            self.params_value(),
            ListenId::new(self.listen_id.as_str()),
        )
    }

    fn request_id(&self) -> Option<ClientRequestId> {
        self.request_id
            .as_ref()
            .map(|id| ClientRequestId::new(id.as_str()))
    }

    fn emit(&mut self, value: Value) {
        let stored = StoredJson::new(&value);
        if std::mem::take(&mut self.resuming) && self.last_value.as_ref() == Some(&stored) {
            tracing::debug!(listen_id = %self.listen_id, "dropping the unchanged value sent again after a reconnection");
            return;
        }
        // Every stream but the last gets a copy, and the last one gets the value itself.
        let mut subscribers = self.subscribers.iter().peekable();
        let mut remaining = Some(value);
        while let Some(subscriber) = subscribers.next() {
            let event = if subscribers.peek().is_some() {
                remaining.clone()
            } else {
                remaining.take()
            };
            if let Some(value) = event {
                subscriber.push(Ok(value));
            }
        }
        self.last_value = Some(stored);
    }

    fn fail(&self, error: &Error) {
        for subscriber in self.subscribers.iter() {
            subscriber.push(Err(error.clone()));
            subscriber.end();
        }
    }

    fn end(&self) {
        for subscriber in self.subscribers.iter() {
            subscriber.end();
        }
    }
}

/// A map from a 64-bit fingerprint to a listener's sequence number. The fingerprints are
/// random already, so the map does not hash them again.
type FingerprintIndex = HashMap<u64, u64, BuildHasherDefault<PassThroughHasher>>;

/// Every listener of the client, in the order they were created, with indexes by key, by listen
/// id and by listen request id.
///
/// The indexes map keyed SipHash fingerprints to sequence numbers, and every lookup compares the
/// listener's own string, so a fingerprint collision never returns a wrong listener. Listen ids
/// and request ids are generated again on a collision (see [`StreamTable::listen_id_taken`]);
/// listeners whose key collides go to `key_collisions`, which lookups search as well.
#[derive(Debug, Default)]
pub(super) struct StreamTable {
    /// By sequence number, which grows with each listener, so iteration follows creation order.
    listeners: BTreeMap<u64, Box<Listener>>,
    next_seq: u64,
    hasher: RandomState,
    by_key: FingerprintIndex,
    key_collisions: Vec<u64>,
    by_listen_id: FingerprintIndex,
    by_request_id: FingerprintIndex,
    /// Listeners whose listen request waits for its response.
    pending: usize,
    /// Values that arrived before the listen response, by listener, emitted once it is live.
    /// Outside the listeners because it is empty for almost every listener.
    held: HashMap<u64, Vec<Value>>,
    /// Since when each listener without streams has had none.
    unused_since: HashMap<u64, Instant>,
    /// Gives every key the same fingerprint, to test the collision path.
    #[cfg(test)]
    collide_keys: bool,
}

impl StreamTable {
    pub(super) fn listener_count(&self) -> usize {
        self.listeners.len()
    }

    /// Returns how many streams are attached and not dropped by their readers.
    pub(super) fn open_stream_count(&self) -> usize {
        self.listeners
            .values()
            .flat_map(|listener| listener.subscribers.iter())
            .filter(|subscriber| !subscriber.is_dropped())
            .count()
    }

    fn key_fingerprint(&self, key: StreamKey<'_>) -> u64 {
        #[cfg(test)]
        if self.collide_keys {
            return 0;
        }
        self.hasher.hash_one(key)
    }

    fn id_fingerprint(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    fn find_by_key(&self, key: StreamKey<'_>) -> Option<u64> {
        let matches = |seq: &u64| {
            self.listeners
                .get(seq)
                .is_some_and(|listener| listener.key() == key)
        };
        let indexed = self.by_key.get(&self.key_fingerprint(key)).copied();
        indexed
            .filter(matches)
            .or_else(|| self.key_collisions.iter().copied().find(matches))
    }

    fn find_by_listen_id(&self, listen_id: &ListenId) -> Option<u64> {
        let seq = *self.by_listen_id.get(&self.id_fingerprint(listen_id.as_str()))?;
        let listener = self.listeners.get(&seq)?;
        (listener.listen_id.as_str() == listen_id.as_str()).then_some(seq)
    }

    fn find_by_request_id(&self, id: &ClientRequestId) -> Option<u64> {
        let seq = *self.by_request_id.get(&self.id_fingerprint(id.as_str()))?;
        let listener = self.listeners.get(&seq)?;
        let matches = listener
            .request_id
            .as_ref()
            .is_some_and(|own| own.as_str() == id.as_str());
        matches.then_some(seq)
    }

    /// Returns whether `listen_id` cannot be given to a new listener, because its fingerprint
    /// is taken.
    fn listen_id_taken(&self, listen_id: &str) -> bool {
        self.by_listen_id.contains_key(&self.id_fingerprint(listen_id))
    }

    /// Returns whether `id` cannot be given to a listen request, because its fingerprint is
    /// taken.
    fn request_id_taken(&self, id: &str) -> bool {
        self.by_request_id.contains_key(&self.id_fingerprint(id))
    }

    /// Adds `listener`, whose listen id must not be taken, and returns its sequence number.
    fn insert(&mut self, listener: Listener) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        let key_fingerprint = self.key_fingerprint(listener.key());
        match self.by_key.entry(key_fingerprint) {
            Entry::Occupied(_) => {
                tracing::debug!(listen_id = %listener.listen_id, "stream key fingerprint collision");
                self.key_collisions.push(seq);
            }
            Entry::Vacant(entry) => {
                entry.insert(seq);
            }
        }
        let listen_fingerprint = self.id_fingerprint(listener.listen_id.as_str());
        self.by_listen_id.insert(listen_fingerprint, seq);
        debug_assert!(
            listener.request_id.is_none(),
            "a new listener has no listen request"
        );
        self.listeners.insert(seq, Box::new(listener));
        seq
    }

    /// Removes the listener `seq` and its index entries.
    fn remove(&mut self, seq: u64) -> Option<Box<Listener>> {
        self.set_request(seq, None, false);
        self.held.remove(&seq);
        self.unused_since.remove(&seq);
        let listener = self.listeners.remove(&seq)?;
        self.by_listen_id
            .remove(&self.id_fingerprint(listener.listen_id.as_str()));
        let key_fingerprint = self.key_fingerprint(listener.key());
        if self.by_key.get(&key_fingerprint) == Some(&seq) {
            self.by_key.remove(&key_fingerprint);
            // Index a listener that collided with this one, if any, in its place.
            let promoted = self.key_collisions.iter().position(|other| {
                self.listeners
                    .get(other)
                    .is_some_and(|other| self.key_fingerprint(other.key()) == key_fingerprint)
            });
            if let Some(position) = promoted {
                let other = self.key_collisions.swap_remove(position);
                self.by_key.insert(key_fingerprint, other);
            }
        } else {
            self.key_collisions.retain(|other| *other != seq);
        }
        Some(listener)
    }

    /// Sets the listen request of the listener `seq`: `None`, a request waiting for its
    /// response (`live` false) or a request that succeeded (`live` true).
    fn set_request(&mut self, seq: u64, request_id: Option<ClientRequestId>, live: bool) {
        let Some(listener) = self.listeners.get_mut(&seq) else {
            return;
        };
        if listener.is_pending() {
            self.pending -= 1;
        }
        if let Some(old) = listener.request_id.take() {
            let fingerprint = self.hasher.hash_one(old.as_str());
            if self.by_request_id.get(&fingerprint) == Some(&seq) {
                self.by_request_id.remove(&fingerprint);
            }
        }
        let request_id = request_id.map(|id| CompactId::new(id.as_str()));
        if let Some(id) = &request_id {
            self.by_request_id.insert(self.hasher.hash_one(id.as_str()), seq);
        }
        listener.live = live && request_id.is_some();
        listener.request_id = request_id;
        if listener.is_pending() {
            self.pending += 1;
        }
    }

    /// Returns the sequence numbers of the listeners that satisfy `filter`, in creation order.
    fn select(&self, filter: impl Fn(&Listener) -> bool) -> Vec<u64> {
        self.listeners
            .iter()
            .filter(|(_, listener)| filter(listener))
            .map(|(seq, _)| *seq)
            .collect()
    }

    /// Returns whether `id` is a listen request of one of the listeners, pending or live.
    pub(super) fn owns_response(&self, id: &ClientRequestId) -> bool {
        self.find_by_request_id(id).is_some()
    }

    /// Returns whether a listen request sent on the current connection awaits its response.
    pub(super) fn has_listen_in_flight(&self) -> bool {
        self.pending > 0
    }

    /// Returns whether a listener is live, so that a ping would list it.
    pub(super) fn has_live_listener(&self) -> bool {
        self.listeners
            .values()
            .any(|listener| listener.live && listener.request_id().is_some())
    }

    /// Returns the listen requests of the live listeners, which the tests compare with the
    /// encoded ping.
    #[cfg(test)]
    pub(super) fn live_listen_requests(&self) -> Vec<ListenRequest> {
        self.listeners
            .values()
            .filter(|listener| listener.live)
            .filter_map(|listener| Some(listener.listen_request(listener.request_id()?)))
            .collect()
    }

    /// Encodes the ping frame that lists the live listeners.
    ///
    /// It makes one listen request at a time, so that only one listener's params exist as a
    /// `Value` at once. A `Ping` of 10 000 listeners would contain 10 000 `Value` objects of
    /// about 630 bytes each, and glibc's allocator kept that memory resident after the frame
    /// was sent (measured with the wire bench's idle streams).
    pub(super) fn encode_ping(&self) -> String {
        let live = self
            .listeners
            .values()
            .filter(|listener| listener.live)
            .filter_map(|listener| Some(listener.listen_request(listener.request_id()?)));
        Ping::encode_entries(live)
    }

    /// Forgets listen requests of a connection that ended; live listeners stay live, because
    /// the next pings make the server re-create them. The server then sends the current value
    /// again, so each listener drops that value if it equals its last value.
    pub(super) fn forget_pending_listens(&mut self) {
        for seq in self.select(Listener::is_pending) {
            self.set_request(seq, None, false);
        }
        for listener in self.listeners.values_mut() {
            listener.resuming = true;
        }
    }

    /// Drops streams whose reader is gone, and listeners left without streams for the grace
    /// period, so that the next ping no longer lists them.
    pub(super) fn stop_unused(&mut self, now: Instant) {
        for (seq, listener) in &mut self.listeners {
            listener.subscribers.retain_open();
            if listener.subscribers.is_empty() {
                self.unused_since.entry(*seq).or_insert(now);
            } else {
                self.unused_since.remove(seq);
            }
        }
        let mut expired: Vec<u64> = self
            .unused_since
            .iter()
            .filter(|(_, since)| now.duration_since(**since) >= STOP_GRACE)
            .map(|(seq, _)| *seq)
            .collect();
        // In creation order, as the logs were before.
        expired.sort_unstable();
        for seq in expired {
            if let Some(listener) = self.remove(seq) {
                tracing::debug!(listen_id = %listener.listen_id, route = listener.route(), "stopping an unused stream");
            }
        }
    }

    /// Ends every stream; used when the client closes.
    pub(super) fn close_all(&mut self, _error: &Error) {
        let table = std::mem::take(self);
        for listener in table.listeners.into_values() {
            listener.end();
        }
    }
}

impl ConnectionTask {
    /// Attaches a new stream to its listener, creating and listening to it when needed.
    pub(super) async fn handle_stream_command(&mut self, command: StreamCommand) {
        let StreamCommand {
            route,
            params,
            options,
            queue,
        } = command;
        if let Some(error) = &self.halted {
            queue.push(Err(error.for_request(Operation::Listen, &route)));
            queue.end();
            return;
        }
        let canonical_params = canonical_json(&params);
        let key = StreamKey {
            route: &route,
            params: &canonical_params,
        };
        if let Some(seq) = self.streams.find_by_key(key) {
            let Some(listener) = self.streams.listeners.get_mut(&seq) else {
                return;
            };
            tracing::debug!(listen_id = %listener.listen_id, %route, "stream joins an existing listener");
            if options.source == StreamSource::CacheAndRemote {
                if let Some(value) = &listener.last_value {
                    queue.push(Ok(value.to_value()));
                }
            }
            listener.persevere |= options.persevere;
            listener.subscribers.push(queue);
            self.streams.unused_since.remove(&seq);
            return;
        }
        let listen_id = loop {
            let generated = ListenId::generate(&mut self.settings.rng);
            let candidate = CompactId::<LISTEN_ID_LEN>::new(generated.as_str());
            if !self.streams.listen_id_taken(candidate.as_str()) {
                break candidate;
            }
        };
        tracing::debug!(%listen_id, %route, "new stream listener");
        let float_params = contains_float(&params).then(|| Box::new(params));
        let mut key = String::with_capacity(route.len() + canonical_params.len());
        key.push_str(&route);
        key.push_str(&canonical_params);
        let seq = self.streams.insert(Listener {
            listen_id,
            key: key.into_boxed_str(),
            route_len: route.len(),
            float_params,
            request_id: None,
            live: false,
            waiting_for_authentication: false,
            persevere: options.persevere,
            resuming: false,
            subscribers: Subscribers::one(queue),
            last_value: None,
        });
        if self.flow_open() {
            self.send_listen(seq).await;
        }
    }

    /// Sends a listen request with a new id for the listener `seq`.
    async fn send_listen(&mut self, seq: u64) -> bool {
        let id = loop {
            let generated = ClientRequestId::generate_listen(&mut self.settings.rng);
            let candidate = CompactId::<REQUEST_ID_LEN>::new(generated.as_str());
            if !self.streams.request_id_taken(candidate.as_str()) {
                break ClientRequestId::new(candidate.as_str());
            }
        };
        let Some(listener) = self.streams.listeners.get(&seq) else {
            return true;
        };
        let request = listener.listen_request(id.clone());
        self.streams.set_request(seq, Some(id), false);
        self.send_frame(ClientMessage::Listen(request).encode()).await
    }

    /// Sends the listen requests of listeners that are neither live nor waiting; called when
    /// requests start flowing on a connection.
    pub(super) async fn send_pending_listens(&mut self) {
        let waiting = self
            .streams
            .select(|listener| listener.request_id.is_none() && !listener.waiting_for_authentication);
        for seq in waiting {
            if !self.send_listen(seq).await {
                return;
            }
        }
    }

    /// Handles the response to a listen request, or to a listen the server re-created from a
    /// ping.
    pub(super) async fn handle_listen_response(&mut self, response: Response) {
        let id = &response.client_request_id;
        let Some(seq) = self.streams.find_by_request_id(id) else {
            return;
        };
        let needs_authentication = response.error_code() == Some(&AsklessErrorCode::PendingAuthentication);
        let Some(listener) = self.streams.listeners.get_mut(&seq) else {
            return;
        };
        if listener.live {
            // A listener the server re-created from a ping: only an authentication error
            // matters, because the server dropped the listener again and would repeat the cycle
            // at every ping.
            if needs_authentication {
                tracing::debug!(listen_id = %listener.listen_id, "live stream needs authentication again");
                listener.resuming = false;
                listener.waiting_for_authentication = true;
                self.streams.set_request(seq, None, false);
            }
            return;
        }
        match &response.error {
            None => {
                tracing::debug!(listen_id = %listener.listen_id, "stream is live");
                // A new listen, after a login for example, delivers its first value even when
                // it is unchanged.
                listener.resuming = false;
                self.streams.set_request(seq, Some(id.clone()), true);
                let held = self.streams.held.remove(&seq).unwrap_or_default();
                if let Some(listener) = self.streams.listeners.get_mut(&seq) {
                    for value in held {
                        listener.emit(value);
                    }
                }
            }
            Some(_) if needs_authentication => {
                // Listened to again after the next authentication only. This error arriving while
                // authenticated rejects the current authentication, so listening again at once
                // would loop (see `wait_for_authentication` of requests).
                tracing::debug!(
                    listen_id = %listener.listen_id,
                    authenticated = self.auth.is_authenticated(),
                    "stream waits for authentication"
                );
                listener.waiting_for_authentication = true;
                self.streams.set_request(seq, None, false);
            }
            Some(error) => {
                let code = AsklessErrorCode::from(error.code_or_none());
                tracing::debug!(listen_id = %listener.listen_id, %code, "listen failed");
                let error = Error::server(
                    Operation::Listen,
                    listener.route(),
                    code,
                    error.description_or_none(),
                );
                listener.fail(&error);
                self.streams.remove(seq);
            }
        }
    }

    /// Delivers a value to the streams of its listener.
    pub(super) fn handle_new_data(&mut self, data: NewDataForListener) {
        let found = self.streams.find_by_listen_id(&data.listen_id).and_then(|seq| {
            let listener = self.streams.listeners.get_mut(&seq)?;
            Some((seq, listener))
        });
        let Some((seq, listener)) = found else {
            // NOTE: the reference client keeps such a value for 15 s in case its listener becomes
            // live. Here it is dropped. The server sends the listen response first, so only a
            // value that overtakes it would be lost.
            bump(&self.settings.stats.unknown_listen_ids);
            tracing::debug!(listen_id = %data.listen_id, "ignoring data for an unknown stream");
            return;
        };
        let value = data.output.unwrap_or(Value::Null);
        if listener.live {
            listener.emit(value);
        } else {
            let held = self.streams.held.entry(seq).or_default();
            if held.len() >= MAX_HELD_VALUES {
                // Bounded so a server that floods values before confirming the listen cannot
                // grow memory; the subscriber buffers keep the newest values anyway.
                held.remove(0);
                bump(&self.settings.stats.held_values_dropped);
            }
            held.push(value);
        }
    }

    /// Ends the streams of a listener the server stopped.
    pub(super) fn handle_stop_listening(&mut self, stop: StopListening) {
        let Some(listener) = self
            .streams
            .find_by_listen_id(&stop.listen_id)
            .and_then(|seq| self.streams.remove(seq))
        else {
            bump(&self.settings.stats.unknown_listen_ids);
            tracing::debug!(listen_id = %stop.listen_id, "ignoring stop-listening for an unknown stream");
            return;
        };
        tracing::debug!(listen_id = %listener.listen_id, route = listener.route(), "server stopped the stream");
        listener.end();
    }

    /// Listens again to every listener that waited for authentication.
    pub(super) async fn resume_streams_after_authentication(&mut self) {
        if !self.flow_open() {
            return;
        }
        let waiting = self
            .streams
            .select(|listener| listener.waiting_for_authentication);
        for seq in waiting {
            if let Some(listener) = self.streams.listeners.get_mut(&seq) {
                listener.waiting_for_authentication = false;
            }
            if !self.send_listen(seq).await {
                return;
            }
        }
    }

    /// Fails the streams waiting for authentication that are not persevere; called by
    /// `clear_authentication`.
    pub(super) fn release_streams_on_clear(&mut self) {
        let released = self
            .streams
            .select(|listener| listener.waiting_for_authentication && !listener.persevere);
        for seq in released {
            if let Some(listener) = self.streams.remove(seq) {
                let error = Error::pending_authentication(
                    Operation::Listen,
                    listener.route(),
                    "the authentication was cleared while the stream waited for it",
                );
                listener.fail(&error);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::{ReadStream, StreamBuffer};
    use futures::{FutureExt, StreamExt};
    use serde_json::json;

    fn key_text(params: &Value) -> String {
        canonical_json(params)
    }

    fn listener(table: &StreamTable, route: &str, params: &Value, n: u64) -> (Listener, ReadStream) {
        let queue = SubscriberQueue::new(StreamBuffer::Bounded(8));
        let stream = ReadStream::new(Arc::clone(&queue), route.into());
        let listen_id = ListenId::new(format!("LIS-{n:028}"));
        assert!(!table.listen_id_taken(listen_id.as_str()));
        let listener = Listener {
            listen_id: CompactId::new(listen_id.as_str()),
            key: format!("{route}{}", canonical_json(params)).into_boxed_str(),
            route_len: route.len(),
            float_params: contains_float(params).then(|| Box::new(params.clone())),
            request_id: None,
            live: false,
            waiting_for_authentication: false,
            persevere: true,
            resuming: false,
            subscribers: Subscribers::one(queue),
            last_value: None,
        };
        (listener, stream)
    }

    /// Returns a listen request id of the generated length.
    fn request_id(n: u64) -> ClientRequestId {
        ClientRequestId::new(format!("LIS-_{n:028}"))
    }

    fn find(table: &StreamTable, route: &str, params: &Value) -> Option<u64> {
        let params = canonical_json(params);
        table.find_by_key(StreamKey {
            route,
            params: &params,
        })
    }

    /// Returns the values buffered in `stream`, without waiting.
    fn buffered(stream: &mut ReadStream) -> Vec<Value> {
        let mut values = Vec::new();
        while let Some(Some(item)) = stream.next().now_or_never() {
            values.push(item.unwrap());
        }
        values
    }

    #[test]
    fn key_ignores_object_key_order() {
        let first = key_text(&json!({"a": 1, "b": {"x": 1, "y": 2}}));
        let second = key_text(&json!({"b": {"y": 2, "x": 1}, "a": 1}));

        assert_eq!(first, second);
    }

    #[test]
    fn key_compares_typed_values() {
        assert_ne!(key_text(&json!({"id": 1})), key_text(&json!({"id": "1"})));
    }

    #[test]
    fn key_includes_route() {
        let mut table = StreamTable::default();
        let (first, _stream) = listener(&table, "a", &Value::Null, 1);
        table.insert(first);

        assert!(find(&table, "a", &Value::Null).is_some());
        assert_eq!(find(&table, "b", &Value::Null), None);
    }

    #[test]
    fn params_round_trip_exactly() {
        let cases = [
            json!(null),
            json!({"i": 7, "name": "é\"\\\u{1}", "list": [1, -2, u64::MAX, i64::MIN]}),
            json!({"x": 0.1, "y": 1e300, "z": -0.0}),
        ];
        let table = StreamTable::default();
        for (n, params) in cases.iter().enumerate() {
            let (listener, _stream) = listener(&table, "items", params, n as u64);

            assert_eq!(&listener.params_value(), params, "params {params}");
        }
    }

    #[test]
    fn listen_request_carries_params() {
        let table = StreamTable::default();
        let params = json!({"i": 3});
        let (listener, _stream) = listener(&table, "items", &params, 1);

        let request = listener.listen_request(request_id(1));

        assert_eq!(request.params, params);
        assert_eq!(request.route, "items");
        assert_eq!(request.listen_id.as_str(), listener.listen_id.as_str());
    }

    #[test]
    fn indexes_find_each_listener() {
        let mut table = StreamTable::default();
        let mut streams = Vec::new();
        for n in 0..100u64 {
            let (listener, stream) = listener(&table, "items", &json!({"i": n}), n);
            streams.push(stream);
            let seq = table.insert(listener);
            table.set_request(seq, Some(request_id(n)), n % 2 == 0);
        }

        for n in 0..100u64 {
            let seq = find(&table, "items", &json!({"i": n})).expect("listener by key");
            assert_eq!(
                table.find_by_listen_id(&ListenId::new(format!("LIS-{n:028}"))),
                Some(seq)
            );
            assert_eq!(table.find_by_request_id(&request_id(n)), Some(seq));
        }
        assert_eq!(find(&table, "items", &json!({"i": 100})), None);
        assert_eq!(table.pending, 50);
        assert!(table.has_listen_in_flight());
        assert_eq!(table.live_listen_requests().len(), 50);
    }

    #[test]
    fn removal_clears_indexes() {
        let mut table = StreamTable::default();
        let (first, _stream) = listener(&table, "items", &json!({"i": 1}), 1);
        let listen_id = ListenId::new(first.listen_id.as_str());
        let seq = table.insert(first);
        table.set_request(seq, Some(request_id(1)), false);

        assert!(table.remove(seq).is_some());

        assert_eq!(find(&table, "items", &json!({"i": 1})), None);
        assert_eq!(table.find_by_listen_id(&listen_id), None);
        assert!(!table.owns_response(&request_id(1)));
        assert!(!table.has_listen_in_flight());
        assert!(table.by_key.is_empty());
        assert!(table.by_listen_id.is_empty());
        assert!(table.by_request_id.is_empty());
    }

    #[test]
    fn replaced_request_id_is_not_owned() {
        let mut table = StreamTable::default();
        let (first, _stream) = listener(&table, "items", &Value::Null, 1);
        let seq = table.insert(first);
        table.set_request(seq, Some(request_id(100)), false);

        table.set_request(seq, Some(request_id(200)), false);

        assert!(!table.owns_response(&request_id(100)));
        assert!(table.owns_response(&request_id(200)));
        assert_eq!(table.pending, 1);
    }

    #[test]
    fn colliding_keys_are_still_found() {
        let mut table = StreamTable {
            collide_keys: true,
            ..StreamTable::default()
        };
        let mut streams = Vec::new();
        let mut seqs = Vec::new();
        for n in 0..5u64 {
            let (listener, stream) = listener(&table, "items", &json!({"i": n}), n);
            streams.push(stream);
            seqs.push(table.insert(listener));
        }
        assert_eq!(table.key_collisions.len(), 4);

        table.remove(seqs[0]);

        assert_eq!(find(&table, "items", &json!({"i": 0})), None);
        for n in 1..5 {
            assert_eq!(find(&table, "items", &json!({"i": n})), Some(seqs[n as usize]));
        }
        assert_eq!(
            table.by_key.len(),
            1,
            "a colliding listener takes the freed index entry"
        );
        assert_eq!(table.key_collisions.len(), 3);
    }

    #[test]
    fn iteration_follows_creation_order() {
        let mut table = StreamTable::default();
        let mut streams = Vec::new();
        for n in [5u64, 3, 9, 1] {
            let (listener, stream) = listener(&table, "items", &json!({"i": n}), n);
            streams.push(stream);
            let seq = table.insert(listener);
            table.set_request(seq, Some(request_id(n)), true);
        }

        let order: Vec<Value> = table
            .live_listen_requests()
            .into_iter()
            .map(|request| request.params["i"].clone())
            .collect();

        assert_eq!(order, vec![json!(5), json!(3), json!(9), json!(1)]);
    }

    #[test]
    fn ping_frame_matches_full_ping() {
        let mut table = StreamTable::default();
        let mut streams = Vec::new();
        let params = [
            json!({"i": 1}),
            Value::Null,
            json!({"price": 0.1, "tags": ["a", "b"]}),
            json!({"i": 4}),
        ];
        for (n, params) in params.iter().enumerate() {
            let (listener, stream) = listener(&table, "items", params, n as u64);
            streams.push(stream);
            let seq = table.insert(listener);
            table.set_request(seq, Some(request_id(n as u64)), n != 3);
        }
        let full = |table: &StreamTable| {
            let ping = Ping {
                listening_to_routes: table.live_listen_requests(),
            };
            ClientMessage::Ping(ping).encode()
        };

        assert_eq!(table.encode_ping(), full(&table));
        assert_eq!(
            StreamTable::default().encode_ping(),
            full(&StreamTable::default())
        );
        let decoded: Value = serde_json::from_str(&table.encode_ping()).unwrap();
        assert_eq!(decoded["listeningToRoutes"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn reconnection_drops_unchanged_value() {
        let mut table = StreamTable::default();
        let (first, mut stream) = listener(&table, "items", &json!({"i": 1}), 1);
        let seq = table.insert(first);
        table.set_request(seq, Some(request_id(1)), true);
        let value = json!({"i": 1, "generation": 0});
        table.listeners.get_mut(&seq).unwrap().emit(value.clone());

        table.forget_pending_listens();
        let listener = table.listeners.get_mut(&seq).unwrap();
        listener.emit(value.clone());
        listener.emit(value.clone());

        assert_eq!(
            buffered(&mut stream),
            vec![value.clone(), value],
            "only the first value after the reconnection is compared"
        );
    }

    #[test]
    fn reconnection_keeps_changed_value() {
        let mut table = StreamTable::default();
        let (first, mut stream) = listener(&table, "items", &Value::Null, 1);
        let seq = table.insert(first);
        table.set_request(seq, Some(request_id(1)), true);
        table
            .listeners
            .get_mut(&seq)
            .unwrap()
            .emit(json!({"generation": 0}));

        table.forget_pending_listens();
        table
            .listeners
            .get_mut(&seq)
            .unwrap()
            .emit(json!({"generation": 1}));

        assert_eq!(
            buffered(&mut stream),
            vec![json!({"generation": 0}), json!({"generation": 1})]
        );
    }

    #[test]
    fn reconnection_compares_float_values() {
        let mut table = StreamTable::default();
        let (first, mut stream) = listener(&table, "items", &Value::Null, 1);
        let seq = table.insert(first);
        table.set_request(seq, Some(request_id(1)), true);
        table.listeners.get_mut(&seq).unwrap().emit(json!({"price": 0.1}));

        table.forget_pending_listens();
        let listener = table.listeners.get_mut(&seq).unwrap();
        listener.emit(json!({"price": 0.1}));
        listener.emit(json!({"price": 0.2}));

        assert_eq!(
            buffered(&mut stream),
            vec![json!({"price": 0.1}), json!({"price": 0.2})]
        );
        assert!(matches!(listener.last_value, Some(StoredJson::Tree(_))));
    }

    #[test]
    fn last_value_is_kept_as_text() {
        let mut table = StreamTable::default();
        let (first, _stream) = listener(&table, "items", &Value::Null, 1);
        let seq = table.insert(first);
        let listener = table.listeners.get_mut(&seq).unwrap();

        listener.emit(json!({"i": 1, "generation": 0}));

        let stored = listener.last_value.clone().unwrap();
        assert_eq!(stored, StoredJson::Text(r#"{"generation":0,"i":1}"#.into()));
        assert_eq!(stored.to_value(), json!({"i": 1, "generation": 0}));
    }

    #[test]
    fn every_subscriber_receives_the_value() {
        let mut table = StreamTable::default();
        let (mut first, mut stream) = listener(&table, "items", &Value::Null, 1);
        let second = SubscriberQueue::new(StreamBuffer::KeepLatest);
        let mut second_stream = ReadStream::new(Arc::clone(&second), "items".into());
        first.subscribers.push(second);
        let seq = table.insert(first);

        table.listeners.get_mut(&seq).unwrap().emit(json!(7));

        assert_eq!(buffered(&mut stream), vec![json!(7)]);
        assert_eq!(buffered(&mut second_stream), vec![json!(7)]);
    }

    #[test]
    fn generated_ids_are_inline() {
        let mut rng = rand::rng();
        let listen_id = ListenId::generate(&mut rng);
        let request_id = ClientRequestId::generate_listen(&mut rng);

        let compact_listen_id = CompactId::<LISTEN_ID_LEN>::new(listen_id.as_str());
        let compact_request_id = CompactId::<REQUEST_ID_LEN>::new(request_id.as_str());

        assert_eq!(compact_listen_id.as_str(), listen_id.as_str());
        assert_eq!(compact_request_id.as_str(), request_id.as_str());
    }

    #[test]
    fn ids_of_other_lengths_are_fitted() {
        let cases = [
            ("", "00000000"),
            ("LIS-1", "LIS-1000"),
            ("LIS-12345", "LIS-1234"),
            ("LIS-123é", "LIS-1230"),
        ];
        for (id, expected) in cases {
            let compact = CompactId::<8>::new(id);

            assert_eq!(compact.as_str(), expected, "id {id:?}");
            assert_eq!(compact.to_string(), expected, "id {id:?}");
        }
    }

    #[test]
    fn subscribers_keep_open_streams_in_order() {
        let queues: Vec<_> = (0..3)
            .map(|_| SubscriberQueue::new(StreamBuffer::KeepLatest))
            .collect();
        let mut streams: Vec<_> = queues
            .iter()
            .map(|queue| Some(ReadStream::new(Arc::clone(queue), "items".into())))
            .collect();
        let mut subscribers = Subscribers::one(Arc::clone(&queues[0]));
        subscribers.push(Arc::clone(&queues[1]));
        subscribers.push(Arc::clone(&queues[2]));

        streams[0] = None;
        subscribers.retain_open();

        let open: Vec<_> = subscribers.iter().collect();
        assert_eq!(open.len(), 2);
        assert!(Arc::ptr_eq(open[0], &queues[1]));
        assert!(Arc::ptr_eq(open[1], &queues[2]));

        streams[1] = None;
        streams[2] = None;
        subscribers.retain_open();

        assert!(subscribers.is_empty());
        assert_eq!(subscribers.iter().count(), 0);
    }

    #[test]
    fn unused_listener_stops_after_grace() {
        let mut table = StreamTable::default();
        let (first, stream) = listener(&table, "items", &Value::Null, 1);
        let seq = table.insert(first);
        let start = Instant::now();

        drop(stream);
        table.stop_unused(start);

        assert_eq!(table.unused_since.get(&seq), Some(&start));
        table.stop_unused(start + STOP_GRACE - Duration::from_millis(1));
        assert_eq!(table.listener_count(), 1);
        table.stop_unused(start + STOP_GRACE);
        assert_eq!(table.listener_count(), 0);
        assert!(table.unused_since.is_empty());
    }

    #[test]
    fn listener_stays_small() {
        // Each listener is one allocation of this size plus its strings; an idle stream's
        // budget is about 1 KiB in all.
        assert!(
            std::mem::size_of::<Listener>() <= 144,
            "Listener is {} bytes",
            std::mem::size_of::<Listener>()
        );
    }
}
