//! Reconnect delays: exponential, capped, with "equal jitter" (half fixed, half random) so that
//! members that failed together do not reconnect in lockstep.

use std::time::Duration;

/// The smallest ceiling used, so that a zero configuration cannot make a reconnect loop spin.
pub(crate) const MIN_DELAY: Duration = Duration::from_millis(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based). `jitter` in `[0, 1]` picks a point in
    /// `[ceiling / 2, ceiling]`, where `ceiling = min(max, initial * 2^attempt)`, at least
    /// [`MIN_DELAY`].
    pub(crate) fn delay(&self, attempt: u32, jitter: f64) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        let ceiling = self
            .initial
            .saturating_mul(factor)
            .min(self.max)
            .max(MIN_DELAY);
        let half = ceiling / 2;
        let jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        half + half.mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        initial: Duration::from_millis(100),
        max: Duration::from_secs(5),
    };

    #[test]
    fn grows_exponentially_within_jitter_bounds() {
        for attempt in 0..6 {
            let ceiling = Duration::from_millis(100 * 2u64.pow(attempt));
            assert_eq!(B.delay(attempt, 1.0), ceiling);
            assert_eq!(B.delay(attempt, 0.0), ceiling / 2);
            let mid = B.delay(attempt, 0.5);
            assert!(mid > ceiling / 2 && mid < ceiling);
        }
    }

    #[test]
    fn is_capped_even_for_huge_attempts() {
        assert_eq!(B.delay(10, 1.0), Duration::from_secs(5));
        assert_eq!(B.delay(u32::MAX, 1.0), Duration::from_secs(5));
        assert_eq!(B.delay(u32::MAX, 0.0), Duration::from_millis(2500));
    }

    #[test]
    fn zero_configuration_still_waits() {
        let zero = Backoff {
            initial: Duration::ZERO,
            max: Duration::ZERO,
        };
        assert_eq!(zero.delay(5, 1.0), MIN_DELAY);
        assert_eq!(zero.delay(5, 0.0), MIN_DELAY / 2);
    }

    #[test]
    fn out_of_range_jitter_is_clamped() {
        assert_eq!(B.delay(0, 7.0), Duration::from_millis(100));
        assert_eq!(B.delay(0, -1.0), Duration::from_millis(50));
        assert_eq!(B.delay(0, f64::NAN), Duration::from_millis(50));
    }
}
