//! Client spans and W3C `traceparent` for reqwest, as a `reqwest-middleware` middleware.
//!
//! ```
//! let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
//!     .with(vaxila::reqwest::TraceMiddleware::new())
//!     .build();
//! // client.get("http://inventory/items/7").send().await?
//! ```
//!
//! Each request gets a span of kind `client`, a child of the current span,
//! named after the method (`GET`), with `http.request.method`, `url.full`,
//! `server.address`, `server.port` and `http.response.status_code`. The
//! request carries `traceparent` (and `tracestate`, when the span's trace
//! has one), so the server's span,
//! if it is instrumented, is this span's child in the same trace.
//!
//! `url.full` never holds credentials: `user:password@` is removed, and the
//! values of query parameters whose names look secret (`token`, `key`,
//! `sig`, `signature`, `password`, `secret`, `auth`, `code`, ...) become
//! `REDACTED`. A response status of 400 or more, or a failure to send, sets
//! status Error and `error.type`.
//!
//! Each thread keeps the last four hosts it called (each of at most 512
//! bytes), so that their `server.address` is shared by the spans that
//! call them, not copied into each.

use ::reqwest::{Request, Response};
use ::reqwest_middleware::{Middleware, Next, Result};
use http::Extensions;
use opentelemetry::propagation::Injector;
use opentelemetry::trace::SpanKind;
use opentelemetry::{Context, KeyValue};

use crate::__private::Span;
use crate::recent::{self, Recent};
use crate::record::Name;
use crate::semconv::method;

/// The middleware of this module; see the [module docs](self).
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceMiddleware {
    _private: (),
}

impl TraceMiddleware {
    /// The middleware, to pass to `reqwest_middleware::ClientBuilder::with`.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait::async_trait]
impl Middleware for TraceMiddleware {
    async fn handle(
        &self,
        mut request: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> Result<Response> {
        if !crate::global::enabled() {
            return next.run(request, extensions).await;
        }
        let mut span = Span::start_named(
            || match method(request.method()) {
                "_OTHER" => Name::Static("HTTP"),
                known => Name::Static(known),
            },
            SpanKind::Client,
            || attributes(&request),
            &Context::current(),
        );
        if let Some(cx) = span.context() {
            opentelemetry::global::get_text_map_propagator(|propagator| {
                propagator.inject_context(cx, &mut Headers(request.headers_mut()));
            });
        }
        let result = span.instrument(next.run(request, extensions)).await;
        match &result {
            Ok(response) => {
                let status = response.status();
                span.set_attribute(KeyValue::new(
                    "http.response.status_code",
                    i64::from(status.as_u16()),
                ));
                if status.as_u16() >= 400 {
                    span.set_failed(status.as_str().to_owned(), String::new());
                }
            }
            Err(error) => {
                let (kind, message) = describe(error);
                span.record_error(kind, &message);
            }
        }
        result
    }
}

/// `error.type` and a message for a failed request; reqwest's own message
/// holds the URL whole, so it gets the redacted one instead.
fn describe(error: &::reqwest_middleware::Error) -> (&'static str, String) {
    match error {
        ::reqwest_middleware::Error::Reqwest(error) => {
            let kind = if error.is_timeout() {
                "timeout"
            } else if error.is_connect() {
                "connect"
            } else if error.is_redirect() {
                "redirect"
            } else if error.is_body() || error.is_decode() {
                "body"
            } else {
                "reqwest::Error"
            };
            let mut message = error.to_string();
            if let Some(url) = error.url() {
                message = message.replace(url.as_str(), &full_url(url));
            }
            (kind, message)
        }
        ::reqwest_middleware::Error::Middleware(error) => {
            ("reqwest_middleware::Error", error.to_string())
        }
    }
}

struct Headers<'a>(&'a mut http::HeaderMap);

impl Injector for Headers<'_> {
    fn set(&mut self, key: &str, value: String) {
        // A propagator with nothing to say (an empty `tracestate`) sends no
        // header: W3C trace context asks for none rather than an empty one.
        if value.is_empty() {
            return;
        }
        let name = match key {
            "traceparent" => http::HeaderName::from_static("traceparent"),
            "tracestate" => http::HeaderName::from_static("tracestate"),
            other => match http::HeaderName::from_bytes(other.as_bytes()) {
                Ok(name) => name,
                Err(_) => return,
            },
        };
        // The propagator's string becomes the header's bytes, not a copy.
        if let Ok(value) = http::HeaderValue::try_from(value) {
            self.0.insert(name, value);
        }
    }
}

std::thread_local! {
    /// The hosts this thread has called last.
    static HOSTS: Recent = const { Recent::new() };
}

fn attributes(request: &Request) -> impl Iterator<Item = KeyValue> {
    let url = request.url();
    [
        Some(KeyValue::new(
            "http.request.method",
            method(request.method()),
        )),
        Some(KeyValue::new("url.full", full_url(url))),
        url.host_str()
            .map(|host| KeyValue::new("server.address", recent::value(&HOSTS, host))),
        url.port_or_known_default()
            .map(|port| KeyValue::new("server.port", i64::from(port))),
    ]
    .into_iter()
    .flatten()
}

/// Query parameter names whose values are credentials more often than not.
const SECRET_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "key",
    "api_key",
    "apikey",
    "sig",
    "signature",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
    "x-goog-signature",
    "x-goog-credential",
    "password",
    "passwd",
    "secret",
    "client_secret",
    "auth",
    "code",
    "session",
    "awsaccesskeyid",
    "jwt",
];

/// The URL without `user:password@`, with secret-looking query values redacted.
fn full_url(url: &::reqwest::Url) -> String {
    if url.username().is_empty() && url.password().is_none() && url.query().is_none() {
        return url.as_str().to_owned();
    }
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let secret = SECRET_PARAMS.iter().any(|s| k.eq_ignore_ascii_case(s));
                let v = if secret { "REDACTED".into() } else { v };
                (k.into_owned(), v.into_owned())
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_and_secret_query_values() {
        let url = ::reqwest::Url::parse(
            "https://user:pw@api.example.com:8443/v1/items?id=7&token=abc&Signature=xyz",
        )
        .unwrap();
        assert_eq!(
            full_url(&url),
            "https://api.example.com:8443/v1/items?id=7&token=REDACTED&Signature=REDACTED"
        );
        let plain = ::reqwest::Url::parse("http://localhost/health").unwrap();
        assert_eq!(full_url(&plain), "http://localhost/health");
        let user_only = ::reqwest::Url::parse("http://user@localhost/health").unwrap();
        assert_eq!(full_url(&user_only), "http://localhost/health");
    }

    #[test]
    fn propagated_headers_are_set_and_an_empty_one_is_left_out() {
        let mut headers = http::HeaderMap::new();
        let mut injector = Headers(&mut headers);
        let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        injector.set("traceparent", traceparent.to_owned());
        injector.set("tracestate", String::new());
        injector.set("baggage", "user=7".to_owned());
        injector.set("bad name", "x".to_owned());
        injector.set("x-bad-value", "line\nbreak".to_owned());
        assert_eq!(headers["traceparent"], traceparent);
        assert!(!headers.contains_key("tracestate"));
        assert_eq!(headers["baggage"], "user=7");
        assert_eq!(headers.len(), 2, "{headers:?}");

        Headers(&mut headers).set("tracestate", "vx=1".to_owned());
        assert_eq!(headers["tracestate"], "vx=1");
    }
}
