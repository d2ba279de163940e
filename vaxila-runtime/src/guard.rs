//! `Guard`: keeps the pipeline of `init` alive, and flushes and stops it within a deadline.
//!
//! # Why it never panics or hangs, whatever the runtime
//!
//! Flushing and shutting down are blocking calls into the SDK, which only
//! send a message to the batch processor's thread and wait for its answer;
//! the HTTP client they end up using lives on the processor's own threads
//! (see `batch` and `otlp`), never on the caller's. The guard makes the call on a short
//! helper thread and waits for the answer with a deadline, so that:
//!
//! - on a Tokio worker (multi-thread or current-thread `#[tokio::main]`) the
//!   call needs nothing from the caller's runtime, so it cannot deadlock, and
//!   no runtime is built or dropped in an async context, so nothing panics;
//! - a hung endpoint costs the caller the deadline and no more (the helper
//!   thread finishes or dies with the process);
//! - a panic inside the SDK or an exporter stays on the helper thread and
//!   comes back as an [`Error`], so a guard dropped during unwinding never
//!   panics a second time (which would abort the process).

use std::io::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, Weak, mpsc};
use std::time::Duration;

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};

use crate::batch::{ANSWER_GRACE, ExportStats};
use crate::config::Settings;
use crate::error::Error;
use crate::global::InitClaim;
use crate::pipeline::{self, Pipeline};

/// The pipeline a guard runs; `reinit_after_fork` replaces it in place, so
/// that the child's copy of the guard shuts the child's pipeline down.
type Slot = Mutex<Option<Pipeline>>;

/// The running pipeline and what built it, for [`reinit_after_fork`].
static CURRENT: Mutex<Option<(Weak<Slot>, Settings)>> = Mutex::new(None);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// What [`init`](crate::init) returns: the running pipeline. Keep it alive
/// for as long as the program runs; dropping it flushes every span ended so
/// far and shuts the pipeline down, within the export timeout.
///
/// ```
/// # fn main() -> Result<(), vaxila::Error> {
/// let guard = vaxila::Config::default()
///     .with_env([("OTEL_SDK_DISABLED", "true")])
///     .init()?;
/// guard.flush()?;      // export what has ended so far, now
/// guard.shutdown()?;   // or just let it drop at the end of main
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use = "dropping the guard shuts the pipeline down at once: bind it with `let _guard = ...`"]
pub struct Guard {
    slot: Arc<Slot>,
    timeout: Duration,
    // Released after the provider is shut down (fields drop after `Drop::drop`).
    _claim: InitClaim,
}

impl Guard {
    pub(crate) fn new(pipeline: Pipeline, settings: Settings, claim: InitClaim) -> Self {
        let slot = Arc::new(Mutex::new(Some(pipeline)));
        let timeout = settings.timeout;
        *lock(&CURRENT) = Some((Arc::downgrade(&slot), settings));
        Self {
            slot,
            timeout,
            _claim: claim,
        }
    }

    /// A guard with nothing behind it (`OTEL_SDK_DISABLED=true`).
    pub(crate) fn disabled(claim: InitClaim) -> Self {
        Self {
            slot: Arc::new(Mutex::new(None)),
            timeout: Duration::ZERO,
            _claim: claim,
        }
    }

    /// Exports every span ended so far, now, and waits for the export, for
    /// at most the export timeout (and a moment for its answer).
    ///
    /// Useful before a process may be frozen or killed (serverless handlers,
    /// a fork). The console exporter prints each trace when its local root
    /// span ends, so a flush there prints nothing new.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the export did not finish in time,
    /// [`Error::Export`] when it failed (the endpoint refused the request or
    /// could not be reached).
    pub fn flush(&self) -> Result<(), Error> {
        let Some(provider) = lock(&self.slot).as_ref().map(|p| p.provider.clone()) else {
            return Ok(());
        };
        // The pipeline's own wait ends first, so its answer is the one reported.
        let wait = self.timeout.saturating_add(2 * ANSWER_GRACE);
        bounded("flush", wait, move || provider.force_flush())
    }

    /// What became of the spans exported over OTLP so far: how many the
    /// endpoint accepted, and how many were dropped, failed or rejected.
    /// All zero for the console exporter, which loses nothing.
    ///
    /// ```
    /// # fn main() -> Result<(), vaxila::Error> {
    /// # let guard = vaxila::Config::default().with_env([("OTEL_SDK_DISABLED", "true")]).init()?;
    /// let stats = guard.stats();
    /// if stats.dropped > 0 {
    ///     // the queue was full: raise [batch] max_queue_size, or sample less
    /// }
    /// # Ok(()) }
    /// ```
    #[must_use]
    pub fn stats(&self) -> ExportStats {
        lock(&self.slot)
            .as_ref()
            .and_then(|p| p.counters.as_ref())
            .map(|counters| counters.stats())
            .unwrap_or_default()
    }

    /// Exports every span ended so far and stops the pipeline, waiting at
    /// most the export timeout (and a moment for its answer). Instrumented
    /// code goes back to costing nothing, and `init` may be called again.
    /// Dropping the guard does the same, reporting a failure on stderr
    /// instead of returning it.
    ///
    /// # Errors
    ///
    /// As [`flush`](Guard::flush).
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), Error> {
        let Some(pipeline) = lock(&self.slot).take() else {
            return Ok(());
        };
        let Pipeline {
            provider, counters, ..
        } = pipeline;
        // New spans stop here; spans already started still end into this
        // pipeline (`global::end_span`), exported or counted as dropped.
        crate::global::clear_tracer_provider();
        let timeout = self.timeout;
        // As in `flush`.
        let result = bounded(
            "shutdown",
            timeout.saturating_add(2 * ANSWER_GRACE),
            move || provider.shutdown_with_timeout(timeout),
        );
        if let Some(stats) = counters.map(|c| c.stats()).filter(|s| s.lost() > 0) {
            // The one summary of what the endpoint never got.
            let _ = writeln!(std::io::stderr(), "vaxila: at shutdown, {stats}");
        }
        result
    }
}

/// Gives a child process made by `fork` after [`init`](crate::init) a
/// pipeline of its own; call it in the child, first thing.
///
/// The thread that exports spans does not survive `fork`. Without this call
/// the child drops its spans (with one warning on stderr), and never waits
/// for the missing thread, so it neither hangs nor crashes. With it, the
/// child exports as the parent does, with its own `process.pid`, and its
/// copy of the [`Guard`] flushes and shuts the child's pipeline down.
///
/// Pre-forking servers should rather call `init` in each worker after the
/// fork; this is for programs that cannot.
///
/// Does nothing in a process that has not forked since `init`, or when no
/// pipeline is running.
///
/// ```no_run
/// let _guard = vaxila::init()?;
/// // SAFETY: nothing else runs in this single-threaded example.
/// match unsafe { libc::fork() } {
///     0 => {
///         vaxila::reinit_after_fork()?;   // the child
///         // ... the child's work, instrumented as usual ...
///     }
///     _ => { /* the parent */ }
/// }
/// # Ok::<(), vaxila::Error>(())
/// ```
///
/// # Errors
///
/// As [`init`](crate::init), when the new pipeline cannot be built.
pub fn reinit_after_fork() -> Result<(), Error> {
    let current = lock(&CURRENT);
    let Some((slot, settings)) = current.as_ref() else {
        return Ok(());
    };
    let Some(slot) = slot.upgrade() else {
        return Ok(());
    };
    let mut running = lock(&slot);
    match running.as_ref() {
        Some(pipeline) if pipeline.generation != crate::fork::generation() => {}
        _ => return Ok(()),
    }
    let pipeline = pipeline::build(settings)?;
    crate::global::install(&pipeline.provider, Some(pipeline.fast.clone()));
    // The old pipeline's thread is in the parent. Dropping it here would
    // take locks of its channels that a parent thread may have held at the
    // fork: it is left alone, a few bytes the child never frees.
    if let Some(orphan) = running.replace(pipeline) {
        std::mem::forget(orphan);
    }
    Ok(())
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            // Never `eprintln!`: it panics when stderr is closed.
            let _ = writeln!(std::io::stderr(), "vaxila: {error}");
        }
    }
}

/// Runs `op` on a helper thread and waits for it at most `deadline`.
fn bounded(
    operation: &'static str,
    deadline: Duration,
    op: impl FnOnce() -> OTelSdkResult + Send + 'static,
) -> Result<(), Error> {
    let (sender, receiver) = mpsc::sync_channel(1);
    let spawned = std::thread::Builder::new()
        .name(format!("vaxila-{operation}"))
        .spawn(move || {
            let _ = sender.send(op());
        });
    if spawned.is_err() {
        return Err(Error::Export {
            operation,
            source: OTelSdkError::InternalFailure("cannot start a thread".to_owned()),
        });
    }
    match receiver.recv_timeout(deadline) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(OTelSdkError::Timeout(after))) => Err(Error::Timeout { operation, after }),
        // The provider wraps its processors' answers: a timeout is still one.
        Ok(Err(OTelSdkError::InternalFailure(message))) if message.contains("Timeout(") => {
            Err(Error::Timeout {
                operation,
                after: deadline,
            })
        }
        Ok(Err(source)) => Err(Error::Export { operation, source }),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(Error::Timeout {
            operation,
            after: deadline,
        }),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(Error::Export {
            operation,
            source: OTelSdkError::InternalFailure("the exporter panicked".to_owned()),
        }),
    }
}
