//! The README's first command: `cargo run --example quickstart`.
//!
//! With no token configured, `vaxila::init()` prints every span to stderr (the
//! `auto` exporter says so in one line). With `VAXILA_TOKEN` set, the same
//! spans go to Vaxila over OTLP/HTTP instead:
//!
//! ```sh
//! VAXILA_TOKEN=... cargo run --example quickstart
//! ```
//!
//! Settings come from `Vaxila.toml` (see `examples/Vaxila.toml` for every
//! key) and the environment; with neither, the defaults do.

use vaxila::opentelemetry::KeyValue;
use vaxila::opentelemetry::trace::{TraceContextExt as _, Tracer as _};

/// A span named `awesome_action` with attribute `id`, marked failed on `Err`.
#[vaxila::instrument(args(id))]
fn awesome_action(id: i64) -> Result<u64, String> {
    let items = load_items(id);
    if items.is_empty() {
        return Err(format!("order {id} has no items"));
    }
    Ok(items.iter().sum())
}

/// A child span of `awesome_action`.
#[vaxila::instrument]
fn load_items(id: i64) -> Vec<u64> {
    std::thread::sleep(std::time::Duration::from_millis(2));
    if id % 2 == 0 {
        vec![3, 4, 5]
    } else {
        Vec::new()
    }
}

fn main() -> Result<(), vaxila::Error> {
    let _guard = vaxila::init()?;

    // Custom instrumentation with the OpenTelemetry API, the Rust form of the
    // Python guide's `with tracer.start_as_current_span("handle_request") as span:`.
    let tracer = vaxila::opentelemetry::global::tracer("quickstart");
    tracer.in_span("handle_request", |cx| {
        cx.span()
            .set_attribute(KeyValue::new("http.route", "/orders/{id}"));
        for id in [42, 7] {
            tracer.in_span("process_order", |cx| {
                cx.span().set_attribute(KeyValue::new("order.id", id));
                match awesome_action(id) {
                    Ok(total) => cx
                        .span()
                        .set_attribute(KeyValue::new("order.total", total as i64)),
                    Err(message) => cx
                        .span()
                        .set_status(vaxila::opentelemetry::trace::Status::error(message)),
                }
            });
        }
    });
    Ok(())
    // `_guard` drops here: every span above is exported before the program exits.
}
