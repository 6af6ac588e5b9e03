//! Change notifications pushed to listeners.

use std::fmt;
use std::sync::Arc;

use askless_protocol::UserId;
use serde_json::Value;

/// What a `where` filter of a notification sees for each listener.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct NotifyTarget {
    /// The listener's params.
    pub params: Value,
    /// The record's current user id.
    pub user_id: Option<UserId>,
    /// The record's current claims (`null` when not authenticated).
    pub claims: Value,
}

type WhereFn = Arc<dyn Fn(&NotifyTarget) -> bool + Send + Sync>;

/// A change notification for a READ route, passed to
/// [`notify_changes`](crate::ServerHandle::notify_changes).
///
/// Every listener of the route receives one value computed with its own params by the route's
/// handler, unless a `where` filter excludes it or an override value replaces the handler.
#[derive(Clone, Default)]
pub struct Notify {
    pub(crate) filter: Option<WhereFn>,
    pub(crate) override_value: Option<Value>,
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notify")
            .field("filter", &self.filter.is_some())
            .field("override_value", &self.override_value)
            .finish()
    }
}

impl Notify {
    /// Notifies every listener of the route.
    pub fn all() -> Self {
        Self::default()
    }

    /// Keeps only the listeners for which `filter` returns true. The filter runs while the
    /// notification is processed, against the record's state at that moment.
    pub fn where_<F>(mut self, filter: F) -> Self
    where
        F: Fn(&NotifyTarget) -> bool + Send + Sync + 'static,
    {
        self.filter = Some(Arc::new(filter));
        self
    }

    /// Sends `entity` (after the route's output conversion) instead of running the handler.
    pub fn override_value(mut self, entity: Value) -> Self {
        self.override_value = Some(entity);
        self
    }

    pub(crate) fn accepts(&self, target: &NotifyTarget) -> bool {
        self.filter.as_ref().is_none_or(|filter| filter(target))
    }
}
