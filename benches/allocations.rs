//! Heap allocations per instrumented call on the caller's thread, for every
//! stack, counted by a global allocator that counts per thread:
//!
//! ```sh
//! cargo bench --bench allocations
//! ```
//!
//! Allocations on other threads (the export threads) are not counted: they
//! do not slow the instrumented code down.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

use opentelemetry::KeyValue;
use opentelemetry::trace::{TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::Sampler;
use tracing_subscriber::layer::SubscriberExt as _;

mod support;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
    static BYTES: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// counters are plain thread-local cells, which allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        let _ = BYTES.try_with(|n| n.set(n.get() + layout.size() as u64));
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        let _ = BYTES.try_with(|n| n.set(n.get() + new_size as u64));
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const CALLS: u64 = 10_000;

/// Allocations and bytes per call of `f`, after a warm-up, at a pace the
/// export threads keep up with (256 calls a millisecond), so that what is
/// counted is the steady state of a program, not a backlog of spans waiting
/// in a queue (each of which holds its memory until it is exported).
fn per_call(mut f: impl FnMut()) -> (f64, f64) {
    let mut paced = |i: u64| {
        if i.is_multiple_of(256) {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        f();
    };
    for i in 0..20_000 {
        paced(i);
    }
    let (count, bytes) = (ALLOCATIONS.get(), BYTES.get());
    for i in 0..CALLS {
        paced(i);
    }
    (
        (ALLOCATIONS.get() - count) as f64 / CALLS as f64,
        (BYTES.get() - bytes) as f64 / CALLS as f64,
    )
}

#[vaxila::instrument(args(id))]
fn with_vaxila(id: i64) -> i64 {
    black_box(id)
}

#[tracing::instrument(skip_all, fields(id = id))]
fn with_tracing(id: i64) -> i64 {
    black_box(id)
}

#[fastrace::trace]
fn with_fastrace(id: i64) -> i64 {
    black_box(id)
}

struct Discard;

impl fastrace::collector::Reporter for Discard {
    fn report(&mut self, spans: Vec<fastrace::collector::SpanRecord>) {
        black_box(spans);
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("allocations: bench");
        return;
    }
    let sink = support::Sink::start();
    let mut rows = Vec::new();
    rows.push((
        "bare function",
        per_call(|| {
            black_box(black_box(42_i64) * 3);
        }),
    ));
    rows.push((
        "vaxila before init",
        per_call(|| {
            black_box(with_vaxila(42));
        }),
    ));
    for (name, ratio) in [("vaxila unsampled", 0.0), ("vaxila sampled", 1.0)] {
        let guard = vaxila::Config::default()
            .with_endpoint(sink.endpoint.clone())
            .with_sampler_ratio(ratio)
            .with_tracing_bridge(false)
            .init()
            .expect("vaxila::init");
        rows.push((
            name,
            per_call(|| {
                black_box(with_vaxila(42));
            }),
        ));
        drop(guard);
    }
    let provider = support::sdk_provider(&sink.endpoint, Sampler::AlwaysOn);
    let tracer = provider.tracer("bench");
    rows.push((
        "OpenTelemetry SDK in_span + one attribute",
        per_call(|| {
            tracer.in_span("sdk", |cx| cx.span().set_attribute(KeyValue::new("id", 42)));
        }),
    ));
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("bench")));
    tracing::subscriber::with_default(subscriber, || {
        rows.push((
            "tracing::instrument + tracing-opentelemetry",
            per_call(|| {
                black_box(with_tracing(42));
            }),
        ));
    });
    let _ = provider.shutdown();
    let off = support::sdk_provider(&sink.endpoint, Sampler::AlwaysOff);
    let tracer = off.tracer("bench");
    rows.push((
        "OpenTelemetry SDK, AlwaysOff",
        per_call(|| {
            tracer.in_span("sdk", |cx| cx.span().set_attribute(KeyValue::new("id", 42)));
        }),
    ));
    fastrace::set_reporter(Discard, fastrace::collector::Config::default());
    // fastrace records at most 10,240 spans under one local parent, and none
    // after that: a root every 1,000 calls keeps every child recorded.
    let mut under: Option<(fastrace::local::LocalParentGuard, fastrace::Span)> = None;
    let mut calls = 0u64;
    rows.push((
        "fastrace child span",
        per_call(|| {
            if calls.is_multiple_of(1_000) {
                // The guard before its root.
                drop(under.take());
                let root = fastrace::Span::root("root", fastrace::prelude::SpanContext::random());
                under = Some((root.set_local_parent(), root));
            }
            calls += 1;
            black_box(with_fastrace(42));
        }),
    ));
    drop(under);
    println!("| stack | heap allocations per call | bytes per call |");
    println!("|---|---:|---:|");
    for (name, (count, bytes)) in rows {
        println!("| {name} | {count:.2} | {bytes:.0} |");
    }
}
