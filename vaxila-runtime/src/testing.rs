//! Assertions on the spans your code produces: [`capture`].

use std::cell::RefCell;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry::{Context, Key, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanProcessor};

/// How many threads are inside [`capture`] right now: when none is, the
/// processor returns after one atomic load.
static CAPTURING: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static STACK: RefCell<Vec<Vec<SpanData>>> = const { RefCell::new(Vec::new()) };
}

/// The span processor behind [`capture`]; every pipeline this crate builds has it.
#[derive(Debug, Default)]
pub(crate) struct CaptureProcessor;

impl SpanProcessor for CaptureProcessor {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &Context) {}

    fn on_end(&self, span: SpanData) {
        if CAPTURING.load(Ordering::Relaxed) == 0 {
            return;
        }
        STACK.with(|stack| {
            if let Some(top) = stack.borrow_mut().last_mut() {
                top.push(span);
            }
        });
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Installs a provider that only feeds [`capture`], unless one is installed.
fn ensure_provider() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        if crate::global::tracer().is_none() {
            crate::set_tracer_provider(
                SdkTracerProvider::builder()
                    .with_span_processor(CaptureProcessor)
                    .build(),
            );
        }
    });
}

/// Runs `f` and returns the spans that finished on this thread while it ran,
/// in the order they ended (children before their parents).
///
/// Spans ended on other threads are not seen, so tests that run in parallel
/// never see each other's spans. If nothing is installed yet, `capture`
/// installs a provider that records for it alone.
///
/// ```
/// #[vaxila::instrument(args(id))]
/// fn awesome_action(id: i64) {}
///
/// let spans = vaxila::testing::capture(|| awesome_action(42));
/// assert_eq!(spans[0].name, "awesome_action");
/// assert_eq!(spans[0].attr("id"), Some(&42i64.into()));
/// ```
pub fn capture<R>(f: impl FnOnce() -> R) -> Vec<CapturedSpan> {
    struct Pop;
    impl Drop for Pop {
        fn drop(&mut self) {
            CAPTURING.fetch_sub(1, Ordering::Relaxed);
        }
    }

    ensure_provider();
    STACK.with(|stack| stack.borrow_mut().push(Vec::new()));
    CAPTURING.fetch_add(1, Ordering::Relaxed);
    let pop = Pop;
    let _ = f();
    drop(pop);
    STACK
        .with(|stack| stack.borrow_mut().pop())
        .unwrap_or_default()
        .into_iter()
        .map(CapturedSpan::from)
        .collect()
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
}

impl CapturedSpan {
    /// The value of attribute `key`, if the span has it.
    #[must_use]
    pub fn attr(&self, key: &str) -> Option<&Value> {
        self.attributes
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
    }

    /// The first event named `name`, if the span has one.
    #[must_use]
    pub fn event(&self, name: &str) -> Option<&CapturedEvent> {
        self.events.iter().find(|e| e.name == name)
    }

    /// Whether the span is a root span (has no parent).
    #[must_use]
    pub fn is_root(&self) -> bool {
        self.parent_span_id == SpanId::INVALID
    }
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
        self.attributes
            .iter()
            .find(|(k, _)| k.as_str() == key)
            .map(|(_, v)| v)
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
        }
    }
}
