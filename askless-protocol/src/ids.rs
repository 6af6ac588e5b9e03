//! Identifiers carried on the wire, and their generators.
//!
//! Every id is an opaque string. The formats below are the ones the reference client and server
//! use; receivers never parse them, so the newtypes accept any string when decoding.
//!
//! Generators take the random number generator as an argument (any `rand_core::RngCore`, such as
//! `rand::rng()`), so this crate reads no entropy source itself.

use std::fmt;

use rand_core::RngCore;
use serde::{Deserialize, Serialize};

/// Characters of the random part of every generated id: `[A-Za-z0-9]`.
const ALPHANUMERIC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// Length of the random part of client-generated ids.
pub const CLIENT_ID_RANDOM_LEN: usize = 28;

/// Appends `len` random characters of `[A-Za-z0-9]` to `out`.
fn push_random<R: RngCore + ?Sized>(rng: &mut R, len: usize, out: &mut String) {
    out.reserve(len);
    // 248 is the largest multiple of 62 that fits in a byte; rejecting the bytes above it keeps
    // every character equally likely.
    const ACCEPTED_BELOW: u8 = 248;
    let mut pushed = 0;
    while pushed < len {
        for byte in rng.next_u64().to_le_bytes() {
            if byte < ACCEPTED_BELOW && pushed < len {
                out.push(char::from(ALPHANUMERIC[usize::from(byte) % ALPHANUMERIC.len()]));
                pushed += 1;
            }
        }
    }
}

fn random_with_prefix<R: RngCore + ?Sized>(rng: &mut R, prefix: &str, len: usize) -> String {
    let mut id = String::with_capacity(prefix.len() + len);
    id.push_str(prefix);
    push_random(rng, len, &mut id);
    id
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps an id received from the wire or chosen by the caller, unchanged.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// Returns the id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Returns the id as an owned string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id! {
    /// Id of one client request (`clientRequestId`), chosen by the client.
    ///
    /// It correlates server receipts and responses with the request, and the server
    /// de-duplicates requests by it for each client instance.
    ClientRequestId
}

string_id! {
    /// Id of one server message (`serverId`), chosen by the server.
    ///
    /// It is identical on every retransmission of the same message, so the client uses it to
    /// confirm receipt and to drop duplicates.
    ServerId
}

string_id! {
    /// Id of one stream (`listenId`), chosen by the client and stable for the stream's life,
    /// across reconnections and re-listens.
    ListenId
}

string_id! {
    /// Identity of one client instance (`clientIdInternalApp`), kept for its whole lifetime.
    ///
    /// The server keys authentication, streams and de-duplication on it, so a client must reuse
    /// the same value on every reconnection.
    ClientIdInternalApp
}

impl ClientRequestId {
    /// Generates an id for an ordinary request: `REQ-_` and 28 random alphanumerics.
    ///
    /// Configure, authenticate and confirm-receipt requests use this form too.
    pub fn generate_request<R: RngCore + ?Sized>(rng: &mut R) -> Self {
        Self(random_with_prefix(rng, "REQ-_", CLIENT_ID_RANDOM_LEN))
    }

    /// Generates an id for a listen request: `LIS-_` and 28 random alphanumerics.
    pub fn generate_listen<R: RngCore + ?Sized>(rng: &mut R) -> Self {
        Self(random_with_prefix(rng, "LIS-_", CLIENT_ID_RANDOM_LEN))
    }
}

impl ListenId {
    /// Generates a stream id: `LIS-` and 28 random alphanumerics (no underscore).
    pub fn generate<R: RngCore + ?Sized>(rng: &mut R) -> Self {
        Self(random_with_prefix(rng, "LIS-", CLIENT_ID_RANDOM_LEN))
    }
}

impl ClientIdInternalApp {
    /// Generates a client instance id: 28 random alphanumerics.
    pub fn generate<R: RngCore + ?Sized>(rng: &mut R) -> Self {
        Self(random_with_prefix(rng, "", CLIENT_ID_RANDOM_LEN))
    }
}

impl ServerId {
    /// Generates the id of a response or a server receipt: `RES-` and 11 random alphanumerics.
    pub fn generate_response<R: RngCore + ?Sized>(rng: &mut R) -> Self {
        Self(random_with_prefix(rng, "RES-", 11))
    }

    /// Generates the id of a new-data-for-listener message: `NEW-`, 5 random alphanumerics,
    /// `-` and the listen id.
    pub fn generate_new_data<R: RngCore + ?Sized>(rng: &mut R, listen_id: &ListenId) -> Self {
        Self::with_listen_id(rng, "NEW-", listen_id)
    }

    /// Generates the id of a stop-listening event: `STOP-`, 5 random alphanumerics, `-` and the
    /// listen id.
    pub fn generate_stop_listening<R: RngCore + ?Sized>(rng: &mut R, listen_id: &ListenId) -> Self {
        Self::with_listen_id(rng, "STOP-", listen_id)
    }

    fn with_listen_id<R: RngCore + ?Sized>(rng: &mut R, prefix: &str, listen_id: &ListenId) -> Self {
        let mut id = random_with_prefix(rng, prefix, 5);
        id.push('-');
        id.push_str(listen_id.as_str());
        Self(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_alphanumeric(s: &str) -> bool {
        s.bytes().all(|b| b.is_ascii_alphanumeric())
    }

    #[test]
    fn generated_ids_have_reference_formats() {
        let mut rng = rand::rng();

        let request = ClientRequestId::generate_request(&mut rng);
        assert_eq!(request.as_str().len(), 5 + 28);
        assert!(request.as_str().starts_with("REQ-_"));
        assert!(is_alphanumeric(&request.as_str()[5..]));

        let listen = ClientRequestId::generate_listen(&mut rng);
        assert!(listen.as_str().starts_with("LIS-_"));

        let listen_id = ListenId::generate(&mut rng);
        assert_eq!(listen_id.as_str().len(), 4 + 28);
        assert!(is_alphanumeric(&listen_id.as_str()[4..]));

        let app = ClientIdInternalApp::generate(&mut rng);
        assert_eq!(app.as_str().len(), 28);
        assert!(is_alphanumeric(app.as_str()));

        let response = ServerId::generate_response(&mut rng);
        assert_eq!(response.as_str().len(), 4 + 11);

        let data = ServerId::generate_new_data(&mut rng, &listen_id);
        assert!(data.as_str().starts_with("NEW-"));
        assert!(data.as_str().ends_with(&format!("-{listen_id}")));
        assert_eq!(data.as_str().len(), 4 + 5 + 1 + listen_id.as_str().len());

        let stop = ServerId::generate_stop_listening(&mut rng, &listen_id);
        assert!(stop.as_str().starts_with("STOP-"));
    }

    #[test]
    fn generated_ids_differ() {
        let mut rng = rand::rng();
        let a = ClientRequestId::generate_request(&mut rng);
        let b = ClientRequestId::generate_request(&mut rng);
        assert_ne!(a, b);
    }
}
