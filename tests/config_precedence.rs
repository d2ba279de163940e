//! Which source wins, setting by setting: builder > environment > Vaxila.toml > defaults.
//!
//! Table-driven; the environment is injected, so nothing here touches the
//! process environment and the rows may run in any order.

use vaxila::{Config, Settings};

struct Case {
    /// What the row proves.
    name: &'static str,
    file: &'static str,
    env: &'static [(&'static str, &'static str)],
    code: fn(Config) -> Config,
    setting: fn(&Settings) -> String,
    expected: &'static str,
}

fn none(config: Config) -> Config {
    config
}

const SERVICE_FILE: &str = "[service]\nname = \"from-file\"\n";
const ENDPOINT_FILE: &str = "[exporter]\nendpoint = \"http://file:4318/v1/traces\"\n";
const TIMEOUT_FILE: &str = "[exporter]\ntimeout_ms = 1000\n";
const LIMITS_FILE: &str = "[limits]\nattribute_value_length = 100\nattributes_per_span = 10\nevents_per_span = 20\nattributes_per_event = 30\n";

fn limits(s: &Settings) -> String {
    let l = &s.limits;
    format!(
        "{:?} {} {} {}",
        l.attribute_value_length, l.attributes_per_span, l.events_per_span, l.attributes_per_event
    )
}

const BATCH_FILE: &str =
    "[batch]\nmax_queue_size = 100\nmax_export_batch_size = 10\nscheduled_delay_ms = 100\n";

fn service(s: &Settings) -> String {
    s.service_name.clone()
}
fn endpoint(s: &Settings) -> String {
    s.endpoint.clone()
}
fn timeout(s: &Settings) -> String {
    s.timeout.as_millis().to_string()
}
fn token(s: &Settings) -> String {
    s.token
        .as_ref()
        .map_or("-".into(), |t| t.expose().to_owned())
}
fn exporter(s: &Settings) -> String {
    format!("{:?}", s.exporter)
}
fn compression(s: &Settings) -> String {
    format!("{:?}", s.compression)
}
fn queue(s: &Settings) -> String {
    s.batch.max_queue_size.to_string()
}
fn batch_size(s: &Settings) -> String {
    s.batch.max_export_batch_size.to_string()
}
fn delay(s: &Settings) -> String {
    s.batch.scheduled_delay.as_millis().to_string()
}
fn sampler(s: &Settings) -> String {
    format!(
        "{} {}",
        if s.sampler.parent_based {
            "parentbased"
        } else {
            "root"
        },
        s.sampler.ratio
    )
}
fn environment(s: &Settings) -> String {
    s.environment.clone().unwrap_or_else(|| "-".into())
}
fn version(s: &Settings) -> String {
    s.service_version.clone().unwrap_or_else(|| "-".into())
}
fn headers(s: &Settings) -> String {
    let mut h: Vec<String> = s
        .headers
        .iter()
        .map(|(k, v)| format!("{k}={}", v.expose()))
        .collect();
    h.sort();
    h.join(",")
}
fn resource(s: &Settings) -> String {
    let mut r: Vec<String> = s.resource.iter().map(|(k, v)| format!("{k}={v}")).collect();
    r.sort();
    r.join(",")
}
fn disabled(s: &Settings) -> String {
    s.disabled.to_string()
}
fn bridge(s: &Settings) -> String {
    format!("{} {}", s.tracing.bridge, s.tracing.filter)
}

const CASES: &[Case] = &[
    // service.name
    Case {
        name: "service name defaults to unknown_service:<exe>",
        file: "",
        env: &[],
        code: none,
        setting: |s| s.service_name.split('-').next().unwrap().to_owned(),
        expected: "unknown_service:config_precedence",
    },
    Case {
        name: "service name from the file",
        file: SERVICE_FILE,
        env: &[],
        code: none,
        setting: service,
        expected: "from-file",
    },
    Case {
        name: "OTEL_RESOURCE_ATTRIBUTES service.name beats the file",
        file: SERVICE_FILE,
        env: &[("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs")],
        code: none,
        setting: service,
        expected: "from-attrs",
    },
    Case {
        name: "OTEL_SERVICE_NAME beats OTEL_RESOURCE_ATTRIBUTES",
        file: SERVICE_FILE,
        env: &[
            ("OTEL_SERVICE_NAME", "from-env"),
            ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
        ],
        code: none,
        setting: service,
        expected: "from-env",
    },
    Case {
        name: "with_service_name beats the environment",
        file: SERVICE_FILE,
        env: &[("OTEL_SERVICE_NAME", "from-env")],
        code: |c| c.with_service_name("from-code"),
        setting: service,
        expected: "from-code",
    },
    Case {
        name: "service version from the file",
        file: "[service]\nversion = \"1.0\"\n",
        env: &[],
        code: none,
        setting: version,
        expected: "1.0",
    },
    Case {
        name: "service version from OTEL_RESOURCE_ATTRIBUTES beats the file",
        file: "[service]\nversion = \"1.0\"\n",
        env: &[("OTEL_RESOURCE_ATTRIBUTES", "service.version=2.0")],
        code: none,
        setting: version,
        expected: "2.0",
    },
    Case {
        name: "with_service_version beats the environment",
        file: "",
        env: &[("OTEL_RESOURCE_ATTRIBUTES", "service.version=2.0")],
        code: |c| c.with_service_version("3.0"),
        setting: version,
        expected: "3.0",
    },
    Case {
        name: "environment from the file",
        file: "[service]\nenvironment = \"staging\"\n",
        env: &[],
        code: none,
        setting: environment,
        expected: "staging",
    },
    Case {
        name: "deployment.environment.name in the environment beats the file",
        file: "[service]\nenvironment = \"staging\"\n",
        env: &[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment.name=prod",
        )],
        code: none,
        setting: environment,
        expected: "prod",
    },
    Case {
        name: "with_environment beats the environment",
        file: "",
        env: &[("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=prod")],
        code: |c| c.with_environment("dev"),
        setting: environment,
        expected: "dev",
    },
    // endpoint
    Case {
        name: "endpoint defaults to Vaxila",
        file: "",
        env: &[],
        code: none,
        setting: endpoint,
        expected: "https://telemetry.vaxila-labs.com/v1/traces",
    },
    Case {
        name: "endpoint from the file",
        file: ENDPOINT_FILE,
        env: &[],
        code: none,
        setting: endpoint,
        expected: "http://file:4318/v1/traces",
    },
    Case {
        name: "OTEL_EXPORTER_OTLP_ENDPOINT gets /v1/traces and beats the file",
        file: ENDPOINT_FILE,
        env: &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")],
        code: none,
        setting: endpoint,
        expected: "http://collector:4318/v1/traces",
    },
    Case {
        name: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as it is and beats the general one",
        file: ENDPOINT_FILE,
        env: &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://traces:4318/custom",
            ),
        ],
        code: none,
        setting: endpoint,
        expected: "http://traces:4318/custom",
    },
    Case {
        name: "with_endpoint beats the environment",
        file: ENDPOINT_FILE,
        env: &[(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://traces:4318/custom",
        )],
        code: |c| c.with_endpoint("http://code:4318/v1/traces"),
        setting: endpoint,
        expected: "http://code:4318/v1/traces",
    },
    // token
    Case {
        name: "no token by default",
        file: "",
        env: &[],
        code: none,
        setting: token,
        expected: "-",
    },
    Case {
        name: "token from VAXILA_TOKEN",
        file: "",
        env: &[("VAXILA_TOKEN", "t-env")],
        code: none,
        setting: token,
        expected: "t-env",
    },
    Case {
        name: "token_env names another variable, and VAXILA_TOKEN is then ignored",
        file: "[exporter]\ntoken_env = \"MY_TOKEN\"\n",
        env: &[("MY_TOKEN", "t-mine"), ("VAXILA_TOKEN", "t-env")],
        code: none,
        setting: token,
        expected: "t-mine",
    },
    Case {
        name: "token_file when the variable is unset",
        file: "[exporter]\ntoken_file = \"tests/data/token.txt\"\n",
        env: &[],
        code: none,
        setting: token,
        expected: "t-file",
    },
    Case {
        name: "the variable beats token_file",
        file: "[exporter]\ntoken_file = \"tests/data/token.txt\"\n",
        env: &[("VAXILA_TOKEN", "t-env")],
        code: none,
        setting: token,
        expected: "t-env",
    },
    Case {
        name: "with_token beats the environment",
        file: "",
        env: &[("VAXILA_TOKEN", "t-env")],
        code: |c| c.with_token("t-code"),
        setting: token,
        expected: "t-code",
    },
    // exporter kind and the auto rule
    Case {
        name: "auto with nothing configured prints to the console",
        file: "",
        env: &[],
        code: none,
        setting: exporter,
        expected: "Console",
    },
    Case {
        name: "auto with a token sends over OTLP",
        file: "",
        env: &[("VAXILA_TOKEN", "t")],
        code: none,
        setting: exporter,
        expected: "Otlp",
    },
    Case {
        name: "auto with an endpoint in the file sends over OTLP",
        file: ENDPOINT_FILE,
        env: &[],
        code: none,
        setting: exporter,
        expected: "Otlp",
    },
    Case {
        name: "auto with an endpoint in the environment sends over OTLP",
        file: "",
        env: &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318")],
        code: none,
        setting: exporter,
        expected: "Otlp",
    },
    Case {
        name: "kind from the file",
        file: "[exporter]\nkind = \"none\"\n",
        env: &[("VAXILA_TOKEN", "t")],
        code: none,
        setting: exporter,
        expected: "None",
    },
    Case {
        name: "VAXILA_EXPORTER beats the file",
        file: "[exporter]\nkind = \"none\"\n",
        env: &[("VAXILA_EXPORTER", "console")],
        code: none,
        setting: exporter,
        expected: "Console",
    },
    Case {
        name: "with_exporter beats the environment",
        file: "",
        env: &[("VAXILA_EXPORTER", "console")],
        code: |c| c.with_exporter(vaxila::Exporter::Otlp),
        setting: exporter,
        expected: "Otlp",
    },
    Case {
        name: "with_exporter(Auto) still applies the auto rule",
        file: "[exporter]\nkind = \"none\"\n",
        env: &[("VAXILA_TOKEN", "t")],
        code: |c| c.with_exporter(vaxila::Exporter::Auto),
        setting: exporter,
        expected: "Otlp",
    },
    // compression
    Case {
        name: "gzip by default",
        file: "",
        env: &[],
        code: none,
        setting: compression,
        expected: "Gzip",
    },
    Case {
        name: "compression from the file",
        file: "[exporter]\ncompression = \"none\"\n",
        env: &[],
        code: none,
        setting: compression,
        expected: "None",
    },
    Case {
        name: "OTEL_EXPORTER_OTLP_COMPRESSION beats the file",
        file: "[exporter]\ncompression = \"none\"\n",
        env: &[("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")],
        code: none,
        setting: compression,
        expected: "Gzip",
    },
    Case {
        name: "the traces compression variable beats the general one",
        file: "",
        env: &[
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
            ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "none"),
        ],
        code: none,
        setting: compression,
        expected: "None",
    },
    Case {
        name: "with_compression beats the environment",
        file: "",
        env: &[("OTEL_EXPORTER_OTLP_COMPRESSION", "none")],
        code: |c| c.with_compression(vaxila::Compression::Gzip),
        setting: compression,
        expected: "Gzip",
    },
    // timeout
    Case {
        name: "timeout defaults to 10 s",
        file: "",
        env: &[],
        code: none,
        setting: timeout,
        expected: "10000",
    },
    Case {
        name: "timeout from the file",
        file: TIMEOUT_FILE,
        env: &[],
        code: none,
        setting: timeout,
        expected: "1000",
    },
    Case {
        name: "OTEL_BSP_EXPORT_TIMEOUT beats the file",
        file: TIMEOUT_FILE,
        env: &[("OTEL_BSP_EXPORT_TIMEOUT", "1500")],
        code: none,
        setting: timeout,
        expected: "1500",
    },
    Case {
        name: "OTEL_EXPORTER_OTLP_TIMEOUT beats OTEL_BSP_EXPORT_TIMEOUT",
        file: TIMEOUT_FILE,
        env: &[
            ("OTEL_BSP_EXPORT_TIMEOUT", "1500"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
        ],
        code: none,
        setting: timeout,
        expected: "2000",
    },
    Case {
        name: "the traces timeout variable beats the general one",
        file: TIMEOUT_FILE,
        env: &[
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "3000"),
        ],
        code: none,
        setting: timeout,
        expected: "3000",
    },
    Case {
        name: "with_timeout beats the environment",
        file: TIMEOUT_FILE,
        env: &[("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "3000")],
        code: |c| c.with_timeout(std::time::Duration::from_millis(4000)),
        setting: timeout,
        expected: "4000",
    },
    // batch
    Case {
        name: "batch defaults",
        file: "",
        env: &[],
        code: none,
        setting: |s| format!("{} {} {}", queue(s), batch_size(s), delay(s)),
        expected: "2048 512 5000",
    },
    Case {
        name: "batch from the file",
        file: BATCH_FILE,
        env: &[],
        code: none,
        setting: |s| format!("{} {} {}", queue(s), batch_size(s), delay(s)),
        expected: "100 10 100",
    },
    Case {
        name: "OTEL_BSP_* beat the file",
        file: BATCH_FILE,
        env: &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "200"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "20"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
        code: none,
        setting: |s| format!("{} {} {}", queue(s), batch_size(s), delay(s)),
        expected: "200 20 200",
    },
    Case {
        name: "builder batch settings beat OTEL_BSP_*",
        file: BATCH_FILE,
        env: &[
            ("OTEL_BSP_MAX_QUEUE_SIZE", "200"),
            ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "20"),
            ("OTEL_BSP_SCHEDULE_DELAY", "200"),
        ],
        code: |c| {
            c.with_max_queue_size(300)
                .with_max_export_batch_size(30)
                .with_scheduled_delay(std::time::Duration::from_millis(300))
        },
        setting: |s| format!("{} {} {}", queue(s), batch_size(s), delay(s)),
        expected: "300 30 300",
    },
    // limits
    Case {
        name: "limits default to OpenTelemetry's",
        file: "",
        env: &[],
        code: none,
        setting: limits,
        expected: "None 128 128 128",
    },
    Case {
        name: "limits from the file",
        file: LIMITS_FILE,
        env: &[],
        code: none,
        setting: limits,
        expected: "Some(100) 10 20 30",
    },
    Case {
        name: "OTEL_*_LIMIT beat the file, the span-specific ones first",
        file: LIMITS_FILE,
        env: &[
            ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "300"),
            ("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "200"),
            ("OTEL_ATTRIBUTE_COUNT_LIMIT", "11"),
            ("OTEL_SPAN_EVENT_COUNT_LIMIT", "21"),
            ("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", "31"),
        ],
        code: none,
        setting: limits,
        expected: "Some(200) 11 21 31",
    },
    Case {
        name: "the builder's value length beats the environment",
        file: LIMITS_FILE,
        env: &[("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "300")],
        code: |c| c.with_attribute_value_length_limit(50),
        setting: limits,
        expected: "Some(50) 10 20 30",
    },
    // sampler
    Case {
        name: "sampler defaults to parent-based, every trace",
        file: "",
        env: &[],
        code: none,
        setting: sampler,
        expected: "parentbased 1",
    },
    Case {
        name: "sampler ratio from the file",
        file: "[sampler]\nratio = 0.25\n",
        env: &[],
        code: none,
        setting: sampler,
        expected: "parentbased 0.25",
    },
    Case {
        name: "OTEL_TRACES_SAMPLER beats the file",
        file: "[sampler]\nratio = 0.25\n",
        env: &[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
        ],
        code: none,
        setting: sampler,
        expected: "root 0.5",
    },
    Case {
        name: "OTEL_TRACES_SAMPLER always_off",
        file: "",
        env: &[("OTEL_TRACES_SAMPLER", "parentbased_always_off")],
        code: none,
        setting: sampler,
        expected: "parentbased 0",
    },
    Case {
        name: "with_sampler_ratio beats the environment",
        file: "",
        env: &[("OTEL_TRACES_SAMPLER", "always_off")],
        code: |c| c.with_sampler_ratio(0.75),
        setting: sampler,
        expected: "parentbased 0.75",
    },
    // merged lists
    Case {
        name: "headers merge key by key, case-insensitively: file < OTLP_HEADERS < TRACES_HEADERS < code",
        file: "[exporter]\nheaders = { \"x-a\" = \"file\", \"x-b\" = \"file\", \"x-c\" = \"file\", \"x-d\" = \"file\" }\n",
        env: &[
            ("OTEL_EXPORTER_OTLP_HEADERS", "X-B=env,x-c=env,x-d=env"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-c=traces,x-d=traces"),
        ],
        code: |c| c.with_header("x-d", "code"),
        setting: headers,
        expected: "x-a=file,x-b=env,x-c=traces,x-d=code",
    },
    Case {
        name: "resource attributes merge key by key: file < OTEL_RESOURCE_ATTRIBUTES < code",
        file: "[resource]\na = \"file\"\nb = \"file\"\nc = 3\n",
        env: &[("OTEL_RESOURCE_ATTRIBUTES", "b=env,c=env")],
        code: |c| c.with_resource_attribute("c", "code"),
        setting: resource,
        expected: "a=file,b=env,c=code",
    },
    // switches
    Case {
        name: "enabled by default",
        file: "",
        env: &[],
        code: none,
        setting: disabled,
        expected: "false",
    },
    Case {
        name: "OTEL_SDK_DISABLED=true disables",
        file: "",
        env: &[("OTEL_SDK_DISABLED", "TRUE")],
        code: none,
        setting: disabled,
        expected: "true",
    },
    Case {
        name: "tracing bridge defaults",
        file: "",
        env: &[],
        code: none,
        setting: bridge,
        expected: "true info",
    },
    Case {
        name: "tracing bridge from the file",
        file: "[tracing]\nbridge = false\nfilter = \"warn\"\n",
        env: &[],
        code: none,
        setting: bridge,
        expected: "false warn",
    },
    Case {
        name: "RUST_LOG beats the file's filter",
        file: "[tracing]\nfilter = \"warn\"\n",
        env: &[("RUST_LOG", "debug")],
        code: none,
        setting: bridge,
        expected: "true debug",
    },
    Case {
        name: "VAXILA_LOG beats RUST_LOG",
        file: "[tracing]\nfilter = \"warn\"\n",
        env: &[("RUST_LOG", "debug"), ("VAXILA_LOG", "info,hyper=off")],
        code: none,
        setting: bridge,
        expected: "true info,hyper=off",
    },
    Case {
        name: "the builder's filter beats VAXILA_LOG",
        file: "",
        env: &[("VAXILA_LOG", "debug")],
        code: |c| c.with_tracing_filter("error"),
        setting: bridge,
        expected: "true error",
    },
    Case {
        name: "builder tracing settings beat the file",
        file: "[tracing]\nbridge = false\nfilter = \"warn\"\n",
        env: &[],
        code: |c| c.with_tracing_bridge(true).with_tracing_filter("debug"),
        setting: bridge,
        expected: "true debug",
    },
];

#[test]
fn builder_beats_environment_beats_file_beats_defaults() {
    let mut failures = Vec::new();
    for case in CASES {
        let config = Config::from_toml_str(case.file)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name))
            .with_env(case.env.iter().copied());
        let settings = (case.code)(config)
            .resolve()
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let actual = (case.setting)(&settings);
        if actual != case.expected {
            failures.push(format!(
                "{}: expected {:?}, got {:?}",
                case.name, case.expected, actual
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn an_overridden_bad_variable_is_not_an_error() {
    // The builder wins, so the variable below it is never read.
    let settings = Config::default()
        .with_env([
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon"),
            ("VAXILA_EXPORTER", "kafka"),
        ])
        .with_timeout(std::time::Duration::from_secs(1))
        .with_exporter(vaxila::Exporter::None)
        .resolve()
        .unwrap();
    assert_eq!(settings.exporter, vaxila::Exporter::None);
}

#[test]
fn auto_says_why_it_chose_the_console() {
    let settings = Config::default().with_env([("A", "b")]).resolve().unwrap();
    let reason = settings.exporter_reason.unwrap();
    assert!(
        reason.contains("no token in $VAXILA_TOKEN and no endpoint configured"),
        "{reason}"
    );
}
