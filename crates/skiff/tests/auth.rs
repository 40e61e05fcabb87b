//! Who may do what, end to end on the real engine: the first admin token and where it is
//! written, tenants kept apart (functions, calls, volumes), private and public functions,
//! revocation at once, the CLI's commands, the dashboard's login, and a daemon that will
//! not listen beyond loopback without authentication.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use skiff_testing::{skiff_bin, Answer, Daemon, TestVolume};
use std::os::unix::fs::PermissionsExt;

/// A token with `scopes` in `namespaces`, made with the admin token; its secret and id.
async fn token(d: &Daemon, scopes: &[&str], namespaces: &[&str]) -> (String, String) {
    let answer = Answer::of(
        d.request(Method::POST, "/v1/tokens")
            .json(&json!({"name": "test", "scopes": scopes, "namespaces": namespaces})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let body = answer.json();
    (
        body["secret"].as_str().expect("secret").to_string(),
        body["token"]["id"].as_str().expect("id").to_string(),
    )
}

/// `method path` with `token` (none: anonymous) and `body` (JSON unless null).
async fn send(d: &Daemon, method: Method, path: &str, token: Option<&str>, body: Value) -> Answer {
    let mut request = d.anonymous(method, path);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if !body.is_null() {
        request = request.json(&body);
    }
    Answer::of(request).await
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn tenants_are_kept_apart_and_revocation_holds_at_once() {
    let Some(d) = Daemon::start_if_ready(skiff_bin!(), &[]).await else {
        return;
    };
    // The first admin token, private, in the data directory and the CLI's config.
    let file = d.data_dir.path().join("admin.token");
    assert_eq!(mode(&file), 0o600);
    assert!(d.token.starts_with("skt_"), "{}", d.token);
    assert_eq!(mode(&d.cli_config()), 0o600);
    let config = std::fs::read_to_string(d.cli_config()).expect("cli config");
    assert!(
        config.contains(&d.token) && config.contains(&d.url),
        "{config}"
    );
    // Open and closed routes.
    assert_eq!(
        send(&d, Method::GET, "/healthz", None, Value::Null)
            .await
            .status,
        StatusCode::OK
    );
    for path in ["/v1/functions", "/metrics", "/v1/calls"] {
        let answer = send(&d, Method::GET, path, None, Value::Null).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(answer.json()["error"]["code"], "unauthorized");
    }

    let (a, a_id) = token(&d, &["deploy", "read", "invoke"], &["team-a"]).await;
    let (b, _) = token(&d, &["deploy", "read", "invoke"], &["team-b"]).await;
    let volume = TestVolume::new("skiff-auth");
    let mounted = format!("{}:/data", volume.name);
    for (t, public) in [(&a, false), (&b, true)] {
        let answer = send(
            &d,
            Method::PUT,
            "/v1/functions/hello",
            Some(t),
            json!({
            "image": "skiff/hello:latest", "memory": "64Mi", "public": public,
            "volumes": [mounted]}),
        )
        .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
        // The volume is shown by its own name, and is the namespace's on the engine.
        assert_eq!(answer.json()["volumes"][0], mounted.as_str());
    }
    for ns in ["team-a", "team-b"] {
        let name = format!("skiff-ns.{ns}.{}", volume.name);
        let out = std::process::Command::new("docker")
            .args(["volume", "inspect", &name])
            .output()
            .expect("docker volume inspect");
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // team-a's function is private, team-b's public.
    let call = |path: &'static str, token: Option<String>| {
        let d = &d;
        async move {
            send(
                d,
                Method::POST,
                path,
                token.as_deref(),
                json!({"name": "Ann"}),
            )
            .await
        }
    };
    let answer = call("/fn/team-a.hello", Some(a.clone())).await;
    assert_eq!(
        answer.status_text(),
        (StatusCode::OK, "Hello Ann!\n".to_string())
    );
    assert_eq!(
        call("/fn/team-a.hello", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call("/fn/team-a.hello", Some(b.clone())).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(call("/fn/team-b.hello", None).await.status, StatusCode::OK);
    assert_eq!(
        call("/fn/hello", Some(d.token.clone())).await.status,
        StatusCode::NOT_FOUND
    );
    let a_call = answer.call_id().expect("a call id");

    // Each sees its own functions and calls only.
    let listed = send(&d, Method::GET, "/v1/functions", Some(&b), Value::Null)
        .await
        .json();
    let functions = listed["functions"].as_array().expect("functions");
    assert_eq!(functions.len(), 1);
    assert_eq!(functions[0]["namespace"], "team-b");
    let calls = send(&d, Method::GET, "/v1/calls", Some(&b), Value::Null)
        .await
        .json();
    assert!(
        calls["calls"]
            .as_array()
            .expect("calls")
            .iter()
            .all(|c| c["function"] == "team-b.hello"),
        "{calls}"
    );
    for path in [
        format!("/v1/calls/{a_call}"),
        format!("/v1/calls/{a_call}/logs"),
    ] {
        let answer = send(&d, Method::GET, &path, Some(&b), Value::Null).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        let answer = send(&d, Method::GET, &path, Some(&a), Value::Null).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}");
    }
    let answer = send(
        &d,
        Method::GET,
        "/v1/functions/team-a.hello",
        Some(&b),
        Value::Null,
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);

    // Revoked, a token stops working on the next request.
    let answer = send(
        &d,
        Method::DELETE,
        &format!("/v1/tokens/{a_id}"),
        Some(&d.token),
        Value::Null,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(
        call("/fn/team-a.hello", Some(a.clone())).await.status,
        StatusCode::UNAUTHORIZED
    );
    let answer = send(&d, Method::GET, "/v1/functions", Some(&a), Value::Null).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

    // The CLI uses the config the daemon wrote: tokens, namespaces, keys, audit.
    let run = |args: &[&str]| {
        let out = d.cli().args(args).output().expect("run skiff");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "skiff {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let tokens = run(&["tokens", "ls"]);
    assert!(
        tokens.contains("admin") && tokens.contains(&a_id),
        "{tokens}"
    );
    assert!(!tokens.contains(&d.token[4..]), "{tokens}");
    let listed = run(&["-n", "team-a", "ls"]);
    assert!(listed.contains("hello"), "{listed}");
    let created = run(&["-n", "team-a", "keys", "create", "hello"]);
    let key = created.lines().last().expect("the key").trim().to_string();
    assert!(key.starts_with("skk_"), "{created}");
    let answer = Answer::of(
        d.anonymous(Method::POST, "/fn/team-a.hello")
            .header("x-skiff-key", &key)
            .body("{}"),
    )
    .await;
    assert_eq!(
        answer.status_text(),
        (StatusCode::OK, "Hello World!\n".to_string())
    );
    let made = run(&[
        "tokens", "create", "ci", "--scope", "read", "-n", "team-b", "--json",
    ]);
    let made: Value = serde_json::from_str(&made).expect("json");
    assert_eq!(made["token"]["namespaces"], json!(["team-b"]));
    let audit = run(&["audit"]);
    for action in [
        "deploy function",
        "revoke token",
        "create key",
        "create token",
    ] {
        assert!(audit.contains(action), "{action}: {audit}");
    }
    // A command with no token gets one line, and exit 1.
    let out = d
        .cli()
        .env("SKIFF_CLI_CONFIG", "/nonexistent/config.toml")
        .arg("ls")
        .output()
        .expect("skiff");
    skiff_testing::cli::assert_one_error_line(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("(unauthorized)"));

    // The dashboard: a login form; the token makes a session cookie.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let page = browser
        .get(format!("{}/", d.url))
        .send()
        .await
        .expect("page");
    assert!(page.status().is_redirection());
    assert_eq!(page.headers()["location"], "/login");
    let signed = browser
        .post(format!("{}/login", d.url))
        .header("origin", &d.url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", d.token))
        .send()
        .await
        .expect("login");
    assert_eq!(signed.status(), StatusCode::SEE_OTHER);
    let cookie = signed.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let session = cookie.split(';').next().expect("pair").to_string();
    let page = browser
        .get(format!("{}/", d.url))
        .header("cookie", &session)
        .send()
        .await
        .expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    // The cookie reads; it does not act.
    let answer = browser
        .delete(format!("{}/v1/functions/team-b.hello", d.url))
        .header("cookie", &session)
        .send()
        .await
        .expect("delete");
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);

    for t in [&d.token] {
        for f in ["team-a.hello", "team-b.hello"] {
            send(
                &d,
                Method::DELETE,
                &format!("/v1/functions/{f}"),
                Some(t),
                Value::Null,
            )
            .await;
        }
    }
    d.stop().await;
    for ns in ["team-a", "team-b"] {
        let _ = std::process::Command::new("docker")
            .args(["volume", "rm", &format!("skiff-ns.{ns}.{}", volume.name)])
            .output();
    }
}

#[test]
fn no_auth_beyond_loopback_needs_insecure() {
    let dir = tempfile::tempdir().expect("dir");
    let out = std::process::Command::new(skiff_bin!())
        .args(["serve", "--no-auth", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .env("SKIFF_CLI_CONFIG", dir.path().join("cli.toml"))
        .output()
        .expect("skiff serve");
    assert!(!out.status.success());
    skiff_testing::cli::assert_one_error_line(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--insecure"),
        "{out:?}"
    );
}

#[tokio::test]
async fn the_first_admin_token_can_come_from_a_file_the_operator_gives() {
    let dir = tempfile::tempdir().expect("dir");
    // A missing file stops the daemon before it starts, with one line.
    let out = std::process::Command::new(skiff_bin!())
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-token-file"])
        .arg(dir.path().join("missing"))
        .arg("--data-dir")
        .arg(dir.path())
        .env("SKIFF_CLI_CONFIG", dir.path().join("cli.toml"))
        .output()
        .expect("skiff serve");
    assert!(!out.status.success());
    skiff_testing::cli::assert_one_error_line(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("admin token file"),
        "{out:?}"
    );

    let secret = "skt_given-by-the-operator-0123456789abcdefghijkl";
    let file = dir.path().join("admin-secret");
    std::fs::write(&file, format!("{secret}\n")).expect("write");
    let Some(d) = Daemon::start_if_ready(
        skiff_bin!(),
        &["--admin-token-file", &file.display().to_string()],
    )
    .await
    else {
        return;
    };
    // The daemon hands the given token on as its own first one, and it works.
    assert_eq!(d.token, secret);
    let answer = send(&d, Method::GET, "/v1/tokens", Some(secret), Value::Null).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    d.stop().await;
}
