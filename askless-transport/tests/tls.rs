//! wss:// against a listener whose certificates are generated per test.

use std::time::Duration;

use askless_transport::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use askless_transport::{
    ErrorKind, ListenerOptions, TlsRoots, Transport, WebSocketListener, WebSocketOptions, WebSocketTransport,
    tls,
};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use url::Url;

const GENEROUS: Duration = Duration::from_secs(10);

/// A test certificate authority and one leaf certificate it signed.
struct TestPki {
    ca_der: CertificateDer<'static>,
    leaf_der: CertificateDer<'static>,
    leaf_key: PrivateKeyDer<'static>,
}

fn test_pki(leaf_names: &[&str]) -> TestPki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "askless-transport test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let leaf_key = KeyPair::generate().unwrap();
    let names: Vec<String> = leaf_names.iter().map(|name| name.to_string()).collect();
    let leaf = CertificateParams::new(names)
        .unwrap()
        .signed_by(&leaf_key, &ca, &ca_key)
        .unwrap();

    TestPki {
        ca_der: ca.der().clone(),
        leaf_der: leaf.der().clone(),
        leaf_key: PrivatePkcs8KeyDer::from(leaf_key.serialize_der()).into(),
    }
}

async fn tls_listener(pki: &TestPki) -> WebSocketListener {
    let config = tls::server_config(vec![pki.leaf_der.clone()], pki.leaf_key.clone_key()).unwrap();
    let options = ListenerOptions::default().with_tls(config);
    WebSocketListener::bind_with_options("127.0.0.1:0", options)
        .await
        .unwrap()
}

fn wss_url(listener: &WebSocketListener, host: &str) -> Url {
    Url::parse(&format!("wss://{host}:{}/", listener.local_addr().port())).unwrap()
}

async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(GENEROUS, future)
        .await
        .expect("operation did not finish within 10 s")
}

#[tokio::test]
async fn wss_round_trip_with_added_root() {
    let pki = test_pki(&["localhost", "127.0.0.1"]);
    let mut listener = tls_listener(&pki).await;
    let options = WebSocketOptions::default().add_root_certificate(pki.ca_der.clone());
    let transport = WebSocketTransport::new(options);

    let mut client = within(transport.connect(&wss_url(&listener, "127.0.0.1")))
        .await
        .unwrap();
    let mut server = within(listener.accept()).await.unwrap();
    within(client.send("over tls")).await.unwrap();
    let received = within(server.recv()).await.unwrap();
    within(server.send("back over tls")).await.unwrap();

    assert_eq!(received, "over tls");
    assert_eq!(within(client.recv()).await.unwrap(), "back over tls");
    assert!(client.info().tls);
    assert!(server.info().tls);
    assert!(
        askless_transport::rustls::crypto::CryptoProvider::get_default().is_none(),
        "the transport must pass its provider explicitly instead of installing a process default"
    );
}

#[tokio::test]
async fn wss_by_host_name_with_only_added_root() {
    let pki = test_pki(&["localhost"]);
    let mut listener = tls_listener(&pki).await;
    let options = WebSocketOptions::default()
        .with_tls_roots(TlsRoots::None)
        .add_root_certificate(pki.ca_der.clone());
    let transport = WebSocketTransport::new(options);

    let mut client = within(transport.connect(&wss_url(&listener, "localhost")))
        .await
        .unwrap();
    let mut server = within(listener.accept()).await.unwrap();
    within(client.send("by name")).await.unwrap();

    assert_eq!(within(server.recv()).await.unwrap(), "by name");
}

#[tokio::test]
async fn untrusted_certificate_is_rejected() {
    let pki = test_pki(&["localhost", "127.0.0.1"]);
    let listener = tls_listener(&pki).await;
    let transport = WebSocketTransport::default();

    let error = within(transport.connect(&wss_url(&listener, "127.0.0.1")))
        .await
        .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::TlsUntrustedCertificate);
    assert!(error.is_tls());
    assert!(!error.is_retryable());
    assert!(std::error::Error::source(&error).is_some());
}

#[tokio::test]
async fn certificate_for_other_name_is_mismatch() {
    let pki = test_pki(&["other.test"]);
    let listener = tls_listener(&pki).await;
    let options = WebSocketOptions::default().add_root_certificate(pki.ca_der.clone());
    let transport = WebSocketTransport::new(options);

    let error = within(transport.connect(&wss_url(&listener, "127.0.0.1")))
        .await
        .unwrap_err();

    assert_eq!(error.kind(), ErrorKind::TlsNameMismatch);
    assert!(error.to_string().contains("127.0.0.1"));
}

#[tokio::test]
async fn tls_client_against_plain_listener_fails() {
    let listener = WebSocketListener::bind("127.0.0.1:0").await.unwrap();
    let transport = WebSocketTransport::default();

    let error = within(transport.connect(&wss_url(&listener, "127.0.0.1")))
        .await
        .unwrap_err();

    assert!(
        matches!(
            error.kind(),
            ErrorKind::Tls | ErrorKind::Io | ErrorKind::ClosedAbnormally
        ),
        "unexpected error kind {:?}: {error}",
        error.kind()
    );
}

#[cfg(feature = "native-tls")]
#[tokio::test]
async fn native_tls_round_trip_with_added_root() {
    use askless_transport::TlsBackend;

    let pki = test_pki(&["localhost", "127.0.0.1"]);
    let mut listener = tls_listener(&pki).await;
    let options = WebSocketOptions::default()
        .with_tls_backend(TlsBackend::NativeTls)
        .add_root_certificate(pki.ca_der.clone());
    let transport = WebSocketTransport::new(options);

    let mut client = within(transport.connect(&wss_url(&listener, "localhost")))
        .await
        .unwrap();
    let mut server = within(listener.accept()).await.unwrap();
    within(client.send("over native tls")).await.unwrap();

    assert_eq!(within(server.recv()).await.unwrap(), "over native tls");
}
