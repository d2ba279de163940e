//! One instrumented call, many times, for an instruction profile:
//!
//! ```sh
//! cargo bench --bench profile --no-run
//! valgrind --tool=callgrind target/release/deps/profile-* sampled
//! ```
//!
//! `sampled` (the default), `unsampled` or `before_init`. The pipeline
//! exports nothing (`none`), so that the profile is the caller's thread alone.

use std::hint::black_box;

#[vaxila::instrument(args(id))]
#[inline(never)]
fn with_vaxila(id: i64) -> i64 {
    black_box(id).wrapping_mul(3)
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
    if calls > 100_000 {
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
        println!(
            "{case}: {:.1} ns/call",
            start.elapsed().as_nanos() as f64 / calls as f64
        );
    }
}
