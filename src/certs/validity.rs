//! When a certificate is valid and when it is renewed: at two thirds of its lifetime, so a
//! renewal that fails keeps being retried for a third of it (months for the lifetimes the
//! operator issues) before anything expires.

use jiff::{SignedDuration, Timestamp};

/// The validity window of a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Validity {
    pub(crate) not_before: Timestamp,
    pub not_after: Timestamp,
}

impl Validity {
    /// A window of `lifetime` from `now` (backdated by [`CLOCK_SKEW`] so a peer whose clock is a
    /// little behind accepts it at once).
    pub fn starting(now: Timestamp, lifetime: SignedDuration) -> Self {
        Validity {
            not_before: now - CLOCK_SKEW,
            not_after: now + lifetime,
        }
    }

    /// When the certificate is to be replaced: two thirds of the way through its window.
    pub(crate) fn renew_at(&self) -> Timestamp {
        let lifetime = self.not_after.duration_since(self.not_before);
        self.not_before + lifetime * 2 / 3
    }

    /// Whether a certificate with this window is to be replaced at `now`.
    pub fn due(&self, now: Timestamp) -> bool {
        now >= self.renew_at()
    }
}

/// How far back a new certificate's window starts.
pub(crate) const CLOCK_SKEW: SignedDuration = SignedDuration::from_mins(5);

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn renewed_at_two_thirds_of_the_lifetime() {
        let v = Validity {
            not_before: at("2026-01-01T00:00:00Z"),
            not_after: at("2026-01-31T00:00:00Z"),
        };
        assert_eq!(v.renew_at(), at("2026-01-21T00:00:00Z"));
        assert!(!v.due(at("2026-01-20T23:59:59Z")));
        assert!(v.due(at("2026-01-21T00:00:00Z")));
    }

    #[test]
    fn a_new_window_is_backdated_and_not_due() {
        let now = at("2026-06-01T12:00:00Z");
        let v = Validity::starting(now, SignedDuration::from_hours(24 * 90));
        assert_eq!(v.not_before, at("2026-06-01T11:55:00Z"));
        assert_eq!(v.not_after, at("2026-08-30T12:00:00Z"));
        assert!(!v.due(now));
    }
}
