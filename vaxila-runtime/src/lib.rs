//! Configuration, pipeline and span support behind the [`vaxila`] crate.
//!
//! Use it through `vaxila`, which re-exports everything here; this crate's
//! version is locked to the facade's.
//!
//! [`vaxila`]: https://docs.rs/vaxila

mod address;
mod attribute;
mod batch;
mod bridge;
mod clock;
pub mod config;
mod console;
mod error;
mod fork;
mod global;
mod guard;
mod otlp;
mod pipeline;
mod propagation;
#[cfg(any(feature = "axum", feature = "reqwest"))]
mod recent;
mod record;
mod ring;
#[cfg(any(feature = "axum", feature = "reqwest"))]
mod semconv;
mod span;
pub mod testing;

#[cfg(feature = "axum")]
pub mod axum;
#[cfg(feature = "reqwest")]
pub mod reqwest;
#[cfg(feature = "sqlx")]
pub mod sqlx;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use attribute::AttributeValue;
pub use batch::ExportStats;
pub use bridge::{TracingLayer, tracing_layer};
pub use config::{
    BatchSettings, Compression, Config, Exporter, LimitSettings, SamplerSettings, Secret, Settings,
    TracingSettings,
};
pub use console::ConsoleExporter;
pub use error::{Error, Origin};
pub use global::set_tracer_provider;
pub use guard::{Guard, reinit_after_fork};
pub use opentelemetry::trace::SpanKind;
pub use span::{ActiveSpan, SpanBuilder, current_span, span};

pub use opentelemetry;
pub use opentelemetry_sdk;
pub use tracing;

/// Reads `Vaxila.toml` and the environment, builds the pipeline they
/// describe, and installs it: the tracer provider that `#[instrument]` and
/// the OpenTelemetry API record to, the W3C trace-context propagator, and
/// (unless `[tracing] bridge = false`) a global `tracing` subscriber with
/// [`tracing_layer`], so that `tracing` spans join the same traces, filtered
/// by `[tracing] filter` (overridden by `VAXILA_LOG`, then `RUST_LOG`). If
/// the program has set a global subscriber already, `init` says on stderr
/// to add [`tracing_layer`] to it, and goes on.
///
/// Shorthand for `Config::load()?.init()`; see [`Config`] for what is read
/// and in which order. Keep the returned [`Guard`] until the program ends:
/// dropping it exports what is left and stops the pipeline.
///
/// With no token and no endpoint configured (`kind = "auto"`), spans are
/// printed to stderr, with one line saying why.
///
/// # Errors
///
/// A bad `Vaxila.toml` or environment variable (the error says where and
/// what is accepted), a missing `$VAXILA_CONFIG` file, or
/// [`Error::AlreadyInitialized`] while an earlier guard is alive.
///
/// ```no_run
/// fn main() -> Result<(), vaxila::Error> {
///     let _guard = vaxila::init()?;
///     // ... the program ...
///     Ok(())
/// }
/// ```
pub fn init() -> Result<Guard, Error> {
    Config::load()?.init()
}
