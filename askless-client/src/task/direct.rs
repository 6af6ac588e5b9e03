//! Requests written by the caller, and the link the connection task lends callers for them.
//!
//! A caller outside the runtime's workers (a `block_on` or `#[tokio::main]` body) that hands a
//! request to the connection task pays thread wake-ups for it. The task's worker has to wake
//! before the frame can go out, and the two threads then contend for the socket.
//! So while requests flow, the task publishes its socket's sending half in a [`DirectSlot`]. A
//! caller registers its request in the slot and writes the frame itself, without waking the
//! task.
//!
//! The task takes the registrations before it handles any frame or command, at the top of its
//! loop and whenever it withdraws the link. A registration is made before its frame is
//! written, and the slot's lock orders the two, so the task has every request before it reads
//! the response. A registration also returns to the caller when the task will next wake on its own,
//! and a caller whose request would time out before that sends a command to wake the task.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use askless_transport::FrameSender;
use tokio::time::Instant;

use super::RequestCommand;

/// The sending half of a socket, shared by the connection task and callers.
pub(crate) type SharedSender = Arc<tokio::sync::Mutex<Box<dyn FrameSender>>>;

/// A socket on which callers may write their requests.
#[derive(Clone)]
pub(crate) struct DirectLink {
    /// Identifies the socket: the task counts the sockets it opened.
    pub(crate) generation: u64,
    pub(crate) sender: SharedSender,
    /// The timeout of a request with default options on this socket; `None` means never.
    pub(crate) request_timeout: Option<Duration>,
}

impl std::fmt::Debug for DirectLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectLink")
            .field("generation", &self.generation)
            .field("request_timeout", &self.request_timeout)
            .finish_non_exhaustive()
    }
}

/// The outcome of a registration, for the caller.
#[derive(Debug)]
pub(crate) struct Registered {
    /// The socket to write the request on.
    pub(crate) link: DirectLink,
    /// When the task wakes next on its own, if it sleeps; a request that times out earlier
    /// needs to wake it.
    pub(crate) task_wakes_at: Option<Instant>,
}

#[derive(Default)]
struct SlotState {
    link: Option<DirectLink>,
    task_wakes_at: Option<Instant>,
    registrations: Vec<RequestCommand>,
}

/// The link callers may write on, set by the connection task while requests flow on a
/// configured socket, and the requests callers registered since the task last looked.
#[derive(Default)]
pub(crate) struct DirectSlot {
    state: Mutex<SlotState>,
}

impl std::fmt::Debug for DirectSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("DirectSlot")
            .field("link", &state.link)
            .field("registrations", &state.registrations.len())
            .finish()
    }
}

impl DirectSlot {
    /// Registers `command` when a link is published, after `prepare` has adjusted it to that
    /// link, and returns the link to write it on. Gives the command back when no link is
    /// published, for the task to send it.
    // The error is the command itself, handed back untouched.
    #[allow(clippy::result_large_err)]
    pub(crate) fn register_with(
        &self,
        mut command: RequestCommand,
        prepare: impl FnOnce(&mut RequestCommand, &DirectLink),
    ) -> Result<Registered, RequestCommand> {
        let mut state = self.lock();
        let Some(link) = state.link.clone() else {
            return Err(command);
        };
        prepare(&mut command, &link);
        state.registrations.push(command);
        Ok(Registered {
            link,
            task_wakes_at: state.task_wakes_at,
        })
    }

    /// Replaces the published link and returns the requests registered so far, which belong
    /// to the link being replaced.
    pub(crate) fn publish(&self, link: Option<DirectLink>) -> Vec<RequestCommand> {
        let mut state = self.lock();
        state.link = link;
        std::mem::take(&mut state.registrations)
    }

    /// Returns the requests registered since the last call. `task_wakes_at`, when given,
    /// records when the task wakes next on its own; the task gives it just before it waits.
    pub(crate) fn take_registrations(&self, task_wakes_at: Option<Instant>) -> Vec<RequestCommand> {
        let mut state = self.lock();
        if task_wakes_at.is_some() {
            state.task_wakes_at = task_wakes_at;
        }
        if state.registrations.is_empty() {
            return Vec::new();
        }
        std::mem::take(&mut state.registrations)
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        // The state contains plain values that no panic can leave half-written.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_slot_has_nothing_registered() {
        let slot = DirectSlot::default();

        assert!(slot.take_registrations(None).is_empty());
        assert!(slot.lock().link.is_none());
        assert!(slot.publish(None).is_empty());
    }

    /// Drives a connection task by hand against a scripted peer, so that a test can order its
    /// commands and frames exactly.
    mod task_order {
        use std::sync::Arc;
        use std::time::Duration;

        use askless_protocol::{
            ClientIdInternalApp, ClientMessage, ClientRequestId, ConnectionConfiguration, ReadRequest,
            Response, ServerId, ServerMessage, decode_client_frame,
        };
        use askless_transport::Connection;
        use rand::SeedableRng;
        use rand::rngs::StdRng;
        use serde_json::{Value, json};
        use tokio::sync::{Semaphore, mpsc, oneshot};
        use tokio::time::Instant;

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

                // Greeting, then the configure exchange.
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
                    created_at: Instant::now(),
                    options: RequestOptions::default(),
                    permit: Some(Arc::clone(&self.permits).try_acquire_owned().unwrap()),
                    reply,
                };
                (command, receiver)
            }
        }

        /// Publishes the task's link, as its loop does before it waits.
        async fn publish(harness: &mut Harness) {
            harness.task.publish_direct_link().await;
            assert!(
                harness.task.settings.direct.lock().link.is_some(),
                "no link published"
            );
        }

        #[tokio::test(start_paused = true)]
        async fn registered_request_is_known_when_its_response_arrives() {
            let mut harness = Harness::connected().await;
            publish(&mut harness).await;
            let (command, receiver) = harness.read_command("REQ-_mine", None);
            let slot = Arc::clone(&harness.task.settings.direct);
            let registered = slot
                .register_with(command, |command, link| {
                    command.written_on = Some(link.generation)
                })
                .unwrap();
            assert_eq!(registered.link.generation, harness.task.link_generation);

            // The response arrives before the task's loop has looked at the slot again.
            let server_id = harness.server_id();
            let response = Response::success(ClientRequestId::new("REQ-_mine"), server_id, Some(json!(3)));
            harness.send(ServerMessage::Response(response)).await;
            harness.step().await;

            let outcome = tokio::time::timeout(Duration::from_secs(5), receiver).await;
            assert_eq!(outcome.unwrap().unwrap().unwrap(), Some(json!(3)));
            assert_eq!(harness.permits.available_permits(), 8, "the permit was released");
        }

        #[tokio::test(start_paused = true)]
        async fn no_registration_without_a_link() {
            let harness = Harness::connected().await;
            let (command, _receiver) = harness.read_command("REQ-_late", None);

            let outcome = harness.task.settings.direct.register_with(command, |_, _| {});

            assert!(outcome.is_err(), "registered although no link is published");
        }

        #[tokio::test(start_paused = true)]
        async fn registrations_are_handled_when_the_link_is_withdrawn() {
            let mut harness = Harness::connected().await;
            publish(&mut harness).await;
            let (command, receiver) = harness.read_command("REQ-_orphan", None);
            let slot = Arc::clone(&harness.task.settings.direct);
            slot.register_with(command, |command, link| {
                command.written_on = Some(link.generation)
            })
            .unwrap();

            harness.task.shut_down().await;

            let outcome = tokio::time::timeout(Duration::from_secs(5), receiver).await;
            let error = outcome.unwrap().unwrap().unwrap_err();
            assert!(error.is_closed(), "{error}");
            assert!(slot.lock().link.is_none(), "the link is still lent");
        }

        #[tokio::test(start_paused = true)]
        async fn caller_written_request_not_resent() {
            let mut harness = Harness::connected().await;
            let generation = harness.task.link_generation;

            let (command, _receiver) = harness.read_command("REQ-_mine", Some(generation));
            harness.task.handle_request(command).await;

            assert_eq!(harness.task.pending.len(), 1);
            let nothing = tokio::time::timeout(Duration::from_millis(100), harness.peer.recv()).await;
            assert!(nothing.is_err(), "the task wrote the frame too: {nothing:?}");
        }

        #[tokio::test(start_paused = true)]
        async fn stale_read_resent_with_new_id() {
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
