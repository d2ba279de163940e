//! The environment the configuration reads: the process's, or a map a test injects.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Origin};

/// Variables are read through this, so that resolving a configuration in a
/// test never touches (or races on) the process environment.
#[derive(Clone, Default)]
pub(crate) enum Env {
    /// `std::env::var`.
    #[default]
    Process,
    /// Only these variables exist.
    Map(BTreeMap<String, String>),
}

impl fmt::Debug for Env {
    // Names only: an injected map may hold the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Process => f.write_str("Env::Process"),
            Self::Map(map) => f
                .debug_tuple("Env::Map")
                .field(&map.keys().collect::<Vec<_>>())
                .finish(),
        }
    }
}

impl Env {
    /// The value of `name`; unset and empty are the same (as the OpenTelemetry
    /// specification says).
    pub(crate) fn get(&self, name: &str) -> Result<Option<String>, Error> {
        let value = match self {
            Self::Process => match std::env::var(name) {
                Ok(value) => value,
                Err(std::env::VarError::NotPresent) => return Ok(None),
                Err(std::env::VarError::NotUnicode(_)) => {
                    return Err(invalid(name, name, "is not valid UTF-8"));
                }
            },
            Self::Map(map) => match map.get(name) {
                Some(value) => value.clone(),
                None => return Ok(None),
            },
        };
        Ok(Some(value).filter(|v| !v.trim().is_empty()))
    }
}

pub(crate) fn invalid(var: &str, key: &str, problem: impl Into<String>) -> Error {
    Error::InvalidValue {
        origin: Origin::Env(var.to_owned()),
        key: key.to_owned(),
        problem: problem.into(),
    }
}

/// `true`/`false`, any case.
pub(crate) fn parse_bool(var: &str, value: &str) -> Result<bool, Error> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(invalid(
            var,
            var,
            format!("must be true or false, not `{}`", value.trim()),
        )),
    }
}

/// A non-negative integer, such as a size or a number of milliseconds.
pub(crate) fn parse_u64(var: &str, value: &str) -> Result<u64, Error> {
    let value = value.trim();
    value
        .parse::<u64>()
        .map_err(|_| invalid(var, var, format!("must be a whole number, not `{value}`")))
}

/// A timeout in milliseconds; negative ones get their own error.
pub(crate) fn parse_timeout_ms(var: &str, value: &str) -> Result<u64, Error> {
    let trimmed = value.trim();
    match trimmed.parse::<i64>() {
        Ok(ms) if ms < 0 => Err(Error::NegativeTimeout {
            origin: Origin::Env(var.to_owned()),
            value: ms,
        }),
        _ => parse_u64(var, trimmed),
    }
}

/// `key1=value1,key2=value2` with percent-encoded values, the format of
/// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_EXPORTER_OTLP_HEADERS`. With `secret`,
/// error messages leave values out.
pub(crate) fn parse_pairs(
    var: &str,
    value: &str,
    secret: bool,
) -> Result<Vec<(String, String)>, Error> {
    let mut pairs = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((key, val)) = item.split_once('=') else {
            let shown = if secret {
                item.split(':').next().unwrap_or_default()
            } else {
                item
            };
            return Err(invalid(
                var,
                var,
                format!("must be a comma-separated list of key=value pairs; `{shown}` has no `=`"),
            ));
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(invalid(var, var, "has a pair with an empty key"));
        }
        let Some(val) = percent_decode(val.trim()) else {
            return Err(invalid(
                var,
                var,
                format!("has a malformed %-escape in the value of `{key}`"),
            ));
        };
        pairs.push((key.to_owned(), val));
    }
    Ok(pairs)
}

fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_trimmed_and_percent_decoded() {
        let pairs = parse_pairs("V", " a = 1 , b=x%20y,, c=%E2%9C%93", false).unwrap();
        assert_eq!(
            pairs,
            [
                ("a".into(), "1".into()),
                ("b".into(), "x y".into()),
                ("c".into(), "✓".into())
            ]
        );
    }

    #[test]
    fn malformed_pairs_never_show_secret_values() {
        let err = parse_pairs("OTEL_EXPORTER_OTLP_HEADERS", "x-token:hunter2", true).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err =
            parse_pairs("OTEL_EXPORTER_OTLP_HEADERS", "x-token=hunter2%zz", true).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn empty_variables_are_unset() {
        let env = Env::Map([("A".to_owned(), "  ".to_owned())].into());
        assert_eq!(env.get("A").unwrap(), None);
        assert_eq!(env.get("B").unwrap(), None);
    }

    #[test]
    fn debug_shows_names_not_values() {
        let env = Env::Map([("VAXILA_TOKEN".to_owned(), "hunter2".to_owned())].into());
        assert_eq!(format!("{env:?}"), "Env::Map([\"VAXILA_TOKEN\"])");
    }
}
