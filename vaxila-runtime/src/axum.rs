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
//! # What a thread keeps
//!
//! The strings a route's spans have in common are made once per thread and
//! shared: each route it serves (up to 64; a route whose place another
//! takes is made again) with its `http.route` and the span names made of
//! it, the last `Host` it saw, with its host and port, and the last four
//! user agents it saw (each of at most 512 bytes). The path differs from
//! request to request, and each span gets its own copy.
//!
//! # Why not `opentelemetry-instrumentation-tower`
//!
//! That crate records `url.query` (redacting only some keys), brings the
//! SDK's metrics along, and makes its spans with the global OpenTelemetry
//! tracer, not through this crate's span support. This layer records no
//! query string, needs nothing beyond axum, and starts its spans the way
//! `#[vaxila::instrument]` does.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::Display;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use ::axum::extract::MatchedPath;
use ::axum::http::{HeaderName, Request, Response, Version, header};
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{SpanKind, TraceContextExt as _};
use opentelemetry::{Context, KeyValue, StringValue};

use crate::__private::Span;
use crate::recent::{self, Recent};
use crate::record::Name;
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

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// The caller's context from `traceparent`, if it sent a valid one; else the
/// current context.
fn parent_of<B>(request: &Request<B>) -> Context {
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
        // The propagator's names, looked up without parsing them first.
        let value = match key {
            "traceparent" => self.0.get(TRACEPARENT),
            "tracestate" => self.0.get(TRACESTATE),
            other => self.0.get(other),
        };
        value.and_then(|v| v.to_str().ok())
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

/// A route this thread has served, as its spans share it: its
/// `http.route`, and the span names made of it.
struct Route {
    route: Arc<str>,
    /// `GET /users/{id}` and so on, each made the first time.
    names: Vec<(&'static str, Arc<str>)>,
}

/// Routes a thread keeps; a route whose place another takes is made again.
const ROUTE_SLOTS: usize = 64;

std::thread_local! {
    /// This thread's routes, by where their text is: axum keeps one copy of
    /// each route's template for the router's life, and the text itself is
    /// checked. Each address has two places (a pair), so that two busy
    /// routes whose addresses fall together do not take turns.
    static ROUTES: RefCell<[Option<Box<Route>>; ROUTE_SLOTS]> =
        const { RefCell::new([const { None }; ROUTE_SLOTS]) };
}

/// The first of the two places of `route`'s address.
fn pair_of(route: &str) -> usize {
    crate::address::place_of(route.as_ptr() as usize, ROUTE_SLOTS / 2) * 2
}

/// Runs `f` on this thread's [`Route`] of `route`.
fn with_route<R>(route: &str, f: impl FnOnce(&mut Route) -> R) -> Option<R> {
    ROUTES
        .try_with(|routes| {
            let mut routes = routes.try_borrow_mut().ok()?;
            let pair = &mut routes[pair_of(route)..][..2];
            let at = match pair
                .iter()
                .position(|kept| kept.as_ref().is_some_and(|kept| *kept.route == *route))
            {
                Some(at) => at,
                None => {
                    // The newest first; the older of the two makes room.
                    pair.swap(0, 1);
                    pair[0] = Some(Box::new(Route {
                        route: Arc::from(route),
                        names: Vec::new(),
                    }));
                    0
                }
            };
            pair[at].as_deref_mut().map(f)
        })
        .ok()
        .flatten()
}

/// `GET /users/{id}`, or `GET` when no route matched (a path would make the
/// name high-cardinality).
fn name<B>(request: &Request<B>) -> Name {
    let method = match method(request.method()) {
        "_OTHER" => "HTTP",
        known => known,
    };
    match route(request) {
        Some(route) => shared_name(method, route),
        None => Name::Static(method),
    }
}

/// `method route`, shared with the route's other spans of that method.
fn shared_name(method: &'static str, route: &str) -> Name {
    let make = || {
        let mut name = String::with_capacity(method.len() + 1 + route.len());
        name.push_str(method);
        name.push(' ');
        name.push_str(route);
        name
    };
    with_route(route, |kept| {
        if let Some((_, name)) = kept.names.iter().find(|(m, _)| *m == method) {
            return name.clone();
        }
        let name: Arc<str> = Arc::from(make());
        kept.names.push((method, name.clone()));
        name
    })
    .map_or_else(|| Name::Owned(make()), Name::Shared)
}

/// The `http.route` of `route`, shared with the route's other spans.
fn shared_route(route: &str) -> StringValue {
    with_route(route, |kept| kept.route.clone())
        .map_or_else(|| route.to_owned().into(), StringValue::from)
}

/// An authority (`Host`) and what it says.
struct Server {
    authority: Box<str>,
    host: StringValue,
    port: Option<u16>,
}

/// The host and port of a request's authority (`Host`), shared with the
/// spans of the requests before it that named the same one.
fn server(authority: &str) -> Option<(StringValue, Option<u16>)> {
    std::thread_local! {
        /// The last authority this thread has seen.
        static LAST: RefCell<Option<Server>> = const { RefCell::new(None) };
    }
    let parse = || {
        let parsed = authority.parse::<::axum::http::uri::Authority>().ok()?;
        Some(Server {
            authority: authority.into(),
            host: StringValue::from(Arc::<str>::from(parsed.host())),
            port: parsed.port_u16(),
        })
    };
    let read = |server: &Server| (server.host.clone(), server.port);
    // `None` when the thread's copy cannot be had (a thread being torn down).
    let kept = LAST.try_with(|last| {
        let mut last = last.try_borrow_mut().ok()?;
        Some(match last.as_ref() {
            Some(seen) if *seen.authority == *authority => Some(read(seen)),
            _ => parse().map(|parsed| read(last.insert(parsed))),
        })
    });
    kept.ok()
        .flatten()
        .unwrap_or_else(|| parse().as_ref().map(read))
}

std::thread_local! {
    /// The user agents this thread has seen last.
    static AGENTS: Recent = const { Recent::new() };
}

fn attributes<B>(request: &Request<B>) -> impl Iterator<Item = KeyValue> {
    let uri = request.uri();
    let scheme = match uri.scheme_str() {
        None | Some("http") => Cow::Borrowed("http"),
        Some("https") => Cow::Borrowed("https"),
        Some(other) => Cow::Owned(other.to_owned()),
    };
    let authority = match uri.authority() {
        Some(authority) => server(authority.as_str()),
        None => (request.headers().get(header::HOST))
            .and_then(|host| host.to_str().ok())
            .and_then(server),
    };
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
        route(request).map(|route| KeyValue::new("http.route", shared_route(route))),
        host.map(|host| KeyValue::new("server.address", host)),
        port.flatten()
            .map(|port| KeyValue::new("server.port", i64::from(port))),
        request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|agent| KeyValue::new("user_agent.original", recent::value(&AGENTS, agent))),
        version.map(|version| KeyValue::new("network.protocol.version", version)),
    ]
    .into_iter()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(name: &Name) -> &Arc<str> {
        match name {
            Name::Shared(name) => name,
            other => panic!("not shared: {other:?}"),
        }
    }

    #[test]
    fn the_spans_of_a_route_share_its_names_and_each_name_is_its_own() {
        let users = String::from("/users/{id}");
        let orders = String::from("/orders/{id}");
        let first = shared_name("GET", &users);
        assert_eq!(first.as_str(), "GET /users/{id}");
        assert!(Arc::ptr_eq(
            shared(&first),
            shared(&shared_name("GET", &users))
        ));
        assert_eq!(shared_name("POST", &users).as_str(), "POST /users/{id}");
        assert_eq!(shared_name("GET", &orders).as_str(), "GET /orders/{id}");
        assert_eq!(shared_route(&users).as_str(), "/users/{id}");
        // The same text elsewhere, and other texts at the same place.
        assert_eq!(
            shared_name("GET", &users.clone()).as_str(),
            "GET /users/{id}"
        );
        let mut reused = String::with_capacity(32);
        for route in ["/a", "/b/{id}", "/a"] {
            reused.clear();
            reused.push_str(route);
            assert_eq!(shared_route(&reused).as_str(), route);
            assert_eq!(shared_name("PUT", &reused).as_str(), format!("PUT {route}"));
        }
    }

    #[test]
    fn more_routes_than_slots_each_keep_their_own_name() {
        let routes: Vec<String> = (0..4 * ROUTE_SLOTS)
            .map(|i| format!("/r{i}/{{id}}"))
            .collect();
        for _ in 0..2 {
            for route in &routes {
                assert_eq!(shared_name("GET", route).as_str(), format!("GET {route}"));
                assert_eq!(shared_route(route).as_str(), route.as_str());
            }
        }
    }

    #[test]
    fn two_routes_whose_addresses_fall_together_are_both_kept() {
        // Three routes whose addresses fall in one pair.
        let mut routes: Vec<String> = Vec::new();
        let mut others = Vec::new();
        for i in 0.. {
            let route = format!("/pair{i}/{{id}}");
            if routes
                .first()
                .is_none_or(|first| pair_of(first) == pair_of(&route))
            {
                routes.push(route);
                if routes.len() == 3 {
                    break;
                }
            } else {
                others.push(route);
            }
        }
        let [a, b, c] = [&routes[0], &routes[1], &routes[2]];
        let (first_a, first_b) = (shared_name("GET", a), shared_name("GET", b));
        for _ in 0..3 {
            assert!(Arc::ptr_eq(
                shared(&first_a),
                shared(&shared_name("GET", a))
            ));
            assert!(Arc::ptr_eq(
                shared(&first_b),
                shared(&shared_name("GET", b))
            ));
        }
        // A third pushes out the older of the two, and each is still right.
        assert_eq!(shared_name("GET", c).as_str(), format!("GET {c}"));
        assert!(Arc::ptr_eq(
            shared(&first_b),
            shared(&shared_name("GET", b))
        ));
        assert!(!Arc::ptr_eq(
            shared(&first_a),
            shared(&shared_name("GET", a))
        ));
        assert_eq!(shared_name("GET", a).as_str(), format!("GET {a}"));
    }

    #[test]
    fn the_host_and_port_are_read_from_the_authority_seen_last_or_anew() {
        let read = |authority: &str| {
            server(authority).map(|(host, port)| (host.as_str().to_owned(), port))
        };
        for _ in 0..2 {
            assert_eq!(
                read("example.com:8080"),
                Some(("example.com".to_owned(), Some(8080)))
            );
            assert_eq!(
                read("example.com:8080"),
                Some(("example.com".to_owned(), Some(8080)))
            );
            assert_eq!(read("localhost"), Some(("localhost".to_owned(), None)));
            assert_eq!(read("[::1]:3000"), Some(("[::1]".to_owned(), Some(3000))));
            assert_eq!(read("bad host"), None);
        }
    }
}
