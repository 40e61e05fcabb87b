//! AWS clients against skiff's Lambda API: boto3 (and the AWS CLI when installed) drive the
//! whole lifecycle of a function in `tests/python/lambda_lifecycle.py`; plain HTTP checks
//! that no route of that API shows a secret's value.

use skiff_testing::{skiff_bin, Daemon};
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
    if !skiff_testing::needs(has_boto3, "boto3", ".ci/run installs it: pip install boto3") {
        return;
    }
    let d = Daemon::start(skiff_bin!(), &[]).await;
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

/// The answer of one Lambda API request, as text.
async fn lambda(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<serde_json::Value>,
) -> (reqwest::StatusCode, String) {
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("Lambda API request");
    let status = response.status();
    (status, response.text().await.expect("body"))
}

#[tokio::test]
async fn no_lambda_route_shows_a_secret_and_updates_keep_them() {
    if !skiff_testing::ready() {
        return;
    }
    let d = Daemon::start(skiff_bin!(), &[]).await;
    let client = reqwest::Client::new();
    const SECRET: &str = "s3cret-value-9f2c";
    let created = d
        .put_function(
            "env",
            serde_json::json!({"image": "skiff/testfn:latest", "timeout": "10s",
            "env": {"MODE": "env", "GREETING": "hi"}, "secrets": {"API_TOKEN": SECRET}}),
        )
        .await;
    assert_eq!(created.status, reqwest::StatusCode::CREATED);
    let base = format!("{}/2015-03-31/functions", d.url);
    let invoke = || async {
        let out = client
            .post(format!("{}/fn/env", d.url))
            .send()
            .await
            .expect("invoke")
            .text()
            .await
            .expect("body");
        assert!(
            out.lines().any(|l| l == format!("API_TOKEN={SECRET}")),
            "the function lost its secret:\n{out}"
        );
        out
    };
    invoke().await;

    let (status, created) = lambda(
        &client,
        reqwest::Method::POST,
        base.clone(),
        Some(
            serde_json::json!({"FunctionName": "other", "PackageType": "Image",
            "Code": {"ImageUri": "skiff/lambda-hello:latest"}}),
        ),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::CREATED, "{created}");
    let mut answers = vec![("CreateFunction", created)];
    for (route, url) in [
        ("GetFunction", format!("{base}/env")),
        (
            "GetFunctionConfiguration",
            format!("{base}/env/configuration"),
        ),
        ("ListFunctions", format!("{base}/")),
    ] {
        let (status, body) = lambda(&client, reqwest::Method::GET, url, None).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{route}: {body}");
        answers.push((route, body));
    }
    let (_, configuration) = &answers[2];
    let configuration: serde_json::Value = serde_json::from_str(configuration).expect("json");
    assert_eq!(
        configuration["Environment"]["Variables"],
        serde_json::json!({"MODE": "env", "GREETING": "hi"})
    );

    // Memory only, then the variables as read back plus one: the secret stays, unseen.
    let (status, body) = lambda(
        &client,
        reqwest::Method::PUT,
        format!("{base}/env/configuration"),
        Some(serde_json::json!({"MemorySize": 192})),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    answers.push(("UpdateFunctionConfiguration (memory)", body));
    invoke().await;
    let (status, body) = lambda(
        &client,
        reqwest::Method::PUT,
        format!("{base}/env/configuration"),
        Some(serde_json::json!({"Environment": {"Variables": {"MODE": "env", "GREETING": "ho"}}})),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    answers.push(("UpdateFunctionConfiguration (environment)", body));
    let out = invoke().await;
    assert!(out.lines().any(|l| l == "GREETING=ho"), "{out}");
    let (status, body) = lambda(
        &client,
        reqwest::Method::PUT,
        format!("{base}/env/code"),
        Some(serde_json::json!({"ImageUri": "skiff/testfn:latest"})),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    answers.push(("UpdateFunctionCode", body));
    invoke().await;
    let (_, listed) = lambda(&client, reqwest::Method::GET, format!("{base}/"), None).await;
    answers.push(("ListFunctions (after the updates)", listed));

    for (route, body) in &answers {
        assert!(!body.contains(SECRET), "{route} shows the secret: {body}");
    }
    // The management API still names it, without its value.
    let view = d.get_json("/v1/functions/env").await;
    assert_eq!(view["secrets"], serde_json::json!(["API_TOKEN"]));
    d.stop().await;
}
