//! The pipeline against endpoints that misbehave on purpose: down, black-holed,
//! throttling, failing, rejecting the token or part of a batch.
//!
//! Each scenario runs in a child process of its own (the pipeline is
//! process-wide, and its warnings go to the real stderr): the child asserts
//! what became of its spans through `Guard::stats` and the receiver; the
//! parent asserts on what the child wrote to stderr.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use vaxila::ExportStats;
use vaxila_test_support::{ChildOutput, Receiver, Reply, is_child, run_child};

const TOKEN: &str = "vx_secret_token_for_the_reliability_tests";
/// A header value from `OTEL_EXPORTER_OTLP_HEADERS`: a secret as well.
const HEADER_SECRET: &str = "hdr_secret_value_for_the_reliability_tests";
/// A key in the endpoint's query string, as some proxies want it.
const QUERY_SECRET: &str = "query_secret_for_the_reliability_tests";

/// Runs the test named `name` as a child, unless this is that child: then
/// `scenario` runs and `None` comes back.
fn as_child(name: &str, scenario: impl FnOnce()) -> Option<ChildOutput> {
    if is_child(name) {
        scenario();
        return None;
    }
    let out = run_child(name, name, &["--exact", "--nocapture", "--test-threads=1"]);
    assert!(out.success, "{out:?}");
    for secret in [TOKEN, HEADER_SECRET, QUERY_SECRET] {
        assert!(!out.stderr.contains(secret), "a secret leaked: {out:?}");
        assert!(!out.stdout.contains(secret), "a secret leaked: {out:?}");
    }
    Some(out)
}

fn lines_with(text: &str, needle: &str) -> usize {
    text.lines().filter(|line| line.contains(needle)).count()
}

fn config(endpoint: &str) -> vaxila::Config {
    vaxila::Config::default()
        .with_service_name("reliability")
        .with_endpoint(endpoint)
        .with_token(TOKEN)
        .with_timeout(Duration::from_millis(1500))
        .with_scheduled_delay(Duration::from_millis(20))
        .with_env([(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("x-api-key={HEADER_SECRET}"),
        )])
}

fn spans(count: usize) {
    for i in 0..count {
        vaxila::span("work").attr("i", i).in_scope(|_| ());
    }
}

/// A loopback address nothing listens on.
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/v1/traces?key={QUERY_SECRET}")
}

fn shut_down(guard: vaxila::Guard) -> ExportStats {
    guard.flush().ok();
    let stats = guard.stats();
    drop(guard);
    stats
}

#[test]
fn an_unreachable_endpoint_loses_spans_counted_with_one_warning() {
    let Some(out) = as_child(
        "an_unreachable_endpoint_loses_spans_counted_with_one_warning",
        || {
            let guard = config(&closed_port())
                .with_timeout(Duration::from_millis(300))
                .with_max_queue_size(64)
                .with_max_export_batch_size(16)
                .init()
                .unwrap();
            spans(2_000);
            let stats = guard.stats();
            assert_eq!(stats.total(), 2_000, "every span counted: {stats:?}");
            assert_eq!(stats.exported, 0, "{stats:?}");
            // Kept: the queue, and three batches (two being sent, one encoded).
            assert!(stats.dropped >= 2_000 - 64 - 3 * 16, "{stats:?}");
            drop(guard);
        },
    ) else {
        return;
    };
    assert_eq!(
        lines_with(&out.stderr, "at shutdown, 2000 span(s) ended: 0 exported"),
        1,
        "{out:?}"
    );
    assert_eq!(lines_with(&out.stderr, " span(s) to "), 1, "{out:?}");
    assert_eq!(lines_with(&out.stderr, "queue is full"), 1, "{out:?}");
}

#[test]
fn a_black_holed_endpoint_bounds_flush_and_shutdown_by_the_timeout() {
    let Some(out) = as_child(
        "a_black_holed_endpoint_bounds_flush_and_shutdown_by_the_timeout",
        || {
            let receiver = Receiver::start_with(|_| Reply::hang());
            let guard = config(&receiver.endpoint())
                .with_timeout(Duration::from_millis(400))
                .init()
                .unwrap();
            spans(100);
            let started = Instant::now();
            assert!(guard.flush().is_err(), "a flush that got no answer");
            guard.shutdown().ok();
            // Two waits of 400 ms at most each, with room for a loaded machine.
            let took = started.elapsed();
            assert!(took < Duration::from_secs(10), "took {took:?}");
            assert!(!receiver.requests().is_empty());
        },
    ) else {
        return;
    };
    assert!(out.success);
}

/// A receiver that answers `first` to the first `n` requests and 200 after.
fn failing_first(n: usize, first: Reply) -> (Receiver, Arc<AtomicUsize>) {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    let receiver = Receiver::start_with(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) < n {
            first.clone()
        } else {
            Reply::ok()
        }
    });
    (receiver, seen)
}

#[test]
fn throttling_and_gateway_errors_are_retried_until_delivered() {
    as_child(
        "throttling_and_gateway_errors_are_retried_until_delivered",
        || {
            for (first, failures) in [
                (Reply::retry_after(429, 1), 1),
                (Reply::retry_after(503, 0), 2),
                (Reply::status(502), 2),
                (Reply::status(504), 1),
            ] {
                let status = first.status;
                let (receiver, seen) = failing_first(failures, first);
                let guard = config(&receiver.endpoint())
                    .with_timeout(Duration::from_secs(5))
                    .with_scheduled_delay(Duration::from_secs(3600))
                    .init()
                    .unwrap();
                spans(10);
                guard.flush().unwrap();
                let stats = guard.stats();
                drop(guard);
                assert_eq!(stats.exported, 10, "HTTP {status}: {stats:?}");
                assert_eq!(stats.failed, 0, "HTTP {status}: {stats:?}");
                assert_eq!(
                    seen.load(Ordering::SeqCst),
                    failures + 1,
                    "HTTP {status}: one request, then one retry per failure"
                );
                assert_eq!(receiver.span_count(), 10 * (failures + 1));
            }
        },
    );
}

#[test]
fn retries_stop_at_the_export_timeout() {
    as_child("retries_stop_at_the_export_timeout", || {
        let receiver = Receiver::start_with(|_| Reply::retry_after(503, 0));
        let guard = config(&receiver.endpoint())
            .with_timeout(Duration::from_millis(800))
            .with_scheduled_delay(Duration::from_secs(3600))
            .init()
            .unwrap();
        spans(5);
        assert!(guard.flush().is_err());
        let stats = guard.stats();
        drop(guard);
        assert_eq!(stats.failed, 5, "{stats:?}");
        let requests = receiver.requests().len();
        assert!(
            (2..=5).contains(&requests),
            "a few retries within 800 ms, not forever: {requests}"
        );
    });
}

#[test]
fn client_errors_are_not_retried_and_a_rejected_token_is_named() {
    let Some(out) = as_child(
        "client_errors_are_not_retried_and_a_rejected_token_is_named",
        || {
            for status in [400, 401, 403, 413] {
                let receiver = Receiver::start_with(move |_| Reply::status(status));
                let guard = config(&receiver.endpoint())
                    .with_scheduled_delay(Duration::from_secs(3600))
                    .init()
                    .unwrap();
                spans(3);
                assert!(guard.flush().is_err(), "HTTP {status}");
                let stats = guard.stats();
                drop(guard);
                assert_eq!(stats.failed, 3, "HTTP {status}: {stats:?}");
                assert_eq!(receiver.requests().len(), 1, "HTTP {status}: no retry");
            }
        },
    ) else {
        return;
    };
    // One warning per pipeline, each saying what to fix.
    assert_eq!(lines_with(&out.stderr, " span(s) to "), 4, "{out:?}");
    assert_eq!(
        lines_with(&out.stderr, "rejected the token (HTTP 401)"),
        1,
        "{out:?}"
    );
    assert_eq!(
        lines_with(&out.stderr, "rejected the token (HTTP 403)"),
        1,
        "{out:?}"
    );
    assert_eq!(
        lines_with(&out.stderr, "too large (HTTP 413)"),
        1,
        "{out:?}"
    );
}

#[test]
fn a_partial_success_is_counted_and_reported_once() {
    let Some(out) = as_child("a_partial_success_is_counted_and_reported_once", || {
        let receiver = Receiver::start_with(|_| Reply::partial_success(2, "span too old"));
        let guard = config(&receiver.endpoint())
            .with_scheduled_delay(Duration::from_secs(3600))
            .init()
            .unwrap();
        spans(5);
        guard.flush().unwrap();
        spans(5);
        guard.flush().unwrap();
        let stats = guard.stats();
        drop(guard);
        assert_eq!(stats.rejected, 4, "{stats:?}");
        assert_eq!(stats.exported, 6, "{stats:?}");
    }) else {
        return;
    };
    assert_eq!(
        lines_with(&out.stderr, "rejected 2 span(s) of an export: span too old"),
        1,
        "{out:?}"
    );
}

#[test]
fn export_that_recovers_says_so_once() {
    let Some(out) = as_child("export_that_recovers_says_so_once", || {
        let (receiver, _) = failing_first(2, Reply::status(400));
        let guard = config(&receiver.endpoint())
            .with_scheduled_delay(Duration::from_secs(3600))
            .init()
            .unwrap();
        for _ in 0..3 {
            spans(1);
            let _ = guard.flush();
        }
        let stats = guard.stats();
        drop(guard);
        assert_eq!((stats.failed, stats.exported), (2, 1), "{stats:?}");
    }) else {
        return;
    };
    assert_eq!(lines_with(&out.stderr, " span(s) to "), 1, "{out:?}");
    assert_eq!(lines_with(&out.stderr, "export works again"), 1, "{out:?}");
}

#[test]
fn a_healthy_endpoint_gets_every_span_ended_before_the_guard_drops() {
    as_child(
        "a_healthy_endpoint_gets_every_span_ended_before_the_guard_drops",
        || {
            let receiver = Receiver::start();
            let guard = config(&receiver.endpoint())
                .with_max_queue_size(4096)
                .init()
                .unwrap();
            let threads: Vec<_> = (0..4)
                .map(|_| std::thread::spawn(|| spans(1_000)))
                .collect();
            for thread in threads {
                thread.join().unwrap();
            }
            let stats = shut_down(guard);
            assert_eq!(stats.exported, 4_000, "{stats:?}");
            assert_eq!(stats.dropped + stats.failed + stats.rejected, 0);
            assert_eq!(receiver.span_count(), 4_000);
            for request in receiver.requests() {
                assert_eq!(request.header("x-vaxila-token"), Some(TOKEN));
                assert_eq!(request.header("x-api-key"), Some(HEADER_SECRET));
            }
        },
    );
}

#[test]
fn a_slow_endpoint_is_cut_off_at_the_timeout_and_the_next_export_goes_on() {
    let Some(out) = as_child(
        "a_slow_endpoint_is_cut_off_at_the_timeout_and_the_next_export_goes_on",
        || {
            // The first answer comes after the timeout; the ones after at once.
            let (receiver, _) = failing_first(
                1,
                Reply {
                    delay: Duration::from_secs(3),
                    ..Reply::ok()
                },
            );
            let guard = config(&receiver.endpoint())
                .with_timeout(Duration::from_millis(300))
                .with_scheduled_delay(Duration::from_secs(3600))
                .init()
                .unwrap();
            spans(4);
            assert!(guard.flush().is_err(), "the slow answer is a failure");
            spans(6);
            guard.flush().unwrap();
            let stats = guard.stats();
            drop(guard);
            assert_eq!((stats.failed, stats.exported), (4, 6), "{stats:?}");
        },
    ) else {
        return;
    };
    assert_eq!(lines_with(&out.stderr, "export works again"), 1, "{out:?}");
}

#[test]
fn a_slow_answer_does_not_hold_back_the_next_request() {
    as_child("a_slow_answer_does_not_hold_back_the_next_request", || {
        // The first request is answered after 3 s, as over a long round
        // trip; the ones after it at once.
        let (receiver, _) = failing_first(
            1,
            Reply {
                delay: Duration::from_secs(3),
                ..Reply::ok()
            },
        );
        let guard = config(&receiver.endpoint())
            .with_timeout(Duration::from_secs(10))
            .with_max_export_batch_size(10)
            .with_scheduled_delay(Duration::from_secs(3600))
            .init()
            .unwrap();
        spans(10);
        assert!(receiver.wait_for_spans(10, Duration::from_secs(2)));
        spans(10);
        // Sent while the first is still waiting for its answer.
        assert!(
            receiver.wait_for_spans(20, Duration::from_secs(2)),
            "the second request waited for the first one's answer"
        );
        guard.flush().unwrap();
        let stats = guard.stats();
        drop(guard);
        assert_eq!((stats.exported, stats.failed), (20, 0), "{stats:?}");
    });
}

#[test]
fn ending_spans_never_waits_for_a_stuck_export() {
    as_child("ending_spans_never_waits_for_a_stuck_export", || {
        let receiver = Receiver::start_with(|_| Reply::hang());
        // An export that would hold the caller for a minute, if it could.
        let guard = config(&receiver.endpoint())
            .with_timeout(Duration::from_secs(60))
            .with_max_queue_size(1_000)
            .with_max_export_batch_size(100)
            .init()
            .unwrap();
        let started = Instant::now();
        spans(20_000);
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(30),
            "ending spans waited for the export: {took:?}"
        );
        let stats = guard.stats();
        assert_eq!(stats.total(), 20_000, "{stats:?}");
        // Kept: the queue, and three batches (two being sent, one encoded).
        assert!(stats.dropped >= 20_000 - 1_000 - 3 * 100, "{stats:?}");
        // The guard would wait the timeout for the hung request: leave it.
        std::mem::forget(guard);
    });
}

#[test]
fn a_span_ends_into_the_pipeline_it_started_in_never_a_later_one() {
    as_child(
        "a_span_ends_into_the_pipeline_it_started_in_never_a_later_one",
        || {
            let first = Receiver::start();
            let guard = config(&first.endpoint()).init().unwrap();
            let (started, ended) = (
                std::sync::mpsc::channel::<()>(),
                std::sync::mpsc::channel::<()>(),
            );
            let late = std::thread::spawn(move || {
                vaxila::span("late").in_scope(|_| {
                    started.0.send(()).unwrap();
                    // Still running while its pipeline is replaced.
                    ended.1.recv().unwrap();
                });
            });
            started.1.recv().unwrap();
            drop(guard);
            let second = Receiver::start();
            let guard = config(&second.endpoint()).init().unwrap();
            ended.0.send(()).unwrap();
            late.join().unwrap();
            spans(2);
            let stats = shut_down(guard);
            let names: Vec<_> = second.spans().into_iter().map(|s| s.name).collect();
            assert_eq!(
                names,
                ["work", "work"],
                "the first pipeline's span went elsewhere"
            );
            assert_eq!(stats.total(), 2, "{stats}");
            assert!(first.spans().is_empty());
        },
    );
}

#[test]
fn a_queue_smaller_than_two_batches_keeps_exporting_without_the_timer() {
    as_child(
        "a_queue_smaller_than_two_batches_keeps_exporting_without_the_timer",
        || {
            let receiver = Receiver::start();
            let guard = config(&receiver.endpoint())
                .with_max_queue_size(300)
                .with_max_export_batch_size(256)
                .with_scheduled_delay(Duration::from_secs(2))
                .init()
                .unwrap();
            // A first partial batch, exported by the timer: the count of
            // spans is no longer a multiple of the batch size after it.
            spans(100);
            let deadline = Instant::now() + Duration::from_secs(10);
            while receiver.span_count() < 100 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            assert_eq!(receiver.span_count(), 100);
            // More than the queue holds, at once: a full queue is a batch.
            spans(1_000);
            let wait = Instant::now();
            while receiver.span_count() < 356 && wait.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert!(
                wait.elapsed() < Duration::from_millis(1500),
                "a batch waited {:?} for the 2 s timer",
                wait.elapsed()
            );
            let stats = shut_down(guard);
            assert_eq!(stats.total(), 1_100, "{stats}");
        },
    );
}

#[test]
fn spans_ended_after_the_queue_was_full_are_exported_once_it_has_room() {
    as_child(
        "spans_ended_after_the_queue_was_full_are_exported_once_it_has_room",
        || {
            let receiver = Receiver::start();
            let guard = config(&receiver.endpoint())
                .with_max_queue_size(64)
                .with_max_export_batch_size(32)
                .with_scheduled_delay(Duration::from_secs(30))
                .init()
                .unwrap();
            // Far faster than the endpoint takes them: the queue fills, and
            // this thread drops what it ends while it stays full.
            spans(20_000);
            let full = guard.stats();
            assert!(full.dropped > 0, "the queue never filled: {full}");
            guard.flush().unwrap();
            let before = guard.stats();
            assert_eq!(before.queued, 0, "{before}");
            // Room again: every span ended now is queued and exported, on
            // this thread and on another that never saw the queue full.
            for i in 0..10 {
                vaxila::span("after").attr("i", i).in_scope(|_| ());
            }
            std::thread::spawn(|| vaxila::span("after").in_scope(|_| ()))
                .join()
                .unwrap();
            guard.flush().unwrap();
            let after = shut_down(guard);
            assert_eq!(after.dropped, before.dropped, "{before} then {after}");
            let names = receiver.spans().into_iter().filter(|s| s.name == "after");
            assert_eq!(names.count(), 11, "{after}");
            assert_eq!(after.total(), 20_011, "{after}");
        },
    );
}
