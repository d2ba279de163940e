//! The `tracing` bridge `init` installs: `tracing` spans and `#[vaxila::instrument]`
//! spans nest both ways, in sync code, across `.await` and across `tokio::spawn`;
//! events become span events; the filter decides which `tracing` spans exist.
//!
//! One pipeline for the whole binary (the subscriber is process-global), set
//! up once before any test looks at spans: `capture` sees what it exports,
//! and a loopback OTLP receiver gets it too.

use std::sync::{Barrier, OnceLock};
use std::time::Duration;

use vaxila::opentelemetry::Value;
use vaxila::opentelemetry::trace::{SpanKind, Status};
use vaxila::testing::{Spans, capture, capture_future};
use vaxila::tracing::{self, Instrument as _};
use vaxila_test_support::Receiver;

struct Pipeline {
    receiver: Receiver,
    guard: vaxila::Guard,
}

fn pipeline() -> &'static Pipeline {
    static PIPELINE: OnceLock<Pipeline> = OnceLock::new();
    PIPELINE.get_or_init(|| {
        let receiver = Receiver::start();
        let guard = vaxila::Config::default()
            .with_env([("A", "b")])
            .with_service_name("bridge-tests")
            .with_endpoint(receiver.endpoint())
            .with_scheduled_delay(Duration::from_secs(3600))
            .with_tracing_filter("info,noisy=off")
            .init()
            .expect("init");
        Pipeline { receiver, guard }
    })
}

/// The spans `f` finishes on this thread, with the pipeline installed.
fn spans_of<R>(f: impl FnOnce() -> R) -> Spans {
    pipeline();
    capture(f)
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

fn text(value: Option<&Value>) -> String {
    value.map(Value::to_string).unwrap_or_default()
}

#[vaxila::instrument]
fn handler() {
    let _db = tracing::info_span!("db_query", table = "users").entered();
    tracing::info!(rows = 3, "query done");
}

#[test]
fn an_info_span_entered_in_an_instrumented_fn_is_its_child() {
    let spans = spans_of(handler);
    assert_eq!(spans.tree(), "handler\n  db_query\n");
    let handler = spans.named("handler");
    let db = spans.named("db_query");
    assert_eq!(db.parent_span_id, handler.span_id);
    assert_eq!(db.trace_id, handler.trace_id);
    assert_eq!(text(db.attr("table")), "users");
    // The event is on the innermost span, the `tracing` one.
    assert_eq!(db.events.len(), 1, "{db:#?}");
    assert!(handler.events.is_empty(), "{handler:#?}");
}

#[vaxila::instrument(args(id))]
fn load_user(id: i64) -> i64 {
    id
}

#[test]
fn an_instrumented_fn_called_in_an_entered_tracing_span_is_its_child() {
    let spans = spans_of(|| {
        let request = tracing::info_span!("request", otel.kind = "server");
        let _entered = request.enter();
        load_user(7)
    });
    assert_eq!(spans.tree(), "request [server]\n  load_user\n");
    let request = spans.named("request");
    assert!(request.is_root());
    assert_eq!(spans.named("load_user").parent_span_id, request.span_id);
}

#[vaxila::instrument]
fn outer() {
    tracing::info_span!("middle").in_scope(|| {
        vaxila::span("inner").in_scope(|_| {
            tracing::info_span!("leaf").in_scope(|| {});
        });
    });
}

#[test]
fn the_two_kinds_of_span_alternate_at_any_depth() {
    let spans = spans_of(outer);
    assert_eq!(spans.tree(), "outer\n  middle\n    inner\n      leaf\n");
    let trace = spans[0].trace_id;
    assert!(spans.iter().all(|s| s.trace_id == trace), "{spans:#?}");
}

#[vaxila::instrument(args(id))]
async fn fetch(id: u64) -> u64 {
    tokio::task::yield_now().await;
    async {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    .instrument(tracing::info_span!("cache_lookup"))
    .await;
    id
}

#[test]
fn instrument_with_a_tracing_span_parents_instrumented_code_across_awaits() {
    pipeline();
    let spans = current_thread().block_on(capture_future(async {
        async {
            tokio::task::yield_now().await;
            assert_eq!(fetch(1).await, 1);
            tokio::time::sleep(Duration::from_millis(1)).await;
            assert_eq!(fetch(2).await, 2);
        }
        .instrument(tracing::info_span!("job"))
        .await;
    }));
    assert_eq!(
        spans.tree(),
        "job\n  fetch\n    cache_lookup\n  fetch\n    cache_lookup\n"
    );
}

#[test]
fn in_current_span_parents_a_spawned_task() {
    pipeline();
    let spans = current_thread().block_on(capture_future(async {
        let span = tracing::info_span!("dispatch");
        let task = {
            let _entered = span.enter();
            tokio::spawn(async { fetch(3).await }.in_current_span())
        };
        drop(span);
        assert_eq!(task.await.unwrap(), 3);
    }));
    assert_eq!(spans.tree(), "dispatch\n  fetch\n    cache_lookup\n");
}

#[test]
fn in_current_span_parents_a_task_spawned_on_another_thread_in_the_exported_trace() {
    let pipeline = pipeline();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    runtime.block_on(async {
        let span = tracing::info_span!("fan_out");
        let tasks: Vec<_> = {
            let _entered = span.enter();
            (10..13)
                .map(|id| tokio::spawn(async move { fetch(id).await }.in_current_span()))
                .collect()
        };
        drop(span);
        for task in tasks {
            task.await.unwrap();
        }
    });
    drop(runtime);
    pipeline.guard.flush().unwrap();

    let spans = pipeline.receiver.spans();
    let fan_out: Vec<_> = spans.iter().filter(|s| s.name == "fan_out").collect();
    let [fan_out] = fan_out[..] else {
        panic!("one fan_out span expected: {spans:#?}")
    };
    let fetches: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "fetch" && s.parent_span_id == fan_out.span_id)
        .collect();
    assert_eq!(fetches.len(), 3, "{spans:#?}");
    for fetch in fetches {
        assert_eq!(fetch.trace_id, fan_out.trace_id);
        let lookups = spans
            .iter()
            .filter(|s| s.name == "cache_lookup" && s.parent_span_id == fetch.span_id)
            .count();
        assert_eq!(lookups, 1, "{spans:#?}");
    }
}

#[vaxila::instrument]
fn charge() {
    tracing::warn!(attempt = 2, "card declined, retrying");
    tracing::error!(code = 402, "payment refused");
}

#[test]
fn a_tracing_error_in_an_instrumented_fn_is_an_exception_event_on_its_span() {
    let spans = spans_of(charge);
    let charge = spans.named("charge");
    let [warn, error] = &charge.events[..] else {
        panic!("{charge:#?}")
    };
    assert_eq!(warn.name, "card declined, retrying");
    assert_eq!(text(warn.attr("level")), "WARN");
    assert_eq!(warn.attr("attempt"), Some(&Value::I64(2)));
    assert_eq!(text(warn.attr("target")), "bridge");
    assert!(text(warn.attr("code.file.path")).ends_with("bridge.rs"));

    assert_eq!(error.name, "exception");
    assert_eq!(text(error.attr("exception.message")), "payment refused");
    assert_eq!(text(error.attr("level")), "ERROR");
    assert_eq!(error.attr("code"), Some(&Value::I64(402)));
    assert_eq!(charge.status, Status::error(""));
}

#[derive(Debug)]
struct Declined;

impl std::fmt::Display for Declined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("card declined")
    }
}

#[vaxila::instrument]
fn charge_or_fail() -> Result<(), Declined> {
    tracing::error!("zzz: logged before the failure is returned");
    Err(Declined)
}

#[test]
fn the_returned_error_describes_the_span_after_an_error_event() {
    let spans = spans_of(|| charge_or_fail().unwrap_err());
    let span = spans.named("charge_or_fail");
    assert_eq!(span.status, Status::error("card declined"));
    let exceptions: Vec<_> = span
        .events
        .iter()
        .map(|e| text(e.attr("exception.message")))
        .collect();
    assert_eq!(
        exceptions,
        [
            "zzz: logged before the failure is returned",
            "card declined"
        ]
    );
}

#[test]
fn an_error_field_without_a_message_describes_the_exception() {
    let spans = spans_of(|| {
        tracing::info_span!("parse").in_scope(|| {
            let err = "x".parse::<u8>().unwrap_err();
            tracing::error!(error = %err);
        });
    });
    let parse = spans.named("parse");
    let exception = parse.event("exception").expect("an exception event");
    assert_eq!(
        text(exception.attr("exception.message")),
        "invalid digit found in string"
    );
    assert!(matches!(parse.status, Status::Error { .. }));
}

#[test]
fn events_keep_typed_fields_and_go_to_an_explicit_parent() {
    let spans = spans_of(|| {
        let batch = tracing::info_span!("batch");
        tracing::info_span!("other").in_scope(|| {
            tracing::info!(
                parent: &batch,
                count = 3u64,
                big = u64::MAX,
                ratio = 0.5,
                ok = true,
                who = "me",
                debug = ?vec![1, 2],
                "flushed"
            );
        });
    });
    let batch = spans.named("batch");
    assert!(spans.named("other").events.is_empty());
    let [event] = &batch.events[..] else {
        panic!("{batch:#?}")
    };
    assert_eq!(event.name, "flushed");
    assert_eq!(event.attr("count"), Some(&Value::I64(3)));
    assert_eq!(text(event.attr("big")), u64::MAX.to_string());
    assert_eq!(event.attr("ratio"), Some(&Value::F64(0.5)));
    assert_eq!(event.attr("ok"), Some(&Value::Bool(true)));
    assert_eq!(text(event.attr("who")), "me");
    assert_eq!(text(event.attr("debug")), "[1, 2]");
}

#[test]
fn events_outside_every_span_and_below_the_filter_are_not_recorded() {
    let spans = spans_of(|| {
        tracing::error!("nobody's");
        tracing::info_span!("quiet").in_scope(|| tracing::debug!("below info"));
    });
    assert_eq!(spans.tree(), "quiet\n");
    assert!(spans.named("quiet").events.is_empty());
}

#[test]
fn current_span_inside_a_tracing_span_adds_to_that_span() {
    let spans = spans_of(|| {
        tracing::info_span!("lookup").in_scope(|| {
            vaxila::current_span().set_attribute("cache.hit", true);
            vaxila::current_span().add_event("retry", [("attempt", 2)]);
        });
    });
    let lookup = spans.named("lookup");
    assert_eq!(lookup.attr("cache.hit"), Some(&Value::Bool(true)));
    assert_eq!(
        lookup.event("retry").unwrap().attr("attempt"),
        Some(&Value::I64(2))
    );
}

#[test]
fn otel_fields_name_the_span_and_set_kind_and_status() {
    let spans = spans_of(|| {
        tracing::info_span!(
            "GET",
            otel.name = "GET /users/{id}",
            otel.kind = "client",
            otel.status_code = "error"
        )
        .in_scope(|| {});
    });
    let span = &spans[0];
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(span.kind, SpanKind::Client);
    assert!(matches!(span.status, Status::Error { .. }));
}

#[vaxila::instrument]
fn uses_a_noisy_library() {
    let _noisy = tracing::info_span!(target: "noisy", "noisy_internals").entered();
    tracing::info!(target: "noisy", "chatter");
    tracing::info!("kept, on the nearest exported span");
    let _detail = tracing::debug_span!("below_info").entered();
    tracing::info_span!("library_call").in_scope(|| load_user(1));
}

#[test]
fn filtered_out_spans_are_not_exported_and_their_children_hang_from_the_nearest_exported_ancestor()
{
    // `info,noisy=off`: target `noisy` and everything below INFO are left out.
    let spans = spans_of(uses_a_noisy_library);
    assert_eq!(
        spans.tree(),
        "uses_a_noisy_library\n  library_call\n    load_user\n"
    );
    let root = spans.named("uses_a_noisy_library");
    assert_eq!(spans.named("library_call").parent_span_id, root.span_id);
    let events: Vec<_> = root.events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(events, ["kept, on the nearest exported span"]);
}

#[test]
fn a_child_with_an_explicit_filtered_out_parent_starts_a_new_trace() {
    let spans = spans_of(|| {
        tracing::info_span!("request").in_scope(|| {
            let noisy = tracing::info_span!(target: "noisy", "noisy_internals");
            tracing::info_span!(parent: &noisy, "explicit_child").in_scope(|| {});
        });
    });
    assert_eq!(spans.tree(), "request\nexplicit_child\n");
    assert!(spans.named("explicit_child").is_root());
    assert_ne!(
        spans.named("explicit_child").trace_id,
        spans.named("request").trace_id
    );
}

#[test]
fn captures_in_parallel_threads_each_see_only_their_own_spans() {
    pipeline();
    let start = Barrier::new(2);
    let step = Barrier::new(2);
    let work = |me: &'static str| {
        capture(|| {
            start.wait();
            for i in 0..20 {
                tracing::info_span!("work", who = me, i).in_scope(|| {
                    vaxila::span(me).in_scope(|_| tracing::info!(who = me, "step"));
                });
                // Both threads are inside the loop at once, step by step.
                step.wait();
            }
        })
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| work("thread_a"));
        let b = s.spawn(|| work("thread_b"));
        (a.join().unwrap(), b.join().unwrap())
    });
    for (spans, me) in [(a, "thread_a"), (b, "thread_b")] {
        assert_eq!(spans.len(), 40, "{spans:#?}");
        for span in &spans {
            if span.name == "work" {
                assert_eq!(text(span.attr("who")), me);
                assert_eq!(spans.children_of(span).len(), 1);
            } else {
                assert_eq!(span.name, me);
                let [step] = &span.events[..] else {
                    panic!("{span:#?}")
                };
                assert_eq!(text(step.attr("who")), me);
            }
        }
    }
}
