//! `Debug` and `Display` never show URL user-info or sensitive header values.

use std::io;
use std::time::Duration;

use askless_transport::http::{HeaderName, HeaderValue};
use askless_transport::{Direction, RedactedUrl, TransportError, WebSocketOptions};
use url::Url;

const PASSWORD: &str = "hunter2-password";
const TOKEN: &str = "very-secret-token";

fn secret_url() -> Url {
    Url::parse(&format!(
        "wss://alice:{PASSWORD}@example.test:8443/askless?token={TOKEN}"
    ))
    .unwrap()
}

fn assert_clean(text: &str) {
    assert!(!text.contains(PASSWORD), "password leaked: {text}");
    assert!(!text.contains(TOKEN), "token leaked: {text}");
    assert!(!text.contains("alice"), "user name leaked: {text}");
}

fn every_error() -> Vec<TransportError> {
    let url = RedactedUrl::new(&secret_url());
    let io_error = || io::Error::other("operating system error");
    let tls_cause = || -> askless_transport::BoxError { Box::new(io_error()) };
    vec![
        TransportError::InvalidUrl {
            url: url.clone(),
            reason: "the scheme must be ws or wss",
        },
        TransportError::InvalidOption {
            option: "headers",
            reason: "bad value".to_owned(),
            source: None,
        },
        TransportError::Dns {
            host: "example.test:8443".to_owned(),
            source: io_error(),
        },
        TransportError::ConnectionRefused {
            addr: "127.0.0.1:9".to_owned(),
            source: Some(io_error()),
        },
        TransportError::ConnectTimeout {
            url: url.clone(),
            timeout: Duration::from_secs(10),
        },
        TransportError::TlsUntrustedCertificate {
            host: "example.test".to_owned(),
            source: tls_cause(),
        },
        TransportError::TlsNameMismatch {
            host: "example.test".to_owned(),
            source: tls_cause(),
        },
        TransportError::Tls {
            host: "example.test".to_owned(),
            source: tls_cause(),
        },
        TransportError::UpgradeRejected {
            url: url.clone(),
            status: http::StatusCode::UNAUTHORIZED,
        },
        TransportError::MessageTooLarge {
            direction: Direction::Incoming,
            size: 20,
            limit: 10,
        },
        TransportError::ClosedByPeer {
            code: 1000,
            reason: "normal".to_owned(),
        },
        TransportError::ClosedAbnormally {
            source: Some(io_error()),
        },
        TransportError::AlreadyClosed,
        TransportError::InvalidUtf8 {
            len: 2,
            source: String::from_utf8(vec![0xff, 0xfe]).unwrap_err().utf8_error(),
        },
        TransportError::Protocol {
            detail: "unexpected frame".to_owned(),
        },
        TransportError::Io {
            operation: "sending a frame".to_owned(),
            source: io_error(),
        },
    ]
}

#[test]
fn options_debug_hides_sensitive_headers() {
    let options = WebSocketOptions::default()
        .sensitive_header(
            HeaderName::from_static("x-token"),
            HeaderValue::from_static(TOKEN),
        )
        .header(
            http::header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {PASSWORD}")).unwrap(),
        )
        .header(
            HeaderName::from_static("x-client"),
            HeaderValue::from_static("askless-rs"),
        );

    let debug = format!("{options:?}");
    let pretty = format!("{options:#?}");

    assert_clean(&debug);
    assert_clean(&pretty);
    assert!(debug.contains("x-token"), "header names stay visible: {debug}");
    assert!(debug.contains("askless-rs"), "plain values stay visible: {debug}");
}

#[test]
fn redacted_url_hides_user_info_and_query() {
    let redacted = RedactedUrl::new(&secret_url());

    assert_clean(&redacted.to_string());
    assert_clean(&format!("{redacted:?}"));
    assert!(redacted.as_str().contains("example.test:8443/askless"));
}

#[test]
fn every_error_hides_credentials() {
    for error in every_error() {
        let display = error.to_string();
        let debug = format!("{error:?}");

        assert_clean(&display);
        assert_clean(&debug);
    }
}

#[test]
fn every_error_display_is_lowercase_sentence() {
    for error in every_error() {
        let display = error.to_string();
        let first = display.chars().next().unwrap();

        assert!(
            !first.is_uppercase()
                || display.starts_with("TLS")
                || display.starts_with("I/O")
                || display.starts_with("WebSocket"),
            "message should start in lowercase: {display}"
        );
        assert!(
            !display.ends_with('.'),
            "message should not end with a period: {display}"
        );
    }
}

#[test]
fn error_display_does_not_repeat_cause() {
    for error in every_error() {
        let display = error.to_string();

        if let Some(cause) = std::error::Error::source(&error) {
            assert!(
                !display.contains(&cause.to_string()),
                "cause repeated in: {display}"
            );
        }
    }
}
