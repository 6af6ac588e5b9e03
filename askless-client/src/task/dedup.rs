//! Memory of the server messages already processed, for de-duplication by `serverId`.
//!
//! The server retransmits a response or a listener value until the client confirms it, for up
//! to about 45 seconds, so the same `serverId` can arrive several times. Each id is remembered
//! for 10 minutes after it was last seen; a repeated id is confirmed again but not processed.

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use askless_protocol::{ServerId, ServerMessage};
use tokio::time::Instant;

/// How long an id is remembered after it was last seen.
pub(crate) const REMEMBER_FOR: Duration = Duration::from_secs(10 * 60);

/// Upper bound of remembered ids. Past it the oldest are forgotten even if younger than
/// [`REMEMBER_FOR`], so a flood of messages cannot grow the memory without limit.
pub(crate) const MAX_REMEMBERED: usize = 100_000;

/// Returns the key under which `message` is remembered: its `serverId`, followed for a listener
/// value by a fingerprint of its output.
///
/// The server gives a listener value only 5 random alphanumerics of its own
/// (`NEW-xxxxx-<listenId>`), so a busy stream reuses ids. The birthday bound over 62^5 ids
/// estimates 5 reused ids in 100 000 values of one listener. A retransmission repeats the output
/// unchanged, so the fingerprint keeps a new value with a reused id from being taken for a
/// repeat.
// NOTE: a reused id that also carries the same output as the earlier value is still dropped.
pub(crate) fn dedup_key(message: &ServerMessage, server_id: &ServerId) -> String {
    match message {
        ServerMessage::NewDataForListener(data) => {
            let mut hasher = DefaultHasher::new();
            serde_json::to_string(&data.output)
                .unwrap_or_default()
                .hash(&mut hasher);
            format!("{}#{:016x}", server_id.as_str(), hasher.finish())
        }
        _ => server_id.as_str().to_owned(),
    }
}

/// Server ids seen recently, with the time each was last seen.
#[derive(Debug, Default)]
pub(crate) struct ServerIdMemory {
    last_seen: HashMap<String, Instant>,
    /// Ids in the order they were (re)seen. An id re-seen later has a stale earlier entry, which
    /// pruning recognises because its time differs from `last_seen`.
    order: VecDeque<(String, Instant)>,
}

impl ServerIdMemory {
    /// Records `server_id` as seen at `now`. Returns `true` when it is new (process the
    /// message) and `false` when it was seen within the last 10 minutes (only confirm it).
    pub(crate) fn observe(&mut self, server_id: &str, now: Instant) -> bool {
        self.prune(now);
        let is_new = !self.last_seen.contains_key(server_id);
        self.last_seen.insert(server_id.to_owned(), now);
        self.order.push_back((server_id.to_owned(), now));
        is_new
    }

    /// Returns the number of remembered ids.
    pub(crate) fn len(&self) -> usize {
        self.last_seen.len()
    }

    /// Forgets the ids last seen 10 minutes or more before `now`, and the oldest ones past the
    /// size bound.
    pub(crate) fn prune(&mut self, now: Instant) {
        while let Some((id, seen)) = self.order.front() {
            let current = self.last_seen.get(id).copied();
            let stale_entry = current != Some(*seen);
            let expired = now.saturating_duration_since(*seen) >= REMEMBER_FOR;
            let over_capacity = self.last_seen.len() >= MAX_REMEMBERED;
            if !(stale_entry || expired || over_capacity) {
                break;
            }
            if let Some((id, _)) = self.order.pop_front() {
                if !stale_entry {
                    self.last_seen.remove(&id);
                }
            }
        }
        // Re-seen ids leave stale entries behind; compact when they dominate.
        if self.order.len() > 2 * self.last_seen.len() + 1024 {
            let last_seen = &self.last_seen;
            self.order.retain(|(id, seen)| last_seen.get(id) == Some(seen));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_data(server_id: &str, output: serde_json::Value) -> ServerMessage {
        let text = serde_json::json!({
            "output": output,
            "listenId": "LIS-L1",
            "_class_type_newDataForListener": "_",
            "dataType": "NewDataForListener",
            "serverId": server_id,
        })
        .to_string();
        askless_protocol::decode_server_frame(&text).unwrap()
    }

    fn key_of(message: &ServerMessage) -> String {
        dedup_key(message, message.server_id_to_confirm().unwrap())
    }

    #[test]
    fn reused_listener_id_with_new_output_is_new() {
        let mut memory = ServerIdMemory::default();
        let now = Instant::now();
        let first = new_data("NEW-abcde-LIS-L1", serde_json::json!(1));
        let repeat = new_data("NEW-abcde-LIS-L1", serde_json::json!(1));
        let reused = new_data("NEW-abcde-LIS-L1", serde_json::json!(2));

        assert!(memory.observe(&key_of(&first), now));
        assert!(
            !memory.observe(&key_of(&repeat), now),
            "a retransmission is a repeat"
        );
        assert!(
            memory.observe(&key_of(&reused), now),
            "another output is a new value"
        );
    }

    #[test]
    fn repeated_id_is_not_new() {
        let mut memory = ServerIdMemory::default();
        let now = Instant::now();

        assert!(memory.observe("RES-1", now));
        assert!(!memory.observe("RES-1", now + Duration::from_secs(5)));
        assert!(memory.observe("RES-2", now));
    }

    #[test]
    fn id_is_forgotten_after_ten_minutes() {
        let mut memory = ServerIdMemory::default();
        let now = Instant::now();

        memory.observe("RES-1", now);

        assert!(memory.observe("RES-1", now + REMEMBER_FOR + Duration::from_secs(1)));
    }

    #[test]
    fn seeing_again_extends_memory() {
        let mut memory = ServerIdMemory::default();
        let start = Instant::now();

        memory.observe("RES-1", start);
        memory.observe("RES-1", start + Duration::from_secs(9 * 60));

        assert!(!memory.observe("RES-1", start + Duration::from_secs(15 * 60)));
    }

    #[test]
    fn expired_ids_are_pruned() {
        let mut memory = ServerIdMemory::default();
        let start = Instant::now();
        for n in 0..500 {
            memory.observe(&format!("RES-{n}"), start);
        }

        memory.observe("RES-new", start + REMEMBER_FOR);

        assert_eq!(memory.len(), 1);
    }

    #[test]
    fn memory_is_bounded() {
        let mut memory = ServerIdMemory::default();
        let now = Instant::now();

        for n in 0..(MAX_REMEMBERED + 10) {
            memory.observe(&format!("RES-{n}"), now);
        }

        assert!(memory.len() <= MAX_REMEMBERED);
        assert!(memory.order.len() <= MAX_REMEMBERED + 1);
    }

    #[test]
    fn stale_entries_are_compacted() {
        let mut memory = ServerIdMemory::default();
        let start = Instant::now();

        for n in 0..5000u64 {
            memory.observe("RES-1", start + Duration::from_millis(n));
        }

        assert_eq!(memory.len(), 1);
        assert!(memory.order.len() < 2000, "{} entries kept", memory.order.len());
    }
}
