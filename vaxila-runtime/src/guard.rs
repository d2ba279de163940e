//! `Guard`: keeps the pipeline of `init` alive, and flushes and stops it within a deadline.
//!
//! # Why it never panics or hangs, whatever the runtime
//!
//! Flushing and shutting down are blocking calls into the SDK, which only
//! send a message to the batch processor's thread and wait for its answer;
//! the HTTP client they end up using lives on that thread (see
//! `pipeline`), never on the caller's. The guard makes the call on a short
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
use std::sync::mpsc;
use std::time::Duration;

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::SdkTracerProvider;

use crate::error::Error;
use crate::global::InitClaim;

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
    provider: Option<SdkTracerProvider>,
    timeout: Duration,
    // Released after the provider is shut down (fields drop after `Drop::drop`).
    _claim: InitClaim,
}

impl Guard {
    pub(crate) fn new(provider: SdkTracerProvider, timeout: Duration, claim: InitClaim) -> Self {
        Self {
            provider: Some(provider),
            timeout,
            _claim: claim,
        }
    }

    /// A guard with nothing behind it (`OTEL_SDK_DISABLED=true`).
    pub(crate) fn disabled(claim: InitClaim) -> Self {
        Self {
            provider: None,
            timeout: Duration::ZERO,
            _claim: claim,
        }
    }

    /// Exports every span ended so far, now, and waits for the export, for
    /// at most the export timeout.
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
        let Some(provider) = &self.provider else {
            return Ok(());
        };
        let provider = provider.clone();
        bounded("flush", self.timeout, move || provider.force_flush())
    }

    /// Exports every span ended so far and stops the pipeline, waiting at
    /// most the export timeout. Instrumented code goes back to costing
    /// nothing, and `init` may be called again. Dropping the guard does the
    /// same, reporting a failure on stderr instead of returning it.
    ///
    /// # Errors
    ///
    /// As [`flush`](Guard::flush).
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.stop()
    }

    fn stop(&mut self) -> Result<(), Error> {
        let Some(provider) = self.provider.take() else {
            return Ok(());
        };
        // New spans stop here; spans already started still end into the provider.
        crate::global::clear_tracer_provider();
        let timeout = self.timeout;
        // The SDK's own deadline fires first, so its answer is the one reported.
        bounded(
            "shutdown",
            timeout + Duration::from_millis(200),
            move || provider.shutdown_with_timeout(timeout),
        )
    }
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
