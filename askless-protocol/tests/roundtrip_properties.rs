//! Property tests: every message the encoders can produce decodes back to the same message, and
//! no input, however random, makes a decoder panic.

use askless_protocol::{
    AsklessErrorCode, AuthenticateRequest, ClientIdInternalApp, ClientMessage, ClientRequestId,
    ConfigureConnectionRequest, ConfirmReceipt, ErrorBody, ListenId, ListenRequest, ModifyKind,
    ModifyRequest, NewDataForListener, Ping, ReadRequest, RequestType, Response, ResponseKind,
    ServerConfirmReceipt, ServerId, ServerMessage, StopListening, decode_client_frame, decode_server_frame,
};
use proptest::prelude::*;
use serde_json::{Map, Value};

fn id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,40}"
}

/// JSON values without floats, whose text form does not always parse back to the same bits.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        ".{0,20}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,10}", inner, 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn params() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        prop::collection::btree_map("[a-z]{1,8}", json(), 0..4)
            .prop_map(|entries| Value::Object(entries.into_iter().collect())),
    ]
}

fn request_type() -> impl Strategy<Value = RequestType> {
    prop_oneof![
        Just(RequestType::Create),
        Just(RequestType::Update),
        Just(RequestType::Delete),
        Just(RequestType::Read),
        "[A-Z]{1,10}"
            .prop_filter("names the decoder maps to a variant", |other| {
                !["CREATE", "UPDATE", "DELETE", "LISTEN", "READ", "AUTHENTICATE"].contains(&other.as_str())
            })
            .prop_map(RequestType::Other),
    ]
}

fn listen_request() -> impl Strategy<Value = ListenRequest> {
    (id(), ".{0,30}", params(), id()).prop_map(|(crid, route, params, listen_id)| {
        ListenRequest::new(
            ClientRequestId::new(crid),
            route,
            params,
            ListenId::new(listen_id),
        )
    })
}

fn client_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        (id(), id(), prop::option::of(".{0,10}")).prop_map(|(crid, app, client_type)| {
            let mut request =
                ConfigureConnectionRequest::new(ClientRequestId::new(crid), ClientIdInternalApp::new(app));
            request.client_type = client_type;
            ClientMessage::ConfigureConnection(request)
        }),
        (id(), id(), prop::option::of(json())).prop_map(|(crid, app, credential)| {
            let mut request = AuthenticateRequest::new(
                ClientRequestId::new(crid),
                ClientIdInternalApp::new(app),
                Value::Null,
            );
            request.credential = credential;
            ClientMessage::Authenticate(request)
        }),
        (id(), ".{0,30}", params()).prop_map(|(crid, route, params)| ClientMessage::Read(ReadRequest::new(
            ClientRequestId::new(crid),
            route,
            params
        ))),
        (id(), request_type(), ".{0,30}", json(), params()).prop_map(
            |(crid, request_type, route, body, params)| {
                let mut request = ModifyRequest::new(
                    ClientRequestId::new(crid),
                    ModifyKind::Create,
                    route,
                    body,
                    params,
                );
                request.request_type = request_type;
                ClientMessage::Modify(request)
            }
        ),
        listen_request().prop_map(ClientMessage::Listen),
        (id(), prop::option::of(id())).prop_map(|(crid, server_id)| {
            ClientMessage::ConfirmReceipt(ConfirmReceipt {
                client_request_id: ClientRequestId::new(crid),
                request_type: RequestType::ConfirmReceipt,
                server_id: server_id.map(ServerId::new),
            })
        }),
        prop::collection::vec(listen_request(), 0..4)
            .prop_map(|listening_to_routes| ClientMessage::Ping(Ping { listening_to_routes })),
    ]
}

fn error_body() -> impl Strategy<Value = ErrorBody> {
    (prop::option::of("[A-Z_]{1,20}"), prop::option::of(".{0,30}")).prop_map(|(code, description)| {
        ErrorBody {
            code: code.map(|code| AsklessErrorCode::from(code.as_str())),
            description,
        }
    })
}

fn server_message() -> impl Strategy<Value = ServerMessage> {
    let kind = prop_oneof![
        Just(ResponseKind::Plain),
        Just(ResponseKind::ConfigureConnection),
        Just(ResponseKind::Authenticate)
    ];
    prop_oneof![
        Just(ServerMessage::Welcome),
        Just(ServerMessage::Pong),
        (id(), id()).prop_map(|(crid, sid)| {
            ServerMessage::ServerConfirmReceipt(ServerConfirmReceipt {
                client_request_id: ClientRequestId::new(crid),
                server_id: ServerId::new(sid),
            })
        }),
        (
            id(),
            prop::option::of(json()),
            prop::option::of(error_body()),
            id(),
            kind
        )
            .prop_map(|(crid, output, error, sid, kind)| {
                ServerMessage::Response(Response {
                    client_request_id: ClientRequestId::new(crid),
                    output,
                    error,
                    server_id: ServerId::new(sid),
                    kind,
                })
            }),
        (prop::option::of(json()), id(), id()).prop_map(|(output, listen_id, sid)| {
            ServerMessage::NewDataForListener(NewDataForListener {
                output,
                listen_id: ListenId::new(listen_id),
                server_id: ServerId::new(sid),
            })
        }),
        (id(), id()).prop_map(|(listen_id, sid)| {
            ServerMessage::StopListening(StopListening {
                listen_id: ListenId::new(listen_id),
                server_id: ServerId::new(sid),
            })
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn client_messages_round_trip(message in client_message()) {
        let decoded = decode_client_frame(&message.encode()).expect("encoded message decodes");
        prop_assert_eq!(decoded, message);
    }

    #[test]
    fn server_messages_round_trip(message in server_message()) {
        let decoded = decode_server_frame(&message.encode()).expect("encoded message decodes");
        prop_assert_eq!(decoded, message);
    }

    #[test]
    fn serde_and_decoder_agree(message in server_message()) {
        let value = serde_json::to_value(&message).expect("serializes");
        let decoded: ServerMessage = serde_json::from_value(value).expect("deserializes");
        prop_assert_eq!(decoded, message);
    }

    #[test]
    fn random_text_never_panics(text in ".{0,200}") {
        let _ = decode_client_frame(&text);
        let _ = decode_server_frame(&text);
    }

    #[test]
    fn random_json_never_panics(value in json()) {
        let text = value.to_string();
        let _ = decode_client_frame(&text);
        let _ = decode_server_frame(&text);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = decode_client_frame(&text);
        let _ = decode_server_frame(&text);
    }

    #[test]
    fn mutated_server_frames_never_panic(message in server_message(), cut in 0usize..400, byte in any::<u8>()) {
        let mut bytes = message.encode().into_bytes();
        if !bytes.is_empty() {
            let at = cut % bytes.len();
            bytes[at] = byte;
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = decode_client_frame(&text);
        let _ = decode_server_frame(&text);
    }

    #[test]
    fn mutated_frames_never_panic(message in client_message(), cut in 0usize..400, byte in any::<u8>()) {
        let mut bytes = message.encode().into_bytes();
        if !bytes.is_empty() {
            let at = cut % bytes.len();
            bytes[at] = byte;
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = decode_client_frame(&text);
        let _ = decode_server_frame(&text);
    }
}
