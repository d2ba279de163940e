//! The tracer that instrumented code records to, installed by `init` or by hand.

use std::cell::RefCell;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use opentelemetry::InstrumentationScope;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

/// Set once a provider is installed, so that code instrumented before `init`
/// pays one relaxed load and nothing else.
static ENABLED: AtomicBool = AtomicBool::new(false);
static TRACER: RwLock<Option<SdkTracer>> = RwLock::new(None);
/// Bumped after every change of `TRACER`, so that each thread's copy
/// (`CACHE`) knows when to read it again: a span then costs a relaxed load
/// and a thread-local access, not a lock.
static GENERATION: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static CACHE: RefCell<(u64, Option<SdkTracer>)> = const { RefCell::new((u64::MAX, None)) };
}
/// Set while the [`Guard`](crate::Guard) of an `init` call is alive.
static INITIALIZED: AtomicBool = AtomicBool::new(false);

/// The right to be the one initialised pipeline, held by its guard: `init`
/// takes it (or fails with `AlreadyInitialized`), and dropping it lets a later
/// `init` run, so a failed `init` never blocks the next one.
#[derive(Debug)]
pub(crate) struct InitClaim(());

impl InitClaim {
    pub(crate) fn take() -> Result<Self, crate::Error> {
        INITIALIZED
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| Self(()))
            .map_err(|_| crate::Error::AlreadyInitialized)
    }
}

impl Drop for InitClaim {
    fn drop(&mut self) {
        INITIALIZED.store(false, Ordering::Release);
    }
}

/// The instrumentation scope of every span the macro and the span builder create.
pub(crate) fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("vaxila")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

/// Sends the spans of `#[vaxila::instrument]` and [`span`](crate::span) to
/// `provider`, and installs it as the OpenTelemetry global provider too, so
/// that spans made with the plain OpenTelemetry API join the same traces.
///
/// [`init`](crate::init) does this for you; call it yourself only when you
/// build your own `SdkTracerProvider` (with an exporter this crate does not
/// offer, say). Shutting the provider down stays your job.
///
/// A [`tracing_layer`](crate::tracing_layer) in your `tracing` subscriber
/// records to it too, filtered by `VAXILA_LOG`, else `RUST_LOG`, else `info`
/// (unless an `init` earlier in the process has set the filter).
///
/// ```
/// use vaxila::opentelemetry_sdk::trace::SdkTracerProvider;
///
/// // Any processors and exporters you like; spans of instrumented code go to them.
/// let provider = SdkTracerProvider::builder().build();
/// vaxila::set_tracer_provider(provider.clone());
///
/// #[vaxila::instrument]
/// fn work() {}
/// work();
///
/// provider.shutdown().unwrap();
/// ```
pub fn set_tracer_provider(provider: SdkTracerProvider) {
    let tracer = provider.tracer_with_scope(scope());
    *TRACER.write().unwrap_or_else(|e| e.into_inner()) = Some(tracer);
    GENERATION.fetch_add(1, Ordering::Release);
    opentelemetry::global::set_tracer_provider(provider);
    ENABLED.store(true, Ordering::Release);
    // `init` sets the configured filter after this.
    crate::bridge::ensure_filter(crate::config::process_tracing_filter);
}

/// Installs `provider` as [`set_tracer_provider`] does, unless one is
/// installed; in one step, so that it never replaces a pipeline installed
/// meanwhile. Whether it installed it.
pub(crate) fn set_tracer_provider_if_none(provider: &SdkTracerProvider) -> bool {
    let mut tracer = TRACER.write().unwrap_or_else(|e| e.into_inner());
    if tracer.is_some() {
        return false;
    }
    *tracer = Some(provider.tracer_with_scope(scope()));
    GENERATION.fetch_add(1, Ordering::Release);
    opentelemetry::global::set_tracer_provider(provider.clone());
    ENABLED.store(true, Ordering::Release);
    true
}

/// Stops recording: instrumented code goes back to costing nothing.
pub(crate) fn clear_tracer_provider() {
    ENABLED.store(false, Ordering::Release);
    *TRACER.write().unwrap_or_else(|e| e.into_inner()) = None;
    GENERATION.fetch_add(1, Ordering::Release);
    opentelemetry::global::set_tracer_provider(
        opentelemetry::trace::noop::NoopTracerProvider::new(),
    );
}

/// Whether a provider is installed: one relaxed load, where
/// [`tracer`]'s copy is not needed.
#[inline]
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The installed tracer, or `None` before `init`.
#[inline]
pub(crate) fn tracer() -> Option<SdkTracer> {
    // Acquire: a thread that sees a new pipeline enabled sees its generation.
    if !ENABLED.load(Ordering::Acquire) {
        return None;
    }
    let generation = GENERATION.load(Ordering::Acquire);
    CACHE
        .try_with(|cache| match cache.try_borrow_mut() {
            Ok(mut cache) => {
                if cache.0 != generation {
                    *cache = (generation, installed());
                }
                cache.1.clone()
            }
            Err(_) => installed(),
        })
        .unwrap_or_else(|_| installed())
}

fn installed() -> Option<SdkTracer> {
    TRACER.read().unwrap_or_else(|e| e.into_inner()).clone()
}
