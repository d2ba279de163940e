//! `vaxila::testing` as a user's test suite meets it: `capture` sees `tracing`
//! spans without `init`, keeps working after an `init` guard is dropped, and
//! `init_console` prints each test's spans with that test.
//!
//! Nothing here installs a pipeline or a global subscriber in this process:
//! the tests that do run in a child process of their own (`run_child`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use vaxila::opentelemetry::Value;
use vaxila::testing::{capture, capture_future};
use vaxila::tracing::{self, Instrument as _};
use vaxila_test_support::{is_child, run_child};

#[vaxila::instrument(args(id))]
fn checkout(id: i64) -> i64 {
    tracing::info_span!("reserve_stock", id).in_scope(|| {
        tracing::info!(items = 2, "reserved");
    });
    id
}

#[test]
fn capture_sees_tracing_spans_without_init() {
    let spans = capture(|| checkout(7));
    assert_eq!(spans.tree(), "checkout\n  reserve_stock\n");
    let reserve = spans.named("reserve_stock");
    assert_eq!(reserve.attr("id"), Some(&Value::I64(7)));
    assert_eq!(reserve.events[0].name, "reserved");
}

#[test]
fn capture_future_sees_tracing_spans_without_init() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let spans = runtime.block_on(capture_future(async {
        async {
            tokio::task::yield_now().await;
            checkout(8);
        }
        .instrument(tracing::info_span!("request"))
        .await;
    }));
    assert_eq!(spans.tree(), "request\n  checkout\n    reserve_stock\n");
}

#[test]
fn capture_sees_nothing_of_another_thread() {
    let spans = capture(|| {
        std::thread::spawn(|| checkout(9)).join().unwrap();
        tracing::info_span!("mine").in_scope(|| {});
    });
    assert_eq!(spans.tree(), "mine\n");
}

/// `tracing` remembers, per callsite, whether any subscriber wants it; a
/// callsite first reached on a thread with no subscriber must still be
/// captured later on a thread that has one.
#[test]
fn capture_sees_a_tracing_span_first_reached_on_a_thread_without_a_subscriber() {
    fn audit() {
        tracing::info_span!("audit").in_scope(|| {});
    }
    // The testing kit's subscriber exists from here on.
    let _ = capture(|| {});
    std::thread::spawn(audit).join().unwrap();
    assert_eq!(capture(audit).tree(), "audit\n");
}

/// A child scenario: `init`, a dropped guard, then `capture` as before.
#[test]
fn child_capture_after_init() {
    if !is_child("capture_after_init") {
        return;
    }
    assert_eq!(capture(|| checkout(1)).len(), 2);
    let guard = vaxila::Config::default()
        .with_env([("A", "b")])
        .with_exporter(vaxila::Exporter::None)
        .init()
        .unwrap();
    let during = capture(|| checkout(2));
    assert_eq!(during.tree(), "checkout\n  reserve_stock\n");
    drop(guard);
    let after = capture(|| checkout(3));
    assert_eq!(after.tree(), "checkout\n  reserve_stock\n");
    assert_eq!(after.named("checkout").attr("id"), Some(&Value::I64(3)));
}

#[test]
fn capture_records_after_an_init_guard_is_dropped() {
    let child = run_child(
        "child_capture_after_init",
        "capture_after_init",
        &["--exact"],
    );
    assert!(child.success, "{child:?}");
    assert!(child.stdout.contains("1 passed"), "{child:?}");
}

/// Waits until both console children are running, so that their spans interleave.
fn meet_the_other_test() {
    static ARRIVED: AtomicUsize = AtomicUsize::new(0);
    ARRIVED.fetch_add(1, Ordering::SeqCst);
    let deadline = Instant::now() + Duration::from_secs(10);
    while ARRIVED.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[vaxila::instrument(args(order))]
fn place_order(order: &str) {
    tracing::info_span!("charge_card", order).in_scope(|| {
        std::thread::sleep(Duration::from_millis(5));
        tracing::warn!("slow payment provider");
    });
}

#[vaxila::instrument(args(order))]
fn refund_order(order: &str) {
    tracing::info_span!("reverse_charge", order).in_scope(|| {
        std::thread::sleep(Duration::from_millis(5));
    });
}

/// A child scenario: prints its spans, then fails.
#[test]
fn child_console_failing() {
    if !is_child("console") {
        return;
    }
    vaxila::testing::init_console();
    meet_the_other_test();
    for _ in 0..3 {
        place_order("A-1");
    }
    panic!("deliberate failure");
}

/// A child scenario: prints other spans at the same time, and passes; its
/// `capture` works beside the console.
#[test]
fn child_console_passing() {
    if !is_child("console") {
        return;
    }
    vaxila::testing::init_console();
    meet_the_other_test();
    for _ in 0..3 {
        let spans = capture(|| refund_order("B-2"));
        assert_eq!(spans.tree(), "refund_order\n  reverse_charge\n");
    }
}

#[test]
fn init_console_prints_each_tests_spans_under_that_test_when_it_fails() {
    let child = run_child("child_console_", "console", &["--test-threads=2"]);
    assert!(!child.success, "{child:?}");
    assert!(
        child.stdout.contains("1 passed; 1 failed"),
        "both children ran: {child:?}"
    );
    let section = child
        .section("child_console_failing")
        .unwrap_or_else(|| panic!("no section for the failing test: {child:?}"));
    // Each trace printed as its root ended, parent first, children indented,
    // with the test's panic after them.
    let lines: Vec<&str> = section.lines().collect();
    let trees: Vec<&str> = lines
        .iter()
        .filter(|l| l.contains(" span="))
        .map(|l| l.split_once(' ').unwrap().1.split(" span=").next().unwrap())
        .map(|l| l.rsplit_once(' ').unwrap().0)
        .collect();
    assert_eq!(
        trees,
        ["place_order", "  charge_card"].repeat(3),
        "{section}"
    );
    assert!(section.contains("order=\"A-1\""), "{section}");
    assert!(section.contains("(1 event)"), "{section}");
    assert!(section.contains("deliberate failure"), "{section}");
    assert!(
        section.find("place_order") < section.find("deliberate failure"),
        "{section}"
    );
    // The passing test's spans are nowhere: not in this section, not on stderr.
    assert!(!child.stdout.contains("refund_order"), "{child:?}");
    assert!(!child.stderr.contains("refund_order"), "{child:?}");
    assert!(!child.stderr.contains("place_order"), "{child:?}");
}
