//! Fault injection, switchable while the server runs.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::{FrameClass, Outgoing, Shared};
use crate::inspect::ConnectionId;

/// Treatment of responses while they are withheld.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Withhold {
    /// Responses are sent normally. This is the default.
    #[default]
    Nothing,
    /// Responses (retransmissions included) are dropped.
    Drop,
    /// Responses are kept until [`Faults::release_responses`].
    Hold,
}

#[derive(Debug, Default)]
pub(crate) struct FaultState {
    pub(crate) response_delay: Option<Duration>,
    pub(crate) withhold_receipts: bool,
    pub(crate) withhold_responses: Withhold,
    pub(crate) held: Vec<(ConnectionId, String)>,
    pub(crate) duplicate_remaining: usize,
    pub(crate) half_open: bool,
}

/// Decision of a connection's writer about one frame.
pub(crate) enum WriteDecision {
    Write { delay: Option<Duration>, copies: usize },
    Skip,
}

impl FaultState {
    pub(crate) fn decide(
        &mut self,
        connection: ConnectionId,
        text: &str,
        class: FrameClass,
    ) -> WriteDecision {
        if self.half_open {
            return WriteDecision::Skip;
        }
        if class == FrameClass::Raw {
            return WriteDecision::Write {
                delay: None,
                copies: 1,
            };
        }
        if class == FrameClass::Receipt && self.withhold_receipts {
            return WriteDecision::Skip;
        }
        if class == FrameClass::Response {
            match self.withhold_responses {
                Withhold::Nothing => {}
                Withhold::Drop => return WriteDecision::Skip,
                Withhold::Hold => {
                    self.held.push((connection, text.to_owned()));
                    return WriteDecision::Skip;
                }
            }
        }
        let delay = if class == FrameClass::Response {
            self.response_delay
        } else {
            None
        };
        let copies = if self.duplicate_remaining > 0 {
            self.duplicate_remaining = self.duplicate_remaining.saturating_sub(1);
            2
        } else {
            1
        };
        WriteDecision::Write { delay, copies }
    }
}

/// Fault switches of a running server, from [`ServerHandle::faults`](crate::ServerHandle::faults).
///
/// Every switch applies to frames written from the moment it is set, on every connection,
/// current and future.
#[derive(Clone)]
pub struct Faults {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("state", &self.shared.lock().faults)
            .finish()
    }
}

impl Faults {
    /// Delays every Response by `delay` before it is written (later frames of the same connection
    /// wait behind it, so order is kept); `None` stops delaying. Default: no delay.
    pub fn delay_responses(&self, delay: Option<Duration>) {
        self.shared.lock().faults.response_delay = delay;
    }

    /// Stops (`true`) or resumes (`false`) writing server receipts. Default: receipts are written.
    pub fn withhold_receipts(&self, withhold: bool) {
        self.shared.lock().faults.withhold_receipts = withhold;
    }

    /// Sets what happens to Responses, retransmissions included. Default: [`Withhold::Nothing`].
    pub fn withhold_responses(&self, mode: Withhold) {
        self.shared.lock().faults.withhold_responses = mode;
    }

    /// Writes every response held by [`Withhold::Hold`], in order, on the connection it was meant
    /// for (when that connection is still open), and stops holding.
    pub fn release_responses(&self) {
        let mut state = self.shared.lock();
        state.faults.withhold_responses = Withhold::Nothing;
        let held = std::mem::take(&mut state.faults.held);
        for (connection, text) in held {
            state.send_to_connection(connection, text, FrameClass::Raw);
        }
    }

    /// Writes each of the next `count` server frames twice; `usize::MAX` duplicates every frame
    /// from now on and 0 stops. Default: 0.
    pub fn duplicate_frames(&self, count: usize) {
        self.shared.lock().faults.duplicate_remaining = count;
    }

    /// Terminates every connection now, without a close frame (the client sees an abnormal
    /// closure). Records are kept, as when the network drops.
    pub fn drop_connections(&self) {
        let state = self.shared.lock();
        for conn in state.connections.values() {
            conn.kill.notify_one();
        }
    }

    /// Goes half-open (`true`): the server stops reading and writing on every connection without
    /// closing it, so clients see silence; frames received meanwhile are discarded unrecorded.
    /// `false` resumes. Default: `false`.
    pub fn half_open(&self, half_open: bool) {
        self.shared.lock().faults.half_open = half_open;
    }

    /// Writes one frame that is not valid JSON to every connection.
    pub fn send_garbled_frame(&self) {
        let state = self.shared.lock();
        for conn in state.connections.values() {
            let _ = conn.outbox.send(Outgoing::Frame {
                text: "{\"garbled\":".to_owned(),
                class: FrameClass::Raw,
            });
        }
    }
}
