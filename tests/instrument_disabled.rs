//! Before any tracer provider is installed, an instrumented function behaves
//! as the bare function: same results, same panics, and attribute
//! expressions are not even evaluated. (This binary never installs one.)

use std::cell::Cell;
use std::panic::catch_unwind;

use vaxila::opentelemetry::Context;
use vaxila::opentelemetry::trace::TraceContextExt as _;

thread_local! {
    static EVALUATED: Cell<u32> = const { Cell::new(0) };
}

fn costly() -> i64 {
    EVALUATED.with(|n| n.set(n.get() + 1));
    1
}

#[vaxila::instrument(args(..), fields(costly = costly()), ret)]
fn add(a: i64, b: i64) -> i64 {
    assert!(!Context::current().has_active_span());
    a + b
}

#[vaxila::instrument]
fn fails(s: &str) -> Result<i64, std::num::ParseIntError> {
    s.parse()
}

#[vaxila::instrument]
fn boom() {
    panic!("as usual")
}

#[vaxila::instrument(args(..), ret)]
async fn later(a: i64) -> i64 {
    tokio::task::yield_now().await;
    a
}

#[test]
fn without_a_provider_instrumented_fns_behave_as_bare_ones() {
    assert_eq!(add(1, 2), 3);
    assert_eq!(fails("7"), Ok(7));
    assert_eq!(fails("x"), "x".parse::<i64>());
    let payload = catch_unwind(boom).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"as usual"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert_eq!(runtime.block_on(later(5)), 5);
    assert_eq!(
        EVALUATED.with(Cell::get),
        0,
        "fields are evaluated only when recording"
    );
}
