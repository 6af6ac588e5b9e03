//! Security properties of the client: TLS verification is on by default, and no credential,
//! token or URL password reaches a log line, a `Debug` output or an error message.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use askless_client::{AsklessClient, AuthenticationStatus, ConnectionStatus, ErrorKind};
use askless_testkit::{AuthDecision, MockServer, Notify, Route};
use askless_transport::rustls::pki_types::PrivatePkcs8KeyDer;
use askless_transport::{
    ListenerOptions, TransportError, WebSocketListener, WebSocketOptions, WebSocketTransport, tls,
};
use futures::StreamExt;
use serde_json::json;
use tracing_subscriber::fmt::MakeWriter;

/// Maximum wait for anything a test expects to happen.
const WAIT: Duration = Duration::from_secs(60);

const TOKEN: &str = "tok-S3CR3T-7f1c";
const WRONG_TOKEN: &str = "tok-WR0NG-88aa";
const URL_PASSWORD: &str = "pw-HUNTER2-c0de";
const URL_USER: &str = "alice-user-5e5e";
const SECRETS: [&str; 3] = [TOKEN, WRONG_TOKEN, URL_PASSWORD];

/// Creates a self-signed certificate for 127.0.0.1 and a wss:// listener that serves it.
async fn self_signed_listener() -> (WebSocketListener, rcgen::Certificate) {
    let key = rcgen::KeyPair::generate().expect("a key pair");
    let certificate = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("certificate parameters")
        .self_signed(&key)
        .expect("a self-signed certificate");
    let server_config = tls::server_config(
        vec![certificate.der().clone()],
        PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    )
    .expect("a TLS server configuration");
    let options = ListenerOptions::default().with_tls(server_config);
    let listener = WebSocketListener::bind_with_options("127.0.0.1:0", options)
        .await
        .expect("bind a loopback port");
    (listener, certificate)
}

/// Accepts connections until the test ends; the handshake fails for untrusted clients.
fn serve_welcome(mut listener: WebSocketListener) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok(accepted) = tokio::time::timeout(WAIT, listener.accept()).await {
            if let Ok(mut conn) = accepted {
                let _ = conn.send("welcome").await;
                tokio::spawn(async move {
                    let _keep_open = conn.recv().await;
                });
            }
        }
    })
}

#[tokio::test]
async fn untrusted_certificate_fails_with_tls_error() {
    let (listener, _certificate) = self_signed_listener().await;
    let url = format!("wss://127.0.0.1:{}/", listener.local_addr().port());
    let server = serve_welcome(listener);

    let error = AsklessClient::builder(&url)
        .connect()
        .await
        .expect_err("a self-signed certificate is not trusted by default");

    assert_eq!(error.kind(), ErrorKind::Transport, "{error}");
    let source = std::error::Error::source(&error)
        .and_then(|source| source.downcast_ref::<TransportError>())
        .expect("the transport error is the source");
    assert!(source.is_tls(), "expected a TLS error, got {source:?}");
    assert_eq!(
        source.kind(),
        askless_transport::ErrorKind::TlsUntrustedCertificate,
        "{source}"
    );
    assert!(error.to_string().contains("certificate"), "{error}");
    server.abort();
}

#[tokio::test]
async fn trusted_certificate_connects() {
    let (listener, certificate) = self_signed_listener().await;
    let url = format!("wss://127.0.0.1:{}/", listener.local_addr().port());
    let server = serve_welcome(listener);
    let options = WebSocketOptions::default().add_root_certificate(certificate.der().clone());
    let client = AsklessClient::builder(&url)
        .transport(WebSocketTransport::new(options))
        .build()
        .unwrap();

    // The scripted server greets but never configures, so a greeting is all this can show:
    // the TLS handshake succeeded and the first frame arrived.
    let mut watch = client.status_watch();
    let seen = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if client.stats().frames_received > 0 {
                return true;
            }
            if watch.changed().await.is_err() {
                return false;
            }
        }
    })
    .await;
    assert_eq!(
        seen,
        Ok(true),
        "the greeting arrives over the trusted wss:// connection"
    );
    client.close().await;
    server.abort();
}

/// A `MakeWriter` that appends every log line to a shared buffer.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn assert_no_secret(source: &str, text: &str) {
    for secret in SECRETS {
        assert!(
            !text.contains(secret),
            "{source} contains the secret `{secret}`:\n{text}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn secrets_never_logged_or_printed() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(capture.clone())
        .with_ansi(false)
        .finish();
    // The runtime of this test is single-threaded, so a thread-local default receives the events of every task.
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::builder()
        .well_behaved()
        .configure(|config| config.record_cleanup_tick = None)
        .start()
        .await;
    server.authenticate_with(|credential| async move {
        if credential["token"] == TOKEN {
            AuthDecision::user(7)
        } else {
            AuthDecision::reject("INVALID_CREDENTIAL")
        }
    });
    server
        .route(Route::read("items").handler(|_ctx| async move { Ok(Some(json!([1, 2]))) }))
        .route(
            Route::read("inbox")
                .for_authenticated_users()
                .handler(|ctx| async move { Ok(Some(json!({"user": ctx.user_id}))) }),
        );

    let url = format!("ws://{URL_USER}:{URL_PASSWORD}@{}/", server.address());
    let builder = AsklessClient::builder(&url);
    let mut printed = vec![format!("{builder:?}")];
    let client = builder.connect().await.expect("the client connects");
    printed.push(format!("{client:?}"));

    let authenticated = client.authenticate(json!({"token": TOKEN})).await.unwrap();
    printed.push(format!("{authenticated:?}"));
    let read = client.read("items", ()).await.unwrap();
    printed.push(format!("{read:?}"));
    let mut stream = client.read_stream("inbox", ()).await.unwrap();
    let first = tokio::time::timeout(WAIT, stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first, json!({"user": 7}));

    // A restart makes the client re-authenticate with the stored credential.
    server.restart().await;
    let mut status = client.status_watch();
    tokio::time::timeout(WAIT, status.wait_for(|status| !status.is_connected()))
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(WAIT, status.wait_for(ConnectionStatus::is_connected))
        .await
        .unwrap()
        .unwrap();
    let mut authentication = client.authentication_watch();
    tokio::time::timeout(
        WAIT,
        authentication.wait_for(|status| matches!(status, AuthenticationStatus::Authenticated { .. })),
    )
    .await
    .unwrap()
    .unwrap();
    server.notify_changes("inbox", Notify::all());
    let again = tokio::time::timeout(WAIT, stream.next()).await;
    printed.push(format!("{again:?}"));

    let error = client
        .authenticate(json!({"token": WRONG_TOKEN}))
        .await
        .expect_err("the wrong token is rejected");
    assert_eq!(error.kind(), ErrorKind::Credential);
    printed.push(format!("{error}"));
    printed.push(format!("{error:?}"));
    printed.push(format!("{client:?}"));
    printed.push(format!("{:?}", client.authentication_status()));

    let invalid = AsklessClient::builder(format!("http://{URL_USER}:{URL_PASSWORD}@127.0.0.1:1/"))
        .build()
        .expect_err("an http URL is rejected");
    printed.push(format!("{invalid}"));
    printed.push(format!("{invalid:?}"));

    let authentications = server
        .received_frames()
        .iter()
        .filter(|frame| {
            matches!(
                frame.client_message(),
                Some(askless_protocol::ClientMessage::Authenticate(_))
            )
        })
        .count();
    assert!(
        authentications >= 3,
        "the login, the automatic one after the restart and the rejected one reached the server: {authentications}"
    );

    client.close().await;
    let closed = client.read("items", ()).await.unwrap_err();
    printed.push(format!("{closed}"));
    printed.push(format!("{closed:?}"));
    drop(server);

    let logs = capture.text();
    assert!(
        logs.contains("TRACE"),
        "the capture recorded TRACE lines, so the search covers every level"
    );
    assert!(
        logs.contains("authenticate"),
        "the capture covers the authentication"
    );
    assert_no_secret("the captured logs", &logs);
    for text in &printed {
        assert_no_secret("a Display or Debug output", text);
    }
}
