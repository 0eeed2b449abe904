//! When to try a call again, and how long to wait first.
//!
//! Pure functions over numbers so the schedule is unit-tested without a clock: exponential backoff
//! with full jitter (spreads retries of concurrent calls), a cap on each wait and on the number of
//! attempts, and the server's `Retry-After` honoured (up to the cap) when it sends one.

use std::time::Duration;

use rand::{Rng, SeedableRng};

/// How a client retries transient failures (5xx, 429, connection errors; never other 4xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included (1 = no retry).
    pub max_attempts: u32,
    /// The first backoff; doubled each attempt.
    pub base_delay: Duration,
    /// The longest single wait, `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`, after attempt `attempt` (1-based) failed.
    ///
    /// `retry_after` is the server's own wish; it wins over the backoff but never over the cap.
    /// `jitter` in `[0, 1)` picks a point in the backoff window (full jitter).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        if let Some(wish) = retry_after {
            return wish.min(self.max_delay);
        }
        let exponent = attempt.saturating_sub(1).min(20);
        let window = self.base_delay.saturating_mul(1u32 << exponent).min(self.max_delay);
        // Never zero: half the window at least, so a burst of retries still spreads out.
        window.mul_f64(0.5 + jitter.clamp(0.0, 1.0) / 2.0)
    }

    /// [`RetryPolicy::delay`] with a random jitter.
    pub fn delay_jittered(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.delay(attempt, retry_after, jitter())
    }

    /// True when attempt `attempt` (1-based) may be followed by another.
    pub fn may_retry(&self, attempt: u32) -> bool {
        attempt < self.max_attempts
    }
}

/// A number in `[0, 1)`. The OS generator is not compiled in (rand's lean features), so the seed
/// mixes the clock with a counter: enough to spread retries, not meant to be unpredictable.
fn jitter() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};

    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let seed = nanos ^ CALLS.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    rand::rngs::SmallRng::seed_from_u64(seed).random::<f64>()
}

/// Reads a `Retry-After` header value: delay-seconds, or an HTTP date (RFC 7231).
pub fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - now;
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        assert_eq!(policy.delay(1, None, 1.0), Duration::from_millis(100));
        assert_eq!(policy.delay(2, None, 1.0), Duration::from_millis(200));
        assert_eq!(policy.delay(3, None, 0.0), Duration::from_millis(200));
        assert_eq!(policy.delay(9, None, 1.0), Duration::from_secs(1));
        assert_eq!(policy.delay(60, None, 1.0), Duration::from_secs(1));
    }

    #[test]
    fn retry_after_wins_but_is_capped() {
        let policy = RetryPolicy { max_delay: Duration::from_secs(5), ..RetryPolicy::default() };
        assert_eq!(policy.delay(1, Some(Duration::from_secs(2)), 0.3), Duration::from_secs(2));
        assert_eq!(policy.delay(1, Some(Duration::from_secs(90)), 0.3), Duration::from_secs(5));
    }

    #[test]
    fn attempts_are_bounded() {
        let policy = RetryPolicy { max_attempts: 3, ..RetryPolicy::default() };
        assert!(policy.may_retry(1));
        assert!(policy.may_retry(2));
        assert!(!policy.may_retry(3));
    }

    #[test]
    fn retry_after_parses_seconds_and_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-03T12:00:00Z").unwrap().to_utc();
        assert_eq!(parse_retry_after(" 3 ", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Thu, 03 Dec 2026 12:00:07 GMT", now),
            Some(Duration::from_secs(7))
        );
        assert_eq!(parse_retry_after("Thu, 03 Dec 2026 11:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
