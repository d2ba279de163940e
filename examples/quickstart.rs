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

/// A span per order, with what was learned while handling it.
#[vaxila::instrument(args(id))]
fn process_order(id: i64) {
    match awesome_action(id) {
        Ok(total) => vaxila::current_span().set_attribute("order.total", total),
        Err(_) => vaxila::current_span().add_event("order.rejected", [("order.id", id)]),
    }
}

fn main() -> Result<(), vaxila::Error> {
    let _guard = vaxila::init()?;

    // Custom instrumentation around a block: the Rust form of the Python
    // guide's `with tracer.start_as_current_span("handle_request") as span:`.
    vaxila::span("handle_request")
        .kind(vaxila::SpanKind::Server)
        .attr("http.route", "/orders/{id}")
        .in_scope(|_| {
            for id in [42, 7] {
                process_order(id);
            }
        });
    Ok(())
    // `_guard` drops here: every span above is exported before the program exits.
}
