//! AWS clients against skiff's Lambda API: boto3 (and the AWS CLI when installed) drive the
//! whole lifecycle of a function in `tests/python/lambda_lifecycle.py`, and find SigV4
//! checked as AWS checks it (`tests/python/lambda_sigv4.py`); plain HTTP checks that no
//! route of that API shows a secret's value.

use skiff_testing::{skiff_bin, Answer, AwsKey, Daemon};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// Whether boto3 can be imported (in CI it must).
fn has_boto3() -> bool {
    let found = Command::new("python3")
        .args(["-c", "import boto3"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    skiff_testing::needs(found, "boto3", ".ci/run installs it: pip install boto3")
}

/// Runs `tests/python/SCRIPT` with `args`, the credentials of the environment left out;
/// its stdout, after checking it ends well.
async fn python(
    d: &Daemon,
    script: &str,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(script);
    let run = tokio::task::spawn_blocking(move || {
        let mut command = Command::new("python3");
        command.arg(&script).args(&args);
        for name in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
        ] {
            command.env_remove(name);
        }
        command.envs(env).output()
    })
    .await
    .expect("join")
    .expect("run python3");
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stdout}\n{stderr}\n{}", d.log());
    eprintln!("{stdout}");
    stdout
}

#[tokio::test]
async fn boto3_drives_the_whole_lifecycle() {
    if !skiff_testing::ready() || !has_boto3() {
        return;
    }
    let d = Daemon::start(skiff_bin!(), &[]).await;
    // The credentials as the README says: the file the daemon wrote at its first start.
    let credentials = d.data_dir.path().join("aws-credentials");
    let stdout = python(
        &d,
        "lambda_lifecycle.py",
        vec![d.url.clone()],
        vec![
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                credentials.display().to_string(),
            ),
            ("AWS_PROFILE", "skiff".to_string()),
        ],
    )
    .await;
    assert!(stdout.contains("boto3 lifecycle: ok"), "{stdout}");
    d.stop().await;
}

#[tokio::test]
async fn the_lambda_api_checks_sigv4_as_aws_does() {
    if !skiff_testing::ready() || !has_boto3() {
        return;
    }
    let d = Daemon::start(skiff_bin!(), &[]).await;
    // The first access key: mode 0600, as the data directory's other files.
    let credentials = d.data_dir.path().join("aws-credentials");
    let mode = std::fs::metadata(&credentials)
        .expect("credentials file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // A key made with the CLI works with boto3; a wrong secret, an unknown key and a stale
    // date are refused as AWS refuses them.
    let made = d
        .cli()
        .args(["--json", "tokens", "create", "--aws"])
        .args(["--description", "boto3 test"])
        .output()
        .expect("skiff tokens create");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let made: serde_json::Value = serde_json::from_slice(&made.stdout).expect("json");
    let id = made["id"].as_str().expect("id").to_string();
    let secret = made["secret"].as_str().expect("secret").to_string();
    assert_eq!(made["namespace"], "default");
    let stdout = python(
        &d,
        "lambda_sigv4.py",
        vec![d.url.clone(), id.clone(), secret.clone()],
        Vec::new(),
    )
    .await;
    assert!(stdout.contains("boto3 sigv4: ok"), "{stdout}");

    // Listed without its secret; unsigned requests refused; revoked at once.
    let listed = d.get_text("/v1/access-keys").await;
    assert!(
        listed.contains(&id) && !listed.contains(&secret),
        "{listed}"
    );
    let unsigned = Answer::of(d.anonymous(reqwest::Method::GET, "/2015-03-31/functions/")).await;
    assert_eq!(unsigned.status, reqwest::StatusCode::FORBIDDEN);
    assert_eq!(
        unsigned.headers["x-amzn-errortype"],
        "MissingAuthenticationTokenException"
    );
    let key = AwsKey {
        id: id.clone(),
        secret,
    };
    let now = std::time::SystemTime::now();
    let ok = d
        .lambda_signed(
            reqwest::Method::GET,
            "/2015-03-31/functions/",
            None,
            &key,
            now,
        )
        .await;
    assert_eq!(ok.status, reqwest::StatusCode::OK, "{}", ok.text());
    let stale = d
        .lambda_signed(
            reqwest::Method::GET,
            "/2015-03-31/functions/",
            None,
            &key,
            now - std::time::Duration::from_secs(20 * 60),
        )
        .await;
    assert_eq!(stale.status, reqwest::StatusCode::FORBIDDEN);
    assert_eq!(
        stale.headers["x-amzn-errortype"],
        "InvalidSignatureException"
    );
    assert!(
        stale.text().contains("Signature expired"),
        "{}",
        stale.text()
    );
    let revoked = d
        .cli()
        .args(["tokens", "revoke", &id])
        .output()
        .expect("skiff tokens revoke");
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    let after = d
        .lambda_signed(
            reqwest::Method::GET,
            "/2015-03-31/functions/",
            None,
            &key,
            now,
        )
        .await;
    assert_eq!(after.status, reqwest::StatusCode::FORBIDDEN);
    assert_eq!(
        after.headers["x-amzn-errortype"],
        "UnrecognizedClientException"
    );
    // Nothing of the secret in the daemon's log.
    assert!(!d.log().contains(&key.secret), "the log shows a secret");
    d.stop().await;
}

#[tokio::test]
async fn an_access_key_acts_in_its_own_namespace() {
    if !skiff_testing::ready() {
        return;
    }
    let d = Daemon::start(skiff_bin!(), &[]).await;
    let echo = serde_json::json!({"image": "skiff/testfn:latest", "env": {"MODE": "echo"}});
    d.deploy("hello", echo.clone()).await;
    d.deploy("team-a.worker", echo).await;
    let made = d
        .cli()
        .args(["--json", "-n", "team-a", "tokens", "create", "--aws"])
        .output()
        .expect("skiff tokens create");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let made: serde_json::Value = serde_json::from_slice(&made.stdout).expect("json");
    assert_eq!(made["namespace"], "team-a");
    let team_a = AwsKey {
        id: made["id"].as_str().expect("id").to_string(),
        secret: made["secret"].as_str().expect("secret").to_string(),
    };
    let now = std::time::SystemTime::now();
    let get = |path: &'static str, key: AwsKey| {
        let d = &d;
        async move {
            d.lambda_signed(reqwest::Method::GET, path, None, &key, now)
                .await
        }
    };

    // Its list and its names are those of team-a alone, by their plain names.
    let listed = get("/2015-03-31/functions/", team_a.clone()).await;
    assert_eq!(listed.status, reqwest::StatusCode::OK, "{}", listed.text());
    let listed: serde_json::Value = serde_json::from_str(&listed.text()).expect("json");
    let names: Vec<&str> = listed["Functions"]
        .as_array()
        .expect("Functions")
        .iter()
        .filter_map(|f| f["FunctionName"].as_str())
        .collect();
    assert_eq!(names, ["worker"], "{listed}");
    let worker = get("/2015-03-31/functions/worker", team_a.clone()).await;
    assert_eq!(worker.status, reqwest::StatusCode::OK, "{}", worker.text());
    assert!(
        worker.text().contains("\"FunctionName\":\"worker\""),
        "{}",
        worker.text()
    );
    let invoked = d
        .lambda_signed(
            reqwest::Method::POST,
            "/2015-03-31/functions/worker/invocations",
            Some(b"from team-a".to_vec()),
            &team_a,
            now,
        )
        .await;
    assert_eq!(
        invoked.status,
        reqwest::StatusCode::OK,
        "{}",
        invoked.text()
    );
    assert_eq!(invoked.text(), "from team-a");

    // The default namespace's function does not exist for it, nor team-a's for a key of
    // the default namespace.
    for (path, key) in [
        ("/2015-03-31/functions/hello", team_a.clone()),
        ("/2015-03-31/functions/default.hello", team_a.clone()),
        ("/2015-03-31/functions/worker", d.aws_key()),
        ("/2015-03-31/functions/team-a.worker", d.aws_key()),
    ] {
        let answer = get(path, key).await;
        assert_ne!(
            answer.status,
            reqwest::StatusCode::OK,
            "{path}: {}",
            answer.text()
        );
        assert!(
            answer.status.is_client_error(),
            "{path}: {} {}",
            answer.status,
            answer.text()
        );
    }
    let hidden = get("/2015-03-31/functions/hello", team_a).await;
    assert_eq!(hidden.status, reqwest::StatusCode::NOT_FOUND);
    assert_eq!(
        hidden.headers["x-amzn-errortype"],
        "ResourceNotFoundException"
    );
    d.stop().await;
}

/// The answer of one Lambda API request (signed with the daemon's first access key), as
/// text.
async fn lambda(
    d: &Daemon,
    method: reqwest::Method,
    path: String,
    body: Option<serde_json::Value>,
) -> (reqwest::StatusCode, String) {
    let answer = d
        .lambda(method, &path, body.map(|b| b.to_string().into_bytes()))
        .await;
    (answer.status, answer.text())
}

#[tokio::test]
async fn no_lambda_route_shows_a_secret_and_updates_keep_them() {
    if !skiff_testing::ready() {
        return;
    }
    let d = Daemon::start(skiff_bin!(), &[]).await;
    let client = d.client();
    const SECRET: &str = "s3cret-value-9f2c";
    let created = d
        .put_function(
            "env",
            serde_json::json!({"image": "skiff/testfn:latest", "timeout": "10s",
            "env": {"MODE": "env", "GREETING": "hi"}, "secrets": {"API_TOKEN": SECRET}}),
        )
        .await;
    assert_eq!(created.status, reqwest::StatusCode::CREATED);
    let base = "/2015-03-31/functions".to_string();
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
        &d,
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
        let (status, body) = lambda(&d, reqwest::Method::GET, url, None).await;
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
        &d,
        reqwest::Method::PUT,
        format!("{base}/env/configuration"),
        Some(serde_json::json!({"MemorySize": 192})),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    answers.push(("UpdateFunctionConfiguration (memory)", body));
    invoke().await;
    let (status, body) = lambda(
        &d,
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
        &d,
        reqwest::Method::PUT,
        format!("{base}/env/code"),
        Some(serde_json::json!({"ImageUri": "skiff/testfn:latest"})),
    )
    .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    answers.push(("UpdateFunctionCode", body));
    invoke().await;
    let (_, listed) = lambda(&d, reqwest::Method::GET, format!("{base}/"), None).await;
    answers.push(("ListFunctions (after the updates)", listed));

    for (route, body) in &answers {
        assert!(!body.contains(SECRET), "{route} shows the secret: {body}");
    }
    // The management API still names it, without its value.
    let view = d.get_json("/v1/functions/env").await;
    assert_eq!(view["secrets"], serde_json::json!(["API_TOKEN"]));
    d.stop().await;
}
