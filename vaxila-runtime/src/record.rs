//! The spans this crate starts itself (`#[instrument]`, `vaxila::span`, the integrations), recorded without the SDK's span.
//!
//! The SDK's span allocates a `SpanData`, boxes it behind a mutex, locks
//! it for every attribute, and on `end` moves it through its processors.
//! A [`Record`] is one plain value: attributes inline, the function's
//! `code.*` attributes a pointer to its static metadata, two tick readings
//! for time. It lives in a box ([`Live`]) that its thread reuses, so a span
//! moves as a pointer and allocates nothing once the thread is warm. Ending
//! it moves the record into the pipeline's queue: by value when it is of
//! the common kind ([`Ended`]), so that the box stays with its thread, else
//! in its box. It is encoded as the `SpanData` the SDK would have made, only
//! on the export thread (or, for the console and the testing kit, made one
//! at once).

use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::panic::Location;
use std::sync::{Arc, OnceLock};

use crossbeam_queue::ArrayQueue;
use opentelemetry::Context;
use rand::rngs::StdRng;
use rand::{RngCore as _, SeedableRng as _};

use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLimits, SpanLinks};
use smallvec::SmallVec;

use crate::__private::Meta;
use crate::clock::{Anchor, Stamp};

/// Where a span was started: its `code.*` attributes, made only on export.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Code {
    None,
    /// An instrumented function: `code.function.name`, `code.file.path`, `code.line.number`.
    Function(&'static Meta),
    /// A `vaxila::span` call: `code.file.path`, `code.line.number`.
    Caller(&'static Location<'static>),
}

impl Code {
    fn len(self) -> usize {
        match self {
            Self::None => 0,
            Self::Function(_) => 3,
            Self::Caller(_) => 2,
        }
    }

    /// The attributes, in the order they are exported; allocation-free,
    /// the values being static.
    pub(crate) fn attributes(self) -> impl Iterator<Item = KeyValue> {
        let (function, file, line) = match self {
            Self::None => (None, None, None),
            Self::Function(meta) => (Some(meta.function), Some(meta.file), Some(meta.line)),
            Self::Caller(location) => (None, Some(location.file()), Some(location.line())),
        };
        let function = function.map(|f| KeyValue::new("code.function.name", f));
        let file = file.map(|f| KeyValue::new("code.file.path", f));
        let line = line.map(|l| KeyValue::new("code.line.number", i64::from(l)));
        function.into_iter().chain(file).chain(line)
    }
}

/// The count limits of a pipeline, as the SDK applies them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    attributes: u32,
    events: u32,
    event_attributes: u32,
}

impl From<&SpanLimits> for Limits {
    fn from(limits: &SpanLimits) -> Self {
        Self {
            attributes: limits.max_attributes_per_span,
            events: limits.max_events_per_span,
            event_attributes: limits.max_attributes_per_event,
        }
    }
}

/// Attributes a span holds without allocating: the arguments of a typical
/// instrumented function.
const INLINE_ATTRIBUTES: usize = 4;

/// A span's name: static (an instrumented function's), shared by the spans
/// of one route or statement, or its own.
#[derive(Clone, Debug)]
pub(crate) enum Name {
    Static(&'static str),
    #[cfg_attr(
        not(any(feature = "axum", feature = "sqlx", test)),
        allow(dead_code, reason = "made by the integrations")
    )]
    Shared(Arc<str>),
    Owned(String),
}

impl Name {
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Static(name) => name,
            Self::Shared(name) => name,
            Self::Owned(name) => name,
        }
    }

    /// As a `SpanData`'s name: a shared one is copied.
    pub(crate) fn into_cow(self) -> Cow<'static, str> {
        match self {
            Self::Static(name) => Cow::Borrowed(name),
            Self::Shared(name) => Cow::Owned(name.as_ref().to_owned()),
            Self::Owned(name) => Cow::Owned(name),
        }
    }
}

impl From<Cow<'static, str>> for Name {
    fn from(name: Cow<'static, str>) -> Self {
        match name {
            Cow::Borrowed(name) => Self::Static(name),
            Cow::Owned(name) => Self::Owned(name),
        }
    }
}

/// A sampled span of ours, from its start until it is exported.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) span_context: SpanContext,
    pub(crate) parent_span_id: SpanId,
    pub(crate) parent_is_remote: bool,
    pub(crate) name: Name,
    pub(crate) kind: SpanKind,
    pub(crate) code: Code,
    pub(crate) start: Stamp,
    pub(crate) end: Stamp,
    attributes: SmallVec<[KeyValue; INLINE_ATTRIBUTES]>,
    dropped_attributes: u32,
    events: Vec<Event>,
    dropped_events: u32,
    status: Status,
    limits: Limits,
}

/// A record as the OTLP encoder reads it: a [`Record`]'s, or an
/// [`Ended`]'s.
pub(crate) struct View<'a> {
    pub(crate) parent_span_id: SpanId,
    pub(crate) parent_is_remote: bool,
    pub(crate) name: &'a str,
    pub(crate) kind: &'a SpanKind,
    code: Code,
    /// How many `code.*` attributes the limit keeps.
    code_kept: usize,
    pub(crate) dropped_attributes: u32,
    /// Unix nanoseconds, as OTLP has them.
    pub(crate) start_time: u64,
    pub(crate) end_time: u64,
    attributes: &'a [KeyValue],
    events: &'a [Event],
    dropped_events: u32,
    status: &'a Status,
}

impl View<'_> {
    /// The address of the span's static site (its `Meta` or `Location`),
    /// which says what its `code.*` attributes are; `None` without them.
    pub(crate) fn site(&self) -> Option<usize> {
        match self.code {
            Code::None => None,
            Code::Function(meta) => Some(std::ptr::from_ref(meta) as usize),
            Code::Caller(location) => Some(std::ptr::from_ref(location) as usize),
        }
    }

    /// How many `code.*` attributes the limit keeps: at most 3.
    pub(crate) fn code_kept(&self) -> usize {
        self.code_kept
    }

    /// The `code.*` attributes the limit keeps, exported first.
    pub(crate) fn code(&self) -> impl Iterator<Item = KeyValue> {
        self.code.attributes().take(self.code_kept)
    }

    pub(crate) fn attributes(&self) -> &[KeyValue] {
        self.attributes
    }

    pub(crate) fn events(&self) -> &[Event] {
        self.events
    }

    pub(crate) fn dropped_events(&self) -> u32 {
        self.dropped_events
    }

    pub(crate) fn status(&self) -> &Status {
        self.status
    }
}

/// How many of the `code.*` attributes of `code` an attribute limit keeps,
/// and how many attributes are dropped in all (`dropped` and those): as the
/// SDK's span counts them, the `code.*` ones having been set first.
fn code_kept(code: Code, limit: u32, dropped: u32) -> (usize, u32) {
    let count = code.len();
    let kept = count.min(limit as usize);
    let more = u32::try_from(count - kept).unwrap_or(u32::MAX);
    (kept, dropped.saturating_add(more))
}

/// The record of an ended span of the common kind (a static name, at most
/// one attribute, no events, no error, no trace state) as the export
/// thread needs it: small enough to go into the export queue by value.
///
/// The span's box then stays with its thread for the next span, in that
/// core's cache, instead of going to the export thread and coming back
/// written by another core, which costs the caller more than the copy.
#[derive(Debug)]
pub(crate) struct Ended {
    /// As bytes: a `TraceId` (a `u128`) would align the whole to 16 bytes,
    /// and pad each slot of the queue by 16 more.
    trace_id: [u8; 16],
    span_id: SpanId,
    parent_span_id: SpanId,
    start: Stamp,
    end: Stamp,
    name: &'static str,
    code: Code,
    attribute: Option<KeyValue>,
    attribute_limit: u32,
    flags: TraceFlags,
    /// The span context's flag (ours are local).
    remote: bool,
    parent_is_remote: bool,
    kind: SpanKind,
    /// Status `Ok` (else `Unset`).
    ok: bool,
}

/// What [`Record::common`] found of a record an [`Ended`] can hold.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Common {
    name: &'static str,
    /// Status `Ok` (else `Unset`).
    ok: bool,
}

/// The statuses an [`Ended`] can have, for its [`View`] to lend.
static UNSET: Status = Status::Unset;
static OK: Status = Status::Ok;

impl Ended {
    /// The span's context, as its record had it.
    pub(crate) fn span_context(&self) -> SpanContext {
        SpanContext::new(
            TraceId::from_bytes(self.trace_id),
            self.span_id,
            self.flags,
            self.remote,
            TraceState::NONE,
        )
    }

    /// What the OTLP encoder reads, as [`Record::view`].
    pub(crate) fn view(&self, anchor: &Anchor) -> View<'_> {
        let (code_kept, dropped_attributes) = code_kept(self.code, self.attribute_limit, 0);
        View {
            parent_span_id: self.parent_span_id,
            parent_is_remote: self.parent_is_remote,
            name: self.name,
            kind: &self.kind,
            code: self.code,
            code_kept,
            dropped_attributes,
            start_time: anchor.unix_nanos(self.start),
            end_time: anchor.unix_nanos(self.end),
            attributes: self.attribute.as_slice(),
            events: &[],
            dropped_events: 0,
            status: if self.ok { &OK } else { &UNSET },
        }
    }
}

/// A span of ours while it runs, and until its record is exported: boxed,
/// so that a span moves as a pointer, and the box reused (see [`take`]),
/// so that it costs no allocation once a thread has run a few spans.
#[derive(Debug)]
pub(crate) struct Live {
    /// Its ids, for the body's children: copied into every poll of an
    /// async body, lent to a sync body (`in_scope`), which runs once.
    pub(crate) cx: Context,
    pub(crate) span_id: SpanId,
    /// The pipeline it started in (`Fast::id`), which it ends into.
    pub(crate) pipeline: u64,
    /// The span entered before this one on this thread, while this one is
    /// (see `private::with_live`).
    pub(crate) prev: Cell<*const Live>,
    /// Borrowed by `current_span()` and by `tracing` events while the span
    /// is entered; `&mut` otherwise.
    pub(crate) record: RefCell<Record>,
    /// What the box holds a span of.
    pub(crate) state: State,
}

/// What a span's box holds: a record, or only a context for its body (the
/// box, reused, saves a `Span` the room for one, so that a `Span` is a
/// pointer and costs nothing before `init`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// A sampled span of ours, recorded in `record`.
    Recording,
    /// No record, a context of its own: an unsampled root, current so that
    /// its children are dropped with it; or an SDK span, recording or not
    /// (a provider of the user's), which the context holds.
    Context { recording: bool },
    /// Not recorded, and no context of its own: its body runs in its
    /// parent's context (an explicit parent's, or none for a root), which
    /// decides its children as this span would have.
    Borrowed,
}

// SAFETY: `prev` is only set and read on the thread that entered the span,
// while its `poll_in` holds the span borrowed; the rest is `Send`.
unsafe impl Send for Live {}
// SAFETY: as above; what `&Live` reaches besides `prev` is the `RefCell`,
// which only the thread that entered the span borrows through the chain.
unsafe impl Sync for Live {}

impl Live {
    /// A started span in a reused box.
    #[allow(clippy::too_many_arguments, reason = "one call site, each a field")]
    pub(crate) fn start(
        pipeline: u64,
        cx: Context,
        span_context: SpanContext,
        parent: &SpanContext,
        name: Name,
        kind: SpanKind,
        code: Code,
        limits: Limits,
    ) -> Box<Self> {
        let mut live = take();
        live.pipeline = pipeline;
        live.span_id = span_context.span_id();
        live.cx = cx;
        live.state = State::Recording;
        let record = live.record.get_mut();
        // Emptied when it was exported (`take_span_data`), unless it was
        // discarded: then this drops what it held.
        record.attributes.clear();
        record.dropped_attributes = 0;
        record.events.clear();
        record.dropped_events = 0;
        record.status = Status::Unset;
        record.span_context = span_context;
        record.parent_span_id = parent.span_id();
        record.parent_is_remote = parent.is_remote();
        record.name = name;
        record.kind = kind;
        record.code = code;
        record.limits = limits;
        record.start = Stamp::now();
        record.end = record.start;
        live
    }

    /// A span that holds only `cx`, for its body, in a reused box.
    pub(crate) fn holding(cx: Context, state: State) -> Box<Self> {
        let mut live = take();
        live.cx = cx;
        live.span_id = SpanId::INVALID;
        live.state = state;
        live
    }

    fn empty() -> Self {
        Self {
            state: State::Recording,
            cx: Context::new(),
            span_id: SpanId::INVALID,
            pipeline: 0,
            prev: Cell::new(std::ptr::null()),
            record: RefCell::new(Record {
                span_context: SpanContext::empty_context(),
                parent_span_id: SpanId::INVALID,
                parent_is_remote: false,
                name: Name::Static(""),
                kind: SpanKind::Internal,
                code: Code::None,
                start: Stamp::now(),
                end: Stamp::now(),
                attributes: SmallVec::new(),
                dropped_attributes: 0,
                events: Vec::new(),
                dropped_events: 0,
                status: Status::Unset,
                limits: Limits {
                    attributes: 0,
                    events: 0,
                    event_attributes: 0,
                },
            }),
        }
    }
}

std::thread_local! {
    /// Boxes of spans that ended on this thread, for its next spans.
    #[allow(clippy::vec_box, reason = "the boxes are what is kept: spans hold them")]
    static POOL: RefCell<Vec<Box<Live>>> = const { RefCell::new(Vec::new()) };
}

/// Boxes a thread keeps for itself.
const POOL_SIZE: usize = 64;

/// Boxes the export thread has emptied, for any thread.
fn spares() -> &'static ArrayQueue<Box<Live>> {
    static SPARES: OnceLock<ArrayQueue<Box<Live>>> = OnceLock::new();
    SPARES.get_or_init(|| ArrayQueue::new(4096))
}

/// A box for a span: this thread's, else a spare, else a new one.
fn take() -> Box<Live> {
    POOL.try_with(|pool| pool.try_borrow_mut().ok()?.pop())
        .ok()
        .flatten()
        .or_else(|| spares().pop())
        .unwrap_or_else(|| Box::new(Live::empty()))
}

/// Keeps the box of a span handled on this thread (printed, captured or
/// discarded) for this thread's next span.
pub(crate) fn recycle_here(live: Box<Live>) {
    let rest = POOL
        .try_with(|pool| match pool.try_borrow_mut() {
            Ok(mut pool) if pool.len() < POOL_SIZE => {
                pool.push(live);
                None
            }
            _ => Some(live),
        })
        .unwrap_or(None);
    if let Some(live) = rest {
        recycle(live);
    }
}

/// Gives the box of an exported span to whichever thread starts a span
/// next (or frees it, when enough are spare).
pub(crate) fn recycle(live: Box<Live>) {
    let _ = spares().push(live);
}

impl Record {
    /// As the SDK's `set_attribute`: appended (never replacing an earlier
    /// value of the key), or counted as dropped past the limit, which the
    /// `code.*` attributes count towards.
    pub(crate) fn set_attribute(&mut self, attribute: KeyValue) {
        if self.attributes.len() + self.code.len() < self.limits.attributes as usize {
            self.attributes.push(attribute);
        } else {
            self.dropped_attributes += 1;
        }
    }

    pub(crate) fn add_event(&mut self, name: Cow<'static, str>, mut attributes: Vec<KeyValue>) {
        if self.events.len() < self.limits.events as usize {
            let limit = self.limits.event_attributes as usize;
            let dropped = attributes.len().saturating_sub(limit);
            attributes.truncate(limit);
            self.events.push(Event::new(
                name,
                opentelemetry::time::now(),
                attributes,
                u32::try_from(dropped).unwrap_or(u32::MAX),
            ));
        } else {
            self.dropped_events += 1;
        }
    }

    /// As the SDK's `set_status`: Ok over Error over Unset.
    pub(crate) fn set_status(&mut self, status: Status) {
        if status > self.status {
            self.status = status;
        }
    }

    /// Whether the span is to be exported.
    pub(crate) fn is_sampled(&self) -> bool {
        self.span_context.is_sampled()
    }

    /// How many of the `code.*` attributes the attribute limit keeps, and
    /// how many attributes are dropped in all: as the SDK's span counts
    /// them, the `code.*` ones having been set first.
    fn code_kept(&self) -> (usize, u32) {
        code_kept(self.code, self.limits.attributes, self.dropped_attributes)
    }

    /// What the OTLP encoder reads: the record as its `SpanData` would be
    /// (see [`take_span_data`](Self::take_span_data)), borrowed.
    pub(crate) fn view<'a>(&'a self, anchor: &Anchor) -> View<'a> {
        let (code_kept, dropped_attributes) = self.code_kept();
        View {
            parent_span_id: self.parent_span_id,
            parent_is_remote: self.parent_is_remote,
            name: self.name.as_str(),
            kind: &self.kind,
            code: self.code,
            code_kept,
            dropped_attributes,
            start_time: anchor.unix_nanos(self.start),
            end_time: anchor.unix_nanos(self.end),
            attributes: &self.attributes,
            events: &self.events,
            dropped_events: self.dropped_events,
            status: &self.status,
        }
    }

    /// Whether the ended record is of the kind an [`Ended`] holds, and
    /// what of it [`take_ended`](Self::take_ended) needs then; else `None`.
    #[inline]
    pub(crate) fn common(&self) -> Option<Common> {
        let Name::Static(name) = self.name else {
            return None;
        };
        let ok = match self.status {
            Status::Unset => false,
            Status::Ok => true,
            Status::Error { .. } => return None,
        };
        if self.attributes.len() > 1
            || self.dropped_attributes != 0
            || !self.events.is_empty()
            || self.dropped_events != 0
            || *self.span_context.trace_state() != TraceState::NONE
        {
            return None;
        }
        Some(Common { name, ok })
    }

    /// The ended record as an [`Ended`], its attribute moved out. Split
    /// from [`common`](Self::common) for the queue to make it in its slot.
    #[inline]
    pub(crate) fn take_ended(&mut self, Common { name, ok }: Common) -> Ended {
        Ended {
            trace_id: self.span_context.trace_id().to_bytes(),
            span_id: self.span_context.span_id(),
            parent_span_id: self.parent_span_id,
            start: self.start,
            end: self.end,
            name,
            code: self.code,
            attribute: self.attributes.pop(),
            attribute_limit: self.limits.attributes,
            flags: self.span_context.trace_flags(),
            remote: self.span_context.is_remote(),
            parent_is_remote: self.parent_is_remote,
            kind: self.kind.clone(),
            ok,
        }
    }

    /// Empties an exported record for the box's next span, dropping what it
    /// owns here (on the export thread), not where the box is reused.
    pub(crate) fn clear(&mut self) {
        self.attributes.clear();
        self.events.clear();
        self.span_context = SpanContext::empty_context();
        self.name = Name::Static("");
        self.status = Status::Unset;
    }

    /// The record as the SDK's span would have made it, moved out: the
    /// record is left empty, for the box's next span.
    pub(crate) fn take_span_data(&mut self, anchor: &Anchor) -> SpanData {
        // A limit below the `code.*` count leaves room for some of them only
        // (`set_attribute` has dropped every other attribute already).
        let (code_kept, dropped_attributes) = self.code_kept();
        self.dropped_attributes = dropped_attributes;
        let mut attributes = Vec::with_capacity(code_kept + self.attributes.len());
        attributes.extend(self.code.attributes().take(code_kept));
        attributes.extend(self.attributes.drain(..));
        let mut events = SpanEvents::default();
        events.events = std::mem::take(&mut self.events);
        events.dropped_count = std::mem::take(&mut self.dropped_events);
        SpanData {
            span_context: std::mem::replace(&mut self.span_context, SpanContext::empty_context()),
            parent_span_id: self.parent_span_id,
            parent_span_is_remote: self.parent_is_remote,
            span_kind: std::mem::replace(&mut self.kind, SpanKind::Internal),
            name: std::mem::replace(&mut self.name, Name::Static("")).into_cow(),
            start_time: anchor.time(self.start),
            end_time: anchor.time(self.end),
            attributes,
            dropped_attributes_count: std::mem::take(&mut self.dropped_attributes),
            events,
            links: SpanLinks::default(),
            status: std::mem::replace(&mut self.status, Status::Unset),
            instrumentation_scope: scope().clone(),
        }
    }

    /// The `SpanData` of a copy, for `vaxila::testing::capture`.
    pub(crate) fn to_span_data(&self, anchor: &Anchor) -> SpanData {
        Self {
            span_context: self.span_context.clone(),
            name: self.name.clone(),
            kind: self.kind.clone(),
            attributes: self.attributes.clone(),
            events: self.events.clone(),
            status: self.status.clone(),
            ..*self
        }
        .take_span_data(anchor)
    }
}

/// The instrumentation scope of every span the macro, the span builder and
/// the integrations create: static strings, so a copy per span costs nothing.
pub(crate) fn scope() -> &'static InstrumentationScope {
    static SCOPE: OnceLock<InstrumentationScope> = OnceLock::new();
    SCOPE.get_or_init(|| {
        InstrumentationScope::builder("vaxila")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build()
    })
}

std::thread_local! {
    /// This thread's id generator, and the fork generation it was seeded in:
    /// a forked child must not repeat its parent's ids.
    static IDS: RefCell<Option<(u64, StdRng)>> = const { RefCell::new(None) };
}

/// `N` random `u64`s, from a ChaCha generator per thread seeded by the OS, as
/// the SDK's ids are: ids sent to other services (`traceparent`) must not
/// tell what the next ones will be.
fn random<const N: usize>() -> [u64; N] {
    let draw = |rng: &mut StdRng| std::array::from_fn(|_| rng.next_u64());
    IDS.try_with(|ids| {
        let mut ids = ids.try_borrow_mut().ok()?;
        let now = crate::fork::generation();
        if !matches!(&*ids, Some((seeded, _)) if *seeded == now) {
            *ids = Some((now, generator()));
        }
        ids.as_mut().map(|(_, rng)| draw(rng))
    })
    .ok()
    .flatten()
    // A thread being torn down: a generator of its own for these ids.
    .unwrap_or_else(|| draw(&mut generator()))
}

fn generator() -> StdRng {
    StdRng::try_from_os_rng().unwrap_or_else(|_| {
        use std::hash::{BuildHasher as _, Hasher as _};
        // No OS randomness (a sandbox that forbids it): `RandomState`'s
        // keys, the pid and the time, rather than a panic.
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        StdRng::seed_from_u64(hasher.finish())
    })
}

pub(crate) fn new_span_id() -> SpanId {
    loop {
        let [id] = random();
        if id != 0 {
            return SpanId::from(id);
        }
    }
}

pub(crate) fn new_trace_id() -> TraceId {
    loop {
        let [high, low] = random();
        let id = (u128::from(high) << 64) | u128::from(low);
        if id != 0 {
            return TraceId::from(id);
        }
    }
}

/// The ids of a root span, drawn at once.
pub(crate) fn new_root_ids() -> (TraceId, SpanId) {
    let [high, low, span] = random();
    let trace = (u128::from(high) << 64) | u128::from(low);
    let trace = if trace == 0 {
        new_trace_id()
    } else {
        TraceId::from(trace)
    };
    let span = if span == 0 {
        new_span_id()
    } else {
        SpanId::from(span)
    };
    (trace, span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    use opentelemetry_sdk::trace::SpanLimits;

    static META: Meta = Meta::new("f", SpanKind::Internal, "m::f", "src/m.rs", 7);

    fn started(attributes_per_span: u32) -> Box<Live> {
        let limits = Limits::from(&SpanLimits {
            max_attributes_per_span: attributes_per_span,
            ..SpanLimits::default()
        });
        Live::start(
            1,
            Context::new(),
            SpanContext::empty_context(),
            &SpanContext::NONE,
            Name::Static("f"),
            SpanKind::Internal,
            Code::Function(&META),
            limits,
        )
    }

    #[test]
    fn the_code_attributes_count_towards_the_attribute_limit() {
        let mut live = started(4);
        let record = live.record.get_mut();
        record.set_attribute(KeyValue::new("a", 1));
        record.set_attribute(KeyValue::new("b", 2));
        let data = record.take_span_data(&Anchor::now());
        let keys: Vec<_> = data.attributes.iter().map(|kv| kv.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "code.function.name",
                "code.file.path",
                "code.line.number",
                "a"
            ]
        );
        assert_eq!(data.dropped_attributes_count, 1);

        // A limit below their count keeps as many of them as it allows.
        let mut live = started(2);
        let record = live.record.get_mut();
        record.set_attribute(KeyValue::new("a", 1));
        let data = record.take_span_data(&Anchor::now());
        assert_eq!(data.attributes.len(), 2);
        assert_eq!(data.dropped_attributes_count, 2);
    }

    #[test]
    fn a_reused_box_starts_empty() {
        let mut live = started(128);
        let record = live.record.get_mut();
        record.set_attribute(KeyValue::new("a", 1));
        record.add_event(Cow::Borrowed("e"), vec![]);
        record.set_status(Status::error("x"));
        // Discarded without being exported, as a full queue discards it.
        recycle_here(live);
        let mut live = started(128);
        let data = live.record.get_mut().take_span_data(&Anchor::now());
        assert_eq!(data.attributes.len(), 3, "the code.* attributes only");
        assert!(data.events.is_empty());
        assert_eq!(data.status, Status::Unset);
    }

    #[test]
    fn ids_are_distinct_and_never_zero() {
        let spans: HashSet<_> = (0..100_000).map(|_| new_span_id()).collect();
        assert_eq!(spans.len(), 100_000);
        assert!(!spans.contains(&SpanId::INVALID));
        let traces: HashSet<_> = (0..100_000).map(|_| new_trace_id()).collect();
        assert_eq!(traces.len(), 100_000);
        let (roots, root_spans): (HashSet<_>, HashSet<_>) =
            (0..100_000).map(|_| new_root_ids()).unzip();
        assert_eq!((roots.len(), root_spans.len()), (100_000, 100_000));
        assert!(!roots.contains(&TraceId::INVALID));
        assert!(!root_spans.contains(&SpanId::INVALID));
        // Drawn from the same stream, never one from the other's values.
        assert!(root_spans.is_disjoint(&spans));
    }

    #[test]
    fn threads_draw_different_ids() {
        let other = std::thread::spawn(new_span_id).join().unwrap();
        let mine: HashSet<_> = (0..1000).map(|_| new_span_id()).collect();
        assert!(!mine.contains(&other));
    }

    #[test]
    fn the_low_half_of_trace_ids_is_spread_evenly() {
        // The ratio sampler keeps trace ids whose low 63 bits fall under
        // ratio * 2^63: a quarter of them for 0.25.
        let threshold = (0.25 * (1u64 << 63) as f64) as u64;
        let kept = (0..40_000)
            .filter(|_| {
                let bytes = new_trace_id().to_bytes();
                let low = u64::from_be_bytes(bytes[8..16].try_into().unwrap()) >> 1;
                low < threshold
            })
            .count();
        assert!((9_000..11_000).contains(&kept), "{kept} of 40000");
    }
}
