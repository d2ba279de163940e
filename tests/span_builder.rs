//! `vaxila::span(..)` and `vaxila::current_span()`, asserted on captured spans.

use std::future::Future;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};

use vaxila::SpanKind;
use vaxila::opentelemetry::trace::{Status, Tracer as _};
use vaxila::opentelemetry::{Context, Value};
use vaxila::testing::capture;

/// Polls a future to completion on this thread, so `capture` sees its spans.
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = TaskContext::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = future.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[test]
fn in_scope_records_name_kind_attributes_and_location_and_returns_the_value() {
    let mut out = 0;
    let line = line!() + 2;
    let spans = capture(|| {
        out = vaxila::span("load_rows")
            .kind(SpanKind::Client)
            .attr("id", 42)
            .attr("table", "users")
            .attr("missing", None::<i64>)
            .in_scope(|span| {
                span.set_attribute("rows", 3usize);
                7
            });
    });
    assert_eq!(out, 7);
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(span.name, "load_rows");
    assert_eq!(span.kind, SpanKind::Client);
    assert_eq!(span.attr("id"), Some(&Value::I64(42)));
    assert_eq!(span.attr("table"), Some(&Value::from("users")));
    assert_eq!(span.attr("missing"), None);
    assert_eq!(span.attr("rows"), Some(&Value::I64(3)));
    assert_eq!(span.attr("code.file.path"), Some(&Value::from(file!())));
    assert_eq!(
        span.attr("code.line.number"),
        Some(&Value::I64(line.into()))
    );
    assert_eq!(span.status, Status::Unset);
    assert!(span.is_root());
}

#[test]
fn spans_inside_in_scope_are_its_children() {
    let spans = capture(|| {
        vaxila::span("outer").in_scope(|_| {
            vaxila::span("inner").in_scope(|_| ());
            vaxila::opentelemetry::global::tracer("raw").in_span("raw", |_| ());
        });
    });
    let outer = spans.named("outer");
    for child in ["inner", "raw"] {
        let child = spans.named(child);
        assert_eq!(child.parent_span_id, outer.span_id);
        assert_eq!(child.trace_id, outer.trace_id);
    }
}

#[test]
fn parent_and_root_choose_the_parent() {
    let spans = capture(|| {
        let remembered = vaxila::span("request").in_scope(|_| Context::current());
        vaxila::span("elsewhere").in_scope(|_| {
            vaxila::span("job").parent(&remembered).in_scope(|_| ());
            vaxila::span("fresh").root().in_scope(|_| ());
        });
    });
    let request = spans.named("request");
    let job = spans.named("job");
    assert_eq!(job.parent_span_id, request.span_id);
    assert_eq!(job.trace_id, request.trace_id);
    let fresh = spans.named("fresh");
    assert!(fresh.is_root());
    assert_ne!(fresh.trace_id, spans.named("elsewhere").trace_id);
}

#[test]
fn try_in_scope_marks_an_err_and_leaves_ok_unset() {
    let spans = capture(|| {
        let err = vaxila::span("bad").try_in_scope(|_| "x1".parse::<u8>());
        assert!(err.is_err());
        let ok = vaxila::span("good").try_in_scope(|_| "7".parse::<u8>());
        assert_eq!(ok, Ok(7));
    });
    let bad = spans.named("bad");
    assert_eq!(bad.status, Status::error("invalid digit found in string"));
    assert_eq!(
        bad.attr("error.type"),
        Some(&Value::from("core::num::error::ParseIntError"))
    );
    let exception = bad.event("exception").expect("an exception event");
    assert_eq!(
        exception.attr("exception.type"),
        Some(&Value::from("core::num::error::ParseIntError"))
    );
    assert_eq!(
        exception.attr("exception.message"),
        Some(&Value::from("invalid digit found in string"))
    );
    let good = spans.named("good");
    assert_eq!(good.status, Status::Unset);
    assert!(good.events.is_empty());
}

#[test]
fn in_scope_records_a_panic_and_lets_it_go_on() {
    let spans = capture(|| {
        let caught = std::panic::catch_unwind(|| {
            vaxila::span("boom").in_scope(|_| -> () { panic!("disk on fire") });
        });
        assert_eq!(
            caught.unwrap_err().downcast_ref::<&str>(),
            Some(&"disk on fire")
        );
    });
    let boom = spans.named("boom");
    assert_eq!(boom.status, Status::error("disk on fire"));
    let exception = boom.event("exception").expect("an exception event");
    assert_eq!(
        exception.attr("exception.type"),
        Some(&Value::from("panic"))
    );
    assert_eq!(
        exception.attr("exception.message"),
        Some(&Value::from("disk on fire"))
    );
}

#[test]
fn instrument_starts_at_first_poll_and_is_current_on_every_poll() {
    let spans = capture(|| {
        let future = vaxila::span("fetch")
            .attr("url", "https://example.com/")
            .instrument(async {
                vaxila::span("inside").in_scope(|_| ());
                YieldOnce(false).await;
                vaxila::current_span().set_attribute("after_await", true);
                5
            });
        // Created here, first polled inside "poller": the parent is "poller".
        let out = vaxila::span("poller").in_scope(|_| block_on(future));
        assert_eq!(out, 5);
    });
    let fetch = spans.named("fetch");
    assert_eq!(fetch.parent_span_id, spans.named("poller").span_id);
    assert_eq!(
        fetch.attr("url"),
        Some(&Value::from("https://example.com/"))
    );
    assert_eq!(fetch.attr("after_await"), Some(&Value::Bool(true)));
    assert_eq!(spans.named("inside").parent_span_id, fetch.span_id);
    assert_eq!(fetch.attr("vaxila.cancelled"), None);
}

#[test]
fn instrument_takes_kind_parent_and_root_like_in_scope() {
    let spans = capture(|| {
        let remembered = vaxila::span("request").in_scope(|_| Context::current());
        vaxila::span("elsewhere").in_scope(|_| {
            block_on(
                vaxila::span("job")
                    .kind(SpanKind::Consumer)
                    .parent(&remembered)
                    .instrument(YieldOnce(false)),
            );
            block_on(vaxila::span("fresh").root().instrument(async {}));
        });
    });
    let request = spans.named("request");
    let job = spans.named("job");
    assert_eq!(job.kind, SpanKind::Consumer);
    assert_eq!(job.parent_span_id, request.span_id);
    assert_eq!(job.trace_id, request.trace_id);
    let fresh = spans.named("fresh");
    assert!(fresh.is_root());
    assert_ne!(fresh.trace_id, spans.named("elsewhere").trace_id);
}

#[test]
fn instrument_records_a_panic_and_lets_it_go_on() {
    let spans = capture(|| {
        let caught = std::panic::catch_unwind(|| {
            block_on(vaxila::span("boom").instrument(async {
                YieldOnce(false).await;
                panic!("queue on fire")
            }))
        });
        let payload = caught.unwrap_err();
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"queue on fire"));
    });
    let boom = spans.named("boom");
    assert_eq!(boom.status, Status::error("queue on fire"));
    let exception = boom.event("exception").expect("an exception event");
    assert_eq!(
        exception.attr("exception.type"),
        Some(&Value::from("panic"))
    );
    // A panic is not a cancellation, though the future never completed.
    assert_eq!(boom.attr("vaxila.cancelled"), None);
}

#[test]
fn instrument_dropped_before_completion_is_marked_cancelled() {
    let spans = capture(|| {
        let mut future = Box::pin(vaxila::span("slow").instrument(async {
            YieldOnce(false).await;
        }));
        let mut cx = TaskContext::from_waker(Waker::noop());
        assert!(future.as_mut().poll(&mut cx).is_pending());
        drop(future);
    });
    assert_eq!(
        spans.named("slow").attr("vaxila.cancelled"),
        Some(&Value::Bool(true))
    );
}

#[test]
fn try_instrument_marks_an_err() {
    let spans = capture(|| {
        let out = block_on(vaxila::span("parse").try_instrument(async { "z".parse::<i32>() }));
        assert!(out.is_err());
    });
    let parse = spans.named("parse");
    assert_eq!(parse.status, Status::error("invalid digit found in string"));
    assert!(parse.event("exception").is_some());
}

#[test]
fn instrument_on_a_tokio_runtime_nests_spans() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let spans = capture(|| {
        runtime.block_on(vaxila::span("outer").instrument(async {
            tokio::task::yield_now().await;
            vaxila::span("inner")
                .instrument(async { tokio::task::yield_now().await })
                .await;
        }));
    });
    assert_eq!(
        spans.named("inner").parent_span_id,
        spans.named("outer").span_id
    );
}

#[test]
fn current_span_adds_to_a_builder_span_and_a_raw_opentelemetry_span() {
    let spans = capture(|| {
        vaxila::span("builder").in_scope(|_| {
            let current = vaxila::current_span();
            current.set_attribute("cache.hit", true);
            current.add_event("retry", [("attempt", 2)]);
            current.record_error(&std::io::Error::other("gone"));
        });
        vaxila::opentelemetry::global::tracer("raw").in_span("raw", |_| {
            vaxila::current_span().set_attribute("from", "raw");
        });
    });
    let builder = spans.named("builder");
    assert_eq!(builder.attr("cache.hit"), Some(&Value::Bool(true)));
    let retry = builder.event("retry").expect("a retry event");
    assert_eq!(retry.attr("attempt"), Some(&Value::I64(2)));
    assert_eq!(builder.status, Status::error("gone"));
    assert_eq!(
        builder.attr("error.type"),
        Some(&Value::from("std::io::error::Error"))
    );
    assert_eq!(
        builder
            .event("exception")
            .and_then(|e| e.attr("exception.message")),
        Some(&Value::from("gone"))
    );
    assert_eq!(spans.named("raw").attr("from"), Some(&Value::from("raw")));
}

#[test]
fn current_span_outside_any_span_does_nothing() {
    let spans = capture(|| {
        let current = vaxila::current_span();
        assert!(!current.is_recording());
        assert!(!current.span_context().is_valid());
        current.set_attribute("lost", 1);
        current.add_event("lost", [("k", "v")]);
        current.record_error(&std::io::Error::other("lost"));
    });
    assert!(spans.is_empty());
}

#[test]
fn current_span_exposes_the_span_context() {
    let mut seen = None;
    let spans = capture(|| {
        seen = Some(vaxila::span("ids").in_scope(|span| {
            assert!(span.is_recording());
            assert_eq!(span.span_context(), vaxila::current_span().span_context());
            span.span_context()
        }));
    });
    let seen = seen.unwrap();
    let ids = spans.named("ids");
    assert_eq!(seen.trace_id(), ids.trace_id);
    assert_eq!(seen.span_id(), ids.span_id);
    assert!(seen.is_sampled());
}

/// A future that is pending once, to cross an `.await` boundary.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[test]
fn instrumented_futures_stay_send_so_they_can_be_spawned() {
    fn assert_send<T: Send>(_: &T) {}
    let future = vaxila::span("spawnable").instrument(async { tokio::task::yield_now().await });
    assert_send(&future);
    let future = vaxila::span("spawnable").try_instrument(async { Ok::<_, std::io::Error>(()) });
    assert_send(&future);
}

#[test]
fn tree_shows_the_shape_of_the_trace() {
    let spans = capture(|| {
        vaxila::span("request")
            .kind(SpanKind::Server)
            .in_scope(|_| {
                vaxila::span("load").kind(SpanKind::Client).in_scope(|_| ());
                let _ = vaxila::span("render").try_in_scope(|_| "x".parse::<u8>());
            });
        vaxila::span("second_root").in_scope(|_| ());
    });
    assert_eq!(
        spans.tree(),
        "request [server]\n  load [client]\n  render [error]\nsecond_root\n"
    );
    assert_eq!(spans.children_of(spans.named("request")).len(), 2);
}

#[test]
fn named_panics_with_the_spans_it_has() {
    let spans = capture(|| vaxila::span("only").in_scope(|_| ()));
    let message = std::panic::catch_unwind(|| {
        let _ = spans.named("other");
    })
    .unwrap_err();
    let message = message.downcast_ref::<String>().unwrap();
    assert!(message.contains("no span named \"other\""), "{message}");
    assert!(message.contains("only"), "{message}");
}

#[tokio::test]
async fn capture_future_sees_spans_across_awaits_on_a_current_thread_runtime() {
    let spans = vaxila::testing::capture_future(async {
        vaxila::span("a")
            .instrument(async { tokio::task::yield_now().await })
            .await;
        let handle = tokio::spawn(vaxila::span("spawned").instrument(async {}));
        handle.await.unwrap();
    })
    .await;
    assert_eq!(spans.tree(), "a\nspawned\n");
}

#[test]
fn capture_isolates_parallel_threads() {
    let threads: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let name = format!("thread_{i}");
                let spans = capture(|| {
                    for _ in 0..50 {
                        vaxila::span(name.clone()).in_scope(|_| ());
                    }
                });
                assert_eq!(spans.len(), 50);
                assert!(spans.iter().all(|s| s.name == name));
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn a_panic_inside_capture_leaves_later_captures_working() {
    let _ = std::panic::catch_unwind(|| capture(|| panic!("test body failed")));
    let spans = capture(|| vaxila::span("after").in_scope(|_| ()));
    assert_eq!(spans.tree(), "after\n");
}

#[vaxila::instrument(args(id))]
fn parse_with_macro(id: i64, input: &str) -> Result<u8, std::num::ParseIntError> {
    vaxila::current_span().add_event("step", [("n", 1)]);
    input.parse()
}

fn parse_with_builder(id: i64, input: &str) -> Result<u8, std::num::ParseIntError> {
    vaxila::span("parse_with_macro")
        .attr("id", id)
        .try_in_scope(|span| {
            span.add_event("step", [("n", 1)]);
            input.parse()
        })
}

/// Name, kind, attributes other than `code.*`, status and events, in a
/// comparable order.
fn essence(span: &vaxila::testing::CapturedSpan) -> impl PartialEq + std::fmt::Debug {
    let mut attributes: Vec<_> = span
        .attributes
        .iter()
        .filter(|(k, _)| !k.as_str().starts_with("code."))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    attributes.sort();
    let events: Vec<_> = span
        .events
        .iter()
        .map(|e| (e.name.clone(), format!("{:?}", e.attributes)))
        .collect();
    (
        span.name.clone(),
        span.kind.clone(),
        attributes,
        format!("{:?}", span.status),
        events,
    )
}

#[test]
fn the_builder_and_the_macro_record_the_same_span_for_the_same_work() {
    for input in ["7", "x"] {
        let mut results = (None, None);
        let by_macro = capture(|| results.0 = Some(parse_with_macro(3, input)));
        let by_builder = capture(|| results.1 = Some(parse_with_builder(3, input)));
        assert_eq!(results.0, results.1);
        assert_eq!(by_macro.len(), 1);
        assert_eq!(by_builder.len(), 1);
        assert_eq!(
            essence(&by_macro[0]),
            essence(&by_builder[0]),
            "input {input:?}"
        );
    }
}

#[test]
fn current_span_adds_to_an_instrumented_function() {
    let spans = capture(|| parse_with_macro(1, "9"));
    let span = spans.named("parse_with_macro");
    assert_eq!(
        span.event("step").and_then(|e| e.attr("n")),
        Some(&Value::I64(1))
    );
}
