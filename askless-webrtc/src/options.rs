//! Per-call WebRTC parameters and the options of a [`CallClient`](crate::CallClient).

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use askless_protocol::UserId;

use crate::error::CallError;

/// A STUN or TURN server.
///
/// `Debug` prints the URLs and whether a username and credential are set, never their values.
#[derive(Clone, PartialEq, Eq)]
pub struct IceServer {
    /// The server URLs, such as `stun:stun.example.org:3478` or
    /// `turn:turn.example.org:3478?transport=udp`. Schemes `stun`, `stuns`, `turn` and `turns`
    /// are accepted.
    pub urls: Vec<String>,
    /// The TURN username. Default: none.
    pub username: Option<String>,
    /// The TURN credential (password or token). Default: none.
    pub credential: Option<String>,
}

impl IceServer {
    /// Builds a STUN server entry without credentials.
    pub fn stun(url: impl Into<String>) -> Self {
        Self {
            urls: vec![url.into()],
            username: None,
            credential: None,
        }
    }

    /// Builds a TURN server entry with its username and credential.
    pub fn turn(url: impl Into<String>, username: impl Into<String>, credential: impl Into<String>) -> Self {
        Self {
            urls: vec![url.into()],
            username: Some(username.into()),
            credential: Some(credential.into()),
        }
    }

    /// Checks the URLs: each needs a known scheme, and a TURN URL needs a username and a
    /// credential.
    pub fn validate(&self) -> Result<(), CallError> {
        if self.urls.is_empty() {
            return Err(CallError::InvalidIceServer {
                url: String::new(),
                reason: "the server has no URL; give at least one stun: or turn: URL",
            });
        }
        for url in &self.urls {
            let scheme = url.split(':').next().unwrap_or_default();
            match scheme {
                "stun" | "stuns" => {}
                "turn" | "turns" => {
                    if self.username.is_none() || self.credential.is_none() {
                        return Err(CallError::InvalidIceServer {
                            url: url.clone(),
                            reason: "a TURN server needs a username and a credential",
                        });
                    }
                }
                _ => {
                    return Err(CallError::InvalidIceServer {
                        url: url.clone(),
                        reason: "unknown scheme; use stun:, stuns:, turn: or turns:",
                    });
                }
            }
        }
        Ok(())
    }

    pub(crate) fn to_rtc(&self) -> webrtc::peer_connection::RTCIceServer {
        webrtc::peer_connection::RTCIceServer {
            urls: self.urls.clone(),
            username: self.username.clone().unwrap_or_default(),
            credential: self.credential.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Debug for IceServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .field("has_username", &self.username.is_some())
            .field("has_credential", &self.credential.is_some())
            .finish()
    }
}

/// The ICE candidate types a call may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IceTransportPolicy {
    /// Host, server-reflexive and relay candidates. The default.
    #[default]
    All,
    /// Relay (TURN) candidates only, which hides the local addresses from the peer.
    Relay,
}

/// The WebRTC parameters of one call, chosen by the application for the remote user.
///
/// The default has no STUN or TURN server, so only host candidates are gathered and no third
/// party is ever contacted. The reference Flutter client defaults to two public STUN servers
/// instead; set [`ice_servers`](Self::ice_servers) to reach peers behind NAT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallParameters {
    /// STUN and TURN servers. Default: empty.
    pub ice_servers: Vec<IceServer>,
    /// The candidate types ICE may use. Default: [`IceTransportPolicy::All`].
    pub ice_transport_policy: IceTransportPolicy,
    /// Whether the caller's offer requests audio even when it sends none. Default: `true`,
    /// as the reference client's offer constraints do.
    pub receive_audio: bool,
    /// Whether the caller's offer requests video even when it sends none. Default: `true`,
    /// as the reference client's offer constraints do.
    pub receive_video: bool,
}

impl Default for CallParameters {
    fn default() -> Self {
        Self {
            ice_servers: Vec::new(),
            ice_transport_policy: IceTransportPolicy::All,
            receive_audio: true,
            receive_video: true,
        }
    }
}

/// The application callback that returns the WebRTC parameters of a call with a remote user.
pub type CallParametersFn = Arc<dyn Fn(&UserId) -> CallParameters + Send + Sync>;

/// Options of a [`CallClient`](crate::CallClient).
#[derive(Clone)]
pub struct CallOptions {
    /// Returns the parameters of each call, given the remote user id. Default: a function that
    /// returns [`CallParameters::default`] (no STUN or TURN server).
    pub parameters: CallParametersFn,
    /// Local UDP addresses the media sockets bind. A wildcard address such as `0.0.0.0:0` means
    /// every non-loopback interface of that family; port 0 picks an ephemeral port. Default:
    /// `[0.0.0.0:0]`.
    pub udp_bind_addresses: Vec<SocketAddr>,
    /// Whether host candidates on loopback addresses are gathered. Default: `false`.
    pub include_loopback_candidates: bool,
    /// How long to wait for ICE gathering to complete before sending an offer or answer with
    /// the candidates found so far. Default: 5 seconds.
    pub ice_gathering_timeout: Duration,
    /// Capacity of the packet queue of each remote track; when the application reads too
    /// slowly, newer packets are dropped and counted. Default: 256 packets.
    pub remote_packet_queue: usize,
}

impl CallOptions {
    /// Builds options that keep every socket and candidate on the IPv4 loopback interface,
    /// for tests and examples on one machine: binds `127.0.0.1:0` and gathers loopback
    /// candidates. The other options keep their defaults.
    pub fn loopback() -> Self {
        Self {
            udp_bind_addresses: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
            include_loopback_candidates: true,
            ..Self::default()
        }
    }

    /// Sets the callback that returns the parameters of each call.
    pub fn with_parameters(
        mut self,
        parameters: impl Fn(&UserId) -> CallParameters + Send + Sync + 'static,
    ) -> Self {
        self.parameters = Arc::new(parameters);
        self
    }
}

impl Default for CallOptions {
    fn default() -> Self {
        Self {
            parameters: Arc::new(|_| CallParameters::default()),
            udp_bind_addresses: vec![SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))],
            include_loopback_candidates: false,
            ice_gathering_timeout: Duration::from_secs(5),
            remote_packet_queue: 256,
        }
    }
}

impl fmt::Debug for CallOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallOptions")
            .field("udp_bind_addresses", &self.udp_bind_addresses)
            .field("include_loopback_candidates", &self.include_loopback_candidates)
            .field("ice_gathering_timeout", &self.ice_gathering_timeout)
            .field("remote_packet_queue", &self.remote_packet_queue)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_turn_credential() {
        let server = IceServer::turn("turn:turn.example.org:3478", "alice", "s3cr3t-token");
        let printed = format!("{server:?}");
        assert!(!printed.contains("s3cr3t-token"), "{printed}");
        assert!(!printed.contains("alice"), "{printed}");
        assert!(printed.contains("turn:turn.example.org:3478"), "{printed}");
    }

    #[test]
    fn turn_without_credential_is_invalid() {
        let server = IceServer {
            urls: vec!["turn:turn.example.org:3478".into()],
            username: Some("alice".into()),
            credential: None,
        };
        let error = server.validate().unwrap_err();
        assert!(error.to_string().contains("credential"), "{error}");
    }

    #[test]
    fn unknown_scheme_is_invalid() {
        let error = IceServer::stun("http://example.org").validate().unwrap_err();
        assert!(error.to_string().contains("http://example.org"), "{error}");
        assert!(IceServer::stun("stun:stun.example.org:3478").validate().is_ok());
    }

    #[test]
    fn defaults_have_no_ice_servers() {
        let options = CallOptions::default();
        let parameters = (options.parameters)(&UserId::from(1));
        assert!(parameters.ice_servers.is_empty());
        assert!(parameters.receive_audio);
        assert!(parameters.receive_video);
        let loopback = CallOptions::loopback();
        assert!(loopback.udp_bind_addresses[0].ip().is_loopback());
    }
}
