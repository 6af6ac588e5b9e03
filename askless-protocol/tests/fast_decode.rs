//! `decode_server_frame` takes a fast path for common frames. For every frame, it must give the
//! same result as the general decoder, `decode_server_value` on the parsed JSON.

use std::path::Path;

use askless_protocol::{decode_server_frame, decode_server_value};
use serde_json::Value;

/// Decodes `text` both ways and checks that the results are equal.
fn assert_same_decoding(text: &str) {
    let fast = decode_server_frame(text);
    let general = match serde_json::from_str::<Value>(text) {
        Ok(value) => decode_server_value(value),
        // Plain text (`welcome`, `pong`) and invalid JSON never reach the fast path, which
        // accepts only what deserializes as a JSON object.
        Err(_) => return,
    };
    assert_eq!(
        format!("{fast:?}"),
        format!("{general:?}"),
        "the fast path differs for {text}"
    );
}

#[test]
fn recorded_server_frames_decode_alike() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/transcripts");
    let mut checked = 0;
    for entry in std::fs::read_dir(&folder).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|ext| ext.to_str()) != Some("jsonl") {
            continue;
        }
        for line in std::fs::read_to_string(&path).unwrap().lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            if record["dir"] != "s2c" {
                continue;
            }
            if let Some(raw) = record["raw"].as_str() {
                assert_same_decoding(raw);
                checked += 1;
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} server frames found in {}",
        folder.display()
    );
}

#[test]
fn unusual_frames_decode_alike() {
    let cases = [
        // Common shapes.
        r#"{"clientRequestId":"REQ-_a","output":"RECEIVED","dataType":"ServerConfirmReceiptCli","_class_type_response":"_","serverId":"RES-1","_class_type_serverconfirmreceipt":"_"}"#,
        r#"{"clientRequestId":"REQ-_a","output":[1,2],"dataType":"AsklessResponse","_class_type_response":"_","serverId":"RES-2"}"#,
        r#"{"output":{"v":1},"listenId":"LIS-a","_class_type_newDataForListener":"_","dataType":"NewDataForListener","serverId":"NEW-x-LIS-a"}"#,
        r#"{"listenId":"LIS-a","_class_type_stoplistening":"_","dataType":"StopListening","serverId":"STOP-x-LIS-a"}"#,
        r#"{"clientRequestId":"REQ-_c","output":{},"_class_type_response":"_","serverId":"RES-3","_class_type_configureconnection":"_"}"#,
        r#"{"clientRequestId":"REQ-_d","output":{},"_class_type_response":"_","serverId":"RES-4","_class_type_authenticateresponse":"_"}"#,
        // Output null, absent, and an error.
        r#"{"clientRequestId":"REQ-_a","output":null,"_class_type_response":"_","serverId":"RES-5"}"#,
        r#"{"clientRequestId":"REQ-_a","_class_type_response":"_","serverId":"RES-6"}"#,
        r#"{"clientRequestId":"REQ-_a","output":null,"error":{"code":"X","description":"d"},"_class_type_response":"_","serverId":"RES-7"}"#,
        r#"{"clientRequestId":"REQ-_a","error":null,"_class_type_response":"_","serverId":"RES-8"}"#,
        // Markers with other values, or null.
        r#"{"clientRequestId":"REQ-_a","_class_type_response":"x","serverId":"RES-9"}"#,
        r#"{"clientRequestId":"REQ-_a","_class_type_response":null,"serverId":"RES-10"}"#,
        r#"{"clientRequestId":"REQ-_a","_class_type_response":1,"serverId":"RES-11"}"#,
        r#"{"listenId":"LIS-a","_class_type_newDataForListener":"_","_class_type_response":"_","clientRequestId":"REQ-_a","serverId":"NEW-1"}"#,
        // Ids missing, empty, null or not strings.
        r#"{"clientRequestId":"","_class_type_response":"_","serverId":"RES-12"}"#,
        r#"{"clientRequestId":"REQ-_a","_class_type_response":"_","serverId":""}"#,
        r#"{"clientRequestId":"REQ-_a","_class_type_response":"_"}"#,
        r#"{"clientRequestId":null,"_class_type_response":"_","serverId":"RES-13"}"#,
        r#"{"clientRequestId":7,"_class_type_response":"_","serverId":"RES-14"}"#,
        r#"{"listenId":5,"output":1,"_class_type_newDataForListener":"_","serverId":"NEW-2"}"#,
        r#"{"listenId":"LIS-a","clientRequestId":5,"output":1,"_class_type_newDataForListener":"_","serverId":"NEW-3"}"#,
        // Escapes, repeated and unknown keys, no marker, not an object.
        r#"{"clientRequestId":"REQ-_\u0061","output":"\"q\"","_class_type_response":"_","serverId":"RES-\u0031"}"#,
        r#"{"clientRequestId":"REQ-_a","clientRequestId":"REQ-_b","_class_type_response":"_","serverId":"RES-15"}"#,
        r#"{"clientRequestId":"REQ-_a","extra":1,"_class_type_response":"_","serverId":"RES-16"}"#,
        r#"{"clientRequestId":"REQ-_a","serverId":"RES-17"}"#,
        r#"[1,2]"#,
        r#""welcome""#,
        r#"{"clientRequestId":"REQ-_a","#,
        "welcome",
        "pong",
        "hello",
    ];
    for text in cases {
        assert_same_decoding(text);
    }
}
