//! The real pipeline of `init` against a real OTLP/HTTP receiver on 127.0.0.1.
//!
//! `init` is process-wide, so the tests of this file take turns (`SERIAL`);
//! the environment is injected with `Config::with_env`, never read.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use vaxila::opentelemetry::KeyValue;
use vaxila::opentelemetry::trace::{Span as _, TraceContextExt as _, Tracer as _};
use vaxila_test_support::{Receiver, Request, attr};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const TOKEN: &str = "vx_test_token_0123456789";

fn config(receiver: &Receiver, env: &[(&str, &str)]) -> vaxila::Config {
    vaxila::Config::from_toml_str(
        r#"
        [service]
        name = "checkout"
        version = "1.4.2"
        environment = "production"

        [exporter]
        headers = { "x-team" = "payments" }

        [resource]
        "team.name" = "payments"
        "#,
    )
    .unwrap()
    .with_endpoint(receiver.endpoint())
    // One request per test, whatever the machine's load: only the guard exports.
    .with_scheduled_delay(Duration::from_secs(3600))
    .with_env(env.iter().copied())
}

/// A parent span with an attribute and one child, through the OpenTelemetry global API.
fn record_order() {
    let tracer = vaxila::opentelemetry::global::tracer("orders");
    tracer.in_span("order", |cx| {
        cx.span().set_attribute(KeyValue::new("order.id", 42));
        tracer.in_span("charge", |cx| {
            cx.span().set_attribute(KeyValue::new("amount", 12.5));
        });
    });
}

fn only_request(receiver: &Receiver) -> Request {
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "expected one export request");
    requests.into_iter().next().unwrap()
}

#[test]
fn export_is_gzipped_protobuf_with_the_token_and_every_resource_attribute() {
    let _serial = serial();
    let receiver = Receiver::start();
    let guard = config(
        &receiver,
        &[
            ("VAXILA_TOKEN", TOKEN),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "k8s.pod.name=web-1,team.name=checkout%20team",
            ),
        ],
    )
    .init()
    .unwrap();
    record_order();
    drop(guard);

    let request = only_request(&receiver);
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/traces");
    assert_eq!(
        request.header("content-type"),
        Some("application/x-protobuf")
    );
    assert_eq!(request.header("content-encoding"), Some("gzip"));
    assert_eq!(&request.raw_body[..2], &[0x1f, 0x8b], "the body is gzip");
    assert_eq!(request.header("accept"), Some("*/*"));
    assert_eq!(request.header("x-vaxila-token"), Some(TOKEN));
    assert_eq!(request.header("x-team"), Some("payments"));

    let resource = request.resource_attributes();
    let get = |key: &str| {
        resource
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no resource attribute {key} in {resource:?}"))
    };
    assert_eq!(get("service.name"), "checkout");
    assert_eq!(get("service.version"), "1.4.2");
    assert_eq!(get("deployment.environment.name"), "production");
    assert_eq!(get("deployment.environment"), "production");
    assert!(!get("host.name").is_empty());
    assert_eq!(get("process.pid"), std::process::id().to_string());
    assert_eq!(get("telemetry.sdk.name"), "opentelemetry");
    assert_eq!(get("telemetry.sdk.language"), "rust");
    assert!(!get("telemetry.sdk.version").is_empty());
    assert_eq!(get("k8s.pod.name"), "web-1");
    // OTEL_RESOURCE_ATTRIBUTES beats [resource], key by key.
    assert_eq!(get("team.name"), "checkout team");
    assert!(resource.iter().all(|(k, _)| k != "process.command_args"));

    let spans = request.spans();
    let order = spans.iter().find(|s| s.name == "order").unwrap();
    let charge = spans.iter().find(|s| s.name == "charge").unwrap();
    assert_eq!(attr(order, "order.id").as_deref(), Some("42"));
    assert_eq!(attr(charge, "amount").as_deref(), Some("12.5"));
    assert_eq!(charge.parent_span_id, order.span_id);
    assert_eq!(charge.trace_id, order.trace_id);
    assert!(order.parent_span_id.is_empty());
}

#[test]
fn without_a_token_no_token_header_is_sent() {
    let _serial = serial();
    let receiver = Receiver::start();
    // An explicit endpoint makes `auto` send over OTLP even with no token (a Collector).
    let guard = config(&receiver, &[]).init().unwrap();
    record_order();
    drop(guard);

    let request = only_request(&receiver);
    assert_eq!(request.header("x-vaxila-token"), None);
    assert_eq!(request.header("accept"), Some("*/*"));
    assert_eq!(request.spans().len(), 2);
}

#[test]
fn compression_none_and_environment_headers_are_honoured() {
    let _serial = serial();
    let receiver = Receiver::start();
    let guard = config(
        &receiver,
        &[
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "none"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "x-team=platform,x-region=eu%2Dwest",
            ),
        ],
    )
    .with_header("x-region", "ap-northeast")
    .init()
    .unwrap();
    record_order();
    drop(guard);

    let request = only_request(&receiver);
    assert_eq!(request.header("content-encoding"), None);
    assert_eq!(request.raw_body, request.body);
    assert_eq!(
        request.header("x-team"),
        Some("platform"),
        "the environment beats the file"
    );
    assert_eq!(
        request.header("x-region"),
        Some("ap-northeast"),
        "code beats the environment"
    );
    assert_eq!(request.spans().len(), 2);
}

#[test]
fn flush_exports_at_once_without_waiting_for_the_batch_delay() {
    let _serial = serial();
    let receiver = Receiver::start();
    let guard = config(&receiver, &[]).init().unwrap();
    record_order();
    guard.flush().unwrap();
    assert_eq!(receiver.span_count(), 2);
    guard.shutdown().unwrap();
}

#[test]
fn ten_thousand_spans_ended_before_the_guard_drops_all_arrive() {
    const SPANS: usize = 10_000;
    let _serial = serial();
    let receiver = Receiver::start();
    // The queue holds every span: a full queue drops spans rather than block
    // the application, and this loop ends spans far faster than any export.
    let guard = config(&receiver, &[])
        .with_max_queue_size(SPANS)
        .init()
        .unwrap();
    let tracer = vaxila::opentelemetry::global::tracer("load");
    for i in 0..SPANS {
        let mut span = tracer.start("unit");
        span.set_attribute(KeyValue::new("i", i as i64));
        span.end();
    }
    drop(guard);

    assert_eq!(receiver.span_count(), SPANS);
    let mut seen: Vec<i64> = receiver
        .spans()
        .iter()
        .map(|s| attr(s, "i").unwrap().parse().unwrap())
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(seen.len(), SPANS, "every span once");
    assert!(
        receiver.requests().len() >= SPANS / 512,
        "sent in batches of at most 512"
    );
}

#[test]
fn a_second_init_is_an_error_until_the_first_guard_is_dropped() {
    let _serial = serial();
    let receiver = Receiver::start();
    let guard = config(&receiver, &[]).init().unwrap();
    let second = config(&receiver, &[]).init();
    assert!(
        matches!(second, Err(vaxila::Error::AlreadyInitialized)),
        "{second:?}"
    );
    drop(guard);
    let third = config(&receiver, &[])
        .init()
        .expect("init again after the guard is gone");
    third.shutdown().unwrap();
}

#[test]
fn sdk_disabled_sends_nothing_and_installs_nothing() {
    let _serial = serial();
    let receiver = Receiver::start();
    let guard = config(
        &receiver,
        &[("OTEL_SDK_DISABLED", "true"), ("VAXILA_TOKEN", TOKEN)],
    )
    .init()
    .unwrap();
    record_order();
    guard.flush().unwrap();
    drop(guard);
    assert!(receiver.requests().is_empty());
}

#[test]
fn spans_of_instrumented_code_go_to_the_same_pipeline() {
    static META: vaxila::__private::Meta = vaxila::__private::Meta::new(
        "instrumented",
        vaxila::SpanKind::Internal,
        "otlp_export::instrumented",
        file!(),
        line!(),
    );
    let _serial = serial();
    let receiver = Receiver::start();
    let guard = config(&receiver, &[]).init().unwrap();
    {
        let mut span = vaxila::__private::Span::start(&META);
        span.in_scope(record_order);
    }
    drop(guard);

    let spans = receiver.spans();
    let outer = spans.iter().find(|s| s.name == "instrumented").unwrap();
    let order = spans.iter().find(|s| s.name == "order").unwrap();
    assert_eq!(
        order.parent_span_id, outer.span_id,
        "API spans nest under instrumented ones"
    );
    assert_eq!(
        attr(outer, "code.function.name").as_deref(),
        Some("otlp_export::instrumented")
    );
}

#[test]
fn https_endpoints_speak_tls_through_rustls() {
    use std::io::Read as _;
    let _serial = serial();
    // A bare TCP listener: it only looks at the first bytes the exporter sends.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let first_bytes = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut bytes = [0u8; 3];
        stream.read_exact(&mut bytes).unwrap();
        bytes
    });
    let guard = vaxila::Config::default()
        .with_env([("VAXILA_TOKEN", TOKEN)])
        .with_endpoint(format!("https://127.0.0.1:{port}/v1/traces"))
        .with_timeout(Duration::from_secs(2))
        .init()
        .unwrap();
    record_order();
    // The handshake cannot complete (nobody answers it), so the export fails.
    assert!(guard.flush().is_err());
    drop(guard);
    let bytes = first_bytes.join().unwrap();
    assert_eq!(
        bytes,
        [0x16, 0x03, 0x01],
        "a TLS ClientHello record, not plain HTTP"
    );
}
