//! Streams inside the connection task: one listener per (route, params), listen requests,
//! values, stops, and what reconnections and authentication do to them.

use std::sync::Arc;
use std::time::Duration;

use askless_protocol::{
    AsklessErrorCode, ClientMessage, ClientRequestId, ListenId, ListenRequest, NewDataForListener, Response,
    StopListening,
};
use serde_json::Value;
use tokio::time::Instant;

use super::ConnectionTask;
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
    pub(crate) route: String,
    pub(crate) params: Value,
    pub(crate) options: StreamOptions,
    pub(crate) queue: Arc<SubscriberQueue>,
}

/// The identity of a listener: route and params compared as typed JSON.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct StreamKey {
    route: String,
    params: String,
}

impl StreamKey {
    fn new(route: &str, params: &Value) -> Self {
        StreamKey {
            route: route.to_owned(),
            params: canonical_json(params),
        }
    }
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

/// One listener shared by every stream of the same route and params.
#[derive(Debug)]
struct Listener {
    listen_id: ListenId,
    route: String,
    params: Value,
    /// `params` as canonical JSON, computed once: comparing keys must not encode every
    /// listener's params again, or opening n streams would take n² encodings.
    canonical_params: String,
    /// The id of the listen request that succeeded: the listener is live and listed in pings.
    live_request_id: Option<ClientRequestId>,
    /// The id of the listen request waiting for its response.
    pending_request_id: Option<ClientRequestId>,
    /// The listen received `PENDING_AUTHENTICATION`, so it is sent again after authentication.
    waiting_for_authentication: bool,
    persevere: bool,
    subscribers: Vec<Arc<SubscriberQueue>>,
    last_value: Option<Value>,
    /// The last value delivered before the connection of a live listener ended. The server
    /// re-creates the listener from the next ping and sends its current value again, so the
    /// first value after that is dropped when it equals this one. A new listen request clears
    /// it.
    resumed_from: Option<Value>,
    /// Values that arrived before the listen response, emitted once the listener is live.
    held: Vec<Value>,
    /// Since when the listener has no stream.
    unused_since: Option<Instant>,
}

impl Listener {
    fn emit(&mut self, value: Value) {
        if let Some(previous) = self.resumed_from.take() {
            if previous == value {
                tracing::debug!(listen_id = %self.listen_id, "dropping the unchanged value sent again after a reconnection");
                return;
            }
        }
        for subscriber in &self.subscribers {
            subscriber.push(Ok(value.clone()));
        }
        self.last_value = Some(value);
    }

    fn fail(&self, error: &Error) {
        for subscriber in &self.subscribers {
            subscriber.push(Err(error.clone()));
            subscriber.end();
        }
    }

    fn end(&self) {
        for subscriber in &self.subscribers {
            subscriber.end();
        }
    }
}

/// Every listener of the client, in the order they were created.
#[derive(Debug, Default)]
pub(super) struct StreamTable {
    listeners: Vec<Listener>,
}

impl StreamTable {
    pub(super) fn listener_count(&self) -> usize {
        self.listeners.len()
    }

    /// Returns how many streams are attached and not dropped by their readers.
    pub(super) fn open_stream_count(&self) -> usize {
        self.listeners
            .iter()
            .flat_map(|listener| &listener.subscribers)
            .filter(|subscriber| !subscriber.is_dropped())
            .count()
    }

    fn position_by_key(&self, key: &StreamKey) -> Option<usize> {
        self.listeners
            .iter()
            .position(|listener| listener.route == key.route && listener.canonical_params == key.params)
    }

    fn position_by_listen_id(&self, listen_id: &ListenId) -> Option<usize> {
        self.listeners
            .iter()
            .position(|listener| &listener.listen_id == listen_id)
    }

    /// Returns whether `id` is a listen request of one of the listeners, pending or live.
    pub(super) fn owns_response(&self, id: &ClientRequestId) -> bool {
        self.listeners.iter().any(|listener| {
            listener.pending_request_id.as_ref() == Some(id) || listener.live_request_id.as_ref() == Some(id)
        })
    }

    /// Returns whether a listen request sent on the current connection awaits its response.
    pub(super) fn has_listen_in_flight(&self) -> bool {
        self.listeners
            .iter()
            .any(|listener| listener.pending_request_id.is_some())
    }

    /// Returns the listen requests of the live listeners, for the ping.
    pub(super) fn live_listen_requests(&self) -> Vec<ListenRequest> {
        self.listeners
            .iter()
            .filter_map(|listener| {
                let id = listener.live_request_id.clone()?;
                Some(ListenRequest::new(
                    id,
                    listener.route.clone(),
                    listener.params.clone(),
                    listener.listen_id.clone(),
                ))
            })
            .collect()
    }

    /// Forgets listen requests of a connection that ended; live listeners stay live, because
    /// the next pings make the server re-create them. The server then sends the current value
    /// again, so each listener remembers its last value to drop that value if it is unchanged.
    pub(super) fn forget_pending_listens(&mut self) {
        for listener in &mut self.listeners {
            listener.pending_request_id = None;
            listener.resumed_from = listener.last_value.clone();
        }
    }

    /// Drops streams whose reader is gone, and listeners left without streams for the grace
    /// period, so that the next ping no longer lists them.
    pub(super) fn stop_unused(&mut self, now: Instant) {
        for listener in &mut self.listeners {
            listener.subscribers.retain(|subscriber| !subscriber.is_dropped());
            if listener.subscribers.is_empty() {
                listener.unused_since.get_or_insert(now);
            } else {
                listener.unused_since = None;
            }
        }
        self.listeners.retain(|listener| {
            let expired = listener.unused_since.is_some_and(|since| now.duration_since(since) >= STOP_GRACE);
            if expired {
                tracing::debug!(listen_id = %listener.listen_id, route = %listener.route, "stopping an unused stream");
            }
            !expired
        });
    }

    /// Ends every stream; used when the client closes.
    pub(super) fn close_all(&mut self, _error: &Error) {
        for listener in self.listeners.drain(..) {
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
        let key = StreamKey::new(&route, &params);
        if let Some(position) = self.streams.position_by_key(&key) {
            let listener = &mut self.streams.listeners[position];
            tracing::debug!(listen_id = %listener.listen_id, %route, "stream joins an existing listener");
            if options.source == StreamSource::CacheAndRemote {
                if let Some(value) = &listener.last_value {
                    queue.push(Ok(value.clone()));
                }
            }
            listener.persevere |= options.persevere;
            listener.unused_since = None;
            listener.subscribers.push(queue);
            return;
        }
        let listen_id = ListenId::generate(&mut self.settings.rng);
        tracing::debug!(%listen_id, %route, "new stream listener");
        self.streams.listeners.push(Listener {
            listen_id,
            route,
            params,
            canonical_params: key.params,
            live_request_id: None,
            pending_request_id: None,
            waiting_for_authentication: false,
            persevere: options.persevere,
            subscribers: vec![queue],
            last_value: None,
            resumed_from: None,
            held: Vec::new(),
            unused_since: None,
        });
        if self.flow_open() {
            let position = self.streams.listeners.len() - 1;
            self.send_listen(position).await;
        }
    }

    /// Sends a listen request with a new id for the listener at `position`.
    async fn send_listen(&mut self, position: usize) -> bool {
        let id = ClientRequestId::generate_listen(&mut self.settings.rng);
        let Some(listener) = self.streams.listeners.get_mut(position) else {
            return true;
        };
        listener.pending_request_id = Some(id.clone());
        let request = ListenRequest::new(
            id,
            listener.route.clone(),
            listener.params.clone(),
            listener.listen_id.clone(),
        );
        self.send_frame(ClientMessage::Listen(request).encode()).await
    }

    /// Sends the listen requests of listeners that are neither live nor waiting; called when
    /// requests start flowing on a connection.
    pub(super) async fn send_pending_listens(&mut self) {
        let positions: Vec<usize> = self
            .streams
            .listeners
            .iter()
            .enumerate()
            .filter(|(_, listener)| {
                listener.live_request_id.is_none()
                    && listener.pending_request_id.is_none()
                    && !listener.waiting_for_authentication
            })
            .map(|(position, _)| position)
            .collect();
        for position in positions {
            if !self.send_listen(position).await {
                return;
            }
        }
    }

    /// Handles the response to a listen request, or to a listen the server re-created from a
    /// ping.
    pub(super) async fn handle_listen_response(&mut self, response: Response) {
        let id = &response.client_request_id;
        let Some(position) = self.streams.listeners.iter().position(|listener| {
            listener.pending_request_id.as_ref() == Some(id) || listener.live_request_id.as_ref() == Some(id)
        }) else {
            return;
        };
        let needs_authentication = response.error_code() == Some(&AsklessErrorCode::PendingAuthentication);
        let listener = &mut self.streams.listeners[position];
        let was_pending = listener.pending_request_id.as_ref() == Some(id);
        if !was_pending {
            // A listener the server re-created from a ping: only an authentication error
            // matters, because the server dropped the listener again and would repeat the cycle
            // at every ping.
            if needs_authentication {
                tracing::debug!(listen_id = %listener.listen_id, "live stream needs authentication again");
                listener.live_request_id = None;
                listener.resumed_from = None;
                listener.waiting_for_authentication = true;
            }
            return;
        }
        listener.pending_request_id = None;
        match &response.error {
            None => {
                tracing::debug!(listen_id = %listener.listen_id, "stream is live");
                listener.live_request_id = Some(id.clone());
                // A new listen, after a login for example, delivers its first value even when
                // it is unchanged.
                listener.resumed_from = None;
                for value in std::mem::take(&mut listener.held) {
                    listener.emit(value);
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
            }
            Some(error) => {
                let code = AsklessErrorCode::from(error.code_or_none());
                tracing::debug!(listen_id = %listener.listen_id, %code, "listen failed");
                let error = Error::server(
                    Operation::Listen,
                    &listener.route,
                    code,
                    error.description_or_none(),
                );
                listener.fail(&error);
                self.streams.listeners.remove(position);
            }
        }
    }

    /// Delivers a value to the streams of its listener.
    pub(super) fn handle_new_data(&mut self, data: NewDataForListener) {
        let Some(position) = self.streams.position_by_listen_id(&data.listen_id) else {
            // NOTE: the reference client keeps such a value for 15 s in case its listener becomes
            // live. Here it is dropped. The server sends the listen response first, so only a
            // value that overtakes it would be lost.
            bump(&self.settings.stats.unknown_listen_ids);
            tracing::debug!(listen_id = %data.listen_id, "ignoring data for an unknown stream");
            return;
        };
        let listener = &mut self.streams.listeners[position];
        let value = data.output.unwrap_or(Value::Null);
        if listener.live_request_id.is_some() {
            listener.emit(value);
        } else {
            if listener.held.len() >= MAX_HELD_VALUES {
                // Bounded so a server that floods values before confirming the listen cannot
                // grow memory; the subscriber buffers keep the newest values anyway.
                listener.held.remove(0);
                bump(&self.settings.stats.held_values_dropped);
            }
            listener.held.push(value);
        }
    }

    /// Ends the streams of a listener the server stopped.
    pub(super) fn handle_stop_listening(&mut self, stop: StopListening) {
        let Some(position) = self.streams.position_by_listen_id(&stop.listen_id) else {
            bump(&self.settings.stats.unknown_listen_ids);
            tracing::debug!(listen_id = %stop.listen_id, "ignoring stop-listening for an unknown stream");
            return;
        };
        let listener = self.streams.listeners.remove(position);
        tracing::debug!(listen_id = %listener.listen_id, route = %listener.route, "server stopped the stream");
        listener.end();
    }

    /// Listens again to every listener that waited for authentication.
    pub(super) async fn resume_streams_after_authentication(&mut self) {
        if !self.flow_open() {
            return;
        }
        let positions: Vec<usize> = self
            .streams
            .listeners
            .iter()
            .enumerate()
            .filter(|(_, listener)| listener.waiting_for_authentication)
            .map(|(position, _)| position)
            .collect();
        for position in positions {
            self.streams.listeners[position].waiting_for_authentication = false;
            if !self.send_listen(position).await {
                return;
            }
        }
    }

    /// Fails the streams waiting for authentication that are not persevere; called by
    /// `clear_authentication`.
    pub(super) fn release_streams_on_clear(&mut self) {
        self.streams.listeners.retain(|listener| {
            let release = listener.waiting_for_authentication && !listener.persevere;
            if release {
                let error = Error::pending_authentication(
                    Operation::Listen,
                    &listener.route,
                    "the authentication was cleared while the stream waited for it",
                );
                listener.fail(&error);
            }
            !release
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_ignores_object_key_order() {
        let first = StreamKey::new("items", &json!({"a": 1, "b": {"x": 1, "y": 2}}));
        let second = StreamKey::new("items", &json!({"b": {"y": 2, "x": 1}, "a": 1}));

        assert_eq!(first, second);
    }

    #[test]
    fn key_compares_typed_values() {
        let number = StreamKey::new("items", &json!({"id": 1}));
        let text = StreamKey::new("items", &json!({"id": "1"}));

        assert_ne!(number, text);
    }

    #[test]
    fn key_includes_route() {
        assert_ne!(
            StreamKey::new("a", &Value::Null),
            StreamKey::new("b", &Value::Null)
        );
    }
}
