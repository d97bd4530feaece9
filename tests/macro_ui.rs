//! The compile errors of `#[pool_item]`: each case in `tests/ui/` must fail
//! to compile with the message in its `.stderr` file, pointing at the
//! offending tokens.
//!
//! After a deliberate change of a message, regenerate the files with
//! `TRYBUILD=overwrite cargo test --test macro_ui` and review the diff.

#[test]
fn misuse_is_a_compile_error_at_its_span() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
