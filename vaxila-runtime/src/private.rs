//! What code expanded from `#[vaxila::instrument]` calls. Not a stable API.
//!
//! Expansions name only items of this module, so the way a span is started,
//! made current and ended can change here without touching any expansion.
//!
//! With a pipeline of [`init`](crate::init), a span is a `Record` of this
//! crate's in a box its thread reuses (see `record.rs`), sampled by the
//! pipeline's sampler before anything is allocated. Its one allocation is
//! the OpenTelemetry `Context` that carries its ids while it is current, so
//! that spans of `tracing` and of the OpenTelemetry API started inside it
//! are its children. That context holds the ids only: what is recorded on
//! the span goes to the record, through the span itself, `current_span()`
//! (found through this thread's chain of entered spans) or a `tracing`
//! event; the OpenTelemetry API's `Context::span()` sees a span that
//! records nothing. With a provider brought by the user
//! ([`set_tracer_provider`](crate::set_tracer_provider)), whose processors
//! only the SDK's span can reach, it is an SDK span.

use std::any::Any;
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt::{Debug, Display};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanRef, Status, TraceContextExt as _, TraceFlags, TraceId,
    TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue, Value};

pub use crate::attribute::AttributeValue;
pub use opentelemetry::trace::SpanKind;

use crate::global::{Fast, Installed};
use crate::record::{Code, Live, Name, Record, State};

/// What a span site knows at compile time, built once as a `static`.
#[derive(Debug)]
pub struct Meta {
    name: &'static str,
    kind: SpanKind,
    pub(crate) function: &'static str,
    pub(crate) file: &'static str,
    pub(crate) line: u32,
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
/// Before `init` it holds nothing and every method returns at once. It is
/// one pointer, `None` when off, so that it travels in a register: before
/// `init` the compiler then sees every check of it fold away.
#[derive(Debug)]
pub struct Span {
    /// The span's box (see `record::State` for what it may hold).
    live: Option<Box<Live>>,
}

std::thread_local! {
    /// The innermost entered span of ours on this thread.
    static ENTERED: Cell<*const Live> = const { Cell::new(std::ptr::null()) };
}

/// Makes a span findable by [`with_live`] until dropped.
struct Entered<'a> {
    live: &'a Live,
}

#[inline]
fn enter(live: &Live) -> Entered<'_> {
    let prev = ENTERED
        .try_with(|entered| entered.replace(std::ptr::from_ref(live)))
        .unwrap_or(std::ptr::null());
    live.prev.set(prev);
    Entered { live }
}

impl Drop for Entered<'_> {
    #[inline]
    fn drop(&mut self) {
        let me = std::ptr::from_ref(self.live);
        let _ = ENTERED.try_with(|entered| {
            if entered.get() == me {
                entered.set(self.live.prev.get());
                return;
            }
            // Not the innermost: spans left out of order, as stackful
            // coroutines can leave them. Unlinked where it is, so that no
            // pointer to it outlives it.
            let mut next = entered.get();
            // SAFETY: as in `with_live`: every span in the chain is entered
            // and alive (this one too, borrowed by `self`).
            while let Some(node) = unsafe { next.as_ref() } {
                if node.prev.get() == me {
                    node.prev.set(self.live.prev.get());
                    return;
                }
                next = node.prev.get();
            }
        });
    }
}

/// Runs `f` on the record of the span of ours with id `span_id`, if it is
/// entered on this thread (its body is running, here): how
/// `current_span()` and `tracing` events write to it.
pub(crate) fn with_live<R>(span_id: SpanId, f: impl FnOnce(&mut Record) -> R) -> Option<R> {
    ENTERED
        .try_with(|entered| {
            let mut next = entered.get();
            // SAFETY: every pointer in the chain is of a `Live` whose
            // `poll_in` is running on this thread, below us on the stack: it
            // holds the span borrowed (so it neither moves nor drops) and
            // unlinks it before it returns, unwinding included (`Entered`).
            while let Some(live) = unsafe { next.as_ref() } {
                if live.span_id == span_id {
                    return live.record.try_borrow_mut().ok().map(|mut r| f(&mut r));
                }
                next = live.prev.get();
            }
            None
        })
        .ok()
        .flatten()
}

/// Whether the span with id `span_id` is one of ours entered on this thread.
pub(crate) fn is_live(span_id: SpanId) -> bool {
    with_live(span_id, |_| ()).is_some()
}

/// Where a span gets its parent.
#[derive(Clone, Copy)]
pub(crate) enum Parent<'a> {
    Current,
    Explicit(&'a Context),
    Root,
}

/// What a span is, beyond its parent.
pub(crate) struct Site<N, A> {
    /// Made only once the span is known to be recorded.
    pub(crate) name: N,
    pub(crate) kind: SpanKind,
    pub(crate) code: Code,
    /// Made only once the span is known to be sampled.
    pub(crate) attributes: A,
}

impl Span {
    const OFF: Self = Self { live: None };

    /// Starts a span whose parent is the current context.
    #[inline]
    #[must_use]
    pub fn start(meta: &'static Meta) -> Self {
        if !crate::global::enabled() {
            return Self::OFF;
        }
        Self::start_meta(meta, Parent::Current)
    }

    /// Starts a span under an explicit parent context.
    #[inline]
    #[must_use]
    pub fn start_with_parent(meta: &'static Meta, parent: &Context) -> Self {
        if !crate::global::enabled() {
            return Self::OFF;
        }
        Self::start_meta(meta, Parent::Explicit(parent))
    }

    /// Starts the root span of a new trace, whatever the current context.
    #[inline]
    #[must_use]
    pub fn start_root(meta: &'static Meta) -> Self {
        if !crate::global::enabled() {
            return Self::OFF;
        }
        Self::start_meta(meta, Parent::Root)
    }

    /// One call from the instrumented function; everything it calls is
    /// inlined into it.
    #[inline(never)]
    #[cold]
    fn start_meta(meta: &'static Meta, parent: Parent<'_>) -> Self {
        Self::begin(
            Site {
                name: || Name::Static(meta.name),
                kind: meta.kind.clone(),
                code: Code::Function(meta),
                attributes: Vec::new,
            },
            parent,
        )
    }

    /// Starts a span of any kind: the macro's, the span builder's and the
    /// integrations'. Off before `init`.
    #[inline(always)]
    pub(crate) fn begin<N, A, I>(site: Site<N, A>, parent: Parent<'_>) -> Self
    where
        N: FnOnce() -> Name,
        A: FnOnce() -> I,
        I: IntoIterator<Item = KeyValue>,
    {
        // Written in place, not returned through the closures: a span that
        // stays off is then never stored at all.
        let mut span = Self::OFF;
        if let Parent::Current = parent {
            let propagates = matches!(site.kind, SpanKind::Client | SpanKind::Producer);
            if Context::map_current(|cx| crate::global::decided_off(cx, propagates)) {
                return span;
            }
        }
        crate::global::with_installed(|installed| match parent {
            Parent::Current => {
                Context::map_current(|cx| span.begin_in(installed, site, cx, true));
            }
            Parent::Explicit(cx) => span.begin_in(installed, site, cx, false),
            Parent::Root => span.begin_in(installed, site, &Context::new(), false),
        });
        span
    }

    #[inline(always)]
    fn begin_in<N, A, I>(
        &mut self,
        installed: &Installed,
        site: Site<N, A>,
        parent: &Context,
        current: bool,
    ) where
        N: FnOnce() -> Name,
        A: FnOnce() -> I,
        I: IntoIterator<Item = KeyValue>,
    {
        match &installed.fast {
            Some(fast) => self.begin_fast(fast, site, parent, current),
            None => self.live = Some(Self::begin_sdk(&installed.tracer, site, parent)),
        }
    }

    /// As the SDK's `build_with_context`, decision for decision (its
    /// samplers never return `RecordOnly`, nor attributes), minus the SDK's
    /// span.
    #[inline(always)]
    fn begin_fast<N, A, I>(
        &mut self,
        fast: &Fast,
        site: Site<N, A>,
        parent: &Context,
        current: bool,
    ) where
        N: FnOnce() -> Name,
        A: FnOnce() -> I,
        I: IntoIterator<Item = KeyValue>,
    {
        if parent.is_telemetry_suppressed() {
            return self.lend(parent, current);
        }
        let parent_active = parent.has_active_span();
        let sampling = fast.sampling;
        // A client or producer span's context goes out with its request
        // (`traceparent`), to tell the next service not to sample either.
        let propagates = matches!(site.kind, SpanKind::Client | SpanKind::Producer);
        if !parent_active && sampling.drops_roots() && !propagates {
            // Its children are roots too, dropped as well: no context needed.
            return self.lend(parent, current);
        }
        let parent_span = parent.span();
        let parent_sc = parent_span.span_context();
        let inherits = parent_sc.is_valid();
        // A root's ids are drawn together; a child's span id once sampled.
        let (trace_id, root_span_id) = if inherits {
            (parent_sc.trace_id(), None)
        } else {
            let (trace_id, span_id) = crate::record::new_root_ids();
            (trace_id, Some(span_id))
        };
        // What every sampler of the SDK's gives a span.
        let trace_state = parent_sc.trace_state().clone();
        if !sampling.samples(parent_active, parent_sc, trace_id) {
            // Under a parent, the children of this span would be decided
            // as it was (same trace id, a parent that is not sampled), so
            // the parent's context serves them; a root's children need one
            // that says "not sampled".
            if inherits {
                return self.lend(parent, current);
            }
            let span_context = SpanContext::new(
                trace_id,
                root_span_id.unwrap_or_else(crate::record::new_span_id),
                TraceFlags::default(),
                false,
                trace_state,
            );
            self.live = Some(Live::holding(
                parent.with_remote_span_context(span_context),
                State::Context { recording: false },
            ));
            return;
        }
        // An active parent that is not valid is no parent (as in the SDK).
        let parent_sc = if inherits {
            parent_sc
        } else {
            &SpanContext::NONE
        };
        let span_id = root_span_id.unwrap_or_else(crate::record::new_span_id);
        self.live = Some(Self::begin_sampled(
            fast,
            site,
            parent,
            parent_sc,
            trace_id,
            span_id,
            trace_state,
        ));
    }

    /// Leaves the span unrecorded, its body in `parent`'s context: nothing
    /// to do when that is the current one.
    #[inline(always)]
    fn lend(&mut self, parent: &Context, current: bool) {
        if !current {
            self.live = Some(Live::holding(parent.clone(), State::Borrowed));
        }
    }

    /// The sampled span of [`begin_fast`](Self::begin_fast).
    #[inline(never)]
    fn begin_sampled<N, A, I>(
        fast: &Fast,
        site: Site<N, A>,
        parent: &Context,
        parent_sc: &SpanContext,
        trace_id: TraceId,
        span_id: SpanId,
        trace_state: TraceState,
    ) -> Box<Live>
    where
        N: FnOnce() -> Name,
        A: FnOnce() -> I,
        I: IntoIterator<Item = KeyValue>,
    {
        let span_context = SpanContext::new(
            trace_id,
            span_id,
            parent_sc.trace_flags().with_sampled(true),
            false,
            trace_state,
        );
        // "Remote" is only the name of the constructor: the flag is the
        // span context's, which says local.
        let cx = parent.with_remote_span_context(span_context.clone());
        let mut live = Live::start(
            fast.id,
            cx,
            span_context,
            parent_sc,
            (site.name)(),
            site.kind,
            site.code,
            fast.limits,
        );
        let record = live.record.get_mut();
        for attribute in (site.attributes)() {
            record.set_attribute(attribute);
        }
        live
    }

    /// An SDK span, for a provider of the user's.
    fn begin_sdk<N, A, I>(
        tracer: &opentelemetry_sdk::trace::SdkTracer,
        site: Site<N, A>,
        parent: &Context,
    ) -> Box<Live>
    where
        N: FnOnce() -> Name,
        A: FnOnce() -> I,
        I: IntoIterator<Item = KeyValue>,
    {
        let builder = tracer
            .span_builder((site.name)().into_cow())
            .with_kind(site.kind);
        let mut span = tracer.build_with_context(builder, parent);
        let recording = span.is_recording();
        // After the sampling decision: an unsampled span allocates nothing for them.
        if recording {
            let mut attributes = Vec::new();
            attributes.extend(site.code.attributes());
            attributes.extend((site.attributes)());
            span.set_attributes(attributes);
        }
        Live::holding(parent.with_span(span), State::Context { recording })
    }

    /// Whether attributes given to this span are kept. Attribute expressions
    /// are evaluated only when it is.
    #[inline]
    #[must_use]
    pub fn is_recording(&self) -> bool {
        match self.live.as_deref().map(|live| live.state) {
            None | Some(State::Borrowed) => false,
            Some(State::Context { recording }) => recording,
            Some(State::Recording) => true,
        }
    }

    // Whatever is not inlined takes the span's box, never `&mut self`: the
    // span itself then never leaves a register, and before `init` every
    // check of it folds away.
    #[inline]
    fn set(&mut self, key: &'static str, value: Value) {
        if let Some(live) = self.live.as_deref_mut() {
            set(live, key, value);
        }
    }

    /// Records `value` under `key` with its typed value.
    #[inline]
    pub fn attr<V: AttributeValue + ?Sized>(&mut self, key: &'static str, value: &V) {
        if self.is_recording()
            && let Some(value) = value.to_value()
        {
            self.set(key, value);
        }
    }

    /// Records the `Display` text of `value` under `key`.
    #[inline]
    pub fn attr_display<V: Display + ?Sized>(&mut self, key: &'static str, value: &V) {
        if self.is_recording() {
            self.set(key, Value::String(value.to_string().into()));
        }
    }

    /// Records the `Debug` text of `value` under `key`.
    #[inline]
    pub fn attr_debug<V: Debug + ?Sized>(&mut self, key: &'static str, value: &V) {
        if self.is_recording() {
            self.set(key, Value::String(format!("{value:?}").into()));
        }
    }

    /// Runs `f` with this span as the current context, recording a panic
    /// that escapes it before letting the panic go on.
    ///
    /// The body runs once, so a span of ours lends it its context instead
    /// of copying it (the span needs it no more: its ids are in its record).
    #[inline]
    pub fn in_scope<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let Some(live) = self.live.as_deref_mut() else {
            return f();
        };
        let cx = match live.state {
            // An SDK span's context is how it is ended.
            State::Context { .. } => live.cx.clone(),
            State::Recording | State::Borrowed => std::mem::take(&mut live.cx),
        };
        run_in(live, cx, &mut false, f)
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
    #[inline]
    pub fn record_error(&mut self, type_name: &'static str, message: &dyn Display) {
        if let Some(live) = self.live.as_deref_mut() {
            record_error(live, type_name, message);
        }
    }

    pub(crate) fn record_cancelled(&mut self) {
        self.set("vaxila.cancelled", Value::Bool(true));
    }
}

/// What is recorded on the span in `live` goes to its record or its SDK span.
fn target(live: &mut Live) -> Option<Target<'_>> {
    match live.state {
        State::Recording => Some(Target::Record(live.record.get_mut())),
        State::Context { recording: true } => Some(Target::Sdk(live.cx.span())),
        _ => None,
    }
}

fn set(live: &mut Live, key: &'static str, value: Value) {
    if let Some(mut target) = target(live) {
        target.set_attribute(KeyValue::new(key, value));
    }
}

fn record_error(live: &mut Live, type_name: &'static str, message: &dyn Display) {
    if let Some(mut target) = target(live) {
        record_exception(&mut target, type_name, message.to_string());
    }
}

fn record_panic(live: &mut Live, payload: &(dyn Any + Send)) {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("Box<dyn Any>");
    if let Some(mut target) = target(live) {
        record_exception(&mut target, "panic", message.to_owned());
    }
}

/// Where what is said of a span goes: a record of ours, or an SDK span.
pub(crate) enum Target<'a> {
    Record(&'a mut Record),
    Sdk(SpanRef<'a>),
}

impl Target<'_> {
    pub(crate) fn set_attribute(&mut self, attribute: KeyValue) {
        match self {
            Self::Record(record) => record.set_attribute(attribute),
            Self::Sdk(span) => span.set_attribute(attribute),
        }
    }

    pub(crate) fn add_event(&mut self, name: Cow<'static, str>, attributes: Vec<KeyValue>) {
        match self {
            Self::Record(record) => record.add_event(name, attributes),
            Self::Sdk(span) => span.add_event(name, attributes),
        }
    }

    pub(crate) fn set_status(&mut self, status: Status) {
        match self {
            Self::Record(record) => record.set_status(status),
            Self::Sdk(span) => span.set_status(status),
        }
    }
}

/// Status Error with `message`, `error.type`, and an `exception` event: how
/// every failure is recorded, by the macro, the span builder, `current_span()`
/// and for panics (whose type is `panic`).
pub(crate) fn record_exception(target: &mut Target<'_>, type_name: &'static str, message: String) {
    target.set_attribute(KeyValue::new("error.type", type_name));
    target.add_event(
        Cow::Borrowed("exception"),
        vec![
            KeyValue::new("exception.type", type_name),
            KeyValue::new("exception.message", message.clone()),
        ],
    );
    target.set_status(Status::error(message));
}

impl Drop for Span {
    #[inline]
    fn drop(&mut self) {
        // Before `init`, a test of a pointer the compiler knows is null.
        if let Some(live) = self.live.take() {
            Self::end(live);
        }
    }
}

impl Span {
    #[inline(never)]
    fn end(mut live: Box<Live>) {
        match live.state {
            State::Recording => end(live),
            State::Context { .. } => {
                std::mem::take(&mut live.cx).span().end();
                crate::record::recycle_here(live);
            }
            State::Borrowed => {
                live.cx = Context::new();
                crate::record::recycle_here(live);
            }
        }
    }
}

/// Hands an ended span to the pipeline it started in.
fn end(mut live: Box<Live>) {
    live.record.get_mut().end = crate::clock::Stamp::now();
    // Its children hold their own copies of the context.
    live.cx = Context::new();
    crate::global::end_span(live.pipeline, live);
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
        let Some(live) = self.live.as_deref_mut() else {
            return poll();
        };
        let cx = live.cx.clone();
        run_in(live, cx, done, poll)
    }
}

/// [`Span::poll_in`] with `cx`, the context of the span in `live`.
#[inline]
fn run_in<T>(live: &mut Live, cx: Context, done: &mut bool, poll: impl FnOnce() -> T) -> T {
    let attached = cx.attach();
    let entered = (live.state == State::Recording).then(|| enter(live));
    let result = catch_unwind(AssertUnwindSafe(poll));
    drop(entered);
    drop(attached);
    match result {
        Ok(value) => value,
        Err(payload) => {
            *done = true;
            record_panic(live, &*payload);
            resume_unwind(payload)
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

/// What the span builder (`vaxila::span`) and the integrations need beyond
/// the expansion's surface.
impl Span {
    pub(crate) const fn disabled() -> Self {
        Self::OFF
    }

    /// The context the span's body runs in, `None` when it is off.
    pub(crate) fn context(&self) -> Option<&Context> {
        self.live.as_deref().map(|live| &live.cx)
    }

    /// Whether it is a span of ours, recorded by this crate.
    pub(crate) fn is_live(&self) -> bool {
        self.live
            .as_deref()
            .is_some_and(|live| live.state == State::Recording)
    }

    #[cfg(any(feature = "axum", feature = "reqwest", feature = "sqlx"))]
    /// A span with a name and attributes known only at run time (the
    /// integrations' HTTP and database spans), under `parent`; disabled
    /// before `init`. The attributes are made only for a sampled span.
    pub(crate) fn start_named<I: IntoIterator<Item = KeyValue>>(
        name: impl FnOnce() -> Name,
        kind: SpanKind,
        attributes: impl FnOnce() -> I,
        parent: &Context,
    ) -> Self {
        if !crate::global::enabled() {
            return Self::OFF;
        }
        Self::begin(
            Site {
                name,
                kind,
                code: Code::None,
                attributes,
            },
            Parent::Explicit(parent),
        )
    }

    #[cfg(any(feature = "axum", feature = "reqwest", feature = "sqlx"))]
    /// Records `value` under a key made at run time.
    pub(crate) fn set_attribute(&mut self, attribute: KeyValue) {
        if let Some(mut target) = self.live.as_deref_mut().and_then(target) {
            target.set_attribute(attribute);
        }
    }

    #[cfg(any(feature = "axum", feature = "reqwest"))]
    /// Status Error and `error.type`, without an exception event: an HTTP
    /// status that means failure is no exception.
    pub(crate) fn set_failed(&mut self, error_type: String, description: String) {
        if let Some(mut target) = self.live.as_deref_mut().and_then(target) {
            target.set_attribute(KeyValue::new("error.type", error_type));
            target.set_status(Status::error(description));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::global::Sampling;
    use crate::record::Limits;
    use opentelemetry_sdk::trace::SpanLimits;

    static META: Meta = Meta::new("f", SpanKind::Internal, "m::f", "src/m.rs", 1);

    /// Every current context a span can start in: every parent, and the
    /// export path's.
    fn contexts() -> Vec<Context> {
        let mut contexts = crate::global::tests::parents();
        contexts.push(Context::new().with_telemetry_suppressed());
        contexts
    }

    /// `decided_off` skips `begin_fast`: only where `begin_fast` would
    /// have left the span off (no record, no context of its own) whatever
    /// its trace id.
    #[test]
    fn what_is_decided_off_early_begin_fast_leaves_off() {
        let mut decided = 0;
        for ratio in [0.0, 0.5, 1.0] {
            for parent_based in [false, true] {
                let sampling = Sampling::new(ratio, parent_based);
                let fast = Fast::new(
                    sampling,
                    Limits::from(&SpanLimits::default()),
                    std::sync::Arc::new(crate::testing::NoExport),
                );
                for cx in contexts() {
                    for kind in [SpanKind::Internal, SpanKind::Client, SpanKind::Producer] {
                        let propagates = matches!(kind, SpanKind::Client | SpanKind::Producer);
                        if !sampling.decides_off(&cx, propagates) {
                            continue;
                        }
                        decided += 1;
                        // Many trace ids: a root's is drawn at random.
                        for _ in 0..200 {
                            let mut span = Span::OFF;
                            let site = Site {
                                name: || Name::Static("f"),
                                kind: kind.clone(),
                                code: Code::Function(&META),
                                attributes: Vec::new,
                            };
                            span.begin_fast(&fast, site, &cx, true);
                            assert!(
                                span.live.is_none(),
                                "ratio {ratio}, parent_based {parent_based}, {kind:?}, {cx:?}: {span:?}"
                            );
                        }
                    }
                }
            }
        }
        // Roots at ratio 0, children of unsampled spans, the export path.
        assert!(decided >= 40, "{decided}");
    }

    /// What the integrations pay for a span that is not recorded: neither
    /// its name (a formatted route, a parsed statement) nor its attributes.
    #[test]
    fn a_span_not_recorded_makes_neither_its_name_nor_its_attributes() {
        for (ratio, recorded) in [(0.0, false), (1.0, true)] {
            let fast = Fast::new(
                Sampling::new(ratio, true),
                Limits::from(&SpanLimits::default()),
                std::sync::Arc::new(crate::testing::NoExport),
            );
            let (named, attributed) = (Cell::new(0), Cell::new(0));
            let mut span = Span::OFF;
            let site = Site {
                name: || {
                    named.set(named.get() + 1);
                    Name::Static("GET /users/{id}")
                },
                kind: SpanKind::Server,
                code: Code::None,
                attributes: || {
                    attributed.set(attributed.get() + 1);
                    [KeyValue::new("http.route", "/users/{id}")]
                },
            };
            span.begin_fast(&fast, site, &Context::new(), false);
            let made = usize::from(recorded);
            assert_eq!(
                (named.get(), attributed.get()),
                (made, made),
                "ratio {ratio}"
            );
            assert_eq!(span.is_recording(), recorded);
        }
    }
}
