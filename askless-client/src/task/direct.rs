//! Requests written by the caller: the link the connection task lends to callers, and the
//! frames that overtake the registration of their request.
//!
//! Handing every request to the connection task costs a caller outside the runtime's workers
//! (a `block_on` or `#[tokio::main]` body) one extra thread wake-up per request: the task's
//! worker has to wake before the frame can go out. So while requests flow, the task publishes
//! its socket's sending half in a [`DirectSlot`]. A caller then registers its request with the
//! task through the command channel as before, and writes the frame itself right after.
//!
//! The command is queued before the frame is written, so the task always finds it in the
//! channel by the time the server's receipt or response arrives, and its `select!` looks at
//! commands first. The task can still read a frame between looking at an empty channel and
//! the command's arrival; [`EarlyFrames`] keeps such frames until the command is handled.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use askless_protocol::{ClientRequestId, Response};
use askless_transport::FrameSender;

/// The sending half of a socket, shared by the connection task and callers.
pub(crate) type SharedSender = Arc<tokio::sync::Mutex<Box<dyn FrameSender>>>;

/// How many early frames are kept; older ones are forgotten.
const MAX_EARLY_FRAMES: usize = 64;

/// A socket on which callers may write their requests.
#[derive(Clone)]
pub(crate) struct DirectLink {
    /// Identifies the socket: the task counts the sockets it opened.
    pub(crate) generation: u64,
    pub(crate) sender: SharedSender,
}

impl std::fmt::Debug for DirectLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectLink")
            .field("generation", &self.generation)
            .finish_non_exhaustive()
    }
}

/// The link callers may write on: set by the connection task while requests flow on a
/// configured socket, empty otherwise.
#[derive(Debug, Default)]
pub(crate) struct DirectSlot {
    link: Mutex<Option<DirectLink>>,
}

impl DirectSlot {
    /// Returns the link requests may be written on now, if any.
    pub(crate) fn current(&self) -> Option<DirectLink> {
        self.lock().clone()
    }

    /// Replaces the published link.
    pub(crate) fn publish(&self, link: Option<DirectLink>) {
        *self.lock() = link;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<DirectLink>> {
        // The slot holds a plain value that no panic can leave half-written.
        self.link.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A frame about a request the task did not know when the frame arrived.
#[derive(Debug)]
pub(crate) enum EarlyFrame {
    /// The server's receipt of the request.
    Receipt(ClientRequestId),
    /// The server's response to the request.
    Response(Response),
}

impl EarlyFrame {
    fn request_id(&self) -> &ClientRequestId {
        match self {
            EarlyFrame::Receipt(id) => id,
            EarlyFrame::Response(response) => &response.client_request_id,
        }
    }
}

/// Receipts and responses kept until the command of their request is handled, at most
/// [`MAX_EARLY_FRAMES`] of them.
#[derive(Debug, Default)]
pub(crate) struct EarlyFrames {
    frames: VecDeque<EarlyFrame>,
}

impl EarlyFrames {
    /// Keeps `frame`, forgetting the oldest one past the bound.
    pub(crate) fn keep(&mut self, frame: EarlyFrame) {
        if self.frames.len() >= MAX_EARLY_FRAMES {
            self.frames.pop_front();
        }
        self.frames.push_back(frame);
    }

    /// Removes and returns the frames kept for `id`, receipts first.
    pub(crate) fn take(&mut self, id: &ClientRequestId) -> Vec<EarlyFrame> {
        if self.frames.is_empty() {
            return Vec::new();
        }
        let mut taken = Vec::new();
        let mut index = 0;
        while index < self.frames.len() {
            if self.frames[index].request_id() == id {
                if let Some(frame) = self.frames.remove(index) {
                    taken.push(frame);
                }
            } else {
                index += 1;
            }
        }
        taken.sort_by_key(|frame| matches!(frame, EarlyFrame::Response(_)));
        taken
    }

    /// Returns how many frames are kept.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(id: &str) -> EarlyFrame {
        EarlyFrame::Receipt(ClientRequestId::new(id))
    }

    #[test]
    fn frames_are_taken_by_request_id() {
        let mut early = EarlyFrames::default();
        early.keep(receipt("REQ-_a"));
        early.keep(receipt("REQ-_b"));

        let taken = early.take(&ClientRequestId::new("REQ-_b"));

        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].request_id().as_str(), "REQ-_b");
        assert_eq!(early.len(), 1);
        assert!(early.take(&ClientRequestId::new("REQ-_b")).is_empty());
    }

    #[test]
    fn early_frames_are_bounded() {
        let mut early = EarlyFrames::default();
        for n in 0..(MAX_EARLY_FRAMES + 10) {
            early.keep(receipt(&format!("REQ-_{n}")));
        }

        assert_eq!(early.len(), MAX_EARLY_FRAMES);
        assert!(
            early.take(&ClientRequestId::new("REQ-_0")).is_empty(),
            "the oldest frame is forgotten first"
        );
    }

    #[test]
    fn empty_slot_has_no_link() {
        let slot = DirectSlot::default();

        assert!(slot.current().is_none());
    }

    /// Drives a connection task by hand against a scripted peer, so that a test can order its
    /// commands and frames exactly.
    mod task_order {
        use std::sync::Arc;
        use std::time::Duration;

        use askless_protocol::{
            ClientIdInternalApp, ClientMessage, ClientRequestId, ConnectionConfiguration, ReadRequest,
            Response, ServerConfirmReceipt, ServerId, ServerMessage, decode_client_frame,
        };
        use askless_transport::Connection;
        use rand::SeedableRng;
        use rand::rngs::StdRng;
        use serde_json::{Value, json};
        use tokio::sync::{Semaphore, mpsc, oneshot};

        use super::super::super::connection::next_event;
        use super::super::super::{ConnectionTask, RequestCommand, TaskSettings};
        use super::super::DirectSlot;
        use crate::error::{Operation, Result};
        use crate::options::RequestOptions;
        use crate::policy::ReconnectPolicy;
        use crate::stats::StatsCounters;
        use crate::status::{ConnectionStatus, StatusPublisher};

        struct Harness {
            task: ConnectionTask,
            peer: Connection,
            next_server_id: u32,
            permits: Arc<Semaphore>,
        }

        impl Harness {
            /// Returns a task configured on a memory connection.
            async fn connected() -> Harness {
                let (transport, mut listener) = askless_transport::memory::listener();
                let (commands, receiver) = mpsc::channel(8);
                let settings = TaskSettings {
                    url: url::Url::parse("ws://127.0.0.1:1/").unwrap(),
                    transport: Arc::new(transport),
                    client_id: ClientIdInternalApp::new("test-client"),
                    request_timeout: None,
                    policy: ReconnectPolicy::default(),
                    rng: StdRng::seed_from_u64(7),
                    first_outcome: None,
                    on_reauthentication_fails: None,
                    credential_provider: None,
                    commands: commands.downgrade(),
                    max_pending_requests: 8,
                    stats: Arc::new(StatsCounters::default()),
                    direct: Arc::new(DirectSlot::default()),
                };
                let (publisher, _receivers) = StatusPublisher::new(ConnectionStatus::InProgress);
                let (mut task, _auth) = ConnectionTask::new(settings, receiver, publisher);
                task.start_attempt();
                let open = async {
                    let event = next_event(&mut task.conn).await;
                    task.handle_conn_event(event).await;
                };
                let (connection, ()) = tokio::join!(listener.accept(), open);
                let mut harness = Harness {
                    task,
                    peer: connection.unwrap(),
                    next_server_id: 0,
                    permits: Arc::new(Semaphore::new(8)),
                };
                harness.peer.send("welcome").await.unwrap();
                harness.step().await;
                let ClientMessage::ConfigureConnection(configure) = harness.recv().await else {
                    panic!("expected the configure request");
                };
                let server_id = harness.server_id();
                let config = ConnectionConfiguration::server_defaults();
                let response =
                    Response::configure_connection(configure.client_request_id, server_id, &config);
                harness.send(ServerMessage::Response(response)).await;
                harness.step().await;
                let ClientMessage::ConfirmReceipt(_) = harness.recv().await else {
                    panic!("expected the configure response to be confirmed");
                };
                assert!(harness.task.flow_open(), "the task is not connected");
                harness
            }

            /// Handles the task's next connection event.
            async fn step(&mut self) {
                let event = next_event(&mut self.task.conn).await;
                self.task.handle_conn_event(event).await;
            }

            async fn recv(&mut self) -> ClientMessage {
                let text = self.peer.recv().await.unwrap();
                decode_client_frame(&text).unwrap()
            }

            async fn send(&mut self, message: ServerMessage) {
                self.peer.send(message.encode()).await.unwrap();
            }

            fn server_id(&mut self) -> ServerId {
                self.next_server_id += 1;
                ServerId::new(format!("RES-{}", self.next_server_id))
            }

            /// Returns a read command whose caller wrote it on socket `written_on`.
            fn read_command(
                &self,
                id: &str,
                written_on: Option<u64>,
            ) -> (RequestCommand, oneshot::Receiver<Result<Option<Value>>>) {
                let id = ClientRequestId::new(id);
                let message = ClientMessage::Read(ReadRequest::new(id.clone(), "items", Value::Null));
                let (reply, receiver) = oneshot::channel();
                let command = RequestCommand {
                    operation: Operation::Read,
                    route: "items".to_owned(),
                    id,
                    frame: message.encode(),
                    message,
                    written_on,
                    options: RequestOptions::default(),
                    permit: Some(Arc::clone(&self.permits).try_acquire_owned().unwrap()),
                    reply,
                };
                (command, receiver)
            }
        }

        #[tokio::test(start_paused = true)]
        async fn response_that_overtakes_its_command_is_delivered() {
            let mut harness = Harness::connected().await;
            let generation = harness.task.link_generation;
            let id = ClientRequestId::new("REQ-_early");
            let receipt = ServerConfirmReceipt {
                client_request_id: id.clone(),
                server_id: harness.server_id(),
            };
            harness.send(ServerMessage::ServerConfirmReceipt(receipt)).await;
            let server_id = harness.server_id();
            let response = Response::success(id.clone(), server_id, Some(json!("early")));
            harness.send(ServerMessage::Response(response)).await;
            harness.step().await;
            harness.step().await;

            let (command, receiver) = harness.read_command("REQ-_early", Some(generation));
            harness.task.handle_request(command).await;

            let outcome = tokio::time::timeout(Duration::from_secs(5), receiver).await;
            assert_eq!(outcome.unwrap().unwrap().unwrap(), Some(json!("early")));
            assert_eq!(harness.task.pending.len(), 0);
            assert_eq!(harness.permits.available_permits(), 8, "the permit was released");
        }

        #[tokio::test(start_paused = true)]
        async fn request_written_by_its_caller_is_not_sent_again() {
            let mut harness = Harness::connected().await;
            let generation = harness.task.link_generation;

            let (command, _receiver) = harness.read_command("REQ-_mine", Some(generation));
            harness.task.handle_request(command).await;

            assert_eq!(harness.task.pending.len(), 1);
            let nothing = tokio::time::timeout(Duration::from_millis(100), harness.peer.recv()).await;
            assert!(nothing.is_err(), "the task wrote the frame too: {nothing:?}");
        }

        #[tokio::test(start_paused = true)]
        async fn read_written_on_a_closed_socket_is_sent_again_with_a_new_id() {
            let mut harness = Harness::connected().await;
            let stale = harness.task.link_generation - 1;

            let (command, receiver) = harness.read_command("REQ-_stale", Some(stale));
            harness.task.handle_request(command).await;

            let ClientMessage::Read(read) = harness.recv().await else {
                panic!("expected the read to be sent again");
            };
            assert_ne!(read.client_request_id.as_str(), "REQ-_stale");
            let server_id = harness.server_id();
            let response = Response::success(read.client_request_id, server_id, Some(json!(1)));
            harness.send(ServerMessage::Response(response)).await;
            harness.step().await;
            let outcome = tokio::time::timeout(Duration::from_secs(5), receiver).await;
            assert_eq!(outcome.unwrap().unwrap().unwrap(), Some(json!(1)));
        }
    }
}
