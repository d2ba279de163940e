//! The `tracing` bridge: spans and events of `tracing` recorded as spans and span events of the running pipeline.
//!
//! # How the pieces fit
//!
//! [`TracingLayer`] is the `tracing-opentelemetry` layer with three parts of
//! our own, each read at the moment it is needed rather than when the layer
//! is built, so that a layer built before [`init`](crate::init) works as well
//! as one built after it:
//!
//! - `BridgeTracer` starts each span with the tracer installed at that moment
//!   (the one `#[vaxila::instrument]` uses), or as a no-op span when nothing
//!   is installed. Spans of both kinds therefore share one provider, one
//!   sampler and one exporter, and a span is exported exactly once.
//! - `BridgeFilter` applies the `[tracing] filter` that `init` resolved (or
//!   the testing kit's default); with none, it disables every callsite, so
//!   `tracing` costs what it costs without a subscriber. Changing it rebuilds
//!   `tracing`'s interest cache.
//! - Events are recorded by [`TracingLayer`] itself, on the span that is
//!   current in OpenTelemetry's context: the layer activates each `tracing`
//!   span's context when it is entered, so that span is the innermost of both
//!   kinds, which `tracing`'s own notion of "current" is not when an
//!   instrumented function runs inside a `tracing` span.
//!
//! # Parents
//!
//! A contextual `tracing` span (every `info_span!` or `#[tracing::instrument]`
//! without `parent:`) is a child of the OpenTelemetry context current when it
//! is created, and entering it makes it current for OpenTelemetry: so
//! `#[vaxila::instrument]` spans and `tracing` spans nest both ways. A span
//! the filter leaves out is never seen, so its contextual children hang from
//! its nearest exported ancestor. A span created with an explicit `parent:`
//! that the filter left out starts a new trace (`tracing` gives the child no
//! parent to follow).

use crate::__private::Target;
use std::any::TypeId;
use std::borrow::Cow;
use std::cell::Cell;
use std::fmt;
use std::io::Write as _;
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::SystemTime;

use opentelemetry::trace::noop::{NoopSpan, NoopTracer};
use opentelemetry::trace::{SpanBuilder, SpanContext, Status, TraceContextExt as _};
use opentelemetry::{Context, KeyValue, Value};
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Level, Metadata, Subscriber, span};
use tracing_opentelemetry::OpenTelemetryLayer;
use tracing_subscriber::filter::{EnvFilter, Filtered};
use tracing_subscriber::layer::{Context as LayerContext, Filter, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

use crate::config::TracingSettings;

/// The filter of the running pipeline; `None` until `init` (or the testing kit) sets one.
static FILTER: RwLock<Option<EnvFilter>> = RwLock::new(None);

/// The `tracing` layer that exports `tracing` spans and events through the
/// pipeline of [`init`](crate::init), for a program that builds its own
/// `tracing` subscriber. See [`tracing_layer`].
pub struct TracingLayer<S> {
    inner: Filtered<Bridge<S>, BridgeFilter, S>,
}

impl<S> fmt::Debug for TracingLayer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TracingLayer").finish_non_exhaustive()
    }
}

/// The layer that sends `tracing` spans and events to Vaxila, for a program
/// that sets up its own `tracing` subscriber (a `fmt` layer for its logs,
/// say).
///
/// [`init`](crate::init) installs a subscriber with this layer itself; when
/// the program has set a global subscriber already, `init` cannot, and says
/// so on stderr. Add this layer to that subscriber instead:
///
/// ```no_run
/// use tracing_subscriber::prelude::*;
///
/// # fn main() -> Result<(), vaxila::Error> {
/// tracing_subscriber::registry()
///     // .with(tracing_subscriber::fmt::layer())   // your logs, filtered as you like
///     .with(vaxila::tracing_layer())               // spans to Vaxila, `[tracing] filter`
///     .init();
/// let _guard = vaxila::init()?;                    // finds the layer: installs no subscriber
///
/// vaxila::tracing::info_span!("startup").in_scope(|| { /* ... */ });
/// # Ok(()) }
/// ```
///
/// The layer may be built before or after `init`: it records to whatever
/// pipeline is running when a span starts, applies that pipeline's
/// `[tracing] filter` (overridden by `VAXILA_LOG`, then `RUST_LOG`) to its
/// own spans and events only, and records nothing while no pipeline runs.
/// Keep `[tracing] bridge = true` or set it to `false`: either way, with
/// this layer in your subscriber each span is exported once.
///
/// What it records:
///
/// - each `tracing` span the filter lets through, as a span with the
///   `tracing` fields as attributes (plus `code.*`, `target`, `thread.*`,
///   `busy_ns` and `idle_ns`); the fields `otel.name`, `otel.kind`,
///   `otel.status_code` and `otel.status_description` set the span's name,
///   kind and status.
/// - each event inside a span as a span event named by its message, with
///   `level`, `target`, its fields and `code.*`. An event outside every span
///   is not recorded: Vaxila receives traces, not logs.
/// - an `ERROR` event as an `exception` event (`exception.message` is its
///   message, or its `error` field), and the span is marked failed: status
///   Error, as `#[tracing::instrument(err)]` and `tracing-opentelemetry`
///   mean it. The status description is left empty, so that the failure an
///   instrumented function returns (or [`ActiveSpan::record_error`]
///   records) describes the span; log at `WARN` what the code handled.
///
/// [`ActiveSpan::record_error`]: crate::ActiveSpan::record_error
#[must_use]
pub fn tracing_layer<S>() -> TracingLayer<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    let bridge = Bridge {
        otel: OpenTelemetryLayer::new(BridgeTracer),
        dispatch: OnceLock::new(),
    };
    TracingLayer {
        inner: bridge.with_filter(BridgeFilter),
    }
}

/// Checks `[tracing] filter` syntax; the problem, if any, in words that
/// quote the directive at fault.
pub(crate) fn check_filter(filter: &str) -> Result<(), String> {
    // `EnvFilter` splits directives at commas too, and does not say which failed.
    for directive in filter.split(',').filter(|d| !d.is_empty()) {
        if let Err(problem) = parse_filter(directive) {
            return Err(format!("in `{directive}`, {problem}"));
        }
    }
    parse_filter(filter).map(drop)
}

fn parse_filter(filter: &str) -> Result<EnvFilter, String> {
    EnvFilter::builder()
        .with_default_directive(LevelFilter::ERROR.into())
        .parse(filter)
        .map_err(|e| e.to_string())
}

/// What `init` does for `tracing`: applies the filter, and (unless
/// `bridge = false`) installs a global subscriber with the layer.
pub(crate) fn install(settings: &TracingSettings) {
    // `Config::resolve` has checked the filter.
    if let Ok(filter) = parse_filter(&settings.filter) {
        set_filter(filter);
    }
    if settings.bridge && !install_global_subscriber() {
        // Not `eprintln!`, which panics when stderr is closed.
        let _ = writeln!(
            std::io::stderr(),
            "vaxila: a global `tracing` subscriber is already set, so spans of `tracing`-instrumented \
             code are not exported; add `vaxila::tracing_layer()` to that subscriber, or set \
             `[tracing] bridge = false` to silence this"
        );
    }
}

/// Installs `registry() + tracing_layer()` as the global subscriber, unless
/// one is set. Whether a global subscriber with the layer is now set.
pub(crate) fn install_global_subscriber() -> bool {
    let subscriber = tracing_subscriber::registry().with(tracing_layer());
    tracing::subscriber::set_global_default(subscriber).is_ok()
        // Ours from an earlier `init`, or the program's with `tracing_layer()`.
        || tracing::dispatcher::get_default(|d| d.is::<BridgeFilter>())
}

/// Sets the filter `default` gives unless one is set: for a provider
/// installed without `init`, by hand or by the testing kit.
pub(crate) fn ensure_filter(default: fn() -> String) {
    if read_filter().is_some() {
        return;
    }
    let filter = parse_filter(&default());
    let mut slot = FILTER.write().unwrap_or_else(PoisonError::into_inner);
    if slot.is_none()
        && let Ok(filter) = filter
    {
        *slot = Some(filter);
        drop(slot);
        tracing_core::callsite::rebuild_interest_cache();
    }
}

fn set_filter(filter: EnvFilter) {
    *FILTER.write().unwrap_or_else(PoisonError::into_inner) = Some(filter);
    // Callsites cache what the filters said about them; ask again.
    tracing_core::callsite::rebuild_interest_cache();
}

fn read_filter() -> std::sync::RwLockReadGuard<'static, Option<EnvFilter>> {
    FILTER.read().unwrap_or_else(PoisonError::into_inner)
}

/// A subscriber with the layer, for [`capture`](crate::testing::capture) to
/// set on its thread when there is no subscriber at all, so that `tracing`
/// spans are captured without `init`.
pub(crate) fn fallback_subscriber() -> Option<tracing::subscriber::DefaultGuard> {
    static FALLBACK: OnceLock<(Dispatch, Dispatch)> = OnceLock::new();
    if !tracing::dispatcher::get_default(|d| d.is::<tracing::subscriber::NoSubscriber>()) {
        return None;
    }
    let (dispatch, _) = FALLBACK.get_or_init(|| {
        // While exactly one dispatcher is registered, `tracing-core` asks only
        // the registering thread's default which callsites are wanted. A
        // callsite first reached on a thread without a subscriber would then
        // be cached as unwanted for good, and never captured on a thread
        // with ours. A second registered dispatcher (one that wants nothing)
        // makes it ask every registered dispatcher, ours included.
        let wants_nothing = Dispatch::new(tracing::subscriber::NoSubscriber::new());
        let ours = Dispatch::new(tracing_subscriber::registry().with(tracing_layer()));
        (ours, wants_nothing)
    });
    Some(tracing::dispatcher::set_default(dispatch))
}

impl<S> Layer<S> for TracingLayer<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        self.inner.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber);
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.inner.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: LayerContext<'_, S>) -> bool {
        self.inner.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: LayerContext<'_, S>) {
        self.inner.on_new_span(attrs, id, ctx);
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        self.inner.max_level_hint()
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: LayerContext<'_, S>) {
        self.inner.on_record(id, values, ctx);
    }

    fn on_follows_from(&self, id: &span::Id, follows: &span::Id, ctx: LayerContext<'_, S>) {
        self.inner.on_follows_from(id, follows, ctx);
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) -> bool {
        self.inner.event_enabled(event, ctx)
    }

    fn on_event(&self, event: &Event<'_>, ctx: LayerContext<'_, S>) {
        self.inner.on_event(event, ctx);
    }

    fn on_enter(&self, id: &span::Id, ctx: LayerContext<'_, S>) {
        self.inner.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &span::Id, ctx: LayerContext<'_, S>) {
        self.inner.on_exit(id, ctx);
    }

    fn on_close(&self, id: span::Id, ctx: LayerContext<'_, S>) {
        self.inner.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &span::Id, new: &span::Id, ctx: LayerContext<'_, S>) {
        self.inner.on_id_change(old, new, ctx);
    }

    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            return Some(std::ptr::from_ref(self).cast());
        }
        // SAFETY: the wrapped layer answers for itself and the types inside
        // it, which `tracing-opentelemetry` needs to find its own layer.
        unsafe { self.inner.downcast_raw(id) }
    }
}

/// The `tracing-opentelemetry` layer, with events recorded our way.
struct Bridge<S> {
    otel: OpenTelemetryLayer<S, BridgeTracer>,
    /// The subscriber this layer is part of, to find the span an event with
    /// an explicit parent belongs to.
    dispatch: OnceLock<WeakDispatch>,
}

impl<S> Layer<S> for Bridge<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
        self.otel.on_register_dispatch(subscriber);
    }

    fn on_layer(&mut self, subscriber: &mut S) {
        self.otel.on_layer(subscriber);
    }

    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.otel.register_callsite(metadata)
    }

    fn enabled(&self, metadata: &Metadata<'_>, ctx: LayerContext<'_, S>) -> bool {
        self.otel.enabled(metadata, ctx)
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: LayerContext<'_, S>) {
        self.otel.on_new_span(attrs, id, ctx);
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: LayerContext<'_, S>) {
        self.otel.on_record(id, values, ctx);
    }

    fn on_follows_from(&self, id: &span::Id, follows: &span::Id, ctx: LayerContext<'_, S>) {
        self.otel.on_follows_from(id, follows, ctx);
    }

    fn on_event(&self, event: &Event<'_>, _: LayerContext<'_, S>) {
        struct Recording;
        impl Drop for Recording {
            fn drop(&mut self) {
                RECORDING_EVENT.set(false);
            }
        }
        if RECORDING_EVENT.replace(true) {
            return;
        }
        let _recording = Recording;
        self.record_event(event);
    }

    fn on_enter(&self, id: &span::Id, ctx: LayerContext<'_, S>) {
        self.otel.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &span::Id, ctx: LayerContext<'_, S>) {
        self.otel.on_exit(id, ctx);
    }

    fn on_close(&self, id: span::Id, ctx: LayerContext<'_, S>) {
        self.otel.on_close(id, ctx);
    }

    fn on_id_change(&self, old: &span::Id, new: &span::Id, ctx: LayerContext<'_, S>) {
        self.otel.on_id_change(old, new, ctx);
    }

    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            return Some(std::ptr::from_ref(self).cast());
        }
        // SAFETY: `OpenTelemetryLayer` answers for itself and its
        // `WithContext`, which `tracing_opentelemetry::get_otel_context` uses.
        unsafe { self.otel.downcast_raw(id) }
    }
}

std::thread_local! {
    /// Set while an event is recorded, so that an event emitted meanwhile
    /// (by the SDK, say) is not recorded inside it.
    static RECORDING_EVENT: Cell<bool> = const { Cell::new(false) };
}

impl<S> Bridge<S> {
    /// Adds `event` to its span: the explicit parent, else whatever span is
    /// current in OpenTelemetry's context (a `tracing` span, an instrumented
    /// function's, a `vaxila::span`'s).
    fn record_event(&self, event: &Event<'_>) {
        let cx = if let Some(parent) = event.parent() {
            let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade) else {
                return;
            };
            match tracing_opentelemetry::get_otel_context(parent, &dispatch) {
                Some(cx) => cx,
                // A parent the filter left out.
                None => return,
            }
        } else if event.is_contextual() {
            Context::current()
        } else {
            return;
        };
        let span = cx.span();
        let span_id = span.span_context().span_id();
        // A span of ours keeps its record off the context, on this thread.
        let live = crate::__private::is_live(span_id);
        if !live && !span.is_recording() {
            return;
        }
        let meta = event.metadata();
        let mut fields = EventFields::default();
        event.record(&mut fields);
        let mut attributes = Vec::with_capacity(fields.attributes.len() + 6);
        attributes.push(KeyValue::new("level", meta.level().as_str()));
        attributes.push(KeyValue::new("target", meta.target()));
        let failed = *meta.level() == Level::ERROR;
        let name: Cow<'static, str> = if failed {
            let message = fields
                .message
                .or(fields.error)
                .unwrap_or_else(|| meta.name().to_owned());
            attributes.push(KeyValue::new("exception.message", message));
            Cow::Borrowed("exception")
        } else {
            fields
                .message
                .map_or(Cow::Borrowed(meta.name()), Cow::Owned)
        };
        attributes.extend(fields.attributes);
        if let Some(file) = meta.file() {
            attributes.push(KeyValue::new("code.file.path", file));
        }
        if let Some(line) = meta.line() {
            attributes.push(KeyValue::new("code.line.number", i64::from(line)));
        }
        if let Some(module) = meta.module_path() {
            attributes.push(KeyValue::new("code.module.name", module));
        }
        let emit = |target: &mut Target<'_>| {
            target.add_event(name, attributes);
            if failed {
                target.set_status(Status::error(""));
            }
        };
        if live {
            crate::__private::with_live(span_id, |record| emit(&mut Target::Record(record)));
        } else {
            emit(&mut Target::Sdk(span));
        }
    }
}

/// The fields of an event: `message` names it, `error` may describe a
/// failure, the others become attributes with their types kept.
#[derive(Default)]
struct EventFields {
    message: Option<String>,
    error: Option<String>,
    attributes: Vec<KeyValue>,
}

impl EventFields {
    fn push(&mut self, field: &Field, value: Value) {
        // `log.*` fields carry the metadata of a `log` record, recorded already.
        if !field.name().starts_with("log.") {
            self.attributes.push(KeyValue::new(field.name(), value));
        }
    }

    fn text(&mut self, field: &Field, text: String) {
        match field.name() {
            "message" => self.message = Some(text),
            "error" => {
                self.error = Some(text.clone());
                self.push(field, Value::from(text));
            }
            _ => self.push(field, Value::from(text)),
        }
    }
}

impl Visit for EventFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::F64(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(value) => self.push(field, Value::I64(value)),
            Err(_) => self.push(field, Value::from(value.to_string())),
        }
    }

    fn record_i128(&mut self, field: &Field, value: i128) {
        match i64::try_from(value) {
            Ok(value) => self.push(field, Value::I64(value)),
            Err(_) => self.push(field, Value::from(value.to_string())),
        }
    }

    fn record_u128(&mut self, field: &Field, value: u128) {
        match i64::try_from(value) {
            Ok(value) => self.push(field, Value::I64(value)),
            Err(_) => self.push(field, Value::from(value.to_string())),
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.text(field, value.to_owned());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let text = value.to_string();
        if self.error.is_none() {
            self.error = Some(text.clone());
        }
        self.push(field, Value::from(text));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.text(field, format!("{value:?}"));
    }
}

/// The per-layer filter: the `[tracing] filter` of the running pipeline.
struct BridgeFilter;

impl<S> Filter<S> for BridgeFilter {
    fn enabled(&self, meta: &Metadata<'_>, cx: &LayerContext<'_, S>) -> bool {
        // The export path (the batch thread, the HTTP client) must not trace itself.
        if Context::is_current_telemetry_suppressed() {
            return false;
        }
        read_filter()
            .as_ref()
            .is_some_and(|filter| Filter::<S>::enabled(filter, meta, cx))
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        match read_filter().as_ref() {
            None => Interest::never(),
            Some(filter) if Filter::<S>::callsite_enabled(filter, meta).is_never() => {
                Interest::never()
            }
            // Never `always`: `enabled` must run each time, to see suppression.
            Some(_) => Interest::sometimes(),
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        match read_filter().as_ref() {
            None => Some(LevelFilter::OFF),
            Some(filter) => Filter::<S>::max_level_hint(filter),
        }
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: LayerContext<'_, S>) {
        if let Some(filter) = read_filter().as_ref() {
            Filter::<S>::on_new_span(filter, attrs, id, ctx);
        }
    }

    fn on_record(&self, id: &span::Id, values: &span::Record<'_>, ctx: LayerContext<'_, S>) {
        if let Some(filter) = read_filter().as_ref() {
            Filter::<S>::on_record(filter, id, values, ctx);
        }
    }

    fn on_enter(&self, id: &span::Id, ctx: LayerContext<'_, S>) {
        if let Some(filter) = read_filter().as_ref() {
            Filter::<S>::on_enter(filter, id, ctx);
        }
    }

    fn on_exit(&self, id: &span::Id, ctx: LayerContext<'_, S>) {
        if let Some(filter) = read_filter().as_ref() {
            Filter::<S>::on_exit(filter, id, ctx);
        }
    }

    fn on_close(&self, id: span::Id, ctx: LayerContext<'_, S>) {
        if let Some(filter) = read_filter().as_ref() {
            Filter::<S>::on_close(filter, id, ctx);
        }
    }
}

/// Starts each span with the tracer installed at that moment: the layer
/// may be built before `init`, and outlive a pipeline.
#[derive(Clone, Copy, Debug)]
struct BridgeTracer;

impl opentelemetry::trace::Tracer for BridgeTracer {
    type Span = BridgeSpan;

    fn build_with_context(&self, builder: SpanBuilder, parent_cx: &Context) -> BridgeSpan {
        match crate::global::tracer() {
            Some(tracer) => BridgeSpan::Sdk(tracer.build_with_context(builder, parent_cx)),
            // Keeps the parent's span context, so nothing below loses its trace.
            None => BridgeSpan::Noop(NoopTracer::new().build_with_context(builder, parent_cx)),
        }
    }
}

/// A span of the installed provider, or a no-op one when there was none.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "the small variant only exists before `init`; boxing the other would allocate per span"
)]
enum BridgeSpan {
    Sdk(opentelemetry_sdk::trace::Span),
    Noop(NoopSpan),
}

impl opentelemetry::trace::Span for BridgeSpan {
    fn add_event_with_timestamp<T>(
        &mut self,
        name: T,
        timestamp: SystemTime,
        attributes: Vec<KeyValue>,
    ) where
        T: Into<Cow<'static, str>>,
    {
        match self {
            Self::Sdk(span) => span.add_event_with_timestamp(name, timestamp, attributes),
            Self::Noop(span) => span.add_event_with_timestamp(name, timestamp, attributes),
        }
    }

    fn span_context(&self) -> &SpanContext {
        match self {
            Self::Sdk(span) => span.span_context(),
            Self::Noop(span) => span.span_context(),
        }
    }

    fn is_recording(&self) -> bool {
        match self {
            Self::Sdk(span) => span.is_recording(),
            Self::Noop(span) => span.is_recording(),
        }
    }

    fn set_attribute(&mut self, attribute: KeyValue) {
        match self {
            Self::Sdk(span) => span.set_attribute(attribute),
            Self::Noop(span) => span.set_attribute(attribute),
        }
    }

    fn set_status(&mut self, status: Status) {
        match self {
            Self::Sdk(span) => span.set_status(status),
            Self::Noop(span) => span.set_status(status),
        }
    }

    fn update_name<T>(&mut self, new_name: T)
    where
        T: Into<Cow<'static, str>>,
    {
        match self {
            Self::Sdk(span) => span.update_name(new_name),
            Self::Noop(span) => span.update_name(new_name),
        }
    }

    fn add_link(&mut self, span_context: SpanContext, attributes: Vec<KeyValue>) {
        match self {
            Self::Sdk(span) => span.add_link(span_context, attributes),
            Self::Noop(span) => span.add_link(span_context, attributes),
        }
    }

    fn end_with_timestamp(&mut self, timestamp: SystemTime) {
        match self {
            Self::Sdk(span) => span.end_with_timestamp(timestamp),
            Self::Noop(span) => span.end_with_timestamp(timestamp),
        }
    }
}
