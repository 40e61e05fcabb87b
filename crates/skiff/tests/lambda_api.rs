//! AWS clients against skiff's Lambda API: boto3 (and the AWS CLI when installed) drive the
//! whole lifecycle of a function in `tests/python/lambda_lifecycle.py`.

use skiff_testing::Daemon;
use std::path::Path;
use std::process::Command;

#[tokio::test]
async fn boto3_drives_the_whole_lifecycle() {
    if !skiff_testing::ready() {
        return;
    }
    let has_boto3 = Command::new("python3")
        .args(["-c", "import boto3"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !has_boto3 {
        let in_ci = std::env::var("CI")
            .map(|v| v == "true" || v == "1")
            .unwrap_or(false);
        assert!(
            !in_ci,
            "boto3 must be installed in CI (.ci/run installs it)"
        );
        eprintln!("SKIPPED: boto3 is not installed (pip install boto3)");
        return;
    }
    let d = Daemon::start(Path::new(env!("CARGO_BIN_EXE_skiff")), &[]).await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/lambda_lifecycle.py");
    let run = tokio::task::spawn_blocking({
        let url = d.url.clone();
        move || Command::new("python3").arg(&script).arg(&url).output()
    })
    .await
    .expect("join")
    .expect("run python3");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}\n{}", d.log());
    assert!(stdout.contains("boto3 lifecycle: ok"), "{stdout}");
    eprintln!("{stdout}");
    d.stop().await;
}
