//! When to retry a call and how long to wait, as pure functions of the attempt and the response.
//!
//! - 429: honour `Retry-After` (seconds or an HTTP date), else `X-RateLimit-Reset` (Unix time),
//!   else back off at least [`RetryPolicy::rate_limit_floor`] (60 s by default) with jitter, since
//!   some 429s come without timing headers; every wait is capped.
//! - 5xx and transport errors: exponential backoff with jitter.
//! - Other 4xx: never retried; they need a human.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// How the client retries.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Total attempts per call (first try included).
    pub max_attempts: u32,
    /// First backoff for 5xx and transport errors; doubles each attempt.
    pub base_delay: Duration,
    /// Cap of the 5xx/transport backoff.
    pub max_delay: Duration,
    /// Wait after a 429 that names no time (ServiceNow counts flush every 30 s).
    pub rate_limit_floor: Duration,
    /// Cap of any 429 wait, whatever the server asks.
    pub rate_limit_cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            rate_limit_floor: Duration::from_secs(60),
            rate_limit_cap: Duration::from_secs(15 * 60),
        }
    }
}

impl RetryPolicy {
    /// A fast policy for tests: millisecond waits, same decisions.
    pub fn fast() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(50),
            rate_limit_floor: Duration::from_millis(20),
            rate_limit_cap: Duration::from_secs(5),
        }
    }

    /// Backoff before attempt `attempt + 1` after a 5xx or transport error (`attempt` ≥ 1):
    /// half the exponential delay fixed, half random.
    pub fn backoff(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let exp = self.base_delay.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let capped = exp.min(self.max_delay);
        jitter(capped, rng)
    }

    /// Wait after a 429, from its headers (`retry_after`, `rate_limit_reset`) at time `now`.
    pub fn rate_limit_wait(
        &self,
        retry_after: Option<&str>,
        rate_limit_reset: Option<&str>,
        now: DateTime<Utc>,
        rng: &mut impl Rng,
    ) -> Duration {
        let named = retry_after
            .and_then(|value| parse_retry_after(value, now))
            .or_else(|| rate_limit_reset.and_then(|value| parse_reset(value, now)));
        match named {
            Some(wait) => wait.min(self.rate_limit_cap),
            // No timing header: at least the floor, plus up to half of it at random.
            None => {
                let extra = rng.random_range(0..=self.rate_limit_floor.as_millis() as u64 / 2);
                (self.rate_limit_floor + Duration::from_millis(extra)).min(self.rate_limit_cap)
            }
        }
    }
}

/// True for statuses worth another attempt on an idempotent call.
pub fn is_retryable_status(status: u16) -> bool {
    matches!(status, 429 | 500 | 502 | 503 | 504)
}

fn jitter(delay: Duration, rng: &mut impl Rng) -> Duration {
    let half = delay.as_millis() as u64 / 2;
    Duration::from_millis(half + rng.random_range(0..=half))
}

/// `Retry-After`: delta seconds, or an HTTP date.
fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = DateTime::parse_from_rfc2822(value).ok()?;
    Some((when.with_timezone(&Utc) - now).to_std().unwrap_or(Duration::ZERO))
}

/// `X-RateLimit-Reset`: Unix seconds when the window resets.
fn parse_reset(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let reset = DateTime::from_timestamp(value.trim().parse::<i64>().ok()?, 0)?;
    Some((reset - now).to_std().unwrap_or(Duration::ZERO))
}

/// A jitter source seeded from the clock (jitter needs spread, not secrecy).
pub(crate) fn jitter_rng() -> SmallRng {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    SmallRng::seed_from_u64(nanos ^ u64::from(std::process::id()).rotate_left(32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng() -> SmallRng {
        SmallRng::seed_from_u64(7)
    }

    #[test]
    fn retry_after_seconds_is_honoured() {
        let policy = RetryPolicy::default();
        let wait = policy.rate_limit_wait(Some("7"), None, Utc::now(), &mut rng());
        assert_eq!(wait, Duration::from_secs(7));
    }

    #[test]
    fn retry_after_http_date_is_honoured() {
        let policy = RetryPolicy::default();
        let now = DateTime::parse_from_rfc3339("2026-12-03T16:00:00Z").unwrap().to_utc();
        let wait =
            policy.rate_limit_wait(Some("Thu, 03 Dec 2026 16:00:30 GMT"), None, now, &mut rng());
        assert_eq!(wait, Duration::from_secs(30));
    }

    #[test]
    fn rate_limit_reset_used_without_retry_after() {
        let policy = RetryPolicy::default();
        let now = DateTime::from_timestamp(1_000_000, 0).unwrap();
        let wait = policy.rate_limit_wait(None, Some("1000042"), now, &mut rng());
        assert_eq!(wait, Duration::from_secs(42));
    }

    #[test]
    fn bare_429_waits_at_least_the_floor_and_is_capped() {
        let policy = RetryPolicy::default();
        let mut rng = rng();
        for _ in 0..100 {
            let wait = policy.rate_limit_wait(None, None, Utc::now(), &mut rng);
            assert!(wait >= Duration::from_secs(60) && wait <= Duration::from_secs(90));
        }
        let huge = policy.rate_limit_wait(Some("999999"), None, Utc::now(), &mut rng);
        assert_eq!(huge, policy.rate_limit_cap);
    }

    #[test]
    fn backoff_grows_then_caps() {
        let policy = RetryPolicy::default();
        let mut rng = rng();
        let first = policy.backoff(1, &mut rng);
        assert!(first >= Duration::from_millis(250) && first <= Duration::from_millis(500));
        let late = policy.backoff(30, &mut rng);
        assert!(late >= Duration::from_secs(15) && late <= Duration::from_secs(30));
    }

    #[test]
    fn only_throttling_and_outages_are_retryable() {
        for status in [429, 500, 502, 503, 504] {
            assert!(is_retryable_status(status));
        }
        for status in [400, 401, 403, 404, 405, 409, 415] {
            assert!(!is_retryable_status(status));
        }
    }
}
