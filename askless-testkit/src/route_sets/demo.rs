//! The routes of the three example servers of the Askless project (random-numbers,
//! simple-chat and catalog) on one mock, for the examples and for users without a Node.js
//! server. The internal call-signalling routes are always present as well.
//!
//! # random-numbers
//!
//! `generated-random-number` (READ, all users, params ignored): `{generatedAtTimestamp,
//! currentRandomNumber}`, a number from 0 to 1000 drawn every random-number interval (1 s by
//! default) and pushed to every listener. `generatedAtTimestamp` is in milliseconds since the
//! Unix epoch.
//!
//! # simple-chat
//!
//! Credential `{"myColor": "<color>"}`: authenticated as the string user id `<color>`, claims
//! `[]`.
//!
//! - `message` (READ, authenticated users): the whole history, a list of
//!   `{text, origin, createdAtTimestamp}`, oldest first. Pushes after the first one are deltas:
//!   a one-item list that the client appends.
//! - Right after a listen's first value, every `message` listener of the same user receives
//!   `[{"text": "server said: Welcome to the simple-chat-ts screen!", "origin": <user>, …}]`.
//! - `message` (CREATE, authenticated users): body `{text}`. The response output is the stored message,
//!   and every authenticated listener then receives `[message]`.
//! - When a listener is removed, every listener of another user receives
//!   `[{"text": "server said: <user> has been disconnected from the chat and didn't connect again",
//!   "origin": <the receiver's user>, …}]`, where `<user>` is `null` for a refused listen.
//!
//! # catalog
//!
//! Credential `{"Authorization": "Bearer abcd" | "Bearer efgh" | "Bearer ijkl"}`: users 1, 2 and
//! 3 (numbers), claims `[]`. Any other non-null `Authorization` is rejected with
//! `INVALID_CREDENTIAL`; `{}` is accepted as an unauthenticated user.
//!
//! - `product-list` (READ, all users): params `{search?, reversed?}`. Products in creation order
//!   (reversed when `reversed` is truthy), each `{id, price, name}`; a non-empty `search` keeps
//!   the products whose name contains it (case-insensitive) or whose price, in decimal, contains
//!   it.
//! - `product` (CREATE, authenticated users): body `{id, name, price}`; `id` is ignored and the
//!   next id is assigned. Nothing is validated. Every `product-list` listener is pushed its list.
//! - `product` (DELETE, authenticated users): `params.id`. A missing or falsy id fails with
//!   `BAD_REQUEST` `Please, inform "id" field on params`. An unknown id is no error: like the
//!   example server, the mock removes the **last** product instead and answers `{}`.
//! - Every catalog-product interval (20 s by default) the server adds
//!   `Server Generated Product <n>` with price 100 and pushes the lists.
//!
//! # Deliberate differences from the example servers
//!
//! The example servers die on some inputs that their Flutter apps never send. The demo route set
//! answers them instead:
//!
//! | input | example server | demo route set |
//! | --- | --- | --- |
//! | `product-list` read or listen with `params` that is not an object (such as `null`) | process exits | `BAD_REQUEST`, `params must be an object such as {"search": "", "reversed": false}` |
//! | `product` create with a body that is not an object | process exits | `BAD_REQUEST`, `body must be an object such as {"name": "Mouse", "price": 15}` |
//! | `message` create with a body that is not an object | process exits | `BAD_REQUEST`, `body must be an object such as {"text": "Hi"}` |
//! | authenticate with a credential that is not an object, or missing | process exits (catalog, simple-chat) | rejected with `INVALID_CREDENTIAL` |
//! | authenticate with `myColor` that is not a string | process exits | rejected with `INVALID_CREDENTIAL` |
//!
//! The random-numbers server accepts every authentication as unauthenticated; here a credential
//! with `myColor` or `Authorization` follows the other two servers, and `{}` is still accepted as
//! unauthenticated. The three servers advertise different `waitForAuthenticationTimeoutInMs`
//! values (4000, 4000 and 0); the demo advertises the library default, 4000.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use askless_protocol::{ListenId, UserId};
use rand::Rng as _;
use serde_json::{Map, Value, json};

use super::js;
use crate::authentication::AuthDecision;
use crate::config::MockConfig;
use crate::notify::Notify;
use crate::route::{Route, RouteContext, RouteError, RouteResult};

/// Route of the random-numbers example.
pub const RANDOM_NUMBER_ROUTE: &str = "generated-random-number";
/// Route of the simple-chat example.
pub const MESSAGE_ROUTE: &str = "message";
/// READ route of the catalog example.
pub const PRODUCT_LIST_ROUTE: &str = "product-list";
/// CREATE and DELETE route of the catalog example.
pub const PRODUCT_ROUTE: &str = "product";

/// Settings of the demo route set.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DemoOptions {
    /// Period at which a new random number is drawn and pushed. `None` keeps the first number.
    /// Default: `Some(1000 ms)`.
    pub random_number_interval: Option<Duration>,
    /// Period at which the catalog adds a server-generated product. `None` disables it.
    /// Default: `Some(20000 ms)`.
    pub catalog_product_interval: Option<Duration>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            random_number_interval: Some(Duration::from_millis(1000)),
            catalog_product_interval: Some(Duration::from_millis(20_000)),
        }
    }
}

/// Returns the mock configuration of the demo server: the Askless 2.0.3 defaults.
pub fn config() -> MockConfig {
    MockConfig::default()
}

/// Decides an authentication for any of the three examples' credentials.
pub fn authenticate(credential: &Value) -> AuthDecision {
    let Some(credential) = credential.as_object() else {
        tracing::debug!("credential is not an object; rejected with INVALID_CREDENTIAL");
        return AuthDecision::reject("INVALID_CREDENTIAL");
    };
    if let Some(color) = credential.get("myColor") {
        return match color.as_str() {
            Some(color) => AuthDecision::user(color),
            None => {
                tracing::debug!("myColor is not a string; rejected with INVALID_CREDENTIAL");
                AuthDecision::reject("INVALID_CREDENTIAL")
            }
        };
    }
    match credential.get("Authorization") {
        None | Some(Value::Null) => AuthDecision::unauthenticated(),
        Some(authorization) => match authorization.as_str() {
            Some("Bearer abcd") => AuthDecision::user(1),
            Some("Bearer efgh") => AuthDecision::user(2),
            Some("Bearer ijkl") => AuthDecision::user(3),
            _ => AuthDecision::reject_without_code(),
        },
    }
}

/// A catalog product: `price` and `name` are stored as the client sent them, absent included.
#[derive(Debug, Clone)]
struct CatalogProduct {
    id: i64,
    price: Option<Value>,
    name: Option<Value>,
}

impl CatalogProduct {
    fn output(&self) -> Value {
        let mut output = Map::new();
        output.insert("id".into(), json!(self.id));
        if let Some(price) = &self.price {
            output.insert("price".into(), price.clone());
        }
        if let Some(name) = &self.name {
            output.insert("name".into(), name.clone());
        }
        Value::Object(output)
    }

    fn matches(&self, search: &str) -> bool {
        let search = search.to_lowercase();
        let name_matches = self
            .name
            .as_ref()
            .and_then(Value::as_str)
            .is_some_and(|name| name.to_lowercase().contains(&search));
        let price_matches = self
            .price
            .as_ref()
            .and_then(Value::as_f64)
            .is_some_and(|price| js::number_value(price).to_string().contains(&search));
        name_matches || price_matches
    }
}

#[derive(Debug)]
struct DemoData {
    random_number: Value,
    messages: Vec<Value>,
    /// Chat listeners with the user they listened as.
    chat_listeners: Vec<(ListenId, Option<UserId>)>,
    products: Vec<CatalogProduct>,
    next_product_id: i64,
    generated_products: u64,
}

/// The demo route set: its routes, its data and its two timers.
#[derive(Debug, Clone)]
pub struct DemoRoutes {
    data: Arc<Mutex<DemoData>>,
    options: DemoOptions,
}

impl DemoRoutes {
    /// Creates the route set with a first random number, no messages and no products.
    pub fn new(options: DemoOptions) -> Self {
        Self {
            data: Arc::new(Mutex::new(DemoData {
                random_number: draw_random_number(),
                messages: Vec::new(),
                chat_listeners: Vec::new(),
                products: Vec::new(),
                next_product_id: 1,
                generated_products: 0,
            })),
            options,
        }
    }

    /// Returns the options the route set was built with.
    pub fn options(&self) -> &DemoOptions {
        &self.options
    }

    fn data(&self) -> MutexGuard<'_, DemoData> {
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Draws a new random number, as one tick of the random-number timer does. The caller
    /// notifies the listeners of [`RANDOM_NUMBER_ROUTE`].
    pub fn draw_random_number(&self) {
        self.data().random_number = draw_random_number();
    }

    /// Adds the next `Server Generated Product <n>`, as one tick of the catalog timer does. The
    /// caller notifies the listeners of [`PRODUCT_LIST_ROUTE`].
    pub fn add_generated_product(&self) {
        let mut data = self.data();
        data.generated_products += 1;
        let product = CatalogProduct {
            id: data.next_product_id,
            price: Some(json!(100)),
            name: Some(json!(format!(
                "Server Generated Product {}",
                data.generated_products
            ))),
        };
        data.next_product_id += 1;
        data.products.push(product);
    }

    /// Returns every route of the three examples.
    pub fn routes(&self) -> Vec<Route> {
        vec![
            self.random_number(),
            self.message_list(),
            self.message_create(),
            self.product_list(),
            self.product_create(),
            self.product_delete(),
        ]
    }

    fn random_number(&self) -> Route {
        let this = self.clone();
        Route::read(RANDOM_NUMBER_ROUTE)
            .for_all_users()
            .handler(move |_ctx| {
                let value = this.data().random_number.clone();
                async move { Ok(Some(value)) }
            })
    }

    fn message_list(&self) -> Route {
        let history = self.clone();
        let started = self.clone();
        let stopped = self.clone();
        Route::read(MESSAGE_ROUTE)
            .for_authenticated_users()
            .handler(move |_ctx| {
                let messages = history.data().messages.clone();
                async move { Ok(Some(Value::Array(messages))) }
            })
            .on_start_listening(move |info| {
                started
                    .data()
                    .chat_listeners
                    .push((info.listen_id.clone(), info.user_id.clone()));
                let Some(user) = info.user_id.clone() else {
                    return;
                };
                let welcome = chat_notice("server said: Welcome to the simple-chat-ts screen!", &user);
                let same_user = user.clone();
                info.server.notify_changes(
                    MESSAGE_ROUTE,
                    Notify::all()
                        .where_(move |target| {
                            target
                                .user_id
                                .as_ref()
                                .is_some_and(|id| id.loosely_equals(&same_user))
                        })
                        .override_value(json!([welcome])),
                );
            })
            .on_stop_listening(move |info| {
                let receivers: Vec<UserId> = {
                    let mut data = stopped.data();
                    data.chat_listeners
                        .retain(|(listen_id, _)| *listen_id != info.listen_id);
                    let mut receivers: Vec<UserId> = Vec::new();
                    for user in data.chat_listeners.iter().filter_map(|(_, user)| user.as_ref()) {
                        let leaving = info.user_id.as_ref().is_some_and(|id| id.loosely_equals(user));
                        if !leaving && !receivers.iter().any(|known| known.loosely_equals(user)) {
                            receivers.push(user.clone());
                        }
                    }
                    receivers
                };
                let leaving = info
                    .user_id
                    .as_ref()
                    .map_or_else(|| "null".to_owned(), UserId::to_string);
                let text = format!(
                    "server said: {leaving} has been disconnected from the chat and didn't connect again"
                );
                for receiver in receivers {
                    let notice = chat_notice(&text, &receiver);
                    info.server.notify_changes(
                        MESSAGE_ROUTE,
                        Notify::all()
                            .where_(move |target| {
                                target
                                    .user_id
                                    .as_ref()
                                    .is_some_and(|id| id.loosely_equals(&receiver))
                            })
                            .override_value(json!([notice])),
                    );
                }
            })
    }

    fn message_create(&self) -> Route {
        let this = self.clone();
        Route::create(MESSAGE_ROUTE)
            .for_authenticated_users()
            .handler(move |ctx| {
                let result = this.create_message(&ctx);
                async move { result }
            })
    }

    fn create_message(&self, ctx: &RouteContext) -> RouteResult {
        let Some(body) = ctx.body.as_object() else {
            return Err(bad_request("body must be an object such as {\"text\": \"Hi\"}"));
        };
        let mut message = Map::new();
        if let Some(text) = body.get("text") {
            message.insert("text".into(), text.clone());
        }
        message.insert(
            "origin".into(),
            ctx.user_id.as_ref().map_or(Value::Null, UserId::to_value),
        );
        message.insert("createdAtTimestamp".into(), json!(now_millis()));
        let message = Value::Object(message);
        self.data().messages.push(message.clone());
        ctx.server.notify_changes(
            MESSAGE_ROUTE,
            Notify::all()
                .where_(|target| target.user_id.is_some())
                .override_value(json!([message.clone()])),
        );
        Ok(Some(message))
    }

    fn product_list(&self) -> Route {
        let this = self.clone();
        Route::read(PRODUCT_LIST_ROUTE)
            .for_all_users()
            .handler(move |ctx| {
                let result = this.list_products(&ctx.params);
                async move { result }
            })
    }

    fn list_products(&self, params: &Value) -> RouteResult {
        let Some(params) = params.as_object() else {
            return Err(bad_request(
                "params must be an object such as {\"search\": \"\", \"reversed\": false}",
            ));
        };
        let search = params
            .get("search")
            .and_then(Value::as_str)
            .filter(|search| !search.is_empty());
        let mut list: Vec<Value> = self
            .data()
            .products
            .iter()
            .filter(|product| search.is_none_or(|search| product.matches(search)))
            .map(CatalogProduct::output)
            .collect();
        if js::is_truthy(params.get("reversed")) {
            list.reverse();
        }
        Ok(Some(Value::Array(list)))
    }

    fn product_create(&self) -> Route {
        let this = self.clone();
        Route::create(PRODUCT_ROUTE)
            .for_authenticated_users()
            .handler(move |ctx| {
                let result = this.create_product(&ctx);
                async move { result }
            })
    }

    fn create_product(&self, ctx: &RouteContext) -> RouteResult {
        let Some(body) = ctx.body.as_object() else {
            return Err(bad_request(
                "body must be an object such as {\"name\": \"Mouse\", \"price\": 15}",
            ));
        };
        let product = {
            let mut data = self.data();
            let product = CatalogProduct {
                id: data.next_product_id,
                price: body.get("price").cloned(),
                name: body.get("name").cloned(),
            };
            data.next_product_id += 1;
            data.products.push(product.clone());
            product
        };
        ctx.server.notify_changes(PRODUCT_LIST_ROUTE, Notify::all());
        Ok(Some(product.output()))
    }

    fn product_delete(&self) -> Route {
        let this = self.clone();
        Route::delete(PRODUCT_ROUTE)
            .for_authenticated_users()
            .handler(move |ctx| {
                let result = this.delete_product(&ctx);
                async move { result }
            })
    }

    fn delete_product(&self, ctx: &RouteContext) -> RouteResult {
        let id = ctx.params.get("id");
        if !js::is_truthy(id) {
            return Err(bad_request("Please, inform \"id\" field on params"));
        }
        let wanted = js::to_number(id);
        let removed = {
            let mut data = self.data();
            match data
                .products
                .iter()
                .position(|product| (product.id as f64) == wanted)
            {
                Some(index) => Some(data.products.remove(index)),
                None => {
                    // The example server removes the last product when the id is unknown.
                    tracing::debug!(id = %wanted, "unknown product id; removing the last product");
                    data.products.pop();
                    None
                }
            }
        };
        ctx.server.notify_changes(PRODUCT_LIST_ROUTE, Notify::all());
        Ok(Some(
            removed.map_or_else(|| json!({}), |product| product.output()),
        ))
    }
}

fn bad_request(description: &str) -> RouteError {
    RouteError::new("BAD_REQUEST", description)
}

fn chat_notice(text: &str, origin: &UserId) -> Value {
    json!({"text": text, "origin": origin.to_value(), "createdAtTimestamp": now_millis()})
}

fn draw_random_number() -> Value {
    let number: u16 = rand::rng().random_range(0..=1000);
    json!({"generatedAtTimestamp": now_millis(), "currentRandomNumber": number})
}

fn now_millis() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
        u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authenticate_serves_three_credential_shapes() {
        assert_eq!(
            authenticate(&json!({"myColor": "blue"})),
            AuthDecision::user("blue")
        );
        assert_eq!(
            authenticate(&json!({"Authorization": "Bearer abcd"})),
            AuthDecision::user(1)
        );
        assert_eq!(
            authenticate(&json!({"Authorization": "Bearer efgh"})),
            AuthDecision::user(2)
        );
        assert_eq!(
            authenticate(&json!({"Authorization": "Bearer ijkl"})),
            AuthDecision::user(3)
        );
        assert_eq!(
            authenticate(&json!({"Authorization": "Bearer wrong"})),
            AuthDecision::reject_without_code()
        );
        assert_eq!(authenticate(&json!({})), AuthDecision::unauthenticated());
        assert_eq!(
            authenticate(&json!({"Authorization": null})),
            AuthDecision::unauthenticated()
        );
    }

    #[test]
    fn authenticate_rejects_what_kills_examples() {
        assert_eq!(
            authenticate(&Value::Null),
            AuthDecision::reject("INVALID_CREDENTIAL")
        );
        assert_eq!(
            authenticate(&json!({"myColor": 3})),
            AuthDecision::reject("INVALID_CREDENTIAL")
        );
    }

    #[test]
    fn product_search_matches_name_or_price() {
        let product = CatalogProduct {
            id: 1,
            price: Some(json!(30)),
            name: Some(json!("Keyboard")),
        };
        assert!(product.matches("KEY"));
        assert!(product.matches("3"));
        assert!(!product.matches("mouse"));
    }

    #[test]
    fn product_list_rejects_null_params() {
        let routes = DemoRoutes::new(DemoOptions::default());
        let error = routes.list_products(&Value::Null).unwrap_err();
        assert!(matches!(error, RouteError::Failed { code: Some(ref code), .. } if code == "BAD_REQUEST"));
    }

    #[test]
    fn product_list_filters_and_reverses() {
        let routes = DemoRoutes::new(DemoOptions::default());
        routes.add_generated_product();
        routes.add_generated_product();
        let list = routes
            .list_products(&json!({"search": "", "reversed": true}))
            .unwrap()
            .unwrap();
        assert_eq!(
            list,
            json!([
                {"id": 2, "price": 100, "name": "Server Generated Product 2"},
                {"id": 1, "price": 100, "name": "Server Generated Product 1"},
            ])
        );
        let filtered = routes
            .list_products(&json!({"search": "product 1"}))
            .unwrap()
            .unwrap();
        assert_eq!(filtered.as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn random_number_stays_in_range() {
        for _ in 0..100 {
            let value = draw_random_number();
            let number = value["currentRandomNumber"].as_u64().unwrap();
            assert!(number <= 1000, "{number} is out of range");
        }
    }
}
