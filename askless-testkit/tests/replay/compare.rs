//! Comparison of server frames with recorded ones: identical JSON except the random part of
//! every `serverId` and the values of the ticking counter.

use std::collections::HashMap;

use serde_json::Value;

/// Compares frames one at a time and remembers which recorded `serverId` became which one.
///
/// A recorded `serverId` seen again (a retransmission) must come back with the same mock
/// `serverId`, and two recorded ids may not share one mock id.
#[derive(Debug, Default)]
pub(crate) struct FrameComparer {
    recorded_to_actual: HashMap<String, String>,
    actual_to_recorded: HashMap<String, String>,
}

impl FrameComparer {
    /// Creates a comparer with no known ids.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Returns the mock's `serverId` for a recorded one, once a frame carrying it was compared.
    pub(crate) fn actual_server_id(&self, recorded: &str) -> Option<&str> {
        self.recorded_to_actual.get(recorded).map(String::as_str)
    }

    /// Replaces the recorded `serverId` of a confirm-receipt with the mock's id for the same
    /// message. Other frames, and ids the mock never sent, are returned unchanged.
    pub(crate) fn substitute_server_id(&self, client_raw: &str) -> String {
        if !client_raw.contains("_class_type_clientconfirmreceipt") {
            return client_raw.to_owned();
        }
        let Ok(value) = serde_json::from_str::<Value>(client_raw) else {
            return client_raw.to_owned();
        };
        let Some(recorded) = value.get("serverId").and_then(Value::as_str) else {
            return client_raw.to_owned();
        };
        match self.actual_server_id(recorded) {
            Some(actual) => client_raw.replacen(
                &format!("\"serverId\":\"{recorded}\""),
                &format!("\"serverId\":\"{actual}\""),
                1,
            ),
            None => client_raw.to_owned(),
        }
    }

    /// Compares one server frame with the recorded one; the error explains the difference.
    pub(crate) fn compare(&mut self, expected_raw: &str, actual_raw: &str) -> Result<(), String> {
        let expected: Value = match serde_json::from_str(expected_raw) {
            Ok(value @ Value::Object(_)) => value,
            _ => {
                // `welcome` and `pong` are plain texts.
                return if expected_raw == actual_raw {
                    Ok(())
                } else {
                    Err(format!("expected the text {expected_raw:?}, got {actual_raw}"))
                };
            }
        };
        let Ok(actual @ Value::Object(_)) = serde_json::from_str::<Value>(actual_raw) else {
            return Err(format!(
                "expected the JSON frame {expected_raw}, got the text {actual_raw:?}"
            ));
        };

        let mut expected = expected;
        let mut actual = actual;
        let expected_id = take_server_id(&mut expected);
        let actual_id = take_server_id(&mut actual);
        match (expected_id, actual_id) {
            (None, None) => {}
            (Some(recorded), Some(mock)) => {
                check_server_id_format(&recorded, &mock, &actual)?;
                self.check_mapping(&recorded, &mock)?;
            }
            (Some(_), None) => return Err(format!("the frame has no serverId: {actual_raw}")),
            (None, Some(_)) => return Err(format!("the frame has an unexpected serverId: {actual_raw}")),
        }

        normalize_counter(&mut expected);
        normalize_counter(&mut actual);
        normalize_volatile(&mut expected);
        normalize_volatile(&mut actual);
        if expected == actual {
            Ok(())
        } else {
            Err(format!(
                "frames differ (serverIds and counter values aside)\n  expected: {expected_raw}\n  actual:   {actual_raw}"
            ))
        }
    }

    fn check_mapping(&mut self, recorded: &str, mock: &str) -> Result<(), String> {
        if let Some(known) = self.recorded_to_actual.get(recorded) {
            if known != mock {
                return Err(format!(
                    "recorded serverId {recorded} was {known} in an earlier frame but is {mock} now \
                     (a retransmission must repeat its serverId)"
                ));
            }
            return Ok(());
        }
        if let Some(other) = self.actual_to_recorded.get(mock) {
            return Err(format!(
                "serverId {mock} was already used for recorded {other}, now for recorded {recorded}"
            ));
        }
        self.recorded_to_actual
            .insert(recorded.to_owned(), mock.to_owned());
        self.actual_to_recorded
            .insert(mock.to_owned(), recorded.to_owned());
        Ok(())
    }
}

fn take_server_id(frame: &mut Value) -> Option<String> {
    let object = frame.as_object_mut()?;
    match object.remove("serverId") {
        Some(Value::String(id)) => Some(id),
        Some(other) => Some(other.to_string()),
        None => None,
    }
}

/// Checks `RES-` + 11 alphanumerics, or `NEW-`/`STOP-` + 5 alphanumerics + `-` + the listenId.
fn check_server_id_format(recorded: &str, mock: &str, frame: &Value) -> Result<(), String> {
    let prefix = recorded.split('-').next().unwrap_or("");
    let valid = match prefix {
        "RES" => mock
            .strip_prefix("RES-")
            .is_some_and(|rest| rest.len() == 11 && rest.chars().all(|c| c.is_ascii_alphanumeric())),
        "NEW" | "STOP" => {
            let listen_id = frame.get("listenId").and_then(Value::as_str).unwrap_or("");
            mock.strip_prefix(&format!("{prefix}-")).is_some_and(|rest| {
                rest.len() == 6 + listen_id.len()
                    && rest[..5].chars().all(|c| c.is_ascii_alphanumeric())
                    && rest[5..6] == *"-"
                    && rest[6..] == *listen_id
            })
        }
        _ => false,
    };
    if valid {
        Ok(())
    } else {
        Err(format!(
            "serverId {mock} does not have the format of recorded {recorded}"
        ))
    }
}

/// Blanks the `value` of the counter route's output (`{"value": n, "intervalMs": …}`), which
/// depends on how long the server has been running.
fn normalize_counter(frame: &mut Value) {
    let Some(output) = frame.get_mut("output").and_then(Value::as_object_mut) else {
        return;
    };
    if output.contains_key("intervalMs") && output.get("value").is_some_and(Value::is_number) {
        output.insert("value".into(), Value::Null);
    }
}

/// Members whose values change from run to run in the example servers: clock readings and
/// random numbers.
const VOLATILE_MEMBERS: [&str; 3] = [
    "generatedAtTimestamp",
    "currentRandomNumber",
    "createdAtTimestamp",
];

/// Blanks the numbers of the volatile members anywhere in a frame.
fn normalize_volatile(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, member) in map.iter_mut() {
                if VOLATILE_MEMBERS.contains(&key.as_str()) && member.is_number() {
                    *member = Value::Null;
                } else {
                    normalize_volatile(member);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(normalize_volatile),
        _ => {}
    }
}

/// Returns whether a server frame is a pushed counter value, whose timing depends on the
/// server's own ticker.
pub(crate) fn is_counter_tick(raw: &str) -> bool {
    let Ok(value) = serde_json::from_str::<Value>(raw) else {
        return false;
    };
    value.get("_class_type_newDataForListener").is_some()
        && value
            .get("output")
            .and_then(|output| output.get("intervalMs"))
            .is_some()
}

/// Returns the `serverId` of a JSON frame.
pub(crate) fn server_id_of(raw: &str) -> Option<String> {
    let value: Value = serde_json::from_str(raw).ok()?;
    value.get("serverId")?.as_str().map(str::to_owned)
}

/// Compares two transcripts of the same scenario connection by connection, where the timing of
/// the server's own timers and of its notifications is not controlled (a real-time capture run).
///
/// Each connection's server frames are split into streams whose order does not depend on
/// timing: the receipts and responses (in order), the values of each listener (in order, pushed
/// counter values left out), the stop-listening events of each listener, and the `welcome` and
/// `pong` texts (counted). How these streams interleave is not compared, because it depends on
/// how fast each side responds. Retransmitted copies are compared by count, within one of the
/// recorded count, because the retransmission grid runs from the server's start. Returns the
/// differences found, empty when none.
///
/// `loose_listeners` names the listenIds whose values depend on the race between a notification
/// and the client's next request (the server evaluates a notification when it runs, about 1 ms
/// after it was triggered). For those, every produced value must have the shape of one of the
/// recorded values of that listener, in any number. The count of `pong` texts is compared against the number of
/// pings the client sent in each run, because some waits end on a server timer.
pub(crate) fn compare_timing_tolerant(
    recorded: &super::transcript::Transcript,
    produced: &super::transcript::Transcript,
    loose_listeners: &[&str],
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut comparer = FrameComparer::new();
    for label in recorded.labels() {
        let expected = Streams::split(recorded.server_frames(&label).iter().map(|entry| raw_of(entry)));
        let actual = Streams::split(produced.server_frames(&label).iter().map(|entry| raw_of(entry)));

        let mut stream_names: Vec<&String> = expected.streams.keys().chain(actual.streams.keys()).collect();
        stream_names.sort();
        stream_names.dedup();
        for name in stream_names {
            let empty = Vec::new();
            let want = expected.streams.get(name).unwrap_or(&empty);
            let got = actual.streams.get(name).unwrap_or(&empty);
            if loose_listeners
                .iter()
                .any(|listen_id| *name == format!("values of {listen_id}"))
            {
                problems.extend(compare_loosely(&label, name, want, got));
                continue;
            }
            if name == "text \"pong\"" {
                let recorded_pings = pings_sent(recorded, &label);
                let produced_pings = pings_sent(produced, &label);
                if want.len() + produced_pings != got.len() + recorded_pings {
                    problems.push(format!(
                        "connection {label}: {} pongs for {recorded_pings} pings recorded, {} pongs for {produced_pings} pings produced",
                        want.len(),
                        got.len()
                    ));
                }
                continue;
            }
            for (index, (want, got)) in want.iter().zip(got).enumerate() {
                if let Err(error) = comparer.compare(want, got) {
                    problems.push(format!(
                        "connection {label}, {name}, frame {}: {error}",
                        index + 1
                    ));
                    break;
                }
            }
            if want.len() != got.len() {
                problems.push(format!(
                    "connection {label}, {name}: {} frames recorded, {} produced",
                    want.len(),
                    got.len()
                ));
            }
        }

        for (recorded_id, recorded_count) in &expected.copies {
            let produced_count = comparer
                .actual_server_id(recorded_id)
                .and_then(|id| actual.copies.get(id))
                .copied()
                .unwrap_or(0);
            if recorded_count.abs_diff(produced_count) > 1 {
                problems.push(format!(
                    "connection {label}: {recorded_id} was sent {recorded_count} times in the recording, \
                     its counterpart {produced_count} times"
                ));
            }
        }

        let recorded_close = recorded.close_code(&label);
        let produced_close = produced.close_code(&label);
        if recorded_close != produced_close {
            problems.push(format!(
                "connection {label}: closed with {recorded_close:?} in the recording, {produced_close:?} now"
            ));
        }
    }
    problems
}

/// Checks that every produced value has the shape of one of the recorded values of the stream:
/// the same frame with an output of the same JSON types (and, for objects, the same keys), arrays
/// compared by the types of their elements and not by their length.
fn compare_loosely(label: &str, name: &str, recorded: &[String], produced: &[String]) -> Vec<String> {
    let shapes: Vec<Option<Value>> = recorded.iter().map(|want| shape_of(want)).collect();
    produced
        .iter()
        .filter(|got| {
            let shape = shape_of(got);
            shape.is_none() || !shapes.contains(&shape)
        })
        .map(|got| {
            format!("connection {label}, {name}: produced value has the shape of no recorded one: {got}")
        })
        .collect()
}

/// Replaces a frame's `serverId` and every leaf of its output by the name of its JSON type, and
/// every array by the distinct shapes of its elements.
fn shape_of(raw: &str) -> Option<Value> {
    fn leaves_to_types(value: &Value) -> Value {
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(key, value)| (key.clone(), leaves_to_types(value)))
                    .collect(),
            ),
            // The element types, not their count: a user with one more claim has the same shape.
            Value::Array(items) => {
                let mut shapes: Vec<Value> = items.iter().map(leaves_to_types).collect();
                shapes.sort_by_key(Value::to_string);
                shapes.dedup();
                Value::Array(shapes)
            }
            Value::Null => Value::from("null"),
            Value::Bool(_) => Value::from("bool"),
            Value::Number(_) => Value::from("number"),
            Value::String(_) => Value::from("string"),
        }
    }
    let mut frame: Value = serde_json::from_str(raw).ok()?;
    let object = frame.as_object_mut()?;
    object.remove("serverId");
    if let Some(output) = object.get_mut("output") {
        *output = leaves_to_types(output);
    }
    Some(frame)
}

fn pings_sent(transcript: &super::transcript::Transcript, label: &str) -> usize {
    transcript
        .entries
        .iter()
        .filter(|entry| entry.label.as_deref() == Some(label))
        .filter(|entry| match &entry.kind {
            super::transcript::EntryKind::ClientFrame { raw, .. } => raw.contains("\"_class_type_pingpong\""),
            _ => false,
        })
        .count()
}

fn raw_of(entry: &super::transcript::Entry) -> String {
    match &entry.kind {
        super::transcript::EntryKind::ServerFrame { raw } => raw.clone(),
        _ => String::new(),
    }
}

/// The server frames of one connection split into timing-independent streams, without counter
/// ticks and without repeated copies, plus the number of copies of every `serverId`.
#[derive(Debug, Default)]
struct Streams {
    streams: std::collections::BTreeMap<String, Vec<String>>,
    copies: HashMap<String, usize>,
}

impl Streams {
    fn split(frames: impl Iterator<Item = String>) -> Streams {
        let mut result = Streams::default();
        for raw in frames {
            if is_counter_tick(&raw) {
                continue;
            }
            if let Some(id) = server_id_of(&raw) {
                let count = result.copies.entry(id).or_insert(0);
                *count += 1;
                if *count > 1 {
                    continue;
                }
            }
            let name = stream_of(&raw);
            result.streams.entry(name).or_default().push(raw);
        }
        result
    }
}

/// Names the stream a server frame belongs to.
fn stream_of(raw: &str) -> String {
    let Ok(value) = serde_json::from_str::<Value>(raw) else {
        return format!("text {raw:?}");
    };
    let listen_id = value.get("listenId").and_then(Value::as_str).unwrap_or("");
    if value.get("_class_type_newDataForListener").is_some() {
        format!("values of {listen_id}")
    } else if value.get("_class_type_stoplistening").is_some() {
        format!("stop-listening events of {listen_id}")
    } else {
        "receipts and responses".to_owned()
    }
}
