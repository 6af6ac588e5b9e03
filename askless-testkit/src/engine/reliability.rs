//! Retransmission of unconfirmed messages and the handling of confirm-receipts.

use std::sync::Arc;

use askless_protocol::{ClientIdInternalApp, ServerId};
use tokio::time::Instant;

use super::{ReceivedHook, Shared};

/// One tick of the retransmission task: every record with a connection gets its queued messages
/// again, unchanged; then messages older than the give-up age are dropped.
pub(crate) fn retransmission_tick(shared: &Arc<Shared>) {
    let now = Instant::now();
    let give_up = shared.config.retransmission_give_up;
    let mut state = shared.lock();
    let mut resends = Vec::new();
    for record in state.records.iter_mut() {
        let Some(connection) = record.connection else {
            continue;
        };
        for queued in &record.queue {
            resends.push((connection, queued.text.clone(), queued.class));
        }
        record
            .queue
            .retain(|queued| now.duration_since(queued.first_sent) <= give_up);
    }
    for (connection, text, class) in resends {
        state.send_to_connection(connection, text, class);
    }
}

/// Handles a confirm-receipt from a record.
///
/// With a `serverId`, the first queued message with that id is removed and its hook runs; an
/// unknown id is ignored. Without one, the reference server runs the hook of every queued message
/// but removes only every other one; with that quirk off, the confirm is ignored.
pub(crate) fn confirm(shared: &Arc<Shared>, client_id: &ClientIdInternalApp, server_id: Option<&ServerId>) {
    let hooks: Vec<ReceivedHook> = {
        let mut state = shared.lock();
        let Some(record) = state.record_mut(client_id) else {
            return;
        };
        match server_id {
            Some(server_id) => match record.queue.iter().position(|q| &q.server_id == server_id) {
                Some(position) => record.queue.remove(position).hook.into_iter().collect(),
                None => {
                    tracing::debug!(client_id = %client_id, server_id = %server_id, "confirm-receipt for an unknown serverId ignored");
                    Vec::new()
                }
            },
            None if shared.config.quirks.confirm_without_server_id_removes_every_other => {
                let hooks = record.queue.iter().filter_map(|q| q.hook.clone()).collect();
                let mut index = 0;
                record.queue.retain(|_| {
                    index += 1;
                    index % 2 == 0
                });
                hooks
            }
            None => {
                tracing::debug!(client_id = %client_id, "confirm-receipt without serverId ignored");
                Vec::new()
            }
        }
    };
    for hook in hooks {
        let shared = shared.clone();
        super::run_deferred(vec![Box::new(move || hook(&shared))]);
    }
}
