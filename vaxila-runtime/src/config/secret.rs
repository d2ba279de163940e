//! `Secret`: a string that no `Debug`, `Display` or error message shows.

use std::fmt;

/// A token or header value: readable by the exporter, shown to nobody.
///
/// Its `Debug` prints `Secret([REDACTED])`; it has no `Display`. The value
/// leaves it only through [`Secret::expose`], which the exporter calls to
/// build the request.
///
/// ```
/// let token = vaxila::Secret::new("vx_live_123");
/// assert_eq!(format!("{token:?}"), "Secret([REDACTED])");
/// assert_eq!(token.expose(), "vx_live_123");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself. Do not log it.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}
