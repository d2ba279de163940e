//! Configuration: `Vaxila.toml`, the environment and builder calls, resolved in one place.
//!
//! # Precedence
//!
//! For every setting the first source that has it wins:
//!
//! 1. a `Config::with_*` call in the program,
//! 2. the environment (the variables below),
//! 3. `Vaxila.toml`,
//! 4. the defaults below.
//!
//! [`Config::resolve`] is the only code that applies this order. Lists merge
//! in the same order, key by key: resource attributes (`[resource]`, then
//! `OTEL_RESOURCE_ATTRIBUTES`, then [`Config::with_resource_attribute`]) and
//! headers (`[exporter] headers`, then `OTEL_EXPORTER_OTLP_HEADERS`, then
//! `OTEL_EXPORTER_OTLP_TRACES_HEADERS`, then [`Config::with_header`]).
//!
//! # Finding `Vaxila.toml`
//!
//! [`Config::load`] reads the file named by `$VAXILA_CONFIG` (an error if it
//! cannot be read), else `./Vaxila.toml`, else the `Vaxila.toml` of the nearest
//! parent directory; with none, every setting comes from the environment and
//! the defaults.
//!
//! ```
//! use std::time::Duration;
//!
//! let settings = vaxila::Config::from_toml_str(
//!     r#"
//!     [service]
//!     name = "checkout"
//!     [exporter]
//!     timeout_ms = 3000
//!     "#,
//! )?
//! .with_env([("OTEL_EXPORTER_OTLP_TIMEOUT", "5000")]) // the environment beats the file
//! .with_service_name("checkout-v2")                   // and code beats both
//! .resolve()?;
//! assert_eq!(settings.service_name, "checkout-v2");
//! assert_eq!(settings.timeout, Duration::from_millis(5000));
//! # Ok::<(), vaxila::Error>(())
//! ```

mod env;
mod file;
mod secret;

use std::path::{Path, PathBuf};
use std::time::Duration;

use opentelemetry::Value;

use crate::error::{Error, Origin};
use env::{Env, invalid, parse_bool, parse_pairs, parse_timeout_ms, parse_u64};
pub use file::CONFIG_FILE_NAME;
use file::FileConfig;
pub use secret::Secret;

/// Names the `Vaxila.toml` to read instead of looking for one.
pub const VAXILA_CONFIG: &str = "VAXILA_CONFIG";
/// The default variable that holds the Vaxila token (see `[exporter] token_env`).
pub const VAXILA_TOKEN: &str = "VAXILA_TOKEN";
/// `auto`, `otlp`, `console` or `none`: overrides `[exporter] kind`.
pub const VAXILA_EXPORTER: &str = "VAXILA_EXPORTER";
/// `true` turns everything off: `init` installs nothing and sends nothing.
pub const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
/// The service name, over `[service] name`.
pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
/// Extra resource attributes, `key=value,key=value` (values %-encoded).
pub const OTEL_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
/// A base URL: traces go to it plus `/v1/traces`.
pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
/// The full traces URL, used as it is; beats `OTEL_EXPORTER_OTLP_ENDPOINT`.
pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
/// Extra headers, `key=value,key=value` (values %-encoded).
pub const OTEL_EXPORTER_OTLP_HEADERS: &str = "OTEL_EXPORTER_OTLP_HEADERS";
/// Extra headers for traces only; beats `OTEL_EXPORTER_OTLP_HEADERS` key by key.
pub const OTEL_EXPORTER_OTLP_TRACES_HEADERS: &str = "OTEL_EXPORTER_OTLP_TRACES_HEADERS";
/// `gzip` or `none`.
pub const OTEL_EXPORTER_OTLP_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_COMPRESSION";
/// `gzip` or `none`, traces only; beats `OTEL_EXPORTER_OTLP_COMPRESSION`.
pub const OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: &str = "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION";
/// The export timeout in milliseconds.
pub const OTEL_EXPORTER_OTLP_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TIMEOUT";
/// The export timeout in milliseconds, traces only; beats `OTEL_EXPORTER_OTLP_TIMEOUT`.
pub const OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: &str = "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT";
/// `always_on`, `always_off`, `traceidratio`, `parentbased_always_on`,
/// `parentbased_always_off` or `parentbased_traceidratio`.
pub const OTEL_TRACES_SAMPLER: &str = "OTEL_TRACES_SAMPLER";
/// The ratio of the `*traceidratio` samplers, 0.0 to 1.0.
pub const OTEL_TRACES_SAMPLER_ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
/// Milliseconds between two batch exports.
pub const OTEL_BSP_SCHEDULE_DELAY: &str = "OTEL_BSP_SCHEDULE_DELAY";
/// Milliseconds one batch export may take: the export timeout, below the
/// `OTEL_EXPORTER_OTLP_*TIMEOUT` variables (the SDK's batch thread has no
/// separate one).
pub const OTEL_BSP_EXPORT_TIMEOUT: &str = "OTEL_BSP_EXPORT_TIMEOUT";
/// Spans queued for export at most; more are dropped.
pub const OTEL_BSP_MAX_QUEUE_SIZE: &str = "OTEL_BSP_MAX_QUEUE_SIZE";
/// Spans in one export request at most.
pub const OTEL_BSP_MAX_EXPORT_BATCH_SIZE: &str = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE";
/// The longest attribute value, in bytes; longer strings are cut on a
/// character boundary. Unset: no limit.
pub const OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT: &str = "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT";
/// As `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`, for spans; read first.
pub const OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT: &str = "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT";
/// Attributes per span at most; more are dropped and counted.
pub const OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: &str = "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT";
/// As `OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`, read after it.
pub const OTEL_ATTRIBUTE_COUNT_LIMIT: &str = "OTEL_ATTRIBUTE_COUNT_LIMIT";
/// Events per span at most; more are dropped and counted.
pub const OTEL_SPAN_EVENT_COUNT_LIMIT: &str = "OTEL_SPAN_EVENT_COUNT_LIMIT";
/// Attributes per event at most.
pub const OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT: &str = "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT";
/// The OpenTelemetry default of the count limits.
pub const DEFAULT_COUNT_LIMIT: usize = 128;
/// Which `tracing` spans and events the bridge exports (`EnvFilter` syntax),
/// over `RUST_LOG` and `[tracing] filter`.
pub const VAXILA_LOG: &str = "VAXILA_LOG";
/// Which `tracing` spans and events the bridge exports when `VAXILA_LOG` is
/// unset, over `[tracing] filter`.
pub const RUST_LOG: &str = "RUST_LOG";

/// Where traces go by default: Vaxila.
pub const DEFAULT_ENDPOINT: &str = "https://telemetry.vaxila-labs.com/v1/traces";
/// Where a local OpenTelemetry Collector listens for OTLP/HTTP traces.
pub const COLLECTOR_ENDPOINT: &str = "http://localhost:4318/v1/traces";
/// The header that carries the token.
pub const TOKEN_HEADER: &str = "X-Vaxila-Token";
/// The default export timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default queue size of the batch processor.
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 2048;
/// The default number of spans in one export.
pub const DEFAULT_MAX_EXPORT_BATCH_SIZE: usize = 512;
/// The default delay between two batch exports.
pub const DEFAULT_SCHEDULED_DELAY: Duration = Duration::from_secs(5);
/// The default sampling ratio: every trace.
pub const DEFAULT_SAMPLER_RATIO: f64 = 1.0;
/// The default filter of the `tracing` bridge.
pub const DEFAULT_TRACING_FILTER: &str = "info";

/// Where spans go.
///
/// ```
/// let settings = vaxila::Config::default()
///     .with_env([("VAXILA_TOKEN", "vx_123")])
///     .resolve()?;
/// // `auto` sends to Vaxila as soon as there is a token.
/// assert_eq!(settings.exporter, vaxila::Exporter::Otlp);
/// # Ok::<(), vaxila::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Exporter {
    /// `otlp` when a token is found or an endpoint is set explicitly, else
    /// `console` (saying why on stderr).
    #[default]
    Auto,
    /// OTLP/HTTP protobuf to the endpoint (Vaxila or a Collector).
    Otlp,
    /// One line per span on stderr, for debugging.
    Console,
    /// Spans are recorded (for [`testing::capture`](crate::testing::capture)) but sent nowhere.
    None,
}

impl Exporter {
    fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Self::Auto),
            "otlp" => Some(Self::Otlp),
            "console" => Some(Self::Console),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

/// How request bodies are compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// gzip, `Content-Encoding: gzip` (the default).
    #[default]
    Gzip,
    /// Uncompressed.
    None,
}

impl Compression {
    fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "gzip" => Some(Self::Gzip),
            "none" => Some(Self::None),
            _ => None,
        }
    }
}

/// The settings of the batch processor (`[batch]`).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct BatchSettings {
    /// Spans queued for export at most; spans ended while it is full are
    /// dropped. The queue is allocated by `init`, 160 bytes a span (its
    /// length rounded up to a power of two): 320 KiB for the default 2048.
    /// Besides the queue, the pipeline holds three batches at most:
    /// two being sent, the next encoded and waiting for one of them.
    pub max_queue_size: usize,
    /// Spans in one export request at most.
    pub max_export_batch_size: usize,
    /// Time between two exports.
    pub scheduled_delay: Duration,
}

/// Which traces are recorded (`[sampler]`).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct SamplerSettings {
    /// Follow the sampling decision of a parent span when there is one.
    pub parent_based: bool,
    /// The share of new traces recorded, 0.0 to 1.0.
    pub ratio: f64,
}

/// The `tracing` bridge (`[tracing]`).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TracingSettings {
    /// Whether `init` installs a global `tracing` subscriber that exports the
    /// spans of `tracing`-instrumented code; with `false`, only a
    /// [`tracing_layer`](crate::tracing_layer) the program adds exports them.
    pub bridge: bool,
    /// Which `tracing` spans and events are exported, in `EnvFilter` syntax:
    /// `with_tracing_filter`, else `VAXILA_LOG`, else `RUST_LOG`, else
    /// `[tracing] filter`, else `info`.
    pub filter: String,
}

/// How much one span may hold (`[limits]`); the OpenTelemetry defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LimitSettings {
    /// The longest attribute value in bytes (strings, and each string of
    /// an array), cut on a character boundary; `None`: no limit.
    pub attribute_value_length: Option<usize>,
    /// Attributes per span; more are dropped (and counted in the span).
    pub attributes_per_span: usize,
    /// Events per span; more are dropped (and counted in the span).
    pub events_per_span: usize,
    /// Attributes per event.
    pub attributes_per_event: usize,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            attribute_value_length: None,
            attributes_per_span: DEFAULT_COUNT_LIMIT,
            events_per_span: DEFAULT_COUNT_LIMIT,
            attributes_per_event: DEFAULT_COUNT_LIMIT,
        }
    }
}

/// A configuration with every source applied: what `init` will build.
///
/// Its `Debug` never shows the token or header values.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Settings {
    /// `OTEL_SDK_DISABLED=true`: `init` installs nothing.
    pub disabled: bool,
    /// Where spans go; never [`Exporter::Auto`], which is resolved here.
    pub exporter: Exporter,
    /// Why `auto` chose the console, when it did.
    pub exporter_reason: Option<String>,
    /// `service.name`.
    pub service_name: String,
    /// `service.version`.
    pub service_version: Option<String>,
    /// `deployment.environment.name` (and `deployment.environment`).
    pub environment: Option<String>,
    /// Extra resource attributes, merged from `[resource]`,
    /// `OTEL_RESOURCE_ATTRIBUTES` and the builder.
    pub resource: Vec<(String, Value)>,
    /// The OTLP/HTTP traces URL.
    pub endpoint: String,
    /// The Vaxila token, sent as `X-Vaxila-Token`.
    pub token: Option<Secret>,
    /// Extra request headers.
    pub headers: Vec<(String, Secret)>,
    /// Request body compression.
    pub compression: Compression,
    /// How long one export request may take, retries included.
    pub timeout: Duration,
    /// The batch processor.
    pub batch: BatchSettings,
    /// The sampler.
    pub sampler: SamplerSettings,
    /// The `tracing` bridge.
    pub tracing: TracingSettings,
    /// How much one span may hold.
    pub limits: LimitSettings,
    /// The `Vaxila.toml` read, if any.
    pub config_file: Option<PathBuf>,
}

/// The configuration of the pipeline: a `Vaxila.toml` (if any), the
/// environment, and builder calls that override both.
///
/// ```no_run
/// let _guard = vaxila::Config::load()?
///     .with_service_name("checkout")
///     .with_exporter(vaxila::Exporter::Console)
///     .init()?;
/// # Ok::<(), vaxila::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Config {
    file: FileConfig,
    env: Env,
    code: Overrides,
}

/// What `with_*` calls set.
#[derive(Clone, Debug, Default)]
struct Overrides {
    service_name: Option<String>,
    service_version: Option<String>,
    environment: Option<String>,
    exporter: Option<Exporter>,
    endpoint: Option<String>,
    token: Option<Secret>,
    headers: Vec<(String, Secret)>,
    compression: Option<Compression>,
    timeout: Option<Duration>,
    max_queue_size: Option<usize>,
    max_export_batch_size: Option<usize>,
    scheduled_delay: Option<Duration>,
    sampler_ratio: Option<f64>,
    resource: Vec<(String, Value)>,
    bridge: Option<bool>,
    filter: Option<String>,
    attribute_value_length: Option<usize>,
}

/// The first source that has a value; the ones after it are not even read,
/// so a bad variable that is overridden in code is no error.
macro_rules! first {
    ($($source:expr),+ $(,)?) => {{
        let mut found = None;
        $(
            if found.is_none() {
                found = $source;
            }
        )+
        found
    }};
}

impl Config {
    /// Finds and reads `Vaxila.toml` (see [the module docs](crate::config)):
    /// `$VAXILA_CONFIG`, else `./Vaxila.toml`, else the nearest parent's. No
    /// file is no error: every setting then comes from the environment and the
    /// defaults.
    ///
    /// # Errors
    ///
    /// [`Error::ConfigNotFound`] when `$VAXILA_CONFIG` names a file that
    /// cannot be read; [`Error::ReadConfig`], [`Error::Syntax`],
    /// [`Error::UnknownKey`] and the value errors for a bad file.
    ///
    /// ```no_run
    /// let config = vaxila::Config::load()?;
    /// # Ok::<(), vaxila::Error>(())
    /// ```
    pub fn load() -> Result<Self, Error> {
        let cwd = std::env::current_dir().ok();
        let file = file::discover(&Env::Process, cwd.as_deref())?;
        Ok(Self {
            file: file.unwrap_or_default(),
            ..Self::default()
        })
    }

    /// Reads the `Vaxila.toml` at `path`.
    ///
    /// # Errors
    ///
    /// As [`Config::load`] for a bad file; [`Error::ReadConfig`] when it
    /// cannot be read.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self, Error> {
        Ok(Self {
            file: file::read(path.as_ref())?,
            ..Self::default()
        })
    }

    /// Reads `Vaxila.toml` text. Errors name the file `Vaxila.toml`; a
    /// relative `token_file` is relative to the working directory.
    ///
    /// # Errors
    ///
    /// [`Error::Syntax`], [`Error::UnknownKey`] and the value errors.
    ///
    /// ```
    /// let err = vaxila::Config::from_toml_str("[exporter]\ntimeout_ms = -5\n").unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "Vaxila.toml:2:14: the export timeout cannot be negative (got -5 ms); use a number of milliseconds such as 10000"
    /// );
    /// ```
    pub fn from_toml_str(text: &str) -> Result<Self, Error> {
        Ok(Self {
            file: file::parse(text, None)?,
            ..Self::default()
        })
    }

    /// Reads environment variables from `vars` instead of the process
    /// environment: only these exist. For tests, and for programs that want
    /// no environment variable to change their telemetry. (`Config::load`
    /// has already looked for `$VAXILA_CONFIG` in the process environment.)
    ///
    /// ```
    /// let settings = vaxila::Config::default()
    ///     .with_env([("OTEL_SERVICE_NAME", "from-env")])
    ///     .resolve()?;
    /// assert_eq!(settings.service_name, "from-env");
    /// # Ok::<(), vaxila::Error>(())
    /// ```
    #[must_use]
    pub fn with_env<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env = Env::Map(
            vars.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        );
        self
    }

    /// Sets `service.name`.
    #[must_use]
    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        self.code.service_name = Some(name.into());
        self
    }

    /// Sets `service.version`, for example to `env!("CARGO_PKG_VERSION")`.
    #[must_use]
    pub fn with_service_version(mut self, version: impl Into<String>) -> Self {
        self.code.service_version = Some(version.into());
        self
    }

    /// Sets the deployment environment (`production`, `staging`, ...).
    #[must_use]
    pub fn with_environment(mut self, environment: impl Into<String>) -> Self {
        self.code.environment = Some(environment.into());
        self
    }

    /// Chooses where spans go.
    #[must_use]
    pub fn with_exporter(mut self, exporter: Exporter) -> Self {
        self.code.exporter = Some(exporter);
        self
    }

    /// Sends to `endpoint`, the full traces URL (for a Collector,
    /// [`COLLECTOR_ENDPOINT`]). Checked by [`resolve`](Config::resolve).
    ///
    /// ```
    /// let settings = vaxila::Config::default()
    ///     .with_endpoint(vaxila::config::COLLECTOR_ENDPOINT)
    ///     .resolve()?;
    /// assert_eq!(settings.endpoint, "http://localhost:4318/v1/traces");
    /// assert_eq!(settings.exporter, vaxila::Exporter::Otlp); // `auto`: an endpoint was set
    /// # Ok::<(), vaxila::Error>(())
    /// ```
    #[must_use]
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.code.endpoint = Some(endpoint.into());
        self
    }

    /// Sends `token` as `X-Vaxila-Token`, whatever the environment says
    /// (read it from a secret manager, say).
    ///
    /// ```
    /// let config = vaxila::Config::default().with_token("vx_live_123");
    /// assert!(!format!("{config:?}").contains("vx_live_123"));
    /// ```
    #[must_use]
    pub fn with_token(mut self, token: impl Into<Secret>) -> Self {
        self.code.token = Some(token.into());
        self
    }

    /// Adds a request header, over `[exporter] headers` and
    /// `OTEL_EXPORTER_OTLP_HEADERS`. Checked by [`resolve`](Config::resolve);
    /// its value is kept secret like the token.
    ///
    /// ```
    /// let settings = vaxila::Config::default().with_header("x-team", "payments").resolve()?;
    /// assert_eq!(settings.headers[0].0, "x-team");
    /// # Ok::<(), vaxila::Error>(())
    /// ```
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<Secret>) -> Self {
        self.code.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the request body compression.
    #[must_use]
    pub fn with_compression(mut self, compression: Compression) -> Self {
        self.code.compression = Some(compression);
        self
    }

    /// Sets how long one export may take, retries included.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.code.timeout = Some(timeout);
        self
    }

    /// Sets how many spans may wait for export; more are dropped.
    #[must_use]
    pub fn with_max_queue_size(mut self, size: usize) -> Self {
        self.code.max_queue_size = Some(size);
        self
    }

    /// Sets how many spans go in one export request at most.
    #[must_use]
    pub fn with_max_export_batch_size(mut self, size: usize) -> Self {
        self.code.max_export_batch_size = Some(size);
        self
    }

    /// Sets the time between two batch exports.
    #[must_use]
    pub fn with_scheduled_delay(mut self, delay: Duration) -> Self {
        self.code.scheduled_delay = Some(delay);
        self
    }

    /// Cuts attribute values longer than `bytes` (on a character boundary),
    /// over `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT` and `[limits]
    /// attribute_value_length`. Unset, values are sent whole.
    ///
    /// ```
    /// let settings = vaxila::Config::default()
    ///     .with_attribute_value_length_limit(1024)
    ///     .resolve()?;
    /// assert_eq!(settings.limits.attribute_value_length, Some(1024));
    /// # Ok::<(), vaxila::Error>(())
    /// ```
    #[must_use]
    pub fn with_attribute_value_length_limit(mut self, bytes: usize) -> Self {
        self.code.attribute_value_length = Some(bytes);
        self
    }

    /// Records this share of new traces (parent-based: a child follows its
    /// parent's decision). Checked by [`resolve`](Config::resolve).
    #[must_use]
    pub fn with_sampler_ratio(mut self, ratio: f64) -> Self {
        self.code.sampler_ratio = Some(ratio);
        self
    }

    /// Adds a resource attribute, over `[resource]` and `OTEL_RESOURCE_ATTRIBUTES`.
    #[must_use]
    pub fn with_resource_attribute(
        mut self,
        key: impl Into<String>,
        value: impl Into<Value>,
    ) -> Self {
        self.code.resource.push((key.into(), value.into()));
        self
    }

    /// Whether `init` installs a global `tracing` subscriber that exports the
    /// spans of `tracing`-instrumented code (`[tracing] bridge`). Set `false`
    /// when the program adds [`tracing_layer`](crate::tracing_layer) to a
    /// subscriber of its own, or wants no `tracing` spans exported.
    ///
    /// ```
    /// let settings = vaxila::Config::default().with_tracing_bridge(false).resolve()?;
    /// assert!(!settings.tracing.bridge);
    /// # Ok::<(), vaxila::Error>(())
    /// ```
    #[must_use]
    pub fn with_tracing_bridge(mut self, bridge: bool) -> Self {
        self.code.bridge = Some(bridge);
        self
    }

    /// Which `tracing` spans and events the bridge exports, in `EnvFilter`
    /// syntax, over `VAXILA_LOG`, `RUST_LOG` and `[tracing] filter`. Checked
    /// by [`resolve`](Config::resolve).
    ///
    /// ```
    /// let settings = vaxila::Config::default()
    ///     .with_env([("RUST_LOG", "debug")])
    ///     .with_tracing_filter("info,my_app=debug,hyper=off")
    ///     .resolve()?;
    /// assert_eq!(settings.tracing.filter, "info,my_app=debug,hyper=off");
    /// # Ok::<(), vaxila::Error>(())
    /// ```
    #[must_use]
    pub fn with_tracing_filter(mut self, filter: impl Into<String>) -> Self {
        self.code.filter = Some(filter.into());
        self
    }

    /// Builds the pipeline and installs it (see [`crate::init`]).
    ///
    /// # Errors
    ///
    /// Any error of [`resolve`](Config::resolve); [`Error::AlreadyInitialized`]
    /// while the guard of an earlier `init` is alive; [`Error::Tls`] and
    /// [`Error::Exporter`] if the exporter cannot be built.
    pub fn init(self) -> Result<crate::Guard, Error> {
        crate::pipeline::install(self.resolve()?)
    }

    /// Applies every source in precedence order (builder > environment >
    /// `Vaxila.toml` > defaults) and checks the result. This is the only place
    /// that decides which source wins.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidValue`], [`Error::UnknownExporter`],
    /// [`Error::InvalidEndpoint`], [`Error::NegativeTimeout`],
    /// [`Error::InvalidHeader`] for a bad variable or builder value, and
    /// [`Error::TokenFile`] when `token_file` cannot be read.
    pub fn resolve(&self) -> Result<Settings, Error> {
        let (code, env, file) = (&self.code, &self.env, &self.file);

        let disabled = match env.get(OTEL_SDK_DISABLED)? {
            Some(value) => parse_bool(OTEL_SDK_DISABLED, &value)?,
            None => false,
        };

        // Resource attributes: file, then environment, then code, key by key.
        let env_resource = match env.get(OTEL_RESOURCE_ATTRIBUTES)? {
            Some(value) => parse_pairs(OTEL_RESOURCE_ATTRIBUTES, &value, false)?,
            None => Vec::new(),
        };
        let env_attr = |key: &str| {
            env_resource
                .iter()
                .rev()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let mut resource = file.resource.clone();
        for (key, value) in env_resource
            .iter()
            .map(|(k, v)| (k.clone(), Value::from(v.clone())))
        {
            upsert(&mut resource, key, value, false);
        }
        for (key, value) in &code.resource {
            upsert(&mut resource, key.clone(), value.clone(), false);
        }

        let service_name = first!(
            code.service_name.clone(),
            env.get(OTEL_SERVICE_NAME)?,
            env_attr("service.name"),
            file.service_name.as_ref().map(|at| at.value.clone()),
            file.resource
                .iter()
                .find(|(k, _)| k == "service.name")
                .map(|(_, v)| v.to_string()),
        )
        .unwrap_or_else(default_service_name);
        let service_version = first!(
            code.service_version.clone(),
            env_attr("service.version"),
            file.service_version.as_ref().map(|at| at.value.clone()),
        );
        let environment = first!(
            code.environment.clone(),
            env_attr("deployment.environment.name"),
            env_attr("deployment.environment"),
            file.environment.as_ref().map(|at| at.value.clone()),
        );

        let endpoint = first!(
            code.endpoint
                .as_deref()
                .map(|e| validate_endpoint(&Origin::Code("with_endpoint"), e))
                .transpose()?,
            env_endpoint(env, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "")?,
            env_endpoint(env, OTEL_EXPORTER_OTLP_ENDPOINT, "/v1/traces")?,
            file.endpoint.as_ref().map(|at| at.value.clone()),
        );
        let endpoint_explicit = endpoint.is_some();
        let endpoint = endpoint.unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());

        let token_var = file
            .token_env
            .as_ref()
            .map_or(VAXILA_TOKEN, |at| at.value.as_str());
        let token = first!(
            code.token.clone(),
            env.get(token_var)?
                .map(|t| Secret::new(t.trim()))
                // Set but empty is no token: `auto` then prints to the console.
                .filter(|t| !t.expose().is_empty()),
            file.token_file
                .as_ref()
                .map(read_token_file)
                .transpose()?
                .flatten(),
        );
        if let Some(token) = &token {
            // A token HTTP cannot carry (a two-line token file) would
            // otherwise be left out of every request, silently.
            let origin = if code.token.is_some() {
                Origin::Code("with_token")
            } else {
                match &file.token_file {
                    Some(at) if env.get(token_var)?.is_none_or(|t| t.trim().is_empty()) => {
                        at.origin.clone()
                    }
                    _ => Origin::Env(token_var.to_owned()),
                }
            };
            validate_header(&origin, TOKEN_HEADER, token.expose())?;
        }

        let mut headers = file.headers.clone();
        for var in [
            OTEL_EXPORTER_OTLP_HEADERS,
            OTEL_EXPORTER_OTLP_TRACES_HEADERS,
        ] {
            if let Some(value) = env.get(var)? {
                for (name, value) in parse_pairs(var, &value, true)? {
                    validate_header(&Origin::Env(var.to_owned()), &name, &value)?;
                    upsert(&mut headers, name, Secret::new(value), true);
                }
            }
        }
        for (name, value) in &code.headers {
            validate_header(&Origin::Code("with_header"), name, value.expose())?;
            upsert(&mut headers, name.clone(), value.clone(), true);
        }

        let compression = first!(
            code.compression,
            env_compression(env, OTEL_EXPORTER_OTLP_TRACES_COMPRESSION)?,
            env_compression(env, OTEL_EXPORTER_OTLP_COMPRESSION)?,
            file.compression.as_ref().map(|at| at.value),
        )
        .unwrap_or_default();

        let timeout = first!(
            code.timeout,
            env_millis(env, OTEL_EXPORTER_OTLP_TRACES_TIMEOUT)?,
            env_millis(env, OTEL_EXPORTER_OTLP_TIMEOUT)?,
            env_millis(env, OTEL_BSP_EXPORT_TIMEOUT)?,
            file.timeout.as_ref().map(|at| at.value),
        )
        .unwrap_or(DEFAULT_TIMEOUT);

        let batch = BatchSettings {
            max_queue_size: first!(
                code.max_queue_size,
                env_size(env, OTEL_BSP_MAX_QUEUE_SIZE)?,
                file.max_queue_size.as_ref().map(|at| at.value),
            )
            .unwrap_or(DEFAULT_MAX_QUEUE_SIZE),
            max_export_batch_size: first!(
                code.max_export_batch_size,
                env_size(env, OTEL_BSP_MAX_EXPORT_BATCH_SIZE)?,
                file.max_export_batch_size.as_ref().map(|at| at.value),
            )
            .unwrap_or(DEFAULT_MAX_EXPORT_BATCH_SIZE),
            scheduled_delay: first!(
                code.scheduled_delay,
                env_millis(env, OTEL_BSP_SCHEDULE_DELAY)?,
                file.scheduled_delay.as_ref().map(|at| at.value),
            )
            .unwrap_or(DEFAULT_SCHEDULED_DELAY),
        };
        for (size, call) in [
            (code.max_queue_size, "with_max_queue_size"),
            (code.max_export_batch_size, "with_max_export_batch_size"),
            (
                code.attribute_value_length,
                "with_attribute_value_length_limit",
            ),
        ] {
            if size == Some(0) {
                return Err(Error::InvalidValue {
                    origin: Origin::Code(call),
                    key: call.trim_start_matches("with_").to_owned(),
                    problem: "must be at least 1, not 0".to_owned(),
                });
            }
        }

        let sampler = first!(
            code.sampler_ratio
                .map(|ratio| check_ratio(Origin::Code("with_sampler_ratio"), "ratio", ratio))
                .transpose()?
                .map(|ratio| SamplerSettings {
                    parent_based: true,
                    ratio,
                }),
            env_sampler(env)?,
            file.ratio.as_ref().map(|at| SamplerSettings {
                parent_based: true,
                ratio: at.value,
            }),
        )
        .unwrap_or(SamplerSettings {
            parent_based: true,
            ratio: DEFAULT_SAMPLER_RATIO,
        });

        let limits = LimitSettings {
            attribute_value_length: first!(
                code.attribute_value_length,
                env_size(env, OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT)?,
                env_size(env, OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT)?,
                file.attribute_value_length.as_ref().map(|at| at.value),
            ),
            attributes_per_span: first!(
                env_size(env, OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT)?,
                env_size(env, OTEL_ATTRIBUTE_COUNT_LIMIT)?,
                file.attributes_per_span.as_ref().map(|at| at.value),
            )
            .unwrap_or(DEFAULT_COUNT_LIMIT),
            events_per_span: first!(
                env_size(env, OTEL_SPAN_EVENT_COUNT_LIMIT)?,
                file.events_per_span.as_ref().map(|at| at.value),
            )
            .unwrap_or(DEFAULT_COUNT_LIMIT),
            attributes_per_event: first!(
                env_size(env, OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT)?,
                file.attributes_per_event.as_ref().map(|at| at.value),
            )
            .unwrap_or(DEFAULT_COUNT_LIMIT),
        };

        let tracing = TracingSettings {
            bridge: first!(code.bridge, file.bridge).unwrap_or(true),
            filter: tracing_filter(code.filter.as_deref(), env, file.filter.as_ref())?,
        };

        let requested = first!(
            code.exporter,
            match env.get(VAXILA_EXPORTER)? {
                Some(value) => Some(Exporter::parse(&value).ok_or(Error::UnknownExporter {
                    origin: Origin::Env(VAXILA_EXPORTER.to_owned()),
                    value,
                })?),
                None => None,
            },
            file.kind.as_ref().map(|at| at.value),
        )
        .unwrap_or_default();
        let (exporter, exporter_reason) = match requested {
            Exporter::Auto if token.is_some() || endpoint_explicit => (Exporter::Otlp, None),
            Exporter::Auto => (
                Exporter::Console,
                Some(format!(
                    "no token in ${token_var} and no endpoint configured; set {token_var} to send spans to Vaxila, or an endpoint to send them to a Collector"
                )),
            ),
            kind => (kind, None),
        };

        Ok(Settings {
            disabled,
            exporter,
            exporter_reason,
            service_name,
            service_version,
            environment,
            resource,
            endpoint,
            token,
            headers,
            compression,
            timeout,
            batch,
            sampler,
            tracing,
            limits,
            config_file: file.path.clone(),
        })
    }
}

/// The `tracing` filter: `with_tracing_filter`, else `VAXILA_LOG`, else
/// `RUST_LOG`, else `[tracing] filter`, else `info`; checked, so that a typo
/// is an error that names where it was written.
fn tracing_filter(
    code: Option<&str>,
    env: &Env,
    file: Option<&file::At<String>>,
) -> Result<String, Error> {
    let (origin, key, filter) = if let Some(filter) = code {
        (
            Origin::Code("with_tracing_filter"),
            "tracing.filter",
            filter.to_owned(),
        )
    } else if let Some(filter) = env.get(VAXILA_LOG)? {
        (Origin::Env(VAXILA_LOG.to_owned()), VAXILA_LOG, filter)
    } else if let Some(filter) = env.get(RUST_LOG)? {
        (Origin::Env(RUST_LOG.to_owned()), RUST_LOG, filter)
    } else if let Some(at) = file {
        (at.origin.clone(), "tracing.filter", at.value.clone())
    } else {
        return Ok(DEFAULT_TRACING_FILTER.to_owned());
    };
    let filter = filter.trim().to_owned();
    match crate::bridge::check_filter(&filter) {
        Ok(()) => Ok(filter),
        Err(problem) => Err(Error::InvalidValue {
            origin,
            key: key.to_owned(),
            problem: format!(
                "is not a valid filter: {problem}; write directives such as `info` or `info,my_crate=debug,hyper=warn`"
            ),
        }),
    }
}

/// The `tracing` filter of a provider installed without `init`
/// ([`set_tracer_provider`](crate::set_tracer_provider)): `VAXILA_LOG`, else
/// `RUST_LOG`, else `info`, a bad variable counting as unset.
pub(crate) fn process_tracing_filter() -> String {
    tracing_filter(None, &Env::Process, None).unwrap_or_else(|_| DEFAULT_TRACING_FILTER.to_owned())
}

/// The `tracing` filter of the testing kit when no `init` has resolved one:
/// `VAXILA_LOG` if it is set and valid, else `info`. Not `RUST_LOG`, which
/// is often set for a test run's logs and should not change what a test
/// captures.
pub(crate) fn testing_tracing_filter() -> String {
    match Env::Process.get(VAXILA_LOG) {
        Ok(Some(filter)) if crate::bridge::check_filter(filter.trim()).is_ok() => {
            filter.trim().to_owned()
        }
        _ => DEFAULT_TRACING_FILTER.to_owned(),
    }
}

/// Replaces the entry with the same key (ignoring ASCII case for headers), or appends.
fn upsert<V>(list: &mut Vec<(String, V)>, key: String, value: V, ignore_case: bool) {
    let same = |k: &String| {
        if ignore_case {
            k.eq_ignore_ascii_case(&key)
        } else {
            *k == key
        }
    };
    match list.iter_mut().find(|(k, _)| same(k)) {
        Some(entry) => entry.1 = value,
        None => list.push((key, value)),
    }
}

/// `unknown_service:<executable>`, as the OpenTelemetry specification says.
fn default_service_name() -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()));
    match exe {
        Some(exe) => format!("unknown_service:{exe}"),
        None => "unknown_service".to_owned(),
    }
}

fn read_token_file(at: &file::At<PathBuf>) -> Result<Option<Secret>, Error> {
    let text = std::fs::read_to_string(&at.value).map_err(|source| Error::TokenFile {
        origin: at.origin.clone(),
        path: at.value.clone(),
        source,
    })?;
    let token = text.trim();
    Ok((!token.is_empty()).then(|| Secret::new(token)))
}

fn env_endpoint(env: &Env, var: &str, suffix: &str) -> Result<Option<String>, Error> {
    let Some(value) = env.get(var)? else {
        return Ok(None);
    };
    let value = value.trim();
    let full = if suffix.is_empty() {
        value.to_owned()
    } else {
        format!("{}{suffix}", value.trim_end_matches('/'))
    };
    validate_endpoint(&Origin::Env(var.to_owned()), &full).map(Some)
}

fn env_compression(env: &Env, var: &str) -> Result<Option<Compression>, Error> {
    let Some(value) = env.get(var)? else {
        return Ok(None);
    };
    Compression::parse(&value).map(Some).ok_or_else(|| {
        invalid(
            var,
            var,
            format!("must be gzip or none, not `{}`", value.trim()),
        )
    })
}

fn env_millis(env: &Env, var: &str) -> Result<Option<Duration>, Error> {
    let Some(value) = env.get(var)? else {
        return Ok(None);
    };
    parse_timeout_ms(var, &value).map(|ms| Some(Duration::from_millis(ms)))
}

fn env_size(env: &Env, var: &str) -> Result<Option<usize>, Error> {
    let Some(value) = env.get(var)? else {
        return Ok(None);
    };
    match usize::try_from(parse_u64(var, &value)?) {
        Ok(size) if size > 0 => Ok(Some(size)),
        _ => Err(invalid(
            var,
            var,
            format!("must be at least 1, not `{}`", value.trim()),
        )),
    }
}

fn env_sampler(env: &Env) -> Result<Option<SamplerSettings>, Error> {
    let Some(name) = env.get(OTEL_TRACES_SAMPLER)? else {
        return Ok(None);
    };
    let ratio = || -> Result<f64, Error> {
        match env.get(OTEL_TRACES_SAMPLER_ARG)? {
            None => Ok(DEFAULT_SAMPLER_RATIO),
            Some(arg) => match arg.trim().parse::<f64>() {
                Ok(r) => check_ratio(
                    Origin::Env(OTEL_TRACES_SAMPLER_ARG.to_owned()),
                    OTEL_TRACES_SAMPLER_ARG,
                    r,
                ),
                Err(_) => Err(invalid(
                    OTEL_TRACES_SAMPLER_ARG,
                    OTEL_TRACES_SAMPLER_ARG,
                    format!("must be a number from 0.0 to 1.0, not `{}`", arg.trim()),
                )),
            },
        }
    };
    let (parent_based, ratio) = match name.trim().to_ascii_lowercase().as_str() {
        "always_on" => (false, 1.0),
        "always_off" => (false, 0.0),
        "traceidratio" => (false, ratio()?),
        "parentbased_always_on" => (true, 1.0),
        "parentbased_always_off" => (true, 0.0),
        "parentbased_traceidratio" => (true, ratio()?),
        other => {
            return Err(invalid(
                OTEL_TRACES_SAMPLER,
                OTEL_TRACES_SAMPLER,
                format!(
                    "must be always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio, not `{other}`"
                ),
            ));
        }
    };
    Ok(Some(SamplerSettings {
        parent_based,
        ratio,
    }))
}

fn check_ratio(origin: Origin, key: &str, ratio: f64) -> Result<f64, Error> {
    if (0.0..=1.0).contains(&ratio) {
        Ok(ratio)
    } else {
        Err(Error::InvalidValue {
            origin,
            key: key.to_owned(),
            problem: format!("must be a number from 0.0 to 1.0, not {ratio}"),
        })
    }
}

/// An `http://` or `https://` URL with a host, trimmed.
pub(crate) fn validate_endpoint(origin: &Origin, endpoint: &str) -> Result<String, Error> {
    let endpoint = endpoint.trim();
    let fail = |reason| Error::InvalidEndpoint {
        origin: origin.clone(),
        endpoint: without_userinfo(endpoint),
        reason,
    };
    let uri: http::Uri = endpoint.parse().map_err(|_| fail("it is not a URL"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(_) => return Err(fail("only http:// and https:// are supported")),
        None => return Err(fail("it has no http:// or https:// scheme")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(fail("it has no host"));
    }
    Ok(endpoint.to_owned())
}

/// The endpoint as messages show it: no credentials, and no query or
/// fragment (where keys sometimes travel).
pub(crate) fn shown_endpoint(endpoint: &str) -> String {
    let shown = without_userinfo(endpoint);
    match shown.find(['?', '#']) {
        Some(at) => format!("{}?…", &shown[..at]),
        None => shown,
    }
}

/// Credentials in a URL are secrets too: errors show `***@host`.
pub(crate) fn without_userinfo(endpoint: &str) -> String {
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("", endpoint));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) if scheme.is_empty() => format!("***{}", &rest[at..]),
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => endpoint.to_owned(),
    }
}

/// A header HTTP allows; the error names the header, never its value.
pub(crate) fn validate_header(origin: &Origin, name: &str, value: &str) -> Result<(), Error> {
    let fail = |what| Error::InvalidHeader {
        origin: origin.clone(),
        name: name.to_owned(),
        what,
    };
    http::HeaderName::from_bytes(name.as_bytes()).map_err(|_| fail("name"))?;
    http::HeaderValue::from_str(value).map_err(|_| fail("value"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_without_scheme_or_host_are_rejected_without_their_credentials() {
        let origin = Origin::Code("with_endpoint");
        assert!(validate_endpoint(&origin, "http://localhost:4318/v1/traces").is_ok());
        let err = validate_endpoint(&origin, "localhost:4318").unwrap_err();
        assert!(
            err.to_string()
                .contains("it has no http:// or https:// scheme"),
            "{err}"
        );
        let err = validate_endpoint(&origin, "ftp://user:hunter2@host/x").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("ftp://***@host/x"), "{err}");
    }
}
