//! Loading of recorded transcripts: one JSON object per line, frames and socket events of
//! every connection of one scenario.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// Directory of the transcripts recorded against the Askless server 2.0.3.
pub(crate) fn recorded_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../askless-protocol/tests/data/transcripts")
}

/// Directory of the transcripts recorded against the Askless example servers.
pub(crate) fn upstream_examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../askless-protocol/tests/data/upstream-examples")
}

/// What one transcript line records.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EntryKind {
    /// A frame the client sent; `binary` when it went out as a binary frame.
    ClientFrame { raw: String, binary: bool },
    /// A frame the server sent.
    ServerFrame { raw: String },
    /// The connection opened.
    Open,
    /// The connection closed with this code.
    Close { code: Option<u16> },
    /// An annotation of the capture script, or an event the replay does not need.
    Other,
}

/// One transcript line.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    /// Running number within the file.
    pub seq: u64,
    /// Milliseconds since the scenario started.
    pub t_ms: f64,
    /// Connection label, `None` for notes.
    pub label: Option<String>,
    /// What happened.
    pub kind: EntryKind,
}

/// A whole transcript.
#[derive(Debug, Clone)]
pub(crate) struct Transcript {
    /// The file it was read from.
    pub path: PathBuf,
    /// Its lines in order.
    pub entries: Vec<Entry>,
}

impl Transcript {
    /// Reads the recorded transcript whose file name starts with `scenario` followed by `_`.
    pub(crate) fn recorded(scenario: &str) -> Transcript {
        let dir = recorded_dir();
        let prefix = format!("{scenario}_");
        let mut matches: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("cannot list the transcripts in {}: {error}", dir.display()))
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| {
                let name = path.file_name().and_then(|name| name.to_str()).unwrap_or("");
                name.starts_with(&prefix) && name.ends_with(".jsonl")
            })
            .collect();
        matches.sort();
        assert_eq!(
            matches.len(),
            1,
            "expected one transcript for scenario {scenario} in {}, found {matches:?}",
            dir.display()
        );
        Transcript::read(&matches[0])
    }

    /// Reads a transcript file; panics with the line number on a malformed line.
    pub(crate) fn read(path: &Path) -> Transcript {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|error| panic!("cannot read transcript {}: {error}", path.display()));
        let entries = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(index, line)| {
                let value: Value = serde_json::from_str(line).unwrap_or_else(|error| {
                    panic!("line {} of {} is not JSON: {error}", index + 1, path.display())
                });
                parse_entry(&value)
            })
            .collect();
        Transcript {
            path: path.to_path_buf(),
            entries,
        }
    }

    /// Returns the connection labels in order of first appearance.
    pub(crate) fn labels(&self) -> Vec<String> {
        let mut labels: Vec<String> = Vec::new();
        for entry in &self.entries {
            if let Some(label) = &entry.label {
                if !labels.contains(label) {
                    labels.push(label.clone());
                }
            }
        }
        labels
    }

    /// Returns the server frames of connection `label`, in order.
    pub(crate) fn server_frames(&self, label: &str) -> Vec<&Entry> {
        self.entries
            .iter()
            .filter(|entry| entry.label.as_deref() == Some(label))
            .filter(|entry| matches!(entry.kind, EntryKind::ServerFrame { .. }))
            .collect()
    }

    /// Returns the close code recorded for connection `label`, if it closed.
    pub(crate) fn close_code(&self, label: &str) -> Option<Option<u16>> {
        self.entries
            .iter()
            .filter(|entry| entry.label.as_deref() == Some(label))
            .find_map(|entry| match entry.kind {
                EntryKind::Close { code } => Some(code),
                _ => None,
            })
    }
}

fn parse_entry(value: &Value) -> Entry {
    let seq = value["seq"].as_u64().unwrap_or(0);
    let t_ms = value["t_ms"].as_f64().unwrap_or(0.0);
    let label = value["client"].as_str().map(str::to_owned);
    let raw = value["raw"].as_str().unwrap_or("").to_owned();
    let kind = match value["dir"].as_str() {
        Some("c2s") => EntryKind::ClientFrame {
            raw,
            binary: value["frame"].as_str() == Some("binary"),
        },
        Some("s2c") => EntryKind::ServerFrame { raw },
        Some("event") => match value["event"].as_str() {
            Some("open") => EntryKind::Open,
            Some("close") => EntryKind::Close {
                code: value["code"].as_u64().and_then(|code| u16::try_from(code).ok()),
            },
            _ => EntryKind::Other,
        },
        _ => EntryKind::Other,
    };
    Entry {
        seq,
        t_ms,
        label,
        kind,
    }
}
