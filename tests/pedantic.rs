//! Instrumented functions of every shape under the strictest lints a user
//! may set: the expansion must add no warning of its own. `cargo clippy
//! --all-targets` checks this file with clippy's lints; `cargo test` builds
//! it with rustc's.

#![deny(warnings, clippy::all, clippy::pedantic, unused_qualifications)]

use std::fmt;
use std::future::Future;
use std::io;

use vaxila::opentelemetry::Context;
use vaxila::opentelemetry::trace::TraceContextExt as _;

#[derive(Debug)]
struct Point {
    x: i64,
    y: i64,
}

#[vaxila::instrument]
fn nothing() {}

#[vaxila::instrument(name = "sum", kind = server, args(a, %b, ?c), fields(d.e = a + b, "f" = %a, g = ?c), ret)]
fn every_argument(a: i64, b: i64, c: &Point) -> i64 {
    a + b + c.x + c.y
}

#[vaxila::instrument(args(..), skip(point))]
fn rest(id: u64, name: &str, point: &Point, password: &str) -> usize {
    usize::try_from(id).unwrap_or_default()
        + name.len()
        + password.len()
        + usize::try_from(point.x).unwrap_or_default()
}

#[vaxila::instrument(ret)]
fn fallible(s: &str) -> io::Result<u8> {
    if s.is_empty() {
        return Ok(0);
    }
    let n = s.parse::<u8>().map_err(io::Error::other)?;
    Ok(n)
}

#[vaxila::instrument(err = false)]
fn quiet() -> Result<(), fmt::Error> {
    Err(fmt::Error)
}

#[vaxila::instrument(parent = cx)]
fn with_parent(cx: &Context) -> bool {
    cx.span().span_context().is_valid()
}

#[vaxila::instrument(root)]
fn root() {}

#[vaxila::instrument(ret)]
fn first(v: &mut [u8]) -> &mut u8 {
    &mut v[0]
}

#[vaxila::instrument(args(..), ret)]
fn generic<T>(items: &[T]) -> Option<&T>
where
    T: fmt::Debug,
{
    items.first()
}

#[vaxila::instrument(args(..), ret)]
fn impl_traits(shown: impl fmt::Display) -> impl fmt::Display {
    shown.to_string()
}

#[vaxila::instrument(args(..))]
fn destructured((a, b): (i64, i64), mut c: i64) -> i64 {
    c += a;
    b + c
}

/// # Safety
///
/// `ptr` must be valid for reads.
#[vaxila::instrument]
unsafe fn read(ptr: *const u8) -> u8 {
    // SAFETY: the caller promises that `ptr` is valid for reads.
    unsafe { *ptr }
}

#[vaxila::instrument]
fn diverges() -> ! {
    panic!("never")
}

struct Counter(u64);

impl Counter {
    #[vaxila::instrument(ret)]
    fn new_value() -> u64 {
        0
    }

    #[vaxila::instrument(fields(count = self.0))]
    fn get(&self) -> u64 {
        self.0
    }

    #[vaxila::instrument(args(by))]
    fn bump(&mut self, by: u64) -> &mut Self {
        self.0 += by;
        self
    }

    #[vaxila::instrument]
    fn into_inner(self) -> u64 {
        self.0
    }

    #[vaxila::instrument(ret)]
    async fn handle(&mut self, request: &str) -> io::Result<usize> {
        self.0 += 1;
        tokio::task::yield_now().await;
        Ok(request.len())
    }
}

#[vaxila::instrument(args(..), ret)]
async fn fetch(id: u64) -> Result<u64, String> {
    tokio::task::yield_now().await;
    if id == 0 {
        return Err("zero".to_owned());
    }
    Ok(id)
}

#[vaxila::instrument(args(..))]
async fn count(n: u64) -> u64 {
    tokio::task::yield_now().await;
    n
}

#[vaxila::instrument]
async fn unit_async() {
    tokio::task::yield_now().await;
}

#[vaxila::instrument(args(n))]
fn deferred(n: u64) -> impl Future<Output = u64> + Send {
    let m = n + 1;
    async move { m }
}

#[async_trait::async_trait]
trait Store {
    async fn get(&self, key: &str) -> Option<u64>;
}

#[async_trait::async_trait]
impl Store for Counter {
    #[vaxila::instrument(args(key), kind = client)]
    async fn get(&self, key: &str) -> Option<u64> {
        (!key.is_empty()).then_some(self.0)
    }
}

#[test]
fn every_shape_compiles_without_warnings_and_runs() {
    assert_eq!(every_argument(1, 2, &Point { x: 3, y: 4 }), 10);
    assert_eq!(rest(1, "a", &Point { x: 1, y: 0 }, "p"), 4);
    assert_eq!(fallible("3").unwrap(), 3);
    assert!(quiet().is_err());
    assert!(!with_parent(&Context::new()));
    root();
    nothing();
    let mut bytes = [1, 2];
    *first(&mut bytes) = 5;
    assert_eq!(bytes, [5, 2]);
    assert_eq!(generic(&[1]), Some(&1));
    assert_eq!(impl_traits(1).to_string(), "1");
    assert_eq!(destructured((1, 2), 3), 6);
    // SAFETY: `&bytes[0]` is valid for reads.
    assert_eq!(unsafe { read(&raw const bytes[0]) }, 5);
    assert!(std::panic::catch_unwind(|| diverges()).is_err());

    let mut counter = Counter(Counter::new_value());
    counter.bump(2);
    assert_eq!(counter.get(), 2);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        assert_eq!(counter.handle("ab").await.unwrap(), 2);
        assert_eq!(Store::get(&counter, "k").await, Some(3));
        assert_eq!(fetch(1).await, Ok(1));
        unit_async().await;
        assert_eq!(count(2).await, 2);
        assert_eq!(deferred(1).await, 2);
    });
    assert_eq!(counter.into_inner(), 3);
}
