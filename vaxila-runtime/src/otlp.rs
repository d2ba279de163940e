//! The OTLP/HTTP exporter: spans encoded as protobuf by hand, gzip, and the retries the OTLP specification asks for.
//!
//! `opentelemetry-otlp` turns every `SpanData` of a batch into the prost
//! structs of `opentelemetry-proto` (a new `String` for every name, key and
//! value, a `Vec` for every id, the resource's attributes copied per batch),
//! encodes those, and gzips into a new buffer. Here the spans are written
//! straight from `SpanData` into one buffer that lives as long as the
//! exporter, and the resource is encoded once, so the export thread spends
//! its time on the gzip it cannot avoid (encoding is 5.5× faster).
//!
//! Requests go out with `ureq`, a blocking client with no async runtime
//! inside, from the batch processor's own thread: nothing here cares whether
//! the application runs Tokio, which flavour, or none.
//!
//! What goes on the wire is what `opentelemetry-otlp` 0.33 sends, byte for
//! byte (the tests encode the same spans both ways), and failures are
//! retried as it retries them (see [`OtlpExporter::deliver`]).

use std::fmt;
use std::hash::Hasher as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use prost::Message as _;

use crate::batch::{Counters, Item};
use crate::clock::Anchor;
use crate::config::{Compression, Secret, Settings, TOKEN_HEADER};
use crate::error::Error;

/// The largest answer read; an OTLP response is a few bytes.
const MAX_RESPONSE: u64 = 1 << 20;

/// The largest request body sent, before and after gzip: what the OTLP/HTTP
/// specification recommends receivers accept, and what `opentelemetry-otlp`
/// enforces (`DEFAULT_MAX_REQUEST_BODY_SIZE`).
const MAX_REQUEST_BODY: usize = 64 * 1024 * 1024;

/// Buffers grown past this by an unusually large batch are given back after
/// it, so that one burst does not hold memory for the life of the process.
const KEEP_CAPACITY: usize = 4 * 1024 * 1024;

/// The retry policy of `opentelemetry-otlp` 0.33 (`RetryPolicy::recommended`,
/// the default, which the pipeline never changed): 3 retries after the first
/// attempt, backoff from 100 ms doubling up to 1.6 s, plus up to 100 ms of
/// jitter.
const MAX_RETRIES: u32 = 3;
const INITIAL_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_millis(1600);
const MAX_JITTER_MS: u64 = 100;
/// The longest a server's `Retry-After` may hold the export thread.
const MAX_THROTTLE: Duration = Duration::from_secs(30);

/// The OTLP/HTTP exporter of the pipeline.
///
/// `export` blocks the calling thread (the batch processor's own) for the
/// whole exchange, retries included, bounded by `settings.timeout`.
pub(crate) struct OtlpExporter {
    endpoint: http::Uri,
    /// `endpoint` without credentials or query, for `Debug`.
    shown_endpoint: String,
    /// Every request header: content type and encoding, `Accept`, the
    /// user's headers and the token (the last two marked sensitive).
    headers: http::HeaderMap,
    compression: Compression,
    timeout: Duration,
    agent: ureq::Agent,
    /// Where the answers' statuses and partial successes are noted.
    counters: Arc<Counters>,
    resource: wire::Resource,
    /// `export` is never called concurrently; the lock only makes the
    /// buffers reachable from `&self`.
    scratch: Mutex<Scratch>,
    shut_down: AtomicBool,
}

impl fmt::Debug for OtlpExporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OtlpExporter")
            .field("endpoint", &self.shown_endpoint)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("compression", &self.compression)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// What one export reuses from the last.
#[derive(Default)]
struct Scratch {
    body: Vec<u8>,
    gzip: Gzip,
    groups: wire::Groups,
    code: std::cell::RefCell<wire::CodeCache>,
}

/// Gives back what an unusually large batch made `buffer` hold.
pub(crate) fn trim(buffer: &mut Vec<u8>) {
    if buffer.capacity() > KEEP_CAPACITY {
        buffer.clear();
        buffer.shrink_to(KEEP_CAPACITY);
    }
}

impl OtlpExporter {
    /// The exporter `settings` describe, sending spans of `resource`.
    ///
    /// The HTTP client is a blocking `ureq` agent with rustls on `ring`,
    /// handed to it explicitly, so that neither the process-wide rustls
    /// default nor the TLS features of the application's own HTTP clients
    /// matter. Headers and compression are exactly as `Config::resolve`
    /// resolved them; nothing here reads the environment.
    pub(crate) fn new(
        settings: &Settings,
        counters: Arc<Counters>,
        resource: &Resource,
    ) -> Result<Self, Error> {
        let shown_endpoint = crate::config::shown_endpoint(&settings.endpoint);
        let endpoint: http::Uri = settings.endpoint.parse().map_err(|error| {
            // `Config::resolve` has checked the URL already; this is for
            // what it accepts and `http` does not.
            Error::Exporter(
                opentelemetry_otlp::ExporterBuildError::InvalidConfiguration(format!(
                    "endpoint `{shown_endpoint}` is not a valid URL: {error}"
                )),
            )
        })?;

        // Checked here, so that a TLS problem is an `init` error.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(Error::Tls)?;
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .unversioned_rustls_crypto_provider(provider)
            .build();
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(settings.timeout))
            // Statuses are ours to classify (retry or not).
            .http_status_as_error(false)
            .tls_config(tls)
            .user_agent(concat!("vaxila-rust/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();

        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-protobuf"),
        );
        headers.insert(http::header::ACCEPT, http::HeaderValue::from_static("*/*"));
        let user = settings
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value));
        let token = settings.token.iter().map(|token| (TOKEN_HEADER, token));
        for (name, value) in user.chain(token) {
            let (Ok(name), Ok(mut value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(Secret::expose(value)),
            ) else {
                // `Config::resolve` has checked every header already.
                continue;
            };
            value.set_sensitive(true);
            // Later ones win: the token over a user header of its name.
            headers.insert(name, value);
        }
        if matches!(settings.compression, Compression::Gzip) {
            headers.insert(
                http::header::CONTENT_ENCODING,
                http::HeaderValue::from_static("gzip"),
            );
        }

        Ok(Self {
            endpoint,
            shown_endpoint,
            headers,
            compression: settings.compression,
            timeout: settings.timeout,
            agent,
            counters,
            resource: wire::Resource::new(resource),
            scratch: Mutex::default(),
            shut_down: AtomicBool::new(false),
        })
    }

    /// Writes the request of the batch processor's `batch` into `out`:
    /// the protobuf, compressed as configured. Our records are encoded as
    /// they are, never made `SpanData`, and emptied for their threads' next
    /// spans once encoded; `anchor` is let go once the request is written.
    pub(crate) fn encode_items(
        &self,
        batch: &mut Vec<Item>,
        anchor: Anchor,
        value_length: Option<usize>,
        out: &mut Vec<u8>,
    ) -> OTelSdkResult {
        let result = self.encode(batch, Some(&anchor), wire::Cut(value_length), out);
        // Other threads' conversions (the console's, the testing kit's) wait for it.
        drop(anchor);
        for item in batch.drain(..) {
            if let Item::Record(mut live) = item {
                live.record.get_mut().clear();
                crate::record::recycle(live);
            }
        }
        result
    }

    /// Exports `spans`, as the SDK's exporters do.
    fn export_batch(&self, spans: &[SpanData]) -> OTelSdkResult {
        let mut out = Vec::new();
        self.encode(spans, None, wire::Cut(None), &mut out)?;
        self.deliver(&out)
    }

    /// Writes the request of `spans` into `out`: the protobuf, compressed
    /// as configured, each checked against the size a collector accepts.
    fn encode<T: wire::Encode>(
        &self,
        spans: &[T],
        anchor: Option<&Anchor>,
        cut: wire::Cut,
        out: &mut Vec<u8>,
    ) -> OTelSdkResult {
        if self.shut_down.load(Ordering::Relaxed) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        // A panic in an earlier export (caught by the batch processor) left
        // nothing in the buffers that the next export relies on.
        let mut scratch = self.scratch.lock().unwrap_or_else(PoisonError::into_inner);
        let Scratch {
            body,
            groups,
            code,
            gzip,
        } = &mut *scratch;
        let env = wire::Env { anchor, cut, code };
        let protobuf = match self.compression {
            Compression::Gzip => &mut *body,
            Compression::None => &mut *out,
        };
        wire::request(protobuf, spans, &self.resource, groups, &env);
        let result = check_size(protobuf.len(), "uncompressed").and_then(|()| {
            if let Compression::Gzip = self.compression {
                gzip.compress(body, out)?;
                check_size(out.len(), "gzipped")?;
            }
            Ok(())
        });
        trim(body);
        result
    }

    /// Sends `body`, retrying as `opentelemetry-otlp` 0.33 does
    /// (`retry_with_backoff` in its `src/retry.rs`, with the statuses of
    /// `classify_http_error` in `src/retry_classification.rs`):
    ///
    /// - 429 and 503 are retried, after the `Retry-After` the server asked
    ///   for (seconds or an HTTP date, at most 600 s, then at most 30 s)
    ///   when it gave one: that delay seeds the backoff, and lifts its cap
    ///   to 30 s when it is above 1.6 s;
    /// - 502, 504 and failures without an answer (refused, reset, timed
    ///   out) are retried with backoff: 100 ms doubling to at most 1.6 s,
    ///   plus 0 to 100 ms of jitter;
    /// - every other status fails at once; at most 3 retries;
    /// - no retry starts once the export timeout has passed, and none whose
    ///   wait would reach it.
    ///
    /// One thing is stricter: each attempt may take only what is left of the
    /// export timeout (opentelemetry-otlp let each take a whole one, so that an
    /// export could take almost twice as long as configured).
    pub(crate) fn deliver(&self, body: &[u8]) -> OTelSdkResult {
        let started = Instant::now();
        let mut retries = 0;
        let mut delay = INITIAL_DELAY;
        let mut cap = MAX_DELAY;
        loop {
            let left = self.timeout.saturating_sub(started.elapsed());
            let failure = match self.send(body, left) {
                Ok(()) => return Ok(()),
                Err(failure) => failure,
            };
            if started.elapsed() >= self.timeout {
                return Err(failure.into());
            }
            let wait = match failure.retry() {
                Retry::Never => return Err(failure.into()),
                _ if retries >= MAX_RETRIES => return Err(failure.into()),
                Retry::Backoff => delay.saturating_add(jitter()).min(cap),
                Retry::After(asked) => {
                    let asked = asked.min(MAX_THROTTLE);
                    if asked > cap {
                        cap = MAX_THROTTLE;
                    }
                    if !asked.is_zero() {
                        delay = delay.max(asked);
                    }
                    delay.saturating_add(jitter()).min(cap)
                }
            };
            retries += 1;
            if wait >= self.timeout.saturating_sub(started.elapsed()) {
                return Err(failure.into());
            }
            std::thread::sleep(wait);
            delay = delay.saturating_mul(2).min(cap);
        }
    }

    /// One attempt, of at most `timeout`.
    fn send(&self, body: &[u8], timeout: Duration) -> Result<(), Failure> {
        let mut request = http::Request::new(body);
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = self.endpoint.clone();
        *request.headers_mut() = self.headers.clone();
        let request = self
            .agent
            .configure_request(request)
            .timeout_global(Some(timeout))
            .build();
        let response = self.agent.run(request).map_err(Failure::network)?;
        let (parts, body) = response.into_parts();
        let body = body
            .into_with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()
            .map_err(Failure::network)?;
        let status = parts.status.as_u16();
        self.counters.note_status(status);
        if parts.status.is_success() {
            // A `partial_success` is a 200 that rejected part of the batch.
            if let Ok(ExportTraceServiceResponse {
                partial_success: Some(partial),
            }) = ExportTraceServiceResponse::decode(body.as_slice())
                && partial.rejected_spans > 0
            {
                self.counters.note_rejected(
                    u64::try_from(partial.rejected_spans).unwrap_or(0),
                    &partial.error_message,
                );
            }
            return Ok(());
        }
        let retry_after = parts
            .headers
            .get(http::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after);
        Err(Failure::Status {
            status,
            retry_after,
        })
    }
}

impl SpanExporter for OtlpExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.export_batch(&batch)
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        // Nothing is buffered between exports, so there is nothing to flush.
        self.shut_down.store(true, Ordering::Relaxed);
        Ok(())
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.resource = wire::Resource::new(resource);
    }
}

fn check_size(len: usize, what: &str) -> OTelSdkResult {
    if len <= MAX_REQUEST_BODY {
        return Ok(());
    }
    Err(OTelSdkError::InternalFailure(format!(
        "the {what} request body is {len} bytes, over the {MAX_REQUEST_BODY} an OTLP endpoint \
         accepts: nothing was sent; lower [batch] max_export_batch_size or the size of spans"
    )))
}

/// Why an attempt failed.
#[derive(Debug)]
enum Failure {
    /// An answer with a status other than 2xx.
    Status {
        status: u16,
        /// The server's `Retry-After`, if it sent one we could read.
        retry_after: Option<Duration>,
    },
    /// No answer: why, in words that hold no URL.
    Network(String),
}

enum Retry {
    Never,
    Backoff,
    After(Duration),
}

impl Failure {
    fn network(error: ureq::Error) -> Self {
        // Never `error.to_string()`: some variants quote the URL, and with
        // it the endpoint's query string.
        let why = match &error {
            ureq::Error::Timeout(_) => "no answer within the export timeout".to_owned(),
            ureq::Error::Io(error) => error.kind().to_string(),
            ureq::Error::HostNotFound => "host not found".to_owned(),
            ureq::Error::ConnectionFailed => "connection failed".to_owned(),
            ureq::Error::Tls(what) => format!("TLS: {what}"),
            ureq::Error::Rustls(error) => format!("TLS: {error}"),
            ureq::Error::BodyExceedsLimit(_) => "the answer was too large".to_owned(),
            ureq::Error::Protocol(_) => "the answer was not valid HTTP".to_owned(),
            ureq::Error::RedirectFailed | ureq::Error::TooManyRedirects => {
                "the endpoint redirected the request".to_owned()
            }
            _ => "the request could not be sent".to_owned(),
        };
        Self::Network(why)
    }

    /// `classify_http_error` of `opentelemetry-otlp` 0.33, where a failure
    /// without an answer is status 0.
    fn retry(&self) -> Retry {
        match self {
            Self::Status {
                status: 429 | 503,
                retry_after: Some(after),
            } => Retry::After(*after),
            Self::Status {
                status: 429 | 502 | 503 | 504,
                ..
            }
            | Self::Network(_) => Retry::Backoff,
            Self::Status { .. } => Retry::Never,
        }
    }
}

impl From<Failure> for OTelSdkError {
    fn from(failure: Failure) -> Self {
        // The texts of `opentelemetry-otlp`, and for the network what failed.
        Self::InternalFailure(match failure {
            Failure::Status { status, .. } => {
                format!("HTTP export failed with status code: {status}")
            }
            Failure::Network(why) => format!("HTTP export failed: network error ({why})"),
        })
    }
}

/// Up to [`MAX_JITTER_MS`], as `opentelemetry-otlp`'s `generate_jitter`
/// makes it: enough to spread exporters that failed together.
fn jitter() -> Duration {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    let mut hasher = std::hash::DefaultHasher::default();
    hasher.write_u32(nanos);
    Duration::from_millis(hasher.finish() % (MAX_JITTER_MS + 1))
}

/// A `Retry-After` value: delay seconds, or an HTTP date (IMF-fixdate,
/// RFC 850 or asctime), at most 600 s.
fn parse_retry_after(value: &str) -> Option<Duration> {
    const CAP: u64 = 600;
    if let Ok(seconds) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(seconds.min(CAP)));
    }
    let at = httpdate::parse_http_date(value.trim()).ok()?;
    let delay = at.duration_since(SystemTime::now()).unwrap_or_default();
    Some(Duration::from_secs(delay.as_secs().min(CAP)))
}

/// gzip at `Compression::fast()`, with the deflate state kept between
/// batches: a new state allocates and zeroes some 300 KB of tables, a reset
/// clears only the hash table.
#[derive(Default)]
struct Gzip {
    deflate: Option<flate2::Compress>,
}

/// `GzBuilder::new()`'s header: no name, no time, "fastest" (4) in the
/// extra flags, an unknown OS (255).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255];

impl Gzip {
    /// Writes the gzip stream of `input` into `out`, emptied first.
    fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), OTelSdkError> {
        let failed = |why: &dyn fmt::Display| {
            OTelSdkError::InternalFailure(format!("gzip of the request failed: {why}"))
        };
        let deflate = self
            .deflate
            .get_or_insert_with(|| flate2::Compress::new(flate2::Compression::fast(), false));
        deflate.reset();
        out.clear();
        out.reserve(input.len() / 3 + 1024);
        out.extend_from_slice(&GZIP_HEADER);
        loop {
            let read = usize::try_from(deflate.total_in()).unwrap_or(usize::MAX);
            let rest = input.get(read..).unwrap_or_default();
            match deflate.compress_vec(rest, out, flate2::FlushCompress::Finish) {
                Ok(flate2::Status::StreamEnd) => break,
                // Out of room: `compress_vec` writes only into spare capacity.
                Ok(flate2::Status::Ok | flate2::Status::BufError) => {
                    out.reserve(out.len().max(4096));
                }
                Err(why) => {
                    // The state may be half-way through a stream: start afresh next time.
                    self.deflate = None;
                    return Err(failed(&why));
                }
            }
        }
        out.extend_from_slice(&crc32fast::hash(input).to_le_bytes());
        // ISIZE: the input's length modulo 2^32.
        out.extend_from_slice(&(input.len() as u32).to_le_bytes());
        Ok(())
    }
}

/// Protobuf encoding of `ExportTraceServiceRequest`, written as prost writes
/// it: fields in tag order, proto3 defaults left out, lengths as the
/// shortest varint, so that the bytes are those of `opentelemetry-proto`'s
/// `group_spans_by_resource_and_scope` + `encode_to_vec`.
mod wire {

    use opentelemetry::trace::{
        Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceState,
    };
    use opentelemetry::{Array, InstrumentationScope, Key, KeyValue, Value};
    use opentelemetry_sdk::trace::SpanData;

    use std::cell::RefCell;
    use std::mem::MaybeUninit;

    use crate::batch::Item;
    use crate::clock::Anchor;
    use crate::record::View;

    const VARINT: u32 = 0;
    const FIXED64: u32 = 1;
    const LEN: u32 = 2;
    const FIXED32: u32 = 5;

    /// `opentelemetry.proto.trace.v1.SpanFlags`.
    const CONTEXT_HAS_IS_REMOTE: u32 = 0x100;
    const CONTEXT_IS_REMOTE: u32 = 0x200;

    /// A resource as the fields of `ResourceSpans` around its scopes.
    #[derive(Debug, Default)]
    pub(super) struct Resource {
        /// `resource` (field 1), always present.
        head: Vec<u8>,
        /// `schema_url` (field 3), if any.
        tail: Vec<u8>,
    }

    impl Resource {
        pub(super) fn new(resource: &opentelemetry_sdk::Resource) -> Self {
            let mut head = Vec::new();
            let open = open(&mut head, 1, 2);
            for (key, value) in resource.iter() {
                attribute(&mut head, 1, key, value, Cut(None));
            }
            close(&mut head, open);
            let mut tail = Vec::new();
            bytes(&mut tail, 3, resource.schema_url().unwrap_or_default());
            Self { head, tail }
        }
    }

    /// What a batch's encoding needs besides its spans.
    pub(super) struct Env<'a> {
        /// Turns the stamps of our records into wall-clock time; needed
        /// only for batches that hold some.
        pub(super) anchor: Option<&'a Anchor>,
        /// `[limits] attribute_value_length`.
        pub(super) cut: Cut,
        /// The bytes of the `code.*` attributes of the functions seen so far.
        pub(super) code: &'a RefCell<CodeCache>,
    }

    /// The encoded `code.*` attributes of span sites, which are the same
    /// for every span of a site: a direct-mapped table of a site's address
    /// (and how many of them the limit keeps) to its bytes.
    #[derive(Debug)]
    pub(super) struct CodeCache {
        slots: Vec<Slot>,
        bytes: Vec<u8>,
        /// The value length limit the bytes were cut to.
        cut: Option<usize>,
    }

    #[derive(Clone, Copy, Debug, Default)]
    struct Slot {
        /// The site's address with the count kept, 0 for none.
        key: usize,
        start: usize,
        end: usize,
    }

    const CODE_SLOTS: usize = 256;
    /// Bytes of sites kept before the table starts afresh.
    const CODE_BYTES: usize = 64 * 1024;

    impl Default for CodeCache {
        fn default() -> Self {
            Self {
                slots: vec![Slot::default(); CODE_SLOTS],
                bytes: Vec::new(),
                cut: None,
            }
        }
    }

    impl CodeCache {
        /// Appends the `code.*` attributes `view` keeps to `buf`.
        fn write(&mut self, buf: &mut Vec<u8>, view: &View<'_>, cut: Cut) {
            let Some(site) = view.site() else {
                return;
            };
            // Sites are static and aligned: the low bits hold the count.
            let key = site | view.code_kept();
            if self.cut != cut.0 || self.bytes.len() > CODE_BYTES {
                self.slots.fill(Slot::default());
                self.bytes.clear();
                self.cut = cut.0;
            }
            let index = crate::address::place_of(key, CODE_SLOTS);
            let slot = &mut self.slots[index];
            if slot.key != key {
                let start = self.bytes.len();
                for kv in view.code() {
                    key_value(&mut self.bytes, 9, &kv, cut);
                }
                *slot = Slot {
                    key,
                    start,
                    end: self.bytes.len(),
                };
            }
            buf.extend_from_slice(&self.bytes[slot.start..slot.end]);
        }
    }

    /// `[limits] attribute_value_length`, applied as the bytes are written:
    /// every string value of a span (its attributes, its events' and its
    /// links') cut to at most that many bytes, on a character boundary.
    #[derive(Clone, Copy, Debug, Default)]
    pub(super) struct Cut(pub(super) Option<usize>);

    impl Cut {
        pub(super) fn text(self, text: &str) -> &str {
            match self.0 {
                Some(limit) if text.len() > limit => {
                    // `str::floor_char_boundary`, which is newer than the MSRV.
                    let end = (0..=limit)
                        .rev()
                        .find(|&i| text.is_char_boundary(i))
                        .unwrap_or(0);
                    &text[..end]
                }
                _ => text,
            }
        }
    }

    /// A span as the encoder takes it: the SDK's `SpanData`, or a queued
    /// item of the batch processor (one of our records, or the SDK's).
    pub(super) trait Encode {
        fn scope(&self) -> &InstrumentationScope;
        fn encode(&self, buf: &mut Vec<u8>, env: &Env<'_>);
    }

    impl Encode for SpanData {
        fn scope(&self) -> &InstrumentationScope {
            &self.instrumentation_scope
        }

        fn encode(&self, buf: &mut Vec<u8>, env: &Env<'_>) {
            let fields = Fields {
                context: &self.span_context,
                parent_span_id: self.parent_span_id,
                parent_is_remote: self.parent_span_is_remote,
                name: &self.name,
                kind: &self.span_kind,
                start_time: nanos(self.start_time),
                end_time: nanos(self.end_time),
                dropped_attributes: self.dropped_attributes_count,
                events: &self.events.events,
                dropped_events: self.events.dropped_count,
                links: &self.links.links,
                dropped_links: self.links.dropped_count,
                status: &self.status,
            };
            span(buf, &fields, env.cut, |buf| {
                for kv in &self.attributes {
                    key_value(buf, 9, kv, env.cut);
                }
            });
        }
    }

    impl Encode for Item {
        fn scope(&self) -> &InstrumentationScope {
            match self {
                Item::Sdk(data) => data.scope(),
                Item::Record(_) | Item::Ended(_) => crate::record::scope(),
            }
        }

        fn encode(&self, buf: &mut Vec<u8>, env: &Env<'_>) {
            // The batch processor always passes one.
            let own;
            let anchor = match env.anchor {
                Some(anchor) => anchor,
                None => {
                    own = Anchor::now();
                    &own
                }
            };
            match self {
                Item::Sdk(data) => data.encode(buf, env),
                Item::Record(live) => {
                    // The export thread owns the box: nothing else borrows it.
                    if let Ok(record) = live.record.try_borrow() {
                        record_span(buf, env, &record.span_context, &record.view(anchor));
                    }
                }
                Item::Ended(ended) => {
                    record_span(buf, env, &ended.span_context(), &ended.view(anchor));
                }
            }
        }
    }

    /// One of our spans, read in place: the fields of
    /// `Record::take_span_data`'s `SpanData`.
    fn record_span(buf: &mut Vec<u8>, env: &Env<'_>, context: &SpanContext, view: &View<'_>) {
        let fields = Fields {
            context,
            parent_span_id: view.parent_span_id,
            parent_is_remote: view.parent_is_remote,
            name: view.name,
            kind: view.kind,
            start_time: view.start_time,
            end_time: view.end_time,
            dropped_attributes: view.dropped_attributes,
            events: view.events(),
            dropped_events: view.dropped_events(),
            links: &[],
            dropped_links: 0,
            status: view.status(),
        };
        span(buf, &fields, env.cut, |buf| {
            // Never borrowed elsewhere: the encoder runs on one thread.
            if let Ok(mut code) = env.code.try_borrow_mut() {
                code.write(buf, view, env.cut);
            }
            for kv in view.attributes() {
                key_value(buf, 9, kv, env.cut);
            }
        });
    }

    /// Which instrumentation scope each span of a batch is in.
    #[derive(Debug, Default)]
    pub(super) struct Groups {
        /// The index of the first span of each distinct scope, in order.
        first: Vec<usize>,
        /// For each span, its index in `first`.
        of_span: Vec<usize>,
    }

    impl Groups {
        /// Groups as `group_spans_by_resource_and_scope` does, by `==` of
        /// the scopes, in the order each first appears.
        fn assign<T: Encode>(&mut self, spans: &[T]) {
            self.first.clear();
            self.of_span.clear();
            let mut last = 0;
            for (index, span) in spans.iter().enumerate() {
                let scope = span.scope();
                let same = |first: &usize| {
                    spans
                        .get(*first)
                        .is_some_and(|first| same_scope(first.scope(), scope))
                };
                let group = if self.first.get(last).is_some_and(same) {
                    last
                } else if let Some(found) = self.first.iter().position(same) {
                    found
                } else {
                    self.first.push(index);
                    self.first.len() - 1
                };
                self.of_span.push(group);
                last = group;
            }
        }
    }

    /// `a == b`, without `==`'s two sorted copies of the attributes when
    /// they are equal in order (as clones of one scope are).
    fn same_scope(a: &InstrumentationScope, b: &InstrumentationScope) -> bool {
        if std::ptr::eq(a, b) {
            return true;
        }
        if a.name() != b.name() || a.version() != b.version() || a.schema_url() != b.schema_url() {
            return false;
        }
        a.attributes().eq(b.attributes()) || a == b
    }

    /// Writes the `ExportTraceServiceRequest` of `spans` into `buf`.
    pub(super) fn request<T: Encode>(
        buf: &mut Vec<u8>,
        spans: &[T],
        resource: &Resource,
        groups: &mut Groups,
        env: &Env<'_>,
    ) {
        buf.clear();
        groups.assign(spans);
        let resource_spans = open(buf, 1, 3);
        buf.extend_from_slice(&resource.head);
        for (group, first) in groups.first.iter().enumerate() {
            let Some(first) = spans.get(*first) else {
                continue;
            };
            let scope = first.scope();
            let scope_spans = open(buf, 2, 3);
            self::scope(buf, scope);
            if groups.first.len() == 1 {
                spans.iter().for_each(|s| s.encode(buf, env));
            } else {
                spans
                    .iter()
                    .zip(&groups.of_span)
                    .filter(|(_, of)| **of == group)
                    .for_each(|(s, _)| s.encode(buf, env));
            }
            bytes(buf, 3, scope.schema_url().unwrap_or_default());
            close(buf, scope_spans);
        }
        buf.extend_from_slice(&resource.tail);
        close(buf, resource_spans);
    }

    fn scope(buf: &mut Vec<u8>, scope: &InstrumentationScope) {
        let open = open(buf, 1, 1);
        bytes(buf, 1, scope.name());
        bytes(buf, 2, scope.version().unwrap_or_default());
        for kv in scope.attributes() {
            // Not a span's: `attribute_value_length` leaves it whole.
            key_value(buf, 3, kv, Cut(None));
        }
        close(buf, open);
    }

    /// The fields of a `Span` message but its attributes.
    struct Fields<'a> {
        context: &'a SpanContext,
        parent_span_id: SpanId,
        parent_is_remote: bool,
        name: &'a str,
        kind: &'a SpanKind,
        /// Unix nanoseconds.
        start_time: u64,
        end_time: u64,
        dropped_attributes: u32,
        events: &'a [Event],
        dropped_events: u32,
        links: &'a [Link],
        dropped_links: u32,
        status: &'a Status,
    }

    /// A `Span` message (`ScopeSpans.spans`, field 2), its attributes
    /// (field 9) written by `attributes`.
    fn span(buf: &mut Vec<u8>, span: &Fields<'_>, cut: Cut, attributes: impl FnOnce(&mut Vec<u8>)) {
        let open = open(buf, 2, 2);
        let context = span.context;
        ids(
            buf,
            &context.trace_id().to_bytes(),
            &context.span_id().to_bytes(),
        );
        trace_state(buf, 3, context.trace_state());
        let name = span.name.as_bytes();
        put(buf, 10 + bytes_len(name.len()) + 2 + 18, |out| {
            if span.parent_span_id != SpanId::INVALID {
                out.byte(0x22);
                out.byte(8);
                out.bytes(&span.parent_span_id.to_bytes());
            }
            out.len_field(5, name);
            out.byte(0x30);
            out.byte(kind(span.kind));
            out.fixed64(7, span.start_time);
            out.fixed64(8, span.end_time);
        });
        attributes(buf);
        uint32(buf, 10, span.dropped_attributes);
        for event in span.events {
            self::event(buf, event, cut);
        }
        uint32(buf, 12, span.dropped_events);
        for link in span.links {
            self::link(buf, link, cut);
        }
        let (code, message) = status_fields(span.status);
        put(buf, 6 + 6 + bytes_len(message.len()) + 2 + 6, |out| {
            out.uint32(14, span.dropped_links);
            // Always present, if empty.
            let len = bytes_len(message.len()) + if code == 0 { 0 } else { 2 };
            out.byte(tag(15, LEN));
            out.varint(len as u64);
            out.len_field(2, message.as_bytes());
            if code != 0 {
                out.byte(0x18);
                out.byte(code);
            }
            out.fixed32(16, flags(span.parent_is_remote, context.trace_flags()));
        });
        close(buf, open);
    }

    /// `trace_id` (1, 16 bytes even when invalid) and `span_id` (2, 8 bytes).
    fn ids(buf: &mut Vec<u8>, trace_id: &[u8; 16], span_id: &[u8; 8]) {
        put(buf, 28, |out| {
            out.byte(0x0a);
            out.byte(16);
            out.bytes(trace_id);
            out.byte(0x12);
            out.byte(8);
            out.bytes(span_id);
        });
    }

    fn event(buf: &mut Vec<u8>, event: &Event, cut: Cut) {
        let open = open(buf, 11, 1);
        fixed64(buf, 1, nanos(event.timestamp));
        bytes(buf, 2, &event.name);
        for kv in &event.attributes {
            key_value(buf, 3, kv, cut);
        }
        uint32(buf, 4, event.dropped_attributes_count);
        close(buf, open);
    }

    fn link(buf: &mut Vec<u8>, link: &Link, cut: Cut) {
        let open = open(buf, 13, 1);
        let context = &link.span_context;
        ids(
            buf,
            &context.trace_id().to_bytes(),
            &context.span_id().to_bytes(),
        );
        trace_state(buf, 3, context.trace_state());
        for kv in &link.attributes {
            key_value(buf, 4, kv, cut);
        }
        uint32(buf, 5, link.dropped_attributes_count);
        fixed32(buf, 6, flags(context.is_remote(), context.trace_flags()));
        close(buf, open);
    }

    /// `build_span_flags` of `opentelemetry-proto`: the W3C flags, and
    /// whether the parent (or the linked span) is remote, which is known.
    fn flags(remote: bool, trace_flags: TraceFlags) -> u32 {
        let remote = if remote { CONTEXT_IS_REMOTE } else { 0 };
        u32::from(trace_flags.to_u8()) | CONTEXT_HAS_IS_REMOTE | remote
    }

    fn kind(kind: &SpanKind) -> u8 {
        match kind {
            SpanKind::Internal => 1,
            SpanKind::Server => 2,
            SpanKind::Client => 3,
            SpanKind::Producer => 4,
            SpanKind::Consumer => 5,
        }
    }

    /// A `Status`'s code and message.
    fn status_fields(status: &Status) -> (u8, &str) {
        match status {
            Status::Unset => (0, ""),
            Status::Ok => (1, ""),
            Status::Error { description } => (2, &**description),
        }
    }

    fn trace_state(buf: &mut Vec<u8>, field: u32, state: &TraceState) {
        // `header` makes a new string, which most spans need not.
        if *state != TraceState::NONE {
            bytes(buf, field, &state.header());
        }
    }

    use crate::clock::nanos_since_epoch as nanos;

    fn key_value(buf: &mut Vec<u8>, field: u32, kv: &KeyValue, cut: Cut) {
        attribute(buf, field, &kv.key, &kv.value, cut);
    }

    /// A `KeyValue` message in `field`.
    fn attribute(buf: &mut Vec<u8>, field: u32, key: &Key, value: &Value, cut: Cut) {
        let key = key.as_str();
        let key_len = bytes_len(key.len());
        if let Some(scalar) = Scalar::of(value, cut) {
            // Sized up front: no length to patch, whatever the value's size.
            let value_len = scalar.len();
            let body = key_len + 1 + varint_len(value_len as u64) + value_len;
            put(buf, 1 + varint_len(body as u64) + body, |out| {
                out.byte(tag(field, LEN));
                out.varint(body as u64);
                if !key.is_empty() {
                    out.byte(tag(1, LEN));
                    out.varint(key.len() as u64);
                    out.bytes(key.as_bytes());
                }
                out.byte(tag(2, LEN));
                out.varint(value_len as u64);
                scalar.write(out);
            });
        } else {
            compound(buf, field, key, value, cut);
        }
    }

    /// A `KeyValue` message whose value is an array, or newer than this
    /// code: out of the scalars' way.
    #[inline(never)]
    fn compound(buf: &mut Vec<u8>, field: u32, key: &str, value: &Value, cut: Cut) {
        let kv = open(buf, field, 1);
        bytes(buf, 1, key);
        let any = open(buf, 2, 1);
        any_value(buf, value, cut);
        close(buf, any);
        close(buf, kv);
    }

    /// An `AnyValue` that holds a scalar, its text cut already.
    #[derive(Clone, Copy)]
    enum Scalar<'a> {
        Bool(bool),
        I64(i64),
        F64(f64),
        String(&'a str),
    }

    impl<'a> Scalar<'a> {
        #[inline(always)]
        fn of(value: &'a Value, cut: Cut) -> Option<Self> {
            Some(match value {
                Value::Bool(b) => Self::Bool(*b),
                Value::I64(i) => Self::I64(*i),
                Value::F64(f) => Self::F64(*f),
                Value::String(s) => Self::String(cut.text(s.as_str())),
                _ => return None,
            })
        }

        /// The encoded length of the `AnyValue`'s contents.
        #[inline(always)]
        fn len(self) -> usize {
            match self {
                Self::Bool(_) => 2,
                Self::I64(i) => 1 + varint_len(i as u64),
                Self::F64(_) => 9,
                Self::String(s) => 1 + varint_len(s.len() as u64) + s.len(),
            }
        }

        /// The contents of the `AnyValue`. A oneof field is written even
        /// when it holds its type's default.
        #[inline(always)]
        fn write(self, out: &mut Put<'_>) {
            match self {
                Self::Bool(b) => {
                    out.byte(0x10);
                    out.byte(u8::from(b));
                }
                Self::I64(i) => {
                    out.byte(0x18);
                    out.varint(i as u64);
                }
                Self::F64(f) => {
                    out.byte(0x21);
                    out.bytes(&f.to_le_bytes());
                }
                Self::String(s) => {
                    out.byte(0x0a);
                    out.varint(s.len() as u64);
                    out.bytes(s.as_bytes());
                }
            }
        }
    }

    fn any_value(buf: &mut Vec<u8>, value: &Value, cut: Cut) {
        match value {
            Value::Bool(_) | Value::I64(_) | Value::F64(_) | Value::String(_) => {
                if let Some(scalar) = Scalar::of(value, cut) {
                    put(buf, scalar.len(), |out| scalar.write(out));
                }
            }
            Value::Array(
                array @ (Array::Bool(_) | Array::I64(_) | Array::F64(_) | Array::String(_)),
            ) => {
                let open = open(buf, 5, 1);
                array_values(buf, array, cut);
                close(buf, open);
            }
            // A kind of value newer than this code (`Value` and `Array` are
            // non-exhaustive), where `opentelemetry-proto` would panic: its
            // text is the next best thing.
            other => always_bytes(buf, 1, &other.as_str()),
        }
    }

    /// The `values` of an `ArrayValue`, each an `AnyValue`.
    fn array_values(buf: &mut Vec<u8>, array: &Array, cut: Cut) {
        match array {
            Array::Bool(values) => {
                for b in values {
                    buf.extend_from_slice(&[0x0a, 2, 0x10, u8::from(*b)]);
                }
            }
            Array::I64(values) => {
                for i in values {
                    let value = *i as u64;
                    buf.extend_from_slice(&[0x0a, 1 + varint_len(value) as u8, 0x18]);
                    varint(buf, value);
                }
            }
            Array::F64(values) => {
                for f in values {
                    buf.extend_from_slice(&[0x0a, 9, 0x21]);
                    buf.extend_from_slice(&f.to_le_bytes());
                }
            }
            Array::String(values) => {
                for s in values {
                    let s = cut.text(s.as_str());
                    buf.push(0x0a);
                    varint(buf, (1 + varint_len(s.len() as u64) + s.len()) as u64);
                    always_bytes(buf, 1, s);
                }
            }
            _ => {}
        }
    }

    /// Appends at most `max` bytes to `buf`, written by `write` into room
    /// reserved once: the hot fields' bytes, without `Vec::push`'s check
    /// of the capacity (and store of the length) for every byte.
    #[inline(always)]
    fn put(buf: &mut Vec<u8>, max: usize, write: impl FnOnce(&mut Put<'_>)) {
        buf.reserve(max);
        let mut out = Put {
            room: &mut buf.spare_capacity_mut()[..max],
            len: 0,
        };
        write(&mut out);
        let written = out.len;
        // SAFETY: `Put` advances `len` only past bytes it has written, and
        // within `room`, which is `buf`'s spare capacity.
        unsafe { buf.set_len(buf.len() + written) };
    }

    /// The room [`put`] reserved, and how much of it is written. A write
    /// past the room panics (as a mistake in a length would be), never
    /// writes out of bounds.
    struct Put<'a> {
        room: &'a mut [MaybeUninit<u8>],
        len: usize,
    }

    impl Put<'_> {
        #[inline(always)]
        fn byte(&mut self, byte: u8) {
            self.room[self.len].write(byte);
            self.len += 1;
        }

        #[inline(always)]
        fn bytes(&mut self, bytes: &[u8]) {
            let to = &mut self.room[self.len..self.len + bytes.len()];
            // SAFETY: `to` is `bytes.len()` bytes of `room`, checked by the
            // indexing above, and cannot overlap `bytes`, which is borrowed
            // from elsewhere while `room` is borrowed mutably.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), to.as_mut_ptr().cast(), bytes.len());
            }
            self.len += bytes.len();
        }

        #[inline(always)]
        fn varint(&mut self, mut value: u64) {
            while value >= 0x80 {
                self.byte((value as u8) | 0x80);
                value >>= 7;
            }
            self.byte(value as u8);
        }

        /// A fixed64 field (up to 15), left out when 0.
        #[inline(always)]
        fn fixed64(&mut self, field: u32, value: u64) {
            if value != 0 {
                self.byte(tag(field, FIXED64));
                self.bytes(&value.to_le_bytes());
            }
        }

        /// A fixed32 field (its tag a varint: `Span.flags` is field 16),
        /// left out when 0.
        #[inline(always)]
        fn fixed32(&mut self, field: u32, value: u32) {
            if value != 0 {
                self.varint(u64::from((field << 3) | FIXED32));
                self.bytes(&value.to_le_bytes());
            }
        }

        /// A uint32 field (up to 15), left out when 0.
        #[inline(always)]
        fn uint32(&mut self, field: u32, value: u32) {
            if value != 0 {
                self.byte(tag(field, VARINT));
                self.varint(u64::from(value));
            }
        }

        /// A string or bytes field (up to 15), left out when empty; at
        /// most [`bytes_len`] bytes.
        #[inline(always)]
        fn len_field(&mut self, field: u32, value: &[u8]) {
            if !value.is_empty() {
                self.byte(tag(field, LEN));
                self.varint(value.len() as u64);
                self.bytes(value);
            }
        }
    }

    /// A length-delimited field whose length is written by [`close`].
    #[must_use]
    struct Open {
        /// Where the length goes.
        at: usize,
        /// The bytes kept for it: the guess of its varint's size.
        width: usize,
    }

    /// Starts field `field`, keeping `width` bytes for its length.
    fn open(buf: &mut Vec<u8>, field: u32, width: usize) -> Open {
        buf.push(tag(field, LEN));
        let at = buf.len();
        buf.resize(at + width, 0);
        Open { at, width }
    }

    /// Writes the length of the field `open` started, moving its contents
    /// when the guess of the length's size was wrong (which prost's
    /// shortest varint makes the only way to the same bytes).
    fn close(buf: &mut Vec<u8>, open: Open) {
        let Open { at, width } = open;
        let body = at + width;
        let len = buf.len() - body;
        let need = varint_len(len as u64);
        if need > width {
            let end = buf.len();
            buf.resize(end + need - width, 0);
            buf.copy_within(body..end, at + need);
        } else if need < width {
            buf.copy_within(body.., at + need);
            buf.truncate(buf.len() - (width - need));
        }
        let mut value = len as u64;
        let last = need - 1;
        for (index, slot) in buf[at..at + need].iter_mut().enumerate() {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            *slot = if index < last { byte | 0x80 } else { byte };
        }
    }

    /// The key of `field`, for fields up to 15 (one byte); 16 goes through
    /// `varint`.
    const fn tag(field: u32, wire: u32) -> u8 {
        ((field << 3) | wire) as u8
    }

    // The fields of colder paths, each through `put` as the hot ones are.

    fn fixed64(buf: &mut Vec<u8>, field: u32, value: u64) {
        put(buf, 9, |out| out.fixed64(field, value));
    }

    fn fixed32(buf: &mut Vec<u8>, field: u32, value: u32) {
        put(buf, 9, |out| out.fixed32(field, value));
    }

    fn uint32(buf: &mut Vec<u8>, field: u32, value: u32) {
        put(buf, 6, |out| out.uint32(field, value));
    }

    /// A string or bytes field, left out when empty (the proto3 default).
    fn bytes(buf: &mut Vec<u8>, field: u32, value: &str) {
        put(buf, bytes_len(value.len()), |out| {
            out.len_field(field, value.as_bytes());
        });
    }

    fn always_bytes(buf: &mut Vec<u8>, field: u32, value: &str) {
        let len = value.len();
        put(buf, 1 + varint_len(len as u64) + len, |out| {
            out.byte(tag(field, LEN));
            out.varint(value.len() as u64);
            out.bytes(value.as_bytes());
        });
    }

    /// The encoded size of `bytes(field, value)`, `field` up to 15, for a
    /// value of `len` bytes.
    fn bytes_len(len: usize) -> usize {
        if len == 0 {
            0
        } else {
            1 + varint_len(len as u64) + len
        }
    }

    fn varint(buf: &mut Vec<u8>, value: u64) {
        put(buf, 10, |out| out.varint(value));
    }

    /// prost's `encoded_len_varint`.
    const fn varint_len(value: u64) -> usize {
        (((value | 1).leading_zeros() ^ 63) * 9 + 73) as usize / 64
    }

    #[cfg(test)]
    mod tests {
        use std::panic::{AssertUnwindSafe, catch_unwind};

        use super::put;

        #[test]
        fn put_appends_what_it_writes_and_never_writes_past_its_room() {
            let mut buf = Vec::with_capacity(64);
            buf.push(7);
            put(&mut buf, 8, |out| {
                out.varint(300);
                out.bytes(b"ab");
                out.fixed64(1, 0);
                out.uint32(2, 1);
            });
            assert_eq!(buf, [7, 0xac, 0x02, b'a', b'b', 0x10, 1]);
            // More than the room, though the vector has capacity to spare:
            // a panic (a mistake in a length), and nothing appended.
            let overrun = catch_unwind(AssertUnwindSafe(|| {
                put(&mut buf, 2, |out| out.bytes(b"xyz"));
            }));
            assert!(overrun.is_err());
            assert_eq!(buf.len(), 7);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::io::{Read as _, Write as _};
    use std::sync::atomic::AtomicUsize;
    use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

    use opentelemetry::trace::{
        Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
    };
    use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::Resource;
    use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
    use prost::Message as _;
    use vaxila_test_support::{Receiver, Reply};

    use super::*;

    // --- the encoding, against opentelemetry-proto + prost ---

    /// What opentelemetry-otlp 0.33 sends for `spans`.
    fn reference(spans: &[SpanData], resource: &Resource) -> Vec<u8> {
        let resource = ResourceAttributesWithSchema::from(resource);
        ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(spans.to_vec(), &resource),
        }
        .encode_to_vec()
    }

    fn ours(spans: &[SpanData], resource: &Resource) -> Vec<u8> {
        let mut buf = vec![0xff; 3]; // left over from an earlier batch
        request(
            &mut buf,
            spans,
            &wire::Resource::new(resource),
            &mut wire::Groups::default(),
            None,
        );
        buf
    }

    /// `wire::request` of SDK spans.
    fn request<T: wire::Encode>(
        buf: &mut Vec<u8>,
        spans: &[T],
        resource: &wire::Resource,
        groups: &mut wire::Groups,
        cut: Option<usize>,
    ) {
        let env = wire::Env {
            anchor: None,
            cut: wire::Cut(cut),
            code: &std::cell::RefCell::default(),
        };
        wire::request(buf, spans, resource, groups, &env);
    }

    #[track_caller]
    fn assert_encodes_as_opentelemetry_proto(spans: &[SpanData], resource: &Resource) {
        let expected = reference(spans, resource);
        let actual = ours(spans, resource);
        let decoded = ExportTraceServiceRequest::decode(actual.as_slice())
            .expect("our bytes decode as an ExportTraceServiceRequest");
        assert_eq!(
            decoded,
            ExportTraceServiceRequest::decode(expected.as_slice()).unwrap()
        );
        assert!(
            actual == expected,
            "same message, different bytes:\n ours {actual:02x?}\n prost {expected:02x?}"
        );
    }

    fn scope(name: &'static str) -> InstrumentationScope {
        InstrumentationScope::builder(name).build()
    }

    fn context(trace: u128, span: u64, flags: TraceFlags, remote: bool) -> SpanContext {
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            flags,
            remote,
            TraceState::NONE,
        )
    }

    fn at(nanos: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(nanos)
    }

    fn span(name: &'static str, scope: &InstrumentationScope) -> SpanData {
        SpanData {
            span_context: context(
                0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c,
                0xb7ad_6b71_6920_3331,
                TraceFlags::SAMPLED,
                false,
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Borrowed(name),
            start_time: at(1_700_000_000_123_456_789),
            end_time: at(1_700_000_000_223_456_789),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: scope.clone(),
        }
    }

    fn events(events: Vec<Event>, dropped: u32) -> SpanEvents {
        let mut out = SpanEvents::default();
        out.events = events;
        out.dropped_count = dropped;
        out
    }

    fn links(links: Vec<Link>, dropped: u32) -> SpanLinks {
        let mut out = SpanLinks::default();
        out.links = links;
        out.dropped_count = dropped;
        out
    }

    /// One attribute of every kind of value, defaults and extremes included.
    fn every_value() -> Vec<KeyValue> {
        let strings = |v: &[&'static str]| v.iter().map(|s| StringValue::from(*s)).collect();
        vec![
            KeyValue::new("bool.true", true),
            KeyValue::new("bool.false", false),
            KeyValue::new("int.zero", 0_i64),
            KeyValue::new("int.small", 42_i64),
            KeyValue::new("int.negative", -1_i64),
            KeyValue::new("int.min", i64::MIN),
            KeyValue::new("int.max", i64::MAX),
            KeyValue::new("double.zero", 0.0),
            KeyValue::new("double.negative_zero", -0.0),
            KeyValue::new("double", -12.5),
            KeyValue::new("double.infinite", f64::INFINITY),
            KeyValue::new("string.empty", ""),
            KeyValue::new("string", "checkout"),
            KeyValue::new("string.long", "x".repeat(300)),
            KeyValue::new("string.owned", String::from("owned")),
            KeyValue::new("", "an empty key"),
            KeyValue::new("array.bool", Value::Array(Array::Bool(vec![true, false]))),
            KeyValue::new(
                "array.int",
                Value::Array(Array::I64(vec![0, -5, i64::MAX, 300])),
            ),
            KeyValue::new(
                "array.double",
                Value::Array(Array::F64(vec![0.0, 1.5, -2.25])),
            ),
            KeyValue::new(
                "array.string",
                Value::Array(Array::String(strings(&["a", "", "ccc"]))),
            ),
            KeyValue::new("array.empty", Value::Array(Array::String(Vec::new()))),
            KeyValue::new("array.long", Value::Array(Array::I64((0..100).collect()))),
            KeyValue::new(
                "array.long_strings",
                Value::Array(Array::String(vec![StringValue::from("y".repeat(200)); 3])),
            ),
        ]
    }

    /// Spans that between them set every field of the OTLP span.
    fn varied_spans() -> Vec<SpanData> {
        let lib = InstrumentationScope::builder("lib")
            .with_version("1.2.3")
            .with_schema_url("https://opentelemetry.io/schemas/1.26.0")
            .with_attributes([KeyValue::new("scope.attr", 7_i64)])
            .build();
        let vaxila = scope("vaxila");
        let mut spans = Vec::new();

        let mut root = span("root", &vaxila);
        root.span_kind = SpanKind::Server;
        root.attributes = every_value();
        root.dropped_attributes_count = 3;
        root.status = Status::Ok;
        spans.push(root);

        let mut child = span("child", &vaxila);
        child.parent_span_id = SpanId::from(0x1111);
        child.span_kind = SpanKind::Client;
        child.status = Status::error("the database said no");
        child.events = events(
            vec![
                Event::new(
                    "exception",
                    at(1_700_000_000_200_000_000),
                    vec![
                        KeyValue::new("exception.type", "io::Error"),
                        KeyValue::new("exception.message", "refused"),
                    ],
                    2,
                ),
                Event::new("", UNIX_EPOCH, Vec::new(), 0),
                Event::new("many", at(5), every_value(), 0),
            ],
            9,
        );
        spans.push(child);

        let mut remote = span("remote parent", &lib);
        remote.span_context = SpanContext::new(
            TraceId::from(1),
            SpanId::from(2),
            TraceFlags::default(),
            false,
            "vendor=abc,other=x".parse().unwrap(),
        );
        remote.parent_span_id = SpanId::from(0xdead_beef);
        remote.parent_span_is_remote = true;
        remote.span_kind = SpanKind::Producer;
        remote.status = Status::error("");
        remote.links = links(
            vec![
                Link::new(
                    context(7, 8, TraceFlags::SAMPLED, true),
                    vec![KeyValue::new("link", 1_i64)],
                    4,
                ),
                Link::new(
                    SpanContext::new(
                        TraceId::from(9),
                        SpanId::from(10),
                        TraceFlags::default(),
                        false,
                        "k=v".parse().unwrap(),
                    ),
                    Vec::new(),
                    0,
                ),
            ],
            5,
        );
        spans.push(remote);

        let mut odd = span("", &vaxila);
        odd.span_context = context(0, 0, TraceFlags::default(), false);
        odd.span_kind = SpanKind::Consumer;
        odd.start_time = UNIX_EPOCH;
        odd.end_time = UNIX_EPOCH - Duration::from_secs(1);
        spans.push(odd);

        // Past 2554, u64 nanoseconds wrap in opentelemetry-proto too.
        let mut far = span("far future", &lib);
        far.end_time = UNIX_EPOCH + Duration::from_secs(20_000_000_000);
        spans.push(far);

        spans.push(span("back in the first scope", &vaxila));
        spans
    }

    fn resource() -> Resource {
        Resource::builder_empty()
            .with_attributes([
                KeyValue::new("service.name", "checkout"),
                KeyValue::new("service.version", "1.4.2"),
                KeyValue::new("process.pid", 4242_i64),
                KeyValue::new("host.name", "web-1"),
            ])
            .build()
    }

    #[test]
    fn every_field_of_a_span_encodes_as_opentelemetry_proto_encodes_it() {
        assert_encodes_as_opentelemetry_proto(&varied_spans(), &resource());
    }

    #[test]
    fn a_resource_schema_url_and_an_empty_resource_encode_as_opentelemetry_proto() {
        let with_schema = Resource::builder_empty()
            .with_schema_url(
                [KeyValue::new("service.name", "x")],
                "https://opentelemetry.io/schemas/1.26.0",
            )
            .build();
        assert_encodes_as_opentelemetry_proto(&varied_spans(), &with_schema);
        assert_encodes_as_opentelemetry_proto(&varied_spans(), &Resource::builder_empty().build());
    }

    #[test]
    fn an_empty_batch_is_one_resource_without_scopes() {
        assert_encodes_as_opentelemetry_proto(&[], &resource());
    }

    #[test]
    fn spans_group_by_scope_in_order_of_first_appearance() {
        let a = scope("a");
        let b = InstrumentationScope::builder("b").with_version("1").build();
        let b_other_version = InstrumentationScope::builder("b").with_version("2").build();
        let c = InstrumentationScope::builder("c")
            .with_attributes([KeyValue::new("x", 1_i64), KeyValue::new("y", 2_i64)])
            .build();
        // Equal to `c`: scopes compare their attributes in any order.
        let c_reordered = InstrumentationScope::builder("c")
            .with_attributes([KeyValue::new("y", 2_i64), KeyValue::new("x", 1_i64)])
            .build();
        let spans: Vec<SpanData> = [&a, &b, &c, &a, &b_other_version, &c_reordered, &b, &a]
            .iter()
            .enumerate()
            .map(|(i, scope)| {
                let mut s = span("s", scope);
                s.attributes.push(KeyValue::new("i", i as i64));
                s
            })
            .collect();
        assert_encodes_as_opentelemetry_proto(&spans, &resource());
        let decoded =
            ExportTraceServiceRequest::decode(ours(&spans, &resource()).as_slice()).unwrap();
        let scopes: Vec<_> = decoded.resource_spans[0]
            .scope_spans
            .iter()
            .map(|ss| (ss.scope.as_ref().unwrap().name.clone(), ss.spans.len()))
            .collect();
        let names = |v: &[(&str, usize)]| {
            v.iter()
                .map(|(n, c)| ((*n).to_owned(), *c))
                .collect::<Vec<_>>()
        };
        assert_eq!(scopes, names(&[("a", 3), ("b", 2), ("c", 2), ("b", 1)]));
    }

    #[test]
    fn lengths_at_every_varint_size_boundary_are_the_shortest() {
        let vaxila = scope("vaxila");
        // Spans of lengths around 127/128 and 16383/16384 bytes, and a
        // batch over 2 MiB, whose length needs a fourth byte.
        let mut spans = Vec::new();
        for name_len in [
            0, 1, 60, 70, 80, 90, 100, 110, 16_300, 16_320, 16_340, 16_360,
        ] {
            let mut s = span("", &vaxila);
            s.name = Cow::Owned("n".repeat(name_len));
            spans.push(s);
        }
        for value_len in [100, 127, 128, 16_383, 16_384] {
            let mut s = span("attribute sizes", &vaxila);
            s.attributes.push(KeyValue::new("v", "v".repeat(value_len)));
            s.attributes.push(KeyValue::new(
                "a",
                Value::Array(Array::String(vec![StringValue::from(
                    "w".repeat(value_len),
                )])),
            ));
            spans.push(s);
        }
        let mut huge = span("huge", &vaxila);
        huge.attributes
            .push(KeyValue::new("blob", "z".repeat(2_200_000)));
        spans.push(huge);
        assert_encodes_as_opentelemetry_proto(&spans, &resource());
    }

    /// A small xorshift generator: varied input without a dependency, the same every run.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn text(&mut self) -> String {
            let len = match self.below(10) {
                0 => 0,
                1 => 100 + self.below(200) as usize,
                _ => self.below(20) as usize,
            };
            (0..len)
                .map(|_| char::from(b'a' + self.below(26) as u8))
                .collect()
        }

        fn value(&mut self) -> Value {
            match self.below(9) {
                0 => Value::Bool(self.below(2) == 1),
                1 => Value::I64(self.next() as i64),
                2 => Value::I64(self.below(300) as i64 - 150),
                3 => Value::F64((self.next() >> 11) as f64 / 7.0 - 1e9),
                4 => Value::Array(Array::Bool(
                    (0..self.below(4)).map(|_| self.below(2) == 0).collect(),
                )),
                5 => Value::Array(Array::I64(
                    (0..self.below(4)).map(|_| self.next() as i64).collect(),
                )),
                6 => Value::Array(Array::F64(
                    (0..self.below(4))
                        .map(|_| self.below(1000) as f64 / 8.0)
                        .collect(),
                )),
                7 => Value::Array(Array::String(
                    (0..self.below(4)).map(|_| self.text().into()).collect(),
                )),
                _ => Value::String(self.text().into()),
            }
        }

        fn attributes(&mut self) -> Vec<KeyValue> {
            (0..self.below(8))
                .map(|_| KeyValue::new(self.text(), self.value()))
                .collect()
        }

        fn time(&mut self) -> SystemTime {
            match self.below(10) {
                0 => UNIX_EPOCH,
                1 => UNIX_EPOCH - Duration::from_secs(5),
                _ => UNIX_EPOCH + Duration::from_nanos(self.next() >> 3),
            }
        }

        fn context(&mut self) -> SpanContext {
            let state = if self.below(4) == 0 {
                format!("k{}=v{}", self.below(9), self.below(9))
                    .parse()
                    .unwrap()
            } else {
                TraceState::NONE
            };
            SpanContext::new(
                TraceId::from(u128::from(self.next()) << 64 | u128::from(self.next())),
                SpanId::from(self.next()),
                TraceFlags::new(self.below(256) as u8),
                self.below(2) == 0,
                state,
            )
        }

        fn span(&mut self, scopes: &[InstrumentationScope]) -> SpanData {
            let kinds = [
                SpanKind::Internal,
                SpanKind::Server,
                SpanKind::Client,
                SpanKind::Producer,
                SpanKind::Consumer,
            ];
            let statuses = [
                Status::Unset,
                Status::Ok,
                Status::error(""),
                Status::error(self.text()),
            ];
            SpanData {
                span_context: self.context(),
                parent_span_id: if self.below(3) == 0 {
                    SpanId::INVALID
                } else {
                    SpanId::from(self.next())
                },
                parent_span_is_remote: self.below(2) == 0,
                span_kind: kinds[self.below(5) as usize].clone(),
                name: self.text().into(),
                start_time: self.time(),
                end_time: self.time(),
                attributes: self.attributes(),
                dropped_attributes_count: self.below(3) as u32 * 1000,
                events: events(
                    (0..self.below(3))
                        .map(|_| {
                            Event::new(
                                self.text(),
                                self.time(),
                                self.attributes(),
                                self.below(2) as u32,
                            )
                        })
                        .collect(),
                    self.below(2) as u32,
                ),
                links: links(
                    (0..self.below(3))
                        .map(|_| Link::new(self.context(), self.attributes(), self.below(2) as u32))
                        .collect(),
                    self.below(2) as u32 * 200,
                ),
                status: statuses[self.below(4) as usize].clone(),
                instrumentation_scope: scopes[self.below(scopes.len() as u64) as usize].clone(),
            }
        }
    }

    #[test]
    fn random_batches_encode_as_opentelemetry_proto_encodes_them() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let scopes = [
            scope("vaxila"),
            InstrumentationScope::builder("tracing")
                .with_version("0.1")
                .build(),
            InstrumentationScope::builder("with.attrs")
                .with_schema_url("https://example.com/s")
                .with_attributes([KeyValue::new("a", "b")])
                .build(),
        ];
        let resource = resource();
        // One encoder state through every batch, as on the export thread.
        let encoded = wire::Resource::new(&resource);
        let (mut buf, mut groups) = (Vec::new(), wire::Groups::default());
        for round in 0..300 {
            let spans: Vec<SpanData> = (0..rng.below(30)).map(|_| rng.span(&scopes)).collect();
            request(&mut buf, &spans, &encoded, &mut groups, None);
            assert!(
                buf == reference(&spans, &resource),
                "round {round}: {spans:#?}"
            );
        }
    }

    /// `[limits] attribute_value_length` done the plain way, on the
    /// `SpanData`: what the encoder's `Cut` must write the bytes of.
    fn cut_span_data(span: &mut SpanData, limit: usize) {
        fn cut(s: &mut StringValue, limit: usize) {
            let text = s.as_str();
            if text.len() > limit {
                let end = (0..=limit).rev().find(|&i| text.is_char_boundary(i));
                *s = StringValue::from(text[..end.unwrap_or(0)].to_owned());
            }
        }
        let events = span
            .events
            .events
            .iter_mut()
            .flat_map(|e| &mut e.attributes);
        let links = span.links.links.iter_mut().flat_map(|l| &mut l.attributes);
        for kv in span.attributes.iter_mut().chain(events).chain(links) {
            match &mut kv.value {
                Value::String(s) => cut(s, limit),
                Value::Array(Array::String(items)) => items.iter_mut().for_each(|s| cut(s, limit)),
                _ => {}
            }
        }
    }

    #[test]
    fn cut_keeps_whole_characters_and_short_strings() {
        let cut = wire::Cut(Some(5));
        assert_eq!(cut.text("aé€😀"), "aé"); // 1 + 2 + 3 + 4 bytes; 5 falls inside '€'
        assert_eq!(cut.text("short"), "short");
        assert_eq!(wire::Cut(Some(0)).text("abc"), "");
        assert_eq!(wire::Cut(None).text("abcdef"), "abcdef");
    }

    /// Our records are encoded in place, never made `SpanData`: the bytes
    /// must be those `opentelemetry-proto` makes of the `SpanData` the SDK's
    /// span would have become, value length limit and attribute, event and
    /// `code.*` limits included, mixed with SDK spans of other scopes.
    #[test]
    fn records_encode_as_opentelemetry_proto_encodes_their_span_data() {
        use crate::__private::Meta;
        use crate::record::{Code, Limits, Live, Name};
        use opentelemetry_sdk::trace::SpanLimits;

        static META: Meta = Meta::new("handle", SpanKind::Server, "app::handle", "src/app.rs", 42);
        let caller = std::panic::Location::caller();
        let mut rng = Rng(0x0123_4567_89ab_cdef);
        let scopes = [
            scope("tracing-opentelemetry"),
            crate::record::scope().clone(),
        ];
        let resource = resource();
        let encoded = wire::Resource::new(&resource);
        let (mut buf, mut groups) = (Vec::new(), wire::Groups::default());
        let code = std::cell::RefCell::new(wire::CodeCache::default());
        let kinds = [SpanKind::Internal, SpanKind::Server, SpanKind::Client];
        let statuses = [Status::Unset, Status::Ok, Status::error("boom")];
        let mut by_value = 0;
        for round in 0..300 {
            let cut = [None, Some(0), Some(3), Some(40)][rng.below(4) as usize];
            let mut items = Vec::new();
            for _ in 0..rng.below(20) {
                if rng.below(4) == 0 {
                    items.push(Item::Sdk(Box::new(rng.span(&scopes))));
                    continue;
                }
                let limits = Limits::from(&SpanLimits {
                    max_attributes_per_span: rng.below(9) as u32,
                    max_events_per_span: rng.below(4) as u32,
                    max_attributes_per_event: rng.below(4) as u32,
                    ..SpanLimits::default()
                });
                let code = match rng.below(3) {
                    0 => Code::None,
                    1 => Code::Function(&META),
                    _ => Code::Caller(caller),
                };
                let parent = if rng.below(2) == 0 {
                    SpanContext::empty_context()
                } else {
                    rng.context()
                };
                // One record in two of the kind that is queued as an `Ended`.
                let common = rng.below(2) == 0;
                let name = match rng.below(3) {
                    _ if common => Name::Static("common"),
                    0 => Name::Static("static"),
                    1 => Name::Shared(rng.text().into()),
                    _ => Name::Owned(rng.text()),
                };
                let kind = kinds[rng.below(3) as usize].clone();
                let mut context = rng.context();
                if common {
                    context = SpanContext::new(
                        context.trace_id(),
                        context.span_id(),
                        context.trace_flags(),
                        context.is_remote(),
                        TraceState::NONE,
                    );
                }
                let mut live = Live::start(
                    1,
                    opentelemetry::Context::new(),
                    context,
                    &parent,
                    name,
                    kind,
                    code,
                    limits,
                );
                let record = live.record.get_mut();
                let mut attributes = rng.attributes();
                if common {
                    attributes.truncate(1);
                }
                attributes
                    .into_iter()
                    .for_each(|kv| record.set_attribute(kv));
                for _ in 0..if common { 0 } else { rng.below(4) } {
                    record.add_event(rng.text().into(), rng.attributes());
                }
                record.set_status(statuses[rng.below(if common { 2 } else { 3 }) as usize].clone());
                record.end = crate::clock::Stamp::now();
                items.push(Item::Record(live));
            }
            let anchor = Anchor::now();
            let mut expected: Vec<SpanData> = items
                .iter()
                .map(|item| match item {
                    Item::Sdk(data) => (**data).clone(),
                    Item::Record(live) => live.record.borrow().to_span_data(&anchor),
                    Item::Ended(_) => unreachable!("made below"),
                })
                .collect();
            // As the batch processor queues them: by value when they can be.
            for item in &mut items {
                if let Item::Record(live) = item
                    && let Some(common) = live.record.get_mut().common()
                {
                    *item = Item::Ended(live.record.get_mut().take_ended(common));
                    by_value += 1;
                }
            }
            if let Some(limit) = cut {
                expected.iter_mut().for_each(|s| cut_span_data(s, limit));
            }
            // A cache kept from round to round one round in two, a new one
            // in the others.
            if round % 2 == 1 {
                code.take();
            }
            let env = wire::Env {
                anchor: Some(&anchor),
                cut: wire::Cut(cut),
                code: &code,
            };
            wire::request(&mut buf, &items, &encoded, &mut groups, &env);
            assert!(
                buf == reference(&expected, &resource),
                "round {round}: {expected:#?}"
            );
        }
        // Most of the common ones (a limit of 0 drops their attribute).
        assert!(by_value > 500, "{by_value} records queued by value");
    }

    // --- gzip ---

    fn gz_encoder(input: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(input).unwrap();
        encoder.finish().unwrap()
    }

    fn gunzip(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(input)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn the_reused_gzip_state_compresses_each_batch_as_a_new_one_would() {
        let mut gzip = Gzip::default();
        let mut rng = Rng(7);
        let batch = ours(&varied_spans(), &resource());
        let noise: Vec<u8> = (0..300_000).map(|_| rng.next() as u8).collect();
        let repeated = batch.repeat(200);
        for input in [&batch[..], &[], &noise[..], b"a", &repeated[..], &batch[..]] {
            let mut gzipped = vec![1, 2, 3]; // left over from an earlier batch
            gzip.compress(input, &mut gzipped).unwrap();
            assert_eq!(gunzip(&gzipped), input, "{} bytes in", input.len());
            let mut fresh = Vec::new();
            Gzip::default().compress(input, &mut fresh).unwrap();
            assert!(gzipped == fresh, "{} bytes in", input.len());
            // As small as flate2's `GzEncoder` at the same level (which
            // ends with an empty final block, one byte more).
            assert!(
                gzipped.len() <= gz_encoder(input).len(),
                "{} bytes in",
                input.len()
            );
        }
    }

    // --- retries, as opentelemetry-otlp classifies failures ---

    fn status(status: u16, retry_after: Option<u64>) -> Failure {
        Failure::Status {
            status,
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    #[test]
    fn statuses_are_retried_as_opentelemetry_otlp_retries_them() {
        for code in [429, 503] {
            assert!(
                matches!(status(code, Some(3)).retry(), Retry::After(d) if d == Duration::from_secs(3))
            );
            assert!(matches!(status(code, None).retry(), Retry::Backoff));
        }
        for code in [502, 504] {
            assert!(matches!(status(code, None).retry(), Retry::Backoff));
            assert!(
                matches!(status(code, Some(3)).retry(), Retry::Backoff),
                "Retry-After is for 429 and 503"
            );
        }
        for code in [300, 400, 401, 403, 404, 408, 413, 500, 501, 505] {
            assert!(
                matches!(status(code, Some(1)).retry(), Retry::Never),
                "{code}"
            );
        }
        assert!(matches!(
            Failure::Network("refused".into()).retry(),
            Retry::Backoff
        ));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates_as_httpdate_does() {
        let secs = |s: u64| Some(Duration::from_secs(s));
        assert_eq!(parse_retry_after("120"), secs(120));
        assert_eq!(parse_retry_after(" 7 "), secs(7));
        assert_eq!(
            parse_retry_after("+7"),
            secs(7),
            "u64::from_str takes a plus sign"
        );
        assert_eq!(parse_retry_after("0"), secs(0));
        assert_eq!(parse_retry_after("90000"), secs(600), "at most ten minutes");
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("1.5"), None);
        assert_eq!(parse_retry_after("soon"), None);
        // A date in the past is no wait at all.
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), secs(0));

        let in_two_minutes = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(120));
        let wait = parse_retry_after(&in_two_minutes).unwrap();
        assert!((118..=120).contains(&wait.as_secs()), "{wait:?}");
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 UTC"), None);
    }

    #[test]
    fn jitter_is_at_most_a_tenth_of_a_second() {
        for _ in 0..1000 {
            assert!(jitter() <= Duration::from_millis(100));
        }
    }

    // --- against a real receiver ---

    const TOKEN: &str = "vx_unit_test_token";

    /// The resource of the exporters of these tests. One instance: a
    /// `Resource` iterates its attributes in the order of its own hash map.
    fn test_resource() -> &'static Resource {
        static RESOURCE: std::sync::LazyLock<Resource> = std::sync::LazyLock::new(resource);
        &RESOURCE
    }

    fn exporter(config: crate::Config) -> OtlpExporter {
        let settings = config.resolve().unwrap();
        OtlpExporter::new(&settings, Arc::new(Counters::default()), test_resource()).unwrap()
    }

    fn config(endpoint: &str) -> crate::Config {
        crate::Config::default()
            .with_endpoint(endpoint)
            .with_token(TOKEN)
            .with_header("x-team", "payments")
            .with_timeout(Duration::from_secs(5))
    }

    fn export(exporter: &OtlpExporter, spans: Vec<SpanData>) -> OTelSdkResult {
        futures_executor::block_on(exporter.export(spans))
    }

    #[test]
    fn a_batch_arrives_gzipped_with_every_header_and_the_bytes_of_opentelemetry_otlp() {
        let receiver = Receiver::start();
        let exporter = exporter(config(&receiver.endpoint()));
        let spans = varied_spans();
        export(&exporter, spans.clone()).unwrap();
        export(&exporter, spans[..2].to_vec()).unwrap();

        let requests = receiver.requests();
        assert_eq!(requests.len(), 2);
        let request = &requests[0];
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("POST", "/v1/traces")
        );
        assert_eq!(
            request.header("content-type"),
            Some("application/x-protobuf")
        );
        assert_eq!(request.header("content-encoding"), Some("gzip"));
        assert_eq!(request.header("accept"), Some("*/*"));
        assert_eq!(request.header("x-vaxila-token"), Some(TOKEN));
        assert_eq!(request.header("x-team"), Some("payments"));
        assert_eq!(
            request.header("user-agent"),
            Some(concat!("vaxila-rust/", env!("CARGO_PKG_VERSION")))
        );
        assert_eq!(&request.raw_body[..2], &[0x1f, 0x8b]);
        assert!(request.body == reference(&spans, test_resource()));
        assert_eq!(
            request.export,
            Some(
                ExportTraceServiceRequest::decode(reference(&spans, test_resource()).as_slice())
                    .unwrap()
            )
        );
        // The reused buffers hold nothing of the first batch.
        assert!(requests[1].body == reference(&spans[..2], test_resource()));
    }

    #[test]
    fn without_compression_the_protobuf_goes_as_it_is_and_without_a_token_no_token() {
        let receiver = Receiver::start();
        let exporter = exporter(
            crate::Config::default()
                .with_endpoint(receiver.endpoint())
                .with_compression(Compression::None),
        );
        export(&exporter, varied_spans()).unwrap();
        let request = &receiver.requests()[0];
        assert_eq!(request.header("content-encoding"), None);
        assert_eq!(request.header("x-vaxila-token"), None);
        assert!(request.raw_body == reference(&varied_spans(), test_resource()));
    }

    #[test]
    fn set_resource_changes_the_resource_sent() {
        let receiver = Receiver::start();
        let mut exporter = exporter(config(&receiver.endpoint()));
        let other = Resource::builder_empty()
            .with_attributes([KeyValue::new("service.name", "other")])
            .build();
        exporter.set_resource(&other);
        export(&exporter, varied_spans()).unwrap();
        assert!(receiver.requests()[0].body == reference(&varied_spans(), &other));
    }

    /// A receiver that answers `first` to the first `n` requests and 200 after.
    fn failing_first(n: usize, first: Reply) -> Receiver {
        let seen = AtomicUsize::new(0);
        Receiver::start_with(move |_| {
            if seen.fetch_add(1, Ordering::SeqCst) < n {
                first.clone()
            } else {
                Reply::ok()
            }
        })
    }

    #[test]
    fn retry_after_is_waited_for_then_the_same_batch_is_sent_again() {
        let receiver = failing_first(1, Reply::retry_after(429, 1));
        let exporter = exporter(config(&receiver.endpoint()));
        let started = Instant::now();
        export(&exporter, varied_spans()).unwrap();
        let took = started.elapsed();
        // One second asked, plus at most 100 ms of jitter (and a loaded machine).
        assert!(took >= Duration::from_secs(1), "{took:?}");
        assert!(took < Duration::from_secs(3), "{took:?}");
        let requests = receiver.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(requests[0].raw_body, requests[1].raw_body);
    }

    #[test]
    fn a_retry_after_past_the_timeout_fails_at_once() {
        let receiver = Receiver::start_with(|_| Reply::retry_after(503, 30));
        let exporter = exporter(config(&receiver.endpoint()).with_timeout(Duration::from_secs(2)));
        let started = Instant::now();
        let error = export(&exporter, varied_spans()).unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "no wait that cannot end in time"
        );
        assert_eq!(
            error.to_string(),
            "Operation failed: HTTP export failed with status code: 503"
        );
        assert_eq!(receiver.requests().len(), 1);
    }

    #[test]
    fn gateway_errors_are_retried_three_times_and_client_errors_never() {
        for (code, requests) in [
            (502, 4),
            (504, 4),
            (503, 4),
            (429, 4),
            (400, 1),
            (401, 1),
            (403, 1),
            (413, 1),
            (500, 1),
        ] {
            let receiver = Receiver::start_with(move |_| Reply::status(code));
            let exporter = exporter(config(&receiver.endpoint()));
            let error = export(&exporter, varied_spans()).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("Operation failed: HTTP export failed with status code: {code}")
            );
            assert_eq!(receiver.requests().len(), requests, "HTTP {code}");
        }
        let receiver = failing_first(2, Reply::status(502));
        export(&exporter(config(&receiver.endpoint())), varied_spans()).unwrap();
        assert_eq!(receiver.requests().len(), 3);
    }

    #[test]
    fn a_partial_success_is_a_success() {
        let receiver = Receiver::start_with(|_| Reply::partial_success(2, "span too old"));
        export(&exporter(config(&receiver.endpoint())), varied_spans()).unwrap();
        assert_eq!(receiver.requests().len(), 1);
    }

    /// A loopback address nothing listens on, with a secret in its query.
    fn closed_port() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}/v1/traces?key=query_secret")
    }

    #[test]
    fn an_unreachable_endpoint_is_retried_with_backoff_then_is_a_network_error() {
        let exporter = exporter(config(&closed_port()));
        let started = Instant::now();
        let error = export(&exporter, varied_spans()).unwrap_err().to_string();
        let took = started.elapsed();
        // 100 + 200 + 400 ms of backoff, each with up to 100 ms of jitter.
        assert!(took >= Duration::from_millis(700), "{took:?}");
        assert!(took < Duration::from_secs(4), "{took:?}");
        assert!(
            error.starts_with("Operation failed: HTTP export failed: network error ("),
            "{error}"
        );
        assert!(
            !error.contains("query_secret") && !error.contains("127.0.0.1"),
            "{error}"
        );
    }

    #[test]
    fn a_hung_endpoint_is_cut_off_at_the_export_timeout() {
        let receiver = Receiver::start_with(|_| Reply::hang());
        let exporter =
            exporter(config(&receiver.endpoint()).with_timeout(Duration::from_millis(300)));
        let started = Instant::now();
        let error = export(&exporter, varied_spans()).unwrap_err().to_string();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_secs(2),
            "{took:?}"
        );
        assert!(
            error.contains("no answer within the export timeout"),
            "{error}"
        );
        assert_eq!(receiver.requests().len(), 1);
    }

    #[test]
    fn no_attempt_outlives_the_export_timeout() {
        // A 503 that takes 1.2 s of the 2 s timeout, then a hang: the retry
        // gets only the 0.6-0.7 s left, so the export ends at about 2 s. A
        // retry given a whole timeout of its own would end it at about
        // 3.3 s; the margin between is for a loaded machine.
        let seen = AtomicUsize::new(0);
        let receiver = Receiver::start_with(move |_| {
            if seen.fetch_add(1, Ordering::SeqCst) == 0 {
                Reply {
                    delay: Duration::from_millis(1200),
                    ..Reply::status(503)
                }
            } else {
                Reply::hang()
            }
        });
        let exporter =
            exporter(config(&receiver.endpoint()).with_timeout(Duration::from_millis(2000)));
        let started = Instant::now();
        assert!(export(&exporter, varied_spans()).is_err());
        let took = started.elapsed();
        assert!(took < Duration::from_millis(2900), "{took:?}");
        assert_eq!(receiver.requests().len(), 2);
    }

    #[test]
    fn export_after_shutdown_is_an_error_and_sends_nothing() {
        let receiver = Receiver::start();
        let exporter = exporter(config(&receiver.endpoint()));
        exporter.shutdown().unwrap();
        assert!(matches!(
            export(&exporter, varied_spans()),
            Err(OTelSdkError::AlreadyShutdown)
        ));
        assert!(receiver.requests().is_empty());
    }

    #[test]
    fn debug_shows_neither_the_token_nor_header_values_nor_the_query() {
        let exporter = exporter(config(&closed_port()));
        let debug = format!("{exporter:?}");
        assert!(
            debug.contains("x-vaxila-token") && debug.contains("x-team"),
            "{debug}"
        );
        for secret in [TOKEN, "payments", "query_secret"] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }

    // --- timings ---

    /// Typical spans: a name and five attributes, no events.
    fn typical_batch(count: usize) -> Vec<SpanData> {
        let vaxila = InstrumentationScope::builder("vaxila")
            .with_version("0.1.0")
            .build();
        let mut rng = Rng(42);
        (0..count)
            .map(|i| {
                let mut s = span("load_order", &vaxila);
                s.span_context = rng.context();
                s.parent_span_id = SpanId::from(rng.next());
                s.start_time = at(1_700_000_000_000_000_000 + i as u64 * 1_000_000);
                s.end_time =
                    at(1_700_000_000_000_000_000 + i as u64 * 1_000_000 + rng.below(900_000));
                s.attributes = vec![
                    KeyValue::new("code.function.name", "checkout::orders::load_order"),
                    KeyValue::new("code.file.path", "src/orders.rs"),
                    KeyValue::new("code.line.number", 42_i64),
                    KeyValue::new("order.id", rng.below(1_000_000) as i64),
                    KeyValue::new("db.system.name", "postgresql"),
                ];
                s
            })
            .collect()
    }

    /// `cargo test --release -p vaxila-runtime otlp::tests::encode_and_gzip_timings -- --ignored --nocapture`
    /// (add `--features flate2/zlib-rs` for flate2's zlib-rs backend).
    #[test]
    #[ignore = "a measurement, not a test: run it in release"]
    fn encode_and_gzip_timings() {
        const ROUNDS: usize = 1000;
        let batch = typical_batch(512);
        // What the pipeline's resource holds, about.
        let resource = Resource::builder_empty()
            .with_attributes([
                KeyValue::new("telemetry.sdk.name", "opentelemetry"),
                KeyValue::new("telemetry.sdk.language", "rust"),
                KeyValue::new("telemetry.sdk.version", "0.33.1"),
                KeyValue::new("host.name", "web-1.eu-west.internal"),
                KeyValue::new("process.pid", 4242_i64),
                KeyValue::new("service.name", "checkout"),
                KeyValue::new("service.version", "1.4.2"),
                KeyValue::new("deployment.environment.name", "production"),
                KeyValue::new("deployment.environment", "production"),
            ])
            .build();
        let encoded = wire::Resource::new(&resource);
        let (mut buf, mut groups, mut gzip) =
            (Vec::new(), wire::Groups::default(), Gzip::default());
        let mut gzipped = Vec::new();
        let attributes = ResourceAttributesWithSchema::from(&resource);

        // Per round, for the medians and minima (the machine may be busy).
        let mut times: [Vec<Duration>; 6] = Default::default();
        let mut sizes = (0, 0);
        for _ in 0..ROUNDS {
            // Each path is handed its own copy of the batch and drops it, as
            // an export does; ours drops it after encoding, counted there.
            let copy = batch.clone();
            let started = Instant::now();
            request(&mut buf, &copy, &encoded, &mut groups, None);
            drop(copy);
            let encoded_at = Instant::now();
            gzip.compress(&buf, &mut gzipped).unwrap();
            let done = Instant::now();
            std::hint::black_box(gz_encoder(&buf));
            times[0].push(encoded_at - started);
            times[1].push(done - encoded_at);
            times[4].push(done.elapsed());
            sizes = (buf.len(), gzipped.len());

            let copy = batch.clone();
            let started = Instant::now();
            let body = ExportTraceServiceRequest {
                resource_spans: group_spans_by_resource_and_scope(copy, &attributes),
            }
            .encode_to_vec();
            let encoded_at = Instant::now();
            std::hint::black_box(gz_encoder(&body));
            let done = Instant::now();
            times[2].push(encoded_at - started);
            times[3].push(done - encoded_at);

            // What the benchmarks' receiver then does with the request.
            let started = Instant::now();
            let request = ExportTraceServiceRequest::decode(gunzip(&gzipped).as_slice());
            std::hint::black_box(request.unwrap());
            times[5].push(started.elapsed());
        }
        let [
            ours_encode,
            ours_gzip,
            proto_encode,
            proto_gzip,
            new_gz_encoder,
            receiver,
        ] = times.map(|mut t| {
            t.sort_unstable();
            (t[t.len() / 2], t[0])
        });
        let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
        println!(
            "512 typical spans: {} bytes of protobuf, {} gzipped; median (min) of {ROUNDS}",
            sizes.0, sizes.1
        );
        println!(
            "ours:  encode {:?} ({:?}), gzip {:?} ({:?})",
            ours_encode.0, ours_encode.1, ours_gzip.0, ours_gzip.1
        );
        println!(
            "proto: transform+prost {:?} ({:?}), GzEncoder {:?} ({:?})",
            proto_encode.0, proto_encode.1, proto_gzip.0, proto_gzip.1
        );
        println!(
            "a new GzEncoder for our bytes: {:?} ({:?})",
            new_gz_encoder.0, new_gz_encoder.1
        );
        println!(
            "the benchmarks' receiver, gunzip + prost decode: {:?} ({:?})",
            receiver.0, receiver.1
        );
        println!(
            "encode alone {:.1}x ({:.1}x), encode+gzip {:.2}x ({:.2}x)",
            ratio(proto_encode.0, ours_encode.0),
            ratio(proto_encode.1, ours_encode.1),
            ratio(proto_encode.0 + proto_gzip.0, ours_encode.0 + ours_gzip.0),
            ratio(proto_encode.1 + proto_gzip.1, ours_encode.1 + ours_gzip.1),
        );
    }
}
