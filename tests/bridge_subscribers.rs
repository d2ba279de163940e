//! `init` and the program's own `tracing` subscriber, in every order: a
//! subscriber with `vaxila::tracing_layer()` set before `init`, a layer added
//! after an `init` with `bridge = false`, a subscriber without the layer, a
//! provider installed by hand, and `init` twice.
//!
//! The global subscriber can be set once per process, so each scenario is a
//! test that runs alone in a child process (`run_child`); in this process
//! they return at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use vaxila::testing::capture;
use vaxila::tracing::{self, Subscriber, span};
use vaxila_test_support::{ChildOutput, is_child, run_child};

const HINT: &str = "vaxila: a global `tracing` subscriber is already set";

fn scenario(name: &str) -> ChildOutput {
    let child = run_child(&format!("child_{name}"), name, &["--exact"]);
    assert!(child.success, "{child:?}");
    assert!(child.stdout.contains("1 passed"), "{child:?}");
    child
}

fn config() -> vaxila::Config {
    vaxila::Config::default()
        .with_env([("A", "b")])
        .with_exporter(vaxila::Exporter::None)
}

#[vaxila::instrument]
fn handler() {
    tracing::info_span!("db_query").in_scope(|| {});
}

/// A layer of the program's own, that counts the `tracing` spans it sees.
#[derive(Clone, Default)]
struct CountSpans(Arc<AtomicUsize>);

impl<S: Subscriber> Layer<S> for CountSpans {
    fn on_new_span(&self, _: &span::Attributes<'_>, _: &span::Id, _: Context<'_, S>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn child_own_subscriber_before_init() {
    if !is_child("own_subscriber_before_init") {
        return;
    }
    let counted = CountSpans::default();
    tracing_subscriber::registry()
        .with(counted.clone())
        .with(vaxila::tracing_layer())
        .init();
    let _guard = config()
        .with_tracing_filter("info,chatty=off")
        .init()
        .unwrap();
    let spans = capture(|| {
        tracing::info_span!("request").in_scope(|| {
            handler();
            tracing::info_span!(target: "chatty", "chatter").in_scope(|| {});
            tracing::debug_span!("detail").in_scope(|| {});
        });
    });
    // Exported once each, through the filter `init` resolved after the
    // layer was built...
    assert_eq!(spans.tree(), "request\n  handler\n    db_query\n");
    // ...which filters the layer's spans only: the program's layer saw all four.
    assert_eq!(counted.0.load(Ordering::SeqCst), 4);
}

#[test]
fn a_subscriber_with_the_layer_set_before_init_exports_each_span_once_and_silently() {
    let child = scenario("own_subscriber_before_init");
    assert!(!child.stderr.contains(HINT), "{child:?}");
}

#[test]
fn child_layer_after_init() {
    if !is_child("layer_after_init") {
        return;
    }
    let _guard = config().with_tracing_bridge(false).init().unwrap();
    assert!(
        !tracing::dispatcher::has_been_set(),
        "bridge = false installs no subscriber"
    );
    tracing_subscriber::registry()
        .with(vaxila::tracing_layer())
        .init();
    let spans = capture(|| tracing::info_span!("request").in_scope(handler));
    assert_eq!(spans.tree(), "request\n  handler\n    db_query\n");
}

#[test]
fn a_layer_added_after_an_init_with_bridge_false_exports() {
    let child = scenario("layer_after_init");
    assert!(!child.stderr.contains(HINT), "{child:?}");
}

#[test]
fn child_foreign_subscriber() {
    if !is_child("foreign_subscriber") {
        return;
    }
    tracing_subscriber::registry()
        .with(CountSpans::default())
        .init();
    let _guard = config().init().expect("init does not fail");
    let spans = capture(|| tracing::info_span!("unseen").in_scope(handler));
    assert_eq!(spans.tree(), "handler\n");
}

#[test]
fn init_with_a_subscriber_without_the_layer_works_and_says_how_to_add_it() {
    let child = scenario("foreign_subscriber");
    let hints: Vec<&str> = child.stderr.lines().filter(|l| l.contains(HINT)).collect();
    assert_eq!(hints.len(), 1, "{child:?}");
    assert!(
        hints[0].contains("add `vaxila::tracing_layer()` to that subscriber"),
        "{}",
        hints[0]
    );
    assert!(
        hints[0].contains("`[tracing] bridge = false`"),
        "{}",
        hints[0]
    );
}

#[test]
fn child_own_provider() {
    if !is_child("own_provider") {
        return;
    }
    tracing_subscriber::registry()
        .with(vaxila::tracing_layer())
        .init();
    tracing::info_span!("before_any_provider").in_scope(handler);
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    vaxila::set_tracer_provider(provider.clone());
    tracing::info_span!("request").in_scope(handler);
    tracing::debug_span!("below_the_default_filter").in_scope(|| {});
    let mut names: Vec<_> = exporter
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .map(|s| s.name.into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["db_query", "handler", "request"]);
    provider.shutdown().unwrap();
}

#[test]
fn a_provider_set_by_hand_gets_the_layers_spans_from_then_on() {
    scenario("own_provider");
}

#[test]
fn child_init_twice() {
    if !is_child("init_twice") {
        return;
    }
    let guard = config().with_tracing_filter("info").init().unwrap();
    let spans = capture(|| tracing::info_span!("request").in_scope(handler));
    assert_eq!(spans.tree(), "request\n  handler\n    db_query\n");
    drop(guard);

    let _guard = config().with_tracing_filter("warn").init().unwrap();
    let spans = capture(|| {
        tracing::info_span!("request").in_scope(handler);
        tracing::warn_span!("slow_request").in_scope(|| {});
    });
    assert_eq!(spans.tree(), "handler\nslow_request\n");
}

#[test]
fn a_second_init_keeps_its_subscriber_and_applies_its_own_filter() {
    let child = scenario("init_twice");
    assert!(!child.stderr.contains(HINT), "{child:?}");
}
