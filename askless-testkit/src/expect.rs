//! Expectations on the requests the mock receives, verified when the server drops.

use std::fmt;
use std::fmt::Write as _;

use askless_protocol::ClientMessage;

use crate::inspect::{Direction, Frame};
use crate::route::RouteKind;

/// How many matching requests an expectation allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    min: usize,
    max: Option<usize>,
}

impl Times {
    /// Exactly `n`.
    pub fn exactly(n: usize) -> Self {
        Self { min: n, max: Some(n) }
    }

    /// `n` or more.
    pub fn at_least(n: usize) -> Self {
        Self { min: n, max: None }
    }

    /// At most `n`.
    pub fn at_most(n: usize) -> Self {
        Self { min: 0, max: Some(n) }
    }

    fn contains(self, count: usize) -> bool {
        count >= self.min && self.max.is_none_or(|max| count <= max)
    }
}

impl From<usize> for Times {
    fn from(n: usize) -> Self {
        Self::exactly(n)
    }
}

impl fmt::Display for Times {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.max {
            Some(max) if max == self.min => write!(f, "exactly {max}"),
            Some(max) if self.min == 0 => write!(f, "at most {max}"),
            Some(max) => write!(f, "between {} and {max}", self.min),
            None => write!(f, "at least {}", self.min),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Matcher {
    Read(String),
    Modify(&'static str, String),
    Listen(String),
    Authenticate,
    Configure,
}

impl Matcher {
    fn matches(&self, message: &ClientMessage) -> bool {
        match (self, message) {
            (Self::Read(route), ClientMessage::Read(read)) => &read.route == route,
            (Self::Modify(kind, route), ClientMessage::Modify(modify)) => {
                modify.request_type.as_str() == *kind && &modify.route == route
            }
            (Self::Listen(route), ClientMessage::Listen(listen)) => &listen.route == route,
            (Self::Authenticate, ClientMessage::Authenticate(_)) => true,
            (Self::Configure, ClientMessage::ConfigureConnection(_)) => true,
            _ => false,
        }
    }

    fn route(&self) -> Option<&str> {
        match self {
            Self::Read(route) | Self::Modify(_, route) | Self::Listen(route) => Some(route),
            Self::Authenticate | Self::Configure => None,
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read(route) => write!(f, "READ {route:?}"),
            Self::Modify(kind, route) => write!(f, "{kind} {route:?}"),
            Self::Listen(route) => write!(f, "LISTEN {route:?}"),
            Self::Authenticate => f.write_str("AUTHENTICATE"),
            Self::Configure => f.write_str("CONFIGURE_CONNECTION"),
        }
    }
}

/// An expectation on the requests the mock receives.
///
/// Every received frame that decodes as a matching request counts, retransmissions and
/// duplicates included. Expectations are checked when the server drops (panicking with a report
/// of what was received) and by [`verify`](crate::MockServer::verify).
///
/// ```
/// use askless_testkit::Expect;
///
/// let expectation = Expect::create("product").times(1);
/// # let _ = expectation;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    matcher: Matcher,
    times: Times,
}

impl Expect {
    fn new(matcher: Matcher) -> Self {
        Self {
            matcher,
            times: Times::at_least(1),
        }
    }

    /// Expects READ requests on `route`. Default count: at least one.
    pub fn read(route: impl Into<String>) -> Self {
        Self::new(Matcher::Read(route.into()))
    }

    /// Expects CREATE requests on `route`. Default count: at least one.
    pub fn create(route: impl Into<String>) -> Self {
        Self::new(Matcher::Modify("CREATE", route.into()))
    }

    /// Expects UPDATE requests on `route`. Default count: at least one.
    pub fn update(route: impl Into<String>) -> Self {
        Self::new(Matcher::Modify("UPDATE", route.into()))
    }

    /// Expects DELETE requests on `route`. Default count: at least one.
    pub fn delete(route: impl Into<String>) -> Self {
        Self::new(Matcher::Modify("DELETE", route.into()))
    }

    /// Expects LISTEN requests on `route`. Default count: at least one.
    pub fn listen(route: impl Into<String>) -> Self {
        Self::new(Matcher::Listen(route.into()))
    }

    /// Expects authenticate requests. Default count: at least one.
    pub fn authenticate() -> Self {
        Self::new(Matcher::Authenticate)
    }

    /// Expects configure-connection requests. Default count: at least one.
    pub fn configure() -> Self {
        Self::new(Matcher::Configure)
    }

    pub(crate) fn for_route(kind: RouteKind, route: &str) -> Self {
        match kind {
            RouteKind::Read => Self::read(route),
            RouteKind::Create => Self::create(route),
            RouteKind::Update => Self::update(route),
            RouteKind::Delete => Self::delete(route),
        }
    }

    /// Sets the allowed count: a number means exactly that many.
    pub fn times(mut self, times: impl Into<Times>) -> Self {
        self.times = times.into();
        self
    }

    /// Expects no matching request at all.
    pub fn never(self) -> Self {
        self.times(0)
    }

    fn count<'a>(&self, frames: &'a [Frame]) -> (usize, Vec<&'a Frame>) {
        let mut related = Vec::new();
        let mut count = 0;
        for frame in frames.iter().filter(|f| f.direction == Direction::Received) {
            if let Some(message) = frame.client_message() {
                if self.matcher.matches(&message) {
                    count += 1;
                }
            }
            let same_route =
                self.matcher.route().is_some() && frame.route().as_deref() == self.matcher.route();
            if same_route
                || self.matcher.route().is_none()
                    && frame.client_message().is_some_and(|m| self.matcher.matches(&m))
            {
                related.push(frame);
            }
        }
        (count, related)
    }
}

/// Checks `expectations` against `frames`; `Err` contains a report of every unmet one.
pub(crate) fn check(expectations: &[Expect], frames: &[Frame]) -> Result<(), String> {
    let mut report = String::new();
    let mut failed = 0;
    for expectation in expectations {
        let (count, related) = expectation.count(frames);
        if expectation.times.contains(count) {
            continue;
        }
        failed += 1;
        let _ = writeln!(
            report,
            "- {}: expected {}, received {count}",
            expectation.matcher, expectation.times
        );
        let scope = expectation
            .matcher
            .route()
            .map_or("of this kind".to_owned(), |r| format!("on route {r:?}"));
        if related.is_empty() {
            let _ = writeln!(report, "  no frame received {scope}");
        } else {
            let _ = writeln!(report, "  frames received {scope}:");
            for frame in related {
                let _ = writeln!(report, "    {frame}");
            }
        }
    }
    if failed == 0 {
        return Ok(());
    }
    let received: Vec<&Frame> = frames
        .iter()
        .filter(|f| f.direction == Direction::Received)
        .collect();
    let mut header = format!("askless-testkit: {failed} expectation(s) not met\n{report}");
    let _ = writeln!(header, "{} frame(s) received in total:", received.len());
    for frame in received.iter().take(200) {
        let _ = writeln!(header, "    {frame}");
    }
    if received.len() > 200 {
        let _ = writeln!(header, "    ... {} more", received.len() - 200);
    }
    Err(header)
}
