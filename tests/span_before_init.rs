//! Before `init` the span builder and `current_span` cost nothing and change nothing.

use vaxila::opentelemetry::trace::TraceContextExt as _;

#[test]
fn before_init_blocks_run_unchanged_and_nothing_is_current() {
    let out = vaxila::span("nothing").attr("id", 1).in_scope(|span| {
        assert!(!span.is_recording());
        assert!(!vaxila::opentelemetry::Context::current().has_active_span());
        let current = vaxila::current_span();
        current.set_attribute("ignored", true);
        assert!(!current.is_recording());
        41 + 1
    });
    assert_eq!(out, 42);
    let err = vaxila::span("nothing").try_in_scope(|_| "x".parse::<u8>());
    assert!(err.is_err());
}
