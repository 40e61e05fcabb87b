//! Retention on the real engine: a call's record, log and async result are deleted once it
//! ended longer ago than `--retention`; until then they are all there.

use reqwest::StatusCode;
use serde_json::json;
use skiff_testing::{skiff_bin, wait_until, Daemon};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_retention_are_deleted_with_their_logs_and_results() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &["--retention", "4s"]).await else {
        return;
    };
    d.deploy("echo", json!({"image": "skiff/testfn:latest"}))
        .await;
    let sync = d.invoke("echo", "kept for a while").await;
    assert_eq!(sync.status, StatusCode::OK, "{}", sync.text());
    let sync_id = sync.call_id().expect("call id");
    let queued = d
        .call_async("/v1/functions/echo/invoke", "async body", None)
        .await;
    assert_eq!(queued.status, StatusCode::ACCEPTED, "{}", queued.text());
    let async_id = queued.call_id().expect("call id");
    d.wait_call(&async_id, "succeeded", Duration::from_secs(60))
        .await;
    // Within the retention, everything is there.
    for id in [&sync_id, &async_id] {
        assert_eq!(
            d.get(&format!("/v1/calls/{id}")).await.status,
            StatusCode::OK
        );
        assert_eq!(
            d.get(&format!("/v1/calls/{id}/logs")).await.status,
            StatusCode::OK
        );
    }
    let record = d.call_record(&async_id).await;
    assert_eq!(record["result"]["body"], "async body", "{record}");
    // Past it, nothing is.
    wait_until(
        "both calls are pruned",
        Duration::from_secs(60),
        async || {
            d.get(&format!("/v1/calls/{sync_id}")).await.status == StatusCode::NOT_FOUND
                && d.get(&format!("/v1/calls/{async_id}")).await.status == StatusCode::NOT_FOUND
        },
    )
    .await;
    for id in [&sync_id, &async_id] {
        let path = format!("/v1/calls/{id}/logs");
        assert_eq!(d.get(&path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    assert!(d.calls("function=echo").await.is_empty());
    d.stop().await;
}
