//! What a test needs before it runs: the Docker engine, the function images, and tools such
//! as `nats-server` or boto3. A missing one fails the test in CI (`CI=true`); elsewhere the
//! test says why and is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether the tests run in CI (`CI=true` or `CI=1`).
fn in_ci() -> bool {
    std::env::var("CI")
        .map(|v| v == "true" || v == "1")
        .unwrap_or(false)
}

/// Whether what a test needs is `there`. When it is not: in CI this panics with `what` and
/// `how` to get it, so the test fails; elsewhere it prints that the test is skipped and
/// returns false, and the caller returns early: `if !needs(found, "nats-server", "...") {
/// return; }`.
pub fn needs(there: bool, what: &str, how: &str) -> bool {
    crate::tls::install_provider();
    if !there {
        assert!(!in_ci(), "this test needs {what}, and CI=true: {how}");
        eprintln!("SKIPPED: this test needs {what} ({how})");
    }
    there
}

/// Whether the Docker engine answers (see [`needs`] for what happens when it does not).
pub fn docker_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    let available = *AVAILABLE.get_or_init(|| {
        Command::new("docker")
            .args(["version", "--format", "{{.Server.APIVersion}}"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    needs(available, "the Docker engine", "Docker must be running")
}

/// Runs the build script `scripts/{name}`; its output when it fails.
fn run_script(name: &str) -> Result<(), String> {
    let script = repo_root().join("scripts").join(name);
    let output = Command::new("bash")
        .arg(&script)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{} failed ({}):\n{}{}",
            script.display(),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Builds the example and test images (`skiff/hello`, `skiff/uppercase`, `skiff/testfn`, ...)
/// once per process with `scripts/build-examples.sh`. Panics if the build fails.
pub fn ensure_images() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(message) = BUILT.get_or_init(|| run_script("build-examples.sh")) {
        panic!("{message}");
    }
}

/// Builds `skiff/python-lambda:latest` once per process with
/// `scripts/build-python-lambda.sh`. Panics if the build fails.
pub fn ensure_python_lambda_image() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(message) = BUILT.get_or_init(|| run_script("build-python-lambda.sh")) {
        panic!("{message}");
    }
}

/// Docker and the images, or an early return: `if !ready() { return; }`.
pub fn ready() -> bool {
    crate::tls::install_provider();
    if !docker_available() {
        return false;
    }
    ensure_images();
    true
}
