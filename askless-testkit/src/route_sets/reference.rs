//! The routes of the reference application that recorded the golden transcripts: a product
//! catalog, a ticking counter, public notes, failing and slow routes and `me`.
//!
//! | route | operation | who | behaviour |
//! | --- | --- | --- | --- |
//! | `product/all` | READ | all users | catalog sorted by id; `params.nameContains` filters by name, case-insensitively. Seeded: 1 Apple 3, 2 Banana 2, 3 Cherry 10 |
//! | `counter` | READ | all users | `{value, intervalMs}`; `value` grows by one every counter interval and is pushed to listeners |
//! | `note/all` | READ | all users | public notes `{id, text, authorUserId}` sorted by id |
//! | `note` | CREATE / UPDATE / DELETE | all users | body `{text}` / body `{id, text}` / `params.id`; `INVALID_NOTE`, `NOT_FOUND`; pushes `note/all` |
//! | `fail/custom` | READ | all users | fails with `CUSTOM_FAILURE` `this route fails on purpose` |
//! | `slow` | READ | all users | returns `{sleptMs}` after `params.delayMs` (clamped to 0–20000) or the default delay |
//! | `me` | READ | authenticated | `{userId, claims, displayName}`, the display name from the authentication's locals |
//! | `me/listening` | DELETE | authenticated | sends the caller's user a stop-listening event for its `me` listeners; `{stopListeningSentTo}` |
//! | `product` | CREATE / UPDATE / DELETE | authenticated | body `{name, price}` / body `{id, name?, price?}` / `params.id`; `INVALID_PRODUCT`, `NOT_FOUND`, `PERMISSION_DENIED` (someone else's product); pushes `product/all` |
//!
//! Authentication: `{"accessToken": "good-<id>"}` authenticates user `<id>` (a number when it is
//! all digits, a string otherwise) with claims `["user"]` (plus `"admin"` for `good-admin`) and
//! locals `{"displayName": "User <id>"}`; `{"accessToken": "expired"}` is rejected with
//! `EXPIRED_ACCESS_TOKEN`; anything else, a missing credential included, is accepted as an
//! unauthenticated user. The reference server advertises `requestTimeoutInMs` 3000.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use askless_protocol::UserId;
use serde_json::{Value, json};

use super::js;
use crate::authentication::AuthDecision;
use crate::config::MockConfig;
use crate::notify::Notify;
use crate::route::{Route, RouteContext, RouteError, RouteResult};

/// Largest delay of the `slow` route, in milliseconds.
const SLOW_MAX_MS: f64 = 20_000.0;

/// Settings of the reference route set.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReferenceOptions {
    /// Period of the `counter` route: each tick adds one and notifies its listeners. `None`
    /// stops the counter. Default: `Some(1000 ms)`.
    pub counter_interval: Option<Duration>,
    /// Delay of the `slow` route when the request names none. Default: 5000 ms.
    pub slow_default_delay: Duration,
}

impl Default for ReferenceOptions {
    fn default() -> Self {
        Self {
            counter_interval: Some(Duration::from_millis(1000)),
            slow_default_delay: Duration::from_millis(5000),
        }
    }
}

/// Returns the mock configuration of the reference server: the Askless 2.0.3 defaults with
/// `requestTimeoutInMs` 3000.
pub fn config() -> MockConfig {
    MockConfig {
        request_timeout: Some(Duration::from_millis(3000)),
        ..MockConfig::default()
    }
}

/// Decides an authentication the way the reference application does.
pub fn authenticate(credential: &Value) -> AuthDecision {
    let token = credential.get("accessToken").and_then(Value::as_str);
    if token == Some("expired") {
        return AuthDecision::reject("EXPIRED_ACCESS_TOKEN");
    }
    let Some(raw_id) = token
        .and_then(|token| token.strip_prefix("good-"))
        .filter(|id| !id.is_empty())
    else {
        return AuthDecision::unauthenticated();
    };
    let user_id = if raw_id.chars().all(|c| c.is_ascii_digit()) {
        numeric_user_id(raw_id)
    } else {
        UserId::from(raw_id)
    };
    let claims = if raw_id == "admin" {
        json!(["user", "admin"])
    } else {
        json!(["user"])
    };
    AuthDecision::user(user_id)
        .with_claims(claims)
        .with_locals(json!({"displayName": format!("User {raw_id}")}))
}

/// Converts an all-digits id to the number JavaScript's `Number()` gives, so `"007"` is 7.
fn numeric_user_id(digits: &str) -> UserId {
    match digits.parse::<i64>() {
        Ok(id) => UserId::from(id),
        // Beyond i64 JavaScript keeps a rounded double, and so does the mock.
        Err(_) => match js::number_value(js::to_number(Some(&Value::String(digits.to_owned())))) {
            Value::Number(number) => UserId::Number(number),
            _ => UserId::from(digits),
        },
    }
}

/// A product of the catalog.
#[derive(Debug, Clone)]
struct Product {
    id: i64,
    name: String,
    price: Value,
    owner: Option<UserId>,
}

impl Product {
    fn output(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "price": self.price,
            "ownerUserId": self.owner.as_ref().map_or(Value::Null, UserId::to_value),
        })
    }
}

/// A public note.
#[derive(Debug, Clone)]
struct Note {
    id: i64,
    text: String,
    author: Option<UserId>,
}

impl Note {
    fn output(&self) -> Value {
        json!({
            "id": self.id,
            "text": self.text,
            "authorUserId": self.author.as_ref().map_or(Value::Null, UserId::to_value),
        })
    }
}

/// The application data of the reference route set.
#[derive(Debug)]
struct Data {
    catalog: BTreeMap<i64, Product>,
    next_product_id: i64,
    notes: BTreeMap<i64, Note>,
    next_note_id: i64,
    counter: i64,
}

impl Data {
    fn seeded() -> Self {
        let mut catalog = BTreeMap::new();
        for (id, (name, price)) in [("Apple", 3), ("Banana", 2), ("Cherry", 10)]
            .into_iter()
            .enumerate()
        {
            let id = i64::try_from(id).unwrap_or(0) + 1;
            catalog.insert(
                id,
                Product {
                    id,
                    name: name.to_owned(),
                    price: json!(price),
                    owner: None,
                },
            );
        }
        Self {
            catalog,
            next_product_id: 4,
            notes: BTreeMap::new(),
            next_note_id: 1,
            counter: 0,
        }
    }
}

/// The reference route set: its routes, its data and its counter.
///
/// Build it with [`ReferenceRoutes::new`], register [`ReferenceRoutes::routes`] and
/// [`authenticate`] on a server, and call [`ReferenceRoutes::tick_counter`] then notify `counter`
/// on every tick. [`install_reference`](super::install_reference) does all three.
#[derive(Debug, Clone)]
pub struct ReferenceRoutes {
    data: Arc<Mutex<Data>>,
    options: ReferenceOptions,
}

impl ReferenceRoutes {
    /// Creates the route set with its seeded catalog, no notes and the counter at 0.
    pub fn new(options: ReferenceOptions) -> Self {
        Self {
            data: Arc::new(Mutex::new(Data::seeded())),
            options,
        }
    }

    /// Returns the options the route set was built with.
    pub fn options(&self) -> &ReferenceOptions {
        &self.options
    }

    fn data(&self) -> MutexGuard<'_, Data> {
        lock(&self.data)
    }

    /// Adds one to the counter, as one tick of the counter task does. The caller notifies the
    /// `counter` listeners.
    pub fn tick_counter(&self) {
        self.data().counter += 1;
    }

    /// Returns the routes in the order the reference application registers them.
    pub fn routes(&self) -> Vec<Route> {
        vec![
            self.product_list(),
            self.counter(),
            self.note_list(),
            self.note_create(),
            self.note_update(),
            self.note_delete(),
            fail_custom(),
            self.slow(),
            me(),
            me_listening(),
            self.product_create(),
            self.product_update(),
            self.product_delete(),
        ]
    }

    fn product_list(&self) -> Route {
        let this = self.clone();
        Route::read("product/all")
            .for_all_users()
            .handler(move |ctx| {
                let filter = ctx
                    .params
                    .get("nameContains")
                    .and_then(Value::as_str)
                    .map(str::to_lowercase);
                let list: Vec<Value> = this
                    .data()
                    .catalog
                    .values()
                    .filter(|product| {
                        filter
                            .as_ref()
                            .is_none_or(|filter| product.name.to_lowercase().contains(filter))
                    })
                    .map(Product::output)
                    .collect();
                async move { Ok(Some(Value::Array(list))) }
            })
            .on_received(
                |hook| tracing::debug!(route = %hook.route, user = ?hook.user_id, "product list confirmed"),
            )
            .on_start_listening(
                |info| tracing::debug!(route = %info.route, user = ?info.user_id, "start listening"),
            )
            .on_stop_listening(
                |info| tracing::debug!(route = %info.route, user = ?info.user_id, "stop listening"),
            )
    }

    fn counter(&self) -> Route {
        let this = self.clone();
        let interval_ms = self.options.counter_interval.map_or(0, |interval| {
            i64::try_from(interval.as_millis()).unwrap_or(i64::MAX)
        });
        Route::read("counter")
            .for_all_users()
            .handler(move |_ctx| {
                let value = this.data().counter;
                async move { Ok(Some(json!({"value": value}))) }
            })
            .output(move |entity| Some(json!({"value": entity["value"], "intervalMs": interval_ms})))
    }

    fn note_list(&self) -> Route {
        let this = self.clone();
        Route::read("note/all").for_all_users().handler(move |_ctx| {
            let list: Vec<Value> = this.data().notes.values().map(Note::output).collect();
            async move { Ok(Some(Value::Array(list))) }
        })
    }

    fn note_create(&self) -> Route {
        let this = self.clone();
        Route::create("note").for_all_users().handler(move |ctx| {
            let result = this.create_note(&ctx);
            async move { result }
        })
    }

    fn create_note(&self, ctx: &RouteContext) -> RouteResult {
        let Some(text) = ctx
            .body
            .get("text")
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
        else {
            return Err(RouteError::new(
                "INVALID_NOTE",
                "body.text must be a non-empty string",
            ));
        };
        let note = {
            let mut data = self.data();
            let note = Note {
                id: data.next_note_id,
                text: text.to_owned(),
                author: ctx.user_id.clone(),
            };
            data.next_note_id += 1;
            data.notes.insert(note.id, note.clone());
            note
        };
        ctx.server.notify_changes("note/all", Notify::all());
        Ok(Some(note.output()))
    }

    fn note_update(&self) -> Route {
        let this = self.clone();
        Route::update("note").for_all_users().handler(move |ctx| {
            let result = this.update_note(&ctx);
            async move { result }
        })
    }

    fn update_note(&self, ctx: &RouteContext) -> RouteResult {
        let id = js::integer_id(&ctx.body);
        let note = {
            let mut data = self.data();
            let Some(note) = id.and_then(|id| data.notes.get_mut(&id)) else {
                return Err(not_found("note", id));
            };
            if let Some(text) = ctx.body.get("text").and_then(Value::as_str) {
                note.text = text.to_owned();
            }
            note.clone()
        };
        ctx.server.notify_changes("note/all", Notify::all());
        Ok(Some(note.output()))
    }

    fn note_delete(&self) -> Route {
        let this = self.clone();
        Route::delete("note").for_all_users().handler(move |ctx| {
            let result = this.delete_note(&ctx);
            async move { result }
        })
    }

    fn delete_note(&self, ctx: &RouteContext) -> RouteResult {
        let id = js::integer_id(&ctx.params);
        let Some(note) = id.and_then(|id| self.data().notes.remove(&id)) else {
            return Err(not_found("note", id));
        };
        ctx.server.notify_changes("note/all", Notify::all());
        Ok(Some(note.output()))
    }

    fn slow(&self) -> Route {
        let default_ms = self.options.slow_default_delay.as_secs_f64() * 1000.0;
        Route::read("slow").for_all_users().handler(move |ctx| {
            let mut delay_ms = default_ms;
            if ctx.params.is_object() {
                let requested = js::to_number(ctx.params.get("delayMs"));
                if requested.is_finite() {
                    delay_ms = requested.clamp(0.0, SLOW_MAX_MS);
                }
            }
            async move {
                tokio::time::sleep(Duration::from_secs_f64(delay_ms / 1000.0)).await;
                Ok(Some(json!({"sleptMs": js::number_value(delay_ms)})))
            }
        })
    }

    fn product_create(&self) -> Route {
        let this = self.clone();
        Route::create("product")
            .for_authenticated_users()
            .handler(move |ctx| {
                let result = this.create_product(&ctx);
                async move { result }
            })
    }

    fn create_product(&self, ctx: &RouteContext) -> RouteResult {
        let name = ctx
            .body
            .get("name")
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty());
        let price = ctx
            .body
            .get("price")
            .filter(|price| price.as_f64().is_some_and(|price| price >= 0.0));
        let (Some(name), Some(price)) = (name, price) else {
            return Err(RouteError::new(
                "INVALID_PRODUCT",
                "body needs a non-empty \"name\" and a non-negative numeric \"price\"",
            ));
        };
        let product = {
            let mut data = self.data();
            let product = Product {
                id: data.next_product_id,
                name: name.to_owned(),
                price: price.clone(),
                owner: ctx.user_id.clone(),
            };
            data.next_product_id += 1;
            data.catalog.insert(product.id, product.clone());
            product
        };
        ctx.server.notify_changes("product/all", Notify::all());
        Ok(Some(product.output()))
    }

    fn product_update(&self) -> Route {
        let this = self.clone();
        Route::update("product")
            .for_authenticated_users()
            .handler(move |ctx| {
                let result = this.update_product(&ctx);
                async move { result }
            })
    }

    fn update_product(&self, ctx: &RouteContext) -> RouteResult {
        let id = js::integer_id(&ctx.body);
        let product = {
            let mut data = self.data();
            let Some(product) = id.and_then(|id| data.catalog.get_mut(&id)) else {
                return Err(not_found("product", id));
            };
            if !is_owner(product, ctx.user_id.as_ref()) {
                return Err(RouteError::new(
                    "PERMISSION_DENIED",
                    "only the owner may change this product",
                ));
            }
            if let Some(name) = ctx
                .body
                .get("name")
                .and_then(Value::as_str)
                .filter(|name| !name.is_empty())
            {
                product.name = name.to_owned();
            }
            if let Some(price) = ctx
                .body
                .get("price")
                .filter(|price| price.as_f64().is_some_and(|price| price >= 0.0))
            {
                product.price = price.clone();
            }
            product.clone()
        };
        ctx.server.notify_changes("product/all", Notify::all());
        Ok(Some(product.output()))
    }

    fn product_delete(&self) -> Route {
        let this = self.clone();
        Route::delete("product")
            .for_authenticated_users()
            .handler(move |ctx| {
                let result = this.delete_product(&ctx);
                async move { result }
            })
    }

    fn delete_product(&self, ctx: &RouteContext) -> RouteResult {
        let id = js::integer_id(&ctx.params);
        let product = {
            let mut data = self.data();
            let Some(product) = id.and_then(|id| data.catalog.get(&id)).cloned() else {
                return Err(not_found("product", id));
            };
            if !is_owner(&product, ctx.user_id.as_ref()) {
                return Err(RouteError::new(
                    "PERMISSION_DENIED",
                    "only the owner may delete this product",
                ));
            }
            data.catalog.remove(&product.id);
            product
        };
        ctx.server.notify_changes("product/all", Notify::all());
        Ok(Some(product.output()))
    }
}

/// Returns whether `user` may change `product`: products without owner belong to everybody,
/// and owners are compared strictly, as the reference application does.
fn is_owner(product: &Product, user: Option<&UserId>) -> bool {
    match (&product.owner, user) {
        (None, _) => true,
        (Some(owner), Some(user)) => owner == user,
        (Some(_), None) => false,
    }
}

fn not_found(what: &str, id: Option<i64>) -> RouteError {
    RouteError::new(
        "NOT_FOUND",
        format!("{what} {} does not exist", js::render_id(id)),
    )
}

fn fail_custom() -> Route {
    Route::read("fail/custom")
        .for_all_users()
        .handler(|_ctx| async { Err(RouteError::new("CUSTOM_FAILURE", "this route fails on purpose")) })
}

fn me() -> Route {
    Route::read("me")
        .for_authenticated_users()
        .handler(|ctx| {
            let value = json!({
                "userId": ctx.user_id.as_ref().map_or(Value::Null, UserId::to_value),
                "claims": ctx.claims,
                "displayName": ctx.locals.get("displayName").cloned().unwrap_or(Value::Null),
            });
            async move { Ok(Some(value)) }
        })
        .on_start_listening(
            |info| tracing::debug!(route = %info.route, user = ?info.user_id, "start listening"),
        )
        .on_stop_listening(
            |info| tracing::debug!(route = %info.route, user = ?info.user_id, "stop listening"),
        )
}

fn me_listening() -> Route {
    Route::delete("me/listening")
        .for_authenticated_users()
        .handler(|ctx| {
            let result = match &ctx.user_id {
                Some(user) => {
                    ctx.server.stop_listening_for_user("me", user.clone());
                    Ok(Some(json!({"stopListeningSentTo": user.to_value()})))
                }
                // The authentication gate keeps unauthenticated requests out. Without a user id
                // JavaScript would drop the undefined member, leaving `{}`.
                None => Ok(Some(json!({}))),
            };
            async move { result }
        })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking handler cannot leave the data half-updated in a way that matters to a mock,
    // so a poisoned lock is used as is.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authenticate_maps_tokens() {
        let user = authenticate(&json!({"accessToken": "good-42"}));
        assert_eq!(
            user,
            AuthDecision::user(42)
                .with_claims(json!(["user"]))
                .with_locals(json!({"displayName": "User 42"}))
        );
        let admin = authenticate(&json!({"accessToken": "good-admin"}));
        assert_eq!(
            admin,
            AuthDecision::user("admin")
                .with_claims(json!(["user", "admin"]))
                .with_locals(json!({"displayName": "User admin"}))
        );
        assert_eq!(
            authenticate(&json!({"accessToken": "expired"})),
            AuthDecision::reject("EXPIRED_ACCESS_TOKEN")
        );
        assert_eq!(authenticate(&Value::Null), AuthDecision::unauthenticated());
        assert_eq!(
            authenticate(&json!({"accessToken": "good-"})),
            AuthDecision::unauthenticated()
        );
    }

    #[test]
    fn user_zero_is_a_number() {
        let AuthDecision::User { user_id, .. } = authenticate(&json!({"accessToken": "good-0"})) else {
            panic!("good-0 must be accepted as a user");
        };
        assert_eq!(user_id, UserId::from(0));
    }

    #[test]
    fn owners_compare_strictly() {
        let product = Product {
            id: 4,
            name: "Pear".into(),
            price: json!(1),
            owner: Some(UserId::from(7)),
        };
        assert!(is_owner(&product, Some(&UserId::from(7))));
        assert!(!is_owner(&product, Some(&UserId::from("7"))));
        assert!(!is_owner(&product, None));
    }

    #[test]
    fn not_found_renders_undefined() {
        assert_eq!(
            not_found("note", None),
            RouteError::new("NOT_FOUND", "note undefined does not exist")
        );
    }
}
