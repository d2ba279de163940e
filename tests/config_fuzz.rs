//! Property tests of the `Vaxila.toml` loader and the environment parsing:
//! whatever the input, a `Config` or a clear error, never a panic, and never
//! the token in what comes back.
//!
//! A fixed number of cases per property (`CASES`), from a fixed seed in CI
//! (`PROPTEST_RNG_SEED` may vary it locally), so a run is bounded in time.

use proptest::prelude::*;
use proptest::test_runner::{Config as Runner, RngSeed};
use vaxila::Config;

const CASES: u32 = 3_000;
const TOKEN: &str = "vx_fuzz_token_5ecret";

fn runner() -> Runner {
    Runner {
        cases: CASES,
        failure_persistence: None,
        rng_seed: std::env::var("PROPTEST_RNG_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(RngSeed::Fixed(0x7a11a), RngSeed::Fixed),
        ..Runner::default()
    }
}

const SECTIONS: &[&str] = &[
    "service",
    "exporter",
    "batch",
    "sampler",
    "resource",
    "tracing",
    "limits",
    "servise",
    "exporters",
    "",
];

const KEYS: &[&str] = &[
    "name",
    "version",
    "environment",
    "kind",
    "endpoint",
    "token_env",
    "token_file",
    "compression",
    "timeout_ms",
    "headers",
    "max_queue_size",
    "max_export_batch_size",
    "scheduled_delay_ms",
    "ratio",
    "bridge",
    "filter",
    "attribute_value_length",
    "attributes_per_span",
    "events_per_span",
    "attributes_per_event",
    "\"team.name\"",
    "endpiont",
    "timeout",
    "nmae",
];

/// A TOML value of any type, most of them plausible for some key.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[0-9]{1,22}",
        "-?[0-9]{1,3}\\.[0-9]{1,4}",
        "-?[0-9]e[0-9]{1,3}",
        "(nan|inf|-inf)",
        "(true|false)",
        "\"(auto|otlp|console|none|gzip|zstd|OTLP| none |)\"",
        "\"(https?|ftp)://[a-z0-9.:@/\\[\\]?#%-]{0,30}\"",
        "\"[a-zA-Z0-9_=,.;:/ %\\-]{0,30}\"",
        "\"(info|debug,hyper=off|[a-z]+=[a-z]+|=|,,|info,\\[)\"",
        "\\[\\]",
        "\\[(1|\"a\"|true|1.5)(, ?(1|\"a\"|true|1.5)){0,3}\\]",
        "\\{ *\\}",
        "\\{ \"[a-z-]{1,8}\" = \"[^\"\\\\\\n]{0,12}\" \\}",
        "1979-05-27T07:32:00Z",
    ]
}

/// A document of sections and `key = value` lines, now and then broken.
fn document() -> impl Strategy<Value = String> {
    let line = (prop::sample::select(KEYS), value()).prop_map(|(k, v)| format!("{k} = {v}\n"));
    let section = (
        prop::sample::select(SECTIONS),
        prop::collection::vec(line, 0..6),
    )
        .prop_map(|(name, lines)| {
            let header = if name.is_empty() {
                String::new()
            } else {
                format!("[{name}]\n")
            };
            header + &lines.concat()
        });
    (
        prop::collection::vec(section, 0..5),
        prop::option::weighted(0.1, "[\\[\\]=\"{}#\\n a-z0-9]{1,10}"),
    )
        .prop_map(|(sections, noise)| sections.concat() + &noise.unwrap_or_default())
}

const VARS: &[&str] = &[
    "VAXILA_EXPORTER",
    "OTEL_SDK_DISABLED",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_COMPRESSION",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_BSP_SCHEDULE_DELAY",
    "OTEL_BSP_EXPORT_TIMEOUT",
    "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT",
    "OTEL_SPAN_EVENT_COUNT_LIMIT",
    "VAXILA_LOG",
    "RUST_LOG",
];

fn env_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "-?[0-9]{0,22}",
        "[0-9]\\.[0-9]{0,3}",
        "(true|false|TRUE|1|yes|)",
        "(always_on|always_off|traceidratio|parentbased_traceidratio|parentbased_always_off|nope)",
        "(gzip|none|zstd|GZIP)",
        "(https?://[a-z0-9.:@/-]{0,20}|localhost:4318|::)",
        "([a-z.%-]{0,8}=[^,]{0,10})(,[a-z.%-]{0,8}=[^,]{0,10}){0,3}",
        "\\PC{0,30}",
    ]
}

/// What a user sees of an outcome: it must never hold the token.
fn shown(outcome: &Result<vaxila::Settings, vaxila::Error>) -> String {
    match outcome {
        Ok(settings) => format!("{settings:?}"),
        Err(error) => format!("{error} {error:?}"),
    }
}

#[test]
fn any_text_is_a_config_or_an_error_that_names_the_file() {
    proptest!(runner(), |(text in "\\PC{0,300}")| {
        if let Err(error) = Config::from_toml_str(&text) {
            let message = error.to_string();
            prop_assert!(message.starts_with("Vaxila.toml:"), "{message}");
        }
    });
}

#[test]
fn structured_documents_load_or_fail_with_a_position_and_never_panic() {
    proptest!(runner(), |(text in document())| {
        match Config::from_toml_str(&text) {
            Ok(config) => {
                let outcome = config.with_env([("VAXILA_TOKEN", TOKEN)]).resolve();
                prop_assert!(!shown(&outcome).contains(TOKEN));
            }
            Err(error) => {
                let message = error.to_string();
                prop_assert!(message.starts_with("Vaxila.toml:"), "{message}\n{text}");
                prop_assert!(!message.is_empty());
            }
        }
    });
}

#[test]
fn any_environment_resolves_or_names_the_variable_and_never_leaks_the_token() {
    let vars = prop::collection::vec((prop::sample::select(VARS), env_value()), 0..8);
    proptest!(runner(), |(vars in vars)| {
        let outcome = Config::default()
            .with_env(
                vars.iter()
                    .map(|(k, v)| (*k, v.as_str()))
                    .chain([("VAXILA_TOKEN", TOKEN)]),
            )
            .resolve();
        prop_assert!(!shown(&outcome).contains(TOKEN));
        if let Err(error) = &outcome {
            let message = error.to_string();
            prop_assert!(
                VARS.iter().any(|var| message.contains(var)),
                "an environment error names its variable: {message}"
            );
        }
    });
}
