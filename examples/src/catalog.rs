//! The catalog app: a signed-in user adds and removes products while the product list streams,
//! and a user without permission is refused.
//!
//! It sends the Flutter app's requests. It opens two streams of `product-list`, with params
//! `{"search": "", "reversed": false}` and the same with `reversed: true`. It never sends `null`
//! params, because the catalog example server exits on them. It authenticates with
//! `{"Authorization": "Bearer abcd"}`, creates on `product` with the body
//! `{"id": null, "name", "price"}` and deletes on `product` with the params `{"id"}`. A second
//! client signs in with the rejected credential `"Bearer wrong"` and then tries to add a product.
//!
//! The server may push the same list more than once (it re-pushes every stream after an
//! authentication) and adds a product by itself every 20 s, so the app waits for the change it
//! made instead of counting pushes.

use std::time::Duration;

use anyhow::Context as _;
use askless_client::{AsklessClient, ErrorKind, ReadStream};
use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::{Console, describe_error, print_status_changes};

/// The route that lists (and streams) the products.
pub const LIST_ROUTE: &str = "product-list";
/// The route that creates and deletes one product.
pub const PRODUCT_ROUTE: &str = "product";
/// The credential the app signs in with: user 1 of the catalog example server.
pub const OWNER_AUTHORIZATION: &str = "Bearer abcd";
/// A credential the catalog example server rejects with `INVALID_CREDENTIAL`.
pub const WRONG_AUTHORIZATION: &str = "Bearer wrong";

/// The products the app adds, as name and price.
const NEW_PRODUCTS: [(&str, i64); 2] = [("Keyboard", 30), ("Mouse", 15)];

/// How long the app waits for a list update after a change.
const UPDATE_WAIT: Duration = Duration::from_secs(10);

/// The outcome of a catalog run, for tests and callers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CatalogReport {
    /// Ids of the products it added, in order.
    pub added: Vec<i64>,
    /// Ids of the products it removed.
    pub removed: Vec<i64>,
    /// The errors the user without permission received, in plain words.
    pub rejections: Vec<String>,
    /// The last product list it received, oldest product first.
    pub final_list: Value,
}

/// One stream of the product list, with the last list printed.
struct ListView {
    label: &'static str,
    stream: ReadStream,
    last_shown: Option<Value>,
}

/// Runs the catalog app against `url`, printing each step, and returns what it did.
///
/// Fails when a connection fails, when the signed-in user's sign-in, create or delete fails (the
/// error is printed in plain words first), or when a list update does not arrive within 10 s.
/// The rejections of the user without permission are expected and printed, not returned as errors.
pub async fn run(url: &str, console: &Console) -> anyhow::Result<CatalogReport> {
    console.line(format!("connecting to {url}"));
    let client = AsklessClient::builder(url)
        .connect()
        .await
        .context("could not connect")?;
    let status = print_status_changes(&client, console, "");
    console.line("connected");

    let outcome = manage_products(&client, console).await;
    drop(status);
    client.close().await;
    let mut report = outcome?;

    report.rejections = show_rejections(url, console).await?;
    console.line("done");
    Ok(report)
}

/// Streams the lists, signs in and adds then removes products.
async fn manage_products(client: &AsklessClient, console: &Console) -> anyhow::Result<CatalogReport> {
    let mut list = ListView::open(client, "products", false).await?;
    let mut newest_first = ListView::open(client, "newest first", true).await?;
    list.wait_until(console, |_| true).await?;
    newest_first.wait_until(console, |_| true).await?;

    console.line("signing in with the owner's credential");
    let authorization = json!({ "Authorization": OWNER_AUTHORIZATION });
    let signed_in = client.authenticate(authorization).await;
    match signed_in {
        Ok(authenticated) => match authenticated.user_id {
            Some(user_id) => console.line(format!("signed in as user {user_id}")),
            None => console.line("the server accepted the credential without a user"),
        },
        Err(error) => {
            console.line(format!("error: {}", describe_error(&error)));
            return Err(error).context("signing in failed");
        }
    }

    let mut report = CatalogReport::default();
    for (name, price) in NEW_PRODUCTS {
        console.line(format!("adding {name} at price {price}"));
        let body = json!({ "id": null, "name": name, "price": price });
        let output = client.create(PRODUCT_ROUTE, body, ()).await;
        let product = match output {
            Ok(output) => output.into_value().unwrap_or(Value::Null),
            Err(error) => {
                console.line(format!("error: {}", describe_error(&error)));
                return Err(error).with_context(|| format!("adding {name} failed"));
            }
        };
        let id = product_id(&product).with_context(|| format!("the server answered {product} for {name}"))?;
        console.line(format!("added {}", describe_product(&product)));
        list.wait_until(console, |products| contains_id(products, id))
            .await?;
        newest_first
            .wait_until(console, |products| contains_id(products, id))
            .await?;
        report.added.push(id);
    }

    if let Some(&id) = report.added.first() {
        console.line(format!("removing the product with id {id}"));
        match client.delete(PRODUCT_ROUTE, json!({ "id": id })).await {
            Ok(output) => {
                let removed = output.into_value().unwrap_or(Value::Null);
                console.line(format!("removed {}", describe_product(&removed)));
            }
            Err(error) => {
                console.line(format!("error: {}", describe_error(&error)));
                return Err(error).with_context(|| format!("removing the product with id {id} failed"));
            }
        }
        list.wait_until(console, |products| !contains_id(products, id))
            .await?;
        newest_first
            .wait_until(console, |products| !contains_id(products, id))
            .await?;
        report.removed.push(id);
    }
    report.final_list = list.last_shown.take().unwrap_or(Value::Null);
    Ok(report)
}

/// Connects a second client that signs in with a rejected credential and then tries to add a
/// product, and returns both rejections in plain words.
async fn show_rejections(url: &str, console: &Console) -> anyhow::Result<Vec<String>> {
    console.line("[visitor] connecting");
    let visitor = AsklessClient::builder(url)
        .connect()
        .await
        .context("the visitor could not connect")?;
    let mut rejections = Vec::new();

    console.line("[visitor] signing in with a wrong credential");
    match visitor
        .authenticate(json!({ "Authorization": WRONG_AUTHORIZATION }))
        .await
    {
        Ok(_) => console.line("[visitor] unexpected: the server accepted the wrong credential"),
        Err(error) => {
            let message = describe_error(&error);
            console.line(format!("[visitor] error: {message}"));
            rejections.push(message);
        }
    }

    console.line("[visitor] adding a product without being signed in");
    let body = json!({ "id": null, "name": "Intruder", "price": 0 });
    match visitor.create(PRODUCT_ROUTE, body, ()).await {
        Ok(output) => console.line(format!(
            "[visitor] unexpected: the server added {}",
            describe_product(output.value().unwrap_or(&Value::Null))
        )),
        Err(error) if error.kind() == ErrorKind::PendingAuthentication || error.is_server() => {
            let message = describe_error(&error);
            console.line(format!("[visitor] error: {message}"));
            rejections.push(message);
        }
        Err(error) => {
            console.line(format!("[visitor] error: {}", describe_error(&error)));
            visitor.close().await;
            return Err(error).context("the visitor's create failed for another reason than permission");
        }
    }
    visitor.close().await;
    Ok(rejections)
}

impl ListView {
    async fn open(client: &AsklessClient, label: &'static str, reversed: bool) -> anyhow::Result<Self> {
        let params = json!({ "search": "", "reversed": reversed });
        let stream = client.read_stream(LIST_ROUTE, params).await?;
        Ok(ListView {
            label,
            stream,
            last_shown: None,
        })
    }

    /// Reads lists until one satisfies `done`, printing each list that differs from the last one
    /// printed.
    async fn wait_until(&mut self, console: &Console, done: impl Fn(&Value) -> bool) -> anyhow::Result<()> {
        if self.last_shown.as_ref().is_some_and(&done) {
            return Ok(());
        }
        loop {
            let products = match tokio::time::timeout(UPDATE_WAIT, self.stream.next()).await {
                Ok(Some(Ok(products))) => products,
                Ok(Some(Err(error))) => {
                    console.line(format!("error: {}", describe_error(&error)));
                    return Err(error).context("the product list stream failed");
                }
                Ok(None) => anyhow::bail!("the server ended the product list stream"),
                Err(_) => anyhow::bail!("the product list did not change as expected within {UPDATE_WAIT:?}"),
            };
            if self.last_shown.as_ref() != Some(&products) {
                console.line(format!("{}: {}", self.label, describe_list(&products)));
                self.last_shown = Some(products.clone());
            }
            if done(&products) {
                return Ok(());
            }
        }
    }
}

fn product_id(product: &Value) -> Option<i64> {
    product.get("id").and_then(Value::as_i64)
}

fn contains_id(products: &Value, id: i64) -> bool {
    products
        .as_array()
        .is_some_and(|products| products.iter().any(|product| product_id(product) == Some(id)))
}

fn describe_product(product: &Value) -> String {
    let name = product.get("name").and_then(Value::as_str).unwrap_or("(no name)");
    let id = product.get("id").map_or_else(|| "?".to_owned(), Value::to_string);
    let price = product
        .get("price")
        .map_or_else(|| "?".to_owned(), Value::to_string);
    format!("{name} (id {id}, price {price})")
}

fn describe_list(products: &Value) -> String {
    match products.as_array() {
        Some(products) if products.is_empty() => "(none)".to_owned(),
        Some(products) => products
            .iter()
            .map(describe_product)
            .collect::<Vec<_>>()
            .join(", "),
        None => products.to_string(),
    }
}
