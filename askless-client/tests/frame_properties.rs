//! Property test of the client's frame handling: random server frames, from random bytes to
//! well-marked messages with random fields, go through the in-memory transport into a real
//! client, which must not panic and must still complete a valid request afterwards.

use std::time::Duration;

use askless_client::{AsklessClient, RequestOptions};
use askless_protocol::{
    ClientMessage, ConnectionConfiguration, Response, ServerConfirmReceipt, ServerId, ServerMessage,
    decode_client_frame,
};
use askless_transport::Connection;
use askless_transport::memory::MemoryTransport;
use proptest::prelude::*;
use serde_json::{Value, json};

/// Maximum virtual wait for anything the test expects to happen.
const WAIT: Duration = Duration::from_secs(60);

/// Class markers of the server messages, so that random objects reach the decoders' deeper
/// checks instead of failing at classification.
const MARKERS: [&str; 6] = [
    "_class_type_response",
    "_class_type_serverconfirmreceipt",
    "_class_type_newDataForListener",
    "_class_type_stopListening",
    "_class_type_unknown",
    "clientRequestId",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|n| json!(n)),
        ".{0,20}".prop_map(Value::String),
        "(REQ|LIS|RES|NEW|STOP)-[a-z0-9_]{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-zA-Z_]{1,16}", inner, 0..5)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// An object carrying one of the class markers and random protocol-looking fields.
fn marked_object() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(MARKERS.to_vec()),
        prop::collection::btree_map(
            prop::sample::select(vec![
                "clientRequestId",
                "serverId",
                "listenId",
                "output",
                "error",
                "code",
                "description",
            ]),
            json_value(),
            0..6,
        ),
    )
        .prop_map(|(marker, fields)| {
            let mut object: serde_json::Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            object.insert(marker.to_owned(), json!("_"));
            Value::Object(object)
        })
}

fn frame() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..64)
            .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        ".{0,80}",
        json_value().prop_map(|value| value.to_string()),
        marked_object().prop_map(|value| value.to_string()),
        Just("welcome".to_owned()),
        Just("pong".to_owned()),
    ]
}

/// Receives the next client message that is not a ping or a confirm-receipt.
async fn next_request(conn: &mut Connection) -> ClientMessage {
    loop {
        let text = tokio::time::timeout(WAIT, conn.recv())
            .await
            .expect("a client frame in time")
            .expect("the client keeps the connection");
        let message = decode_client_frame(&text).expect("the client sends well-formed frames");
        match message {
            ClientMessage::Ping(_) => conn.send("pong").await.expect("pong sent"),
            ClientMessage::ConfirmReceipt(_) => {}
            other => return other,
        }
    }
}

async fn respond(
    conn: &mut Connection,
    id: askless_protocol::ClientRequestId,
    response: Response,
    n: &mut u32,
) {
    *n += 1;
    let receipt = ServerConfirmReceipt {
        client_request_id: id,
        server_id: ServerId::new(format!("RES-prop-receipt{n}")),
    };
    conn.send(ServerMessage::ServerConfirmReceipt(receipt).encode())
        .await
        .expect("receipt sent");
    conn.send(ServerMessage::Response(response).encode())
        .await
        .expect("response sent");
}

/// Plays one session: handshake, the random frames, then a read that must succeed.
async fn session(frames: Vec<String>) {
    let transport = MemoryTransport::new();
    let mut listener = transport.listen();
    let client = AsklessClient::builder("ws://127.0.0.1:1/")
        .transport(transport.clone())
        .build()
        .expect("valid client");
    let mut conn = listener.accept().await.expect("the client connects");
    let mut n = 0;

    conn.send("welcome").await.expect("welcome sent");
    let ClientMessage::ConfigureConnection(configure) = next_request(&mut conn).await else {
        panic!("expected a configure request first");
    };
    let config = ConnectionConfiguration::server_defaults();
    let response = Response::configure_connection(
        configure.client_request_id.clone(),
        ServerId::new("RES-prop-configure"),
        &config,
    );
    respond(&mut conn, configure.client_request_id, response, &mut n).await;

    for frame in &frames {
        conn.send(frame.clone()).await.expect("random frame sent");
    }

    let read = tokio::spawn({
        let client = client.clone();
        async move {
            client
                .read_with("health", (), RequestOptions::never_timeout())
                .await
        }
    });
    let ClientMessage::Read(request) = next_request(&mut conn).await else {
        panic!("expected the read");
    };
    let response = Response::success(
        request.client_request_id.clone(),
        ServerId::new("RES-prop-read"),
        Some(json!("up")),
    );
    respond(&mut conn, request.client_request_id, response, &mut n).await;
    let output = tokio::time::timeout(WAIT, read)
        .await
        .expect("the read completes in time")
        .expect("the read task does not panic")
        .expect("the read succeeds after random frames");
    assert_eq!(output.value(), Some(&json!("up")));
    assert!(client.stats().frames_received >= frames.len() as u64);
    client.close().await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_frames_leave_client_usable(frames in prop::collection::vec(frame(), 0..12)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a tokio runtime");
        runtime.block_on(session(frames));
    }
}
