//! Spans delivered per second to a loopback OTLP/HTTP receiver, with gzip:
//! this crate's pipeline against the SDK's batch processor, in one run.
//!
//! ```sh
//! cargo bench --bench throughput
//! ```
//!
//! One thread ends spans as fast as it can for `SECONDS`; the pipeline is
//! then shut down (flushing what it still holds). The receiver
//! (`support::Sink`) gunzips every request and counts the spans in it.
//! Both pipelines use the same default batch settings (a 2048-span queue,
//! 512 spans a request).

use std::time::{Duration, Instant};

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Tracer as _, TracerProvider as _};
use opentelemetry_sdk::trace::Sampler;

mod support;

const SECONDS: u64 = 3;

#[vaxila::instrument(args(id))]
fn work(id: u64) -> u64 {
    std::hint::black_box(id)
}

struct Run {
    ended: u64,
    delivered: u64,
    elapsed: Duration,
}

impl Run {
    fn per_second(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64()
    }
}

fn produce(mut one: impl FnMut(u64)) -> (u64, Instant) {
    let started = Instant::now();
    let deadline = started + Duration::from_secs(SECONDS);
    let mut ended = 0;
    while Instant::now() < deadline {
        for _ in 0..256 {
            one(ended);
            ended += 1;
        }
    }
    (ended, started)
}

fn vaxila_run() -> (Run, vaxila::ExportStats) {
    let receiver = support::Sink::start();
    let guard = vaxila::Config::default()
        .with_service_name("throughput")
        .with_endpoint(receiver.endpoint.clone())
        .with_tracing_bridge(false)
        .init()
        .expect("vaxila::init");
    let (ended, started) = produce(|i| {
        work(i);
    });
    let before = guard.stats();
    guard.shutdown().ok();
    let elapsed = started.elapsed();
    let delivered = receiver.spans.load(std::sync::atomic::Ordering::Relaxed);
    let run = Run {
        ended,
        delivered,
        elapsed,
    };
    (run, before)
}

fn sdk_run() -> Run {
    let receiver = support::Sink::start();
    let provider = support::sdk_provider(&receiver.endpoint, Sampler::AlwaysOn);
    let tracer = provider.tracer("throughput");
    let (ended, started) = produce(|i| {
        let mut span = tracer.start("work");
        span.set_attribute(KeyValue::new("id", i as i64));
        span.end();
    });
    provider.shutdown().ok();
    let elapsed = started.elapsed();
    Run {
        ended,
        delivered: receiver.spans.load(std::sync::atomic::Ordering::Relaxed),
        elapsed,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("throughput: bench");
        return;
    }
    let (vaxila, stats) = vaxila_run();
    let sdk = sdk_run();
    println!("| pipeline | ended | delivered | dropped | delivered spans/s |");
    println!("|---|---:|---:|---:|---:|");
    for (name, run) in [("vaxila", &vaxila), ("SDK BatchSpanProcessor", &sdk)] {
        println!(
            "| {name} | {} | {} | {} | {:.0} |",
            run.ended,
            run.delivered,
            run.ended - run.delivered,
            run.per_second()
        );
    }
    println!(
        "\nvaxila / SDK delivered spans/s: {:.2}×",
        vaxila.per_second() / sdk.per_second()
    );
    println!("vaxila's own count before shutdown: {stats}");
}
