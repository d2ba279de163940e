//! One function with every argument, and the `crate = path` re-export case.

mod telemetry {
    pub use vaxila;
}

#[derive(Debug)]
struct Order {
    id: u64,
}

#[vaxila::instrument(
    name = "checkout",
    kind = server,
    args(user, %total, ?order),
    fields(order.id = order.id, "http.route" = "/checkout", note = %"n", raw = ?order),
    ret,
    err = false,
    crate = telemetry::vaxila,
)]
fn checkout(user: &str, total: f64, order: &Order, cx: &vaxila::opentelemetry::Context) -> Result<u64, String> {
    let _ = (user, total, cx);
    Ok(order.id)
}

#[vaxila::instrument(args(..), skip(cx), parent = cx)]
fn child(cx: &vaxila::opentelemetry::Context, n: u8) -> u8 {
    let _ = cx;
    n
}

#[vaxila::instrument(root)]
fn root() {}

fn main() {
    let cx = vaxila::opentelemetry::Context::new();
    let _ = checkout("ann", 1.5, &Order { id: 7 }, &cx);
    let _ = child(&cx, 1);
    root();
}
