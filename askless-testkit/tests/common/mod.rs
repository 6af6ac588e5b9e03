//! A raw Askless test client: sends exact frames and records what comes back.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test file uses a different part of the client"
)]

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for one frame before failing.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// Real time during which a wait keeps the paused clock still, so that frames crossing the
/// loopback interface arrive before the clock may jump (loopback delivery can take tens of
/// milliseconds on a loaded machine).
const CLOCK_HOLD: Duration = Duration::from_millis(500);

/// How a connection ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// A close frame, with its status code if it had one.
    CloseFrame(Option<u16>),
    /// The connection dropped without a close frame.
    Abnormal,
}

/// A raw WebSocket client speaking exact JSON frames.
pub struct TestClient {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Every text frame received, in order.
    pub received: Vec<String>,
    counter: u64,
}

impl TestClient {
    /// Connects and consumes the `welcome` greeting.
    pub async fn connect(url: &str) -> Self {
        let mut client = Self::connect_raw(url).await;
        let welcome = client.recv_text().await;
        assert_eq!(welcome, "welcome", "first frame must be the greeting");
        client
    }

    /// Connects without reading anything.
    pub async fn connect_raw(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("connect to the mock");
        Self {
            ws,
            received: Vec::new(),
            counter: 0,
        }
    }

    /// Connects and configures with `client_id`, consuming the receipt and the response.
    pub async fn configured(url: &str, client_id: &str) -> Self {
        let mut client = Self::connect(url).await;
        let response = client.configure(client_id).await;
        client.confirm(&response).await;
        client
    }

    /// Returns a fresh request id with a readable prefix.
    pub fn next_id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}-_{}", self.counter)
    }

    /// Sends one text frame.
    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws
            .send(Message::text(text.into()))
            .await
            .expect("send a frame");
    }

    /// Sends one JSON frame.
    pub async fn send(&mut self, value: Value) {
        self.send_text(value.to_string()).await;
    }

    /// Receives the next text frame.
    pub async fn recv_text(&mut self) -> String {
        match self.try_recv(FRAME_TIMEOUT).await {
            Some(text) => text,
            None => panic!(
                "no frame within {FRAME_TIMEOUT:?}; received so far: {:#?}",
                self.received
            ),
        }
    }

    /// Receives the next frame as JSON.
    pub async fn recv(&mut self) -> Value {
        let text = self.recv_text().await;
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("frame is not JSON: {text}"))
    }

    /// Receives the next frame within `timeout`, or `None`.
    pub async fn try_recv(&mut self, timeout: Duration) -> Option<String> {
        loop {
            let message = self.next_message(timeout).await?;
            if let Message::Text(text) = message {
                let text = text.as_str().to_owned();
                self.received.push(text.clone());
                return Some(text);
            }
        }
    }

    /// Waits for the next WebSocket message; `None` on timeout, error or end.
    ///
    /// Under paused time the clock jumps to the next timer as soon as the runtime is idle, even
    /// while a frame is still crossing the loopback interface. A short blocking task holds the
    /// clock (tokio does not auto-advance while one runs) so that frames already on their way
    /// arrive before any timer fires.
    async fn next_message(&mut self, timeout: Duration) -> Option<Message> {
        let hold_clock = tokio::task::spawn_blocking(|| std::thread::sleep(CLOCK_HOLD));
        tokio::select! {
            biased;
            message = self.ws.next() => return message?.ok(),
            _ = hold_clock => {}
        }
        tokio::time::timeout(timeout, self.ws.next()).await.ok()??.ok()
    }

    /// Asserts that nothing arrives within `duration`.
    pub async fn expect_silence(&mut self, duration: Duration) {
        if let Some(text) = self.try_recv(duration).await {
            panic!("expected silence, received {text}");
        }
    }

    /// Waits for the end of the connection and reports how it ended.
    pub async fn ended(&mut self, timeout: Duration) -> Ended {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let hold_clock = tokio::task::spawn_blocking(|| std::thread::sleep(CLOCK_HOLD));
            let next = tokio::select! {
                biased;
                message = self.ws.next() => Ok(message),
                _ = hold_clock => tokio::time::timeout(left, self.ws.next()).await,
            };
            match next {
                Err(_) => panic!("connection still open after {timeout:?}"),
                Ok(None) | Ok(Some(Err(_))) => return Ended::Abnormal,
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Ended::CloseFrame(frame.map(|f| u16::from(f.code)));
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Sends a configure request and returns the configure response, checking the receipt.
    pub async fn configure(&mut self, client_id: &str) -> Value {
        let id = self.next_id("REQ");
        self.send(configure_frame(&id, client_id, Some("flutter"))).await;
        let receipt = self.recv().await;
        assert_receipt(&receipt, &id);
        let response = self.recv().await;
        assert_eq!(response["clientRequestId"], json!(id));
        response
    }

    /// Confirms a response or listener value.
    pub async fn confirm(&mut self, frame: &Value) {
        let id = self.next_id("REQ");
        let server_id = frame["serverId"].clone();
        self.send(json!({"clientRequestId": id, "requestType": "CONFIRM_RECEIPT",
            "_class_type_clientconfirmreceipt": "_", "serverId": server_id}))
            .await;
    }

    /// Sends a READ and returns its id.
    pub async fn send_read(&mut self, route: &str, params: Value) -> String {
        let id = self.next_id("REQ");
        self.send(
            json!({"clientRequestId": id, "requestType": "READ", "_class_type_read": "_",
            "route": route, "params": params}),
        )
        .await;
        id
    }

    /// Sends a CREATE, UPDATE or DELETE and returns its id.
    pub async fn send_modify(&mut self, kind: &str, route: &str, body: Value, params: Value) -> String {
        let id = self.next_id("REQ");
        self.send(
            json!({"clientRequestId": id, "requestType": kind, "_class_type_modify": "_",
            "route": route, "body": body, "params": params}),
        )
        .await;
        id
    }

    /// Sends a LISTEN and returns its id.
    pub async fn send_listen(&mut self, route: &str, params: Value, listen_id: &str) -> String {
        let id = self.next_id("LIS");
        self.send(listen_frame(&id, route, params, listen_id)).await;
        id
    }

    /// Sends an authenticate request and returns its id.
    pub async fn send_authenticate(&mut self, client_id: &str, credential: Value) -> String {
        let id = self.next_id("REQ");
        self.send(json!({"clientRequestId": id, "requestType": "AUTHENTICATE",
            "_class_type_authenticaterequest": "_", "clientIdInternalApp": client_id,
            "clientType": "flutter", "credential": credential}))
            .await;
        id
    }

    /// Sends a ping listing `entries`.
    pub async fn ping(&mut self, entries: Vec<Value>) {
        self.send(json!({"_class_type_pingpong": "_", "listeningToRoutes": entries}))
            .await;
    }

    /// Sends a request and returns (receipt, response), checking the receipt.
    pub async fn request(&mut self, frame: Value) -> Value {
        let id = frame["clientRequestId"]
            .as_str()
            .expect("frame has an id")
            .to_owned();
        self.send(frame).await;
        let receipt = self.recv().await;
        assert_receipt(&receipt, &id);
        let response = self.recv().await;
        assert_eq!(
            response["clientRequestId"],
            json!(id),
            "response for another request: {response}"
        );
        response
    }

    /// Reads `route` and returns the response after its receipt.
    pub async fn read(&mut self, route: &str, params: Value) -> Value {
        let id = self.next_id("REQ");
        self.request(
            json!({"clientRequestId": id, "requestType": "READ", "_class_type_read": "_",
            "route": route, "params": params}),
        )
        .await
    }

    /// Sends a modify request and returns the response after its receipt.
    pub async fn modify(&mut self, kind: &str, route: &str, body: Value, params: Value) -> Value {
        let id = self.next_id("REQ");
        self.request(
            json!({"clientRequestId": id, "requestType": kind, "_class_type_modify": "_",
            "route": route, "body": body, "params": params}),
        )
        .await
    }

    /// Closes the connection with a normal close frame.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            while self.ws.next().await.is_some() {}
        })
        .await;
    }
}

/// Builds a configure request frame.
pub fn configure_frame(id: &str, client_id: &str, client_type: Option<&str>) -> Value {
    let mut frame = json!({"clientRequestId": id, "requestType": "CONFIGURE_CONNECTION",
        "_class_type_configureconnectionrequest": "_", "clientIdInternalApp": client_id});
    if let Some(client_type) = client_type {
        frame["clientType"] = json!(client_type);
    }
    frame
}

/// Builds a listen request frame (also the shape of a ping entry).
pub fn listen_frame(id: &str, route: &str, params: Value, listen_id: &str) -> Value {
    json!({"clientRequestId": id, "requestType": "LISTEN", "_class_type_listen": "_",
        "route": route, "params": params, "listenId": listen_id})
}

/// Checks that `frame` is the server receipt of request `id`.
pub fn assert_receipt(frame: &Value, id: &str) {
    assert_eq!(
        frame["output"],
        json!("RECEIVED"),
        "expected a receipt, got {frame}"
    );
    assert_eq!(
        frame["clientRequestId"],
        json!(id),
        "receipt for another request: {frame}"
    );
    assert_eq!(frame["dataType"], json!("ServerConfirmReceiptCli"));
    assert_eq!(frame["_class_type_serverconfirmreceipt"], json!("_"));
    assert!(
        frame["serverId"]
            .as_str()
            .is_some_and(|s| s.starts_with("RES-") && s.len() == 15)
    );
}

/// Checks that `frame` is an error response with this code and description.
pub fn assert_error(frame: &Value, code: &str, description: &str) {
    assert_eq!(frame["error"]["code"], json!(code), "unexpected frame {frame}");
    assert_eq!(
        frame["error"]["description"],
        json!(description),
        "unexpected frame {frame}"
    );
    assert_eq!(frame["output"], Value::Null);
}
