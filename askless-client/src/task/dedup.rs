//! Memory of the server messages already processed, for de-duplication by `serverId`.
//!
//! The server retransmits a response or a listener value until the client confirms it, for up
//! to about 45 seconds, so the same `serverId` can arrive several times. Each id is remembered
//! for at least 10 minutes after it was last seen, and at most one [`BUCKET_SPAN`] longer; a
//! repeated id is confirmed again but not processed.
//!
//! Ids are kept as 128-bit fingerprints from two SipHash hashers with random keys, grouped in
//! buckets by the time they were last seen. Each id takes a 17-byte slot of a hash table that
//! is between 7/16 and 7/8 full, and expiry drops a whole bucket at once.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};
use std::io;
use std::sync::OnceLock;
use std::time::Duration;

use askless_protocol::{ServerId, ServerMessage};
use tokio::time::Instant;

/// How long an id is remembered at least after it was last seen.
pub(crate) const REMEMBER_FOR: Duration = Duration::from_secs(10 * 60);

/// Time span of the ids of one bucket: an id is forgotten between [`REMEMBER_FOR`] and
/// `REMEMBER_FOR + BUCKET_SPAN` after it was last seen.
const BUCKET_SPAN: Duration = Duration::from_secs(60);

/// Upper bound of remembered ids. Past it the oldest bucket is forgotten even if younger than
/// [`REMEMBER_FOR`], so a flood of messages cannot grow the memory without limit.
pub(crate) const MAX_REMEMBERED: usize = 100_000;

/// Ids per bucket. A full bucket closes, so that the bound of [`MAX_REMEMBERED`] drops at most
/// this many ids at once.
const MAX_BUCKET_LEN: usize = MAX_REMEMBERED / 16;

/// Upper bound of buckets, which every lookup searches: 11 by time, 16 by size and a margin.
const MAX_BUCKETS: usize = 32;

/// The fingerprint under which a server message is remembered.
///
/// Two different messages share a fingerprint with a probability of about 2⁻¹²⁸ per pair. The
/// hashers' keys are random for each process, so a server cannot choose ids that collide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DedupKey([u64; 2]);

impl Hash for DedupKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Already the output of a keyed hash, so the set hashes only the first half again.
        state.write_u64(self.0[0]);
    }
}

/// A hasher for keys that are random already, such as [`DedupKey`] and the fingerprints of
/// the stream table: it returns the last `u64` written.
#[derive(Debug, Default)]
pub(super) struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not used by fingerprints; kept correct for any other input.
        for byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*byte);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// Returns the two SipHash keys of the fingerprints, chosen once per process.
fn fingerprint_keys() -> &'static [RandomState; 2] {
    static KEYS: OnceLock<[RandomState; 2]> = OnceLock::new();
    // Each `RandomState::new` has other keys, so the two halves are independent.
    KEYS.get_or_init(|| [RandomState::new(), RandomState::new()])
}

/// Feeds the same bytes to both hashers of a fingerprint.
struct FingerprintWriter<H> {
    first: H,
    second: H,
}

impl<H: Hasher> io::Write for FingerprintWriter<H> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.first.write(bytes);
        self.second.write(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Returns the key under which `message` is remembered: a fingerprint of its `serverId`,
/// followed for a listener value by its output as JSON.
///
/// The server gives a listener value only 5 random alphanumerics of its own
/// (`NEW-xxxxx-<listenId>`), so a busy stream reuses ids. The birthday bound over 62^5 ids
/// estimates 5 reused ids in 100 000 values of one listener. A retransmission repeats the output
/// unchanged, so the output keeps a new value with a reused id from being taken for a repeat.
// NOTE: a reused id that also carries the same output as the earlier value is still dropped.
pub(crate) fn dedup_key(message: &ServerMessage, server_id: &ServerId) -> DedupKey {
    let [first, second] = fingerprint_keys();
    let mut writer = FingerprintWriter {
        first: first.build_hasher(),
        second: second.build_hasher(),
    };
    io::Write::write_all(&mut writer, server_id.as_str().as_bytes()).ok();
    if let ServerMessage::NewDataForListener(data) = message {
        // 0xFF never occurs in UTF-8, so it separates the id from the output unambiguously.
        io::Write::write_all(&mut writer, &[0xFF]).ok();
        // The hash writer never fails and a `Value` has only string keys, so this cannot fail.
        serde_json::to_writer(&mut writer, &data.output).ok();
    }
    DedupKey([writer.first.finish(), writer.second.finish()])
}

/// Fingerprints last seen in one time span.
#[derive(Debug)]
struct Bucket {
    opened_at: Instant,
    /// The latest time at which a key of this bucket was seen.
    last_seen: Instant,
    keys: HashSet<DedupKey, BuildHasherDefault<PassThroughHasher>>,
}

/// Fingerprints of server messages seen recently, by the time each was last seen.
#[derive(Debug, Default)]
pub(crate) struct ServerIdMemory {
    /// Oldest first. Each key is in one bucket only: the one of its last sighting.
    buckets: VecDeque<Bucket>,
    len: usize,
}

impl ServerIdMemory {
    /// Records `key` as seen at `now`. Returns `true` when it is new (process the message) and
    /// `false` when it was seen within the last 10 minutes (only confirm it).
    pub(crate) fn observe(&mut self, key: &DedupKey, now: Instant) -> bool {
        self.prune(now);
        let mut seen_before = false;
        for bucket in self.buckets.iter_mut().rev() {
            if bucket.keys.remove(key) {
                seen_before = true;
                self.len -= 1;
                break;
            }
        }
        let bucket = self.current_bucket(now);
        bucket.keys.insert(*key);
        bucket.last_seen = bucket.last_seen.max(now);
        self.len += 1;
        // The current bucket contains at most `MAX_BUCKET_LEN` keys, so the bound never drops
        // it with the key just inserted.
        while self.len > MAX_REMEMBERED || self.buckets.len() > MAX_BUCKETS {
            self.forget_oldest_bucket();
        }
        !seen_before
    }

    /// Returns the number of remembered ids.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Forgets the buckets whose ids were all last seen 10 minutes or more before `now`, and
    /// older buckets that re-sightings left empty.
    pub(crate) fn prune(&mut self, now: Instant) {
        while let Some(oldest) = self.buckets.front() {
            if now.saturating_duration_since(oldest.last_seen) < REMEMBER_FOR && !oldest.keys.is_empty() {
                break;
            }
            self.forget_oldest_bucket();
        }
    }

    fn forget_oldest_bucket(&mut self) {
        if let Some(bucket) = self.buckets.pop_front() {
            self.len -= bucket.keys.len();
        }
    }

    /// Returns the bucket for keys seen at `now`, opening a new one when the newest is full or
    /// was opened [`BUCKET_SPAN`] or more before `now`.
    fn current_bucket(&mut self, now: Instant) -> &mut Bucket {
        let reuse = self.buckets.back().is_some_and(|newest| {
            now.saturating_duration_since(newest.opened_at) < BUCKET_SPAN
                && newest.keys.len() < MAX_BUCKET_LEN
        });
        if !reuse {
            self.buckets.push_back(Bucket {
                opened_at: now,
                last_seen: now,
                keys: HashSet::default(),
            });
        }
        let newest = self.buckets.len() - 1;
        &mut self.buckets[newest]
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

    fn key_of(message: &ServerMessage) -> DedupKey {
        dedup_key(message, message.server_id_to_confirm().unwrap())
    }

    fn id_key(id: &str) -> DedupKey {
        let response = serde_json::json!({
            "serverId": id,
            "clientRequestId": "REQ-1",
            "_class_type_response": "_",
            "dataType": "Response",
            "output": null,
        })
        .to_string();
        key_of(&askless_protocol::decode_server_frame(&response).unwrap())
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
    fn retransmission_is_caught_after_other_messages() {
        let mut memory = ServerIdMemory::default();
        let start = Instant::now();
        let value = new_data("NEW-abcde-LIS-L1", serde_json::json!({"i": 1, "generation": 0}));

        assert!(memory.observe(&key_of(&value), start));
        for n in 0..1000u64 {
            memory.observe(
                &id_key(&format!("RES-{n}")),
                start + Duration::from_millis(n * 100),
            );
        }

        assert!(!memory.observe(&key_of(&value), start + Duration::from_secs(120)));
    }

    #[test]
    fn response_and_value_with_same_id_differ() {
        let value = new_data("X-1", serde_json::Value::Null);

        assert_ne!(key_of(&value), id_key("X-1"));
    }

    #[test]
    fn key_is_sixteen_bytes() {
        assert_eq!(std::mem::size_of::<DedupKey>(), 16);
    }

    #[test]
    fn repeated_id_is_not_new() {
        let mut memory = ServerIdMemory::default();
        let now = Instant::now();

        assert!(memory.observe(&id_key("RES-1"), now));
        assert!(!memory.observe(&id_key("RES-1"), now + Duration::from_secs(5)));
        assert!(memory.observe(&id_key("RES-2"), now));
    }

    #[test]
    fn id_is_forgotten_after_ten_minutes() {
        let mut memory = ServerIdMemory::default();
        let now = Instant::now();

        memory.observe(&id_key("RES-1"), now);

        assert!(memory.observe(&id_key("RES-1"), now + REMEMBER_FOR + Duration::from_secs(1)));
    }

    #[test]
    fn id_is_remembered_until_its_bucket_expires() {
        let mut memory = ServerIdMemory::default();
        let start = Instant::now();
        memory.observe(&id_key("RES-1"), start);
        memory.observe(&id_key("RES-2"), start + Duration::from_secs(30));

        assert!(
            !memory.observe(&id_key("RES-1"), start + REMEMBER_FOR + Duration::from_secs(10)),
            "a bucket lives until 10 minutes after its latest id"
        );
        assert!(memory.observe(
            &id_key("RES-2"),
            start + REMEMBER_FOR + BUCKET_SPAN + Duration::from_secs(31)
        ));
    }

    #[test]
    fn seeing_again_extends_memory() {
        let mut memory = ServerIdMemory::default();
        let start = Instant::now();

        memory.observe(&id_key("RES-1"), start);
        memory.observe(&id_key("RES-1"), start + Duration::from_secs(9 * 60));

        assert!(!memory.observe(&id_key("RES-1"), start + Duration::from_secs(15 * 60)));
    }

    #[test]
    fn expired_ids_are_pruned() {
        let mut memory = ServerIdMemory::default();
        let start = Instant::now();
        for n in 0..500 {
            memory.observe(&id_key(&format!("RES-{n}")), start);
        }

        memory.observe(&id_key("RES-new"), start + REMEMBER_FOR);

        assert_eq!(memory.len(), 1);
        assert_eq!(memory.buckets.len(), 1);
    }

    #[test]
    fn memory_is_bounded() {
        let mut memory = ServerIdMemory::default();
        let now = Instant::now();

        for n in 0..(MAX_REMEMBERED + 10) {
            memory.observe(&id_key(&format!("RES-{n}")), now);
        }

        assert!(memory.len() <= MAX_REMEMBERED);
        assert!(memory.len() > MAX_REMEMBERED - MAX_BUCKET_LEN);
        let stored: usize = memory.buckets.iter().map(|bucket| bucket.keys.len()).sum();
        assert_eq!(stored, memory.len());
        assert!(
            memory.observe(&id_key("RES-0"), now),
            "the oldest ids are forgotten first"
        );
        assert!(!memory.observe(&id_key(&format!("RES-{}", MAX_REMEMBERED + 9)), now));
    }

    #[test]
    fn buckets_are_bounded() {
        let mut memory = ServerIdMemory::default();
        let start = Instant::now();

        for n in 0..100u64 {
            memory.observe(&id_key(&format!("RES-{n}")), start + BUCKET_SPAN * n as u32 / 10);
        }

        assert!(memory.buckets.len() <= MAX_BUCKETS);
        assert!(memory.buckets.len() <= 1 + (REMEMBER_FOR + BUCKET_SPAN).as_secs() as usize / 60);
    }

    #[test]
    fn repeated_id_is_stored_once() {
        let mut memory = ServerIdMemory::default();
        let start = Instant::now();

        for n in 0..5000u64 {
            memory.observe(&id_key("RES-1"), start + Duration::from_millis(n * 100));
        }

        assert_eq!(memory.len(), 1);
        let stored: usize = memory.buckets.iter().map(|bucket| bucket.keys.len()).sum();
        assert_eq!(stored, 1);
    }
}
