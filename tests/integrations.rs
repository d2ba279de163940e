//! The axum layer, the reqwest middleware and the sqlx wrapper, in the
//! example service (`examples/axum_service.rs`) served on 127.0.0.1, with the
//! real pipeline exporting to a real OTLP receiver.
//!
//! `init` is process-wide, so the tests take turns (`SERIAL`).

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use vaxila_test_support::{Receiver, Span, attr};

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/axum_service.rs"]
mod service;

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// One or two copies of the service on loopback ports, exporting to a receiver.
struct World {
    receiver: Receiver,
    guard: Option<vaxila::Guard>,
    runtime: tokio::runtime::Runtime,
}

impl World {
    fn new() -> Self {
        let receiver = Receiver::start();
        let guard = vaxila::Config::default()
            .with_service_name("integrations")
            .with_endpoint(receiver.endpoint())
            .with_scheduled_delay(Duration::from_secs(3600))
            .init()
            .unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        Self {
            receiver,
            guard: Some(guard),
            runtime,
        }
    }

    /// Serves the example app on a free port; its inventory calls go to
    /// `inventory` (or to itself). Returns its base URL.
    fn serve(&self, inventory: Option<&str>) -> String {
        self.runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let inventory = inventory.map_or_else(|| base.clone(), str::to_owned);
            let state = service::AppState::new(service::database().await.unwrap(), inventory);
            tokio::spawn(async move {
                axum::serve(listener, service::app(state)).await.unwrap();
            });
            base
        })
    }

    /// A plain, uninstrumented GET; the status and body.
    fn get(&self, url: &str, headers: &[(&str, &str)]) -> (u16, String) {
        self.runtime.block_on(async {
            let mut request = reqwest::Client::new().get(url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        })
    }

    /// Every span exported, once the pipeline has flushed.
    fn spans(&mut self) -> Vec<Span> {
        // Server spans end as the response is sent: give the last one a moment.
        std::thread::sleep(Duration::from_millis(100));
        self.guard.take().unwrap().shutdown().unwrap();
        self.receiver.spans()
    }
}

fn named<'a>(spans: &'a [Span], name: &str) -> Vec<&'a Span> {
    spans.iter().filter(|s| s.name == name).collect()
}

fn one<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    match named(spans, name).as_slice() {
        [span] => span,
        other => panic!(
            "expected one span {name:?}, found {}: {spans:#?}",
            other.len()
        ),
    }
}

fn is_child(child: &Span, parent: &Span) -> bool {
    child.parent_span_id == parent.span_id && child.trace_id == parent.trace_id
}

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const STATUS_ERROR: i32 = 2;

fn status_code(span: &Span) -> i32 {
    span.status.as_ref().map_or(0, |s| s.code)
}

#[test]
fn a_request_is_a_server_span_over_its_handler_and_database_spans() {
    let _serial = serial();
    let mut world = World::new();
    let base = world.serve(None);
    let (status, body) = world.get(
        &format!("{base}/orders/1?secret=hunter2"),
        &[("user-agent", "integration-test/1.0")],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, "order 1: 2 × kettle, 12 in stock\n");
    let spans = world.spans();

    let server = one(&spans, "GET /orders/{id}");
    assert_eq!(server.kind, SERVER);
    assert!(server.parent_span_id.is_empty(), "a new trace");
    for (key, value) in [
        ("http.request.method", "GET"),
        ("url.path", "/orders/1"),
        ("url.scheme", "http"),
        ("http.route", "/orders/{id}"),
        ("http.response.status_code", "200"),
        ("server.address", "127.0.0.1"),
        ("user_agent.original", "integration-test/1.0"),
        ("network.protocol.version", "1.1"),
    ] {
        assert_eq!(attr(server, key).as_deref(), Some(value), "{key}");
    }
    assert!(attr(server, "server.port").is_some());
    assert_eq!(status_code(server), 0, "success leaves the status unset");
    let recorded = format!("{server:?}");
    assert!(
        !recorded.contains("hunter2"),
        "the query string is never recorded"
    );

    let handler = one(&spans, "get_order");
    assert!(is_child(handler, server));
    let load = one(&spans, "load_order");
    assert!(is_child(load, handler));
    let query = one(&spans, "SELECT orders");
    assert!(is_child(query, load));
    assert_eq!(query.kind, CLIENT);
    for (key, value) in [
        ("db.system.name", "sqlite"),
        ("db.namespace", "shop"),
        ("db.operation.name", "SELECT"),
        ("db.collection.name", "orders"),
        (
            "db.query.text",
            "SELECT sku, quantity FROM orders WHERE id = ?",
        ),
    ] {
        assert_eq!(attr(query, key).as_deref(), Some(value), "{key}");
    }

    // The call to the inventory: a client span, and the inventory's server
    // span under it, in the same trace, through `traceparent`.
    let client = one(&spans, "GET");
    assert_eq!(client.kind, CLIENT);
    assert!(is_child(client, one(&spans, "stock_of")));
    assert_eq!(
        attr(client, "http.response.status_code").as_deref(),
        Some("200")
    );
    assert!(
        attr(client, "url.full")
            .unwrap()
            .ends_with("/inventory/kettle")
    );
    let inventory = one(&spans, "GET /inventory/{sku}");
    assert!(is_child(inventory, client));
    assert!(is_child(
        one(&spans, "SELECT stock"),
        one(&spans, "get_stock")
    ));
}

#[test]
fn a_5xx_is_an_error_and_a_4xx_is_not() {
    let _serial = serial();
    let mut world = World::new();
    let base = world.serve(None);
    assert_eq!(world.get(&format!("{base}/boom"), &[]).0, 500);
    assert_eq!(world.get(&format!("{base}/orders/99"), &[]).0, 404);
    assert_eq!(world.get(&format!("{base}/no/such/route"), &[]).0, 404);
    let spans = world.spans();

    let boom = one(&spans, "GET /boom");
    assert_eq!(status_code(boom), STATUS_ERROR);
    assert_eq!(attr(boom, "error.type").as_deref(), Some("500"));
    assert_eq!(
        attr(boom, "http.response.status_code").as_deref(),
        Some("500")
    );

    let missing = one(&spans, "GET /orders/{id}");
    assert_eq!(
        attr(missing, "http.response.status_code").as_deref(),
        Some("404")
    );
    assert_eq!(status_code(missing), 0, "a 404 is the client's mistake");

    // No route matched: the method alone names the span, and no route is made up.
    let unrouted = one(&spans, "GET");
    assert_eq!(attr(unrouted, "http.route"), None);
    assert_eq!(
        attr(unrouted, "url.path").as_deref(),
        Some("/no/such/route")
    );
    assert_eq!(status_code(unrouted), 0);
}

#[test]
fn a_call_between_two_services_is_one_trace() {
    let _serial = serial();
    let mut world = World::new();
    let inventory = world.serve(None);
    let orders = world.serve(Some(&inventory));
    assert_eq!(world.get(&format!("{orders}/orders/2"), &[]).0, 200);
    let spans = world.spans();

    let front = one(&spans, "GET /orders/{id}");
    let client = one(&spans, "GET");
    let back = one(&spans, "GET /inventory/{sku}");
    assert!(is_child(client, one(&spans, "stock_of")));
    assert!(
        is_child(back, client),
        "B's server span is A's client span's child"
    );
    assert!(
        back.flags & 0x200 != 0,
        "its parent is remote (SPAN_FLAGS_CONTEXT_IS_REMOTE)"
    );
    assert!(
        client.flags & 0x200 == 0,
        "the client span's parent is local"
    );
    assert_eq!(back.trace_id, front.trace_id);
    let port = inventory.rsplit(':').next().unwrap();
    assert_eq!(attr(back, "server.port").as_deref(), Some(port));
}

#[test]
fn a_callers_tracestate_goes_on_to_the_next_service() {
    let _serial = serial();
    let mut world = World::new();
    let inventory = world.serve(None);
    let orders = world.serve(Some(&inventory));
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let with_state = [("traceparent", traceparent), ("tracestate", "vx=1,other=2")];
    assert_eq!(world.get(&format!("{orders}/orders/1"), &with_state).0, 200);
    assert_eq!(world.get(&format!("{orders}/orders/2"), &[]).0, 200);
    let spans = world.spans();

    let backs = named(&spans, "GET /inventory/{sku}");
    let back = |sku: &str| {
        *backs
            .iter()
            .find(|s| attr(s, "url.path").as_deref() == Some(&*format!("/inventory/{sku}")))
            .unwrap()
    };
    // Order 1 is of kettles, order 2 of teapots.
    assert_eq!(back("kettle").trace_state, "vx=1,other=2");
    assert_eq!(
        hex(&back("kettle").trace_id),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(
        back("teapot").trace_state,
        "",
        "a trace without tracestate has none downstream"
    );
}

#[test]
fn an_incoming_traceparent_is_continued_and_a_malformed_one_starts_a_new_trace() {
    let _serial = serial();
    let mut world = World::new();
    let base = world.serve(None);
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let traceparent = format!("00-{trace_id}-{parent_id}-01");
    assert_eq!(
        world
            .get(
                &format!("{base}/inventory/kettle"),
                &[("traceparent", &traceparent), ("tracestate", "vx=1")]
            )
            .0,
        200
    );
    assert_eq!(
        world
            .get(
                &format!("{base}/inventory/teapot"),
                &[("traceparent", "00-not-a-trace-01")]
            )
            .0,
        200
    );
    let spans = world.spans();
    let servers = named(&spans, "GET /inventory/{sku}");
    assert_eq!(servers.len(), 2);
    let by_path = |path: &str| {
        *servers
            .iter()
            .find(|s| attr(s, "url.path").as_deref() == Some(path))
            .unwrap()
    };

    let continued = by_path("/inventory/kettle");
    assert_eq!(hex(&continued.trace_id), trace_id);
    assert_eq!(hex(&continued.parent_span_id), parent_id);
    assert_eq!(continued.trace_state, "vx=1");

    let fresh = by_path("/inventory/teapot");
    assert!(
        fresh.parent_span_id.is_empty(),
        "a malformed traceparent is ignored"
    );
    assert_ne!(hex(&fresh.trace_id), trace_id);
    assert_eq!(status_code(fresh), 0);
}

#[test]
fn a_failing_query_marks_its_span_failed() {
    let _serial = serial();
    let mut world = World::new();
    let result = world.runtime.block_on(async {
        let db = vaxila::sqlx::Traced::new(service::database().await.unwrap());
        let missing: Result<Vec<sqlx::sqlite::SqliteRow>, _> =
            sqlx::query("SELECT * FROM no_such_table")
                .fetch_all(&db)
                .await;
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM orders")
            .fetch_one(&db)
            .await
            .unwrap();
        (missing.is_err(), count)
    });
    assert_eq!(result, (true, 2));
    let spans = world.spans();
    let failed = one(&spans, "SELECT no_such_table");
    assert_eq!(status_code(failed), STATUS_ERROR);
    assert_eq!(
        attr(failed, "error.type").as_deref(),
        Some("sqlx::Error::Database")
    );
    assert!(failed.events.iter().any(|e| e.name == "exception"));
    assert!(
        attr(failed, "db.response.status_code").is_some(),
        "the SQLSTATE"
    );
    let counted = one(&spans, "SELECT orders");
    assert_eq!(status_code(counted), 0);
    assert_eq!(attr(counted, "db.namespace"), None, "none was set");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
