//! Incoming frames and outgoing requests: receipts, confirmations, de-duplication and
//! matching responses to requests.

use askless_protocol::{
    AsklessErrorCode, ClientMessage, ClientRequestId, ConfirmReceipt, Response, ServerId, ServerMessage,
    decode_server_frame,
};
use tokio::time::Instant;

use super::connection::ConnState;
use super::dedup;
use super::pending::{self, PendingRequest, Phase};
use super::{ConnectionTask, RequestCommand};
use crate::error::{Error, Operation};
use crate::stats::bump;

impl ConnectionTask {
    /// Handles one frame received from the server.
    pub(super) async fn handle_frame(&mut self, text: String) {
        tracing::trace!(frame = %text, "received frame");
        bump(&self.settings.stats.frames_received);
        if !self.note_frame_arrival().await {
            return;
        }
        let message = match decode_server_frame(&text) {
            Ok(message) => message,
            Err(error) => {
                let count = bump(&self.settings.stats.malformed_frames);
                // Warn for the first ten, then at every power of two, so a flood stays readable.
                if count <= 10 || count.is_power_of_two() {
                    tracing::warn!(%error, len = text.len(), count, "ignoring a frame that is not a valid server message");
                } else {
                    tracing::debug!(%error, len = text.len(), count, "ignoring a frame that is not a valid server message");
                }
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
            let key = dedup::dedup_key(&message, &server_id);
            if !self.dedup.observe(&key, Instant::now()) {
                bump(&self.settings.stats.duplicates_dropped);
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
            ServerMessage::NewDataForListener(data) => self.handle_new_data(data),
            ServerMessage::StopListening(stop) => self.handle_stop_listening(stop),
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
        if self.is_authenticate_response(&response.client_request_id) {
            self.handle_authenticate_response(response).await;
            return;
        }
        if self.streams.owns_response(&response.client_request_id) {
            self.handle_listen_response(response).await;
            self.release_postponed_ping();
            return;
        }
        if response.error_code() == Some(&AsklessErrorCode::PendingAuthentication)
            && self.wait_for_authentication(&response).await
        {
            return;
        }
        let Some(request) = self.pending.remove(&response.client_request_id) else {
            bump(&self.settings.stats.unmatched_responses);
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

    /// Moves a request that received `PENDING_AUTHENTICATION` to waiting for authentication. It
    /// is sent again with a new id after the next successful authentication. Returns whether the
    /// response belonged to a pending request.
    async fn wait_for_authentication(&mut self, response: &Response) -> bool {
        let Some(error) = response.error.clone() else {
            return false;
        };
        let never_timeout = self
            .pending
            .iter()
            .find(|request| request.id == response.client_request_id)
            .is_some_and(|request| request.timeout.is_none());
        let until = (!never_timeout).then(|| Instant::now() + self.config.wait_for_authentication_timeout());
        if !self
            .pending
            .wait_for_authentication(&response.client_request_id, until, error)
        {
            return false;
        }
        // The server responds in order, so a request it processed before the current
        // authentication got its response before the authenticate response. This error arriving
        // while authenticated means the server rejects the current authentication, or a handler
        // raised PENDING_AUTHENTICATION itself. Sending again at once would loop, so the request
        // waits for the next authentication instead.
        tracing::debug!(
            id = %response.client_request_id,
            authenticated = self.auth.is_authenticated(),
            "request waits for authentication"
        );
        true
    }

    /// Registers a request and sends it when connected, unless its caller writes it.
    pub(super) async fn handle_request(&mut self, command: RequestCommand) {
        let RequestCommand {
            operation,
            route,
            mut id,
            mut message,
            mut frame,
            written_on,
            created_at,
            options,
            permit,
            reply,
        } = command;
        if let Some(error) = &self.halted {
            let _ = reply.send(Err(error.for_request(operation, &route)));
            return;
        }
        let current_link = match &self.conn {
            ConnState::Open(link) => Some(link.generation),
            _ => None,
        };
        // Written by its caller on the current socket: only registered here.
        let written_here = written_on.is_some() && written_on == current_link;
        if written_on.is_some() && !written_here && operation == Operation::Read {
            // Written on a socket that is gone; a read is sent again with a new id, as after a
            // reconnection.
            id = ClientRequestId::generate_request(&mut self.settings.rng);
            pending::set_request_id(&mut message, id.clone());
            frame = message.encode();
        }
        let timeout = self.request_timeout(&options);
        let connected = self.flow_open();
        let send_now = connected && !written_here;
        // Timed from when the caller made the request, which a registration can precede by up
        // to one pass of the task's loop.
        let phase = if connected || written_here {
            Phase::Registered {
                deadline: timeout.map(|timeout| created_at + timeout),
            }
        } else {
            Phase::WaitingForConnection {
                until: timeout.map(|timeout| created_at + timeout),
            }
        };

        tracing::debug!(%id, %route, %operation, connected, by_caller = written_here, "new request");
        let to_send = send_now.then(|| frame.clone());
        self.pending.insert(PendingRequest {
            id,
            operation,
            route,
            message,
            frame,
            created_at,
            received_by_server: false,
            // A frame written on a socket that is gone may have reached the server.
            sent: send_now || written_on.is_some(),
            phase,
            timeout,
            persevere: options.persevere,
            authentication_error: None,
            permit,
            reply,
        });
        if let Some(frame) = to_send {
            self.send_frame(frame).await;
        }
    }
}
