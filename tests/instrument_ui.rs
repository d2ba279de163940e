//! Compile-time behaviour: every mistake is one error at the offending
//! token, with the function still emitted; user lints still fire.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
