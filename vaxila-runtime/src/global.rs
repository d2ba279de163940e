//! The tracer that instrumented code records to, installed by `init` or by hand.

use std::cell::RefCell;
use std::fmt::Debug;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use opentelemetry::Context;
use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{Sampler, SdkTracer, SdkTracerProvider};

use crate::record::{Limits, Live};

/// Set once a provider is installed, so that code instrumented before `init`
/// pays one relaxed load and nothing else.
static ENABLED: AtomicBool = AtomicBool::new(false);
/// The installed pipeline's sampling, when it is one of this crate's (see
/// [`decided_off`]); `None` before `init` and for a provider of the user's.
static SAMPLING: AtomicU8 = AtomicU8::new(NO_SAMPLING);
const NO_SAMPLING: u8 = 0;
const OURS: u8 = 1;
const DROPS_ROOTS: u8 = 2;
const PARENT_BASED: u8 = 4;
static INSTALLED: RwLock<Option<Installed>> = RwLock::new(None);
/// Bumped after every change of `INSTALLED`, so that each thread's copy
/// (`CACHE`) knows when to read it again: a span then costs a relaxed load
/// and a thread-local access, not a lock.
static GENERATION: AtomicU64 = AtomicU64::new(0);
/// The pipeline installed last before the current one (or before none).
static RETIRED: RwLock<Option<Arc<Fast>>> = RwLock::new(None);

thread_local! {
    static CACHE: RefCell<(u64, Option<Installed>)> = const { RefCell::new((u64::MAX, None)) };
}

/// What instrumented code records to.
#[derive(Clone, Debug)]
pub(crate) struct Installed {
    /// The provider's tracer, for spans the SDK records (when a provider
    /// was brought with [`set_tracer_provider`], whose processors this
    /// crate cannot reach).
    pub(crate) tracer: SdkTracer,
    /// With a pipeline of this crate: how its own spans are sampled and
    /// where they go, without the SDK's span.
    pub(crate) fast: Option<Arc<Fast>>,
}

/// A pipeline of this crate, as its own spans see it.
#[derive(Debug)]
pub(crate) struct Fast {
    /// Which pipeline: a span ends into the one it started in.
    pub(crate) id: u64,
    /// The provider's sampler, decided the same way without its dynamic
    /// dispatch and its `SamplingResult`.
    pub(crate) sampling: Sampling,
    pub(crate) limits: Limits,
    /// The provider's processor, which takes spans of ours as well as `SpanData`.
    pub(crate) sink: Arc<dyn RecordSink>,
}

impl Fast {
    pub(crate) fn new(sampling: Sampling, limits: Limits, sink: Arc<dyn RecordSink>) -> Self {
        static IDS: AtomicU64 = AtomicU64::new(1);
        Self {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            sampling,
            limits,
            sink,
        }
    }
}

/// The samplers a pipeline of this crate uses: the SDK's `ParentBased`
/// (or not) around `AlwaysOn`, `AlwaysOff` or `TraceIdRatioBased`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Sampling {
    parent_based: bool,
    /// The share of root spans kept, in `[0, 1]`.
    ratio: f64,
}

impl Sampling {
    pub(crate) fn new(ratio: f64, parent_based: bool) -> Self {
        Self {
            parent_based,
            ratio: if ratio.is_nan() {
                0.0
            } else {
                ratio.clamp(0.0, 1.0)
            },
        }
    }

    /// The SDK's sampler that decides as this one does, for the spans the
    /// SDK records (`tracing`'s and the OpenTelemetry API's).
    pub(crate) fn sampler(self) -> Sampler {
        let root = if self.ratio >= 1.0 {
            Sampler::AlwaysOn
        } else if self.ratio <= 0.0 {
            Sampler::AlwaysOff
        } else {
            Sampler::TraceIdRatioBased(self.ratio)
        };
        if self.parent_based {
            Sampler::ParentBased(Box::new(root))
        } else {
            root
        }
    }

    /// Whether a span without a parent (an active span in its context) is
    /// dropped whatever its trace id.
    #[inline]
    pub(crate) fn drops_roots(self) -> bool {
        self.ratio <= 0.0
    }

    /// The SDK's decision (`Sampler::should_sample` in opentelemetry_sdk
    /// 0.33): a parent-based sampler follows an active parent span, sampled
    /// or not; otherwise the ratio decides on the trace id's low 63 bits.
    #[inline]
    pub(crate) fn samples(
        self,
        parent_active: bool,
        parent: &SpanContext,
        trace_id: TraceId,
    ) -> bool {
        if self.parent_based && parent_active {
            return parent.is_sampled();
        }
        if self.ratio >= 1.0 {
            return true;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "the SDK's arithmetic, reproduced exactly"
        )]
        let bound = (self.ratio * (1u64 << 63) as f64) as u64;
        let low = u64::from_be_bytes(trace_id.to_bytes()[8..].try_into().unwrap_or([0; 8]));
        (low >> 1) < bound
    }
}

impl Sampling {
    /// [`decided_off`] for a pipeline sampling as this one does.
    #[cfg(test)]
    pub(crate) fn decides_off(self, cx: &Context, propagates: bool) -> bool {
        decided_off_by(self.flags(), cx, propagates)
    }

    fn flags(self) -> u8 {
        let mut flags = OURS;
        if self.drops_roots() {
            flags |= DROPS_ROOTS;
        }
        if self.parent_based {
            flags |= PARENT_BASED;
        }
        flags
    }
}

/// Whether a span whose parent is the current context `cx` is unsampled
/// and needs no context of its own, by the installed pipeline's sampling
/// alone: the commonest unsampled spans (the roots at ratio 0, the children
/// of an unsampled span, the export path's) are decided without a look at
/// the pipeline. `false` when that takes more: the span's trace id, or a
/// provider of the user's, whose sampler only the SDK can run. As
/// `begin_fast` decides, which a test checks.
#[inline]
pub(crate) fn decided_off(cx: &Context, propagates: bool) -> bool {
    decided_off_by(SAMPLING.load(Ordering::Relaxed), cx, propagates)
}

/// [`decided_off`] for a pipeline of sampling flags `flags`.
#[inline]
fn decided_off_by(flags: u8, cx: &Context, propagates: bool) -> bool {
    if flags & OURS == 0 {
        return false;
    }
    if cx.is_telemetry_suppressed() {
        return true;
    }
    if !cx.has_active_span() {
        // A client or producer root keeps its ids, to tell the next service.
        return flags & DROPS_ROOTS != 0 && !propagates;
    }
    let span = cx.span();
    let parent = span.span_context();
    // Its own trace id would be the parent's, and its children decided as it is.
    parent.is_valid() && !parent.is_sampled() && flags & (PARENT_BASED | DROPS_ROOTS) != 0
}

/// A processor that takes the spans this crate records itself.
pub(crate) trait RecordSink: Send + Sync + Debug {
    /// `span` has ended. Its box goes back to `record::recycle*` once its
    /// record is taken.
    fn end(&self, span: Box<Live>);
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
    install(&provider, None);
}

/// Installs `provider`, and, for a pipeline of this crate, the way to its
/// processor that bypasses the SDK's span.
pub(crate) fn install(provider: &SdkTracerProvider, fast: Option<Arc<Fast>>) {
    if fast.is_some() {
        prepare_fast_path();
    }
    SAMPLING.store(flags(fast.as_deref()), Ordering::Relaxed);
    let tracer = provider.tracer_with_scope(crate::record::scope().clone());
    let old = INSTALLED
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .replace(Installed { tracer, fast });
    if let Some(fast) = old.and_then(|old| old.fast) {
        // As in `clear_tracer_provider`.
        *RETIRED.write().unwrap_or_else(|e| e.into_inner()) = Some(fast);
    }
    GENERATION.fetch_add(1, Ordering::Release);
    opentelemetry::global::set_tracer_provider(provider.clone());
    ENABLED.store(true, Ordering::Release);
    // `init` sets the configured filter after this.
    crate::bridge::ensure_filter(crate::config::process_tracing_filter);
}

/// Installs `provider` as [`set_tracer_provider`] does, unless one is
/// installed; in one step, so that it never replaces a pipeline installed
/// meanwhile. Whether it installed it.
pub(crate) fn set_tracer_provider_if_none(
    provider: &SdkTracerProvider,
    fast: Option<Arc<Fast>>,
) -> bool {
    let mut installed = INSTALLED.write().unwrap_or_else(|e| e.into_inner());
    if installed.is_some() {
        return false;
    }
    if fast.is_some() {
        prepare_fast_path();
    }
    SAMPLING.store(flags(fast.as_deref()), Ordering::Relaxed);
    *installed = Some(Installed {
        tracer: provider.tracer_with_scope(crate::record::scope().clone()),
        fast,
    });
    GENERATION.fetch_add(1, Ordering::Release);
    opentelemetry::global::set_tracer_provider(provider.clone());
    ENABLED.store(true, Ordering::Release);
    true
}

fn flags(fast: Option<&Fast>) -> u8 {
    fast.map_or(NO_SAMPLING, |fast| fast.sampling.flags())
}

/// What spans of ours need before the first one starts: the clock
/// calibrated, and forks noticed (a child must not repeat its parent's ids).
fn prepare_fast_path() {
    crate::clock::calibrate();
    crate::fork::watch();
}

/// Stops recording: instrumented code goes back to costing nothing.
pub(crate) fn clear_tracer_provider() {
    ENABLED.store(false, Ordering::Release);
    SAMPLING.store(NO_SAMPLING, Ordering::Relaxed);
    let old = INSTALLED.write().unwrap_or_else(|e| e.into_inner()).take();
    // Spans still running end into it (counted as dropped, once it is shut
    // down), not into nothing.
    *RETIRED.write().unwrap_or_else(|e| e.into_inner()) = old.and_then(|old| old.fast);
    GENERATION.fetch_add(1, Ordering::Release);
    opentelemetry::global::set_tracer_provider(
        opentelemetry::trace::noop::NoopTracerProvider::new(),
    );
}

/// Whether a provider is installed: one relaxed load.
#[inline]
pub(crate) fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Runs `f` on what is installed, or returns `None` before `init`: with no
/// lock and no copy, from this thread's cache of it.
#[inline]
pub(crate) fn with_installed<R>(f: impl FnOnce(&Installed) -> R) -> Option<R> {
    // Acquire: a thread that sees a new pipeline enabled sees its generation.
    if !ENABLED.load(Ordering::Acquire) {
        return None;
    }
    let generation = GENERATION.load(Ordering::Acquire);
    let mut f = Some(f);
    let cached = CACHE
        .try_with(|cache| {
            // Busy when `f` itself records (a processor that logs through
            // `tracing`, say): that call reads the shared copy instead.
            let mut cache = cache.try_borrow_mut().ok()?;
            if cache.0 != generation {
                *cache = (generation, installed());
            }
            let f = f.take()?;
            Some(cache.1.as_ref().map(f))
        })
        .ok()
        .flatten();
    match cached {
        Some(result) => result,
        None => installed().as_ref().map(f?),
    }
}

/// Hands an ended span of pipeline `id` to that pipeline: the installed
/// one, or the one installed before (whose guard is being dropped, or was).
pub(crate) fn end_span(id: u64, span: Box<Live>) {
    let mut span = Some(span);
    with_installed(|installed| {
        if let Some(fast) = installed.fast.as_ref().filter(|f| f.id == id)
            && let Some(span) = span.take()
        {
            fast.sink.end(span);
        }
    });
    let Some(span) = span else { return };
    let retired = RETIRED.read().unwrap_or_else(|e| e.into_inner());
    match retired.as_ref().filter(|f| f.id == id) {
        Some(fast) => fast.sink.end(span),
        // A pipeline two `init`s ago: long shut down.
        None => crate::record::recycle_here(span),
    }
}

/// The installed tracer, or `None` before `init`.
pub(crate) fn tracer() -> Option<SdkTracer> {
    with_installed(|installed| installed.tracer.clone())
}

fn installed() -> Option<Installed> {
    INSTALLED.read().unwrap_or_else(|e| e.into_inner()).clone()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, SpanKind, TraceFlags, TraceState};
    use opentelemetry_sdk::trace::{SamplingDecision, ShouldSample as _};

    /// Every parent a span can have: none, and local or remote, sampled or
    /// not, valid or not.
    pub(crate) fn parents() -> Vec<Context> {
        let mut parents = vec![Context::new()];
        for remote in [false, true] {
            for flags in [TraceFlags::SAMPLED, TraceFlags::default()] {
                for trace_id in [TraceId::from(0x1234_5678_9abc_def0_u128), TraceId::INVALID] {
                    let span_context = SpanContext::new(
                        trace_id,
                        SpanId::from(7),
                        flags,
                        remote,
                        TraceState::default(),
                    );
                    parents.push(Context::new().with_remote_span_context(span_context));
                }
            }
        }
        parents
    }

    #[test]
    fn sampling_decides_as_the_sdk_sampler_it_stands_for() {
        for ratio in [0.0, 0.001, 0.25, 0.5, 0.999, 1.0] {
            for parent_based in [false, true] {
                let ours = Sampling::new(ratio, parent_based);
                let sdk = ours.sampler();
                for parent in parents() {
                    for n in 0..2_000u128 {
                        let trace_id = TraceId::from(
                            n.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835) | 1,
                        );
                        let expected = sdk
                            .should_sample(
                                Some(&parent),
                                trace_id,
                                "x",
                                &SpanKind::Internal,
                                &[],
                                &[],
                            )
                            .decision
                            == SamplingDecision::RecordAndSample;
                        let span = parent.span();
                        let got =
                            ours.samples(parent.has_active_span(), span.span_context(), trace_id);
                        assert_eq!(
                            got,
                            expected,
                            "ratio {ratio}, parent_based {parent_based}, parent {:?}",
                            span.span_context()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn only_a_zero_ratio_drops_every_root() {
        assert!(Sampling::new(0.0, true).drops_roots());
        assert!(Sampling::new(f64::NAN, true).drops_roots());
        assert!(!Sampling::new(1e-9, true).drops_roots());
    }
}
