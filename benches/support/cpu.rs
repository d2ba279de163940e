//! A criterion measurement of the calling thread's CPU time.
//!
//! Wall time counts the moments another thread of the process (an export
//! thread, the loopback sink) takes the benchmark's core away from it; on a
//! two-core machine running three busy threads, that is a good part of a
//! sampled, exported call. The thread's CPU time is what the call itself
//! costs the thread that makes it.

use std::time::Duration;

use criterion::Throughput;
use criterion::measurement::{Measurement, ValueFormatter};

/// The CPU time the calling thread has used.
///
/// # Panics
///
/// If the system has no per-thread CPU clock.
#[must_use]
pub fn now() -> Duration {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `time` is a valid, writable `timespec`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut time) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    Duration::new(
        u64::try_from(time.tv_sec).unwrap_or(0),
        u32::try_from(time.tv_nsec).unwrap_or(0),
    )
}

/// [`now`] as a criterion measurement, in nanoseconds.
pub struct ThreadCpu;

impl Measurement for ThreadCpu {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        now()
    }

    fn end(&self, start: Duration) -> Duration {
        now().saturating_sub(start)
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanoseconds
    }
}

/// Nanoseconds of CPU time, shown as criterion shows wall time.
struct Nanoseconds;

impl ValueFormatter for Nanoseconds {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1.0 {
            (1e3, "ps")
        } else if typical < 1e3 {
            (1.0, "ns")
        } else if typical < 1e6 {
            (1e-3, "µs")
        } else if typical < 1e9 {
            (1e-6, "ms")
        } else {
            (1e-9, "s")
        };
        for value in values {
            *value *= factor;
        }
        unit
    }

    fn scale_throughputs(
        &self,
        typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        // Units of whatever the benchmark declared a call handles.
        let per_iteration = match *throughput {
            Throughput::Bits(n)
            | Throughput::Bytes(n)
            | Throughput::BytesDecimal(n)
            | Throughput::Elements(n)
            | Throughput::ElementsAndBytes { elements: n, .. } => n as f64,
        };
        let per_second = |ns: f64| per_iteration * 1e9 / ns;
        let (divisor, unit) = if per_second(typical) < 1e3 {
            (1.0, "/s")
        } else if per_second(typical) < 1e6 {
            (1e3, "K/s")
        } else {
            (1e6, "M/s")
        };
        for value in values {
            *value = per_second(*value) / divisor;
        }
        unit
    }

    fn scale_for_machines(&self, _: &mut [f64]) -> &'static str {
        "ns"
    }
}
