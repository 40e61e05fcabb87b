//! Daemons on a PostgreSQL store (`skiff serve --store postgres://...`), on the real
//! engine and a real PostgreSQL server (`SKIFF_TEST_POSTGRES`; see `scripts/postgres.sh`).

use reqwest::StatusCode;
use serde_json::json;
use skiff_testing::{skiff_bin, Daemon, TestDatabase};
use std::time::Duration;

#[tokio::test]
async fn a_daemon_on_postgres_runs_calls_and_finds_its_functions_after_a_restart() {
    if !skiff_testing::ready() {
        return;
    }
    let Some(db) = TestDatabase::create("skiff_restart").await else {
        return;
    };
    let mut d = Daemon::start(skiff_bin!(), &["--store", &db.url]).await;
    assert!(
        d.plain_log().contains("store=\"postgres\"") || d.plain_log().contains("store=postgres"),
        "the daemon says which store it uses:\n{}",
        d.plain_log()
    );
    d.deploy(
        "hello",
        json!({"image": "skiff/hello:latest", "timeout": "10s"}),
    )
    .await;
    let answer = d.invoke("hello", r#"{"name":"Ann"}"#).await;
    assert_eq!(
        answer.status_text(),
        (StatusCode::OK, "Hello Ann!\n".into())
    );
    let sync_id = answer.call_id().expect("a call id");

    let accepted = d
        .call_async("/v1/functions/hello/invoke", r#"{"name":"Bob"}"#, None)
        .await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{}", accepted.text());
    let async_id = accepted.call_id().expect("a call id");
    let record = d
        .wait_call(&async_id, "succeeded", Duration::from_secs(30))
        .await;
    assert_eq!(record["trigger"], "async");
    assert!(d.logs(&async_id).await.contains("greeting Bob"));

    // Restarted on the same database (and data directory): the same daemon id, its
    // function and its call records are there, and it runs calls again.
    let id = d.id.clone();
    assert!(d.terminate().await, "a clean stop:\n{}", d.log());
    d.restart().await;
    assert_eq!(d.id, id, "the data directory keeps its daemon id");
    let listed = d.get_json("/v1/functions").await;
    assert_eq!(listed["functions"][0]["name"], "hello", "{listed}");
    assert_eq!(d.call_record(&sync_id).await["status"], "succeeded");
    assert_eq!(d.call_record(&async_id).await["status"], "succeeded");
    let answer = d.invoke("hello", r#"{"name":"Cy"}"#).await;
    assert_eq!(answer.status_text(), (StatusCode::OK, "Hello Cy!\n".into()));
    d.stop().await;
}
