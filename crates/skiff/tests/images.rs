//! Images through a registry, on the real engine and Debian's `docker-registry`: `skiff
//! push` sends an image of the engine to the registry, `skiff deploy` of an image the
//! engine lacks pulls it first with its steps shown, and `skiff pull` of an image the
//! registry lacks, or from a registry that is not there, fails with one typed line.

use serde_json::json;
use skiff_testing::{skiff_bin, Daemon, Registry};
use std::process::{Command, Output};

/// Builds an image of `skiff/hello` with a layer of its own (a stamp file), so that a pull
/// of it must download that layer.
fn stamped_image(tag: &str) {
    let dir = tempfile::tempdir().expect("a build context");
    std::fs::write(dir.path().join("stamp"), uuid::Uuid::new_v4().to_string()).expect("stamp");
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM skiff/hello:latest\nCOPY stamp /stamp\n",
    )
    .expect("Dockerfile");
    let built = Command::new("docker")
        .args(["build", "-q", "-t", tag])
        .arg(dir.path())
        .output()
        .expect("docker build");
    assert!(
        built.status.success(),
        "docker build: {}",
        String::from_utf8_lossy(&built.stderr)
    );
}

fn remove_image(tag: &str) {
    let _ = Command::new("docker").args(["rmi", "-f", tag]).output();
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A failed command whose last line of stderr is its error.
fn failed_with(output: &Output) -> String {
    assert!(!output.status.success(), "expected a failure");
    let stderr = text(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("error: "), "{stderr}");
    last
}

#[tokio::test]
async fn an_image_is_pushed_to_a_registry_and_pulled_by_a_deploy_with_its_steps_shown() {
    if !Registry::available() {
        return;
    }
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    let registry = Registry::start().await;
    let local = format!("skiff-test/stamped:{}", uuid::Uuid::new_v4().simple());
    stamped_image(&local);
    let remote = format!("{}/stamped:v1", registry.host());

    // Pushed under the registry's name, with a line per step.
    let pushed = d
        .cli()
        .args(["push", &local, "--to", &remote])
        .output()
        .expect("skiff push");
    let (stdout, stderr) = (text(&pushed.stdout), text(&pushed.stderr));
    assert!(pushed.status.success(), "{stderr}");
    assert!(
        stdout.starts_with(&format!(
            "pushed {remote} ({}/stamped@sha256:",
            registry.host()
        )),
        "{stdout}"
    );
    assert!(stderr.contains(&format!("push {remote}: ")), "{stderr}");
    assert!(stderr.contains("Pushed"), "{stderr}");

    // Gone from the engine: its own layer with it.
    remove_image(&remote);
    remove_image(&local);

    // A deploy of it pulls it, showing the steps, then deploys it pinned.
    let deployed = d
        .cli()
        .args(["deploy", "stamped", "--image", &remote])
        .output()
        .expect("skiff deploy");
    let stderr = text(&deployed.stderr);
    assert!(deployed.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("image {remote} is not on the engine: pulling it")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("pull {remote}: ")), "{stderr}");
    assert!(
        stderr.contains("Pull complete"),
        "the stamp layer was downloaded: {stderr}"
    );
    let function = d.get_json("/v1/functions/stamped").await;
    assert!(
        function["image_digest"]
            .as_str()
            .is_some_and(|id| id.starts_with("sha256:")),
        "{function}"
    );
    let answer = d.call_json("stamped", &json!({"name": "Ann"})).await;
    assert_eq!(answer.text(), "Hello Ann!\n");

    // `skiff pull` of what is there says what it pulled, with its registry digest.
    let pulled = d
        .cli()
        .args(["pull", &remote])
        .output()
        .expect("skiff pull");
    assert!(pulled.status.success(), "{}", text(&pulled.stderr));
    assert!(
        text(&pulled.stdout).starts_with(&format!(
            "pulled {remote} ({}/stamped@sha256:",
            registry.host()
        )),
        "{}",
        text(&pulled.stdout)
    );

    // What the registry lacks, and a registry that is not there: typed errors.
    let missing = format!("{}/nothing:here", registry.host());
    let error = failed_with(&d.cli().args(["pull", &missing]).output().expect("pull"));
    assert!(error.contains("(image_not_found)"), "{error}");
    let error = failed_with(
        &d.cli()
            .args(["deploy", "nothing", "--image", &missing])
            .output()
            .expect("deploy"),
    );
    assert!(error.contains("(image_not_found)"), "{error}");
    let nowhere = format!("127.0.0.1:{}/stamped:v1", skiff_testing::free_port());
    let error = failed_with(&d.cli().args(["pull", &nowhere]).output().expect("pull"));
    assert!(error.contains("(registry_error)"), "{error}");
    // Pushing what the engine does not have.
    let error = failed_with(
        &d.cli()
            .args(["push", "skiff-test/absent:v1", "--to", &remote])
            .output()
            .expect("push"),
    );
    assert!(error.contains("(image_not_found)"), "{error}");

    // A name the engine cannot parse.
    let error = failed_with(
        &d.cli()
            .args(["push", &remote, "--to", "UPPER/case:v1"])
            .output()
            .expect("push"),
    );
    assert!(error.contains("(invalid_spec)"), "{error}");

    d.stop().await;
    remove_image(&remote);
}
