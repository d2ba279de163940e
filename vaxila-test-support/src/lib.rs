//! A real OTLP/HTTP receiver on 127.0.0.1 for the tests and benchmarks of `vaxila`.
//!
//! It runs on its own thread with its own Tokio runtime, so it works the same
//! from a plain test, a multi-thread or a current-thread Tokio runtime, and
//! while the code under test blocks its thread (a guard shutting down). It
//! records every request (method, path, headers, the raw and the gunzipped
//! body, the decoded `ExportTraceServiceRequest`) and answers with what a
//! [`Reply`] function says, so tests of outages and faults can make it
//! misbehave on purpose.
//!
//! ```
//! let receiver = vaxila_test_support::Receiver::start();
//! assert!(receiver.endpoint().starts_with("http://127.0.0.1:"));
//! assert_eq!(receiver.span_count(), 0);
//! ```

use std::convert::Infallible;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prost::Message as _;

mod child;
pub use child::{CHILD_VAR, ChildOutput, is_child, run_child};

pub use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
pub use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
pub use opentelemetry_proto::tonic::trace::v1::Span;

/// One request the receiver got.
#[derive(Clone, Debug)]
pub struct Request {
    /// `POST`, normally.
    pub method: String,
    /// The path, `/v1/traces` normally.
    pub path: String,
    /// Every header, names in lower case, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body as sent (compressed when `Content-Encoding: gzip`).
    pub raw_body: Vec<u8>,
    /// The body after gunzipping, if it was gzipped.
    pub body: Vec<u8>,
    /// The body decoded as OTLP traces, if it is one.
    pub export: Option<ExportTraceServiceRequest>,
}

impl Request {
    /// The value of header `name` (any case), if present.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The spans of this request.
    #[must_use]
    pub fn spans(&self) -> Vec<&Span> {
        self.export
            .iter()
            .flat_map(|e| &e.resource_spans)
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .collect()
    }

    /// The resource attributes of this request's first resource, as text.
    #[must_use]
    pub fn resource_attributes(&self) -> Vec<(String, String)> {
        self.export
            .iter()
            .flat_map(|e| e.resource_spans.first())
            .flat_map(|rs| rs.resource.iter())
            .flat_map(|r| &r.attributes)
            .map(|kv| (kv.key.clone(), text(kv.value.as_ref())))
            .collect()
    }
}

/// An attribute of `span` as text (`"42"`, `"true"`, `"checkout"`), if it has it.
#[must_use]
pub fn attr(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .map(|kv| text(kv.value.as_ref()))
}

/// An OTLP value as text: strings as they are, numbers and booleans printed,
/// arrays as `[a, b]`.
#[must_use]
pub fn text(value: Option<&AnyValue>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::ArrayValue(a)) => format!(
            "[{}]",
            a.values
                .iter()
                .map(|v| text(Some(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

/// What the receiver answers.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// Extra response headers (`Retry-After`, say).
    pub headers: Vec<(String, String)>,
    /// Wait this long before answering.
    pub delay: Duration,
    /// Never answer: hold the connection open until the receiver stops.
    pub hang: bool,
    /// With status 200: an OTLP `partial_success` rejecting this many spans,
    /// with this message.
    pub rejected: Option<(i64, String)>,
}

impl Reply {
    /// `200 OK` with an empty `ExportTraceServiceResponse`, at once.
    #[must_use]
    pub fn ok() -> Self {
        Self::status(200)
    }

    /// `status`, at once.
    #[must_use]
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            delay: Duration::ZERO,
            hang: false,
            rejected: None,
        }
    }

    /// `status` with a `Retry-After: seconds` header.
    #[must_use]
    pub fn retry_after(status: u16, seconds: u32) -> Self {
        let mut reply = Self::status(status);
        reply
            .headers
            .push(("retry-after".to_owned(), seconds.to_string()));
        reply
    }

    /// Never answers.
    #[must_use]
    pub fn hang() -> Self {
        Self {
            hang: true,
            ..Self::ok()
        }
    }

    /// `200 OK` whose body says `count` spans were rejected, for `message`.
    #[must_use]
    pub fn partial_success(count: i64, message: &str) -> Self {
        Self {
            rejected: Some((count, message.to_owned())),
            ..Self::ok()
        }
    }
}

type ReplyFn = dyn Fn(&Request) -> Reply + Send + Sync;

#[derive(Default)]
struct Shared {
    requests: Mutex<Vec<Request>>,
    changed: Condvar,
}

/// A loopback OTLP/HTTP receiver; stops when dropped.
pub struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Receiver {
    /// Starts a receiver on 127.0.0.1 on a free port that answers `200 OK`.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound.
    #[must_use]
    pub fn start() -> Self {
        Self::start_with(|_| Reply::ok())
    }

    /// Starts a receiver that answers each request with `reply(&request)`.
    ///
    /// # Panics
    ///
    /// If no loopback port can be bound.
    #[must_use]
    pub fn start_with(reply: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let reply: Arc<ReplyFn> = Arc::new(reply);
        let shared = Arc::new(Shared::default());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("otlp-receiver".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("receiver runtime");
                runtime.block_on(serve(listener, thread_shared, reply, stopped));
            })
            .expect("receiver thread");
        Self {
            addr,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT/v1/traces`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("http://{}/v1/traces", self.addr)
    }

    /// `http://127.0.0.1:PORT`, for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    #[must_use]
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far.
    #[must_use]
    pub fn requests(&self) -> Vec<Request> {
        self.lock().clone()
    }

    /// How many spans arrived so far, over all requests.
    #[must_use]
    pub fn span_count(&self) -> usize {
        self.lock().iter().map(|r| r.spans().len()).sum()
    }

    /// Every span that arrived so far, in arrival order.
    #[must_use]
    pub fn spans(&self) -> Vec<Span> {
        self.lock()
            .iter()
            .flat_map(|r| r.spans().into_iter().cloned())
            .collect()
    }

    /// Waits until at least `count` spans arrived or `timeout` passed (no
    /// polling: woken by each request); returns whether they did.
    #[must_use]
    pub fn wait_for_spans(&self, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut requests = self.lock();
        loop {
            let seen: usize = requests.iter().map(|r| r.spans().len()).sum();
            if seen >= count {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            requests = self
                .shared
                .changed
                .wait_timeout(requests, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Request>> {
        self.shared
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    reply: Arc<ReplyFn>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let shared = shared.clone();
        let reply = reply.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let shared = shared.clone();
                let reply = reply.clone();
                async move { handle(request, &shared, &*reply).await }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
    // Hanging connections end with the runtime.
    connections.abort_all();
}

async fn handle(
    request: hyper::Request<Incoming>,
    shared: &Shared,
    reply: &ReplyFn,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let (parts, body) = request.into_parts();
    let raw_body = body
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let gzipped = headers
        .iter()
        .any(|(k, v)| k == "content-encoding" && v.eq_ignore_ascii_case("gzip"));
    let body = if gzipped {
        let mut out = Vec::new();
        match flate2::read::GzDecoder::new(raw_body.as_slice()).read_to_end(&mut out) {
            Ok(_) => out,
            Err(_) => Vec::new(),
        }
    } else {
        raw_body.clone()
    };
    let export = ExportTraceServiceRequest::decode(body.as_slice()).ok();
    let request = Request {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        headers,
        raw_body,
        body,
        export,
    };
    let answer = reply(&request);
    {
        let mut requests = shared.requests.lock().unwrap_or_else(|e| e.into_inner());
        requests.push(request);
        shared.changed.notify_all();
    }
    if answer.hang {
        std::future::pending::<()>().await;
    }
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    let mut response = hyper::Response::builder()
        .status(answer.status)
        .header("content-type", "application/x-protobuf");
    for (name, value) in &answer.headers {
        response = response.header(name, value);
    }
    let body = ExportTraceServiceResponse {
        partial_success: answer.rejected.map(|(rejected_spans, error_message)| {
            ExportTracePartialSuccess {
                rejected_spans,
                error_message,
            }
        }),
    }
    .encode_to_vec();
    Ok(response
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| hyper::Response::new(Full::new(Bytes::new()))))
}
