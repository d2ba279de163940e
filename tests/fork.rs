//! `fork` after `init`, with a real `fork`: a child that calls
//! `reinit_after_fork` exports with its own `process.pid`; one that does not
//! drops its spans with one warning, and neither hangs nor crashes.
#![cfg(unix)]

use std::time::{Duration, Instant};

use vaxila_test_support::{Receiver, is_child, run_child};

/// Forks; the child runs `child` and exits with its code, without returning
/// into the test harness. The parent gets the child's exit code.
fn fork_and_wait(child: impl FnOnce() -> i32) -> i32 {
    // SAFETY: the child only runs `child` and `_exit`s; it never returns into
    // the harness, whose threads are not in the child.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(101);
        // SAFETY: ends the child at once, as a forked child must.
        unsafe { libc::_exit(code) };
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut status = 0;
    loop {
        // SAFETY: `pid` is our child; `status` is a valid out-pointer.
        let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if done == pid {
            break;
        }
        assert!(Instant::now() < deadline, "the forked child hangs");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        libc::WIFEXITED(status),
        "the child crashed: status {status}"
    );
    libc::WEXITSTATUS(status)
}

fn pid_of(receiver: &Receiver, span: &str) -> Option<String> {
    receiver.requests().iter().find_map(|request| {
        request
            .spans()
            .iter()
            .any(|s| s.name == span)
            .then(|| {
                request
                    .resource_attributes()
                    .into_iter()
                    .find(|(k, _)| k == "process.pid")
                    .map(|(_, v)| v)
            })
            .flatten()
    })
}

#[test]
fn a_child_that_reinits_exports_with_its_own_pid_and_one_that_does_not_drops_with_one_warning() {
    if is_child("fork") {
        return scenario();
    }
    let out = run_child(
        "a_child_that_reinits",
        "fork",
        &["--nocapture", "--test-threads=1"],
    );
    assert!(out.success, "{out:?}");
    let warnings = out
        .stderr
        .lines()
        .filter(|l| l.contains("forked after vaxila::init()"))
        .count();
    assert_eq!(
        warnings, 1,
        "one warning in the child that did not reinit: {out:?}"
    );
}

/// Runs in a process of its own, so the harness has no other test threads.
fn scenario() {
    let receiver = Receiver::start();
    let guard = vaxila::Config::default()
        .with_service_name("forking")
        .with_endpoint(receiver.endpoint())
        .with_timeout(Duration::from_secs(5))
        .init()
        .unwrap();
    vaxila::span("before_fork").in_scope(|_| ());

    // A child that calls `reinit_after_fork`: a pipeline of its own.
    let code = fork_and_wait(|| {
        vaxila::reinit_after_fork().unwrap();
        vaxila::span("child_after_reinit").in_scope(|_| ());
        let stats = guard.stats();
        guard.flush().unwrap();
        if stats.dropped != 0 {
            return 2;
        }
        0
    });
    assert_eq!(code, 0, "the child that reinits");

    // A child that does not: its spans are dropped, counted, and its guard
    // returns at once instead of waiting for the parent's thread.
    let code = fork_and_wait(|| {
        vaxila::span("child_without_reinit").in_scope(|_| ());
        vaxila::span("child_without_reinit").in_scope(|_| ());
        let dropped = guard.stats().dropped;
        let started = Instant::now();
        let flushed = guard.flush();
        if dropped != 2 || flushed.is_err() || started.elapsed() > Duration::from_secs(2) {
            return 3;
        }
        0
    });
    assert_eq!(code, 0, "the child that does not reinit");

    // The parent's pipeline is untouched by either child.
    vaxila::span("parent_after_fork").in_scope(|_| ());
    drop(guard);

    let parent = std::process::id().to_string();
    assert_eq!(pid_of(&receiver, "before_fork").as_deref(), Some(&*parent));
    assert_eq!(
        pid_of(&receiver, "parent_after_fork").as_deref(),
        Some(&*parent)
    );
    let child = pid_of(&receiver, "child_after_reinit").expect("the child's span arrived");
    assert_ne!(child, parent, "the child reports its own process.pid");
    assert!(pid_of(&receiver, "child_without_reinit").is_none());
}
