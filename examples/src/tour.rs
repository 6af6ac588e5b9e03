//! A short tour of the client API. The README shows the same code; this copy is compiled and run
//! as a doctest, so the README's example stays true.
//!
//! ```
//! use askless_client::{AsklessClient, ErrorKind};
//! use askless_testkit::MockServer;
//! use askless_testkit::route_sets::{self, DemoOptions};
//! use futures::StreamExt as _;
//! use serde_json::json;
//!
//! #[tokio::main]
//! async fn main() -> Result<(), askless_client::Error> {
//!     // A mock server with the routes of the Askless example servers. Use your server's URL.
//!     let server = MockServer::start().await;
//!     let _timers = route_sets::install_demo(&server, DemoOptions::default());
//!
//!     // Connect: returns once the connection is configured.
//!     let client = AsklessClient::builder(server.url()).connect().await?;
//!     println!("status: {}", client.status());
//!     let _status_printer = client.on_status_change(|status| println!("status: {status}"));
//!
//!     // Read once.
//!     let params = json!({"search": "", "reversed": false});
//!     let products = client.read("product-list", &params).await?;
//!     println!("products: {:?}", products.value());
//!
//!     // Stream: the current value first, then a new value after each change.
//!     let mut live_products = client.read_stream("product-list", &params).await?;
//!
//!     // Errors are typed: a rejected credential is ErrorKind::Credential.
//!     let rejected = client
//!         .authenticate(json!({"Authorization": "Bearer wrong"}))
//!         .await
//!         .unwrap_err();
//!     assert_eq!(rejected.kind(), ErrorKind::Credential);
//!     println!("{rejected}");
//!
//!     // Authenticate, then create.
//!     let user = client.authenticate(json!({"Authorization": "Bearer abcd"})).await?;
//!     println!("signed in as user {:?}", user.user_id);
//!     let mouse = json!({"id": null, "name": "Mouse", "price": 15});
//!     let created = client.create("product", mouse, ()).await?;
//!     println!("created {:?}", created.value());
//!
//!     // The stream receives the new product. Like the Askless server, the mock holds pushes
//!     // back until it is 4 s old, so here the update takes up to 4 s.
//!     while let Some(list) = live_products.next().await {
//!         let list = list?;
//!         println!("live: {list}");
//!         if list.as_array().is_some_and(|products| !products.is_empty()) {
//!             break;
//!         }
//!     }
//!
//!     client.close().await;
//!     Ok(())
//! }
//! ```
