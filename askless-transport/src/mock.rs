//! mockall mocks of the transport traits, for unit tests of code that consumes
//! a transport. Enabled by the `mock` cargo feature.
//!
//! A mocked [`Transport`] returns [`Connection`]s built with
//! [`Connection::new`] from a [`MockFrameSender`] and a [`MockFrameReceiver`].

#![allow(missing_docs)]

use async_trait::async_trait;
use mockall::mock;
use url::Url;

use crate::connection::{Connection, FrameReceiver, FrameSender, Transport};
use crate::error::TransportError;

mock! {
    /// A mock of [`Transport`].
    #[derive(Debug)]
    pub Transport {}

    #[async_trait]
    impl Transport for Transport {
        async fn connect(&self, url: &Url) -> Result<Connection, TransportError>;
    }
}

mock! {
    /// A mock of [`FrameSender`].
    #[derive(Debug)]
    pub FrameSender {}

    #[async_trait]
    impl FrameSender for FrameSender {
        async fn send(&mut self, text: String) -> Result<(), TransportError>;
        async fn close(&mut self, code: u16, reason: &str) -> Result<(), TransportError>;
    }
}

mock! {
    /// A mock of [`FrameReceiver`].
    #[derive(Debug)]
    pub FrameReceiver {}

    #[async_trait]
    impl FrameReceiver for FrameReceiver {
        async fn recv(&mut self) -> Result<String, TransportError>;
    }
}
