//! Replay of recorded transcripts against the mock server, shared by the fidelity and
//! capture tests.
#![allow(dead_code)]

pub(crate) mod compare;
pub(crate) mod driver;
pub(crate) mod transcript;
