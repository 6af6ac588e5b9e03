//! The authenticate request: decision, timeout, outcomes on the wire and the re-push that
//! follows a confirmed success.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use askless_protocol::{
    AsklessErrorCode, ClientIdInternalApp, ClientRequestId, ErrorBody, Response, ResponseKind, ServerId,
    UserId,
};
use futures_util::FutureExt as _;
use serde_json::{Value, json};

use super::listeners::{RecordFilter, schedule_notify};
use super::{ReceivedHook, Shared, Work};
use crate::authentication::AuthDecision;
use crate::inspect::{Authentication, ConnectionId};
use crate::notify::Notify;

/// Result of the decision step.
enum Outcome {
    Decided(AuthDecision),
    TimedOut,
}

/// Starts handling an authenticate request. `has_client_id` is false when the request had no
/// `clientIdInternalApp`; the decision is still taken, then answered with `INTERNAL_ERROR`.
pub(crate) fn authenticate(
    shared: &Arc<Shared>,
    connection: ConnectionId,
    client_request_id: ClientRequestId,
    has_client_id: bool,
    credential: Value,
) -> Option<Work> {
    let (client_id, authenticator) = {
        let mut state = shared.lock();
        let Some(client_id) = state.connection_client_id(connection) else {
            tracing::debug!(
                connection = connection.get(),
                "authenticate before configure dropped"
            );
            return None;
        };
        state.record_or_create(&client_id).reset_for_new_session();
        (client_id, state.authenticator.clone())
    };
    let shared = shared.clone();
    Some(Box::pin(async move {
        let outcome = match authenticator {
            None => Outcome::Decided(AuthDecision::Unauthenticated),
            Some(authenticator) => {
                let deadline = tokio::time::Instant::now() + shared.config.authorize_timeout;
                let started = std::panic::catch_unwind(AssertUnwindSafe(|| authenticator(credential)));
                let Ok(future) = started else {
                    tracing::warn!(client_id = %client_id, "authenticate handler panicked; no response is sent");
                    return;
                };
                match tokio::time::timeout_at(deadline, AssertUnwindSafe(future).catch_unwind()).await {
                    Ok(Ok(AuthDecision::Never)) => {
                        tokio::time::sleep_until(deadline).await;
                        Outcome::TimedOut
                    }
                    Ok(Ok(decision)) => Outcome::Decided(decision),
                    Ok(Err(_)) => {
                        tracing::warn!(client_id = %client_id, "authenticate handler panicked; no response is sent");
                        return;
                    }
                    Err(_) => Outcome::TimedOut,
                }
            }
        };
        finish(&shared, &client_id, &client_request_id, has_client_id, outcome);
    }))
}

fn finish(
    shared: &Arc<Shared>,
    client_id: &ClientIdInternalApp,
    client_request_id: &ClientRequestId,
    has_client_id: bool,
    outcome: Outcome,
) {
    let mut state = shared.lock();
    if state.record(client_id).is_none() {
        return;
    }
    if !has_client_id {
        tracing::debug!(client_id = %client_id, "authenticate without clientIdInternalApp responded with INTERNAL_ERROR");
        state.send_failure(
            client_id,
            client_request_id,
            "INTERNAL_ERROR",
            "An internal error occurred",
        );
        return;
    }
    let (output, error, hook) = match outcome {
        Outcome::Decided(AuthDecision::User {
            user_id,
            claims,
            locals,
        }) => {
            if is_falsy(&user_id) {
                tracing::debug!(client_id = %client_id, "authenticate accepted with a falsy user id responded with INTERNAL_ERROR");
                state.send_failure(
                    client_id,
                    client_request_id,
                    "INTERNAL_ERROR",
                    "An internal error occurred",
                );
                return;
            }
            let output = json!({"userId": user_id.to_value(), "claims": claims});
            if let Some(record) = state.record_mut(client_id) {
                record.authentication = Authentication::Authenticated;
                record.user_id = Some(user_id);
                record.claims = claims;
                record.locals = locals;
            }
            (output, None, Some(repush_hook(client_id)))
        }
        Outcome::Decided(AuthDecision::Unauthenticated) => {
            set_unauthenticated(&mut state, client_id, None);
            (json!({}), None, Some(repush_hook(client_id)))
        }
        Outcome::Decided(AuthDecision::Reject {
            credential_error_code,
        }) => {
            let code = credential_error_code.unwrap_or_else(|| "INVALID_CREDENTIAL".to_owned());
            set_unauthenticated(&mut state, client_id, Some(code.clone()));
            let error = ErrorBody::new(code.as_str(), "The authentication was rejected: undefined");
            (json!({"credentialErrorCode": code}), Some(error), None)
        }
        Outcome::Decided(AuthDecision::Never) | Outcome::TimedOut => {
            set_unauthenticated(&mut state, client_id, None);
            let error = ErrorBody::new(
                AsklessErrorCode::AuthorizeTimeout,
                "The server didn't authorize (TIMEOUT)",
            );
            (
                json!({"credentialErrorCode": "INVALID_CREDENTIAL"}),
                Some(error),
                None,
            )
        }
    };
    state.send_receipt(client_id, client_request_id);
    let response = Response {
        client_request_id: client_request_id.clone(),
        output: Some(output),
        error,
        server_id: ServerId::generate_response(&mut rand::rng()),
        kind: ResponseKind::Authenticate,
    };
    state.send_response(client_id, response, hook);
}

fn set_unauthenticated(
    state: &mut super::State,
    client_id: &ClientIdInternalApp,
    credential_error: Option<String>,
) {
    if let Some(record) = state.record_mut(client_id) {
        record.authentication = Authentication::Unauthenticated;
        record.credential_error = credential_error;
    }
}

/// JavaScript falsiness of a user id: 0 and the empty string.
fn is_falsy(user_id: &UserId) -> bool {
    match user_id {
        UserId::Number(number) => number.as_f64() == Some(0.0),
        UserId::String(text) => text.is_empty(),
    }
}

/// The hook of a successful authenticate response: once confirmed, every listener of the record
/// gets a notification of its route, filtered to the records of the same user when it runs.
fn repush_hook(client_id: &ClientIdInternalApp) -> ReceivedHook {
    let client_id = client_id.clone();
    Arc::new(move |shared: &Arc<Shared>| {
        let routes: Vec<String> = shared
            .lock()
            .record(&client_id)
            .map(|record| record.listeners.iter().map(|l| l.route.name.clone()).collect())
            .unwrap_or_default();
        for route in routes {
            schedule_notify(
                shared,
                &route,
                Notify::all(),
                RecordFilter::SameUserAs(client_id.clone()),
            );
        }
    })
}
