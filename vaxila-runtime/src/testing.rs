//! Assertions on the spans your code produces: [`capture`], [`capture_future`], [`Spans::tree`], and [`init_console`] to see them.
//!
//! ```
//! use vaxila::testing::capture;
//!
//! #[vaxila::instrument(kind = server)]
//! fn handle() {
//!     vaxila::tracing::info_span!("db_query").in_scope(|| load(7));
//! }
//! #[vaxila::instrument(args(id))]
//! fn load(id: i64) {}
//!
//! let spans = capture(handle);
//! assert_eq!(spans.tree(), "\
//! handle [server]
//!   db_query
//!     load
//! ");
//! assert_eq!(spans.named("load").attr("id"), Some(&7i64.into()));
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::{Context as TaskContext, Poll};
use std::thread::ThreadId;
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry::{Context, Key, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    SdkTracerProvider, SimpleSpanProcessor, SpanData, SpanLimits, SpanProcessor,
};

use crate::clock::Anchor;
use crate::console::ConsoleExporter;
use crate::global::{Fast, RecordSink, Sampling};
use crate::record::Live;

/// How many captures are registered right now: when none is, the processor
/// returns after one atomic load.
static CAPTURING: AtomicUsize = AtomicUsize::new(0);

/// Where spans ended on a thread go: the innermost capture registered for it.
static SINKS: Mutex<Vec<(ThreadId, Sink)>> = Mutex::new(Vec::new());

type Sink = Arc<Mutex<Vec<SpanData>>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Exports nothing: `Capture(NoExport)` is a pipeline for `capture` alone.
#[derive(Debug)]
pub(crate) struct NoExport;

impl SpanProcessor for NoExport {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &Context) {}

    fn on_end(&self, _: SpanData) {}

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Where the `capture` running on this thread, if any, collects.
fn this_threads_sink() -> Option<Sink> {
    let thread = std::thread::current().id();
    lock(&SINKS)
        .iter()
        .rev()
        .find(|(t, _)| *t == thread)
        .map(|(_, sink)| Arc::clone(sink))
}

/// Gives `span` to the `capture` running on this thread, if any.
fn offer(span: &SpanData) {
    if let Some(sink) = this_threads_sink() {
        lock(&sink).push(span.clone());
    }
}

/// `processor`, and [`capture`] too; every pipeline this crate builds has
/// it. One processor, so that the SDK hands
/// each span over without the copy it makes for every processor but the
/// last; the span is copied only while a `capture` runs.
#[derive(Debug)]
pub(crate) struct Capture<P>(pub(crate) P);

impl<P: SpanProcessor> SpanProcessor for Capture<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.0.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        if CAPTURING.load(Ordering::Relaxed) != 0 {
            offer(&span);
        }
        self.0.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.0.set_resource(resource);
    }
}

impl<P: RecordSink> RecordSink for Capture<P> {
    fn end(&self, mut span: Box<Live>) {
        if CAPTURING.load(Ordering::Relaxed) != 0
            && let Some(sink) = this_threads_sink()
        {
            lock(&sink).push(span.record.get_mut().to_span_data(&Anchor::now()));
        }
        self.0.end(span);
    }
}

impl RecordSink for NoExport {
    fn end(&self, span: Box<Live>) {
        crate::record::recycle_here(span);
    }
}

/// A processor shared by the SDK's provider, which gives it the spans of
/// `tracing` and of the OpenTelemetry API, and by this crate's spans
/// ([`Fast`]), which give it [`Record`]s.
///
/// It does not pass `set_resource` on: the processors shared this way
/// either get the resource before (the OTLP exporter) or print none.
#[derive(Debug)]
pub(crate) struct Shared<P>(pub(crate) Arc<P>);

impl<P: SpanProcessor> SpanProcessor for Shared<P> {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.0.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.0.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
}

/// The provider of `processor`, and the way of this crate's spans to it.
pub(crate) fn provider_with<P>(
    builder: opentelemetry_sdk::trace::TracerProviderBuilder,
    processor: P,
    sampling: Sampling,
    limits: &SpanLimits,
) -> (SdkTracerProvider, Arc<Fast>)
where
    P: SpanProcessor + RecordSink + 'static,
{
    let processor = Arc::new(Capture(processor));
    let provider = builder
        .with_sampler(sampling.sampler())
        .with_span_limits(*limits)
        .with_span_processor(Shared(processor.clone()))
        .build();
    let fast = Fast::new(sampling, limits.into(), processor);
    (provider, Arc::new(fast))
}

static CONSOLE: AtomicBool = AtomicBool::new(false);

/// Installs the kit's provider unless a pipeline is installed: it feeds
/// [`capture`], and prints once [`init_console`] is called. Checked at every
/// capture, so that capture keeps working after an `init` guard is dropped.
fn ensure_provider() {
    static KIT: OnceLock<(SdkTracerProvider, Arc<Fast>)> = OnceLock::new();
    if crate::global::enabled() {
        return;
    }
    let (provider, fast) = KIT.get_or_init(|| {
        provider_with(
            SdkTracerProvider::builder(),
            ConsoleOnceAsked(SimpleSpanProcessor::new(ConsoleExporter::new(TestOutput))),
            // The SDK's default.
            Sampling::new(1.0, true),
            &SpanLimits::default(),
        )
    });
    crate::global::set_tracer_provider_if_none(provider, Some(fast.clone()));
}

/// Prints spans only once [`init_console`] has been called.
#[derive(Debug)]
struct ConsoleOnceAsked(SimpleSpanProcessor<ConsoleExporter>);

impl SpanProcessor for ConsoleOnceAsked {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &Context) {}

    fn on_end(&self, span: SpanData) {
        if CONSOLE.load(Ordering::Relaxed) {
            self.0.on_end(span);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }
}

impl RecordSink for ConsoleOnceAsked {
    fn end(&self, span: Box<Live>) {
        if CONSOLE.load(Ordering::Relaxed) {
            self.0.end(span);
        } else {
            crate::record::recycle_here(span);
        }
    }
}

/// The console prints each span as it ends, on the thread that ends it.
impl<E: opentelemetry_sdk::trace::SpanExporter> RecordSink for SimpleSpanProcessor<E> {
    fn end(&self, mut span: Box<Live>) {
        let data = span.record.get_mut().take_span_data(&Anchor::now());
        crate::record::recycle_here(span);
        if data.span_context.is_sampled() {
            self.on_end(data);
        }
    }
}

/// Output through `eprint!`, which the test harness captures for the test
/// whose thread prints (writes to the stderr handle it does not capture).
struct TestOutput;

impl std::io::Write for TestOutput {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(bytes);
        // `eprint!` panics when stderr is closed; no span line is worth a panic.
        let _ = std::panic::catch_unwind(|| eprint!("{text}"));
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Prints the spans of each test with that test's output: one line per
/// span, indented under its parent, as [`Exporter::Console`](crate::Exporter::Console)
/// does, but printed with `eprint!` as each trace's root span ends, on the
/// thread that ends it. `cargo test` captures that output per test, and
/// shows it under `---- test_name stdout ----` when the test fails (or at
/// once with `--nocapture`).
///
/// Call it at the start of every test that should print; calling it again
/// does no harm (idempotent). It installs a `tracing` subscriber with
/// [`tracing_layer`](crate::tracing_layer) too, unless the process has a
/// global one already, so `tracing` spans are printed with the rest.
/// [`capture`] keeps working beside it. While a pipeline of
/// [`init`](crate::init) is running, that pipeline's exporter is the one
/// used; the console takes over when its guard is dropped.
///
/// ```
/// #[vaxila::instrument(args(id))]
/// fn awesome_action(id: i64) {}
///
/// // In a #[test]:
/// vaxila::testing::init_console();
/// awesome_action(42); // prints `awesome_action 12µs span=… id=42 at src/…`
/// ```
pub fn init_console() {
    CONSOLE.store(true, Ordering::Relaxed);
    ensure_provider();
    crate::bridge::ensure_filter(crate::config::testing_tracing_filter);
    crate::bridge::install_global_subscriber();
}

/// Runs `f` and returns the spans that finished on this thread while it ran,
/// in the order they ended (children before their parents).
///
/// Spans ended on other threads are not seen, so tests that run in parallel
/// never see each other's spans.
///
/// It sees the spans of `#[vaxila::instrument]`, [`span`](crate::span), the
/// OpenTelemetry API and `tracing`:
///
/// - Whenever no pipeline is installed (before [`init`](crate::init), or
///   after its guard is dropped), `capture` installs one that records for it
///   alone (and prints, after [`init_console`]); while a pipeline of `init`
///   runs, it sees what that pipeline exports.
/// - `tracing` spans and events are recorded through the subscriber `init`
///   installed, or a [`tracing_layer`](crate::tracing_layer) in the test's
///   own; when the thread has no subscriber at all, `capture` sets one for
///   the time `f` runs. Without `init`, the `tracing` filter is
///   `VAXILA_LOG`, else `info` (`RUST_LOG` is left to the test's logs).
///
/// ```
/// #[vaxila::instrument(args(id))]
/// fn awesome_action(id: i64) {}
///
/// let spans = vaxila::testing::capture(|| awesome_action(42));
/// assert_eq!(spans[0].name, "awesome_action");
/// assert_eq!(spans[0].attr("id"), Some(&42i64.into()));
/// ```
pub fn capture<R>(f: impl FnOnce() -> R) -> Spans {
    let sink = Sink::default();
    let registration = Registration::new(&sink);
    let subscriber = crate::bridge::fallback_subscriber();
    let _ = f();
    drop(subscriber);
    drop(registration);
    take(&sink)
}

/// Awaits `future` and returns the spans that finished while it ran: the
/// `async` form of [`capture`], for `#[tokio::test]`.
///
/// It sees every span that ends on the thread that first polled it, from
/// then until it completes (on a current-thread runtime, that includes the
/// tasks it spawns), and the spans that end on any other thread while that
/// thread is polling it.
///
/// ```
/// #[vaxila::instrument(args(id))]
/// async fn load(id: u64) -> u64 { id }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let spans = vaxila::testing::capture_future(async {
///     assert_eq!(load(7).await, 7);
/// })
/// .await;
/// assert_eq!(spans.named("load").attr("id"), Some(&7i64.into()));
/// # }
/// ```
pub fn capture_future<F: Future>(future: F) -> CaptureFuture<F> {
    CaptureFuture {
        future,
        sink: Sink::default(),
        home: None,
    }
}

pin_project_lite::pin_project! {
    /// The future [`capture_future`] returns.
    #[must_use = "futures do nothing unless polled"]
    pub struct CaptureFuture<F> {
        #[pin]
        future: F,
        sink: Sink,
        home: Option<Registration>,
    }
}

impl<F: Future> Future for CaptureFuture<F> {
    type Output = Spans;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Spans> {
        let this = self.project();
        let home = this
            .home
            .get_or_insert_with(|| Registration::new(this.sink));
        let visiting =
            (home.thread != std::thread::current().id()).then(|| Registration::new(this.sink));
        let subscriber = crate::bridge::fallback_subscriber();
        let poll = this.future.poll(cx);
        drop(subscriber);
        drop(visiting);
        match poll {
            Poll::Ready(_) => {
                *this.home = None;
                Poll::Ready(take(this.sink))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A sink registered for one thread; unregistered on drop, even when the
/// code under test panics.
#[derive(Debug)]
struct Registration {
    thread: ThreadId,
    sink: Sink,
}

impl Registration {
    fn new(sink: &Sink) -> Self {
        ensure_provider();
        crate::bridge::ensure_filter(crate::config::testing_tracing_filter);
        let thread = std::thread::current().id();
        lock(&SINKS).push((thread, Arc::clone(sink)));
        CAPTURING.fetch_add(1, Ordering::Relaxed);
        Self {
            thread,
            sink: Arc::clone(sink),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut sinks = lock(&SINKS);
        if let Some(i) = sinks
            .iter()
            .rposition(|(t, s)| *t == self.thread && Arc::ptr_eq(s, &self.sink))
        {
            sinks.remove(i);
            CAPTURING.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn take(sink: &Sink) -> Spans {
    std::mem::take(&mut *lock(sink)).into()
}

/// The spans [`capture`] returns, in the order they ended. Derefs to a slice
/// of [`CapturedSpan`], and adds lookups that fail with a readable message.
#[derive(Clone, Debug, Default)]
pub struct Spans(Vec<CapturedSpan>);

impl Spans {
    /// The span named `name`.
    ///
    /// # Panics
    ///
    /// If no span, or more than one, has that name: the message lists the
    /// spans there are.
    #[must_use]
    #[track_caller]
    pub fn named(&self, name: &str) -> &CapturedSpan {
        let mut found = self.0.iter().filter(|s| s.name == name);
        match (found.next(), found.next()) {
            (Some(span), None) => span,
            (None, _) => panic!("no span named {name:?}; the spans are:\n{}", self.tree()),
            (Some(_), Some(_)) => {
                panic!(
                    "more than one span named {name:?}; the spans are:\n{}",
                    self.tree()
                )
            }
        }
    }

    /// The spans whose parent is `parent`, in the order they started.
    #[must_use]
    pub fn children_of(&self, parent: &CapturedSpan) -> Vec<&CapturedSpan> {
        let mut children: Vec<_> = self
            .0
            .iter()
            .filter(|s| s.parent_span_id == parent.span_id && s.trace_id == parent.trace_id)
            .collect();
        children.sort_by_key(|s| s.start_time);
        children
    }

    /// The spans as an indented tree, one line a span, children under their
    /// parent in the order they started: the shape of the traces, for a test
    /// to compare in one assertion. A span whose parent was not captured is
    /// a root here. Lines say the kind unless it is internal, and `error`
    /// when the status is Error.
    ///
    /// ```
    /// #[vaxila::instrument(kind = server)]
    /// fn handle() { load(); render(); }
    /// #[vaxila::instrument]
    /// fn load() {}
    /// #[vaxila::instrument]
    /// fn render() -> Result<(), std::fmt::Error> { Err(std::fmt::Error) }
    ///
    /// let spans = vaxila::testing::capture(handle);
    /// assert_eq!(spans.tree(), "\
    /// handle [server]
    ///   load
    ///   render [error]
    /// ");
    /// ```
    #[must_use]
    pub fn tree(&self) -> String {
        let captured = |id: SpanId| self.0.iter().any(|s| s.span_id == id);
        let mut roots: Vec<_> = self
            .0
            .iter()
            .filter(|s| !captured(s.parent_span_id))
            .collect();
        roots.sort_by_key(|s| s.start_time);
        let mut out = String::new();
        for root in roots {
            self.write_tree(root, 0, &mut out);
        }
        out
    }

    fn write_tree(&self, span: &CapturedSpan, depth: usize, out: &mut String) {
        use std::fmt::Write as _;
        let _ = write!(out, "{:indent$}{}", "", span.name, indent = depth * 2);
        let kind = match span.kind {
            SpanKind::Internal => None,
            SpanKind::Server => Some("server"),
            SpanKind::Client => Some("client"),
            SpanKind::Producer => Some("producer"),
            SpanKind::Consumer => Some("consumer"),
        };
        let error = matches!(span.status, Status::Error { .. }).then_some("error");
        let marks: Vec<_> = kind.into_iter().chain(error).collect();
        if !marks.is_empty() {
            let _ = write!(out, " [{}]", marks.join(", "));
        }
        out.push('\n');
        for child in self.children_of(span) {
            self.write_tree(child, depth + 1, out);
        }
    }

    /// The spans, in the order they ended.
    #[must_use]
    pub fn into_vec(self) -> Vec<CapturedSpan> {
        self.0
    }
}

impl From<Vec<SpanData>> for Spans {
    fn from(spans: Vec<SpanData>) -> Self {
        Self(spans.into_iter().map(CapturedSpan::from).collect())
    }
}

impl std::ops::Deref for Spans {
    type Target = [CapturedSpan];

    fn deref(&self) -> &[CapturedSpan] {
        &self.0
    }
}

impl IntoIterator for Spans {
    type Item = CapturedSpan;
    type IntoIter = std::vec::IntoIter<CapturedSpan>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a Spans {
    type Item = &'a CapturedSpan;
    type IntoIter = std::slice::Iter<'a, CapturedSpan>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// A finished span, as [`capture`] returns it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CapturedSpan {
    /// The span name.
    pub name: String,
    /// The span kind.
    pub kind: SpanKind,
    /// The trace the span belongs to.
    pub trace_id: TraceId,
    /// The span's own id.
    pub span_id: SpanId,
    /// The parent's span id, `SpanId::INVALID` for a root span.
    pub parent_span_id: SpanId,
    /// The attributes, in the order they were set.
    pub attributes: Vec<(Key, Value)>,
    /// The events, in the order they were added.
    pub events: Vec<CapturedEvent>,
    /// The status: `Unset` unless the span failed.
    pub status: Status,
    /// When the span started.
    pub start_time: SystemTime,
    /// When the span ended.
    pub end_time: SystemTime,
}

impl CapturedSpan {
    /// The value of attribute `key`, if the span has it.
    #[must_use]
    pub fn attr(&self, key: &str) -> Option<&Value> {
        find_attr(&self.attributes, key)
    }

    /// The first event named `name`, if the span has one.
    #[must_use]
    pub fn event(&self, name: &str) -> Option<&CapturedEvent> {
        self.events.iter().find(|e| e.name == name)
    }

    /// How long the span lasted.
    #[must_use]
    pub fn duration(&self) -> Duration {
        self.end_time
            .duration_since(self.start_time)
            .unwrap_or_default()
    }

    /// Whether the span is a root span (has no parent).
    #[must_use]
    pub fn is_root(&self) -> bool {
        self.parent_span_id == SpanId::INVALID
    }
}

fn find_attr<'a>(attributes: &'a [(Key, Value)], key: &str) -> Option<&'a Value> {
    attributes
        .iter()
        .find(|(k, _)| k.as_str() == key)
        .map(|(_, v)| v)
}

/// An event of a [`CapturedSpan`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CapturedEvent {
    /// The event name, `exception` for errors and panics.
    pub name: String,
    /// The event's attributes.
    pub attributes: Vec<(Key, Value)>,
}

impl CapturedEvent {
    /// The value of attribute `key`, if the event has it.
    #[must_use]
    pub fn attr(&self, key: &str) -> Option<&Value> {
        find_attr(&self.attributes, key)
    }
}

impl From<SpanData> for CapturedSpan {
    fn from(span: SpanData) -> Self {
        Self {
            name: span.name.into_owned(),
            kind: span.span_kind,
            trace_id: span.span_context.trace_id(),
            span_id: span.span_context.span_id(),
            parent_span_id: span.parent_span_id,
            attributes: span
                .attributes
                .into_iter()
                .map(|kv| (kv.key, kv.value))
                .collect(),
            events: span
                .events
                .into_iter()
                .map(|e| CapturedEvent {
                    name: e.name.into_owned(),
                    attributes: e
                        .attributes
                        .into_iter()
                        .map(|kv| (kv.key, kv.value))
                        .collect(),
                })
                .collect(),
            status: span.status,
            start_time: span.start_time,
            end_time: span.end_time,
        }
    }
}
