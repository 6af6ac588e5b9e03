//! Incoming frames and outgoing requests: receipts, confirmations, de-duplication and
//! matching responses to requests.

use askless_protocol::{
    AsklessErrorCode, ClientMessage, ClientRequestId, ConfirmReceipt, ModifyKind, ModifyRequest, ReadRequest,
    Response, ServerId, ServerMessage, decode_server_frame,
};
use serde_json::Value;
use tokio::time::Instant;

use super::pending::{PendingRequest, Phase};
use super::{ConnectionTask, RequestCommand};
use crate::error::{Error, Operation};

impl ConnectionTask {
    /// Handles one frame received from the server.
    pub(super) async fn handle_frame(&mut self, text: String) {
        tracing::trace!(frame = %text, "received frame");
        if !self.note_frame_arrival().await {
            return;
        }
        let message = match decode_server_frame(&text) {
            Ok(message) => message,
            Err(error) => {
                tracing::debug!(%error, "ignoring a frame that is not a valid server message");
                return;
            }
        };
        // Every response and listener value is confirmed on arrival, before it is processed,
        // and again on every repetition: the server retransmits until it gets a confirmation.
        if let Some(server_id) = message.server_id_to_confirm() {
            let server_id = server_id.clone();
            if !self.confirm(server_id.clone()).await {
                return;
            }
            if !self.dedup.observe(server_id.as_str(), Instant::now()) {
                tracing::debug!(%server_id, "ignoring a repeated server message");
                return;
            }
        }
        match message {
            ServerMessage::Welcome | ServerMessage::Pong => {}
            ServerMessage::ServerConfirmReceipt(receipt) => {
                if self.pending.mark_received(&receipt.client_request_id) {
                    tracing::debug!(id = %receipt.client_request_id, "server received the request");
                }
            }
            ServerMessage::Response(response) => self.handle_response(response).await,
            ServerMessage::NewDataForListener(data) => {
                // NOTE: streams are not implemented yet; the value was confirmed and is dropped.
                tracing::debug!(listen_id = %data.listen_id, "ignoring data for an unknown listener");
            }
            ServerMessage::StopListening(stop) => {
                tracing::debug!(listen_id = %stop.listen_id, "ignoring stop-listening for an unknown listener");
            }
            other => tracing::debug!(kind = ?other.kind(), "ignoring an unexpected server message"),
        }
    }

    /// Sends a confirm-receipt for `server_id`. Returns `false` when the socket is gone.
    async fn confirm(&mut self, server_id: ServerId) -> bool {
        let id = ClientRequestId::generate_request(&mut self.settings.rng);
        let frame = ClientMessage::ConfirmReceipt(ConfirmReceipt::new(id, server_id)).encode();
        self.send_frame(frame).await
    }

    async fn handle_response(&mut self, response: Response) {
        if self.is_current_configure(&response.client_request_id) {
            self.handle_configure_response(response).await;
            return;
        }
        let Some(request) = self.pending.remove(&response.client_request_id) else {
            tracing::debug!(id = %response.client_request_id, "ignoring a response to no pending request");
            return;
        };
        let result = match &response.error {
            None => Ok(response.output),
            Some(error) => {
                let code = AsklessErrorCode::from(error.code_or_none());
                tracing::debug!(id = %request.id, route = %request.route, %code, "request failed on the server");
                Err(Error::server(
                    request.operation,
                    &request.route,
                    code,
                    error.description_or_none(),
                ))
            }
        };
        request.complete(result);
    }

    /// Registers a request and sends it when connected.
    pub(super) async fn handle_request(&mut self, command: RequestCommand) {
        let RequestCommand {
            operation,
            route,
            params,
            body,
            options,
            reply,
        } = command;
        if let Some(error) = &self.halted {
            let _ = reply.send(Err(error.for_request(operation, &route)));
            return;
        }
        let id = ClientRequestId::generate_request(&mut self.settings.rng);
        let message = match operation {
            Operation::Read => ClientMessage::Read(ReadRequest::new(id.clone(), route.clone(), params)),
            Operation::Create | Operation::Update | Operation::Delete => {
                let kind = match operation {
                    Operation::Create => ModifyKind::Create,
                    Operation::Update => ModifyKind::Update,
                    _ => ModifyKind::Delete,
                };
                let body = body.unwrap_or_else(|| Value::Object(Default::default()));
                ClientMessage::Modify(ModifyRequest::new(id.clone(), kind, route.clone(), body, params))
            }
        };
        let frame = message.encode();
        let now = Instant::now();
        let timeout = self.request_timeout(&options);
        let connected = self.conn.is_connected();
        let phase = if connected {
            Phase::Registered {
                deadline: timeout.map(|timeout| now + timeout),
            }
        } else {
            Phase::WaitingForConnection {
                until: timeout.map(|timeout| now + timeout),
            }
        };
        tracing::debug!(%id, %route, %operation, connected, "new request");
        self.pending.insert(PendingRequest {
            id,
            operation,
            route,
            frame: frame.clone(),
            created_at: now,
            received_by_server: false,
            phase,
            timeout,
            reply,
        });
        if connected {
            self.send_frame(frame).await;
        }
    }
}
