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

pub use vaxila_macros::instrument;
pub use vaxila_runtime::*;

#[doc(hidden)]
pub use vaxila_runtime::__private;
