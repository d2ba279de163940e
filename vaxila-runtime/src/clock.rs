//! Span timestamps: a raw tick count on the caller's thread, wall-clock time only when a span is exported.
//!
//! `SystemTime::now()` is a `clock_gettime` call, about 20 ns even through
//! the vDSO, and a span needs two. The CPU's time-stamp counter (through
//! `quanta`, which calibrates it against the monotonic clock and falls back
//! to that clock where the counter is not reliable) costs a few. A stamp is
//! turned into wall-clock time against an [`Anchor`], a pair of readings of
//! both clocks taken when the span is exported, seconds later at most, so the
//! drift between the two clocks never shows.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();

fn clock() -> &'static quanta::Clock {
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Calibrates the clock now, so that the first span does not pay for it.
pub(crate) fn calibrate() {
    clock();
}

/// A reading of the tick clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(u64);

impl Stamp {
    #[inline]
    pub(crate) fn now() -> Self {
        Self(clock().raw())
    }
}

/// The wall-clock time of a tick reading, from which others are converted.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Anchor {
    wall: SystemTime,
    raw: u64,
}

impl Anchor {
    pub(crate) fn now() -> Self {
        let clock = clock();
        Self {
            raw: clock.raw(),
            wall: SystemTime::now(),
        }
    }

    /// The wall-clock time of `stamp`.
    pub(crate) fn time(&self, stamp: Stamp) -> SystemTime {
        let clock = clock();
        if stamp.0 >= self.raw {
            self.wall + Duration::from_nanos(clock.delta_as_nanos(self.raw, stamp.0))
        } else {
            self.wall - Duration::from_nanos(clock.delta_as_nanos(stamp.0, self.raw))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_convert_to_the_wall_clock_time_they_were_taken_at() {
        let before = SystemTime::now();
        let stamp = Stamp::now();
        let after = SystemTime::now();
        std::thread::sleep(Duration::from_millis(20));
        let time = Anchor::now().time(stamp);
        // The calibration's error is nanoseconds; a millisecond is generous.
        let slack = Duration::from_millis(1);
        assert!(time + slack >= before, "{time:?} before {before:?}");
        assert!(time <= after + slack, "{time:?} after {after:?}");
    }

    #[test]
    fn durations_between_stamps_are_kept() {
        let start = Stamp::now();
        std::thread::sleep(Duration::from_millis(30));
        let end = Stamp::now();
        let anchor = Anchor::now();
        let elapsed = anchor.time(end).duration_since(anchor.time(start)).unwrap();
        assert!(elapsed >= Duration::from_millis(29), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    }
}
