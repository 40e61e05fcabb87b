//! Named volumes on the real engine: created with skiff's labels, writable by a function
//! running as root with every capability dropped, read-only when asked, and kept across
//! `skiff rm`, a redeploy and the daemon's shutdown. A volume skiff did not create is
//! mounted only when the operator allows it (`--allow-volume`), at deploy and after a
//! restart alike.

use reqwest::StatusCode;
use serde_json::json;
use skiff_testing::cli::assert_one_error_line;
use skiff_testing::{skiff_bin, Daemon, TestVolume};

async fn logs_of_last_call(d: &Daemon, function: &str) -> String {
    let page = d
        .get_json(&format!("/v1/calls?function={function}&limit=1"))
        .await;
    let id = page["calls"][0]["id"].as_str().expect("a call").to_string();
    d.logs(&id).await
}

#[tokio::test]
async fn a_volume_is_labelled_writable_read_only_on_demand_and_outlives_its_functions() {
    if !skiff_testing::ready() {
        return;
    }
    // Declared first, dropped last: the daemon and its containers go before the volume.
    let volume = TestVolume::new("skiff-test-volume");
    let mut d = Daemon::start(skiff_bin!(), &[]).await;
    assert!(!volume.exists());
    let writable = format!("{}:/data", volume.name);
    let view = d.deploy("store",
        json!({"image": "skiff/testfn:latest", "env": {"MODE": "volume"}, "volumes": [writable]}),
    )
    .await;
    assert_eq!(view["volumes"], json!([writable]));
    let labels = volume.labels();
    assert_eq!(
        labels.get("skiff.managed").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        labels.get("skiff.volume").map(String::as_str),
        Some(volume.name.as_str())
    );

    // The function (root, no capabilities, read-only root) creates and renames files in it.
    assert_eq!(
        d.call("store", "one\n").await.status_text(),
        (StatusCode::OK, "one\n".to_string())
    );
    assert_eq!(
        d.call("store", "two\n").await.status_text(),
        (StatusCode::OK, "one\ntwo\n".to_string())
    );

    // Mounted read-only, it reads but cannot be written.
    let read_only = format!("{}:/data:ro", volume.name);
    d.deploy(
        "reader",
        json!({"image": "skiff/testfn:latest", "env": {"MODE": "volume"}, "volumes": [read_only]}),
    )
    .await;
    assert_eq!(
        d.call("reader", "").await.status_text(),
        (StatusCode::OK, "one\ntwo\n".to_string())
    );
    let (status, body) = d.call("reader", "three\n").await.status_text();
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    let logs = logs_of_last_call(&d, "reader").await;
    assert!(logs.contains("Read-only file system"), "{logs}");

    // `skiff rm` keeps the volume; the function deployed again finds its data.
    let rm = std::process::Command::new(skiff_bin!())
        .env("SKIFF_CLI_CONFIG", d.cli_config())
        .args(["rm", "store", "--url", &d.url])
        .output()
        .expect("skiff rm");
    assert!(rm.status.success(), "{rm:?}");
    assert!(volume.exists(), "skiff rm removes no volume");
    d.deploy(
        "store",
        json!({"image": "skiff/testfn:latest", "env": {"MODE": "volume"}, "volumes": [writable]}),
    )
    .await;
    assert_eq!(
        d.call("store", "three\n").await.status_text(),
        (StatusCode::OK, "one\ntwo\nthree\n".to_string())
    );

    // Nor does a restart or a stop of the daemon.
    assert!(d.terminate().await, "clean exit:\n{}", d.log());
    assert!(volume.exists(), "a stopped daemon removes no volume");
    d.restart().await;
    assert_eq!(
        d.call("store", "").await.status_text(),
        (StatusCode::OK, "one\ntwo\nthree\n".to_string())
    );
    d.stop().await;
    assert!(volume.exists());
}

#[tokio::test]
async fn host_paths_and_reserved_targets_are_refused() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    for (volume, says) in [
        ("/etc:/data", "host path"),
        ("data1:/tmp", "reserved"),
        ("data1:/", "over `/`"),
        ("data1:/data:rwx", "mount mode"),
    ] {
        let (status, body) = d
            .put_function(
                "bad",
                json!({"image": "skiff/testfn:latest", "volumes": [volume]}),
            )
            .await
            .status_json();
        assert_eq!(status, StatusCode::BAD_REQUEST, "{volume}");
        assert_eq!(body["error"]["code"], "invalid_spec");
        assert_eq!(body["error"]["field"], "volumes[0]");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{volume}: {message}");
    }
    // The CLI refuses a host path before asking the daemon, in one line.
    let out = std::process::Command::new(skiff_bin!())
        .env("SKIFF_CLI_CONFIG", d.cli_config())
        .args([
            "deploy",
            "bad",
            "--image",
            "skiff/testfn:latest",
            "--volume",
            "/etc:/data",
            "--url",
            &d.url,
        ])
        .output()
        .expect("skiff deploy");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("host path"), "{stderr}");
    d.stop().await;
}

#[tokio::test]
async fn a_volume_skiff_did_not_create_is_refused_unless_the_operator_allows_it() {
    if !skiff_testing::ready() {
        return;
    }
    let volume = TestVolume::new("skiff-test-foreign");
    volume.create_unlabelled();
    let d = Daemon::start(skiff_bin!(), &[]).await;
    let mount = format!("{}:/data", volume.name);
    let spec =
        json!({"image": "skiff/testfn:latest", "env": {"MODE": "volume"}, "volumes": [mount]});
    let (status, body) = d.put_function("foreign", spec.clone()).await.status_json();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_spec");
    assert_eq!(body["error"]["field"], "volumes");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(&volume.name) && message.contains("--allow-volume"),
        "{message}"
    );
    let (status, _) = d.call("foreign", "x\n").await.status_text();
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was deployed");

    // The CLI: one readable line, exit 1.
    let out = std::process::Command::new(skiff_bin!())
        .env("SKIFF_CLI_CONFIG", d.cli_config())
        .args([
            "deploy",
            "foreign",
            "--image",
            "skiff/testfn:latest",
            "--env",
            "MODE=volume",
            "--volume",
            &mount,
            "--url",
            &d.url,
        ])
        .output()
        .expect("skiff deploy");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = assert_one_error_line(&out);
    assert!(
        stderr.contains(&volume.name) && stderr.contains("--allow-volume"),
        "{stderr}"
    );
    // skiff left the volume as it was.
    assert!(volume.labels().is_empty(), "{:?}", volume.labels());
    d.stop().await;

    // Allowed by the operator, it is mounted and written.
    let d = Daemon::start(skiff_bin!(), &["--allow-volume", &volume.name]).await;
    let (status, body) = d.put_function("foreign", spec).await.status_json();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        d.call("foreign", "kept\n").await.status_text(),
        (StatusCode::OK, "kept\n".to_string())
    );
    d.stop().await;
}

#[tokio::test]
async fn a_volume_replaced_by_a_foreign_one_is_not_mounted_after_a_restart() {
    if !skiff_testing::ready() {
        return;
    }
    let volume = TestVolume::new("skiff-test-replaced");
    let mut d = Daemon::start(skiff_bin!(), &[]).await;
    let mount = format!("{}:/data", volume.name);
    d.deploy(
        "store",
        json!({"image": "skiff/testfn:latest", "env": {"MODE": "volume"}, "volumes": [mount]}),
    )
    .await;
    d.deploy(
        "web",
        json!({"image": "skiff/echo-http:latest", "contract": "http", "readiness_path": "/ready",
               "min_instances": 1, "volumes": [format!("{}:/data:ro", volume.name)]}),
    )
    .await;
    assert_eq!(
        d.call("store", "one\n").await.status_text(),
        (StatusCode::OK, "one\n".to_string())
    );
    assert!(d.terminate().await, "clean exit:\n{}", d.log());

    // Someone replaces it with a volume of their own.
    volume.create_unlabelled();
    d.restart().await;

    // The functions are still there, but nothing mounts the foreign volume: calls fail
    // with start_failed, naming it, and no instance starts for `web`.
    let view = d.get_json("/v1/functions/store").await;
    assert_eq!(view["volumes"], json!([mount]));
    for function in ["store", "web"] {
        let (status, body) = d.invoke(function, "two\n").await.status_json();
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{function}");
        assert_eq!(body["error"]["code"], "start_failed", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&volume.name) && message.contains("--allow-volume"),
            "{message}"
        );
    }
    let instances = d.get_json("/v1/functions/web/instances").await;
    assert_eq!(instances["instances"], json!([]), "{instances}");
    assert!(d.containers().is_empty(), "{:?}", d.containers());
    assert!(d.plain_log().contains(&volume.name), "{}", d.log());
    assert!(volume.labels().is_empty(), "skiff left it as it was");

    // Deploying it again is refused the same way as any new deploy.
    let (status, body) = d
        .put_function(
            "store",
            json!({"image": "skiff/testfn:latest", "env": {"MODE": "volume"}, "volumes": [mount]}),
        )
        .await
        .status_json();
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["field"], "volumes");
    d.stop().await;
}
