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
}
