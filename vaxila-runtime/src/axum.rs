//! An HTTP server layer for axum: a server span per request, continuing the caller's trace.
//!
//! ```
//! use axum::{Router, routing::get};
//!
//! let app: Router = Router::new()
//!     .route("/users/{id}", get(|| async { "user" }))
//!     // After the routes, so that each span knows its route template.
//!     .layer(vaxila::axum::TraceLayer::new());
//! ```
//!
//! # What a span holds
//!
//! Named `GET /users/{id}` (the method and the route template; the method
//! alone when no route matched), kind `server`, with the attributes of the
//! current HTTP semantic conventions: `http.request.method`, `url.path`,
//! `url.scheme`, `http.route`, `http.response.status_code`,
//! `server.address`, `server.port`, `user_agent.original` and
//! `network.protocol.version`. A 5xx response (or an error from the inner
//! service) sets status Error and `error.type`; a 4xx does not, since it is
//! the client's mistake, not the server's. The query string, the request and
//! response bodies and every other header are never recorded.
//!
//! A request that carries W3C `traceparent` (and `tracestate`) continues the
//! caller's trace: its server span is a child of the caller's client span. A
//! malformed `traceparent` is ignored, and the request starts a new trace.
//!
//! Handlers run inside the span, so `#[vaxila::instrument]` functions they
//! call, `tracing` spans and database spans are its children.
//!
//! # Why not `opentelemetry-instrumentation-tower`
//!
//! That crate records `url.query` (redacting only some keys), brings the
//! SDK's metrics along, and makes its spans with the global OpenTelemetry
//! tracer, not through this crate's span support. This layer records no
//! query string, needs nothing beyond axum, and starts its spans the way
//! `#[vaxila::instrument]` does.

use std::borrow::Cow;
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use ::axum::extract::MatchedPath;
use ::axum::http::{Request, Response, Version, header};
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{SpanKind, TraceContextExt as _};
use opentelemetry::{Context, KeyValue};

use crate::__private::Span;
use crate::semconv::method;

/// The tower layer of this module; see the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceLayer {
    _private: (),
}

impl TraceLayer {
    /// The layer, to pass to `Router::layer` after the routes.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl<S> tower_layer::Layer<S> for TraceLayer {
    type Service = Trace<S>;

    fn layer(&self, inner: S) -> Trace<S> {
        Trace { inner }
    }
}

/// A service wrapped by [`TraceLayer`].
#[derive(Clone, Debug)]
pub struct Trace<S> {
    inner: S,
}

impl<S, B, R> tower_service::Service<Request<B>> for Trace<S>
where
    S: tower_service::Service<Request<B>, Response = Response<R>>,
    S::Error: Display,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if !crate::global::enabled() {
            return ResponseFuture {
                future: self.inner.call(request),
                span: Span::disabled(),
                done: false,
            };
        }
        let parent = parent_of(&request);
        let mut span = Span::start_named(
            || name(&request),
            SpanKind::Server,
            || attributes(&request),
            &parent,
        );
        // Whatever the inner service does before its future is first polled
        // happens inside the span too (`current_span()` included).
        let inner = &mut self.inner;
        let future = span.poll_in(&mut false, || inner.call(request));
        ResponseFuture {
            future,
            span,
            done: false,
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of a [`Trace`] service: the inner future, polled inside
    /// the request's span, which ends with the response (with
    /// `vaxila.cancelled = true` if the future is dropped first, as when the
    /// client goes away).
    pub struct ResponseFuture<F> {
        #[pin]
        future: F,
        span: Span,
        done: bool,
    }

    impl<F> PinnedDrop for ResponseFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.done {
                this.span.record_cancelled();
            }
        }
    }
}

impl<F, R, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
    E: Display,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut future = this.future;
        let poll = this.span.poll_in(this.done, || future.as_mut().poll(task));
        if let Poll::Ready(result) = &poll {
            *this.done = true;
            match result {
                Ok(response) => {
                    let status = response.status();
                    this.span.set_attribute(KeyValue::new(
                        "http.response.status_code",
                        i64::from(status.as_u16()),
                    ));
                    if status.is_server_error() {
                        this.span
                            .set_failed(status.as_str().to_owned(), String::new());
                    }
                }
                Err(error) => this.span.record_error(std::any::type_name::<E>(), error),
            }
        }
        poll
    }
}

/// The caller's context from `traceparent`, if it sent a valid one; else the
/// current context.
fn parent_of<B>(request: &Request<B>) -> Context {
    if request.headers().get("traceparent").is_none() {
        return Context::current();
    }
    let extracted = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&Headers(request.headers()))
    });
    if extracted.span().span_context().is_valid() {
        extracted
    } else {
        Context::current()
    }
}

struct Headers<'a>(&'a ::axum::http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

fn route<B>(request: &Request<B>) -> Option<&str> {
    request
        .extensions()
        .get::<MatchedPath>()
        .map(MatchedPath::as_str)
}

/// `GET /users/{id}`, or `GET` when no route matched (a path would make the
/// name high-cardinality).
fn name<B>(request: &Request<B>) -> Cow<'static, str> {
    let method = match method(request.method()) {
        "_OTHER" => "HTTP",
        known => known,
    };
    match route(request) {
        Some(route) => {
            let mut name = String::with_capacity(method.len() + 1 + route.len());
            name.push_str(method);
            name.push(' ');
            name.push_str(route);
            name.into()
        }
        None => method.into(),
    }
}

fn attributes<B>(request: &Request<B>) -> impl Iterator<Item = KeyValue> {
    let uri = request.uri();
    let scheme = match uri.scheme_str() {
        None | Some("http") => Cow::Borrowed("http"),
        Some("https") => Cow::Borrowed("https"),
        Some(other) => Cow::Owned(other.to_owned()),
    };
    let authority = uri
        .authority()
        .map(|a| (a.host().to_owned(), a.port_u16()))
        .or_else(|| {
            let host = request.headers().get(header::HOST)?.to_str().ok()?;
            let authority = host.parse::<::axum::http::uri::Authority>().ok()?;
            Some((authority.host().to_owned(), authority.port_u16()))
        });
    let (host, port) = authority.unzip();
    let version = match request.version() {
        Version::HTTP_09 => Some("0.9"),
        Version::HTTP_10 => Some("1.0"),
        Version::HTTP_11 => Some("1.1"),
        Version::HTTP_2 => Some("2"),
        Version::HTTP_3 => Some("3"),
        _ => None,
    };
    // In place, in the span's record: no list of them is made first.
    [
        Some(KeyValue::new(
            "http.request.method",
            method(request.method()),
        )),
        Some(KeyValue::new("url.path", uri.path().to_owned())),
        Some(KeyValue::new("url.scheme", scheme)),
        route(request).map(|route| KeyValue::new("http.route", route.to_owned())),
        host.map(|host| KeyValue::new("server.address", host)),
        port.flatten()
            .map(|port| KeyValue::new("server.port", i64::from(port))),
        request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|agent| KeyValue::new("user_agent.original", agent.to_owned())),
        version.map(|version| KeyValue::new("network.protocol.version", version)),
    ]
    .into_iter()
    .flatten()
}
