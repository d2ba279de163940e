//! Every configuration mistake gets a message that says where it is and what
//! would be accepted; no message, `Debug` or `Display` ever shows a secret.

use std::path::PathBuf;

use vaxila::{Config, Error};

const TOKEN: &str = "vx_secret_token_do_not_print";

fn file_error(toml: &str) -> String {
    Config::from_toml_str(toml).unwrap_err().to_string()
}

fn env_error(vars: &[(&str, &str)]) -> String {
    Config::default()
        .with_env(vars.iter().copied())
        .resolve()
        .unwrap_err()
        .to_string()
}

/// A `Vaxila.toml` in a fresh directory under the system temp dir.
fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "vaxila-config-errors-{}-{name}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("Vaxila.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_misspelt_key_names_file_line_column_key_the_closest_key_and_the_valid_ones() {
    let path = temp_file(
        "misspelt",
        "[service]\nname = \"x\"\n\n[exporter]\nkind = \"otlp\"\nendpiont = \"http://localhost:4318/v1/traces\"\n",
    );
    let err = Config::from_path(&path).unwrap_err();
    let Error::UnknownKey {
        key,
        suggestion,
        origin,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(key, "exporter.endpiont");
    assert_eq!(*suggestion, Some("endpoint"));
    assert_eq!(
        origin,
        &vaxila::Origin::File {
            path: Some(path.clone()),
            line: 6,
            column: 1
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "{}:6:1: unknown key `exporter.endpiont`, did you mean `endpoint`?; valid keys in [exporter]: kind, endpoint, token_env, token_file, compression, timeout_ms, headers",
            path.display()
        )
    );
}

#[test]
fn an_unknown_section_lists_the_sections() {
    assert_eq!(
        file_error("[servise]\nname = \"x\"\n"),
        "Vaxila.toml:1:2: unknown key `servise`, did you mean `service`?; valid keys at the top level: service, exporter, batch, sampler, resource, tracing, limits"
    );
}

#[test]
fn a_key_far_from_every_valid_one_gets_no_suggestion() {
    assert_eq!(
        file_error("[batch]\nparallelism = 4\n"),
        "Vaxila.toml:2:1: unknown key `batch.parallelism`; valid keys in [batch]: max_queue_size, max_export_batch_size, scheduled_delay_ms"
    );
}

#[test]
fn malformed_toml_names_line_and_column() {
    assert_eq!(
        file_error("[service]\nname = \"unterminated\n"),
        "Vaxila.toml:2:21: invalid TOML: invalid basic string, expected `\"`"
    );
}

#[test]
fn a_value_of_the_wrong_type_names_the_key_and_the_type_expected() {
    assert_eq!(
        file_error("[batch]\nmax_queue_size = \"big\"\n"),
        "Vaxila.toml:2:18: `batch.max_queue_size` must be a whole number, not a string"
    );
    assert_eq!(
        file_error("[sampler]\nratio = 2\n"),
        "Vaxila.toml:2:9: `sampler.ratio` must be a number from 0.0 to 1.0"
    );
    assert_eq!(
        file_error("exporter = 3\n"),
        "Vaxila.toml:1:12: `exporter` must be a table: write it as [exporter]"
    );
}

#[test]
fn an_unknown_kind_is_its_own_error_in_the_file_and_the_environment() {
    assert_eq!(
        file_error("[exporter]\nkind = \"kafka\"\n"),
        "Vaxila.toml:2:8: unknown exporter kind `kafka`; expected one of auto, otlp, console, none"
    );
    assert_eq!(
        env_error(&[("VAXILA_EXPORTER", "jaeger")]),
        "environment variable VAXILA_EXPORTER: unknown exporter kind `jaeger`; expected one of auto, otlp, console, none"
    );
}

#[test]
fn a_negative_timeout_is_its_own_error_in_the_file_and_the_environment() {
    let err = Config::from_toml_str("[exporter]\ntimeout_ms = -1\n").unwrap_err();
    assert!(
        matches!(err, Error::NegativeTimeout { value: -1, .. }),
        "{err:?}"
    );
    assert_eq!(
        env_error(&[("OTEL_EXPORTER_OTLP_TIMEOUT", "-250")]),
        "environment variable OTEL_EXPORTER_OTLP_TIMEOUT: the export timeout cannot be negative (got -250 ms); use a number of milliseconds such as 10000"
    );
}

#[test]
fn a_bad_endpoint_is_its_own_error_wherever_it_is_set() {
    assert_eq!(
        file_error("[exporter]\nendpoint = \"localhost:4318\"\n"),
        "Vaxila.toml:2:12: `localhost:4318` is not a valid endpoint URL: it has no http:// or https:// scheme (for example https://telemetry.vaxila-labs.com/v1/traces or http://localhost:4318/v1/traces)"
    );
    let err = env_error(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "grpc://collector:4317")]);
    assert!(
        err.starts_with("environment variable OTEL_EXPORTER_OTLP_ENDPOINT: `grpc://collector:4317/v1/traces` is not a valid endpoint URL: only http:// and https:// are supported"),
        "{err}"
    );
    let err = Config::default()
        .with_endpoint("http:// spaces")
        .resolve()
        .unwrap_err();
    assert!(
        err.to_string().starts_with(
            "Config::with_endpoint: `http:// spaces` is not a valid endpoint URL: it is not a URL"
        ),
        "{err}"
    );
}

#[test]
fn a_missing_token_file_names_the_path_relative_to_the_config_file() {
    let path = temp_file("token-file", "[exporter]\ntoken_file = \"missing-token\"\n");
    let err = Config::from_path(&path).unwrap().resolve().unwrap_err();
    let expected_path = path.parent().unwrap().join("missing-token");
    assert!(
        err.to_string().starts_with(&format!(
            "{}:2:14: cannot read the token file {}: ",
            path.display(),
            expected_path.display()
        )),
        "{err}"
    );
}

#[test]
fn a_token_http_cannot_carry_is_an_error_that_never_shows_it() {
    let path = temp_file("two-line-token", "[exporter]\ntoken_file = \"token\"\n");
    std::fs::write(
        path.with_file_name("token"),
        "vx_first_line\nvx_second_line\n",
    )
    .unwrap();
    let err = Config::from_path(&path).unwrap().resolve().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}:2:14: header `X-Vaxila-Token` is not a valid HTTP header (value is malformed)",
            path.display()
        )
    );
    assert!(!format!("{err:?}").contains("vx_first_line"));

    assert_eq!(
        env_error(&[("VAXILA_TOKEN", "vx_a\u{7}b")]),
        "environment variable VAXILA_TOKEN: header `X-Vaxila-Token` is not a valid HTTP header (value is malformed)"
    );
}

#[test]
fn an_empty_token_variable_is_no_token() {
    let settings = Config::default()
        .with_env([("VAXILA_TOKEN", "  ")])
        .resolve()
        .unwrap();
    assert!(settings.token.is_none());
    assert_eq!(
        settings.exporter,
        vaxila::Exporter::Console,
        "auto falls back to the console"
    );
}

#[test]
fn a_missing_config_file_names_its_path() {
    let err = Config::from_path("/nonexistent/dir/Vaxila.toml").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot read /nonexistent/dir/Vaxila.toml: "),
        "{err}"
    );
}

#[test]
fn bad_environment_values_name_the_variable() {
    for (vars, expected) in [
        (
            &[("OTEL_SDK_DISABLED", "yes")][..],
            "environment variable OTEL_SDK_DISABLED: `OTEL_SDK_DISABLED` must be true or false, not `yes`",
        ),
        (
            &[("OTEL_BSP_MAX_QUEUE_SIZE", "0")][..],
            "environment variable OTEL_BSP_MAX_QUEUE_SIZE: `OTEL_BSP_MAX_QUEUE_SIZE` must be at least 1, not `0`",
        ),
        (
            &[("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")][..],
            "environment variable OTEL_EXPORTER_OTLP_COMPRESSION: `OTEL_EXPORTER_OTLP_COMPRESSION` must be gzip or none, not `zstd`",
        ),
        (
            &[("OTEL_TRACES_SAMPLER", "jaeger_remote")][..],
            "environment variable OTEL_TRACES_SAMPLER: `OTEL_TRACES_SAMPLER` must be always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio, not `jaeger_remote`",
        ),
        (
            &[
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "1.5"),
            ][..],
            "environment variable OTEL_TRACES_SAMPLER_ARG: `OTEL_TRACES_SAMPLER_ARG` must be a number from 0.0 to 1.0, not 1.5",
        ),
        (
            &[("OTEL_RESOURCE_ATTRIBUTES", "novalue")][..],
            "environment variable OTEL_RESOURCE_ATTRIBUTES: `OTEL_RESOURCE_ATTRIBUTES` must be a comma-separated list of key=value pairs; `novalue` has no `=`",
        ),
    ] {
        assert_eq!(env_error(vars), expected);
    }
}

#[test]
fn the_token_never_appears_in_debug_display_or_errors() {
    let config =
        Config::from_toml_str("[exporter]\nheaders = { \"x-api-key\" = \"header-secret\" }\n")
            .unwrap()
            .with_env([
                ("VAXILA_TOKEN", TOKEN),
                (
                    "OTEL_EXPORTER_OTLP_HEADERS",
                    "authorization=Bearer%20env-secret",
                ),
            ])
            .with_header("x-other", "code-secret");
    let settings = config.resolve().unwrap();
    assert_eq!(settings.token.as_ref().unwrap().expose(), TOKEN);
    let shown = format!("{config:?} {settings:?} {:#?}", settings);
    for secret in [TOKEN, "header-secret", "env-secret", "code-secret"] {
        assert!(!shown.contains(secret), "{secret} shown in {shown}");
    }
    assert!(shown.contains("Secret([REDACTED])"));

    // A header that HTTP rejects is named, its value is not.
    let err = Config::default()
        .with_env([(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("x-token={TOKEN}%0A").as_str(),
        )])
        .resolve()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "environment variable OTEL_EXPORTER_OTLP_HEADERS: header `x-token` is not a valid HTTP header (value is malformed)"
    );
    assert!(!format!("{err:?}").contains(TOKEN));

    // A malformed header list shows neither the value nor what follows the name.
    let err = Config::default()
        .with_env([(
            "OTEL_EXPORTER_OTLP_HEADERS",
            format!("x-token:{TOKEN}").as_str(),
        )])
        .resolve()
        .unwrap_err();
    assert!(!err.to_string().contains(TOKEN), "{err}");
    assert!(!format!("{err:?}").contains(TOKEN), "{err:?}");
}

#[test]
fn a_complete_example_file_is_accepted() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/Vaxila.toml");
    let settings = Config::from_path(&path)
        .unwrap()
        .with_env([("A", "b")])
        .resolve()
        .unwrap();
    assert_eq!(settings.service_name, "acme_service");
    assert_eq!(
        settings
            .resource
            .iter()
            .find(|(k, _)| k == "team.name")
            .unwrap()
            .1
            .to_string(),
        "payments"
    );
}

#[test]
fn a_bad_tracing_filter_names_where_it_was_written() {
    let resolve = |config: Config| config.resolve().unwrap_err().to_string();
    let file = Config::from_toml_str("[tracing]\nfilter = \"info,hyper=loud\"\n")
        .unwrap()
        .with_env([("A", "b")]);
    assert_eq!(
        resolve(file),
        "Vaxila.toml:2:10: `tracing.filter` is not a valid filter: in `hyper=loud`, error parsing level filter: expected one of \"off\", \"error\", \"warn\", \"info\", \"debug\", \"trace\", or a number 0-5; write directives such as `info` or `info,my_crate=debug,hyper=warn`"
    );
    for var in ["VAXILA_LOG", "RUST_LOG"] {
        assert_eq!(
            env_error(&[(var, "[{")]),
            format!(
                "environment variable {var}: `{var}` is not a valid filter: in `[{{`, invalid filter directive; write directives such as `info` or `info,my_crate=debug,hyper=warn`"
            )
        );
    }
    let code = Config::default()
        .with_env([("A", "b")])
        .with_tracing_filter("=");
    assert!(
        resolve(code)
            .starts_with("Config::with_tracing_filter: `tracing.filter` is not a valid filter"),
    );
    // A bad RUST_LOG under a good VAXILA_LOG is never read.
    Config::default()
        .with_env([("VAXILA_LOG", "warn"), ("RUST_LOG", "[{")])
        .resolve()
        .unwrap();
}
