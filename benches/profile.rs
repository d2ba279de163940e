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
//!
//! `paced` times sampled calls in bursts the export thread keeps up with
//! (256 calls, then 2 ms for it to catch up), so that every span is
//! exported and none dropped (a round in which some were is run again),
//! against the same bursts with exporter `none`, interleaved: what handing
//! each span to the export thread costs the caller when the pipeline is
//! not overloaded.
//!
//! ```sh
//! cargo bench --bench profile -- paced
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

mod support;

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

/// Calls of one burst, and bursts of one round.
const BURST: u64 = 256;
const BURSTS: u64 = 200;

/// ns per call over `BURSTS` bursts of `BURST` calls, 2 ms apart.
fn bursts() -> f64 {
    let mut busy = Duration::ZERO;
    for round in 0..BURSTS {
        let start = Instant::now();
        for i in 0..BURST {
            black_box(with_vaxila(black_box((round * BURST + i).cast_signed())));
        }
        busy += start.elapsed();
        std::thread::sleep(Duration::from_millis(2));
    }
    busy.as_nanos() as f64 / (BURSTS * BURST) as f64
}

fn paced() {
    let sink = support::Sink::start();
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (mut discarded, mut exported) = (Vec::new(), Vec::new());
    // Rounds in which the export thread fell behind (the machine busy with
    // something else, say), run again: the figure is of spans all exported.
    let mut repeated = 0;
    while exported.len() < 7 {
        let guard = vaxila::Config::default()
            .with_exporter(vaxila::Exporter::None)
            .with_tracing_bridge(false)
            .init()
            .expect("vaxila::init");
        let none = bursts();
        drop(guard);
        let guard = vaxila::Config::default()
            .with_endpoint(sink.endpoint.clone())
            .with_tracing_bridge(false)
            .init()
            .expect("vaxila::init");
        let sent = bursts();
        let stats = guard.stats();
        drop(guard);
        if stats.dropped > 0 {
            repeated += 1;
            eprintln!("paced: the export thread fell behind ({stats}); the round is run again");
            assert!(
                repeated <= 7,
                "paced: the export thread fell behind in {repeated} rounds"
            );
            continue;
        }
        discarded.push(none);
        exported.push(sent);
    }
    let (discarded, exported) = (median(discarded), median(exported));
    println!(
        "paced sampled calls, medians of 7 rounds: exporter none {discarded:.1} ns/call, \
         exported {exported:.1} ns/call ({:+.1} ns), every span exported \
         ({repeated} round(s) run again)",
        exported - discarded
    );
}

fn main() {
    let case = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .unwrap_or_else(|| "sampled".to_owned());
    if case == "paced" {
        return paced();
    }
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
