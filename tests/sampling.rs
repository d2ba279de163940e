//! Sampling decisions that reach past one span: what the body of an
//! unsampled span inherits, and what an unsampled client span tells the
//! next service. One process, one pipeline (ratio 0: every root dropped).

use vaxila::opentelemetry::Context;
use vaxila::opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use vaxila::testing::capture;

#[vaxila::instrument]
fn work() {}

fn remote(sampled: bool) -> Context {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c_u128),
        SpanId::from(0xb7ad_6b71_6920_3331_u64),
        flags,
        true,
        TraceState::default(),
    ))
}

#[test]
fn unsampled_spans_hand_their_decision_to_their_bodies_and_downstream() {
    let _guard = vaxila::Config::default()
        .with_exporter(vaxila::Exporter::None)
        .with_sampler_ratio(0.0)
        .with_tracing_bridge(false)
        .init()
        .unwrap();

    // A sampled caller keeps its trace sampled (parent-based), even at ratio 0.
    let spans = capture(|| {
        vaxila::span("request")
            .parent(&remote(true))
            .in_scope(|_| work())
    });
    assert_eq!(spans.tree(), "request\n  work\n");

    // A new trace at ratio 0 is dropped, and so is everything in it: its
    // body does not run in the sampled request's context.
    let spans = capture(|| {
        vaxila::span("request")
            .parent(&remote(true))
            .in_scope(|_| vaxila::span("nightly").root().in_scope(|_| work()));
    });
    assert_eq!(
        spans.tree(),
        "request\n",
        "the dropped root's body is its own"
    );

    // An explicit parent that is not sampled: the body runs under it, not
    // under the sampled span that is current.
    let spans = capture(|| {
        vaxila::span("request").parent(&remote(true)).in_scope(|_| {
            vaxila::span("job")
                .parent(&remote(false))
                .in_scope(|_| work());
        });
    });
    assert_eq!(spans.tree(), "request\n");

    // An unsampled client span still has ids to send on (`traceparent`
    // with the sampled flag off), so the next service does not sample
    // either; an internal one needs none.
    let client = vaxila::span("GET")
        .kind(vaxila::SpanKind::Client)
        .in_scope(|span| span.span_context());
    assert!(client.is_valid(), "a client span propagates its decision");
    assert!(!client.is_sampled());
    let internal = vaxila::span("step").in_scope(|span| span.span_context());
    assert!(!internal.is_valid(), "nothing to propagate, nothing stored");

    // Under an unsampled caller, a client span passes the caller's decision on.
    let client = vaxila::span("GET")
        .kind(vaxila::SpanKind::Client)
        .parent(&remote(false))
        .in_scope(|_| Context::current().span().span_context().clone());
    assert_eq!(
        client.trace_id(),
        remote(false).span().span_context().trace_id()
    );
    assert!(!client.is_sampled());
}
