//! The one error type of the runtime: what went wrong and what to change.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// Where a setting came from, so an error can point at it.
///
/// ```
/// let err = vaxila::Config::from_toml_str("[exporter]\nkind = \"kafka\"\n").unwrap_err();
/// assert!(err.to_string().starts_with("Vaxila.toml:2:8: "));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// A place in a `Vaxila.toml` (`path` is `None` for [`Config::from_toml_str`](crate::Config::from_toml_str)).
    File {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// 1-based line.
        line: usize,
        /// 1-based column, in characters.
        column: usize,
    },
    /// An environment variable.
    Env(String),
    /// A `Config::with_*` call in the program.
    Code(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File { path, line, column } => {
                let name = path
                    .as_deref()
                    .map_or_else(|| "Vaxila.toml".into(), |p| p.display().to_string());
                write!(f, "{name}:{line}:{column}")
            }
            Self::Env(var) => write!(f, "environment variable {var}"),
            Self::Code(call) => write!(f, "Config::{call}"),
        }
    }
}

/// Everything that can go wrong while configuring, starting, flushing or
/// stopping the pipeline.
///
/// Every message says where the problem is (the file, line and column, the
/// environment variable or the builder call) and what would be accepted. No
/// message ever contains the token or a header value.
///
/// ```
/// let err = vaxila::Config::from_toml_str("[exporter]\nendpiont = \"http://localhost:4318\"\n")
///     .unwrap_err();
/// assert!(matches!(err, vaxila::Error::UnknownKey { .. }));
/// assert!(err.to_string().contains("did you mean `endpoint`?"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `$VAXILA_CONFIG` names a file that cannot be read.
    #[error("{var} names {}, which cannot be read: {source}", path.display())]
    ConfigNotFound {
        /// The variable, `VAXILA_CONFIG`.
        var: &'static str,
        /// The path it holds.
        path: PathBuf,
        /// Why it cannot be read.
        source: std::io::Error,
    },

    /// A `Vaxila.toml` that was found (or named) but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// A `Vaxila.toml` that is not valid TOML.
    #[error("{origin}: invalid TOML: {message}")]
    Syntax {
        /// Where the parser stopped.
        origin: Origin,
        /// What the TOML parser expected.
        message: String,
    },

    /// A key that `Vaxila.toml` does not have, usually a misspelling.
    #[error(
        "{origin}: unknown key `{key}`{}; valid keys {}: {}",
        suggestion.map(|s| format!(", did you mean `{s}`?")).unwrap_or_default(),
        if section.is_empty() { "at the top level".to_owned() } else { format!("in [{section}]") },
        valid.join(", ")
    )]
    UnknownKey {
        /// Where the key is.
        origin: Origin,
        /// The key as written, dotted with its section (`exporter.endpiont`).
        key: String,
        /// The section it is in, empty at the top level.
        section: &'static str,
        /// The closest valid key, if one is close.
        suggestion: Option<&'static str>,
        /// Every valid key of the section.
        valid: &'static [&'static str],
    },

    /// A value of the wrong type or out of range.
    #[error("{origin}: `{key}` {problem}")]
    InvalidValue {
        /// Where the value was set.
        origin: Origin,
        /// The setting (`batch.max_queue_size`, `OTEL_BSP_MAX_QUEUE_SIZE`).
        key: String,
        /// What is wrong and what is expected, never the value of a secret.
        problem: String,
    },

    /// An exporter kind other than `auto`, `otlp`, `console` or `none`.
    #[error("{origin}: unknown exporter kind `{value}`; expected one of auto, otlp, console, none")]
    UnknownExporter {
        /// Where it was set.
        origin: Origin,
        /// The kind as written.
        value: String,
    },

    /// An endpoint that is not an `http://` or `https://` URL with a host.
    #[error(
        "{origin}: `{endpoint}` is not a valid endpoint URL: {reason} (for example https://telemetry.vaxila-labs.com/v1/traces or http://localhost:4318/v1/traces)"
    )]
    InvalidEndpoint {
        /// Where it was set.
        origin: Origin,
        /// The endpoint as written, with any `user:password@` removed.
        endpoint: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A timeout below zero.
    #[error(
        "{origin}: the export timeout cannot be negative (got {value} ms); use a number of milliseconds such as 10000"
    )]
    NegativeTimeout {
        /// Where it was set.
        origin: Origin,
        /// The value as written.
        value: i64,
    },

    /// A header name that HTTP does not allow, or a value with characters it does not allow.
    #[error("{origin}: header `{name}` is not a valid HTTP header ({what} is malformed)")]
    InvalidHeader {
        /// Where it was set.
        origin: Origin,
        /// The header name (its value is never shown).
        name: String,
        /// `name` or `value`.
        what: &'static str,
    },

    /// `[exporter] token_file` names a file that cannot be read.
    #[error("{origin}: cannot read the token file {}: {source}", path.display())]
    TokenFile {
        /// Where `token_file` was set.
        origin: Origin,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// `init` was called while the [`Guard`](crate::Guard) of an earlier call is alive.
    #[error(
        "vaxila is already initialised: keep the Guard of the first `init` call and drop it when the program ends"
    )]
    AlreadyInitialized,

    /// The HTTPS client could not be set up.
    #[error("cannot set up TLS for the OTLP exporter: {0}")]
    Tls(#[source] rustls::Error),

    /// The OTLP exporter rejected its configuration.
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),

    /// The export thread could not be started (the system is out of threads).
    #[error("cannot start the export thread: {0}")]
    Thread(#[source] std::io::Error),

    /// Exporting or shutting down failed (the endpoint refused, was unreachable, ...).
    #[error("{operation} failed: {source}")]
    Export {
        /// `flush` or `shutdown`.
        operation: &'static str,
        /// What the SDK reported.
        source: opentelemetry_sdk::error::OTelSdkError,
    },

    /// A flush or shutdown did not finish before its deadline; spans still
    /// queued may be lost.
    #[error("{operation} did not finish within {after:?}; spans still queued may be lost")]
    Timeout {
        /// `flush` or `shutdown`.
        operation: &'static str,
        /// The deadline.
        after: Duration,
    },
}
