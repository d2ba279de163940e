//! Tests that need a process of their own: the current test binary run again, on a filter.

use std::fmt;
use std::process::Command;

/// The variable that tells a test run by [`run_child`] which scenario it plays.
pub const CHILD_VAR: &str = "VAXILA_TEST_CHILD";

/// Whether this process was started by [`run_child`] for `scenario`. A test
/// that exists to be run as a child returns at once when it was not, so
/// that it passes, doing nothing, in the ordinary run of its binary.
#[must_use]
pub fn is_child(scenario: &str) -> bool {
    std::env::var(CHILD_VAR).is_ok_and(|v| v == scenario)
}

/// What a child test run printed, and whether it passed.
pub struct ChildOutput {
    /// Whether every test it ran passed.
    pub success: bool,
    /// Its stdout: the harness's report, with the captured output of each
    /// failed test under `---- name stdout ----`.
    pub stdout: String,
    /// Its stderr: what was written to the stderr handle, which the harness
    /// never captures.
    pub stderr: String,
}

impl fmt::Debug for ChildOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "child {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            if self.success { "passed" } else { "failed" },
            self.stdout,
            self.stderr
        )
    }
}

impl ChildOutput {
    /// The captured output of test `name`, as the harness reports a failure:
    /// the lines under `---- name stdout ----`, up to the next report.
    #[must_use]
    pub fn section(&self, name: &str) -> Option<String> {
        let header = format!("---- {name} stdout ----\n");
        let start = self.stdout.find(&header)? + header.len();
        let rest = &self.stdout[start..];
        let end = ["\n---- ", "\nfailures:\n"]
            .iter()
            .filter_map(|marker| rest.find(marker))
            .min()
            .unwrap_or(rest.len());
        Some(rest[..end].to_owned())
    }
}

/// Runs the tests of the current test binary whose names contain `filter`
/// (exactly `filter` with `--exact` in `args`) in a new process, with
/// [`CHILD_VAR`] set to `scenario`, and waits for it.
///
/// The child gets a fresh set of process-global state (the tracer provider,
/// the `tracing` subscriber) and no `VAXILA_*`, `OTEL_*` or `RUST_LOG`
/// variable from this process, so what it does depends on the test alone.
///
/// # Panics
///
/// If the test binary cannot be started.
#[must_use]
pub fn run_child(filter: &str, scenario: &str, args: &[&str]) -> ChildOutput {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = Command::new(exe);
    command
        .arg(filter)
        .args(args)
        .env(CHILD_VAR, scenario)
        .env("RUST_BACKTRACE", "0")
        .env_remove("RUST_LOG");
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("VAXILA_") || name.starts_with("OTEL_") {
            command.env_remove(&*name);
        }
    }
    command.env(CHILD_VAR, scenario);
    let output = command.output().expect("run the test binary");
    ChildOutput {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}
