//! What code expanded from `#[vaxila::instrument]` calls. Not a stable API.
//!
//! Expansions name only items of this module, so the way a span is started,
//! made current and ended can change here without touching any expansion.

use std::any::Any;
use std::fmt::{Debug, Display};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use opentelemetry::trace::{Span as _, SpanRef, Status, TraceContextExt as _, Tracer as _};
use opentelemetry::{Context, KeyValue, Value};

pub use crate::attribute::AttributeValue;
pub use opentelemetry::trace::SpanKind;

/// What a span site knows at compile time, built once as a `static`.
#[derive(Debug)]
pub struct Meta {
    name: &'static str,
    kind: SpanKind,
    function: &'static str,
    file: &'static str,
    line: u32,
}

impl Meta {
    /// Describes one instrumented function or span site.
    #[must_use]
    pub const fn new(
        name: &'static str,
        kind: SpanKind,
        function: &'static str,
        file: &'static str,
        line: u32,
    ) -> Self {
        Self {
            name,
            kind,
            function,
            file,
            line,
        }
    }
}

/// One span of an instrumented call: started by `start*`, ended on drop.
///
/// Before `init` it holds nothing and every method returns at once.
#[derive(Debug)]
pub struct Span {
    cx: Option<Context>,
    recording: bool,
}

impl Span {
    const DISABLED: Self = Self {
        cx: None,
        recording: false,
    };

    /// Starts a span whose parent is the current context.
    #[inline]
    #[must_use]
    pub fn start(meta: &'static Meta) -> Self {
        match crate::global::tracer() {
            None => Self::DISABLED,
            Some(tracer) => Context::map_current(|parent| Self::build(&tracer, meta, parent)),
        }
    }

    /// Starts a span under an explicit parent context.
    #[inline]
    #[must_use]
    pub fn start_with_parent(meta: &'static Meta, parent: &Context) -> Self {
        match crate::global::tracer() {
            None => Self::DISABLED,
            Some(tracer) => Self::build(&tracer, meta, parent),
        }
    }

    /// Starts the root span of a new trace, whatever the current context.
    #[inline]
    #[must_use]
    pub fn start_root(meta: &'static Meta) -> Self {
        match crate::global::tracer() {
            None => Self::DISABLED,
            Some(tracer) => Self::build(&tracer, meta, &Context::new()),
        }
    }

    pub(crate) fn build(
        tracer: &opentelemetry_sdk::trace::SdkTracer,
        meta: &'static Meta,
        parent: &Context,
    ) -> Self {
        let builder = tracer.span_builder(meta.name).with_kind(meta.kind.clone());
        let mut span = tracer.build_with_context(builder, parent);
        let recording = span.is_recording();
        // After the sampling decision: an unsampled span allocates nothing for them.
        if recording {
            span.set_attributes([
                KeyValue::new("code.function.name", meta.function),
                KeyValue::new("code.file.path", meta.file),
                KeyValue::new("code.line.number", i64::from(meta.line)),
            ]);
        }
        Self {
            cx: Some(parent.with_span(span)),
            recording,
        }
    }

    /// Whether attributes given to this span are kept. Attribute expressions
    /// are evaluated only when it is.
    #[inline]
    #[must_use]
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    fn set(&mut self, key: &'static str, value: Value) {
        if let Some(cx) = &self.cx {
            cx.span().set_attribute(KeyValue::new(key, value));
        }
    }

    /// Records `value` under `key` with its typed value.
    #[inline]
    pub fn attr<V: AttributeValue + ?Sized>(&mut self, key: &'static str, value: &V) {
        if self.recording
            && let Some(value) = value.to_value()
        {
            self.set(key, value);
        }
    }

    /// Records the `Display` text of `value` under `key`.
    #[inline]
    pub fn attr_display<V: Display + ?Sized>(&mut self, key: &'static str, value: &V) {
        if self.recording {
            self.set(key, Value::String(value.to_string().into()));
        }
    }

    /// Records the `Debug` text of `value` under `key`.
    #[inline]
    pub fn attr_debug<V: Debug + ?Sized>(&mut self, key: &'static str, value: &V) {
        if self.recording {
            self.set(key, Value::String(format!("{value:?}").into()));
        }
    }

    /// Runs `f` with this span as the current context, recording a panic
    /// that escapes it before letting the panic go on.
    #[inline]
    pub fn in_scope<R>(&mut self, f: impl FnOnce() -> R) -> R {
        self.poll_in(&mut false, f)
    }

    /// Polls `future` with this span as the current context on every poll.
    ///
    /// `R` is named so that the expansion can write `instrument::<Ret, _>`:
    /// an `async` block's output type is then known while its body is
    /// checked, which `?` and `return` inside the body need.
    #[inline]
    pub fn instrument<R, F: Future<Output = R>>(&mut self, future: F) -> Instrumented<'_, F> {
        Instrumented {
            span: self,
            future,
            done: false,
        }
    }

    /// Marks the span failed by an error: status Error with `message`,
    /// `error.type`, and an `exception` event.
    pub fn record_error(&mut self, type_name: &'static str, message: &dyn Display) {
        if let Some(cx) = self.cx.as_ref().filter(|_| self.recording) {
            record_exception(&cx.span(), type_name, &message.to_string());
        }
    }

    fn record_panic(&mut self, payload: &(dyn Any + Send)) {
        if !self.recording {
            return;
        }
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("Box<dyn Any>");
        if let Some(cx) = &self.cx {
            record_exception(&cx.span(), "panic", message);
        }
    }

    pub(crate) fn record_cancelled(&mut self) {
        if self.recording {
            self.set("vaxila.cancelled", Value::Bool(true));
        }
    }
}

/// Status Error with `message`, `error.type`, and an `exception` event: how
/// every failure is recorded, by the macro, the span builder, `current_span()`
/// and for panics (whose type is `panic`).
pub(crate) fn record_exception(span: &SpanRef<'_>, type_name: &'static str, message: &str) {
    span.set_attribute(KeyValue::new("error.type", type_name));
    span.add_event(
        "exception",
        vec![
            KeyValue::new("exception.type", type_name),
            KeyValue::new("exception.message", message.to_owned()),
        ],
    );
    span.set_status(Status::error(message.to_owned()));
}

impl Drop for Span {
    #[inline]
    fn drop(&mut self) {
        if let Some(cx) = &self.cx {
            cx.span().end();
        }
    }
}

pin_project_lite::pin_project! {
    /// A future polled inside its span; marks the span cancelled if dropped
    /// before it completes.
    #[must_use = "futures do nothing unless polled"]
    pub struct Instrumented<'a, F> {
        span: &'a mut Span,
        #[pin]
        future: F,
        done: bool,
    }

    impl<F> PinnedDrop for Instrumented<'_, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.done {
                this.span.record_cancelled();
            }
        }
    }
}

impl<F: Future> Future for Instrumented<'_, F> {
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut future = this.future;
        let poll = this.span.poll_in(this.done, || future.as_mut().poll(task));
        *this.done = poll.is_ready();
        poll
    }
}

impl Span {
    /// Runs `poll` inside the span: its context is current meanwhile, and a
    /// panic is recorded (with `done` set, so that it is not also taken for
    /// a cancellation) before it goes on. Sync bodies, and every poll of a
    /// future or stream that runs inside a span, go through here.
    #[inline]
    pub(crate) fn poll_in<T>(&mut self, done: &mut bool, poll: impl FnOnce() -> T) -> T {
        let Some(cx) = &self.cx else { return poll() };
        let guard = cx.clone().attach();
        match catch_unwind(AssertUnwindSafe(poll)) {
            Ok(value) => value,
            Err(payload) => {
                drop(guard);
                *done = true;
                self.record_panic(&*payload);
                resume_unwind(payload)
            }
        }
    }
}

// How the expansion records a value whose type it cannot see: "autoref
// specialisation". `Probe(&value)` is taken by as many references as the
// most specific impl below has, plus one (the methods take `&self`); method
// resolution then tries the impls from the most references down and calls
// the first one whose bounds hold. The macros keep the reference counts and
// the trait imports here, next to the impls they must agree with.

/// Wraps a value for the `record_*!` macros below.
pub struct Probe<'a, T: ?Sized>(pub &'a T);

/// `args(..)`: records a parameter if its type is recordable, passes over it
/// otherwise. With `redacted`, records `"[REDACTED]"` in place of its value.
#[doc(hidden)]
#[macro_export]
macro_rules! __vaxila_record_arg {
    ($span:ident, $key:literal, $value:expr) => {{
        use $crate::__private::{ArgRecord as _, ArgSkip as _};
        (&&$crate::__private::Probe(&$value)).__vaxila_arg(&mut $span, $key, false);
    }};
    ($span:ident, $key:literal, $value:expr, redacted) => {{
        use $crate::__private::{ArgRecord as _, ArgSkip as _};
        (&&$crate::__private::Probe(&$value)).__vaxila_arg(&mut $span, $key, true);
    }};
}
pub use crate::__vaxila_record_arg as record_arg;

/// Marks the span failed if the value is an `Err`, whatever the `Result`
/// type is called at the definition site (`io::Result`, `anyhow::Result`).
#[doc(hidden)]
#[macro_export]
macro_rules! __vaxila_record_err {
    ($span:ident, $value:expr) => {{
        use $crate::__private::{ErrDebug as _, ErrDisplay as _, ErrOpaque as _, NotResult as _};
        (&&&&$crate::__private::Probe(&$value)).__vaxila_err(&mut $span);
    }};
}
pub use crate::__vaxila_record_err as record_err;

/// `ret`: records the return value (the `Ok` value of a `Result`) as `return`.
#[doc(hidden)]
#[macro_export]
macro_rules! __vaxila_record_ret {
    ($span:ident, $value:expr) => {{
        use $crate::__private::{
            RetDebug as _, RetOkDebug as _, RetOkOpaque as _, RetOkValue as _, RetOpaque as _,
            RetValue as _,
        };
        (&&&&&&$crate::__private::Probe(&$value)).__vaxila_ret(&mut $span);
    }};
}
pub use crate::__vaxila_record_ret as record_ret;

/// A parameter whose type is recordable...
pub trait ArgRecord {
    /// Records the parameter, or `"[REDACTED]"` in its place.
    fn __vaxila_arg(&self, span: &mut Span, key: &'static str, redacted: bool);
}

impl<T: AttributeValue + ?Sized> ArgRecord for &Probe<'_, T> {
    #[inline]
    fn __vaxila_arg(&self, span: &mut Span, key: &'static str, redacted: bool) {
        if redacted {
            span.attr(key, "[REDACTED]");
        } else {
            span.attr(key, self.0);
        }
    }
}

/// ...and one whose type is not.
pub trait ArgSkip {
    /// Records nothing.
    fn __vaxila_arg(&self, span: &mut Span, key: &'static str, redacted: bool);
}

impl<T: ?Sized> ArgSkip for Probe<'_, T> {
    #[inline]
    fn __vaxila_arg(&self, _: &mut Span, _: &'static str, _: bool) {}
}

/// `Err(e)` where `e: Display`: its text describes the failure.
pub trait ErrDisplay {
    /// Records the error, if the value is one.
    fn __vaxila_err(&self, span: &mut Span);
}

impl<T, E: Display> ErrDisplay for &&&Probe<'_, Result<T, E>> {
    #[inline]
    fn __vaxila_err(&self, span: &mut Span) {
        if let Err(e) = self.0 {
            span.record_error(std::any::type_name::<E>(), e);
        }
    }
}

/// `Err(e)` where `e: Debug` only.
pub trait ErrDebug {
    /// Records the error, if the value is one.
    fn __vaxila_err(&self, span: &mut Span);
}

impl<T, E: Debug> ErrDebug for &&Probe<'_, Result<T, E>> {
    #[inline]
    fn __vaxila_err(&self, span: &mut Span) {
        if let Err(e) = self.0 {
            span.record_error(std::any::type_name::<E>(), &format_args!("{e:?}"));
        }
    }
}

/// `Err(e)` of any other type: its type name describes the failure.
pub trait ErrOpaque {
    /// Records the error, if the value is one.
    fn __vaxila_err(&self, span: &mut Span);
}

impl<T, E> ErrOpaque for &Probe<'_, Result<T, E>> {
    #[inline]
    fn __vaxila_err(&self, span: &mut Span) {
        if self.0.is_err() {
            let name = std::any::type_name::<E>();
            span.record_error(name, &name);
        }
    }
}

/// Anything that is not a `Result` cannot fail.
pub trait NotResult {
    /// Records nothing.
    fn __vaxila_err(&self, span: &mut Span);
}

impl<T: ?Sized> NotResult for Probe<'_, T> {
    #[inline]
    fn __vaxila_err(&self, _: &mut Span) {}
}

/// `ret` on `Ok(v)` where `v` is recordable.
pub trait RetOkValue {
    /// Records the return value.
    fn __vaxila_ret(&self, span: &mut Span);
}

impl<T: AttributeValue, E> RetOkValue for &&&&&Probe<'_, Result<T, E>> {
    #[inline]
    fn __vaxila_ret(&self, span: &mut Span) {
        if let Ok(v) = self.0 {
            span.attr("return", v);
        }
    }
}

/// `ret` on `Ok(v)` where `v: Debug`.
pub trait RetOkDebug {
    /// Records the return value.
    fn __vaxila_ret(&self, span: &mut Span);
}

impl<T: Debug, E> RetOkDebug for &&&&Probe<'_, Result<T, E>> {
    #[inline]
    fn __vaxila_ret(&self, span: &mut Span) {
        if let Ok(v) = self.0 {
            span.attr_debug("return", v);
        }
    }
}

/// `ret` on any other `Result`: nothing to record.
pub trait RetOkOpaque {
    /// Records nothing.
    fn __vaxila_ret(&self, span: &mut Span);
}

impl<T, E> RetOkOpaque for &&&Probe<'_, Result<T, E>> {
    #[inline]
    fn __vaxila_ret(&self, _: &mut Span) {}
}

/// `ret` on a recordable value.
pub trait RetValue {
    /// Records the return value.
    fn __vaxila_ret(&self, span: &mut Span);
}

impl<T: AttributeValue + ?Sized> RetValue for &&Probe<'_, T> {
    #[inline]
    fn __vaxila_ret(&self, span: &mut Span) {
        span.attr("return", self.0);
    }
}

/// `ret` on a `Debug` value.
pub trait RetDebug {
    /// Records the return value.
    fn __vaxila_ret(&self, span: &mut Span);
}

impl<T: Debug + ?Sized> RetDebug for &Probe<'_, T> {
    #[inline]
    fn __vaxila_ret(&self, span: &mut Span) {
        span.attr_debug("return", self.0);
    }
}

/// `ret` on anything else: nothing to record.
pub trait RetOpaque {
    /// Records nothing.
    fn __vaxila_ret(&self, span: &mut Span);
}

impl<T: ?Sized> RetOpaque for Probe<'_, T> {
    #[inline]
    fn __vaxila_ret(&self, _: &mut Span) {}
}

/// What the span builder (`vaxila::span`) needs beyond the expansion's surface.
impl Span {
    pub(crate) const fn disabled() -> Self {
        Self::DISABLED
    }

    pub(crate) fn from_context(cx: Context) -> Self {
        let recording = cx.span().is_recording();
        Self {
            cx: Some(cx),
            recording,
        }
    }

    pub(crate) fn context(&self) -> Option<&Context> {
        self.cx.as_ref()
    }

    #[cfg(any(feature = "axum", feature = "reqwest", feature = "sqlx"))]
    /// A span with a name and attributes known only at run time (the
    /// integrations' HTTP and database spans), under `parent`; disabled
    /// before `init`.
    pub(crate) fn start_named(
        name: impl FnOnce() -> std::borrow::Cow<'static, str>,
        kind: SpanKind,
        attributes: impl FnOnce() -> Vec<KeyValue>,
        parent: &Context,
    ) -> Self {
        let Some(tracer) = crate::global::tracer() else {
            return Self::DISABLED;
        };
        let builder = tracer.span_builder(name()).with_kind(kind);
        let mut span = tracer.build_with_context(builder, parent);
        // After the sampling decision, which needs none of them: an
        // unsampled request or query pays nothing for its attributes.
        if span.is_recording() {
            span.set_attributes(attributes());
        }
        Self::from_context(parent.with_span(span))
    }

    #[cfg(any(feature = "axum", feature = "reqwest", feature = "sqlx"))]
    /// Records `value` under a key made at run time.
    pub(crate) fn set_attribute(&mut self, attribute: KeyValue) {
        if let Some(cx) = self.cx.as_ref().filter(|_| self.recording) {
            cx.span().set_attribute(attribute);
        }
    }

    #[cfg(any(feature = "axum", feature = "reqwest"))]
    /// Status Error and `error.type`, without an exception event: an HTTP
    /// status that means failure is no exception.
    pub(crate) fn set_failed(&mut self, error_type: String, description: String) {
        if let Some(cx) = self.cx.as_ref().filter(|_| self.recording) {
            let span = cx.span();
            span.set_attribute(KeyValue::new("error.type", error_type));
            span.set_status(Status::error(description));
        }
    }
}
