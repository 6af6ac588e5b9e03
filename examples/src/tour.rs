//! The project README, included as this module's documentation. Its Rust code block, the short
//! tour of the API, compiles and runs as a doctest of this module, so the README cannot drift
//! from the API.
#![doc = include_str!("../../README.md")]
