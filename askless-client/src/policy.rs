//! The reconnect policy: how long to wait before each new connection attempt.

use std::time::Duration;

use rand::Rng;

use crate::error::Error;

/// Delays between connection attempts: exponential backoff with full jitter.
///
/// Retry number `n` (counted from 0 since the last successful connection) waits a random
/// duration drawn uniformly between [`min_delay`](Self::min_delay) and the ceiling
/// `min(max_delay, initial_delay * multiplier^n)`. The random spread keeps many clients of one
/// restarted server from reconnecting in lock-step, and the floor keeps a client from
/// reconnecting in a hot loop. The retry counter goes back to 0 once a connection is
/// configured.
///
/// The policy is a pure function of the retry number and a random number generator, see
/// [`ReconnectPolicy::delay`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectPolicy {
    /// Ceiling of the first retry's delay. Default: 250 ms.
    pub initial_delay: Duration,
    /// Smallest delay of any retry. Default: 100 ms.
    pub min_delay: Duration,
    /// Largest delay of any retry. Default: 15 s.
    pub max_delay: Duration,
    /// Growth factor of the ceiling per retry. Default: 2.0.
    pub multiplier: f64,
    /// Number of retries in a row without a successful connection after which the client stops
    /// retrying and fails its pending requests with a no-connection error. Default: `None`
    /// (retry forever).
    pub max_attempts: Option<u32>,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            initial_delay: Duration::from_millis(250),
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(15),
            multiplier: 2.0,
            max_attempts: None,
        }
    }
}

impl ReconnectPolicy {
    /// Sets [`max_attempts`](Self::max_attempts).
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = Some(max_attempts);
        self
    }

    /// Sets [`initial_delay`](Self::initial_delay).
    pub fn with_initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// Sets [`min_delay`](Self::min_delay).
    pub fn with_min_delay(mut self, delay: Duration) -> Self {
        self.min_delay = delay;
        self
    }

    /// Sets [`max_delay`](Self::max_delay).
    pub fn with_max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Sets [`multiplier`](Self::multiplier).
    pub fn with_multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Returns the delay before retry number `retry` (0 for the first retry), or `None` when
    /// [`max_attempts`](Self::max_attempts) retries have already been made.
    pub fn delay<R: Rng + ?Sized>(&self, retry: u32, rng: &mut R) -> Option<Duration> {
        if self.max_attempts.is_some_and(|max| retry >= max) {
            return None;
        }
        let ceiling = self.ceiling(retry);
        let floor = self.min_delay.min(ceiling);
        if ceiling <= floor {
            return Some(floor);
        }
        let nanos = rng.random_range(floor.as_nanos()..=ceiling.as_nanos());
        Some(Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX)))
    }

    /// Returns the upper bound of the delay before retry number `retry`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let exponent = i32::try_from(retry).unwrap_or(i32::MAX);
        let factor = self.multiplier.powi(exponent);
        let ceiling = self.initial_delay.as_secs_f64() * factor;
        if !ceiling.is_finite() || ceiling >= self.max_delay.as_secs_f64() {
            return self.max_delay;
        }
        Duration::from_secs_f64(ceiling.max(0.0))
    }

    /// Checks that the values can be used; called by the client builder.
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if !self.multiplier.is_finite() || self.multiplier < 1.0 {
            return Err(Error::invalid_option(
                "ReconnectPolicy::multiplier",
                format!("must be a finite number of at least 1.0, got {}", self.multiplier),
            ));
        }
        if self.min_delay.is_zero() {
            return Err(Error::invalid_option(
                "ReconnectPolicy::min_delay",
                "must be more than zero so that a client never reconnects in a hot loop".to_owned(),
            ));
        }
        if self.max_delay < self.min_delay {
            return Err(Error::invalid_option(
                "ReconnectPolicy::max_delay",
                format!(
                    "must be at least min_delay ({:?}), got {:?}",
                    self.min_delay, self.max_delay
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn first_retry_is_short() {
        let policy = ReconnectPolicy::default();
        let mut rng = StdRng::seed_from_u64(7);

        for _ in 0..1000 {
            let delay = policy.delay(0, &mut rng).unwrap();
            assert!(delay >= Duration::from_millis(100), "{delay:?}");
            assert!(delay <= Duration::from_millis(250), "{delay:?}");
        }
    }

    #[test]
    fn ceiling_grows_then_caps() {
        let policy = ReconnectPolicy::default();

        assert_eq!(policy.ceiling(0), Duration::from_millis(250));
        assert_eq!(policy.ceiling(1), Duration::from_millis(500));
        assert_eq!(policy.ceiling(3), Duration::from_secs(2));
        assert_eq!(policy.ceiling(10), Duration::from_secs(15));
        assert_eq!(policy.ceiling(u32::MAX), Duration::from_secs(15));
    }

    #[test]
    fn delays_use_the_full_jitter_range() {
        let policy = ReconnectPolicy::default();
        let mut rng = StdRng::seed_from_u64(42);

        let delays: Vec<Duration> = (0..2000).map(|_| policy.delay(8, &mut rng).unwrap()).collect();

        let min = delays.iter().min().unwrap();
        let max = delays.iter().max().unwrap();
        assert!(*min < Duration::from_secs(1), "smallest delay {min:?}");
        assert!(*max > Duration::from_secs(14), "largest delay {max:?}");
        assert!(
            delays
                .iter()
                .all(|d| *d >= Duration::from_millis(100) && *d <= Duration::from_secs(15))
        );
    }

    #[test]
    fn same_seed_gives_same_delays() {
        let policy = ReconnectPolicy::default();
        let mut first = StdRng::seed_from_u64(3);
        let mut second = StdRng::seed_from_u64(3);

        let a: Vec<_> = (0..20).map(|n| policy.delay(n, &mut first)).collect();
        let b: Vec<_> = (0..20).map(|n| policy.delay(n, &mut second)).collect();

        assert_eq!(a, b);
    }

    #[test]
    fn max_attempts_stops_retries() {
        let policy = ReconnectPolicy::default().with_max_attempts(3);
        let mut rng = StdRng::seed_from_u64(1);

        assert!(policy.delay(2, &mut rng).is_some());
        assert_eq!(policy.delay(3, &mut rng), None);
        assert_eq!(policy.delay(4, &mut rng), None);
    }

    #[test]
    fn attempts_over_a_minute_stay_bounded() {
        let policy = ReconnectPolicy::default();
        let mut rng = StdRng::seed_from_u64(99);

        let mut elapsed = Duration::ZERO;
        let mut attempts = 0u32;
        while elapsed < Duration::from_secs(60) {
            elapsed += policy.delay(attempts, &mut rng).unwrap();
            attempts += 1;
        }

        assert!(attempts < 40, "{attempts} attempts in one minute");
    }

    #[test]
    fn validate_rejects_zero_floor() {
        let policy = ReconnectPolicy::default().with_min_delay(Duration::ZERO);

        let error = policy.validate().unwrap_err();

        assert!(error.to_string().contains("min_delay"), "{error}");
    }

    #[test]
    fn validate_rejects_shrinking_multiplier() {
        let policy = ReconnectPolicy::default().with_multiplier(0.5);

        assert!(policy.validate().is_err());
    }
}
