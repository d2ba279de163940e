//! The expansion names only `::vaxila::__private`, `::core` and its own
//! hidden locals, so user items with the names it might have used change nothing.

#![allow(dead_code, unreachable_pub, reason = "the modules only have to exist")]

use vaxila::opentelemetry::Value;
use vaxila::testing::capture;

/// A user module named like the crates the expansion is built on.
mod opentelemetry {
    pub struct Context;
    pub mod trace {
        pub struct Span;
    }
}

/// A user module named like the runtime crate.
mod vaxila_runtime {
    pub mod __private {
        pub struct Span;
    }
}

/// Types a glob import brings in over the prelude's and the runtime's names.
mod shadows {
    #[derive(Debug, PartialEq)]
    pub struct Result;
    #[derive(Debug, PartialEq)]
    pub struct Option;
    pub struct Span;
    pub struct Meta;
    pub struct Probe;
    pub struct Context;
    pub struct SpanKind;
}

use shadows::*;

#[vaxila::instrument(args(..), ret)]
fn returns_a_user_result(id: i64) -> Result {
    let _ = id;
    Result
}

#[vaxila::instrument(ret)]
fn returns_a_user_option() -> Option {
    Option
}

#[vaxila::instrument(args(..), fields(twice = __vaxila_span * 2), ret)]
fn shadows_the_span_local(__vaxila_span: i64) -> core::result::Result<i64, ()> {
    let __vaxila_ret = __vaxila_span + 1;
    core::result::Result::Ok(__vaxila_ret)
}

#[test]
fn user_items_named_like_expansion_internals_change_nothing() {
    let mut ret = None;
    let spans = capture(|| ret = Some(returns_a_user_result(1)));
    assert_eq!(ret, Some(Result));
    assert_eq!(spans[0].attr("id"), Some(&Value::I64(1)));
    assert_eq!(
        spans[0].attr("return"),
        Some(&Value::String("Result".into()))
    );

    let spans = capture(|| assert_eq!(returns_a_user_option(), Option));
    assert_eq!(spans[0].name, "returns_a_user_option");

    let spans = capture(|| assert_eq!(shadows_the_span_local(20), Ok(21)));
    assert_eq!(spans[0].attr("__vaxila_span"), Some(&Value::I64(20)));
    assert_eq!(spans[0].attr("twice"), Some(&Value::I64(40)));
    assert_eq!(spans[0].attr("return"), Some(&Value::I64(21)));
}

/// `crate = path` for a crate that re-exports `vaxila` under another name.
mod reexported {
    pub use vaxila as telemetry;
}

#[vaxila::instrument(crate = reexported::telemetry, ret)]
fn through_a_reexport() -> u8 {
    5
}

#[test]
fn crate_points_the_expansion_at_a_reexport() {
    let spans = capture(|| assert_eq!(through_a_reexport(), 5));
    assert_eq!(spans[0].attr("return"), Some(&Value::I64(5)));
}

/// Traits in the user's scope whose methods take `self` and share a name
/// with the span's own: `tracing::Instrument`, imported by most async code
/// that uses `tracing`, and one with `in_scope`.
mod traits_in_scope {
    #[allow(
        unused_imports,
        reason = "in scope is the point: the expansion must not pick it"
    )]
    use vaxila::tracing::Instrument as _;

    pub trait InScope: Sized {
        fn in_scope<R>(self, f: impl FnOnce() -> R) -> R {
            f()
        }
    }
    impl<T> InScope for T {}

    #[vaxila::instrument(ret)]
    pub async fn load(id: u64) -> u64 {
        id
    }

    #[vaxila::instrument]
    pub async fn nothing() {}

    #[vaxila::instrument(ret)]
    pub fn sync(id: u64) -> u64 {
        id
    }
}

#[test]
fn traits_in_scope_with_the_span_methods_names_change_nothing() {
    let spans = capture(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(runtime.block_on(traits_in_scope::load(3)), 3);
        runtime.block_on(traits_in_scope::nothing());
        assert_eq!(traits_in_scope::sync(4), 4);
    });
    assert_eq!(spans.tree(), "load\nnothing\nsync\n");
    assert_eq!(spans.named("load").attr("return"), Some(&Value::I64(3)));
}
