//! One instrumented call, many times, for an instruction profile:
//!
//! ```sh
//! cargo bench --bench profile --no-run
//! valgrind --tool=callgrind target/release/deps/profile-* sampled
//! ```
//!
//! `sampled` (the default), `unsampled` or `before_init`. The pipeline
//! exports nothing (`none`), so that the profile is the caller's thread alone.
//! With `--time`, it times ten million calls instead, and what every span
//! that keeps OpenTelemetry's parents costs at least (`floor`).

use std::hint::black_box;

#[vaxila::instrument(args(id))]
#[inline(never)]
fn with_vaxila(id: i64) -> i64 {
    black_box(id).wrapping_mul(3)
}

/// What any span that keeps OpenTelemetry's parents pays, whoever records
/// it: two readings of the tick counter (start and end), and an
/// OpenTelemetry `Context` with the span's ids made current and dropped.
fn floor(calls: u64) {
    use vaxila::opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };
    let clock = quanta::Clock::new();
    let t = std::time::Instant::now();
    for _ in 0..calls {
        black_box(clock.raw());
    }
    println!(
        "tick counter read: {:.1} ns",
        t.elapsed().as_nanos() as f64 / calls as f64
    );
    let t = std::time::Instant::now();
    for i in 0..calls {
        let span_context = SpanContext::new(
            TraceId::from(u128::from(i) + 1),
            SpanId::from(i + 1),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        );
        let cx = vaxila::opentelemetry::Context::map_current(|cx| {
            cx.with_remote_span_context(span_context)
        });
        let attached = black_box(cx.attach());
        drop(attached);
    }
    println!(
        "OpenTelemetry Context made, attached, detached: {:.1} ns",
        t.elapsed().as_nanos() as f64 / calls as f64
    );
}

fn main() {
    let case = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "sampled".to_owned());
    let ratio = match case.as_str() {
        "sampled" => Some(1.0),
        "unsampled" => Some(0.0),
        "before_init" => None,
        other => panic!("unknown case {other:?}: sampled, unsampled or before_init"),
    };
    let _guard = ratio.map(|ratio| {
        vaxila::Config::default()
            .with_exporter(vaxila::Exporter::None)
            .with_sampler_ratio(ratio)
            .with_tracing_bridge(false)
            .init()
            .expect("vaxila::init")
    });
    let calls = if std::env::args().any(|a| a == "--time") {
        10_000_000
    } else {
        100_000
    };
    let start = std::time::Instant::now();
    for i in 0..calls {
        black_box(with_vaxila(black_box(i)));
    }
    let elapsed = start.elapsed();
    if calls > 100_000 {
        println!(
            "{case}: {:.1} ns/call",
            elapsed.as_nanos() as f64 / calls as f64
        );
        floor(calls.unsigned_abs());
        let t = std::time::Instant::now();
        for _ in 0..calls {
            black_box(vaxila::opentelemetry::Context::map_current(|cx| {
                vaxila::opentelemetry::trace::TraceContextExt::has_active_span(cx)
            }));
        }
        println!(
            "map_current: {:.1} ns/call",
            t.elapsed().as_nanos() as f64 / calls as f64
        );
        let t = std::time::Instant::now();
        for _ in 0..calls {
            black_box(vaxila::current_span());
        }
        println!(
            "current_span: {:.1} ns/call",
            t.elapsed().as_nanos() as f64 / calls as f64
        );
    }
}
