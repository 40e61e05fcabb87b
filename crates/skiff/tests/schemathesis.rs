//! schemathesis (from PyPI) against the daemon's OpenAPI document: every documented
//! operation, a bounded number of generated requests each (`scripts/schemathesis.sh`), no
//! 5xx, no status, content type, header or body outside what the document says.

use skiff_testing::{skiff_bin, Daemon};
use std::path::Path;
use std::time::Duration;

/// Longest the run may take (it takes about a minute on two cores).
const BOUND: Duration = Duration::from_secs(300);

#[tokio::test]
async fn schemathesis_finds_every_answer_documented_and_no_server_error() {
    if !skiff_testing::ready() {
        return;
    }
    let installed = std::process::Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !skiff_testing::needs(
        installed,
        "schemathesis",
        "python3 -m pip install schemathesis (.ci/run does)",
    ) {
        return;
    }
    let d = Daemon::start(skiff_bin!(), &[]).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/schemathesis.sh");
    // Its reports and caches stay out of the work tree.
    let cwd = tempfile::tempdir().expect("tempdir");
    let run = tokio::process::Command::new("bash")
        .arg(&script)
        .arg(&d.url)
        .env("SKIFF_TOKEN", &d.token)
        .current_dir(cwd.path())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(BOUND, run)
        .await
        .unwrap_or_else(|_| panic!("schemathesis took more than {BOUND:?}"))
        .expect("run scripts/schemathesis.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{stdout}\n{stderr}"
    );
    let summary: Vec<&str> = stdout.lines().rev().take(12).collect();
    eprintln!(
        "{}",
        summary.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    assert!(stdout.contains("passed"), "{stdout}");
    d.stop().await;
}
