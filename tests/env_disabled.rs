//! `OTEL_SDK_DISABLED=true` in the real environment: `init` succeeds, installs
//! nothing and sends nothing, even with a token and an endpoint set.
//!
//! It sets the process environment, so it is the only test of this binary.

use vaxila::opentelemetry::trace::Tracer as _;
use vaxila_test_support::Receiver;

#[test]
fn sdk_disabled_in_the_environment_sends_nothing() {
    static META: vaxila::__private::Meta = vaxila::__private::Meta::new(
        "work",
        vaxila::SpanKind::Internal,
        "env_disabled::work",
        file!(),
        line!(),
    );
    let receiver = Receiver::start();
    for (var, value) in [
        ("OTEL_SDK_DISABLED", "true"),
        ("VAXILA_TOKEN", "vx_token"),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            receiver.endpoint().as_str(),
        ),
    ] {
        // SAFETY: the only test of this binary, before any thread of ours starts.
        unsafe { std::env::set_var(var, value) }
    }

    let guard = vaxila::init().unwrap();
    let span = vaxila::__private::Span::start(&META);
    assert!(
        !span.is_recording(),
        "instrumented code stays a bare function"
    );
    drop(span);
    vaxila::opentelemetry::global::tracer("t").in_span("api", |_| {});
    guard.flush().unwrap();
    drop(guard);

    assert!(receiver.requests().is_empty());
}
