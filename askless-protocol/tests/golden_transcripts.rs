//! Every frame recorded from the real Askless server is decoded with the decoder of the side that
//! received it, encoded again, and compared with the recording as a JSON value (key order aside).
//!
//! The only frames allowed to fail are the malformed client frames of the `j` and `j2` scenarios.
//! The exact list of those failures, with the field each one names, is asserted below.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use askless_protocol::{DecodeError, decode_client_frame, decode_server_frame};
use serde_json::Value;

struct Frame {
    file: String,
    seq: u64,
    direction: String,
    raw: String,
    json: Option<Value>,
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

fn recorded_frames() -> Vec<Frame> {
    let mut frames = Vec::new();
    for folder in ["transcripts", "upstream-examples"] {
        let mut files: Vec<_> = std::fs::read_dir(data_dir().join(folder))
            .expect("test data folder is readable")
            .map(|entry| entry.expect("directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
            .collect();
        files.sort();
        for path in files {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).expect("transcript is readable");
            for line in text.lines().filter(|line| !line.trim().is_empty()) {
                let entry: Value = serde_json::from_str(line).expect("transcript line is JSON");
                let direction = entry["dir"].as_str().unwrap_or_default().to_owned();
                if direction != "c2s" && direction != "s2c" {
                    continue;
                }
                frames.push(Frame {
                    file: name.clone(),
                    seq: entry["seq"].as_u64().expect("seq"),
                    direction,
                    raw: entry["raw"].as_str().expect("raw").to_owned(),
                    json: entry.get("json").cloned(),
                });
            }
        }
    }
    frames
}

/// Names the error and the field it names, for the expected-failures table.
fn describe(error: &DecodeError) -> String {
    let variant = match error {
        DecodeError::InvalidJson { .. } => "InvalidJson",
        DecodeError::NotAnObject { .. } => "NotAnObject",
        DecodeError::UnexpectedText { .. } => "UnexpectedText",
        DecodeError::UnknownMessage { .. } => "UnknownMessage",
        DecodeError::MissingField { .. } => "MissingField",
        DecodeError::InvalidField { .. } => "InvalidField",
        _ => "Other",
    };
    match error.field() {
        Some(field) => format!("{variant}({field})"),
        None => variant.to_owned(),
    }
}

/// The client frames of the malformed-input scenarios that must not decode, by (file, seq).
fn expected_client_failures() -> BTreeMap<(String, u64), String> {
    let j = "j_malformed_frames.jsonl";
    let j2 = "j2_malformed_without_guard.jsonl";
    let table: &[(&str, u64, &str)] = &[
        (j, 9, "InvalidJson"),
        (j, 12, "InvalidJson"),
        (j, 15, "NotAnObject"),
        (j, 18, "NotAnObject"),
        (j, 21, "NotAnObject"),
        (j, 24, "NotAnObject"),
        (j, 27, "UnknownMessage"),
        (j, 34, "MissingField(clientRequestId)"),
        (j, 37, "InvalidField(clientRequestId)"),
        (j, 40, "InvalidField(clientRequestId)"),
        (j, 55, "UnknownMessage"),
        (j, 60, "UnknownMessage"),
        (j, 65, "MissingField(route)"),
        (j, 83, "MissingField(listenId)"),
        (j, 98, "MissingField(listeningToRoutes)"),
        (j, 106, "MissingField(listeningToRoutes[0].clientRequestId)"),
        (j, 129, "MissingField(clientIdInternalApp)"),
        (j, 151, "MissingField(clientIdInternalApp)"),
        (j2, 9, "InvalidJson"),
        (j2, 22, "MissingField(clientRequestId)"),
        (j2, 35, "MissingField(listeningToRoutes)"),
        (j2, 67, "MissingField(route)"),
    ];
    table
        .iter()
        .map(|&(file, seq, what)| ((file.to_owned(), seq), what.to_owned()))
        .collect()
}

#[test]
fn recorded_frames_round_trip_through_the_decoders() {
    let frames = recorded_frames();
    assert!(
        frames.len() > 1200,
        "expected the full recordings, found {} frames",
        frames.len()
    );

    let mut client_failures = BTreeMap::new();
    let mut mismatches = Vec::new();
    for frame in &frames {
        let at = format!("{} seq {}", frame.file, frame.seq);
        if frame.direction == "s2c" {
            let message = decode_server_frame(&frame.raw)
                .unwrap_or_else(|e| panic!("{at}: server frame rejected: {e}"));
            let encoded = message.encode();
            let equal = match &frame.json {
                Some(expected) => serde_json::from_str::<Value>(&encoded).ok().as_ref() == Some(expected),
                None => encoded == frame.raw,
            };
            if !equal {
                mismatches.push(format!("{at}: re-encoded as {encoded}"));
            }
            continue;
        }
        match decode_client_frame(&frame.raw) {
            Ok(message) => {
                let encoded: Value = serde_json::from_str(&message.encode()).expect("encoder writes JSON");
                if frame.json.as_ref() != Some(&encoded) {
                    mismatches.push(format!("{at}: re-encoded as {encoded}"));
                }
            }
            Err(error) => {
                client_failures.insert((frame.file.clone(), frame.seq), describe(&error));
            }
        }
    }

    assert!(
        mismatches.is_empty(),
        "frames that did not round-trip:\n{}",
        mismatches.join("\n")
    );
    assert_eq!(client_failures, expected_client_failures());
}

#[test]
fn decoded_requests_hide_credentials() {
    let mut authenticate_frames = 0;
    for frame in recorded_frames() {
        let Some(Value::Object(map)) = &frame.json else {
            continue;
        };
        let Some(token) = map
            .get("credential")
            .and_then(|c| c.get("accessToken"))
            .and_then(Value::as_str)
        else {
            continue;
        };
        authenticate_frames += 1;
        let secret = format!("\"accessToken\":\"{token}\"");
        match decode_client_frame(&frame.raw) {
            Ok(message) => {
                let debug = format!("{message:?}");
                assert!(
                    !debug.contains("accessToken"),
                    "Debug output shows the credential: {debug}"
                );
                assert!(debug.contains("<redacted>"));
            }
            Err(error) => {
                assert!(!error.to_string().contains(&secret));
                assert!(!format!("{error:?}").contains("accessToken"));
            }
        }
    }
    assert!(authenticate_frames > 10);
}
