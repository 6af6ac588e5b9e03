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
/// the server's own timers is not controlled (a real-time capture run).
///
/// Pushed counter values are left out, retransmissions are compared by count (within one of the
/// recorded count, because the retransmission grid runs from the server's start), and every
/// other server frame must match in order. Returns the differences found, empty when none.
pub(crate) fn compare_timing_tolerant(
    recorded: &super::transcript::Transcript,
    produced: &super::transcript::Transcript,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut comparer = FrameComparer::new();
    for label in recorded.labels() {
        let expected = first_copies(recorded.server_frames(&label).iter().map(|entry| raw_of(entry)));
        let actual = first_copies(produced.server_frames(&label).iter().map(|entry| raw_of(entry)));

        for (index, (want, got)) in expected.frames.iter().zip(&actual.frames).enumerate() {
            if let Err(error) = comparer.compare(want, got) {
                problems.push(format!("connection {label}, server frame {}: {error}", index + 1));
                break;
            }
        }
        if expected.frames.len() != actual.frames.len() {
            problems.push(format!(
                "connection {label}: {} distinct server frames recorded, {} produced",
                expected.frames.len(),
                actual.frames.len()
            ));
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

fn raw_of(entry: &super::transcript::Entry) -> String {
    match &entry.kind {
        super::transcript::EntryKind::ServerFrame { raw } => raw.clone(),
        _ => String::new(),
    }
}

/// Server frames without counter ticks and without repeated copies, plus the number of copies
/// of every `serverId`.
#[derive(Debug, Default)]
struct FirstCopies {
    frames: Vec<String>,
    copies: HashMap<String, usize>,
}

fn first_copies(frames: impl Iterator<Item = String>) -> FirstCopies {
    let mut result = FirstCopies::default();
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
        result.frames.push(raw);
    }
    result
}
