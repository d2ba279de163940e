//! OpenTelemetry traces to [Vaxila](https://vaxila-labs.com) in two lines.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! #[vaxila::instrument(args(id))]
//! fn awesome_action(id: i64) { /* ... */ }
//!
//! awesome_action(42);
//! # Ok(()) }
//! ```
//!
//! In a program, `let _guard = vaxila::init()?;` at the start of `main` reads
//! `Vaxila.toml` and the environment and sends the spans to Vaxila (or, with
//! no token, prints them on stderr). The README walks through Vaxila's setup
//! guide step by step.
//!
//! # Cargo features
//!
//! All off by default; each pulls in only what it needs.
//!
//! | feature | module |
//! |---|---|
//! | `axum` | `vaxila::axum`: a server span per request, continuing the caller's trace |
//! | `reqwest` | `vaxila::reqwest`: client spans and `traceparent` for `reqwest-middleware` |
//! | `sqlx` | `vaxila::sqlx`: a span per query on a traced pool |

pub use vaxila_macros::instrument;
pub use vaxila_runtime::*;

#[doc(hidden)]
pub use vaxila_runtime::__private;
