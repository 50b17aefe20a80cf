//! keysmith's notion of "now": real time shifted by an adjustable offset (zero outside tests).
//!
//! Real time keeps flowing so that clients which sleep (for example to honour `Retry-After`) see time
//! pass as they expect, while tests can still jump across a UTC midnight or a month boundary.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use jiff::{SignedDuration, Timestamp};

/// A shared, adjustable clock. Clones share one offset, so a test and a running simulator agree on
/// the time.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Offset from real time in nanoseconds; an `i64` covers ±292 years, more than any test needs.
    offset_nanos: Arc<AtomicI64>,
}

impl Clock {
    /// A clock that starts at real time.
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock whose current instant is `at` (it keeps ticking from there).
    pub fn starting_at(at: Timestamp) -> Self {
        let clock = Self::new();
        clock.set(at);
        clock
    }

    /// The simulated current instant.
    pub fn now(&self) -> Timestamp {
        let offset = SignedDuration::from_nanos(self.offset_nanos.load(Ordering::Acquire));
        let real = Timestamp::now();
        real.checked_add(offset).unwrap_or(real)
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_nanos()).unwrap_or(i64::MAX);
        // `fetch_update` with a saturating add keeps a huge advance from wrapping into the past.
        let _ = self
            .offset_nanos
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |offset| {
                Some(offset.saturating_add(by))
            });
    }

    /// Makes the current instant `to`; time keeps flowing from there.
    pub fn set(&self, to: Timestamp) {
        let offset = to.as_nanosecond() - Timestamp::now().as_nanosecond();
        let offset = i64::try_from(offset).unwrap_or(if offset < 0 { i64::MIN } else { i64::MAX });
        self.offset_nanos.store(offset, Ordering::Release);
    }

    /// How far the clock is ahead of (positive) or behind (negative) real time.
    pub fn offset(&self) -> SignedDuration {
        SignedDuration::from_nanos(self.offset_nanos.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_clock_follows_real_time() {
        let clock = Clock::new();
        let drift = clock.now().duration_since(Timestamp::now()).abs();
        assert!(drift < SignedDuration::from_secs(1));
    }

    #[test]
    fn advancing_moves_every_clone_forward() {
        let clock = Clock::new();
        let other = clock.clone();
        let before = other.now();
        clock.advance(Duration::from_secs(3600));
        let moved = other.now().duration_since(before);
        assert!(moved >= SignedDuration::from_secs(3600));
        assert!(moved < SignedDuration::from_secs(3601));
    }

    #[test]
    fn setting_jumps_to_the_given_instant_and_keeps_ticking() {
        let target: Timestamp = "2025-03-31T23:59:59Z".parse().unwrap();
        let clock = Clock::starting_at(target);
        let drift = clock.now().duration_since(target);
        assert!(drift >= SignedDuration::ZERO && drift < SignedDuration::from_secs(1));
        assert!(clock.offset() < SignedDuration::ZERO);
    }
}
