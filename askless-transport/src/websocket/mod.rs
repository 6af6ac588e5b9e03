//! The WebSocket transport on `tokio-tungstenite`: the client
//! ([`WebSocketTransport`]) and the listener ([`WebSocketListener`]) share one
//! implementation of the frame halves.

mod client;
mod frames;
mod server;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::error::TransportError;

pub use client::WebSocketTransport;
pub use server::WebSocketListener;

/// A byte stream that a WebSocket can run over: plain TCP or TLS.
pub(crate) trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A boxed [`Io`], so that plain and TLS connections share one type.
pub(crate) type BoxedIo = Box<dyn Io>;

/// Sizes that configure tungstenite for one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FrameLimits {
    pub(crate) max_message_size: usize,
    pub(crate) max_frame_size: usize,
    pub(crate) read_buffer_size: usize,
    pub(crate) write_buffer_size: usize,
}

impl FrameLimits {
    /// Checks that every size is at least one byte. tungstenite reads into a
    /// buffer of `read_buffer_size` bytes, so a zero buffer could never read.
    pub(crate) fn validate(&self) -> Result<(), TransportError> {
        let sizes = [
            ("max_message_size", self.max_message_size),
            ("max_frame_size", self.max_frame_size),
            ("read_buffer_size", self.read_buffer_size),
        ];
        for (option, value) in sizes {
            if value == 0 {
                return Err(TransportError::InvalidOption {
                    option,
                    reason: "the size is 0 bytes; use at least 1 byte or keep the default".to_owned(),
                    source: None,
                });
            }
        }
        Ok(())
    }

    /// Builds the tungstenite configuration for these limits.
    pub(crate) fn tungstenite_config(&self) -> WebSocketConfig {
        // tungstenite requires the maximum write buffer to exceed the write
        // buffer; the write buffer only grows past its target when a write fails.
        let max_write_buffer = self
            .write_buffer_size
            .saturating_add(self.max_message_size)
            .saturating_add(1024);
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_size)
            .write_buffer_size(self.write_buffer_size)
            .max_write_buffer_size(max_write_buffer)
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_frame_size))
    }
}
