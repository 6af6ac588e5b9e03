//! TLS setup for wss:// connections and the mapping of TLS failures to
//! [`TransportError`] kinds.

use std::io;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{CertificateError, ClientConfig, RootCertStore};
use tokio::net::TcpStream;

use crate::error::{BoxError, TransportError};
use crate::options::{TlsRoots, WebSocketOptions};
use crate::websocket::BoxedIo;

/// Builds the rustls client configuration for `options`, with the `ring`
/// provider passed explicitly so that no process-wide provider is needed.
pub(crate) fn rustls_client_config(options: &WebSocketOptions) -> Result<Arc<ClientConfig>, TransportError> {
    if let Some(config) = &options.rustls_config {
        tracing::debug!("using the rustls configuration from WebSocketOptions");
        return Ok(config.clone());
    }

    let mut roots = RootCertStore::empty();
    match options.tls_roots {
        TlsRoots::WebPki => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        TlsRoots::Native => add_native_roots(&mut roots)?,
        TlsRoots::None => {}
    }
    for (index, der) in options.extra_root_certificates.iter().enumerate() {
        roots
            .add(der.clone())
            .map_err(|source| TransportError::InvalidOption {
                option: "extra_root_certificates",
                reason: format!("certificate at index {index} is not a valid DER root certificate"),
                source: Some(Box::new(source)),
            })?;
    }
    tracing::debug!(
        roots = ?options.tls_roots,
        extra_roots = options.extra_root_certificates.len(),
        trusted = roots.len(),
        "built rustls client configuration"
    );

    let config = ClientConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()
        .map_err(|source| TransportError::InvalidOption {
            option: "tls_backend",
            reason: "the ring provider supports no default TLS version".to_owned(),
            source: Some(Box::new(source)),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Returns the `ring` crypto provider, which the workspace builds rustls with.
///
/// NOTE: rustls 0.23.48 deprecates `ring::default_provider` because *ring* has
/// no post-quantum key exchange. The only provider with one, aws-lc-rs, needs a
/// C toolchain and CMake at build time, which this crate avoids for mobile
/// targets, so the deprecation is accepted here.
#[allow(deprecated)]
pub fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds a rustls server configuration for
/// [`ListenerOptions::tls`](crate::ListenerOptions::tls) from a certificate
/// chain (leaf first) and its private key, with the `ring` provider.
pub fn server_config(
    certificate_chain: Vec<CertificateDer<'static>>,
    private_key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, TransportError> {
    let invalid = |source: rustls::Error| TransportError::InvalidOption {
        option: "tls",
        reason: "the certificate chain or private key cannot be used".to_owned(),
        source: Some(Box::new(source)),
    };
    let config = rustls::ServerConfig::builder_with_provider(ring_provider())
        .with_safe_default_protocol_versions()
        .map_err(invalid)?
        .with_no_client_auth()
        .with_single_cert(certificate_chain, private_key)
        .map_err(invalid)?;
    Ok(Arc::new(config))
}

fn add_native_roots(roots: &mut RootCertStore) -> Result<(), TransportError> {
    let loaded = rustls_native_certs::load_native_certs();
    for error in &loaded.errors {
        tracing::debug!(%error, "skipped part of the native trust store");
    }
    let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
    tracing::debug!(added, ignored, "loaded native root certificates");
    if roots.is_empty() {
        return Err(TransportError::InvalidOption {
            option: "tls_roots",
            reason: "TlsRoots::Native found no usable certificate in the system trust store; \
                     install the system CA bundle or use TlsRoots::WebPki"
                .to_owned(),
            source: None,
        });
    }
    Ok(())
}

/// Runs the rustls client handshake over `tcp` for `host`.
pub(crate) async fn connect_rustls(
    config: Arc<ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> Result<BoxedIo, TransportError> {
    let server_name = ServerName::try_from(host.to_owned()).map_err(|source| TransportError::Tls {
        host: host.to_owned(),
        source: Box::new(source),
    })?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let stream = connector
        .connect(server_name, tcp)
        .await
        .map_err(|error| map_tls_io_error(host, error))?;
    Ok(Box::new(stream))
}

/// Maps an I/O error from a TLS handshake to the matching TLS error kind.
/// tokio-rustls reports rustls errors as `io::Error`s that wrap them.
pub(crate) fn map_tls_io_error(host: &str, error: io::Error) -> TransportError {
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .cloned();
    match rustls_error {
        Some(tls_error) => map_rustls_error(host, tls_error),
        None => TransportError::io(format!("running the TLS handshake with `{host}`"), error),
    }
}

/// Maps a rustls error to the matching TLS error kind.
pub(crate) fn map_rustls_error(host: &str, error: rustls::Error) -> TransportError {
    let host = host.to_owned();
    let source: BoxError = Box::new(error.clone());
    match error {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            TransportError::TlsUntrustedCertificate { host, source }
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => TransportError::TlsNameMismatch { host, source },
        _ => TransportError::Tls { host, source },
    }
}

/// Runs the native-tls client handshake over `tcp` for `host`.
#[cfg(feature = "native-tls")]
pub(crate) async fn connect_native_tls(
    options: &WebSocketOptions,
    host: &str,
    tcp: TcpStream,
) -> Result<BoxedIo, TransportError> {
    let mut builder = native_tls::TlsConnector::builder();
    for (index, der) in options.extra_root_certificates.iter().enumerate() {
        let certificate =
            native_tls::Certificate::from_der(der).map_err(|source| TransportError::InvalidOption {
                option: "extra_root_certificates",
                reason: format!("certificate at index {index} is not a valid DER certificate"),
                source: Some(Box::new(source)),
            })?;
        builder.add_root_certificate(certificate);
    }
    let connector = builder.build().map_err(|source| TransportError::Tls {
        host: host.to_owned(),
        source: Box::new(source),
    })?;
    tracing::debug!(
        extra_roots = options.extra_root_certificates.len(),
        "using native-tls"
    );
    // NOTE: native-tls reports certificate problems as opaque errors, so they all
    // map to TransportError::Tls rather than to the untrusted or mismatch kinds.
    let stream = tokio_native_tls::TlsConnector::from(connector)
        .connect(host, tcp)
        .await
        .map_err(|source| TransportError::Tls {
            host: host.to_owned(),
            source: Box::new(source),
        })?;
    Ok(Box::new(stream))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn unknown_issuer_is_untrusted() {
        let error = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);

        let mapped = map_rustls_error("example.test", error);

        assert_eq!(mapped.kind(), ErrorKind::TlsUntrustedCertificate);
    }

    #[test]
    fn not_valid_for_name_is_mismatch() {
        let error = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);

        let mapped = map_rustls_error("example.test", error);

        assert_eq!(mapped.kind(), ErrorKind::TlsNameMismatch);
    }

    #[test]
    fn expired_certificate_is_other_tls() {
        let error = rustls::Error::InvalidCertificate(CertificateError::Expired);

        let mapped = map_rustls_error("example.test", error);

        assert_eq!(mapped.kind(), ErrorKind::Tls);
    }

    #[test]
    fn plain_io_error_during_handshake_is_io() {
        let error = io::Error::from(io::ErrorKind::ConnectionReset);

        let mapped = map_tls_io_error("example.test", error);

        assert_eq!(mapped.kind(), ErrorKind::Io);
    }

    #[test]
    fn default_config_builds_without_process_provider() {
        let config = rustls_client_config(&WebSocketOptions::default());

        assert!(config.is_ok());
    }

    #[test]
    fn invalid_extra_root_is_invalid_option() {
        let garbage = rustls_pki_types::CertificateDer::from(vec![1, 2, 3]);
        let options = WebSocketOptions::default().add_root_certificate(garbage);

        let error = rustls_client_config(&options).unwrap_err();

        assert_eq!(error.kind(), ErrorKind::InvalidOption);
    }
}
