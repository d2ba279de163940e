//! Configuration, pipeline and span support behind the [`vaxila`] crate.
//!
//! Use it through `vaxila`, which re-exports everything here; this crate's
//! version is locked to the facade's.
//!
//! [`vaxila`]: https://docs.rs/vaxila

mod attribute;
mod global;
mod span;
pub mod testing;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

pub use attribute::AttributeValue;
pub use global::set_tracer_provider;
pub use opentelemetry::trace::SpanKind;
pub use span::{ActiveSpan, SpanBuilder, current_span, span};

pub use opentelemetry;
pub use opentelemetry_sdk;
