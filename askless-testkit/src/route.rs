//! Route registration: kinds, access classes, handlers, output conversion and hooks.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use askless_protocol::{ClientIdInternalApp, ListenId, UserId};
use serde_json::Value;

use crate::expect::{Expect, Times};
use crate::server::ServerHandle;

/// The operation a route serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteKind {
    /// Read requests, listeners and notifications.
    Read,
    /// Create requests.
    Create,
    /// Update requests.
    Update,
    /// Delete requests.
    Delete,
}

impl RouteKind {
    /// Returns the kind as it appears on the wire and in error descriptions (`READ`, `CREATE`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "READ",
            Self::Create => "CREATE",
            Self::Update => "UPDATE",
            Self::Delete => "DELETE",
        }
    }
}

impl fmt::Display for RouteKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Access class of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Everybody, with a null user id when not authenticated.
    AllUsers,
    /// Authenticated connections only (see [`Quirks::read_ignores_authentication`](crate::Quirks)
    /// for the exception of READ).
    AuthenticatedUsers,
}

/// Input of a route handler. Its `Debug` output leaves out `locals`, which may hold tokens.
#[derive(Clone)]
#[non_exhaustive]
pub struct RouteContext {
    /// The route name.
    pub route: String,
    /// The kind of the route being run.
    pub kind: RouteKind,
    /// The request's `params` (`null` when absent), or the listener's params for listener values.
    pub params: Value,
    /// The request's `body` for CREATE and UPDATE; `null` for READ and DELETE.
    pub body: Value,
    /// The record's user id, `None` when not authenticated.
    pub user_id: Option<UserId>,
    /// The record's claims, `null` when not authenticated.
    pub claims: Value,
    /// The per-user data attached at authentication (`{}` by default); for listener values, the
    /// listener's copy taken when it was registered.
    pub locals: Value,
    /// The client instance that sent the request.
    pub client_id: ClientIdInternalApp,
    /// The listener whose value is computed, for first values and notifications.
    pub listen_id: Option<ListenId>,
    /// A handle to the server, for notifications from inside a handler.
    pub server: ServerHandle,
}

impl fmt::Debug for RouteContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RouteContext")
            .field("route", &self.route)
            .field("kind", &self.kind)
            .field("params", &self.params)
            .field("body", &self.body)
            .field("user_id", &self.user_id)
            .field("claims", &self.claims)
            .field("locals", &askless_protocol::REDACTED)
            .field("client_id", &self.client_id)
            .field("listen_id", &self.listen_id)
            .finish_non_exhaustive()
    }
}

/// Failure of a handler, or its choice not to respond at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    /// The request fails with an `error` object whose members are exactly these.
    Failed {
        /// The error code, or `None` to leave `code` out.
        code: Option<String>,
        /// The description, or `None` to leave `description` out.
        description: Option<String>,
    },
    /// The server sends no response at all; the client's timeout is its only way out.
    NoAnswer,
}

impl RouteError {
    /// Returns a failure with both a code and a description.
    pub fn new(code: impl Into<String>, description: impl Into<String>) -> Self {
        Self::Failed {
            code: Some(code.into()),
            description: Some(description.into()),
        }
    }

    /// Returns a failure with a code and no description.
    pub fn code(code: impl Into<String>) -> Self {
        Self::Failed {
            code: Some(code.into()),
            description: None,
        }
    }

    /// Returns a failure with a description and no code.
    pub fn description(description: impl Into<String>) -> Self {
        Self::Failed {
            code: None,
            description: Some(description.into()),
        }
    }

    /// Returns the outcome "never answer".
    pub fn no_answer() -> Self {
        Self::NoAnswer
    }
}

/// What a handler returns: `Ok(Some(entity))` answers with the entity (after output conversion),
/// `Ok(None)` answers successfully without the `output` key, `Err` fails or never answers.
pub type RouteResult = Result<Option<Value>, RouteError>;

/// A boxed handler future.
pub(crate) type HandlerFuture = Pin<Box<dyn Future<Output = RouteResult> + Send>>;
pub(crate) type Handler = Arc<dyn Fn(RouteContext) -> HandlerFuture + Send + Sync>;
type OutputConversion = Arc<dyn Fn(Value) -> Option<Value> + Send + Sync>;
type ReceivedHookFn = Arc<dyn Fn(&HookContext) + Send + Sync>;
type ListenerHookFn = Arc<dyn Fn(&ListenerInfo) + Send + Sync>;

/// Input of an "on received" hook, once the client confirmed a successful value.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HookContext {
    /// The route name.
    pub route: String,
    /// The route kind.
    pub kind: RouteKind,
    /// The client instance that confirmed.
    pub client_id: ClientIdInternalApp,
    /// The record's user id when the value was produced.
    pub user_id: Option<UserId>,
    /// The output that was confirmed (`None` when the key was absent).
    pub output: Option<Value>,
    /// The listener, when the confirmed message was a listener value.
    pub listen_id: Option<ListenId>,
    /// A handle to the server.
    pub server: ServerHandle,
}

/// Input of the start-listening and stop-listening hooks.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ListenerInfo {
    /// The route name.
    pub route: String,
    /// The listener's params.
    pub params: Value,
    /// The listener.
    pub listen_id: ListenId,
    /// The client instance that holds the listener.
    pub client_id: ClientIdInternalApp,
    /// The record's user id at the time of the hook.
    pub user_id: Option<UserId>,
    /// A handle to the server.
    pub server: ServerHandle,
}

/// A route to register on the mock server.
///
/// ```
/// use askless_testkit::{Route, RouteError};
/// use serde_json::json;
///
/// let route = Route::read("product/all")
///     .for_all_users()
///     .handler(|ctx| async move {
///         if ctx.params["fail"] == json!(true) {
///             return Err(RouteError::new("CUSTOM_FAILURE", "asked to fail"));
///         }
///         Ok(Some(json!([{"id": 1, "name": "Apple"}])))
///     })
///     .output(|entity| Some(json!({"items": entity})));
/// # let _ = route;
/// ```
///
/// Without a handler, a route answers successfully without output.
#[derive(Clone)]
pub struct Route {
    pub(crate) name: String,
    pub(crate) kind: RouteKind,
    pub(crate) access: Access,
    pub(crate) handler: Handler,
    pub(crate) output: Option<OutputConversion>,
    pub(crate) on_received: Option<ReceivedHookFn>,
    pub(crate) on_start_listening: Option<ListenerHookFn>,
    pub(crate) on_stop_listening: Option<ListenerHookFn>,
    pub(crate) expected: Option<Times>,
}

impl fmt::Debug for Route {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("access", &self.access)
            .field("output_conversion", &self.output.is_some())
            .finish_non_exhaustive()
    }
}

impl Route {
    fn new(kind: RouteKind, name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind,
            access: Access::AllUsers,
            handler: Arc::new(|_| Box::pin(async { Ok(None) })),
            output: None,
            on_received: None,
            on_start_listening: None,
            on_stop_listening: None,
            expected: None,
        }
    }

    /// Starts a READ route, which serves reads, listeners and notifications.
    pub fn read(name: impl Into<String>) -> Self {
        Self::new(RouteKind::Read, name)
    }

    /// Starts a CREATE route.
    pub fn create(name: impl Into<String>) -> Self {
        Self::new(RouteKind::Create, name)
    }

    /// Starts an UPDATE route.
    pub fn update(name: impl Into<String>) -> Self {
        Self::new(RouteKind::Update, name)
    }

    /// Starts a DELETE route.
    pub fn delete(name: impl Into<String>) -> Self {
        Self::new(RouteKind::Delete, name)
    }

    /// Opens the route to every connection. This is the default.
    pub fn for_all_users(mut self) -> Self {
        self.access = Access::AllUsers;
        self
    }

    /// Restricts the route to authenticated connections.
    pub fn for_authenticated_users(mut self) -> Self {
        self.access = Access::AuthenticatedUsers;
        self
    }

    /// Sets the handler. Default: answer successfully without output.
    ///
    /// A handler that panics is caught: the request keeps its receipt and gets nothing more.
    pub fn handler<F, Fut>(mut self, handler: F) -> Self
    where
        F: Fn(RouteContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = RouteResult> + Send + 'static,
    {
        self.handler = Arc::new(move |ctx| Box::pin(handler(ctx)));
        self
    }

    /// Sets the output conversion applied to every entity before it is sent; returning `None`
    /// leaves the `output` key out. Default: the entity is sent unchanged.
    pub fn output<F>(mut self, conversion: F) -> Self
    where
        F: Fn(Value) -> Option<Value> + Send + Sync + 'static,
    {
        self.output = Some(Arc::new(conversion));
        self
    }

    /// Sets the hook run when the client confirms a successful response or a listener value of
    /// this route. Default: none.
    pub fn on_received<F>(mut self, hook: F) -> Self
    where
        F: Fn(&HookContext) + Send + Sync + 'static,
    {
        self.on_received = Some(Arc::new(hook));
        self
    }

    /// Sets the hook run after a listener of this READ route received its first value.
    /// Default: none.
    pub fn on_start_listening<F>(mut self, hook: F) -> Self
    where
        F: Fn(&ListenerInfo) + Send + Sync + 'static,
    {
        self.on_start_listening = Some(Arc::new(hook));
        self
    }

    /// Sets the hook run whenever a listener of this READ route is removed: ping omission,
    /// connection close, replacement by the same listenId, or a listen error that removes it.
    /// Default: none.
    pub fn on_stop_listening<F>(mut self, hook: F) -> Self
    where
        F: Fn(&ListenerInfo) + Send + Sync + 'static,
    {
        self.on_stop_listening = Some(Arc::new(hook));
        self
    }

    /// Expects this route to receive `times` requests of its kind (for a READ route: read
    /// requests, not listens), checked when the server drops or on
    /// [`verify`](crate::MockServer::verify). Default: no expectation.
    pub fn expect(mut self, times: impl Into<Times>) -> Self {
        self.expected = Some(times.into());
        self
    }

    /// Returns the route name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the route kind.
    pub fn kind(&self) -> RouteKind {
        self.kind
    }

    /// Returns who may use the route.
    pub fn access(&self) -> Access {
        self.access
    }

    pub(crate) fn expectation(&self) -> Option<Expect> {
        let times = self.expected?;
        Some(Expect::for_route(self.kind, &self.name).times(times))
    }

    /// Applies the output conversion to an entity.
    pub(crate) fn convert(&self, entity: Value) -> Option<Value> {
        match &self.output {
            Some(conversion) => conversion(entity),
            None => Some(entity),
        }
    }

    pub(crate) fn is_authenticated_only(&self) -> bool {
        self.access == Access::AuthenticatedUsers
    }
}
