//! The OTLP pipeline's batch processor: a bounded queue, an export thread, a sending thread, and a count of what became of every span.
//!
//! The SDK's `BatchSpanProcessor` drops spans when its queue is full and
//! says so only through its internal log, which nobody sees; it exposes no
//! count. This one does the same work (ending a span puts it in a bounded
//! queue; a thread of its own batches and exports), takes this crate's own
//! spans as they are (`Record`s, encoded in place on the export thread),
//! counts every span's fate ([`ExportStats`]),
//! writes one warning per incident to stderr (not one per span), and drops
//! at once the spans of a forked child whose export thread did not survive
//! the `fork`.
//!
//! Encoding and sending overlap: the export thread encodes and compresses a
//! batch while two other threads (the couriers) send the ones before, so
//! that neither the network's round trip nor the receiver's work idles the
//! encoder, and one slow answer does not hold back the next request.

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use crossbeam_utils::CachePadded;
use opentelemetry::Context;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};

use crate::clock::Anchor;
use crate::config::BatchSettings;
use crate::global::RecordSink;
use crate::otlp::OtlpExporter;
use crate::record::{Ended, Live};
use crate::ring::Ring;

/// What became of the spans of a pipeline so far, from
/// [`Guard::stats`](crate::Guard::stats).
///
/// Every span that ended sampled is, in the end, in exactly one of these
/// counts (or still queued).
///
/// ```
/// # fn main() -> Result<(), vaxila::Error> {
/// let guard = vaxila::Config::default()
///     .with_env([("OTEL_SDK_DISABLED", "true")])
///     .init()?;
/// let stats = guard.stats();
/// assert_eq!(stats.dropped + stats.failed + stats.rejected, 0);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExportStats {
    /// Spans the endpoint accepted.
    pub exported: u64,
    /// Spans never sent: ended while the queue was full (`[batch]
    /// max_queue_size`), after the guard shut the pipeline down, or in a
    /// forked child that did not call [`reinit_after_fork`](crate::reinit_after_fork).
    pub dropped: u64,
    /// Spans sent in requests that failed: the endpoint could not be
    /// reached, did not answer within the timeout, or answered an error
    /// (after the retries the OTLP specification allows).
    pub failed: u64,
    /// Spans the endpoint accepted the request of but reported rejected (an
    /// OTLP `partial_success`).
    pub rejected: u64,
    /// Spans queued or being sent now; after a shutdown that ran out of
    /// time, the spans it could not send.
    pub queued: u64,
}

impl ExportStats {
    /// Every span counted: the sampled spans ended so far.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.exported + self.dropped + self.failed + self.rejected + self.queued
    }

    /// Spans that did not reach the endpoint, or that it rejected.
    #[must_use]
    pub fn lost(&self) -> u64 {
        self.total() - self.exported
    }
}

impl std::fmt::Display for ExportStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} span(s) ended: {} exported, {} dropped, {} failed, {} rejected, {} unsent",
            self.total(),
            self.exported,
            self.dropped,
            self.failed,
            self.rejected,
            self.queued
        )
    }
}

/// The counts, shared by the processor, its thread and the HTTP transport.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// What the threads that end spans write, on a cache line of its own,
    /// apart from the export thread's counts.
    ends: CachePadded<Ends>,
    /// The queue, whose count of positions claimed is the count of spans
    /// queued so far: counting them again would cost every span a second
    /// write to a line that every thread ending spans writes.
    queue: OnceLock<Arc<Queue>>,
    /// Queued spans dropped since (at shutdown, or with the export thread).
    discarded: AtomicU64,
    exported: AtomicU64,
    failed: AtomicU64,
    rejected: AtomicU64,
    /// Rejected spans the transport saw in the last response, not yet counted.
    pending_rejected: AtomicU64,
    /// The HTTP status of the last failed response, 0 when there was none.
    last_status: AtomicU16,
    warned_full: AtomicBool,
    warned_forked: AtomicBool,
    warned_rejected: AtomicBool,
    warned_gone: AtomicBool,
    /// The reason of the failure being reported, while exports fail.
    failing: Mutex<Option<String>>,
}

#[derive(Debug, Default)]
struct Ends {
    /// Spans that ended sampled but were never queued: the queue was full,
    /// or the process a fork's child.
    dropped: AtomicU64,
}

impl Counters {
    pub(crate) fn stats(&self) -> ExportStats {
        // Fates first, then the count of spans queued, so that a span is
        // never seen with a fate but not yet queued.
        let exported = self.exported.load(Ordering::Acquire);
        let failed = self.failed.load(Ordering::Acquire);
        let rejected = self.rejected.load(Ordering::Acquire);
        let unqueued = self.ends.dropped.load(Ordering::Acquire);
        let queue = self.queue.get();
        // Queued spans dropped unsent, and positions whose span failed to
        // be made (its making panicked, which nothing in it can do today).
        let discarded =
            self.discarded.load(Ordering::Acquire) + queue.map_or(0, |queue| queue.items.skipped());
        let claimed = queue.map_or(0, |queue| queue.items.claimed());
        ExportStats {
            exported,
            dropped: unqueued + discarded,
            failed,
            rejected,
            queued: claimed.saturating_sub(exported + failed + rejected + discarded),
        }
    }

    /// The transport saw an answer with this status.
    pub(crate) fn note_status(&self, status: u16) {
        let failed = if (200..300).contains(&status) {
            0
        } else {
            status
        };
        self.last_status.store(failed, Ordering::Relaxed);
    }

    /// The transport saw a `partial_success` rejecting `count` spans.
    pub(crate) fn note_rejected(&self, count: u64, message: &str) {
        self.pending_rejected.fetch_add(count, Ordering::Relaxed);
        if !self.warned_rejected.swap(true, Ordering::Relaxed) {
            let message = if message.is_empty() {
                String::new()
            } else {
                format!(": {}", tame(message))
            };
            warn(format_args!(
                "the endpoint rejected {count} span(s) of an export{message} \
                 (further rejections are counted in Guard::stats, not reported)"
            ));
        }
    }

    /// Counts a span that ended as dropped, and warns once per cause.
    fn drop_span(&self, why: Dropped, queue: usize) {
        match why {
            // Never queued: by the thread that ends it.
            Dropped::Full | Dropped::Forked => &self.ends.dropped,
            // Queued (its position counted) and taken out unsent.
            Dropped::Shutdown | Dropped::ThreadGone => &self.discarded,
        }
        .fetch_add(1, Ordering::Release);
        match why {
            // Read before it is written: spans dropped after the warning
            // leave its cache line alone.
            Dropped::Full
                if !self.warned_full.load(Ordering::Relaxed)
                    && !self.warned_full.swap(true, Ordering::Relaxed) =>
            {
                warn(format_args!(
                    "the export queue is full ({queue} spans): spans are being dropped \
                 (counted in Guard::stats; this is said once). The endpoint is slower \
                 than the program makes spans: raise [batch] max_queue_size, lower \
                 [sampler] ratio, or check the endpoint"
                ));
            }
            Dropped::Forked if !self.warned_forked.swap(true, Ordering::Relaxed) => {
                // Not through `std::io::stderr()`, whose lock a thread of the
                // parent may have held at the fork, forever in the child.
                warn_raw(
                    "vaxila: this process was forked after vaxila::init(), and the export \
                     thread does not survive a fork: the child's spans are dropped. Call \
                     vaxila::reinit_after_fork() in the child\n",
                );
            }
            Dropped::ThreadGone if !self.warned_gone.swap(true, Ordering::Relaxed) => {
                warn(format_args!(
                    "the export thread stopped unexpectedly: spans are being dropped \
                     (counted in Guard::stats)"
                ));
            }
            _ => {}
        }
    }

    fn exported(&self, count: u64) {
        let rejected = self.pending_rejected.swap(0, Ordering::Relaxed).min(count);
        self.rejected.fetch_add(rejected, Ordering::Release);
        self.exported.fetch_add(count - rejected, Ordering::Release);
        let recovered = self
            .failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if recovered.is_some() {
            let failed = self.failed.load(Ordering::Relaxed);
            warn(format_args!(
                "export works again ({failed} span(s) failed to export in all so far)"
            ));
        }
    }

    fn failed(&self, count: u64, error: &OTelSdkError, endpoint: &str) {
        self.pending_rejected.store(0, Ordering::Relaxed);
        self.failed.fetch_add(count, Ordering::Release);
        let reason = match self.last_status.swap(0, Ordering::Relaxed) {
            status @ (401 | 403) => format!(
                "the endpoint rejected the token (HTTP {status}): check the token in \
                 $VAXILA_TOKEN (or [exporter] token_env / token_file)"
            ),
            413 => "the request was too large (HTTP 413): lower [batch] max_export_batch_size"
                .to_owned(),
            status @ (429 | 503) => format!(
                "the endpoint is throttling or unavailable (HTTP {status}) and the retries \
                 allowed within the export timeout ran out"
            ),
            _ => error.to_string(),
        };
        let mut failing = self.failing.lock().unwrap_or_else(|e| e.into_inner());
        if failing.is_none() {
            warn(format_args!(
                "exporting {count} span(s) to {endpoint} failed: {reason}. Spans are lost \
                 while this lasts (counted in Guard::stats); the next success is reported"
            ));
            *failing = Some(reason);
        }
    }
}

/// Why a span was dropped.
#[derive(Clone, Copy)]
enum Dropped {
    Full,
    Shutdown,
    Forked,
    /// The export thread ended without a shutdown (it panicked).
    ThreadGone,
}

/// One line on stderr; never `eprintln!`, which panics when stderr is closed.
fn warn(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "vaxila: {message}");
}

/// `message` on file descriptor 2 with one `write`, taking no lock.
fn warn_raw(message: &str) {
    #[cfg(unix)]
    // SAFETY: writes `message.len()` bytes from a live `&str` to fd 2; a
    // closed or short descriptor only makes the write fail, which is fine.
    unsafe {
        libc::write(2, message.as_ptr().cast(), message.len());
    }
    #[cfg(not(unix))]
    let _ = std::io::stderr().write_all(message.as_bytes());
}

/// What the endpoint says, fit for one line of ours: short, and without
/// control characters (it is the server's text, not ours).
fn tame(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > 200 {
        out.push('…');
    }
    out
}

enum Control {
    /// A batch is ready (the queue holds `max_export_batch_size` spans).
    Batch,
    Flush(Sender<OTelSdkResult>),
    Shutdown(Sender<OTelSdkResult>),
}

/// A span waiting for export: the SDK's, or one of this crate's, encoded
/// from its record on the export thread.
#[derive(Debug)]
pub(crate) enum Item {
    /// Boxed, the SDK's span being large and rare here.
    Sdk(Box<SpanData>),
    /// A record of any kind, in its span's box.
    Record(Box<Live>),
    /// A record of the common kind, by value: its box stays with its thread.
    Ended(Ended),
}

/// The spans waiting for export, shared by the processor and its thread.
#[derive(Debug)]
struct Queue {
    items: Ring<Item>,
    max_batch: usize,
    /// Set when a [`Control::Batch`] is on its way, so that one is sent per
    /// batch, not per span.
    nudged: AtomicBool,
    /// Set when the export thread has stopped taking spans.
    closed: AtomicBool,
}

/// How many requests are on their way at once, each sent by a thread of
/// its own (a courier). Two keep the receiver busy while one request's
/// answer is on its way back, and double what a distant endpoint (a long
/// round trip per request) can be sent.
const COURIERS: usize = 2;

/// How much longer than the export timeout a flush or a shutdown waits for
/// the export thread: an export that runs until its own deadline (retrying
/// a throttling endpoint, say) then answers how it ended, and its spans are
/// counted, before the wait is over.
pub(crate) const ANSWER_GRACE: Duration = Duration::from_millis(200);

/// The batch processor of the OTLP pipeline.
///
/// Ending a span puts it into a bounded ring ([`Ring`]); the export
/// thread is woken only when a batch is full (or flushed, or the delay is
/// up), not for every span, so a span's end costs its caller no system
/// call.
#[derive(Debug)]
pub(crate) struct BatchProcessor {
    queue: Arc<Queue>,
    control: Sender<Control>,
    counters: Arc<Counters>,
    /// How long a flush waits for the export thread.
    timeout: Duration,
    shut_down: AtomicBool,
    /// The [`fork`](crate::fork) generation the export thread runs in.
    generation: u64,
}

impl BatchProcessor {
    /// Starts the export thread, which owns `exporter` from now on.
    pub(crate) fn start(
        exporter: OtlpExporter,
        batch: &BatchSettings,
        timeout: Duration,
        value_length: Option<usize>,
        counters: Arc<Counters>,
        endpoint: String,
    ) -> std::io::Result<Self> {
        crate::fork::watch();
        let capacity = batch.max_queue_size.max(1);
        let queue = Arc::new(Queue {
            items: Ring::new(capacity),
            max_batch: batch.max_export_batch_size.clamp(1, capacity),
            nudged: AtomicBool::new(false),
            closed: AtomicBool::new(false),
        });
        // Set once: one processor per pipeline, and so per `Counters`.
        let _ = counters.queue.set(queue.clone());
        let (control, control_queue) = crossbeam_channel::unbounded();
        let exporter = Arc::new(exporter);
        // Rendezvous: the export thread encodes the next batch while the
        // couriers send the last ones, and hands it to the first that is
        // done. Out of the queue, then, are `COURIERS + 1` batches at most.
        let (spare_bodies, bodies) = crossbeam_channel::bounded(COURIERS);
        let mut deliveries = Vec::with_capacity(COURIERS);
        for _ in 0..COURIERS {
            let (delivery, to_deliver) = crossbeam_channel::bounded(0);
            let courier = Courier {
                exporter: exporter.clone(),
                counters: counters.clone(),
                endpoint: endpoint.clone(),
                spare_bodies: spare_bodies.clone(),
            };
            std::thread::Builder::new()
                .name("vaxila-send".into())
                .spawn(move || courier.run(&to_deliver))?;
            deliveries.push(delivery);
        }
        let worker = Worker {
            exporter,
            deliveries,
            bodies,
            batch: Vec::with_capacity(queue.max_batch),
            queue: queue.clone(),
            control: control_queue,
            counters: counters.clone(),
            // At least a millisecond: a zero delay would spin the thread.
            delay: batch.scheduled_delay.max(Duration::from_millis(1)),
            value_length,
            endpoint,
        };
        std::thread::Builder::new()
            .name("vaxila-export".into())
            .spawn(move || worker.run())?;
        Ok(Self {
            queue,
            control,
            counters,
            timeout,
            shut_down: AtomicBool::new(false),
            generation: crate::fork::generation(),
        })
    }

    /// Whether this process is a fork of the one the export thread runs in.
    #[inline]
    fn orphaned(&self) -> bool {
        crate::fork::generation() != self.generation
    }

    fn ask(&self, make: fn(Sender<OTelSdkResult>) -> Control, wait: Duration) -> OTelSdkResult {
        if self.orphaned() {
            // The thread that would answer is not in this process.
            return Ok(());
        }
        let (reply, answer) = crossbeam_channel::bounded(1);
        self.control
            .send(make(reply))
            .map_err(|_| OTelSdkError::AlreadyShutdown)?;
        match answer.recv_timeout(wait) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(OTelSdkError::Timeout(wait)),
            Err(RecvTimeoutError::Disconnected) => Err(OTelSdkError::InternalFailure(
                "the export thread stopped".to_owned(),
            )),
        }
    }

    /// Queues the span `make` makes, made in its slot (a span is too large
    /// to be copied for nothing); a span that finds no room is made and
    /// dropped.
    #[inline]
    fn push(&self, make: impl FnOnce() -> Item) {
        if self.orphaned() {
            drop(make());
            return self
                .counters
                .drop_span(Dropped::Forked, self.queue.items.capacity());
        }
        let position = match self.queue.items.push_with(make) {
            Ok(position) => position,
            Err(make) => return self.refused(make()),
        };
        if self.queue.closed.load(Ordering::SeqCst) {
            // Nobody takes spans any more: count what is left for nobody.
            let why = if self.shut_down.load(Ordering::Relaxed) {
                Dropped::Shutdown
            } else {
                Dropped::ThreadGone
            };
            self.queue.discard(&self.counters, why);
        } else if (position + 1).is_multiple_of(self.queue.max_batch as u64)
            && !self.queue.nudged.swap(true, Ordering::AcqRel)
        {
            // Once per batch's worth of spans, going by the position rather
            // than the queue's length, which reads a cache line the export
            // thread writes.
            let _ = self.control.send(Control::Batch);
        }
    }

    /// Drops a span the full queue refused, and asks for a batch.
    fn refused(&self, item: Item) {
        if let Item::Record(span) = item {
            crate::record::recycle_here(span);
        }
        // A full queue is a batch ready, whatever the count says (a queue
        // smaller than two batches can fill between two nudges). Read before
        // it is written, as every span dropped here asks: the export thread
        // clears it when it takes a batch.
        if !self.queue.nudged.load(Ordering::Relaxed)
            && !self.queue.nudged.swap(true, Ordering::AcqRel)
        {
            let _ = self.control.send(Control::Batch);
        }
        self.counters
            .drop_span(Dropped::Full, self.queue.items.capacity());
    }
}

impl Queue {
    /// Takes up to `count` spans out into `batch`; returns how many.
    fn take(&self, count: usize, batch: &mut Vec<Item>) -> usize {
        self.items.take(count, batch)
    }

    /// Drops every queued span, counted as `why`.
    fn discard(&self, counters: &Counters, why: Dropped) {
        for _ in 0..self.items.discard_all() {
            counters.drop_span(why, 0);
        }
    }
}

impl SpanProcessor for BatchProcessor {
    fn on_start(&self, _: &mut Span, _: &Context) {}

    fn on_end(&self, span: SpanData) {
        if span.span_context.is_sampled() {
            self.push(|| Item::Sdk(Box::new(span)));
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        if self.shut_down.load(Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        self.ask(Control::Flush, self.timeout.saturating_add(ANSWER_GRACE))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        if self.shut_down.swap(true, Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        self.ask(Control::Shutdown, timeout.saturating_add(ANSWER_GRACE))
    }
}

impl RecordSink for BatchProcessor {
    #[inline]
    fn end(&self, mut span: Box<Live>) {
        let record = span.record.get_mut();
        if !record.is_sampled() {
            return crate::record::recycle_here(span);
        }
        match record.common() {
            Some(common) => {
                self.push(|| Item::Ended(record.take_ended(common)));
                crate::record::recycle_here(span);
            }
            None => self.push(|| Item::Record(span)),
        }
    }
}

/// What the export thread hands the thread that sends requests.
enum Delivery {
    /// A request's body, and the count of spans in it.
    Request(Vec<u8>, u64),
    /// Answered once every request before it is answered, with the first
    /// failure among them since the last barrier.
    Barrier(Sender<OTelSdkResult>),
}

/// The thread that sends the requests the export thread encodes, and counts
/// what became of their spans.
struct Courier {
    exporter: Arc<OtlpExporter>,
    counters: Arc<Counters>,
    endpoint: String,
    /// Sent bodies, for the export thread's next requests.
    spare_bodies: Sender<Vec<u8>>,
}

impl Courier {
    /// Delivers until the export thread is gone and nothing is left.
    fn run(self, deliveries: &Receiver<Delivery>) {
        let mut first_failure = Ok(());
        for delivery in deliveries {
            match delivery {
                Delivery::Request(mut body, count) => {
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.exporter.deliver(&body)
                    }))
                    .unwrap_or_else(|_| {
                        Err(OTelSdkError::InternalFailure(
                            "the exporter panicked".to_owned(),
                        ))
                    });
                    match &result {
                        Ok(()) => self.counters.exported(count),
                        Err(error) => self.counters.failed(count, error, &self.endpoint),
                    }
                    if first_failure.is_ok() {
                        first_failure = result;
                    }
                    crate::otlp::trim(&mut body);
                    let _ = self.spare_bodies.try_send(body);
                }
                Delivery::Barrier(reply) => {
                    let _ = reply.send(std::mem::replace(&mut first_failure, Ok(())));
                }
            }
        }
    }
}

/// The export thread.
struct Worker {
    exporter: Arc<OtlpExporter>,
    /// To each of the threads that send the requests.
    deliveries: Vec<Sender<Delivery>>,
    /// Bodies of sent requests, to write the next ones into.
    bodies: Receiver<Vec<u8>>,
    /// The spans of the export under way, in a buffer kept between exports.
    batch: Vec<Item>,
    queue: Arc<Queue>,
    control: Receiver<Control>,
    counters: Arc<Counters>,
    delay: Duration,
    /// `[limits] attribute_value_length`, applied here, off the caller's thread.
    value_length: Option<usize>,
    endpoint: String,
}

fn courier_gone() -> OTelSdkError {
    OTelSdkError::InternalFailure("the thread that sends requests stopped".to_owned())
}

/// Marks the queue closed when the export thread ends, however it ends.
struct Closing<'a>(&'a Queue, &'a Counters);

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::SeqCst);
        // A panic got here: the spans queued are nobody's now.
        if std::thread::panicking() {
            self.0.discard(self.1, Dropped::ThreadGone);
        }
    }
}

impl Worker {
    fn run(mut self) {
        let queue = self.queue.clone();
        let counters = self.counters.clone();
        let _closing = Closing(&queue, &counters);
        let mut next = Instant::now() + self.delay;
        loop {
            match self.control.recv_deadline(next) {
                Ok(Control::Batch) => {
                    self.queue.nudged.store(false, Ordering::Release);
                    // Until less than a batch is left, or a span is being
                    // queued at the head (its thread is a moment from done).
                    while self.queue.items.len() >= self.queue.max_batch {
                        // Counted and reported by `export`; nobody waits for it.
                        if self.export_some(self.queue.max_batch).is_none() {
                            break;
                        }
                    }
                }
                Ok(Control::Flush(reply)) => {
                    let result = self.flush();
                    let _ = reply.send(result);
                }
                Ok(Control::Shutdown(reply)) => {
                    let mut result = self.flush();
                    let shutdown = self.exporter.shutdown();
                    if result.is_ok() {
                        result = shutdown;
                    }
                    // Spans that ended meanwhile will not be sent: say so.
                    self.queue.closed.store(true, Ordering::SeqCst);
                    self.queue.discard(&self.counters, Dropped::Shutdown);
                    let _ = reply.send(result);
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = self.drain();
                    next = Instant::now() + self.delay;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Every sender gone (the processor was dropped unshut):
                    // export what is left, with nobody to tell.
                    let _ = self.drain();
                    let _ = self.exporter.shutdown();
                    return;
                }
            }
        }
    }

    /// Exports everything queued now, and waits until it is sent.
    fn flush(&mut self) -> OTelSdkResult {
        let encoded = self.drain();
        // A barrier to every courier: each answers once what it took
        // before it is answered.
        let answers: Vec<_> = self
            .deliveries
            .iter()
            .map(|courier| {
                let (reply, answer) = crossbeam_channel::bounded(1);
                courier.send(Delivery::Barrier(reply)).ok().map(|()| answer)
            })
            .collect();
        let mut delivered = Ok(());
        for answer in answers {
            let answer = answer.map_or_else(
                || Err(courier_gone()),
                |answer| answer.recv().unwrap_or_else(|_| Err(courier_gone())),
            );
            delivered = delivered.and(answer);
        }
        encoded.and(delivered)
    }

    /// Hands a request to the first courier free to take it.
    fn hand_over(&self, delivery: Delivery) -> OTelSdkResult {
        let mut free = crossbeam_channel::Select::new();
        for courier in &self.deliveries {
            free.send(courier);
        }
        let taken = free.select();
        let courier = &self.deliveries[taken.index()];
        taken.send(courier, delivery).map_err(|_| courier_gone())
    }

    /// Exports everything queued now (not what is queued meanwhile, so that
    /// a busy program cannot keep a flush going).
    fn drain(&mut self) -> OTelSdkResult {
        let mut result = Ok(());
        let mut left = self.queue.items.len();
        while left > 0 {
            let take = left.min(self.queue.max_batch);
            match self.export_some(take) {
                Some(exported) => result = result.and(exported),
                // A span still being queued, by a thread that ended it
                // after the flush was asked for.
                None => break,
            }
            left -= take;
        }
        result
    }

    /// Encodes up to `count` queued spans into a request, and hands it to
    /// the courier; `None` when none was queued.
    fn export_some(&mut self, count: usize) -> Option<OTelSdkResult> {
        let anchor = Anchor::now();
        // Left by an export that panicked: dropped, counted by it.
        self.batch.clear();
        if self.queue.take(count, &mut self.batch) == 0 {
            return None;
        }
        let count = self.batch.len() as u64;
        let mut body = self.bodies.try_recv().unwrap_or_default();
        let (exporter, batch, value_length) = (&self.exporter, &mut self.batch, self.value_length);
        let encoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            exporter.encode_items(batch, anchor, value_length, &mut body)
        }))
        .unwrap_or_else(|_| {
            Err(OTelSdkError::InternalFailure(
                "the exporter panicked".to_owned(),
            ))
        });
        let result = encoded.and_then(|()| {
            // Waits while every courier has a request on its way.
            self.hand_over(Delivery::Request(body, count))
        });
        if let Err(error) = &result {
            self.counters.failed(count, error, &self.endpoint);
        }
        Some(result)
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::sync::Arc;
    use std::time::{Duration, SystemTime};

    use opentelemetry::InstrumentationScope;
    use opentelemetry::trace::{
        SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks, SpanProcessor as _};

    use super::{BatchProcessor, Counters};

    fn sampled(id: u64) -> SpanData {
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(u128::from(id)),
                SpanId::from(id),
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed("work"),
            start_time: SystemTime::now(),
            end_time: SystemTime::now(),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: InstrumentationScope::builder("test").build(),
        }
    }

    /// Every span has one fate in the counts: those queued when the
    /// pipeline shuts down are sent (here, failing: nothing listens), and
    /// those that end after it are dropped, not left counted as queued.
    #[test]
    fn spans_ended_after_shutdown_are_counted_dropped_not_queued() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        drop(listener);
        let settings = crate::Config::default()
            .with_endpoint(&endpoint)
            .with_timeout(Duration::from_secs(2))
            .resolve()
            .unwrap();
        let counters = Arc::new(Counters::default());
        let resource = crate::pipeline::resource(&settings);
        let exporter =
            crate::otlp::OtlpExporter::new(&settings, counters.clone(), &resource).unwrap();
        let processor = BatchProcessor::start(
            exporter,
            &settings.batch,
            settings.timeout,
            None,
            counters.clone(),
            endpoint,
        )
        .unwrap();
        processor.on_end(sampled(1));
        processor.on_end(sampled(2));
        let queued = counters.stats();
        assert_eq!((queued.queued, queued.total()), (2, 2), "{queued}");
        processor
            .shutdown_with_timeout(Duration::from_secs(5))
            .unwrap_err();
        for id in 3..6 {
            processor.on_end(sampled(id));
        }
        let stats = counters.stats();
        assert_eq!(
            (stats.failed, stats.dropped, stats.queued, stats.total()),
            (2, 3, 0, 5),
            "{stats}"
        );
    }

    /// What a queued span takes of the queue, which `init` allocates whole:
    /// as the docs of `BatchSettings::max_queue_size` say.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_slot_of_the_queue_is_at_most_160_bytes() {
        let slot = std::mem::size_of::<crate::ring::Slot<super::Item>>();
        assert!(slot <= 160, "{slot} bytes");
    }
}
