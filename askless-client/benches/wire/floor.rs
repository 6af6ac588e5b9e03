//! The floor: a minimal Askless client written straight on `tokio-tungstenite`.
//!
//! It sends the frames the protocol needs and nothing else: the configure handshake once per
//! connection, then requests, listens and one confirm-receipt per response and per listener
//! value. Ids follow the protocol's scheme (`REQ-_`, `LIS-_` and `LIS-` with 28 alphanumerics).
//! Each frame is written and flushed on its own, as a straightforward client does. It keeps no
//! pending table beyond what a workload needs, never retransmits and never reconnects.

use std::borrow::Cow;
use std::collections::HashMap;

use askless_protocol::{ClientRequestId, ListenId};
use futures::{SinkExt, StreamExt};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::Deserialize;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The read and write buffer sizes of askless-transport's defaults (8 KiB), so that the memory
/// figures compare the clients and not the buffer settings.
const BUFFER_SIZE: usize = 8 * 1024;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The fields of a server frame that the floor looks at.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "clientRequestId", borrow, default)]
    client_request_id: Option<Cow<'a, str>>,
    #[serde(rename = "serverId", borrow, default)]
    server_id: Option<Cow<'a, str>>,
    #[serde(rename = "listenId", borrow, default)]
    listen_id: Option<Cow<'a, str>>,
    #[serde(rename = "dataType", borrow, default)]
    data_type: Option<Cow<'a, str>>,
    #[serde(default)]
    output: Value,
}

/// A server frame, classified.
pub(crate) enum Event {
    /// A response (not a receipt) to the request with this id.
    Response { id: String, output: Value },
    /// A value of the listener with this listen id.
    Data { listen_id: String, output: Value },
    /// Anything else: `welcome`, `pong`, receipts.
    Other,
}

/// One floor connection.
pub(crate) struct FloorClient {
    socket: Socket,
    rng: StdRng,
    client_id: String,
}

impl FloorClient {
    /// Connects with a new client id, waits for `welcome` and runs the configure exchange.
    pub(crate) async fn connect(url: &str) -> FloorClient {
        let config = WebSocketConfig::default()
            .read_buffer_size(BUFFER_SIZE)
            .write_buffer_size(BUFFER_SIZE);
        let (socket, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
            .await
            .expect("the floor client failed to connect to the bench server");
        // Fresh ids each time: the server remembers request ids per client id.
        let mut rng = StdRng::from_os_rng();
        let client_id = askless_protocol::ClientIdInternalApp::generate(&mut rng).into_string();
        let mut client = FloorClient {
            socket,
            rng,
            client_id,
        };
        client.configure().await;
        client
    }

    async fn configure(&mut self) {
        loop {
            if let Some(Message::Text(text)) = self.next_message().await {
                if text.as_str() == "welcome" {
                    break;
                }
            }
        }
        let id = self.request_id();
        let frame = format!(
            r#"{{"clientRequestId":"{id}","requestType":"CONFIGURE_CONNECTION","_class_type_configureconnectionrequest":"_","clientIdInternalApp":"{}","clientType":"flutter"}}"#,
            self.client_id
        );
        self.send(frame).await;
        self.wait_response(&id).await;
    }

    /// Authenticates with `{"accessToken": token}` and waits for the response.
    pub(crate) async fn authenticate(&mut self, token: &str) {
        let id = self.request_id();
        let frame = format!(
            r#"{{"clientRequestId":"{id}","requestType":"AUTHENTICATE","_class_type_authenticaterequest":"_","clientIdInternalApp":"{}","clientType":"flutter","credential":{{"accessToken":"{token}"}}}}"#,
            self.client_id
        );
        self.send(frame).await;
        self.wait_response(&id).await;
    }

    fn request_id(&mut self) -> String {
        ClientRequestId::generate_request(&mut self.rng).into_string()
    }

    /// Sends a read of `route` with null params; returns its id.
    pub(crate) async fn send_read(&mut self, route: &str) -> String {
        let id = self.request_id();
        let frame = format!(
            r#"{{"clientRequestId":"{id}","requestType":"READ","_class_type_read":"_","route":"{route}","params":null}}"#
        );
        self.send(frame).await;
        id
    }

    /// Reads `route` and returns its output.
    pub(crate) async fn read(&mut self, route: &str) -> Value {
        let id = self.send_read(route).await;
        self.wait_response(&id).await
    }

    /// Sends a listen of `route` with `params` (a JSON text); returns the listen id.
    pub(crate) async fn send_listen(&mut self, route: &str, params: &str) -> String {
        let id = ClientRequestId::generate_listen(&mut self.rng).into_string();
        let listen_id = ListenId::generate(&mut self.rng).into_string();
        let frame = format!(
            r#"{{"clientRequestId":"{id}","requestType":"LISTEN","_class_type_listen":"_","route":"{route}","params":{params},"listenId":"{listen_id}"}}"#
        );
        self.send(frame).await;
        listen_id
    }

    /// Sends an empty ping, as an idle client does once a second.
    pub(crate) async fn send_ping(&mut self) {
        self.send(r#"{"_class_type_pingpong":"_","listeningToRoutes":[]}"#.to_owned())
            .await;
    }

    async fn send(&mut self, frame: String) {
        self.socket
            .send(Message::text(frame))
            .await
            .expect("the floor client failed to send a frame");
    }

    async fn next_message(&mut self) -> Option<Message> {
        match self.socket.next().await {
            Some(Ok(message)) => Some(message),
            Some(Err(error)) => panic!("the floor client's connection failed: {error}"),
            None => panic!("the bench server closed the floor client's connection"),
        }
    }

    /// Receives the next frame, confirms it when the protocol asks for it and classifies it.
    pub(crate) async fn next_event(&mut self) -> Event {
        let Some(Message::Text(text)) = self.next_message().await else {
            return Event::Other;
        };
        if !text.as_str().starts_with('{') {
            return Event::Other;
        }
        let incoming: Incoming<'_> = serde_json::from_str(text.as_str())
            .expect("the bench server sent a frame that is not valid JSON");
        let data_type = incoming.data_type.as_deref().unwrap_or_default();
        if data_type == "ServerConfirmReceiptCli" {
            return Event::Other;
        }
        if let Some(server_id) = &incoming.server_id {
            let id = self.request_id();
            let confirm = format!(
                r#"{{"clientRequestId":"{id}","requestType":"CONFIRM_RECEIPT","_class_type_clientconfirmreceipt":"_","serverId":"{server_id}"}}"#
            );
            self.send(confirm).await;
        }
        if data_type == "NewDataForListener" {
            let listen_id = incoming.listen_id.map(Cow::into_owned).unwrap_or_default();
            return Event::Data {
                listen_id,
                output: incoming.output,
            };
        }
        match incoming.client_request_id {
            Some(id) => Event::Response {
                id: id.into_owned(),
                output: incoming.output,
            },
            None => Event::Other,
        }
    }

    /// Waits for the response to `id` and returns its output; other frames are confirmed and
    /// dropped.
    pub(crate) async fn wait_response(&mut self, id: &str) -> Value {
        loop {
            if let Event::Response { id: answered, output } = self.next_event().await {
                if answered == id {
                    return output;
                }
            }
        }
    }

    /// Keeps `depth` reads of `route` in flight until `total` responses arrived.
    pub(crate) async fn pipelined_reads(&mut self, route: &str, depth: usize, total: usize) {
        let mut in_flight: HashMap<String, ()> = HashMap::with_capacity(depth);
        let mut sent = 0;
        while sent < depth.min(total) {
            in_flight.insert(self.send_read(route).await, ());
            sent += 1;
        }
        let mut done = 0;
        while done < total {
            if let Event::Response { id, output } = self.next_event().await {
                if in_flight.remove(&id).is_some() {
                    std::hint::black_box(output);
                    done += 1;
                    if sent < total {
                        in_flight.insert(self.send_read(route).await, ());
                        sent += 1;
                    }
                }
            }
        }
    }

    /// Waits until every listen id in `streams` received a value; stores the values.
    pub(crate) async fn wait_values(&mut self, streams: &mut HashMap<String, Option<Value>>) {
        let mut missing = streams.values().filter(|value| value.is_none()).count();
        while missing > 0 {
            if let Event::Data { listen_id, output } = self.next_event().await {
                if let Some(slot) = streams.get_mut(&listen_id) {
                    if slot.is_none() {
                        missing -= 1;
                    }
                    *slot = Some(output);
                }
            }
        }
    }

    /// Waits for `count` values of any listener.
    pub(crate) async fn count_values(&mut self, count: usize) {
        let mut received = 0;
        while received < count {
            if let Event::Data { output, .. } = self.next_event().await {
                std::hint::black_box(output);
                received += 1;
            }
        }
    }

    /// Closes the connection with a close frame.
    pub(crate) async fn close(mut self) {
        let _ = self.socket.close(None).await;
    }
}
