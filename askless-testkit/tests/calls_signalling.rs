//! Call signalling through the mock with two raw-protocol clients: an accepted call with ICE
//! candidates and a hang-up, a rejected call, a call cancelled by the caller's ping, an accept
//! without any call, and the authentication gate of every call route. The frame orders are the
//! ones the Askless server 2.0.3 produced in the recorded calls.

mod replay;

use std::time::Duration;

use askless_protocol::{UserId, routes};
use askless_testkit::{AuthDecision, Direction, MockServer};
use askless_transport::{Connection, Transport, WebSocketTransport, url::Url};
use serde_json::{Value, json};
use tokio::time::Instant;

use replay::driver::recv_until;

/// Bound on every wait for a frame (virtual time).
const WAIT: Duration = Duration::from_secs(5);

/// A mock whose authenticate handler accepts `{"userId": <id>}` as that user. Notifications run
/// without the start-up grace, and the liveness and clean-up tasks are off so that long virtual
/// waits cannot cut a connection.
async fn call_server() -> MockServer {
    let server = MockServer::builder()
        .configure(|config| {
            config.notify_grace = Duration::ZERO;
            config.liveness_tick = None;
            config.record_cleanup_tick = None;
        })
        .start()
        .await;
    server.authenticate_with(|credential| async move {
        match credential.get("userId").and_then(UserId::from_value) {
            Some(user) => AuthDecision::user(user),
            None => AuthDecision::unauthenticated(),
        }
    });
    server
}

/// One listen a peer made, as its pings list it.
#[derive(Debug, Clone)]
struct Listen {
    client_request_id: String,
    route: String,
    params: Value,
    listen_id: String,
}

/// A raw client that confirms every response and value at once, like the reference client.
struct Peer {
    name: &'static str,
    connection: Connection,
    sent: u32,
    listens: Vec<Listen>,
}

impl Peer {
    /// Connects, configures and, with a user id, authenticates.
    async fn join(server: &MockServer, name: &'static str, user: Option<i64>) -> Peer {
        let url = Url::parse(&server.url()).expect("the mock's URL is valid");
        let connection = WebSocketTransport::default()
            .connect(&url)
            .await
            .unwrap_or_else(|error| panic!("{name}: connecting failed: {error}"));
        let mut peer = Peer {
            name,
            connection,
            sent: 0,
            listens: Vec::new(),
        };
        assert_eq!(peer.next().await, json!("welcome"), "{name}: greeting");

        let configure = peer.id("configure");
        peer.send(json!({
            "clientRequestId": configure, "requestType": "CONFIGURE_CONNECTION",
            "_class_type_configureconnectionrequest": "_",
            "clientIdInternalApp": format!("calls-{name}"), "clientType": "flutter"
        }))
        .await;
        peer.expect_receipt(&configure).await;
        peer.expect_response(&configure).await;

        if let Some(user) = user {
            let authenticate = peer.id("auth");
            peer.send(json!({
                "clientRequestId": authenticate, "requestType": "AUTHENTICATE",
                "_class_type_authenticaterequest": "_", "clientIdInternalApp": format!("calls-{name}"),
                "clientType": "flutter", "credential": {"userId": user}
            }))
            .await;
            peer.expect_receipt(&authenticate).await;
            let output = peer.expect_response(&authenticate).await;
            assert_eq!(
                output,
                json!({"userId": user, "claims": []}),
                "{name}: authentication"
            );
        }
        peer
    }

    fn id(&mut self, what: &str) -> String {
        self.sent += 1;
        format!("REQ-_{}-{what}-{}", self.name, self.sent)
    }

    async fn send(&mut self, frame: Value) {
        self.connection
            .send(frame.to_string())
            .await
            .unwrap_or_else(|error| panic!("{}: sending failed: {error}", self.name));
    }

    /// Returns the next frame (JSON, or the plain text as a JSON string) and confirms it when it
    /// is a response or a value.
    async fn next(&mut self) -> Value {
        let deadline = Instant::now() + WAIT;
        let text = match recv_until(&mut self.connection, deadline).await {
            Some(Ok(text)) => text,
            Some(Err(error)) => panic!("{}: connection ended: {error}", self.name),
            None => panic!("{}: no frame within {WAIT:?}", self.name),
        };
        let frame: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        let confirmable = frame.get("_class_type_serverconfirmreceipt").is_none()
            && (frame.get("_class_type_response").is_some()
                || frame.get("_class_type_newDataForListener").is_some());
        if confirmable {
            let ack = self.id("ack");
            let server_id = frame["serverId"].clone();
            self.send(json!({
                "clientRequestId": ack, "requestType": "CONFIRM_RECEIPT",
                "_class_type_clientconfirmreceipt": "_", "serverId": server_id
            }))
            .await;
        }
        frame
    }

    async fn expect_receipt(&mut self, client_request_id: &str) {
        let frame = self.next().await;
        assert_eq!(
            frame["output"],
            json!("RECEIVED"),
            "{}: expected a receipt, got {frame}",
            self.name
        );
        assert_eq!(
            frame["clientRequestId"],
            json!(client_request_id),
            "{}: receipt id",
            self.name
        );
    }

    /// Expects a successful response and returns its output.
    async fn expect_response(&mut self, client_request_id: &str) -> Value {
        let frame = self.next().await;
        assert_eq!(
            frame["clientRequestId"],
            json!(client_request_id),
            "{}: expected the response of {client_request_id}, got {frame}",
            self.name
        );
        assert!(
            frame.get("error").is_none(),
            "{}: unexpected error {frame}",
            self.name
        );
        frame["output"].clone()
    }

    /// Expects an error response and returns its error object.
    async fn expect_error(&mut self, client_request_id: &str) -> Value {
        let frame = self.next().await;
        assert_eq!(
            frame["clientRequestId"],
            json!(client_request_id),
            "{}: got {frame}",
            self.name
        );
        assert_eq!(frame["output"], Value::Null, "{}: output of an error", self.name);
        frame["error"].clone()
    }

    /// Expects a value pushed to `listen_id` and returns it.
    async fn expect_value(&mut self, listen_id: &str) -> Value {
        let frame = self.next().await;
        assert_eq!(
            frame["_class_type_newDataForListener"],
            json!("_"),
            "{}: expected a value for {listen_id}, got {frame}",
            self.name
        );
        assert_eq!(
            frame["listenId"],
            json!(listen_id),
            "{}: value for another listener",
            self.name
        );
        frame["output"].clone()
    }

    async fn expect_stop(&mut self, listen_id: &str) {
        let frame = self.next().await;
        assert_eq!(
            frame["_class_type_stoplistening"],
            json!("_"),
            "{}: expected a stop-listening event for {listen_id}, got {frame}",
            self.name
        );
        assert_eq!(
            frame["listenId"],
            json!(listen_id),
            "{}: stop for another listener",
            self.name
        );
        let server_id = frame["serverId"].as_str().unwrap_or("");
        assert!(
            server_id.starts_with("STOP-") && server_id.ends_with(&format!("-{listen_id}")),
            "{}: stop-listening serverId {server_id}",
            self.name
        );
    }

    async fn expect_pong(&mut self) {
        assert_eq!(self.next().await, json!("pong"), "{}: expected pong", self.name);
    }

    async fn expect_silence(&mut self, duration: Duration) {
        let deadline = Instant::now() + duration;
        if let Some(frame) = recv_until(&mut self.connection, deadline).await {
            panic!("{}: expected no frame, got {frame:?}", self.name);
        }
    }

    /// Listens and returns the first value.
    async fn listen(&mut self, route: &str, params: Value, listen_id: &str) -> Value {
        self.sent += 1;
        let client_request_id = format!("LIS-_{}-{}", self.name, self.sent);
        self.send(json!({
            "clientRequestId": client_request_id, "requestType": "LISTEN", "_class_type_listen": "_",
            "route": route, "params": params, "listenId": listen_id
        }))
        .await;
        self.expect_receipt(&client_request_id).await;
        assert_eq!(self.expect_response(&client_request_id).await, json!(listen_id));
        self.listens.push(Listen {
            client_request_id,
            route: route.to_owned(),
            params,
            listen_id: listen_id.to_owned(),
        });
        self.expect_value(listen_id).await
    }

    /// Sends a CREATE and consumes its receipt; returns the request id.
    async fn create(&mut self, route: &str, body: Value) -> String {
        let id = self.id("create");
        self.send(json!({
            "clientRequestId": id, "requestType": "CREATE", "_class_type_modify": "_",
            "route": route, "body": body, "params": null
        }))
        .await;
        self.expect_receipt(&id).await;
        id
    }

    /// Pings listing only the listens in `keep` (by listenId).
    async fn ping(&mut self, keep: &[&str]) {
        self.listens
            .retain(|listen| keep.contains(&listen.listen_id.as_str()));
        let entries: Vec<Value> = self
            .listens
            .iter()
            .map(|listen| {
                json!({
                    "clientRequestId": listen.client_request_id, "requestType": "LISTEN",
                    "_class_type_listen": "_", "route": listen.route, "params": listen.params,
                    "listenId": listen.listen_id
                })
            })
            .collect();
        self.send(json!({"_class_type_pingpong": "_", "listeningToRoutes": entries}))
            .await;
    }
}

fn offer() -> Value {
    json!({"sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n", "type": "offer"})
}

fn answer() -> Value {
    json!({"sdp": "v=0\r\no=- 3 4 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n", "type": "answer"})
}

/// Returns the listenIds of the stop-listening events the server sent, sorted.
///
/// Each connection's writer task records its frames when it writes them, so the frame log gives
/// no reliable order across connections. The order in which the clean-up emits the events is
/// checked by the unit tests of the call state machine.
fn stops_sent(server: &MockServer) -> Vec<String> {
    let mut stops: Vec<String> = server
        .frames()
        .into_iter()
        .filter(|frame| frame.direction == Direction::Sent)
        .filter_map(|frame| frame.json())
        .filter(|frame| frame.get("_class_type_stoplistening").is_some())
        .filter_map(|frame| frame["listenId"].as_str().map(str::to_owned))
        .collect();
    stops.sort();
    stops
}

/// Steps shared by the three calls: the callee listens for calls, the caller opens its channel
/// and requests a call, the callee opens its channel with the caller.
async fn ring(caller: &mut Peer, callee: &mut Peer, caller_id: i64, callee_id: i64) {
    assert_eq!(
        callee
            .listen(routes::CALL_RECEIVE, Value::Null, "LIS-callee-receive")
            .await,
        json!({"hasCallRequest": false})
    );
    assert_eq!(
        caller
            .listen(
                routes::LISTEN_FOR_A_CALL,
                json!({"remoteUserId": callee_id}),
                "LIS-caller-call"
            )
            .await,
        json!({"remoteUserId": callee_id})
    );

    let request = caller
        .create(
            routes::CALL_REQUEST,
            json!({"remoteUserId": callee_id, "sdp": offer(), "additionalData": {"videoCall": true}}),
        )
        .await;
    assert_eq!(
        caller.expect_response(&request).await,
        json!({"info": "You requested a call"})
    );
    assert_eq!(
        callee.expect_value("LIS-callee-receive").await,
        json!({"hasCallRequest": true, "remoteUserId": caller_id, "sdp": offer(), "additionalData": {"videoCall": true}})
    );

    assert_eq!(
        callee
            .listen(
                routes::LISTEN_FOR_A_CALL,
                json!({"remoteUserId": caller_id}),
                "LIS-callee-call"
            )
            .await,
        json!({"sdp": offer(), "additionalData": {"videoCall": true}, "remoteUserId": caller_id})
    );
    assert_eq!(
        caller.expect_value("LIS-caller-call").await,
        json!({"remoteUserIsConnected": true})
    );
}

#[tokio::test(start_paused = true)]
async fn call_accepted_with_ice_and_close() {
    let server = call_server().await;
    let mut caller = Peer::join(&server, "A", Some(1)).await;
    let mut callee = Peer::join(&server, "B", Some(2)).await;
    ring(&mut caller, &mut callee, 1, 2).await;

    assert_eq!(
        callee
            .listen(
                routes::ICE_CANDIDATE_LIST,
                json!({"remoteUserId": 1}),
                "LIS-callee-ice"
            )
            .await,
        json!({"remoteUserId": 1, "iceCandidateList": []})
    );
    let accept = callee
        .create(
            routes::CALL_RESPONSE,
            json!({"callAccepted": true, "remoteUserId": 1, "sdp": answer(), "additionalData": {}}),
        )
        .await;
    assert_eq!(
        callee.expect_response(&accept).await,
        json!({"info": "You (user 2) accepted the call of user 1"})
    );
    assert_eq!(
        caller.expect_value("LIS-caller-call").await,
        json!({"callAccepted": true, "sdp": answer(), "additionalData": {}, "remoteUserId": 2})
    );

    let candidates = json!([{"candidate": "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host", "id": "0", "label": 0}]);
    let ice = caller
        .create(
            routes::ICE_CANDIDATE_LIST,
            json!({"remoteUserId": 2, "iceCandidateList": candidates}),
        )
        .await;
    assert_eq!(caller.expect_response(&ice).await, json!({}));
    assert_eq!(
        callee.expect_value("LIS-callee-ice").await,
        json!({"remoteUserId": 1, "iceCandidateList": candidates})
    );

    // Hang-up: both channels receive a stop-listening event before the response, then the
    // callee's channel still receives the closing value.
    let close = caller
        .create(routes::CALL_CLOSE, json!({"remoteUserId": 2, "callClosed": true}))
        .await;
    caller.expect_stop("LIS-caller-call").await;
    assert_eq!(caller.expect_response(&close).await, json!({}));
    callee.expect_stop("LIS-callee-call").await;
    assert_eq!(
        callee.expect_value("LIS-callee-call").await,
        json!({"callClosed": true})
    );
    assert_eq!(stops_sent(&server), vec!["LIS-callee-call", "LIS-caller-call"]);

    // The caller's ping drops its channel: the callee learns that the caller is gone.
    caller.ping(&[]).await;
    caller.expect_pong().await;
    assert_eq!(
        callee.expect_value("LIS-callee-call").await,
        json!({"remoteUserIsConnected": false})
    );

    // The callee's ping drops its channel: it is alone, so one more stop for that channel.
    callee.ping(&["LIS-callee-receive", "LIS-callee-ice"]).await;
    callee.expect_pong().await;
    callee.expect_stop("LIS-callee-call").await;

    caller.expect_silence(Duration::from_secs(1)).await;
    callee.expect_silence(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn call_rejected_stops_on_confirmation() {
    let server = call_server().await;
    let mut caller = Peer::join(&server, "A", Some(3)).await;
    let mut callee = Peer::join(&server, "B", Some(4)).await;
    ring(&mut caller, &mut callee, 3, 4).await;

    let reject = callee
        .create(
            routes::CALL_RESPONSE,
            json!({"remoteUserId": 3, "callAccepted": false, "additionalData": {"reason": "busy"}}),
        )
        .await;
    assert_eq!(
        callee.expect_response(&reject).await,
        json!({"info": "You (user 4) rejected the call of user 3"})
    );
    // Reading the value confirms it, which makes the server clean the call up.
    assert_eq!(
        caller.expect_value("LIS-caller-call").await,
        json!({"callClosed": true, "callAccepted": false, "additionalData": {"reason": "busy"}, "remoteUserId": 4})
    );
    caller.expect_stop("LIS-caller-call").await;
    callee.expect_stop("LIS-callee-call").await;
    assert_eq!(stops_sent(&server), vec!["LIS-callee-call", "LIS-caller-call"]);

    caller.ping(&[]).await;
    caller.expect_pong().await;
    assert_eq!(
        callee.expect_value("LIS-callee-call").await,
        json!({"remoteUserIsConnected": false})
    );
    callee.ping(&["LIS-callee-receive"]).await;
    callee.expect_pong().await;
    callee.expect_stop("LIS-callee-call").await;

    caller.expect_silence(Duration::from_secs(1)).await;
    callee.expect_silence(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn call_cancelled_by_ping_omission() {
    let server = call_server().await;
    let mut caller = Peer::join(&server, "A", Some(5)).await;
    let mut callee = Peer::join(&server, "B", Some(6)).await;
    ring(&mut caller, &mut callee, 5, 6).await;

    // The caller cancels the way the reference client does: its ping omits its channel.
    caller.ping(&[]).await;
    caller.expect_pong().await;
    caller.expect_stop("LIS-caller-call").await;
    caller.expect_stop("LIS-caller-call").await;
    callee.expect_stop("LIS-callee-call").await;
    callee.expect_stop("LIS-callee-call").await;
    assert_eq!(
        callee.expect_value("LIS-callee-call").await,
        json!({"remoteUserIsConnected": false})
    );
    // Confirming the cancellation value cleans up once more: a fifth stop, for the callee.
    assert_eq!(
        callee.expect_value("LIS-callee-call").await,
        json!({"callClosed": true, "callAccepted": false})
    );
    callee.expect_stop("LIS-callee-call").await;
    assert_eq!(
        stops_sent(&server),
        vec![
            "LIS-callee-call",
            "LIS-callee-call",
            "LIS-callee-call",
            "LIS-caller-call",
            "LIS-caller-call"
        ]
    );

    // The incoming-call stream received nothing, but a fresh read shows no call.
    callee.ping(&["LIS-callee-receive"]).await;
    callee.expect_pong().await;
    let read = callee.id("read");
    callee
        .send(json!({
            "clientRequestId": read, "requestType": "READ", "_class_type_read": "_",
            "route": routes::CALL_RECEIVE, "params": null
        }))
        .await;
    callee.expect_receipt(&read).await;
    assert_eq!(
        callee.expect_response(&read).await,
        json!({"hasCallRequest": false})
    );

    caller.expect_silence(Duration::from_secs(1)).await;
    callee.expect_silence(Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
async fn accept_without_request_is_unavailable() {
    let server = call_server().await;
    let mut callee = Peer::join(&server, "B", Some(8)).await;
    let accept = callee
        .create(
            routes::CALL_RESPONSE,
            json!({"callAccepted": true, "remoteUserId": 7, "sdp": answer(), "additionalData": {}}),
        )
        .await;
    assert_eq!(
        callee.expect_error(&accept).await,
        json!({"code": "CALL_NOT_AVAILABLE_ANYMORE", "description": "The call is no longer available"})
    );
}

#[tokio::test(start_paused = true)]
async fn call_routes_need_authentication() {
    let server = call_server().await;
    let mut stranger = Peer::join(&server, "U", None).await;

    for route in [
        routes::CALL_RECEIVE,
        routes::LISTEN_FOR_A_CALL,
        routes::ICE_CANDIDATE_LIST,
    ] {
        let id = stranger.id("listen");
        stranger
            .send(json!({
                "clientRequestId": id, "requestType": "LISTEN", "_class_type_listen": "_",
                "route": route, "params": {"remoteUserId": 1}, "listenId": format!("LIS-{id}")
            }))
            .await;
        stranger.expect_receipt(&id).await;
        assert_eq!(
            stranger.expect_error(&id).await,
            json!({
                "code": "PENDING_AUTHENTICATION",
                "description": format!("Could not perform the operation on (LISTEN) \"{route}\" because authentication is required")
            }),
            "listen on {route}"
        );
    }

    for route in [
        routes::CALL_REQUEST,
        routes::CALL_RESPONSE,
        routes::ICE_CANDIDATE_LIST,
        routes::CALL_CLOSE,
    ] {
        let id = stranger.create(route, json!({"remoteUserId": 1})).await;
        assert_eq!(
            stranger.expect_error(&id).await,
            json!({
                "code": "PENDING_AUTHENTICATION",
                "description": format!("Could not perform the operation on (CREATE) \"{route}\" because authentication is required")
            }),
            "create on {route}"
        );
    }
    stranger.expect_silence(Duration::from_secs(1)).await;
}
