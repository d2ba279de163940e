//! Span timestamps: a raw tick count on the caller's thread, wall-clock time only when a span is exported.
//!
//! `SystemTime::now()` is a `clock_gettime` call, 20–30 ns even through
//! the vDSO, and a span needs two. The CPU's time-stamp counter (through
//! `quanta`, which calibrates it against the monotonic clock and falls back
//! to that clock where the counter is not reliable) costs a few. A stamp is
//! turned into wall-clock time against the pair of readings of both clocks
//! (an anchor) taken last before it; anchors are taken at most a second
//! apart while spans are recorded, so the drift between the two clocks
//! never shows.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();

fn clock() -> &'static quanta::Clock {
    CLOCK.get_or_init(quanta::Clock::new)
}

/// Calibrates the clock now, so that the first span does not pay for it.
pub(crate) fn calibrate() {
    clock();
}

/// Readings of both clocks, at least a second apart, oldest first: a stamp
/// is converted against the last one taken before it, so that however long
/// a span runs or waits for export, the two clocks' drift (NTP slewing the
/// wall clock, the tick rate's calibration) is that of a second at most.
static HISTORY: Mutex<VecDeque<Reading>> = Mutex::new(VecDeque::new());
/// Anchors kept: over an hour of them, at one a second.
const HISTORY_LEN: usize = 4096;
/// The tick reading of the newest anchor.
static NEWEST: AtomicU64 = AtomicU64::new(0);
const SPACING_NS: u64 = 1_000_000_000;

#[derive(Clone, Copy, Debug)]
struct Reading {
    raw: u64,
    wall: SystemTime,
    /// `wall` in nanoseconds since the Unix epoch, negative before it.
    wall_nanos: i128,
}

impl Reading {
    fn now() -> Self {
        Self::new(clock().raw(), SystemTime::now())
    }

    fn new(raw: u64, wall: SystemTime) -> Self {
        let wall_nanos = match wall.duration_since(UNIX_EPOCH) {
            Ok(since) => since.as_nanos() as i128,
            Err(before) => -(before.duration().as_nanos() as i128),
        };
        Self {
            raw,
            wall,
            wall_nanos,
        }
    }
}

fn history() -> MutexGuard<'static, VecDeque<Reading>> {
    HISTORY.lock().unwrap_or_else(PoisonError::into_inner)
}

fn push(history: &mut VecDeque<Reading>, reading: Reading) {
    if history.len() == HISTORY_LEN {
        history.pop_front();
    }
    history.push_back(reading);
    NEWEST.store(reading.raw, Ordering::Relaxed);
}

/// A reading of the tick clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(u64);

impl Stamp {
    #[inline]
    pub(crate) fn now() -> Self {
        let clock = clock();
        let raw = clock.raw();
        if clock.delta_as_nanos(NEWEST.load(Ordering::Relaxed), raw) > SPACING_NS {
            anchor_now();
        }
        Self(raw)
    }
}

/// A new anchor, unless another thread holds the history (and is taking one).
#[cold]
fn anchor_now() {
    if let Ok(mut history) = HISTORY.try_lock() {
        push(&mut history, Reading::now());
    }
}

/// Converts stamps into wall-clock time, against the anchors taken so far
/// and one taken now.
#[derive(Debug)]
pub(crate) struct Anchor {
    history: MutexGuard<'static, VecDeque<Reading>>,
    /// The newest reading and the one before it, copied out of `history`:
    /// nearly every stamp of a batch is converted against one of them.
    newest: [Option<Reading>; 2],
}

impl Anchor {
    pub(crate) fn now() -> Self {
        Self::over(history())
    }

    /// An anchor over `history`, with a reading of now added if its newest
    /// is over a second old.
    fn over(mut history: MutexGuard<'static, VecDeque<Reading>>) -> Self {
        // Anchors a second apart, however often batches are exported: the
        // stamps of a batch then find theirs among the newest two.
        let raw = clock().raw();
        let stale = history
            .back()
            .is_none_or(|newest| clock().delta_as_nanos(newest.raw, raw) > SPACING_NS);
        if stale {
            push(&mut history, Reading::new(raw, SystemTime::now()));
        }
        Self::of(history)
    }

    /// An anchor over `history` as it is.
    fn of(history: MutexGuard<'static, VecDeque<Reading>>) -> Self {
        let mut newest = history.iter().rev().copied();
        Self {
            newest: [newest.next(), newest.next()],
            history,
        }
    }

    /// The wall-clock time of `stamp`.
    pub(crate) fn time(&self, stamp: Stamp) -> SystemTime {
        let Some(reading) = self.reading_for(stamp) else {
            return SystemTime::now();
        };
        let clock = clock();
        if stamp.0 >= reading.raw {
            reading.wall + Duration::from_nanos(clock.delta_as_nanos(reading.raw, stamp.0))
        } else {
            reading.wall - Duration::from_nanos(clock.delta_as_nanos(stamp.0, reading.raw))
        }
    }

    /// [`time`](Self::time) as nanoseconds since the Unix epoch, as OTLP
    /// has it (0 before the epoch, wrapped after 2554), in integers.
    pub(crate) fn unix_nanos(&self, stamp: Stamp) -> u64 {
        let Some(reading) = self.reading_for(stamp) else {
            return nanos_since_epoch(SystemTime::now());
        };
        let wall = reading.wall_nanos;
        let clock = clock();
        let time = if stamp.0 >= reading.raw {
            wall + i128::from(clock.delta_as_nanos(reading.raw, stamp.0))
        } else {
            wall - i128::from(clock.delta_as_nanos(stamp.0, reading.raw))
        };
        if time < 0 { 0 } else { time as u64 }
    }

    /// The last anchor at or before `stamp`; the oldest for a stamp older
    /// than all of them. `now` has pushed one, so there is one.
    #[inline]
    fn reading_for(&self, stamp: Stamp) -> Option<&Reading> {
        // Most stamps are younger than the anchor before this one.
        for reading in self.newest.iter().flatten() {
            if reading.raw <= stamp.0 {
                return Some(reading);
            }
        }
        let after = self
            .history
            .partition_point(|reading| reading.raw <= stamp.0);
        self.history.get(after.saturating_sub(1))
    }
}

/// `opentelemetry-proto`'s `to_nanos`: 0 before 1970, wrapped (not
/// saturated) after 2554.
#[allow(
    clippy::cast_possible_truncation,
    reason = "wrapped, as OTLP's encoders do"
)]
pub(crate) fn nanos_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
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
    fn a_stamp_is_converted_against_the_anchor_taken_before_it() {
        // Anchors a second apart, each with a wall-clock time 10 s off the
        // tick clock's: the conversion uses the last one before the stamp.
        let mut readings = history();
        readings.clear();
        let first = Reading::now();
        let second = Reading::new(first.raw + 1, first.wall + Duration::from_secs(10));
        push(&mut readings, first);
        push(&mut readings, second);
        let anchor = Anchor::of(readings);
        assert_eq!(anchor.time(Stamp(first.raw)), first.wall);
        assert_eq!(anchor.time(Stamp(second.raw)), second.wall);
        // Older than every anchor: the oldest converts it.
        assert!(anchor.time(Stamp(first.raw - 1)) <= first.wall);
        drop(anchor);
        // Older than the newest two: found among the rest.
        let mut readings = history();
        readings.clear();
        let walls: Vec<Reading> = (0..5)
            .map(|i| {
                Reading::new(
                    first.raw + i * 1_000,
                    first.wall + Duration::from_secs(10 * i),
                )
            })
            .collect();
        for &reading in &walls {
            push(&mut readings, reading);
        }
        let anchor = Anchor::of(readings);
        for reading in &walls {
            assert_eq!(anchor.time(Stamp(reading.raw)), reading.wall);
            assert_eq!(
                anchor.unix_nanos(Stamp(reading.raw + 1)),
                nanos_since_epoch(anchor.time(Stamp(reading.raw + 1)))
            );
            assert!(anchor.time(Stamp(reading.raw + 1)) < reading.wall + Duration::from_secs(1));
        }
        drop(anchor);
        history().clear();
    }

    #[test]
    fn unix_nanos_are_the_nanoseconds_of_time() {
        let mut readings = history();
        readings.clear();
        let now = Reading::now();
        // Anchors across the epoch and far apart, each off the tick clock.
        let walls = [
            UNIX_EPOCH - Duration::from_secs(3),
            UNIX_EPOCH + Duration::from_nanos(5),
            now.wall,
            now.wall + Duration::from_secs(86_400),
        ];
        for (i, wall) in walls.into_iter().enumerate() {
            push(
                &mut readings,
                Reading::new(now.raw + i as u64 * 1_000_000_000, wall),
            );
        }
        let anchor = Anchor::of(readings);
        for offset in [
            0,
            1,
            999,
            500_000_000,
            1_000_000_000,
            2_700_000_000,
            3_000_000_001,
            9_000_000_000,
        ] {
            for stamp in [
                Stamp(now.raw + offset),
                Stamp(now.raw.saturating_sub(offset)),
            ] {
                assert_eq!(
                    anchor.unix_nanos(stamp),
                    nanos_since_epoch(anchor.time(stamp)),
                    "{stamp:?}"
                );
            }
        }
        drop(anchor);
        history().clear();
    }

    #[test]
    fn batches_exported_within_a_second_share_their_anchor() {
        let mut readings = history();
        readings.clear();
        let mut anchor = Anchor::over(readings);
        for _ in 0..100 {
            anchor = Anchor::over(anchor.history);
        }
        assert_eq!(anchor.history.len(), 1);
        let stamp = Stamp::now();
        let expected = SystemTime::now();
        let time = anchor.time(stamp);
        let off = time
            .duration_since(expected)
            .unwrap_or_else(|e| e.duration());
        assert!(
            off < Duration::from_millis(1),
            "{time:?} against {expected:?}"
        );
        anchor.history.clear();
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
