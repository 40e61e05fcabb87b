//! Checks on what the `skiff` command line prints.

use std::process::Output;

/// Asserts that the command failed and said why in one line, `error: ...`, on stderr;
/// returns that stderr.
pub fn assert_one_error_line(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "expected a failure: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one readable line, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    stderr
}
