//! Helpers shared by skiff's end-to-end tests and benchmarks: the real Docker engine must be
//! there (in CI a missing engine fails the test, it is never skipped silently), and the
//! function images are built from source, FROM scratch, once per test process.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether the Docker engine answers. When it does not: in CI (`CI=true`) this panics, so the
/// test fails; elsewhere it prints why and returns false, and the caller returns early.
pub fn docker_available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    let available = *AVAILABLE.get_or_init(|| {
        Command::new("docker")
            .args(["version", "--format", "{{.Server.APIVersion}}"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    });
    if !available {
        let in_ci = std::env::var("CI").map(|v| v == "true" || v == "1").unwrap_or(false);
        assert!(!in_ci, "this test needs the Docker engine, and CI=true: Docker must be running");
        eprintln!("SKIPPED: the Docker engine is not reachable; this test needs it");
    }
    available
}

/// Builds the example and test images (`skiff/hello`, `skiff/uppercase`, `skiff/testfn`) once
/// per process with `scripts/build-examples.sh`. Panics if the build fails.
pub fn ensure_images() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let script = repo_root().join("scripts/build-examples.sh");
        let output = Command::new("bash")
            .arg(&script)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed:\n{}{}",
                script.display(),
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    if let Err(message) = result {
        panic!("{message}");
    }
}

/// Docker and the images, or an early return: `if !ready() { return; }`.
pub fn ready() -> bool {
    if !docker_available() {
        return false;
    }
    ensure_images();
    true
}
