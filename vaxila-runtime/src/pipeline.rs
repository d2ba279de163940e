//! From resolved [`Settings`] to an installed pipeline: resource, sampling, processors, the exporter (`otlp.rs`), and the globals.

use std::io::Write as _;
use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::{ResourceDetector as _, TelemetryResourceDetector};
use opentelemetry_sdk::trace::{SdkTracerProvider, SimpleSpanProcessor, SpanLimits};

use crate::batch::{BatchProcessor, Counters};
use crate::config::{Exporter, Settings};
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
    opentelemetry::global::set_text_map_propagator(crate::propagation::TraceContext::new());
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
            let exporter = crate::otlp::OtlpExporter::new(settings, shared.clone(), &resource)?;
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
