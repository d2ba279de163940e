//! Spans around a block of code ([`span`]) and the span that is current ([`current_span`]).

use std::borrow::Cow;
use std::error::Error;
use std::fmt::Display;
use std::future::Future;
use std::panic::Location;

use opentelemetry::trace::{SpanContext, SpanKind, TraceContextExt as _};
use opentelemetry::{Context, Key, KeyValue};
use smallvec::SmallVec;

use crate::__private::{Parent as From, Site, is_live, with_live};
use crate::__private::{Span, Target, record_exception};
use crate::AttributeValue;
use crate::record::Code;

/// Starts describing a span around a block of code: the Rust form of
/// `with tracer.start_as_current_span("name") as span:`.
///
/// Finish the description with [`in_scope`](SpanBuilder::in_scope) for
/// synchronous code or [`instrument`](SpanBuilder::instrument) for a future.
/// The span is current while the code runs, so spans started inside it (by
/// `#[vaxila::instrument]`, `tracing` or the OpenTelemetry API) are its
/// children; a panic is recorded on it, and with the `try_` forms an `Err`
/// too, exactly as `#[vaxila::instrument]` records them. The span's
/// `code.file.path` and `code.line.number` are where `span` was called.
///
/// Before [`init`](crate::init) nothing is recorded and the block runs as
/// if the span were not there.
///
/// ```
/// # #[derive(Debug)] struct DbError;
/// # impl std::fmt::Display for DbError {
/// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("db") }
/// # }
/// # fn query(id: i64) -> Result<Vec<i64>, DbError> { Ok(vec![id]) }
/// # fn main() -> Result<(), DbError> {
/// let id = 42;
/// let rows = vaxila::span("load_rows")
///     .kind(vaxila::SpanKind::Client)
///     .attr("id", id)
///     .try_in_scope(|span| {
///         let rows = query(id)?;
///         span.set_attribute("rows", rows.len());
///         Ok(rows)
///     })?;
/// # assert_eq!(rows, [42]);
/// # Ok(()) }
/// ```
#[track_caller]
pub fn span(name: impl Into<Cow<'static, str>>) -> SpanBuilder {
    SpanBuilder {
        name: name.into(),
        kind: SpanKind::Internal,
        attributes: SmallVec::new(),
        parent: Parent::Current,
        location: Location::caller(),
    }
}

/// A span being described; see [`span`].
#[derive(Debug)]
#[must_use = "a span builder does nothing until `in_scope` or `instrument` runs code in it"]
pub struct SpanBuilder {
    name: Cow<'static, str>,
    kind: SpanKind,
    attributes: SmallVec<[KeyValue; 4]>,
    parent: Parent,
    location: &'static Location<'static>,
}

#[derive(Debug)]
enum Parent {
    Current,
    Explicit(Context),
    Root,
}

impl SpanBuilder {
    /// Sets the span kind (`Internal` unless set).
    ///
    /// ```
    /// let body = vaxila::span("GET /users").kind(vaxila::SpanKind::Client).in_scope(|_| "[]");
    /// # assert_eq!(body, "[]");
    /// ```
    pub fn kind(mut self, kind: SpanKind) -> Self {
        self.kind = kind;
        self
    }

    /// Records `value` under `key` with its typed value (see [`AttributeValue`]).
    /// Nothing is computed before [`init`](crate::init).
    ///
    /// ```
    /// vaxila::span("charge").attr("amount", 1250).attr("currency", "EUR").in_scope(|_| ());
    /// ```
    pub fn attr(mut self, key: impl Into<Key>, value: impl AttributeValue) -> Self {
        if crate::global::enabled()
            && let Some(value) = value.to_value()
        {
            self.attributes.push(KeyValue::new(key, value));
        }
        self
    }

    /// Makes the span a child of `parent` instead of the current context.
    ///
    /// ```
    /// let request = vaxila::opentelemetry::Context::current();
    /// std::thread::spawn(move || {
    ///     vaxila::span("background_job").parent(&request).in_scope(|_| ());
    /// }).join().unwrap();
    /// ```
    pub fn parent(mut self, parent: &Context) -> Self {
        self.parent = Parent::Explicit(parent.clone());
        self
    }

    /// Starts a new trace, whatever the current context.
    ///
    /// ```
    /// vaxila::span("nightly_cleanup").root().in_scope(|_| ());
    /// ```
    pub fn root(mut self) -> Self {
        self.parent = Parent::Root;
        self
    }

    /// Runs `f` inside the span and returns what it returns. A panic in `f`
    /// is recorded on the span and goes on unchanged.
    ///
    /// `f` gets the span, to add what it learns while it runs. To have an
    /// `Err` recorded too, use [`try_in_scope`](Self::try_in_scope).
    ///
    /// ```
    /// let total = vaxila::span("sum").in_scope(|span| {
    ///     let total: i64 = (1..=10).sum();
    ///     span.set_attribute("total", total);
    ///     total
    /// });
    /// assert_eq!(total, 55);
    /// ```
    pub fn in_scope<R>(self, f: impl FnOnce(&ActiveSpan) -> R) -> R {
        let mut span = self.start();
        let active = ActiveSpan::of(&span);
        span.in_scope(|| f(&active))
    }

    /// Like [`in_scope`](Self::in_scope), and an `Err` marks the span
    /// failed: status Error with the error's text, `error.type`, and an
    /// `exception` event, as `#[vaxila::instrument]` does.
    ///
    /// ```
    /// let parsed = vaxila::span("parse").try_in_scope(|_| "x1".parse::<u8>());
    /// assert!(parsed.is_err()); // and the span says why
    /// ```
    pub fn try_in_scope<T, E: Display>(
        self,
        f: impl FnOnce(&ActiveSpan) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut span = self.start();
        let active = ActiveSpan::of(&span);
        let result = span.in_scope(|| f(&active));
        if let Err(e) = &result {
            span.record_error(std::any::type_name::<E>(), e);
        }
        result
    }

    /// Runs `future` inside the span. The span starts at the first poll, is
    /// current during every poll, and ends when the future completes; a
    /// future dropped before it completes ends it with
    /// `vaxila.cancelled = true`. A panic is recorded and goes on.
    ///
    /// ```
    /// # async fn get(url: &str) -> usize { url.len() }
    /// # async fn run() {
    /// let url = "https://example.com/";
    /// let body = vaxila::span("fetch").attr("url", url).instrument(async { get(url).await }).await;
    /// # }
    /// ```
    pub async fn instrument<F: Future>(self, future: F) -> F::Output {
        let mut span = self.start();
        span.instrument(future).await
    }

    /// Like [`instrument`](Self::instrument), and an `Err` output marks the
    /// span failed as [`try_in_scope`](Self::try_in_scope) does.
    ///
    /// ```
    /// # async fn run() {
    /// let n = vaxila::span("parse").try_instrument(async { "7".parse::<u8>() }).await;
    /// # assert_eq!(n, Ok(7));
    /// # }
    /// ```
    pub async fn try_instrument<T, E: Display, F: Future<Output = Result<T, E>>>(
        self,
        future: F,
    ) -> Result<T, E> {
        let mut span = self.start();
        let result = span.instrument(future).await;
        if let Err(e) = &result {
            span.record_error(std::any::type_name::<E>(), e);
        }
        result
    }

    fn start(self) -> Span {
        if !crate::global::enabled() {
            return Span::disabled();
        }
        let parent = match &self.parent {
            Parent::Current => From::Current,
            Parent::Explicit(cx) => From::Explicit(cx),
            Parent::Root => From::Root,
        };
        let (name, attributes) = (self.name, self.attributes);
        Span::begin(
            Site {
                name: move || name.into(),
                kind: self.kind,
                code: Code::Caller(self.location),
                attributes: move || attributes,
            },
            parent,
        )
    }
}

/// The span that is current, whoever started it: `#[vaxila::instrument]`,
/// [`span`], a `tracing` span through the bridge, or the OpenTelemetry API.
///
/// Use it to add what a function learns while it runs. Outside any span, or
/// before [`init`](crate::init), every method does nothing.
///
/// ```
/// #[vaxila::instrument(args(key))]
/// fn lookup(key: &str) -> Option<u32> {
///     let hit = key == "answer";
///     vaxila::current_span().set_attribute("cache.hit", hit);
///     hit.then_some(42)
/// }
/// # assert_eq!(lookup("answer"), Some(42));
/// ```
#[must_use]
pub fn current_span() -> ActiveSpan {
    Context::map_current(|cx| {
        if !cx.has_active_span() {
            return ActiveSpan {
                cx: None,
                live: false,
            };
        }
        ActiveSpan {
            live: is_live(cx.span().span_context().span_id()),
            cx: Some(cx.clone()),
        }
    })
}

/// A handle to a span that has started and not yet ended; see [`current_span`].
///
/// A span of `#[vaxila::instrument]` or [`span`] takes what is given to it
/// through the handle on a thread where its code is running at that moment
/// (where `current_span()` is called, typically); given after its code has
/// returned, or from a thread where it is not running, it is ignored.
/// Spans of `tracing` and of the OpenTelemetry API take it wherever they
/// are still open.
///
/// Write to the spans of this crate through this handle, not through the
/// OpenTelemetry API's `Context::current().span()`: the context carries
/// their ids (so their children are theirs), not their records, and the
/// API's span there records nothing.
#[derive(Clone, Debug)]
pub struct ActiveSpan {
    cx: Option<Context>,
    /// A span of ours, reached through this thread's entered spans.
    live: bool,
}

impl ActiveSpan {
    fn of(span: &Span) -> Self {
        Self {
            cx: span.context().cloned(),
            live: span.is_live(),
        }
    }

    /// Runs `f` on where what is given to the span goes, if it is kept.
    fn with_target<R>(&self, f: impl FnOnce(&mut Target<'_>) -> R) -> Option<R> {
        let cx = self.cx.as_ref()?;
        if self.live {
            with_live(cx.span().span_context().span_id(), |record| {
                f(&mut Target::Record(record))
            })
        } else {
            let span = cx.span();
            span.is_recording().then(|| f(&mut Target::Sdk(span)))
        }
    }

    /// Whether what is given to this span is kept (it is started and sampled).
    #[must_use]
    pub fn is_recording(&self) -> bool {
        self.with_target(|_| ()).is_some()
    }

    /// The span's trace and span ids, `SpanContext::empty_context()` outside any span.
    #[must_use]
    pub fn span_context(&self) -> SpanContext {
        self.cx
            .as_ref()
            .map_or_else(SpanContext::empty_context, |cx| {
                cx.span().span_context().clone()
            })
    }

    /// Records `value` under `key` with its typed value (see [`AttributeValue`]).
    ///
    /// ```
    /// vaxila::current_span().set_attribute("rows", 3usize);
    /// ```
    pub fn set_attribute(&self, key: impl Into<Key>, value: impl AttributeValue) {
        if let Some(value) = value.to_value() {
            self.with_target(|span| span.set_attribute(KeyValue::new(key, value)));
        }
    }

    /// Adds an event with attributes of one value type; for values of
    /// several types, give [`Value`](opentelemetry::Value)s.
    ///
    /// ```
    /// use vaxila::opentelemetry::Value;
    ///
    /// vaxila::current_span().add_event("retry", [("attempt", 2)]);
    /// vaxila::current_span().add_event(
    ///     "cache.miss",
    ///     [("key", Value::from("user:7")), ("ttl_s", Value::from(30))],
    /// );
    /// ```
    pub fn add_event<K, V>(
        &self,
        name: impl Into<Cow<'static, str>>,
        attributes: impl IntoIterator<Item = (K, V)>,
    ) where
        K: Into<Key>,
        V: AttributeValue,
    {
        if self.is_recording() {
            let attributes = attributes
                .into_iter()
                .filter_map(|(k, v)| v.to_value().map(|v| KeyValue::new(k, v)))
                .collect();
            self.with_target(|span| span.add_event(name.into(), attributes));
        }
    }

    /// Marks the span failed by `err`: status Error with its text,
    /// `error.type` (its type name) and an `exception` event, as
    /// `#[vaxila::instrument]` records an `Err`.
    ///
    /// ```
    /// if let Err(err) = "x".parse::<i32>() {
    ///     vaxila::current_span().record_error(&err);
    /// }
    /// ```
    pub fn record_error<E: Error + ?Sized>(&self, err: &E) {
        if self.is_recording() {
            let message = err.to_string();
            self.with_target(|span| record_exception(span, std::any::type_name::<E>(), message));
        }
    }
}
