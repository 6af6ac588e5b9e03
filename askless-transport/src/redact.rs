//! Redaction of values that may carry credentials.

use std::fmt;

use url::Url;

/// A URL with its user-info (`user:password@`) and query string removed, safe
/// to print in errors and logs.
///
/// A removed query is shown as `?<redacted>`, because query strings often carry
/// tokens. The fragment is dropped as well.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RedactedUrl(String);

impl RedactedUrl {
    /// Builds the redacted form of `url`.
    pub fn new(url: &Url) -> Self {
        let mut copy = url.clone();
        // `set_username` and `set_password` fail only for URLs that cannot have
        // user-info (such as `data:`), and those have none to remove.
        let _ = copy.set_username("");
        let _ = copy.set_password(None);
        copy.set_fragment(None);
        let had_query = copy.query().is_some();
        copy.set_query(None);
        let mut text = String::from(copy);
        if had_query {
            text.push_str("?<redacted>");
        }
        RedactedUrl(text)
    }

    /// Returns the redacted URL as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RedactedUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl From<&Url> for RedactedUrl {
    fn from(url: &Url) -> Self {
        RedactedUrl::new(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_user_info_and_query() {
        let url = Url::parse("wss://alice:s3cret@example.test:8443/path?token=abc#frag").unwrap();

        let redacted = RedactedUrl::new(&url).to_string();

        assert_eq!(redacted, "wss://example.test:8443/path?<redacted>");
    }

    #[test]
    fn keeps_plain_url() {
        let url = Url::parse("ws://127.0.0.1:3000/").unwrap();

        assert_eq!(RedactedUrl::new(&url).as_str(), "ws://127.0.0.1:3000/");
    }
}
