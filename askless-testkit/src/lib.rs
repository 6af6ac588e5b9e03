//! Placeholder: this crate is filled in by its own change.

pub mod calls;
