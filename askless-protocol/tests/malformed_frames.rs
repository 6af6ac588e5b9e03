//! Malformed frames, each decoded on the side that would receive it, must yield the typed error
//! that names what was wrong. The client-side inputs are the ones the real server was sent in its
//! malformed-input recording; the server-side ones are what a broken or hostile server could send.

use askless_protocol::{DecodeError, JsonType, MessageKind, decode_client_frame, decode_server_frame};

#[derive(Debug)]
enum Expected {
    InvalidJson,
    NotAnObject(JsonType),
    UnexpectedText,
    UnknownMessage { client_request_id: Option<&'static str> },
    Missing { kind: MessageKind, field: &'static str },
    Invalid { kind: MessageKind, field: &'static str },
}

fn check(input: &str, error: DecodeError, expected: &Expected) {
    let matches = match (expected, &error) {
        (Expected::InvalidJson, DecodeError::InvalidJson { .. }) => true,
        (Expected::NotAnObject(want), DecodeError::NotAnObject { found }) => want == found,
        (Expected::UnexpectedText, DecodeError::UnexpectedText { .. }) => true,
        (Expected::UnknownMessage { client_request_id }, DecodeError::UnknownMessage { .. }) => {
            error.client_request_id() == *client_request_id
        }
        (Expected::Missing { kind, field }, DecodeError::MissingField { .. })
        | (Expected::Invalid { kind, field }, DecodeError::InvalidField { .. }) => {
            error.kind() == Some(*kind) && error.field() == Some(*field)
        }
        _ => false,
    };
    assert!(
        matches,
        "input {input:?}: expected {expected:?}, got {error:?} ({error})"
    );
}

#[test]
fn server_side_rejects_recorded_malformed_client_frames() {
    use Expected::*;
    use MessageKind::*;
    let cases: &[(&str, Expected)] = &[
        ("{not json", InvalidJson),
        ("", InvalidJson),
        ("null", NotAnObject(JsonType::Null)),
        ("42", NotAnObject(JsonType::Number)),
        ("\"hello\"", NotAnObject(JsonType::String)),
        ("[]", NotAnObject(JsonType::Array)),
        (
            "{}",
            UnknownMessage {
                client_request_id: None,
            },
        ),
        (
            r#"{"requestType":"READ","_class_type_read":"_","route":"product/all","params":null}"#,
            Missing {
                kind: Read,
                field: "clientRequestId",
            },
        ),
        (
            r#"{"clientRequestId":"","requestType":"READ","_class_type_read":"_","route":"product/all","params":null}"#,
            Invalid {
                kind: Read,
                field: "clientRequestId",
            },
        ),
        (
            r#"{"clientRequestId":12345,"requestType":"READ","_class_type_read":"_","route":"product/all","params":null}"#,
            Invalid {
                kind: Read,
                field: "clientRequestId",
            },
        ),
        (
            r#"{"clientRequestId":"REQ-_j-M-no-marker","requestType":"READ","route":"product/all","params":null}"#,
            UnknownMessage {
                client_request_id: Some("REQ-_j-M-no-marker"),
            },
        ),
        (
            r#"{"clientRequestId":"REQ-_j-M-unknown","requestType":"SUBSCRIBE_ALL"}"#,
            UnknownMessage {
                client_request_id: Some("REQ-_j-M-unknown"),
            },
        ),
        (
            r#"{"clientRequestId":"REQ-_j-M-no-route","requestType":"READ","_class_type_read":"_"}"#,
            Missing {
                kind: Read,
                field: "route",
            },
        ),
        (
            r#"{"clientRequestId":"REQ-_j-M-listen-no-id","requestType":"LISTEN","_class_type_listen":"_","route":"counter","params":null}"#,
            Missing {
                kind: Listen,
                field: "listenId",
            },
        ),
        (
            r#"{"_class_type_pingpong":"_"}"#,
            Missing {
                kind: Ping,
                field: "listeningToRoutes",
            },
        ),
        (
            r#"{"_class_type_pingpong":"_","listeningToRoutes":[{"requestType":"LISTEN","_class_type_listen":"_","route":"counter","params":null,"listenId":"LIS-j-M-nocrid"}]}"#,
            Missing {
                kind: Ping,
                field: "listeningToRoutes[0].clientRequestId",
            },
        ),
        (
            r#"{"_class_type_pingpong":"_","listeningToRoutes":[42]}"#,
            Invalid {
                kind: Ping,
                field: "listeningToRoutes[0]",
            },
        ),
        (
            r#"{"_class_type_pingpong":"_","listeningToRoutes":{}}"#,
            Invalid {
                kind: Ping,
                field: "listeningToRoutes",
            },
        ),
        (
            r#"{"clientRequestId":"REQ-_j-N-cfg-noid","requestType":"CONFIGURE_CONNECTION","_class_type_configureconnectionrequest":"_","clientType":"flutter"}"#,
            Missing {
                kind: ConfigureConnection,
                field: "clientIdInternalApp",
            },
        ),
        (
            r#"{"clientRequestId":"REQ-_j-O-auth","requestType":"AUTHENTICATE","_class_type_authenticaterequest":"_","clientType":"flutter","credential":{"accessToken":"good-5"}}"#,
            Missing {
                kind: Authenticate,
                field: "clientIdInternalApp",
            },
        ),
        (
            r#"{"clientRequestId":"REQ-_x","requestType":"READ","_class_type_read":"_","route":7,"params":null}"#,
            Invalid {
                kind: Read,
                field: "route",
            },
        ),
        (
            r#"{"clientRequestId":"REQ-_x","_class_type_modify":"_","route":"note","body":{},"params":null}"#,
            Missing {
                kind: Modify,
                field: "requestType",
            },
        ),
    ];
    for (input, expected) in cases {
        match decode_client_frame(input) {
            Ok(message) => panic!("input {input:?}: expected {expected:?}, decoded {message:?}"),
            Err(error) => check(input, error, expected),
        }
    }
}

#[test]
fn client_side_rejects_malformed_server_frames() {
    use Expected::*;
    use MessageKind::*;
    let cases: &[(&str, Expected)] = &[
        ("", UnexpectedText),
        ("hello", UnexpectedText),
        ("{\"serverId\":", InvalidJson),
        ("[1,2]", NotAnObject(JsonType::Array)),
        ("true", NotAnObject(JsonType::Bool)),
        (
            r#"{"serverId":"RES-abc"}"#,
            UnknownMessage {
                client_request_id: None,
            },
        ),
        (
            r#"{"clientRequestId":"REQ-_a","output":1,"dataType":"AsklessResponse","_class_type_response":"_"}"#,
            Missing {
                kind: Response,
                field: "serverId",
            },
        ),
        (
            r#"{"output":1,"dataType":"AsklessResponse","_class_type_response":"_","serverId":"RES-abc"}"#,
            Missing {
                kind: Response,
                field: "clientRequestId",
            },
        ),
        (
            r#"{"clientRequestId":"REQ-_a","error":"boom","_class_type_response":"_","serverId":"RES-abc"}"#,
            Invalid {
                kind: Response,
                field: "error",
            },
        ),
        (
            r#"{"output":1,"_class_type_newDataForListener":"_","serverId":"NEW-abcde-LIS-x"}"#,
            Missing {
                kind: NewDataForListener,
                field: "listenId",
            },
        ),
        (
            r#"{"listenId":5,"_class_type_stoplistening":"_","serverId":"STOP-abcde-LIS-x"}"#,
            Invalid {
                kind: StopListening,
                field: "listenId",
            },
        ),
        (
            r#"{"clientRequestId":"REQ-_a","output":"RECEIVED","_class_type_response":"_","serverId":42,"_class_type_serverconfirmreceipt":"_"}"#,
            Invalid {
                kind: ServerConfirmReceipt,
                field: "serverId",
            },
        ),
        (
            r#"{"clientRequestId":"REQ-_a","_class_type_response":"_","serverId":""}"#,
            Invalid {
                kind: Response,
                field: "serverId",
            },
        ),
    ];
    for (input, expected) in cases {
        match decode_server_frame(input) {
            Ok(message) => panic!("input {input:?}: expected {expected:?}, decoded {message:?}"),
            Err(error) => check(input, error, expected),
        }
    }
}

#[test]
fn null_markers_do_not_classify() {
    let error =
        decode_server_frame(r#"{"_class_type_response":null,"serverId":"RES-abc","clientRequestId":"x"}"#)
            .expect_err("a null marker is no marker");
    assert!(matches!(error, DecodeError::UnknownMessage { .. }));
}

#[test]
fn numeric_error_codes_reach_the_caller() {
    let frame = r#"{"clientRequestId":"REQ-_a","output":null,"error":{"code":404,"description":"gone"},"dataType":"AsklessResponse","_class_type_response":"_","serverId":"RES-abc"}"#;
    let message = decode_server_frame(frame).expect("a failure with a numeric code still decodes");
    let askless_protocol::ServerMessage::Response(response) = message else {
        panic!("expected a response");
    };
    assert_eq!(response.error_code().map(|code| code.as_str()), Some("404"));
    assert!(!response.is_success());
}

#[test]
fn error_messages_name_field_and_type() {
    let error = decode_client_frame(r#"{"clientRequestId":"REQ-_x","requestType":"READ","_class_type_read":"_","route":["secret-value"],"params":null}"#)
        .expect_err("route must be a string");
    let text = error.to_string();
    assert!(text.contains("`route`"), "{text}");
    assert!(text.contains("an array"), "{text}");
    assert!(text.contains("REQ-_x"), "{text}");
    assert!(!text.contains("secret-value"), "{text}");
}

#[test]
fn deeply_nested_input_is_rejected() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert!(matches!(
        decode_client_frame(&deep),
        Err(DecodeError::InvalidJson { .. })
    ));
    assert!(matches!(
        decode_server_frame(&deep),
        Err(DecodeError::InvalidJson { .. })
    ));
}
