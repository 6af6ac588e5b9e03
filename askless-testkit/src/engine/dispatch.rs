//! Classification of client frames and the handling of configure, read, modify and listen
//! requests, including the responses of the reference server to malformed frames.

use std::sync::Arc;

use askless_protocol::{
    ClientIdInternalApp, ClientMessage, ClientRequestId, ClientVersionCodeSupported,
    ConfigureConnectionRequest, DecodeError, ListenRequest, MessageKind, ModifyRequest, ReadRequest,
    Response, ServerId, decode_client_value,
};
use serde_json::Value;

use super::listeners::{ListenSpec, PingEntry, listen, ping};
use super::reliability::confirm;
use super::{ReceivedHook, Shared, Work, auth, run_handler};
use crate::inspect::ConnectionId;
use crate::route::{HookContext, Route, RouteContext, RouteError, RouteKind};
use crate::server::ServerHandle;

const INTERNAL_ERROR_DESCRIPTION: &str = "An internal error occurred";
const UNKNOWN_MARKER_DESCRIPTION: &str = "Not class type requestAlreadyReceivedFromClientBefore to handle";

/// Handles one text frame of a connection; returns the work it started, if any.
pub(crate) fn handle_frame(shared: &Arc<Shared>, connection: ConnectionId, text: &str) -> Option<Work> {
    let mut value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(error) => {
            tracing::warn!(connection = connection.get(), %error, "frame is not JSON; the reference server fails here, the mock drops it");
            return None;
        }
    };
    // A frame that decodes only after patching fields the reference server does not read
    // (requestType of most kinds) or reads loosely (a missing route) is served as that server
    // serves it. Each patch removes one decode error, so a few rounds suffice.
    for _ in 0..4 {
        match decode_client_value(value.clone()) {
            Ok(message) => return handle_message(shared, connection, message),
            Err(error) => {
                if !patch(&error, &mut value) {
                    return handle_decode_error(shared, connection, &error, &value);
                }
            }
        }
    }
    tracing::warn!(
        connection = connection.get(),
        "frame could not be decoded; dropped"
    );
    None
}

/// Fills in a field the reference server would not fail on; returns false when nothing applies.
fn patch(error: &DecodeError, value: &mut Value) -> bool {
    let (Some(kind), Some(field), Value::Object(map)) = (error.kind(), error.field(), value) else {
        return false;
    };
    let missing = matches!(error, DecodeError::MissingField { .. });
    match (kind, field) {
        (MessageKind::Modify, "requestType") => false,
        (_, "requestType") => {
            let request_type = match kind {
                MessageKind::ConfigureConnection => "CONFIGURE_CONNECTION",
                MessageKind::Authenticate => "AUTHENTICATE",
                MessageKind::Read => "READ",
                MessageKind::Listen => "LISTEN",
                MessageKind::ConfirmReceipt => "CONFIRM_RECEIPT",
                _ => return false,
            };
            map.insert("requestType".to_owned(), Value::String(request_type.to_owned()));
            true
        }
        (MessageKind::ConfigureConnection, "clientType") => {
            let shown = map.get("clientType").map(Value::to_string).unwrap_or_default();
            map.insert("clientType".to_owned(), Value::String(shown));
            true
        }
        (MessageKind::Read | MessageKind::Modify | MessageKind::Listen, "route") => {
            let name = match map.get("route") {
                Some(other) if !missing => other.to_string(),
                _ => "undefined".to_owned(),
            };
            map.insert("route".to_owned(), Value::String(name));
            true
        }
        (MessageKind::ConfirmReceipt, "serverId") => {
            map.remove("serverId");
            true
        }
        _ => false,
    }
}

fn handle_message(shared: &Arc<Shared>, connection: ConnectionId, message: ClientMessage) -> Option<Work> {
    match message {
        ClientMessage::Ping(ping_message) => {
            let entries = ping_message
                .listening_to_routes
                .into_iter()
                .map(|entry| PingEntry {
                    client_request_id: Some(entry.client_request_id),
                    route: Some(entry.route),
                    params: entry.params,
                    listen_id: Some(entry.listen_id),
                })
                .collect();
            ping(shared, connection, Some(entries))
        }
        ClientMessage::ConfigureConnection(request) => {
            configure(shared, connection, &request);
            None
        }
        ClientMessage::Authenticate(request) => auth::authenticate(
            shared,
            connection,
            request.client_request_id,
            true,
            request.credential.unwrap_or(Value::Null),
        ),
        other => {
            let client_id = configured(shared, connection)?;
            match other {
                ClientMessage::ConfirmReceipt(request) => {
                    confirm(shared, &client_id, request.server_id.as_ref());
                    None
                }
                ClientMessage::Read(request) => read(shared, &client_id, request),
                ClientMessage::Listen(request) => listen_request(shared, &client_id, request),
                ClientMessage::Modify(request) => modify(shared, &client_id, request),
                _ => None,
            }
        }
    }
}

/// Returns the client id of a configured connection; frames of other connections are dropped.
fn configured(shared: &Arc<Shared>, connection: ConnectionId) -> Option<ClientIdInternalApp> {
    let client_id = shared.lock().connection_client_id(connection);
    if client_id.is_none() {
        tracing::debug!(connection = connection.get(), "request before configure dropped");
    }
    client_id
}

/// Applies de-duplication and sends the receipt; returns false for a duplicate.
fn accept_request(shared: &Arc<Shared>, client_id: &ClientIdInternalApp, id: &ClientRequestId) -> bool {
    let mut state = shared.lock();
    let config = &shared.config;
    let fresh = state.record_or_create(client_id).remember_request(
        id,
        config.dedup_memory,
        config.dedup_prune_threshold,
    );
    if !fresh {
        tracing::debug!(client_id = %client_id, client_request_id = %id, "duplicate clientRequestId ignored");
        return false;
    }
    state.send_receipt(client_id, id);
    true
}

fn configure(shared: &Arc<Shared>, connection: ConnectionId, request: &ConfigureConnectionRequest) {
    let client_id = &request.client_id_internal_app;
    let mut state = shared.lock();
    let Some(conn) = state.connections.get_mut(&connection) else {
        return;
    };
    let previous = conn.client_id.replace(client_id.clone());
    // A connection configured again under another client id leaves its previous record.
    if let Some(previous) = previous.filter(|previous| previous != client_id) {
        if let Some(record) = state
            .record_mut(&previous)
            .filter(|r| r.connection == Some(connection))
        {
            record.connection = None;
        }
    }
    let record = state.record_or_create(client_id);
    record.reset_for_new_session();
    record.connection = Some(connection);
    record.ever_bound = true;
    record.client_type = request.client_type.clone();
    if !shared.config.quirks.cleanup_ignores_reconnection {
        record.disconnected_at = None;
    }
    tracing::info!(connection = connection.get(), client_id = %client_id, "connection configured");
    state.send_receipt(client_id, &request.client_request_id);
    let window = match request.client_type.as_deref() {
        None | Some("flutter") => shared
            .config
            .client_version_window
            .unwrap_or(ClientVersionCodeSupported::FLUTTER),
        Some("javascript") => ClientVersionCodeSupported::JAVASCRIPT,
        Some(_) => {
            state.send_failure(
                client_id,
                &request.client_request_id,
                "INTERNAL_ERROR",
                INTERNAL_ERROR_DESCRIPTION,
            );
            return;
        }
    };
    let response = Response::configure_connection(
        request.client_request_id.clone(),
        ServerId::generate_response(&mut rand::rng()),
        &shared.config.connection_configuration(window),
    );
    state.send_response(client_id, response, None);
}

fn read(shared: &Arc<Shared>, client_id: &ClientIdInternalApp, request: ReadRequest) -> Option<Work> {
    if !accept_request(shared, client_id, &request.client_request_id) {
        return None;
    }
    let ctx = {
        let mut state = shared.lock();
        let route = state
            .first_route_named(&request.route)
            .filter(|r| r.kind == RouteKind::Read);
        let Some(route) = route else {
            let description = format!(
                "ReadRoute \"{0}\" not found on server . Check if the ReadRoute {0} was created and set on this server",
                request.route
            );
            state.send_failure(
                client_id,
                &request.client_request_id,
                "INVALID_ROUTE",
                description,
            );
            return None;
        };
        let record = state.record_or_create(client_id);
        let gated = route.is_authenticated_only()
            && !record.is_authenticated()
            && !shared.config.quirks.read_ignores_authentication;
        if gated {
            state.send_failure(
                client_id,
                &request.client_request_id,
                "PENDING_AUTHENTICATION",
                gate_description(RouteKind::Read.as_str(), &request.route),
            );
            return None;
        }
        request_context(
            shared,
            &route,
            record,
            RouteKind::Read,
            request.params,
            Value::Null,
        )
    };
    let route = ctx.0;
    Some(answer_with_handler(
        shared,
        route,
        ctx.1,
        request.client_request_id,
    ))
}

fn gate_description(kind: &str, route: &str) -> String {
    format!("Could not perform the operation on ({kind}) \"{route}\" because authentication is required")
}

fn request_context(
    shared: &Arc<Shared>,
    route: &Arc<Route>,
    record: &super::Record,
    kind: RouteKind,
    params: Value,
    body: Value,
) -> (Arc<Route>, RouteContext) {
    let ctx = RouteContext {
        route: route.name.clone(),
        kind,
        params,
        body,
        user_id: record.user_id.clone(),
        claims: record.claims.clone(),
        locals: record.locals.clone(),
        client_id: record.client_id.clone(),
        listen_id: None,
        server: ServerHandle::from_shared(shared.clone()),
    };
    (route.clone(), ctx)
}

/// Runs a route handler and sends its response.
fn answer_with_handler(
    shared: &Arc<Shared>,
    route: Arc<Route>,
    ctx: RouteContext,
    client_request_id: ClientRequestId,
) -> Work {
    let shared = shared.clone();
    let client_id = ctx.client_id.clone();
    let user_id = ctx.user_id.clone();
    Box::pin(async move {
        let Some(result) = run_handler(&route, ctx).await else {
            return;
        };
        let mut state = shared.lock();
        match result {
            Ok(entity) => {
                let output = entity.and_then(|entity| route.convert(entity));
                let hook = response_hook(&route, &client_id, user_id, &output);
                let server_id = ServerId::generate_response(&mut rand::rng());
                let response = Response::success(client_request_id, server_id, output);
                state.send_response(&client_id, response, hook);
            }
            Err(RouteError::NoAnswer) => {
                tracing::debug!(route = %route.name, "handler chose not to respond");
            }
            Err(RouteError::Failed { code, description }) => {
                let error = askless_protocol::ErrorBody {
                    code: code.map(Into::into),
                    description,
                };
                let server_id = ServerId::generate_response(&mut rand::rng());
                state.send_response(
                    &client_id,
                    Response::failure(client_request_id, server_id, error),
                    None,
                );
            }
        }
    })
}

fn response_hook(
    route: &Arc<Route>,
    client_id: &ClientIdInternalApp,
    user_id: Option<askless_protocol::UserId>,
    output: &Option<Value>,
) -> Option<ReceivedHook> {
    let hook = route.on_received.clone()?;
    let (name, kind, client_id, output) = (route.name.clone(), route.kind, client_id.clone(), output.clone());
    Some(Arc::new(move |shared: &Arc<Shared>| {
        hook(&HookContext {
            route: name.clone(),
            kind,
            client_id: client_id.clone(),
            user_id: user_id.clone(),
            output: output.clone(),
            listen_id: None,
            server: ServerHandle::from_shared(shared.clone()),
        });
    }))
}

fn modify(shared: &Arc<Shared>, client_id: &ClientIdInternalApp, request: ModifyRequest) -> Option<Work> {
    if !accept_request(shared, client_id, &request.client_request_id) {
        return None;
    }
    let kind_sent = request.request_type.as_str().to_owned();
    let (route, ctx) = {
        let mut state = shared.lock();
        let Some(route) = state.route_of_kind(&request.route, &kind_sent) else {
            let description = format!("route not found: {} {}", kind_sent.to_uppercase(), request.route);
            state.send_failure(
                client_id,
                &request.client_request_id,
                "INVALID_ROUTE",
                description,
            );
            return None;
        };
        let record = state.record_or_create(client_id);
        if route.is_authenticated_only() && !record.is_authenticated() {
            let description = gate_description(route.kind.as_str(), &request.route);
            state.send_failure(
                client_id,
                &request.client_request_id,
                "PENDING_AUTHENTICATION",
                description,
            );
            return None;
        }
        if route.kind == RouteKind::Read {
            // A READ route found through a modify message with requestType READ cannot modify.
            state.send_failure(
                client_id,
                &request.client_request_id,
                "INTERNAL_ERROR",
                INTERNAL_ERROR_DESCRIPTION,
            );
            return None;
        }
        let body = if route.kind == RouteKind::Delete {
            Value::Null
        } else {
            request.body
        };
        request_context(shared, &route, record, route.kind, request.params, body)
    };
    Some(answer_with_handler(shared, route, ctx, request.client_request_id))
}

fn listen_request(
    shared: &Arc<Shared>,
    client_id: &ClientIdInternalApp,
    request: ListenRequest,
) -> Option<Work> {
    if !accept_request(shared, client_id, &request.client_request_id) {
        return None;
    }
    listen(
        shared,
        ListenSpec {
            client_id: client_id.clone(),
            client_request_id: request.client_request_id,
            route: request.route,
            params: request.params,
            listen_id: request.listen_id,
        },
    )
}

/// Responds to a frame the decoder rejected as the reference server (guarded against its own
/// crashes) does; frames that would crash it are logged and dropped.
fn handle_decode_error(
    shared: &Arc<Shared>,
    connection: ConnectionId,
    error: &DecodeError,
    value: &Value,
) -> Option<Work> {
    let client_request_id = error.client_request_id().map(ClientRequestId::new);
    match (error.kind(), error.field(), client_request_id) {
        (Some(MessageKind::Ping), Some("listeningToRoutes"), _) => ping(shared, connection, None),
        (Some(MessageKind::Ping), Some(_), _) => {
            let entries = value
                .get("listeningToRoutes")
                .and_then(Value::as_array)
                .map(|entries| entries.iter().map(PingEntry::from_value).collect());
            ping(shared, connection, entries)
        }
        (Some(MessageKind::ConfigureConnection), Some("clientIdInternalApp"), _) => {
            tracing::debug!(
                connection = connection.get(),
                "configure without clientIdInternalApp dropped"
            );
            None
        }
        (Some(MessageKind::Authenticate), Some("clientIdInternalApp"), Some(id)) => {
            let credential = value.get("credential").cloned().unwrap_or(Value::Null);
            auth::authenticate(shared, connection, id, false, credential)
        }
        (Some(MessageKind::Listen), Some("listenId"), Some(id)) => {
            listen_without_listen_id(shared, connection, id, value)
        }
        (Some(MessageKind::Modify), Some("requestType"), Some(id)) => {
            let client_id = configured(shared, connection)?;
            if accept_request(shared, &client_id, &id) {
                let mut state = shared.lock();
                state.send_failure(&client_id, &id, "INTERNAL_ERROR", INTERNAL_ERROR_DESCRIPTION);
            }
            None
        }
        (None, None, Some(id)) if matches!(error, DecodeError::UnknownMessage { .. }) => {
            let client_id = configured(shared, connection)?;
            shared
                .lock()
                .send_failure(&client_id, &id, "INTERNAL_ERROR", UNKNOWN_MARKER_DESCRIPTION);
            None
        }
        _ => {
            tracing::warn!(connection = connection.get(), %error, "malformed frame dropped; the reference server fails on it");
            None
        }
    }
}

/// Handles a LISTEN without `listenId`: receipt, then the route lookup, then `INTERNAL_ERROR`.
fn listen_without_listen_id(
    shared: &Arc<Shared>,
    connection: ConnectionId,
    id: ClientRequestId,
    value: &Value,
) -> Option<Work> {
    let client_id = configured(shared, connection)?;
    if !accept_request(shared, &client_id, &id) {
        return None;
    }
    let route = value.get("route").and_then(Value::as_str).unwrap_or("undefined");
    let mut state = shared.lock();
    if state.read_route(route).is_none() {
        let description = format!("route not found: READ {route}");
        state.send_failure(&client_id, &id, "INVALID_ROUTE", description);
    } else {
        state.send_failure(&client_id, &id, "INTERNAL_ERROR", INTERNAL_ERROR_DESCRIPTION);
    }
    None
}
