//! Noticing `fork`: the export thread does not survive it, so a child must build a pipeline of its own.
//!
//! A `pthread_atfork` handler, registered with the first pipeline, bumps a
//! generation counter in every child. A batch processor remembers the
//! generation it was started in; when the two differ, its thread is in
//! another process, and it drops spans (with one warning) instead of
//! queueing them for nobody, and answers flush and shutdown at once instead
//! of waiting for an answer that cannot come.

use std::sync::atomic::{AtomicU64, Ordering};

static GENERATION: AtomicU64 = AtomicU64::new(0);

/// How many `fork`s lie between the first pipeline and this process.
#[inline]
pub(crate) fn generation() -> u64 {
    GENERATION.load(Ordering::Relaxed)
}

/// Starts counting forks; idempotent.
pub(crate) fn watch() {
    #[cfg(unix)]
    {
        static WATCH: std::sync::Once = std::sync::Once::new();
        extern "C" fn in_child() {
            // Only an atomic store: the child of a multi-threaded process
            // may do little more before `exec` or returning to user code.
            GENERATION.fetch_add(1, Ordering::Relaxed);
        }
        WATCH.call_once(|| {
            // SAFETY: `in_child` is a plain `extern "C" fn` that touches one
            // static atomic, which is async-signal-safe as `fork` requires.
            unsafe {
                libc::pthread_atfork(None, None, Some(in_child));
            }
        });
    }
}
