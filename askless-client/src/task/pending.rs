//! The table of requests waiting for their response.
//!
//! Owned by the connection task, so it needs no lock. Requests are kept in the order they were
//! made, which is the order they are (re)sent in, and indexed by `clientRequestId` for
//! responses and receipts and by deadline for timeouts.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use askless_protocol::{ClientMessage, ClientRequestId, ErrorBody};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, oneshot};
use tokio::time::Instant;

use crate::error::{Error, Operation, Result};

/// The stage of a pending request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Made while not connected; waits for the connection until `until` (forever when `None`).
    WaitingForConnection { until: Option<Instant> },
    /// Registered: sent, or to be sent at the next connection; fails with a timeout at
    /// `deadline` (never when `None`).
    Registered { deadline: Option<Instant> },
    /// Received `PENDING_AUTHENTICATION`. It waits for an authentication until `until`
    /// (forever when `None`), then is sent again with a new id.
    WaitingForAuthentication { until: Option<Instant> },
}

impl Phase {
    fn deadline(self) -> Option<Instant> {
        match self {
            Phase::WaitingForConnection { until } => until,
            Phase::Registered { deadline } => deadline,
            Phase::WaitingForAuthentication { until } => until,
        }
    }
}

/// One request waiting for its response.
#[derive(Debug)]
pub(crate) struct PendingRequest {
    pub(crate) id: ClientRequestId,
    pub(crate) operation: Operation,
    pub(crate) route: String,
    /// The request; its id changes only when it is sent again after `PENDING_AUTHENTICATION`.
    pub(crate) message: ClientMessage,
    /// The encoded `message`; every (re)transmission sends it unchanged.
    pub(crate) frame: String,
    pub(crate) created_at: Instant,
    /// Set by the server's receipt; stops the periodic retransmission.
    pub(crate) received_by_server: bool,
    /// Whether the request went out on some connection.
    pub(crate) sent: bool,
    pub(crate) phase: Phase,
    /// The request timeout, `None` when the request never times out.
    pub(crate) timeout: Option<Duration>,
    /// Whether a wait for authentication survives `clear_authentication`.
    pub(crate) persevere: bool,
    /// The server's `PENDING_AUTHENTICATION` error, kept while waiting for authentication and
    /// returned if none arrives.
    pub(crate) authentication_error: Option<ErrorBody>,
    /// The caller's permit, released when the request leaves the table.
    #[expect(dead_code, reason = "held for its release on drop")]
    pub(crate) permit: Option<OwnedSemaphorePermit>,
    pub(crate) reply: oneshot::Sender<Result<Option<Value>>>,
}

impl PendingRequest {
    /// Completes the request; a caller that stopped waiting is not an error.
    pub(crate) fn complete(self, result: Result<Option<Value>>) {
        let _ = self.reply.send(result);
    }
}

/// Requests waiting for their response.
#[derive(Debug, Default)]
pub(crate) struct PendingTable {
    next_seq: u64,
    entries: BTreeMap<u64, PendingRequest>,
    by_id: HashMap<ClientRequestId, u64>,
    deadlines: BTreeSet<(Instant, u64)>,
}

impl PendingTable {
    /// Adds a request after the ones already waiting.
    pub(crate) fn insert(&mut self, request: PendingRequest) {
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(deadline) = request.phase.deadline() {
            self.deadlines.insert((deadline, seq));
        }
        self.by_id.insert(request.id.clone(), seq);
        self.entries.insert(seq, request);
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Marks a request as received by the server. Returns whether it was found.
    pub(crate) fn mark_received(&mut self, id: &ClientRequestId) -> bool {
        let Some(seq) = self.by_id.get(id) else {
            return false;
        };
        match self.entries.get_mut(seq) {
            Some(entry) => {
                entry.received_by_server = true;
                true
            }
            None => false,
        }
    }

    /// Removes and returns the request with this id.
    pub(crate) fn remove(&mut self, id: &ClientRequestId) -> Option<PendingRequest> {
        let seq = self.by_id.remove(id)?;
        self.remove_seq(seq)
    }

    fn remove_seq(&mut self, seq: u64) -> Option<PendingRequest> {
        let entry = self.entries.remove(&seq)?;
        self.by_id.remove(&entry.id);
        if let Some(deadline) = entry.phase.deadline() {
            self.deadlines.remove(&(deadline, seq));
        }
        Some(entry)
    }

    /// Returns the earliest deadline of any request.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(deadline, _)| *deadline)
    }

    /// Registers every request still waiting for the connection: its timeout starts `now`.
    pub(crate) fn register_waiting(&mut self, now: Instant) {
        let waiting: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, entry)| matches!(entry.phase, Phase::WaitingForConnection { .. }))
            .map(|(seq, _)| *seq)
            .collect();
        for seq in waiting {
            self.register(seq, now);
        }
    }

    fn register(&mut self, seq: u64, now: Instant) {
        let Some(entry) = self.entries.get_mut(&seq) else {
            return;
        };
        if let Some(old) = entry.phase.deadline() {
            self.deadlines.remove(&(old, seq));
        }
        let deadline = entry.timeout.map(|timeout| now + timeout);
        entry.phase = Phase::Registered { deadline };
        if let Some(deadline) = deadline {
            self.deadlines.insert((deadline, seq));
        }
    }

    /// Handles the deadlines that passed at `now`: a registered request is removed and
    /// returned (it timed out), a request still waiting for the connection is registered when
    /// `has_socket` and removed and returned otherwise (no connection).
    pub(crate) fn take_expired(&mut self, now: Instant, has_socket: bool) -> Vec<(PendingRequest, Expiry)> {
        let mut expired = Vec::new();
        while let Some(&(deadline, seq)) = self.deadlines.first() {
            if deadline > now {
                break;
            }
            let Some(phase) = self.entries.get(&seq).map(|entry| entry.phase) else {
                self.deadlines.pop_first();
                continue;
            };
            match phase {
                Phase::WaitingForConnection { .. } if has_socket => self.register(seq, now),
                Phase::WaitingForConnection { .. } => {
                    if let Some(entry) = self.remove_seq(seq) {
                        expired.push((entry, Expiry::NoConnection));
                    }
                }
                Phase::Registered { .. } => {
                    if let Some(entry) = self.remove_seq(seq) {
                        expired.push((entry, Expiry::Timeout));
                    }
                }
                Phase::WaitingForAuthentication { .. } => {
                    if let Some(entry) = self.remove_seq(seq) {
                        expired.push((entry, Expiry::NotAuthenticated));
                    }
                }
            }
        }
        expired
    }

    /// Moves the request with `id` to waiting for authentication, keeping the server's error.
    /// Returns whether it was found.
    pub(crate) fn wait_for_authentication(
        &mut self,
        id: &ClientRequestId,
        until: Option<Instant>,
        error: ErrorBody,
    ) -> bool {
        let Some(&seq) = self.by_id.get(id) else {
            return false;
        };
        let Some(entry) = self.entries.get_mut(&seq) else {
            return false;
        };
        if let Some(old) = entry.phase.deadline() {
            self.deadlines.remove(&(old, seq));
        }
        entry.phase = Phase::WaitingForAuthentication { until };
        entry.authentication_error = Some(error);
        if let Some(until) = until {
            self.deadlines.insert((until, seq));
        }
        true
    }

    /// Gives every request waiting for authentication a new id and registers it at `now`.
    /// Returns the new frames, in request order.
    pub(crate) fn resume_after_authentication(
        &mut self,
        now: Instant,
        mut new_id: impl FnMut() -> ClientRequestId,
    ) -> Vec<String> {
        let waiting: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, entry)| matches!(entry.phase, Phase::WaitingForAuthentication { .. }))
            .map(|(seq, _)| *seq)
            .collect();
        let mut frames = Vec::new();
        for seq in waiting {
            let id = new_id();
            let Some(entry) = self.entries.get_mut(&seq) else {
                continue;
            };
            self.by_id.remove(&entry.id);
            self.by_id.insert(id.clone(), seq);
            set_request_id(&mut entry.message, id.clone());
            entry.id = id;
            entry.frame = entry.message.encode();
            entry.received_by_server = false;
            entry.sent = true;
            entry.authentication_error = None;
            frames.push(entry.frame.clone());
            self.register(seq, now);
        }
        frames
    }

    /// Removes the requests waiting for authentication that are not persevere.
    pub(crate) fn take_released_by_clear(&mut self) -> Vec<PendingRequest> {
        let released: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, entry)| {
                !entry.persevere && matches!(entry.phase, Phase::WaitingForAuthentication { .. })
            })
            .map(|(seq, _)| *seq)
            .collect();
        released
            .into_iter()
            .filter_map(|seq| self.remove_seq(seq))
            .collect()
    }

    /// Removes every request that is not waiting for authentication.
    pub(crate) fn take_not_waiting_for_authentication(&mut self) -> Vec<PendingRequest> {
        let not_waiting: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, entry)| !matches!(entry.phase, Phase::WaitingForAuthentication { .. }))
            .map(|(seq, _)| *seq)
            .collect();
        not_waiting
            .into_iter()
            .filter_map(|seq| self.remove_seq(seq))
            .collect()
    }

    /// Returns the frames of the requests to send on a new connection, in request order, and
    /// marks them sent. Requests waiting for authentication are left out.
    ///
    /// A create, update or delete the server confirmed receiving is not sent again.
    /// A read already sent on an earlier connection gets a new id from `new_id` first: the
    /// server may have received it, and it drops a repeated id without any response, so the read
    /// would never complete. Reads are safe to run twice. An unconfirmed create, update or
    /// delete keeps its id, so the server's duplicate filter, which remembers ids for 10
    /// minutes, runs it at most once within that time. A server that restarted in between has
    /// no such memory and runs it again if it had run it before.
    pub(crate) fn frames_to_send(&mut self, mut new_id: impl FnMut() -> ClientRequestId) -> Vec<String> {
        let mut frames = Vec::new();
        for entry in self.entries.values_mut() {
            if matches!(entry.phase, Phase::WaitingForAuthentication { .. }) {
                continue;
            }
            let is_read = matches!(entry.message, ClientMessage::Read(_));
            if entry.sent && entry.received_by_server && !is_read {
                // The server has run it or will run it. A server that kept its record sends the
                // response again on the new connection. A restarted server has no memory of the
                // id and would run it a second time. So the request only waits for the response
                // or for its timeout.
                continue;
            }
            if entry.sent && is_read {
                let id = new_id();
                if let Some(seq) = self.by_id.remove(&entry.id) {
                    self.by_id.insert(id.clone(), seq);
                }
                set_request_id(&mut entry.message, id.clone());
                entry.id = id;
                entry.frame = entry.message.encode();
                entry.received_by_server = false;
            }
            entry.sent = true;
            frames.push(entry.frame.clone());
        }
        frames
    }

    /// Removes requests whose caller stopped waiting.
    pub(crate) fn remove_abandoned(&mut self) -> usize {
        let abandoned: Vec<u64> = self
            .entries
            .iter()
            .filter(|(_, entry)| entry.reply.is_closed())
            .map(|(seq, _)| *seq)
            .collect();
        for seq in &abandoned {
            self.remove_seq(*seq);
        }
        abandoned.len()
    }

    /// Iterates over the requests in the order they were made.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &PendingRequest> {
        self.entries.values()
    }

    /// Removes every request.
    pub(crate) fn drain(&mut self) -> Vec<PendingRequest> {
        self.by_id.clear();
        self.deadlines.clear();
        std::mem::take(&mut self.entries).into_values().collect()
    }

    /// Fails every request with the error `make_error` builds for it.
    pub(crate) fn fail_all(&mut self, make_error: impl Fn(&PendingRequest) -> Error) {
        for entry in self.drain() {
            let error = make_error(&entry);
            entry.complete(Err(error));
        }
    }
}

/// Replaces the `clientRequestId` of a read or modify request.
pub(crate) fn set_request_id(message: &mut ClientMessage, id: ClientRequestId) {
    match message {
        ClientMessage::Read(read) => read.client_request_id = id,
        ClientMessage::Modify(modify) => modify.client_request_id = id,
        _ => {}
    }
}

/// The cause of a request's expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// The request was registered and no response arrived in time.
    Timeout,
    /// The request waited for a connection that did not come.
    NoConnection,
    /// The request waited for an authentication that did not come.
    NotAuthenticated,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(
        id: &str,
        phase: Phase,
        timeout: Option<Duration>,
    ) -> (PendingRequest, oneshot::Receiver<Result<Option<Value>>>) {
        let (reply, receiver) = oneshot::channel();
        let request = PendingRequest {
            id: ClientRequestId::new(id),
            operation: Operation::Read,
            route: "items".to_owned(),
            message: ClientMessage::Read(askless_protocol::ReadRequest::new(
                ClientRequestId::new(id),
                "items",
                Value::Null,
            )),
            frame: format!("frame {id}"),
            created_at: Instant::now(),
            received_by_server: false,
            sent: false,
            phase,
            timeout,
            persevere: false,
            authentication_error: None,
            permit: None,
            reply,
        };
        (request, receiver)
    }

    #[test]
    fn keeps_insertion_order() {
        let mut table = PendingTable::default();
        let mut receivers = Vec::new();
        for id in ["REQ-_c", "REQ-_a", "REQ-_b"] {
            let (entry, receiver) = request(id, Phase::Registered { deadline: None }, None);
            table.insert(entry);
            receivers.push(receiver);
        }

        let order: Vec<&str> = table.iter().map(|entry| entry.id.as_str()).collect();

        assert_eq!(order, ["REQ-_c", "REQ-_a", "REQ-_b"]);
    }

    #[test]
    fn receipt_marks_request() {
        let mut table = PendingTable::default();
        let (entry, _receiver) = request("REQ-_a", Phase::Registered { deadline: None }, None);
        table.insert(entry);

        assert!(table.mark_received(&ClientRequestId::new("REQ-_a")));
        assert!(!table.mark_received(&ClientRequestId::new("REQ-_unknown")));
        assert!(table.iter().next().unwrap().received_by_server);
    }

    #[test]
    fn registered_request_times_out() {
        let mut table = PendingTable::default();
        let now = Instant::now();
        let (entry, _receiver) = request("REQ-_a", Phase::Registered { deadline: Some(now) }, None);
        table.insert(entry);

        let expired = table.take_expired(now, true);

        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].1, Expiry::Timeout);
        assert!(table.is_empty());
    }

    #[test]
    fn waiting_request_registers_when_socket_exists() {
        let mut table = PendingTable::default();
        let now = Instant::now();
        let timeout = Duration::from_secs(7);
        let (entry, _receiver) = request(
            "REQ-_a",
            Phase::WaitingForConnection { until: Some(now) },
            Some(timeout),
        );
        table.insert(entry);

        let expired = table.take_expired(now, true);

        assert!(expired.is_empty());
        assert_eq!(table.next_deadline(), Some(now + timeout));
    }

    #[test]
    fn waiting_request_fails_without_socket() {
        let mut table = PendingTable::default();
        let now = Instant::now();
        let (entry, _receiver) = request(
            "REQ-_a",
            Phase::WaitingForConnection { until: Some(now) },
            Some(Duration::from_secs(7)),
        );
        table.insert(entry);

        let expired = table.take_expired(now, false);

        assert_eq!(expired[0].1, Expiry::NoConnection);
    }

    #[test]
    fn removed_request_leaves_no_deadline() {
        let mut table = PendingTable::default();
        let now = Instant::now();
        let (entry, _receiver) = request("REQ-_a", Phase::Registered { deadline: Some(now) }, None);
        table.insert(entry);

        assert!(table.remove(&ClientRequestId::new("REQ-_a")).is_some());

        assert_eq!(table.next_deadline(), None);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn request_resumes_with_new_id_after_authentication() {
        let mut table = PendingTable::default();
        let now = Instant::now();
        let (entry, _receiver) = request(
            "REQ-_a",
            Phase::Registered { deadline: None },
            Some(Duration::from_secs(7)),
        );
        table.insert(entry);
        let error = ErrorBody::new("PENDING_AUTHENTICATION", "authentication is required");
        assert!(table.wait_for_authentication(&ClientRequestId::new("REQ-_a"), None, error));
        assert!(
            table
                .frames_to_send(|| ClientRequestId::new("REQ-_unused"))
                .is_empty()
        );

        let frames = table.resume_after_authentication(now, || ClientRequestId::new("REQ-_b"));

        assert_eq!(frames.len(), 1);
        assert!(frames[0].contains("REQ-_b"), "{}", frames[0]);
        assert!(table.remove(&ClientRequestId::new("REQ-_a")).is_none());
        assert!(table.remove(&ClientRequestId::new("REQ-_b")).is_some());
    }

    #[test]
    fn read_sent_before_gets_new_id() {
        let mut table = PendingTable::default();
        let (read, _read_receiver) = request("REQ-_a", Phase::Registered { deadline: None }, None);
        table.insert(read);

        let first = table.frames_to_send(|| ClientRequestId::new("REQ-_b"));
        let second = table.frames_to_send(|| ClientRequestId::new("REQ-_c"));

        assert!(first[0].contains("REQ-_a"), "{}", first[0]);
        assert!(second[0].contains("REQ-_c"), "{}", second[0]);
        assert!(table.remove(&ClientRequestId::new("REQ-_c")).is_some());
    }

    #[test]
    fn received_modification_not_sent_again() {
        let mut table = PendingTable::default();
        for id in ["REQ-_confirmed", "REQ-_unconfirmed"] {
            let (mut create, _receiver) = request(id, Phase::Registered { deadline: None }, None);
            create.operation = Operation::Create;
            create.message = ClientMessage::Modify(askless_protocol::ModifyRequest::new(
                ClientRequestId::new(id),
                askless_protocol::ModifyKind::Create,
                "items",
                Value::Null,
                Value::Null,
            ));
            table.insert(create);
        }
        let first = table.frames_to_send(|| ClientRequestId::new("REQ-_new"));
        assert!(table.mark_received(&ClientRequestId::new("REQ-_confirmed")));

        let second = table.frames_to_send(|| ClientRequestId::new("REQ-_new"));

        assert_eq!(first.len(), 2);
        assert_eq!(
            second,
            ["frame REQ-_unconfirmed"],
            "only the unconfirmed create goes out again"
        );
        assert!(table.remove(&ClientRequestId::new("REQ-_confirmed")).is_some());
    }

    #[test]
    fn clear_releases_only_non_persevere_waiters() {
        let mut table = PendingTable::default();
        let (first, _first_receiver) =
            request("REQ-_a", Phase::WaitingForAuthentication { until: None }, None);
        let (mut second, _second_receiver) =
            request("REQ-_b", Phase::WaitingForAuthentication { until: None }, None);
        second.persevere = true;
        table.insert(first);
        table.insert(second);

        let released = table.take_released_by_clear();

        assert_eq!(released.len(), 1);
        assert_eq!(released[0].id.as_str(), "REQ-_a");
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn abandoned_requests_are_removed() {
        let mut table = PendingTable::default();
        let (entry, receiver) = request("REQ-_a", Phase::Registered { deadline: None }, None);
        table.insert(entry);
        drop(receiver);

        assert_eq!(table.remove_abandoned(), 1);
        assert!(table.is_empty());
    }
}
