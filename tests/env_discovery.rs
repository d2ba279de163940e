//! `vaxila::init()` reads the real process environment and working directory.
//!
//! It changes both, so it is the only test of this binary (one process, no
//! other thread reading the environment while it changes).

use std::path::Path;

use vaxila::opentelemetry::trace::Tracer as _;
use vaxila_test_support::Receiver;

fn set(var: &str, value: impl AsRef<std::ffi::OsStr>) {
    // SAFETY: this binary has one test, and no other thread reads the
    // environment while it changes: the receiver's thread never does, and
    // every pipeline is shut down before the next change.
    unsafe { std::env::set_var(var, value) }
}

fn unset(var: &str) {
    // SAFETY: as in `set`.
    unsafe { std::env::remove_var(var) }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn init_finds_the_config_through_vaxila_config_or_the_working_directory_and_reads_the_token() {
    let root = std::env::temp_dir().join(format!("vaxila-env-discovery-{}", std::process::id()));
    let receiver = Receiver::start();

    // A missing $VAXILA_CONFIG file is an error that names it.
    let missing = root.join("missing/Vaxila.toml");
    set("VAXILA_CONFIG", &missing);
    let err = vaxila::init().unwrap_err();
    assert!(
        matches!(err, vaxila::Error::ConfigNotFound { .. }),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(&format!(
            "VAXILA_CONFIG names {}, which cannot be read: ",
            missing.display()
        )),
        "{err}"
    );

    // $VAXILA_CONFIG wins over the working directory's file.
    write(
        &root.join("Vaxila.toml"),
        &format!(
            "[service]\nname = \"discovered\"\n[exporter]\nendpoint = \"{}\"\n",
            receiver.endpoint()
        ),
    );
    write(
        &root.join("elsewhere/named.toml"),
        "[service]\nname = \"named\"\n",
    );
    let deep = root.join("a/b");
    std::fs::create_dir_all(&deep).unwrap();
    std::env::set_current_dir(&deep).unwrap();
    set("VAXILA_CONFIG", root.join("elsewhere/named.toml"));
    let settings = vaxila::Config::load().unwrap().resolve().unwrap();
    assert_eq!(settings.service_name, "named");

    // Without it, the nearest parent's Vaxila.toml; the token comes from the real environment.
    unset("VAXILA_CONFIG");
    set("VAXILA_TOKEN", "vx_from_the_environment");
    let guard = vaxila::init().unwrap();
    vaxila::opentelemetry::global::tracer("t").in_span("found", |_| {});
    drop(guard);

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(
        requests[0].header("x-vaxila-token"),
        Some("vx_from_the_environment")
    );
    assert!(
        requests[0]
            .resource_attributes()
            .contains(&("service.name".to_owned(), "discovered".to_owned()))
    );
    assert_eq!(requests[0].spans()[0].name, "found");

    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).unwrap();
    std::fs::remove_dir_all(&root).unwrap();
}
