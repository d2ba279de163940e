//! `#[vaxila::instrument]` on `async fn`, on functions returning an `async`
//! block and on `async-trait` methods, polled on a current-thread runtime so
//! that `vaxila::testing::capture` sees every span.

use std::future::{self, Future};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::time::Duration;

use vaxila::opentelemetry::trace::Status;
use vaxila::opentelemetry::{Context, Value};
use vaxila::testing::{CapturedSpan, capture};

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(future)
}

/// The spans finished while `future` ran to completion, and its output.
fn run<F: Future>(future: F) -> (Vec<CapturedSpan>, F::Output) {
    let mut out = None;
    let spans = capture(|| out = Some(block_on(future)));
    (spans.into_vec(), out.unwrap())
}

fn find<'a>(spans: &'a [CapturedSpan], name: &str) -> &'a CapturedSpan {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name} in {spans:#?}"))
}

#[vaxila::instrument(args(id), ret)]
async fn leaf(id: u32) -> u32 {
    tokio::task::yield_now().await;
    id * 10
}

#[vaxila::instrument]
async fn parent_of_two() -> u32 {
    let a = leaf(1).await;
    tokio::time::sleep(Duration::from_millis(1)).await;
    a + leaf(2).await
}

#[test]
fn async_fn_spans_nest_across_awaits() {
    let (spans, ret) = run(parent_of_two());
    assert_eq!(ret, 30);
    let [one, two, parent] = &spans[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(parent.name, "parent_of_two");
    assert!(parent.is_root());
    for (leaf, id) in [(one, 1), (two, 2)] {
        assert_eq!(leaf.name, "leaf");
        assert_eq!(leaf.attr("id"), Some(&Value::I64(id)));
        assert_eq!(leaf.attr("return"), Some(&Value::I64(id * 10)));
        assert_eq!(leaf.parent_span_id, parent.span_id);
        assert_eq!(leaf.trace_id, parent.trace_id);
    }
}

#[vaxila::instrument]
async fn sibling(n: u32) -> u32 {
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    n
}

#[test]
fn interleaved_futures_do_not_leak_their_context_across_awaits() {
    let (spans, ret) = run(async { tokio::join!(sibling(1), sibling(2)) });
    assert_eq!(ret, (1, 2));
    assert_eq!(spans.len(), 2);
    assert!(spans.iter().all(CapturedSpan::is_root), "{spans:#?}");
    assert_ne!(spans[0].trace_id, spans[1].trace_id);
    // Nothing is left attached once they are done.
    assert!(!vaxila::opentelemetry::trace::TraceContextExt::has_active_span(&Context::current()));
}

#[vaxila::instrument(args(input))]
async fn parse(input: &str) -> Result<u8, std::num::ParseIntError> {
    tokio::task::yield_now().await;
    if input.is_empty() {
        return Ok(0);
    }
    let n: u8 = input.parse()?;
    Ok(n)
}

#[test]
fn async_fn_records_err_and_keeps_question_mark_and_return() {
    let (spans, ret) = run(parse("x"));
    assert!(ret.is_err());
    assert_eq!(
        spans[0].status,
        Status::error("invalid digit found in string")
    );
    assert!(spans[0].event("exception").is_some());

    let (spans, ret) = run(parse(""));
    assert_eq!(ret, Ok(0));
    assert_eq!(spans[0].status, Status::Unset);
}

#[vaxila::instrument]
async fn async_boom() -> u8 {
    tokio::task::yield_now().await;
    panic!("async boom")
}

#[test]
fn async_fn_records_a_panic_that_goes_on() {
    let mut caught = None;
    let spans =
        capture(|| caught = Some(catch_unwind(AssertUnwindSafe(|| block_on(async_boom())))));
    assert!(caught.unwrap().is_err());
    let [span] = &spans[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(span.status, Status::error("async boom"));
    assert_eq!(
        span.event("exception").unwrap().attr("exception.type"),
        Some(&Value::String("panic".into()))
    );
}

#[vaxila::instrument]
async fn stuck() {
    future::pending::<()>().await;
}

#[test]
fn a_future_dropped_before_completion_is_marked_cancelled() {
    let (spans, timed_out) =
        run(async { tokio::time::timeout(Duration::from_millis(5), stuck()).await });
    assert!(timed_out.is_err());
    let [span] = &spans[..] else {
        panic!("{spans:#?}")
    };
    assert_eq!(span.name, "stuck");
    assert_eq!(span.attr("vaxila.cancelled"), Some(&Value::Bool(true)));
}

#[test]
fn a_completed_future_is_not_marked_cancelled() {
    let (spans, _) = run(leaf(3));
    assert_eq!(spans[0].attr("vaxila.cancelled"), None);
}

#[test]
fn a_future_never_polled_makes_no_span() {
    let spans = capture(|| drop(leaf(1)));
    assert!(spans.is_empty(), "{spans:#?}");
}

/// Returns a future: the `let` runs at the call, the block at the first poll.
#[vaxila::instrument(args(n), ret)]
fn deferred(n: u32) -> impl Future<Output = Result<u32, String>> + Send {
    let doubled = n * 2;
    async move {
        tokio::task::yield_now().await;
        if doubled > 100 {
            return Err("too big".to_owned());
        }
        let parsed: u32 = "1".parse().map_err(|_| "unparsable".to_owned())?;
        Ok(doubled + parsed)
    }
}

#[vaxila::instrument]
async fn poll_inside<F: Future>(future: F) -> F::Output {
    future.await
}

#[test]
fn fn_returning_an_async_block_starts_its_span_at_the_first_poll() {
    let (spans, ret) = run(async {
        let future = deferred(4); // made outside any span...
        poll_inside(future).await // ...first polled inside one
    });
    assert_eq!(ret, Ok(9));
    let inner = find(&spans, "deferred");
    let outer = find(&spans, "poll_inside");
    assert_eq!(inner.parent_span_id, outer.span_id);
    assert_eq!(inner.attr("n"), Some(&Value::I64(4)));
    assert_eq!(inner.attr("return"), Some(&Value::I64(9)));

    let (spans, ret) = run(deferred(60));
    assert_eq!(ret, Err("too big".to_owned()));
    assert_eq!(spans[0].status, Status::error("too big"));
}

#[vaxila::instrument]
#[allow(clippy::manual_async_fn)]
fn boxed(n: u8) -> Pin<Box<dyn Future<Output = u8> + Send>> {
    Box::pin(async move { n + 1 })
}

#[test]
fn fn_returning_a_boxed_async_block_is_instrumented_like_one() {
    let (spans, ret) = run(boxed(1));
    assert_eq!(ret, 2);
    assert_eq!(spans[0].name, "boxed");
}

/// A future type the signature does not spell out as `Future<Output = ..>`.
type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[vaxila::instrument(args(n))]
fn boxed_alias(n: u8) -> BoxFuture<'static, u8> {
    Box::pin(async move { n * 2 })
}

trait TowerLike {
    type Future: Future<Output = Result<u8, String>>;
    fn call(&self, n: u8) -> Self::Future;
}

struct Doubler;

impl TowerLike for Doubler {
    type Future = BoxFuture<'static, Result<u8, String>>;

    #[vaxila::instrument(args(n), kind = server)]
    fn call(&self, n: u8) -> Self::Future {
        Box::pin(async move { n.checked_mul(2).ok_or_else(|| "overflow".to_owned()) })
    }
}

#[test]
fn a_boxed_future_behind_an_alias_or_associated_type_returns_its_value() {
    let (spans, ret) = run(boxed_alias(21));
    assert_eq!(ret, 42);
    assert_eq!(spans[0].name, "boxed_alias");
    assert_eq!(spans[0].attr("n"), Some(&Value::I64(21)));

    let (spans, ret) = run(Doubler.call(4));
    assert_eq!(ret, Ok(8));
    assert_eq!(spans[0].name, "call");
    assert_eq!(spans[0].kind, vaxila::SpanKind::Server);
    assert_eq!(spans[0].attr("n"), Some(&Value::I64(4)));
}

#[async_trait::async_trait]
trait Store {
    async fn get(&self, key: &str) -> Option<String>;
    async fn put(&mut self, key: String, value: String) -> Result<(), String>;
}

struct Memory(Vec<(String, String)>);

#[async_trait::async_trait]
impl Store for Memory {
    #[vaxila::instrument(args(key), kind = client)]
    async fn get(&self, key: &str) -> Option<String> {
        tokio::task::yield_now().await;
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }

    #[vaxila::instrument(args(..))]
    async fn put(&mut self, key: String, value: String) -> Result<(), String> {
        if key.is_empty() {
            return Err("empty key".to_owned());
        }
        self.0.push((key, value));
        Ok(())
    }
}

#[vaxila::instrument]
async fn use_store(store: &mut dyn Store) -> Option<String> {
    store.put("a".to_owned(), "1".to_owned()).await.ok()?;
    store.get("a").await
}

#[test]
fn async_trait_methods_are_instrumented_at_their_first_poll() {
    let mut store = Memory(Vec::new());
    let (spans, ret) = run(use_store(&mut store));
    assert_eq!(ret.as_deref(), Some("1"));
    let outer = find(&spans, "use_store");
    let put = find(&spans, "put");
    let get = find(&spans, "get");
    assert_eq!(put.parent_span_id, outer.span_id);
    assert_eq!(get.parent_span_id, outer.span_id);
    assert_eq!(put.attr("key"), Some(&Value::String("a".into())));
    assert_eq!(get.attr("key"), Some(&Value::String("a".into())));
    assert_eq!(get.kind, vaxila::SpanKind::Client);

    let (spans, ret) = run(store.put(String::new(), "x".to_owned()));
    assert_eq!(ret, Err("empty key".to_owned()));
    assert_eq!(spans[0].status, Status::error("empty key"));
}

struct Service {
    calls: u32,
}

impl Service {
    #[vaxila::instrument(fields(calls = self.calls), ret)]
    async fn handle(&mut self, request: &str) -> usize {
        self.calls += 1;
        tokio::task::yield_now().await;
        request.len()
    }

    #[vaxila::instrument(ret)]
    async fn into_calls(self) -> u32 {
        self.calls
    }
}

#[test]
fn async_methods_with_mut_self_and_self() {
    let mut service = Service { calls: 0 };
    let (spans, ret) = run(service.handle("abc"));
    assert_eq!(ret, 3);
    assert_eq!(spans[0].attr("calls"), Some(&Value::I64(0)));
    let (spans, ret) = run(service.into_calls());
    assert_eq!(ret, 1);
    assert_eq!(spans[0].attr("return"), Some(&Value::I64(1)));
}
