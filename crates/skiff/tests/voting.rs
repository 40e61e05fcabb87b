//! The voting example end to end on the real engine: `examples/voting/deploy.sh` deploys
//! vote (http), worker (exec) and result (exec) with the CLI; votes posted at once to the
//! vote function are queued as async calls of the worker through the function API, every
//! one is counted in the volume, and the result function reads the exact tally.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{json, Value};
use skiff_testing::{poll, skiff_bin, Daemon, TestVolume};
use std::time::Duration;

/// How often a call's record is looked at while waiting.
const WAIT_EVERY: Duration = Duration::from_millis(200);

/// Waits until call `id` succeeded, for at most `limit`; panics at once if it died.
async fn wait_succeeded(d: &Daemon, id: &str, limit: Duration) -> Value {
    let mut record = Value::Null;
    let succeeded = poll(limit, WAIT_EVERY, async || {
        record = d.call_record(id).await;
        assert_ne!(
            record["status"],
            "dead",
            "the worker call {id} died: {record}\n{}",
            d.log()
        );
        (record["status"] == "succeeded").then(|| record.clone())
    })
    .await;
    succeeded.unwrap_or_else(|| panic!("call {id} did not succeed in {limit:?}: {record}"))
}

#[tokio::test]
async fn votes_are_queued_counted_once_each_and_read_back() {
    if !skiff_testing::ready() {
        return;
    }
    let volume = TestVolume::new("skiff-test-voting");
    let d = Daemon::start(skiff_bin!(), &[]).await;
    let script = skiff_testing::repo_root().join("examples/voting/deploy.sh");
    let deployed = std::process::Command::new("bash")
        .arg(&script)
        .env("SKIFF", skiff_bin!())
        .env("SKIFF_URL", &d.url)
        .env("SKIFF_CLI_CONFIG", d.cli_config())
        .env_remove("SKIFF_TOKEN")
        .env("VOTING_VOLUME", &volume.name)
        .output()
        .expect("deploy.sh");
    assert!(
        deployed.status.success(),
        "{}{}",
        String::from_utf8_lossy(&deployed.stdout),
        String::from_utf8_lossy(&deployed.stderr)
    );
    let client = d.client();
    let worker = d.get_json("/v1/functions/worker").await;
    assert_eq!(worker["volumes"], json!([format!("{}:/data", volume.name)]));
    assert_eq!(
        volume.labels().get("skiff.managed").map(String::as_str),
        Some("true")
    );

    // Before any vote, every choice is at zero.
    let empty = client
        .get(format!("{}/fn/result", d.url))
        .send()
        .await
        .expect("result");
    assert_eq!(empty.status(), StatusCode::OK);
    let empty: Value = serde_json::from_slice(&empty.bytes().await.expect("body")).expect("json");
    assert_eq!(empty, json!({"cats": 0, "dogs": 0}));

    // A bad vote is refused by the vote function itself.
    let bad = client
        .post(format!("{}/fn/vote", d.url))
        .json(&json!({"choice": "birds"}))
        .send()
        .await
        .expect("vote");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);

    // 20 votes at once: 14 for cats, 6 for dogs.
    let votes = (0..20).map(|i| {
        let client = client.clone();
        let url = format!("{}/fn/vote", d.url);
        let choice = if i % 3 == 2 { "dogs" } else { "cats" };
        async move {
            let response = client
                .post(url)
                .json(&json!({"choice": choice}))
                .send()
                .await
                .expect("vote");
            let status = response.status();
            let body: Value = response.json().await.expect("json");
            assert_eq!(status, StatusCode::ACCEPTED, "{body}");
            assert_eq!(body["choice"], choice);
            body["call_id"].as_str().expect("a call id").to_string()
        }
    });
    let ids = join_all(votes).await;
    assert_eq!(ids.len(), 20);
    for id in &ids {
        let record = wait_succeeded(&d, id, Duration::from_secs(120)).await;
        assert_eq!(record["function"], "worker");
        assert_eq!(record["trigger"], "async");
        assert_eq!(record["caller"], "vote", "{record}");
        assert_eq!(record["depth"], 1, "{record}");
    }
    assert!(
        d.plain_log().contains("function_api{caller=vote instance="),
        "calls through the function API name their caller"
    );

    let tally = client
        .get(format!("{}/fn/result", d.url))
        .send()
        .await
        .expect("result");
    assert_eq!(tally.status(), StatusCode::OK);
    let tally: Value = serde_json::from_slice(&tally.bytes().await.expect("body")).expect("json");
    assert_eq!(tally, json!({"cats": 14, "dogs": 6}), "no vote lost");
    d.stop().await;
    assert!(volume.exists(), "the tally outlives the daemon");
}
