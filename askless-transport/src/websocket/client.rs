//! The WebSocket client: DNS, TCP, TLS and the HTTP upgrade, each step mapped
//! to its own error kind.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use tokio::net::TcpStream;
use tokio::sync::OnceCell;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use url::{Host, Url};

use super::frames::{into_connection, map_ws_error};
use super::{BoxedIo, FrameLimits};
use crate::connection::{Connection, Transport, client_info};
use crate::error::{Direction, TransportError};
use crate::options::{TlsBackend, WebSocketOptions};
use crate::redact::RedactedUrl;
use crate::tls;

/// The default [`Transport`]: WebSocket over TCP (ws://) or TLS (wss://).
///
/// Cheap to share behind an `Arc`. The rustls configuration, including root
/// certificates, is built on the first wss:// connect and reused afterwards.
pub struct WebSocketTransport {
    options: WebSocketOptions,
    rustls_config: OnceCell<Arc<rustls::ClientConfig>>,
}

impl fmt::Debug for WebSocketTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebSocketTransport")
            .field("options", &self.options)
            .field("rustls_config_built", &self.rustls_config.initialized())
            .finish()
    }
}

impl Default for WebSocketTransport {
    fn default() -> Self {
        WebSocketTransport::new(WebSocketOptions::default())
    }
}

impl WebSocketTransport {
    /// Builds a transport that connects with `options`.
    pub fn new(options: WebSocketOptions) -> Self {
        WebSocketTransport {
            options,
            rustls_config: OnceCell::new(),
        }
    }

    /// Returns the options this transport connects with.
    pub fn options(&self) -> &WebSocketOptions {
        &self.options
    }

    fn limits(&self) -> FrameLimits {
        FrameLimits {
            max_message_size: self.options.max_message_size,
            max_frame_size: self.options.max_frame_size,
            read_buffer_size: self.options.read_buffer_size,
            write_buffer_size: self.options.write_buffer_size,
        }
    }

    async fn connect_inner(&self, target: &Target, url: &Url) -> Result<Connection, TransportError> {
        let tcp = connect_tcp(target).await?;
        let local_addr = tcp.local_addr().ok();
        let peer_addr = tcp.peer_addr().ok();
        let io = if target.tls {
            self.wrap_tls(&target.host_name, tcp).await?
        } else {
            Box::new(tcp) as BoxedIo
        };

        let request = self.upgrade_request(url)?;
        let limits = self.limits();
        let (stream, _response) =
            tokio_tungstenite::client_async_with_config(request, io, Some(limits.tungstenite_config()))
                .await
                .map_err(|error| map_upgrade_error(error, url))?;

        let mut info = client_info(url);
        info.local_addr = local_addr;
        info.peer_addr = peer_addr;
        tracing::debug!(url = %RedactedUrl::new(url), ?peer_addr, "WebSocket connection open");
        Ok(into_connection(stream, limits, info))
    }

    async fn wrap_tls(&self, host: &str, tcp: TcpStream) -> Result<BoxedIo, TransportError> {
        match self.options.tls_backend {
            TlsBackend::Rustls => {
                let config = self
                    .rustls_config
                    .get_or_try_init(|| async { tls::rustls_client_config(&self.options) })
                    .await?;
                tls::connect_rustls(config.clone(), host, tcp).await
            }
            #[cfg(feature = "native-tls")]
            TlsBackend::NativeTls => tls::connect_native_tls(&self.options, host, tcp).await,
        }
    }

    /// Builds the upgrade request: the URL without user-info, plus the extra headers.
    fn upgrade_request(&self, url: &Url) -> Result<Request, TransportError> {
        let mut without_user_info = url.clone();
        let _ = without_user_info.set_username("");
        let _ = without_user_info.set_password(None);
        without_user_info.set_fragment(None);
        let mut request =
            without_user_info
                .as_str()
                .into_client_request()
                .map_err(|_| TransportError::InvalidUrl {
                    url: RedactedUrl::new(url),
                    reason: "it cannot be used as an HTTP request target",
                })?;
        for header in &self.options.headers {
            request
                .headers_mut()
                .append(header.name().clone(), header.value().clone());
        }
        Ok(request)
    }
}

#[async_trait]
impl Transport for WebSocketTransport {
    /// Opens a WebSocket connection to a ws:// or wss:// URL.
    ///
    /// User-info in the URL is not sent; pass credentials in headers. The
    /// connect timeout bounds DNS, TCP connect, TLS and the upgrade together.
    async fn connect(&self, url: &Url) -> Result<Connection, TransportError> {
        let target = Target::parse(url)?;
        self.limits().validate()?;
        let timeout = self.options.connect_timeout;
        tracing::debug!(url = %RedactedUrl::new(url), ?timeout, tls = target.tls, "connecting");
        match tokio::time::timeout(timeout, self.connect_inner(&target, url)).await {
            Ok(result) => result,
            Err(_elapsed) => Err(TransportError::ConnectTimeout {
                url: RedactedUrl::new(url),
                timeout,
            }),
        }
    }
}

/// Host, port and TLS requirement of a ws:// or wss:// URL.
#[derive(Debug)]
struct Target {
    host: Host<String>,
    /// The host as TLS and DNS see it: a domain or an IP address without brackets.
    host_name: String,
    port: u16,
    tls: bool,
}

impl Target {
    fn parse(url: &Url) -> Result<Target, TransportError> {
        let invalid = |reason| TransportError::InvalidUrl {
            url: RedactedUrl::new(url),
            reason,
        };
        let tls = match url.scheme() {
            "ws" => false,
            "wss" => true,
            _ => return Err(invalid("the scheme must be ws or wss")),
        };
        let host = url
            .host()
            .ok_or_else(|| invalid("the URL has no host"))?
            .to_owned();
        let host_name = match &host {
            Host::Domain(domain) => domain.clone(),
            Host::Ipv4(address) => address.to_string(),
            Host::Ipv6(address) => address.to_string(),
        };
        if host_name.is_empty() {
            return Err(invalid("the URL has an empty host"));
        }
        let port = url
            .port_or_known_default()
            .ok_or_else(|| invalid("the URL has no port"))?;
        Ok(Target {
            host,
            host_name,
            port,
            tls,
        })
    }

    fn display(&self) -> String {
        match self.host {
            Host::Ipv6(address) => format!("[{address}]:{}", self.port),
            _ => format!("{}:{}", self.host_name, self.port),
        }
    }
}

/// Resolves the target and connects to its addresses in order.
async fn connect_tcp(target: &Target) -> Result<TcpStream, TransportError> {
    let addresses = resolve(target).await?;
    tracing::debug!(target = %target.display(), count = addresses.len(), "resolved host");

    let mut last_error = None;
    for address in &addresses {
        match TcpStream::connect(address).await {
            Ok(stream) => {
                // Askless sends small messages that should leave at once.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(error) => {
                tracing::debug!(%address, %error, "TCP connect failed");
                last_error = Some(error);
            }
        }
    }
    Err(map_connect_error(&target.display(), &addresses, last_error))
}

async fn resolve(target: &Target) -> Result<Vec<SocketAddr>, TransportError> {
    match &target.host {
        Host::Ipv4(address) => Ok(vec![SocketAddr::from((*address, target.port))]),
        Host::Ipv6(address) => Ok(vec![SocketAddr::from((*address, target.port))]),
        Host::Domain(domain) => {
            let result = tokio::net::lookup_host((domain.as_str(), target.port)).await;
            map_lookup_result(&target.display(), result.map(|addresses| addresses.collect()))
        }
    }
}

/// Maps the result of a DNS lookup of `host` to the addresses or a DNS error.
pub(crate) fn map_lookup_result(
    host: &str,
    result: io::Result<Vec<SocketAddr>>,
) -> Result<Vec<SocketAddr>, TransportError> {
    match result {
        Ok(addresses) if addresses.is_empty() => Err(TransportError::Dns {
            host: host.to_owned(),
            source: io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address"),
        }),
        Ok(addresses) => Ok(addresses),
        Err(source) => Err(TransportError::Dns {
            host: host.to_owned(),
            source,
        }),
    }
}

/// Maps the last TCP connect error: refused when the peer refused, I/O otherwise.
fn map_connect_error(target: &str, addresses: &[SocketAddr], error: Option<io::Error>) -> TransportError {
    let addr = match addresses {
        [single] => single.to_string(),
        _ => target.to_owned(),
    };
    match error {
        Some(error) if error.kind() == io::ErrorKind::ConnectionRefused => {
            TransportError::ConnectionRefused {
                addr,
                source: Some(error),
            }
        }
        Some(error) => TransportError::io(format!("connecting to {addr}"), error),
        None => TransportError::ConnectionRefused { addr, source: None },
    }
}

/// Maps a failed upgrade. An HTTP status other than 101 is a rejection, and a
/// connection lost before the response is an I/O error, because a restarting
/// server causes it and a retry may succeed.
fn map_upgrade_error(error: WsError, url: &Url) -> TransportError {
    let operation = || format!("running the WebSocket upgrade with `{}`", RedactedUrl::new(url));
    let closed_early = || io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection");
    match error {
        WsError::Http(response) => TransportError::UpgradeRejected {
            url: RedactedUrl::new(url),
            status: response.status(),
        },
        WsError::Io(source) => TransportError::io(operation(), source),
        WsError::ConnectionClosed
        | WsError::AlreadyClosed
        | WsError::Protocol(ProtocolError::HandshakeIncomplete) => {
            TransportError::io(operation(), closed_early())
        }
        other => map_ws_error(other, Direction::Incoming, "running the WebSocket upgrade"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn parse(text: &str) -> Result<Target, TransportError> {
        Target::parse(&Url::parse(text).unwrap())
    }

    #[test]
    fn target_rejects_http_scheme() {
        let error = parse("http://127.0.0.1/").unwrap_err();

        assert_eq!(error.kind(), ErrorKind::InvalidUrl);
    }

    #[test]
    fn target_uses_default_ports() {
        assert_eq!(parse("ws://example.test/").unwrap().port, 80);
        assert_eq!(parse("wss://example.test/").unwrap().port, 443);
    }

    #[test]
    fn target_strips_ipv6_brackets() {
        let target = parse("ws://[::1]:9000/").unwrap();

        assert_eq!(target.host_name, "::1");
        assert_eq!(target.display(), "[::1]:9000");
    }

    #[test]
    fn lookup_error_maps_to_dns() {
        let failure = io::Error::other("failed to lookup address information");

        let error = map_lookup_result("name.invalid:80", Err(failure)).unwrap_err();

        assert_eq!(error.kind(), ErrorKind::Dns);
        assert!(error.to_string().contains("name.invalid:80"));
        assert!(std::error::Error::source(&error).is_some());
    }

    #[test]
    fn empty_lookup_maps_to_dns() {
        let error = map_lookup_result("name.invalid:80", Ok(Vec::new())).unwrap_err();

        assert_eq!(error.kind(), ErrorKind::Dns);
    }

    #[test]
    fn refused_connect_maps_to_refused() {
        let address: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);

        let error = map_connect_error("127.0.0.1:9", &[address], Some(refused));

        assert_eq!(error.kind(), ErrorKind::ConnectionRefused);
        assert!(error.is_retryable());
    }

    #[test]
    fn other_connect_error_maps_to_io() {
        let address: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let unreachable = io::Error::from(io::ErrorKind::HostUnreachable);

        let error = map_connect_error("127.0.0.1:9", &[address], Some(unreachable));

        assert_eq!(error.kind(), ErrorKind::Io);
    }
}
