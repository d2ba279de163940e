//! From resolved [`Settings`] to an installed pipeline: resource, sampler,
//! processors, the OTLP/HTTP transport, and the globals.
//!
//! # The HTTP client
//!
//! Requests are sent with `ureq`, a blocking client with no async runtime
//! inside, from the batch processor's own thread. So nothing here cares
//! whether the application runs Tokio, which flavour, or none, and no
//! runtime is ever built or dropped in an async context. TLS is rustls with
//! the `ring` provider, handed to the client explicitly: the process-wide
//! rustls default, and the TLS features of the application's own `reqwest`,
//! are left alone.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::{ResourceDetector as _, TelemetryResourceDetector};
use opentelemetry_sdk::trace::{
    SdkTracerProvider, SimpleSpanProcessor, SpanExporter as _, SpanLimits,
};
use prost::Message as _;

use crate::batch::{BatchProcessor, Counters};
use crate::config::{Compression, Exporter, Secret, Settings, TOKEN_HEADER};
use crate::console::ConsoleExporter;
use crate::error::Error;
use crate::global::{Fast, Sampling};
use crate::guard::Guard;
use crate::testing::{NoExport, provider_with};

/// Builds the pipeline `settings` describe and installs it: the tracer
/// provider (for instrumented code and the OpenTelemetry global), and the W3C
/// trace-context propagator.
pub(crate) fn install(settings: Settings) -> Result<Guard, Error> {
    let claim = crate::global::InitClaim::take()?;
    if settings.disabled {
        // OTEL_SDK_DISABLED: nothing installed, nothing sent.
        return Ok(Guard::disabled(claim));
    }
    let pipeline = build(&settings)?;
    if let Some(reason) = &settings.exporter_reason {
        // Not `eprintln!`, which panics when stderr is closed.
        let _ = writeln!(
            std::io::stderr(),
            "vaxila: printing spans to stderr (exporter kind \"auto\"): {reason}"
        );
    }
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    crate::global::install(&pipeline.provider, Some(pipeline.fast.clone()));
    crate::bridge::install(&settings.tracing);
    Ok(Guard::new(pipeline, settings, claim))
}

/// A built pipeline: the provider, and the counts of its OTLP exports.
#[derive(Debug)]
pub(crate) struct Pipeline {
    pub(crate) provider: SdkTracerProvider,
    /// The way of this crate's own spans to the provider's processor.
    pub(crate) fast: Arc<Fast>,
    /// `None` for the console and for no exporter, which lose nothing.
    pub(crate) counters: Option<Arc<Counters>>,
    /// The [`fork`](crate::fork) generation it was built in.
    pub(crate) generation: u64,
}

/// The tracer provider of `settings`, not installed anywhere.
pub(crate) fn build(settings: &Settings) -> Result<Pipeline, Error> {
    let resource = resource(settings);
    let builder = SdkTracerProvider::builder().with_resource(resource.clone());
    let sampling = Sampling::new(settings.sampler.ratio, settings.sampler.parent_based);
    let limits = SpanLimits {
        max_attributes_per_span: count(settings.limits.attributes_per_span),
        max_events_per_span: count(settings.limits.events_per_span),
        max_attributes_per_event: count(settings.limits.attributes_per_event),
        ..SpanLimits::default()
    };
    let mut counters = None;
    // Every pipeline feeds `vaxila::testing::capture` (`provider_with`).
    let (provider, fast) = match settings.exporter {
        Exporter::Otlp => {
            let shared = Arc::new(Counters::default());
            let mut exporter = otlp_exporter(settings, shared.clone())?;
            exporter.set_resource(&resource);
            let processor = BatchProcessor::start(
                exporter,
                &settings.batch,
                settings.timeout,
                settings.limits.attribute_value_length,
                shared.clone(),
                crate::config::shown_endpoint(&settings.endpoint),
            )
            .map_err(Error::Thread)?;
            counters = Some(shared);
            provider_with(builder, processor, sampling, &limits)
        }
        // Synchronous: each line is printed as the span ends, from the thread
        // that ends it, so a debugging session sees spans at once and in order.
        Exporter::Console => provider_with(
            builder,
            SimpleSpanProcessor::new(ConsoleExporter::stderr()),
            sampling,
            &limits,
        ),
        _ => provider_with(builder, NoExport, sampling, &limits),
    };
    Ok(Pipeline {
        provider,
        fast,
        counters,
        generation: crate::fork::generation(),
    })
}

fn count(limit: usize) -> u32 {
    u32::try_from(limit).unwrap_or(u32::MAX)
}

/// service.*, deployment.environment*, host.name, process.pid, telemetry.sdk.*,
/// then the extra attributes (which may override host.name, say, but not the
/// service attributes resolved with their own precedence). Never
/// `process.command_args`: secrets live there.
pub(crate) fn resource(settings: &Settings) -> Resource {
    let mut attributes = vec![
        KeyValue::new(
            "host.name",
            gethostname::gethostname().to_string_lossy().into_owned(),
        ),
        KeyValue::new("process.pid", i64::from(std::process::id())),
    ];
    attributes.extend(
        settings
            .resource
            .iter()
            .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
    );
    attributes.push(KeyValue::new("service.name", settings.service_name.clone()));
    if let Some(version) = &settings.service_version {
        attributes.push(KeyValue::new("service.version", version.clone()));
    }
    if let Some(environment) = &settings.environment {
        attributes.push(KeyValue::new(
            "deployment.environment.name",
            environment.clone(),
        ));
        // The older key, which some backends still read.
        attributes.push(KeyValue::new("deployment.environment", environment.clone()));
    }
    // builder_empty: the default builder would read OTEL_* from the process
    // environment behind the back of `Config::resolve`.
    Resource::builder_empty()
        .with_attributes(
            TelemetryResourceDetector
                .detect()
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .with_attributes(attributes)
        .build()
}

fn otlp_exporter(
    settings: &Settings,
    counters: Arc<Counters>,
) -> Result<opentelemetry_otlp::SpanExporter, Error> {
    opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(Transport::new(settings, counters)?)
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(settings.endpoint.clone())
        .with_timeout(settings.timeout)
        .build()
        .map_err(Error::Exporter)
}

/// The HTTP client of the OTLP exporter: headers and compression exactly as
/// resolved (the exporter would otherwise read `OTEL_EXPORTER_OTLP_HEADERS`
/// and `OTEL_EXPORTER_OTLP_COMPRESSION` itself, behind `Config::resolve`'s
/// back), sent with a blocking `ureq` agent.
struct Transport {
    headers: Vec<(http::HeaderName, http::HeaderValue)>,
    compression: Compression,
    timeout: Duration,
    agent: ureq::Agent,
    /// Where the answers' statuses and partial successes are noted.
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field(
                "headers",
                &self
                    .headers
                    .iter()
                    .map(|(name, _)| name)
                    .collect::<Vec<_>>(),
            )
            .field("compression", &self.compression)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The largest answer read; an OTLP response is a few bytes.
const MAX_RESPONSE: u64 = 1 << 20;

impl Transport {
    fn new(settings: &Settings, counters: Arc<Counters>) -> Result<Self, Error> {
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
            // Statuses are the exporter's to classify (retry or not).
            .http_status_as_error(false)
            .tls_config(tls)
            .user_agent(concat!("vaxila-rust/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();

        let mut headers = vec![(http::header::ACCEPT, http::HeaderValue::from_static("*/*"))];
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
            headers.retain(|(existing, _)| *existing != name);
            headers.push((name, value));
        }
        Ok(Self {
            headers,
            compression: settings.compression,
            timeout: settings.timeout,
            agent,
            counters,
        })
    }

    fn send(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let (mut parts, body) = request.into_parts();
        // Keep what the exporter says about the body, replace everything else.
        let content_type = parts.headers.remove(http::header::CONTENT_TYPE);
        parts.headers.clear();
        if let Some(content_type) = content_type {
            parts
                .headers
                .insert(http::header::CONTENT_TYPE, content_type);
        }
        for (name, value) in &self.headers {
            parts.headers.insert(name.clone(), value.clone());
        }
        let body: Vec<u8> = match self.compression {
            Compression::Gzip => {
                let mut encoder = flate2::write::GzEncoder::new(
                    Vec::with_capacity(body.len() / 4),
                    flate2::Compression::fast(),
                );
                encoder.write_all(&body)?;
                parts.headers.insert(
                    http::header::CONTENT_ENCODING,
                    http::HeaderValue::from_static("gzip"),
                );
                encoder.finish()?
            }
            Compression::None => body.to_vec(),
        };
        let response = self.agent.run(Request::from_parts(parts, body))?;
        let (parts, body) = response.into_parts();
        let body = body.into_with_config().limit(MAX_RESPONSE).read_to_vec()?;
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
        }
        Ok(Response::from_parts(parts, Bytes::from(body)))
    }
}

#[async_trait::async_trait]
impl HttpClient for Transport {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        // Blocking, on the batch thread, which runs nothing else meanwhile.
        self.send(request)
    }
}
