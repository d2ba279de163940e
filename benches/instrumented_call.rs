//! What one instrumented call costs on the caller's thread, for every stack,
//! measured side by side in one run:
//!
//! ```sh
//! cargo bench --bench instrumented_call
//! ```
//!
//! Every exporting stack sends OTLP/HTTP with gzip to the same loopback sink
//! (`support::Sink`), so each pays for a real export on its export thread.
//!
//! The cases run twice: timed by the wall clock (`instrumented_call/*`),
//! then by the benchmark thread's CPU clock (`caller_cpu/*`, on Unix). On a
//! machine with fewer cores than busy threads, the export thread and the
//! sink take the caller's core from it now and then; wall time counts that,
//! CPU time counts only the caller's own work.
//! See `docs/benchmarks.md` for the results and what each number includes.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::measurement::Measurement;
use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::KeyValue;
use opentelemetry::trace::{TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::Sampler;
use tracing_subscriber::layer::SubscriberExt as _;

mod support;

#[inline(never)]
fn bare(id: i64) -> i64 {
    black_box(id).wrapping_mul(3)
}

#[vaxila::instrument(args(id))]
#[inline(never)]
fn with_vaxila(id: i64) -> i64 {
    black_box(id).wrapping_mul(3)
}

#[tracing::instrument(skip_all, fields(id = id))]
#[inline(never)]
fn with_tracing(id: i64) -> i64 {
    black_box(id).wrapping_mul(3)
}

#[fastrace::trace]
#[inline(never)]
fn with_fastrace(id: i64) -> i64 {
    black_box(id).wrapping_mul(3)
}

#[inline(never)]
fn with_sdk(tracer: &opentelemetry_sdk::trace::SdkTracer, id: i64) -> i64 {
    tracer.in_span("with_sdk", |cx| {
        cx.span().set_attribute(KeyValue::new("id", id));
        black_box(id).wrapping_mul(3)
    })
}

/// fastrace records at most 10,240 spans under one local parent and
/// silently records none after that, so a benchmark under one long-lived
/// root measures a span that is not recorded. A root every this many calls
/// keeps every child recorded; its own cost, shared by them, is included.
const FASTRACE_SPANS_PER_ROOT: u64 = 1_000;

/// Spans fastrace reported, to check that the children were recorded.
static FASTRACE_REPORTED: AtomicU64 = AtomicU64::new(0);

struct Discard;

impl fastrace::collector::Reporter for Discard {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        FASTRACE_REPORTED.fetch_add(spans.len() as u64, Ordering::Relaxed);
        black_box(spans);
    }
}

/// `iters` calls of `with_fastrace`, each a recorded child span, timed by
/// `clock`.
fn fastrace_children(iters: u64, clock: fn() -> Duration) -> Duration {
    let start = clock();
    let mut left = iters;
    while left > 0 {
        let calls = left.min(FASTRACE_SPANS_PER_ROOT);
        let root = fastrace::Span::root("root", fastrace::prelude::SpanContext::random());
        let parent = root.set_local_parent();
        for _ in 0..calls {
            with_fastrace(black_box(42));
        }
        drop(parent);
        drop(root);
        left -= calls;
    }
    clock().saturating_sub(start)
}

/// Time since the first call: the wall clock, as a `Duration` to subtract.
fn wall() -> Duration {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed()
}

fn vaxila(sink: &support::Sink, ratio: f64) -> vaxila::Guard {
    vaxila::Config::default()
        .with_service_name("bench")
        .with_endpoint(sink.endpoint.clone())
        .with_sampler_ratio(ratio)
        .with_tracing_bridge(false)
        .init()
        .expect("vaxila::init")
}

fn instrumented_call(c: &mut Criterion) {
    cases(c, "instrumented_call", wall);
}

#[cfg(unix)]
fn caller_cpu(c: &mut Criterion<support::cpu::ThreadCpu>) {
    cases(c, "caller_cpu", support::cpu::now);
}

#[cfg(unix)]
fn caller_cpu_config() -> Criterion<support::cpu::ThreadCpu> {
    Criterion::default().with_measurement(support::cpu::ThreadCpu)
}

/// Every case, in a group named `name`, measured by `M`; `clock` reads the
/// same clock for the case that times itself.
fn cases<M: Measurement<Value = Duration>>(
    c: &mut Criterion<M>,
    name: &str,
    clock: fn() -> Duration,
) {
    let sink = support::Sink::start();
    let mut group = c.benchmark_group(name);

    group.bench_function("bare", |b| b.iter(|| bare(black_box(42))));
    group.bench_function("vaxila_before_init", |b| {
        b.iter(|| with_vaxila(black_box(42)));
    });
    group.bench_function("tracing_no_subscriber", |b| {
        b.iter(|| with_tracing(black_box(42)));
    });

    let guard = vaxila(&sink, 0.0);
    group.bench_function("vaxila_unsampled", |b| {
        b.iter(|| with_vaxila(black_box(42)));
    });
    drop(guard);

    let guard = vaxila(&sink, 1.0);
    group.bench_function("vaxila_sampled", |b| b.iter(|| with_vaxila(black_box(42))));
    // Counted only for a group that ran (a filter may skip it).
    let stats = guard.stats();
    if stats.total() > 0 {
        eprintln!("{name}/vaxila_sampled: {stats}");
    }
    drop(guard);

    let guard = vaxila::Config::default()
        .with_exporter(vaxila::Exporter::None)
        .with_tracing_bridge(false)
        .init()
        .expect("vaxila::init");
    group.bench_function("vaxila_sampled_discarded", |b| {
        b.iter(|| with_vaxila(black_box(42)));
    });
    drop(guard);

    let discarding = support::sdk_discarding();
    let tracer = discarding.tracer("bench");
    group.bench_function("otel_sdk_in_span_discarded", |b| {
        b.iter(|| with_sdk(&tracer, black_box(42)));
    });
    let _ = discarding.shutdown();

    let provider = support::sdk_provider(&sink.endpoint, Sampler::AlwaysOn);
    let tracer = provider.tracer("bench");
    group.bench_function("otel_sdk_in_span", |b| {
        b.iter(|| with_sdk(&tracer, black_box(42)));
    });
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
    tracing::subscriber::with_default(subscriber, || {
        group.bench_function("tracing_opentelemetry", |b| {
            b.iter(|| with_tracing(black_box(42)));
        });
    });
    let _ = provider.shutdown();

    let off = support::sdk_provider(&sink.endpoint, Sampler::AlwaysOff);
    let tracer = off.tracer("bench");
    group.bench_function("otel_sdk_always_off", |b| {
        b.iter(|| with_sdk(&tracer, black_box(42)));
    });
    let _ = off.shutdown();

    fastrace::set_reporter(Discard, fastrace::collector::Config::default());
    FASTRACE_REPORTED.store(0, Ordering::Relaxed);
    let mut calls = 0;
    group.bench_function("fastrace_child", |b| {
        b.iter_custom(|iters| {
            calls += iters;
            fastrace_children(iters, clock)
        });
    });
    fastrace::flush();
    // Each call's span, and a root per `FASTRACE_SPANS_PER_ROOT` of them.
    let reported = FASTRACE_REPORTED.load(Ordering::Relaxed);
    if calls > 0 {
        eprintln!(
            "{name}/fastrace_child: {reported} spans reported of {calls} calls and their roots"
        );
    }
    group.finish();
}

criterion_group!(benches, instrumented_call);
#[cfg(unix)]
criterion_group! {
    name = cpu;
    config = caller_cpu_config();
    targets = caller_cpu
}
#[cfg(unix)]
criterion_main!(benches, cpu);
#[cfg(not(unix))]
criterion_main!(benches);
