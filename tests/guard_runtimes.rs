//! The guard flushes and shuts down without panicking or hanging wherever it
//! is dropped: a plain thread, a Tokio worker (multi-thread), a current-thread
//! runtime's `block_on` (what `#[tokio::main(flavor = "current_thread")]`
//! runs), and a `Drop` during unwinding. Each case checks that every span
//! ended before the drop reached a real receiver.
//!
//! `init` is process-wide, so the tests take turns (`SERIAL`).

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use vaxila::opentelemetry::trace::Tracer as _;
use vaxila_test_support::Receiver;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const SPANS: usize = 50;

fn init(receiver: &Receiver) -> vaxila::Guard {
    vaxila::Config::default()
        .with_env([("OTEL_SERVICE_NAME", "guard-test")])
        .with_endpoint(receiver.endpoint())
        // Only the guard can deliver within the test.
        .with_scheduled_delay(Duration::from_secs(3600))
        .with_timeout(Duration::from_secs(5))
        .init()
        .unwrap()
}

fn record_spans() {
    let tracer = vaxila::opentelemetry::global::tracer("guard");
    for _ in 0..SPANS {
        tracer.in_span("work", |_| {});
    }
}

/// Drops `guard` and checks it took well under its deadline.
fn drop_quickly(guard: vaxila::Guard) {
    let started = Instant::now();
    drop(guard);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "drop took {:?}",
        started.elapsed()
    );
}

#[test]
fn guard_dropped_on_a_plain_thread_delivers_everything() {
    let _serial = serial();
    let receiver = Receiver::start();
    let guard = init(&receiver);
    std::thread::spawn(move || {
        record_spans();
        drop_quickly(guard);
    })
    .join()
    .unwrap();
    assert_eq!(receiver.span_count(), SPANS);
}

#[test]
fn guard_dropped_on_a_tokio_multi_thread_worker_delivers_everything() {
    let _serial = serial();
    let receiver = Receiver::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let guard = init(&receiver);
    // Spawned, so the drop runs on a worker thread, inside the runtime.
    runtime
        .block_on(runtime.spawn(async move {
            tokio::task::yield_now().await;
            record_spans();
            guard.flush().unwrap();
            record_spans();
            drop_quickly(guard);
        }))
        .unwrap();
    drop(runtime);
    assert_eq!(receiver.span_count(), 2 * SPANS);
}

#[test]
fn guard_dropped_in_a_current_thread_runtime_delivers_everything() {
    let _serial = serial();
    let receiver = Receiver::start();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Made and dropped inside the runtime, as in `#[tokio::main]`.
        let guard = init(&receiver);
        tokio::spawn(async { record_spans() }).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1)).await;
        guard.flush().unwrap();
        record_spans();
        drop_quickly(guard);
    });
    assert_eq!(receiver.span_count(), 2 * SPANS);
}

#[test]
fn guard_dropped_while_unwinding_delivers_everything_and_does_not_abort() {
    let _serial = serial();
    let receiver = Receiver::start();
    let guard = init(&receiver);
    let panicked = std::thread::spawn(move || {
        let _guard = guard;
        record_spans();
        panic!("the application fails; the guard drops while unwinding");
    })
    .join();
    assert!(panicked.is_err());
    assert_eq!(receiver.span_count(), SPANS);
}

#[test]
fn guard_dropped_while_unwinding_on_a_tokio_worker_does_not_abort() {
    let _serial = serial();
    let receiver = Receiver::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let guard = init(&receiver);
    let result = runtime.block_on(runtime.spawn(async move {
        let _guard = guard;
        record_spans();
        panic!("a task fails; the guard drops while unwinding on a worker");
    }));
    assert!(result.unwrap_err().is_panic());
    drop(runtime);
    assert_eq!(receiver.span_count(), SPANS);
}
