//! Audio and video calls between Askless users.
//!
//! An Askless server relays the signalling of one-to-one WebRTC calls between authenticated
//! users over ordinary Askless requests on internal routes. Media goes peer to peer and never
//! through the server. This crate is the Rust side of those calls, built to interoperate with
//! the reference Flutter client:
//!
//! - [`CallClient::request_call_to_user`] sends an SDP offer and returns an [`OutgoingCall`]
//!   whose [`response`](OutgoingCall::response) resolves to accepted (with a [`LiveCall`]),
//!   rejected, or failed. Dropping the handle before the answer cancels the request.
//! - [`CallClient::incoming_calls`] is a stream of [`ReceivingCall`]s to accept or reject.
//! - A [`LiveCall`] delivers the peer's tracks as RTP packets, reports the peer's signalling
//!   connection, and closes from either side.
//!
//! # Status
//!
//! Finished and tested: the media side on the `webrtc` crate (0.21.1), the caller and callee
//! state machines, the [`CallSignalling`] trait they use, [`AsklessCallSignalling`] (that trait
//! over an authenticated `askless-client` connection), and [`MemorySignallingHub`], an
//! in-memory copy of the server's call routes. The tests run two peers in one process, both
//! through the hub and through `askless-client` against the mock server of `askless-testkit`.
//!
//! Not done yet: no call was tried against the Node.js Askless server or a Flutter peer, so
//! interoperability rests on the recorded frames of the reference server and on the SDP the
//! `webrtc` crate produces. Only Opus audio and VP8 video tracks can be sent, and there is no
//! renegotiation (adding or removing a track during a call).
//!
//! Known limit: a new call between the same two users made within about one ping interval of a
//! hang-up can end at once. After a hang-up the server keeps both users' listen-for-a-call
//! listeners until a ping omits them, and removing them cleans up the call state of the pair,
//! which stops the listeners of the new call too. The mock server of `askless-testkit`, which
//! follows the call routes of the reference server, behaves this way; the sequential calls test
//! waits for the server to drop those listeners before each call.
//!
//! # Network behaviour
//!
//! - No STUN or TURN server is used unless the application returns one from
//!   [`CallOptions::parameters`], called once per call with the remote user id. The
//!   reference client defaults to public STUN servers; this crate contacts no third party
//!   unless told to.
//! - Multicast DNS candidates are neither gathered nor resolved, so no multicast query
//!   leaves the machine.
//! - The offer and the answer are sent once ICE gathering completes, so they carry every
//!   candidate: the reference clients do not trickle candidates. The caller also sends its
//!   candidates once through the ICE-candidate-list route after the answer, as the reference
//!   caller does; the callee never sends any. Candidates that arrive before the remote
//!   description is set are kept and applied afterwards.
//! - [`CallOptions::loopback`] keeps every socket and candidate on 127.0.0.1, for tests.
//!
//! The media engine is not behind a cargo feature: every public type of the crate drives or
//! carries WebRTC media, so a build without it would have nothing to offer.
//!
//! # Example
//!
//! Two users in one process call each other through the in-memory signalling hub, with media on
//! 127.0.0.1:
//!
//! ```
//! use std::sync::Arc;
//!
//! use askless_webrtc::{CallClient, CallOptions, CallResponse, LocalMedia, MemorySignallingHub};
//! use futures::StreamExt;
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), askless_webrtc::CallError> {
//! let hub = MemorySignallingHub::new();
//! let alice = CallClient::new(Arc::new(hub.connect(1)), CallOptions::loopback());
//! let bob = CallClient::new(Arc::new(hub.connect(2)), CallOptions::loopback());
//!
//! let mut incoming = bob.incoming_calls().await?;
//! let request = alice.request_call_to_user(2.into(), LocalMedia::audio_and_video()?, Default::default())?;
//! let receiving = incoming.next().await.expect("a call");
//! let bob_call = receiving.accept(LocalMedia::audio_and_video()?, Default::default()).await?;
//! let CallResponse::Accepted { call, .. } = request.response().await else {
//!     panic!("bob accepted the call");
//! };
//! call.close().await;
//! # drop(bob_call);
//! # Ok(())
//! # }
//! ```

mod askless;
mod client;
mod error;
mod incoming;
mod live;
mod media;
mod memory;
mod options;
mod outgoing;
mod peer;
mod signalling;

pub use askless::AsklessCallSignalling;
pub use client::CallClient;
pub use error::CallError;
pub use incoming::{IncomingCalls, ReceivingCall};
pub use live::{CloseReason, LiveCall, LiveCallEvent};
pub use media::{LocalMedia, LocalTrack, MediaKind, MediaStats, RemoteTrack, RtpPacket, SyntheticMedia};
pub use memory::{MemorySignalling, MemorySignallingHub};
pub use options::{CallOptions, CallParameters, CallParametersFn, IceServer, IceTransportPolicy};
pub use outgoing::{CallResponse, OutgoingCall};
pub use signalling::{CallSignalling, SignalStream, SignallingError};
