//! `Vaxila.toml`: finding it, and reading it strictly, with the place of every value.

use std::path::{Path, PathBuf};
use std::time::Duration;

use opentelemetry::Value;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{Compression, Exporter, Secret, env::Env, validate_endpoint, validate_header};
use crate::error::{Error, Origin};

/// The file name looked for in the working directory and its parents.
pub const CONFIG_FILE_NAME: &str = "Vaxila.toml";

/// The sections of `Vaxila.toml`.
pub(crate) const SECTIONS: &[&str] = &[
    "service", "exporter", "batch", "sampler", "resource", "tracing", "limits",
];
const SERVICE_KEYS: &[&str] = &["name", "version", "environment"];
const EXPORTER_KEYS: &[&str] = &[
    "kind",
    "endpoint",
    "token_env",
    "token_file",
    "compression",
    "timeout_ms",
    "headers",
];
const BATCH_KEYS: &[&str] = &[
    "max_queue_size",
    "max_export_batch_size",
    "scheduled_delay_ms",
];
const SAMPLER_KEYS: &[&str] = &["ratio"];
const TRACING_KEYS: &[&str] = &["bridge", "filter"];
const LIMITS_KEYS: &[&str] = &[
    "attribute_value_length",
    "attributes_per_span",
    "events_per_span",
    "attributes_per_event",
];

/// A value and where it was written.
#[derive(Clone, Debug)]
pub(crate) struct At<T> {
    pub(crate) value: T,
    pub(crate) origin: Origin,
}

/// What a `Vaxila.toml` says, checked and typed. Absent keys are `None`.
#[derive(Clone, Debug, Default)]
pub(crate) struct FileConfig {
    pub(crate) path: Option<PathBuf>,
    pub(crate) service_name: Option<At<String>>,
    pub(crate) service_version: Option<At<String>>,
    pub(crate) environment: Option<At<String>>,
    pub(crate) kind: Option<At<Exporter>>,
    pub(crate) endpoint: Option<At<String>>,
    pub(crate) token_env: Option<At<String>>,
    pub(crate) token_file: Option<At<PathBuf>>,
    pub(crate) compression: Option<At<Compression>>,
    pub(crate) timeout: Option<At<Duration>>,
    pub(crate) headers: Vec<(String, Secret)>,
    pub(crate) max_queue_size: Option<At<usize>>,
    pub(crate) max_export_batch_size: Option<At<usize>>,
    pub(crate) scheduled_delay: Option<At<Duration>>,
    pub(crate) ratio: Option<At<f64>>,
    pub(crate) resource: Vec<(String, Value)>,
    pub(crate) bridge: Option<bool>,
    pub(crate) filter: Option<At<String>>,
    pub(crate) attribute_value_length: Option<At<usize>>,
    pub(crate) attributes_per_span: Option<At<usize>>,
    pub(crate) events_per_span: Option<At<usize>>,
    pub(crate) attributes_per_event: Option<At<usize>>,
}

/// `$VAXILA_CONFIG`, else `Vaxila.toml` in `cwd` or the nearest parent that
/// has one; `None` when there is none.
pub(crate) fn discover(env: &Env, cwd: Option<&Path>) -> Result<Option<FileConfig>, Error> {
    if let Some(path) = env.get(super::VAXILA_CONFIG)? {
        let path = PathBuf::from(path);
        let text = std::fs::read_to_string(&path).map_err(|source| Error::ConfigNotFound {
            var: super::VAXILA_CONFIG,
            path: path.clone(),
            source,
        })?;
        return parse(&text, Some(path)).map(Some);
    }
    let Some(cwd) = cwd else { return Ok(None) };
    for dir in cwd.ancestors() {
        let candidate = dir.join(CONFIG_FILE_NAME);
        if candidate.is_file() {
            return read(&candidate).map(Some);
        }
    }
    Ok(None)
}

pub(crate) fn read(path: &Path) -> Result<FileConfig, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
        path: path.to_owned(),
        source,
    })?;
    parse(&text, Some(path.to_owned()))
}

pub(crate) fn parse(text: &str, path: Option<PathBuf>) -> Result<FileConfig, Error> {
    let doc = Doc { text, path: &path };
    let table = DeTable::parse(text).map_err(|e| Error::Syntax {
        origin: doc.origin(e.span().map_or(0, |s| s.start)),
        message: e.message().trim().to_owned(),
    })?;
    let mut config = FileConfig {
        path: path.clone(),
        ..FileConfig::default()
    };
    for (key, value) in in_file_order(table.get_ref()) {
        let name = key.get_ref().as_ref();
        let Some(section) = SECTIONS.iter().copied().find(|s| *s == name) else {
            return Err(doc.unknown(key, "", SECTIONS));
        };
        let DeValue::Table(entries) = value.get_ref() else {
            return Err(doc.invalid(
                value,
                section,
                format!("must be a table: write it as [{section}]"),
            ));
        };
        match section {
            "service" => doc.service(entries, &mut config)?,
            "exporter" => doc.exporter(entries, &mut config)?,
            "batch" => doc.batch(entries, &mut config)?,
            "sampler" => doc.sampler(entries, &mut config)?,
            "resource" => doc.resource(entries, &mut config)?,
            "limits" => doc.limits(entries, &mut config)?,
            _ => doc.tracing(entries, &mut config)?,
        }
    }
    Ok(config)
}

type Entry<'a, 'i> = (
    &'a Spanned<std::borrow::Cow<'i, str>>,
    &'a Spanned<DeValue<'i>>,
);

/// Entries sorted by position, so the first mistake reported is the first in the file.
fn in_file_order<'a, 'i>(table: &'a DeTable<'i>) -> Vec<Entry<'a, 'i>> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

struct Doc<'a> {
    text: &'a str,
    path: &'a Option<PathBuf>,
}

impl Doc<'_> {
    fn origin(&self, offset: usize) -> Origin {
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Origin::File {
            path: self.path.clone(),
            line,
            column,
        }
    }

    fn at<T>(&self, value: &Spanned<DeValue<'_>>, typed: T) -> At<T> {
        At {
            value: typed,
            origin: self.origin(value.span().start),
        }
    }

    fn unknown(
        &self,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        section: &'static str,
        valid: &'static [&'static str],
    ) -> Error {
        let name = key.get_ref().as_ref();
        Error::UnknownKey {
            origin: self.origin(key.span().start),
            key: if section.is_empty() {
                name.to_owned()
            } else {
                format!("{section}.{name}")
            },
            section,
            suggestion: closest(name, valid),
            valid,
        }
    }

    fn invalid(
        &self,
        value: &Spanned<DeValue<'_>>,
        key: &str,
        problem: impl Into<String>,
    ) -> Error {
        Error::InvalidValue {
            origin: self.origin(value.span().start),
            key: key.to_owned(),
            problem: problem.into(),
        }
    }

    fn string(&self, value: &Spanned<DeValue<'_>>, key: &str) -> Result<String, Error> {
        match value.get_ref() {
            DeValue::String(s) => Ok(s.to_string()),
            other => Err(self.invalid(
                value,
                key,
                format!("must be a string, not {}", kind_of(other)),
            )),
        }
    }

    fn integer(&self, value: &Spanned<DeValue<'_>>, key: &str) -> Result<i64, Error> {
        match value.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .map_err(|_| self.invalid(value, key, "is too large")),
            other => Err(self.invalid(
                value,
                key,
                format!("must be a whole number, not {}", kind_of(other)),
            )),
        }
    }

    fn positive(&self, value: &Spanned<DeValue<'_>>, key: &str) -> Result<At<usize>, Error> {
        let n = self.integer(value, key)?;
        match usize::try_from(n) {
            Ok(n) if n > 0 => Ok(self.at(value, n)),
            _ => Err(self.invalid(value, key, format!("must be at least 1, not {n}"))),
        }
    }

    fn millis(&self, value: &Spanned<DeValue<'_>>, key: &str) -> Result<At<Duration>, Error> {
        let ms = self.integer(value, key)?;
        let ms = u64::try_from(ms)
            .map_err(|_| self.invalid(value, key, format!("cannot be negative (got {ms})")))?;
        Ok(self.at(value, Duration::from_millis(ms)))
    }

    fn boolean(&self, value: &Spanned<DeValue<'_>>, key: &str) -> Result<bool, Error> {
        match value.get_ref() {
            DeValue::Boolean(b) => Ok(*b),
            other => Err(self.invalid(
                value,
                key,
                format!("must be true or false, not {}", kind_of(other)),
            )),
        }
    }

    fn service(&self, entries: &DeTable<'_>, config: &mut FileConfig) -> Result<(), Error> {
        for (key, value) in in_file_order(entries) {
            match key.get_ref().as_ref() {
                "name" => {
                    config.service_name = Some(self.at(value, self.string(value, "service.name")?))
                }
                "version" => {
                    config.service_version =
                        Some(self.at(value, self.string(value, "service.version")?))
                }
                "environment" => {
                    config.environment =
                        Some(self.at(value, self.string(value, "service.environment")?));
                }
                _ => return Err(self.unknown(key, "service", SERVICE_KEYS)),
            }
        }
        Ok(())
    }

    fn exporter(&self, entries: &DeTable<'_>, config: &mut FileConfig) -> Result<(), Error> {
        for (key, value) in in_file_order(entries) {
            let origin = self.origin(value.span().start);
            match key.get_ref().as_ref() {
                "kind" => {
                    let kind = self.string(value, "exporter.kind")?;
                    let parsed = Exporter::parse(&kind).ok_or_else(|| Error::UnknownExporter {
                        origin: origin.clone(),
                        value: kind,
                    })?;
                    config.kind = Some(self.at(value, parsed));
                }
                "endpoint" => {
                    let endpoint = self.string(value, "exporter.endpoint")?;
                    let endpoint = validate_endpoint(&origin, &endpoint)?;
                    config.endpoint = Some(self.at(value, endpoint));
                }
                "token_env" => {
                    let var = self.string(value, "exporter.token_env")?;
                    if var.is_empty() || var.contains(['=', '\0']) {
                        return Err(self.invalid(
                            value,
                            "exporter.token_env",
                            "must be the name of an environment variable, such as VAXILA_TOKEN",
                        ));
                    }
                    config.token_env = Some(self.at(value, var));
                }
                "token_file" => {
                    let file = PathBuf::from(self.string(value, "exporter.token_file")?);
                    // Relative to the file that names it, not to wherever the program runs.
                    let file = match self.path.as_deref().and_then(Path::parent) {
                        Some(dir) if file.is_relative() => dir.join(file),
                        _ => file,
                    };
                    config.token_file = Some(self.at(value, file));
                }
                "compression" => {
                    let text = self.string(value, "exporter.compression")?;
                    let compression = Compression::parse(&text).ok_or_else(|| {
                        self.invalid(
                            value,
                            "exporter.compression",
                            format!("must be \"gzip\" or \"none\", not \"{text}\""),
                        )
                    })?;
                    config.compression = Some(self.at(value, compression));
                }
                "timeout_ms" => {
                    let ms = self.integer(value, "exporter.timeout_ms")?;
                    let ms = u64::try_from(ms)
                        .map_err(|_| Error::NegativeTimeout { origin, value: ms })?;
                    config.timeout = Some(self.at(value, Duration::from_millis(ms)));
                }
                "headers" => {
                    let DeValue::Table(headers) = value.get_ref() else {
                        return Err(self.invalid(
                            value,
                            "exporter.headers",
                            "must be a table of strings, such as { \"x-team\" = \"payments\" }",
                        ));
                    };
                    for (name, header) in in_file_order(headers) {
                        let name = name.get_ref().to_string();
                        let DeValue::String(text) = header.get_ref() else {
                            return Err(self.invalid(
                                header,
                                &format!("exporter.headers.{name}"),
                                "must be a string",
                            ));
                        };
                        validate_header(&self.origin(header.span().start), &name, text)?;
                        config.headers.push((name, Secret::new(text.to_string())));
                    }
                }
                _ => return Err(self.unknown(key, "exporter", EXPORTER_KEYS)),
            }
        }
        Ok(())
    }

    fn batch(&self, entries: &DeTable<'_>, config: &mut FileConfig) -> Result<(), Error> {
        for (key, value) in in_file_order(entries) {
            match key.get_ref().as_ref() {
                "max_queue_size" => {
                    config.max_queue_size = Some(self.positive(value, "batch.max_queue_size")?)
                }
                "max_export_batch_size" => {
                    config.max_export_batch_size =
                        Some(self.positive(value, "batch.max_export_batch_size")?);
                }
                "scheduled_delay_ms" => {
                    config.scheduled_delay = Some(self.millis(value, "batch.scheduled_delay_ms")?)
                }
                _ => return Err(self.unknown(key, "batch", BATCH_KEYS)),
            }
        }
        Ok(())
    }

    fn sampler(&self, entries: &DeTable<'_>, config: &mut FileConfig) -> Result<(), Error> {
        for (key, value) in in_file_order(entries) {
            match key.get_ref().as_ref() {
                "ratio" => {
                    let ratio = match value.get_ref() {
                        DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
                        DeValue::Integer(_) => {
                            self.integer(value, "sampler.ratio").ok().map(|i| i as f64)
                        }
                        _ => None,
                    };
                    match ratio {
                        Some(r) if (0.0..=1.0).contains(&r) => {
                            config.ratio = Some(self.at(value, r))
                        }
                        _ => {
                            return Err(self.invalid(
                                value,
                                "sampler.ratio",
                                "must be a number from 0.0 to 1.0",
                            ));
                        }
                    }
                }
                _ => return Err(self.unknown(key, "sampler", SAMPLER_KEYS)),
            }
        }
        Ok(())
    }

    fn resource(&self, entries: &DeTable<'_>, config: &mut FileConfig) -> Result<(), Error> {
        for (key, value) in in_file_order(entries) {
            let name = key.get_ref().to_string();
            let typed = scalar(value.get_ref()).or_else(|| match value.get_ref() {
                DeValue::Array(items) => array(items.iter().map(|i| i.get_ref())),
                _ => None,
            });
            let Some(typed) = typed else {
                return Err(self.invalid(
                    value,
                    &format!("resource.{name}"),
                    "must be a string, number, boolean or an array of one of those",
                ));
            };
            config.resource.push((name, typed));
        }
        Ok(())
    }

    fn limits(&self, entries: &DeTable<'_>, config: &mut FileConfig) -> Result<(), Error> {
        for (key, value) in in_file_order(entries) {
            let name = key.get_ref().as_ref();
            let slot = match name {
                "attribute_value_length" => &mut config.attribute_value_length,
                "attributes_per_span" => &mut config.attributes_per_span,
                "events_per_span" => &mut config.events_per_span,
                "attributes_per_event" => &mut config.attributes_per_event,
                _ => return Err(self.unknown(key, "limits", LIMITS_KEYS)),
            };
            *slot = Some(self.positive(value, &format!("limits.{name}"))?);
        }
        Ok(())
    }

    fn tracing(&self, entries: &DeTable<'_>, config: &mut FileConfig) -> Result<(), Error> {
        for (key, value) in in_file_order(entries) {
            match key.get_ref().as_ref() {
                "bridge" => config.bridge = Some(self.boolean(value, "tracing.bridge")?),
                "filter" => {
                    config.filter = Some(self.at(value, self.string(value, "tracing.filter")?));
                }
                _ => return Err(self.unknown(key, "tracing", TRACING_KEYS)),
            }
        }
        Ok(())
    }
}

fn kind_of(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

fn scalar(value: &DeValue<'_>) -> Option<Value> {
    match value {
        DeValue::String(s) => Some(Value::String(s.to_string().into())),
        DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .ok()
            .map(Value::I64),
        DeValue::Float(f) => f.as_str().parse().ok().map(Value::F64),
        DeValue::Boolean(b) => Some(Value::Bool(*b)),
        _ => None,
    }
}

fn array<'a, 'i: 'a>(items: impl Iterator<Item = &'a DeValue<'i>>) -> Option<Value> {
    let values: Vec<Value> = items.map(scalar).collect::<Option<_>>()?;
    Some(Value::Array(crate::attribute::homogeneous(values)))
}

/// The valid key nearest to `key` by edit distance, if near enough to be a typo.
pub(crate) fn closest(key: &str, valid: &[&'static str]) -> Option<&'static str> {
    let key = key.to_ascii_lowercase();
    valid
        .iter()
        .map(|v| (levenshtein(&key, v), *v))
        .filter(|(d, v)| *d <= (v.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, v)| v)
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_key_is_found_by_edit_distance() {
        assert_eq!(closest("endpiont", EXPORTER_KEYS), Some("endpoint"));
        assert_eq!(closest("timeout", EXPORTER_KEYS), Some("timeout_ms"));
        assert_eq!(closest("nmae", SERVICE_KEYS), Some("name"));
        assert_eq!(closest("Exporter", SECTIONS), Some("exporter"));
        assert_eq!(closest("colour", EXPORTER_KEYS), None);
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let err = parse("[service]\nname = \"ü\"\nnmae = 1\n", None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Vaxila.toml:3:1: unknown key `service.nmae`, did you mean `name`?; valid keys in [service]: name, version, environment"
        );
    }

    #[test]
    fn discovery_prefers_vaxila_config_and_names_a_missing_file() {
        let env = Env::Map(
            [(
                super::super::VAXILA_CONFIG.to_owned(),
                "/nonexistent/v.toml".to_owned(),
            )]
            .into(),
        );
        let err = discover(&env, None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("VAXILA_CONFIG names /nonexistent/v.toml, which cannot be read"),
            "{err}"
        );
    }

    #[test]
    fn discovery_walks_up_to_the_nearest_parent_with_a_file() {
        let root = std::env::temp_dir().join(format!("vaxila-discover-{}", std::process::id()));
        let deep = root.join("a/b");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(root.join(CONFIG_FILE_NAME), "[service]\nname = \"found\"\n").unwrap();
        let found = discover(&Env::Map(Default::default()), Some(&deep))
            .unwrap()
            .unwrap();
        assert_eq!(found.service_name.unwrap().value, "found");
        assert_eq!(found.path.unwrap(), root.join(CONFIG_FILE_NAME));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
