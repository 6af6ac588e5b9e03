//! The entry point: requesting calls and receiving them.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use askless_protocol::UserId;
use serde_json::{Map, Value};

use crate::error::CallError;
use crate::incoming::IncomingCalls;
use crate::media::LocalMedia;
use crate::options::CallOptions;
use crate::outgoing::OutgoingCall;
use crate::signalling::CallSignalling;

/// Places and receives calls for one authenticated user over a [`CallSignalling`] channel.
///
/// Cloning is cheap and clones share the list of calls in progress.
#[derive(Clone)]
pub struct CallClient {
    context: Arc<CallContext>,
}

impl fmt::Debug for CallClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallClient")
            .field("options", &self.context.options)
            .finish_non_exhaustive()
    }
}

pub(crate) struct CallContext {
    pub(crate) signalling: Arc<dyn CallSignalling>,
    pub(crate) options: CallOptions,
    /// Remote users whose incoming call is being handled, so a repeated call-receive value
    /// for the same caller does not start a second flow.
    incoming_in_progress: Mutex<HashSet<String>>,
}

impl CallContext {
    /// Marks an incoming call from `remote_user_id` as handled; `None` if it already is.
    pub(crate) fn claim_incoming(self: &Arc<Self>, remote_user_id: &UserId) -> Option<ActiveCallGuard> {
        let key = remote_user_id.to_string();
        let mut in_progress = match self.incoming_in_progress.lock() {
            Ok(in_progress) => in_progress,
            Err(poisoned) => poisoned.into_inner(),
        };
        if !in_progress.insert(key.clone()) {
            return None;
        }
        Some(ActiveCallGuard {
            context: Arc::clone(self),
            key,
        })
    }
}

/// Keeps an incoming call marked as handled until dropped.
pub(crate) struct ActiveCallGuard {
    context: Arc<CallContext>,
    key: String,
}

impl Drop for ActiveCallGuard {
    fn drop(&mut self) {
        let mut in_progress = match self.context.incoming_in_progress.lock() {
            Ok(in_progress) => in_progress,
            Err(poisoned) => poisoned.into_inner(),
        };
        in_progress.remove(&self.key);
    }
}

impl CallClient {
    /// Creates a call client that signals through `signalling`.
    pub fn new(signalling: Arc<dyn CallSignalling>, options: CallOptions) -> Self {
        Self {
            context: Arc::new(CallContext {
                signalling,
                options,
                incoming_in_progress: Mutex::new(HashSet::new()),
            }),
        }
    }

    /// Calls `user_id`, sending `media` and showing `additional_data` to the callee.
    ///
    /// The request runs in the background; [`OutgoingCall::response`] waits for the answer.
    /// Dropping the returned handle before the answer cancels the request. Must be called
    /// inside a Tokio runtime.
    pub fn request_call_to_user(
        &self,
        user_id: UserId,
        media: LocalMedia,
        additional_data: Map<String, Value>,
    ) -> Result<OutgoingCall, CallError> {
        OutgoingCall::start(Arc::clone(&self.context), user_id, media, additional_data)
    }

    /// Starts listening for incoming calls.
    ///
    /// Each caller appears once while its call is being handled, even when the server sends
    /// the same request again. Dropping the returned stream stops listening.
    pub async fn incoming_calls(&self) -> Result<IncomingCalls, CallError> {
        IncomingCalls::start(Arc::clone(&self.context)).await
    }
}
