//! Secrets at rest: a function's secret reaches the function, and nowhere else: not the
//! database's files (SQLite) or tables (PostgreSQL), not the daemon's log, not an API
//! answer. Checked by searching them for the value, after a deploy, a rotation of the key,
//! and the encryption of what an older skiff stored in plain text.

use serde_json::json;
use skiff_testing::{skiff_bin, Daemon, TestDatabase};
use std::process::Command;

const SECRET: &str = "s3cret-at-rest-7d41e0";

/// The spec of a function that prints its environment (`testfn` in `env` mode).
fn spec() -> serde_json::Value {
    json!({"image": "skiff/testfn:latest", "timeout": "10s",
        "env": {"MODE": "env"}, "secrets": {"API_TOKEN": SECRET}})
}

/// Calls `name` and asserts that it got its secret.
async fn has_secret(d: &Daemon, name: &str) {
    let out = d.call(name, "").await.text();
    assert!(
        out.lines().any(|l| l == format!("API_TOKEN={SECRET}")),
        "the function lost its secret:\n{out}\n{}",
        d.log()
    );
}

/// Whether any of the SQLite files of the daemon's data directory holds `needle`.
fn in_store_files(d: &Daemon, needle: &str) -> Vec<String> {
    ["skiff.db", "skiff.db-wal", "skiff.db-shm"]
        .into_iter()
        .filter(|file| {
            std::fs::read(d.data_dir.path().join(file))
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .map(String::from)
        .collect()
}

/// Every API answer that could show a function's configuration.
async fn api_answers(d: &Daemon, name: &str) -> String {
    let mut all = String::new();
    for path in [
        format!("/v1/functions/{name}"),
        "/v1/functions".to_string(),
        format!("/v1/calls?function={name}"),
        "/v1/access-keys".to_string(),
        format!("/functions/{name}"),
        "/".to_string(),
    ] {
        all.push_str(&d.get_text(&path).await);
    }
    let lambda = d
        .lambda(
            reqwest::Method::GET,
            &format!("/2015-03-31/functions/{name}"),
            None,
        )
        .await;
    all.push_str(&lambda.text());
    all
}

#[tokio::test]
async fn no_secret_value_is_in_the_database_the_log_or_an_answer_and_rotation_keeps_them() {
    if !skiff_testing::ready() {
        return;
    }
    let mut d = Daemon::builder(skiff_bin!())
        .env("SKIFF_LOG", "debug")
        .start()
        .await;
    let created = d.put_function("env", spec()).await;
    assert!(created.status.is_success(), "{}", created.text());
    assert!(!created.text().contains(SECRET), "{}", created.text());
    has_secret(&d, "env").await;
    let answers = api_answers(&d, "env").await;
    assert!(
        !answers.contains(SECRET),
        "an answer shows the secret: {answers}"
    );
    assert!(
        answers.contains("API_TOKEN"),
        "the secret's name is shown: {answers}"
    );

    // The key file: private, one key; rotation makes a new one and drops the old.
    let key_file = d.data_dir.path().join("secrets.key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file)
            .expect("key file")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let before = std::fs::read_to_string(&key_file).expect("key file");
    let rotated = d
        .cli()
        .args(["--json", "secrets", "rotate-key"])
        .output()
        .expect("skiff secrets rotate-key");
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let rotation: serde_json::Value = serde_json::from_slice(&rotated.stdout).expect("json");
    // The function's secret and the first access key's.
    assert_eq!(rotation["reencrypted"], 2, "{rotation}");
    assert_eq!(rotation["source"], "file", "{rotation}");
    let after = std::fs::read_to_string(&key_file).expect("key file");
    let old_key = before
        .lines()
        .find(|l| !l.starts_with('#'))
        .and_then(|l| l.split_whitespace().next())
        .expect("a key");
    assert!(!after.contains(old_key), "the old key is dropped:\n{after}");
    assert!(
        after.contains(rotation["key"].as_str().expect("key id")),
        "{after}"
    );
    has_secret(&d, "env").await;

    // After a restart, the key file alone opens everything.
    assert!(d.terminate().await, "{}", d.log());
    d.restart().await;
    has_secret(&d, "env").await;
    let listed = d
        .lambda(reqwest::Method::GET, "/2015-03-31/functions/", None)
        .await;
    assert_eq!(listed.status, reqwest::StatusCode::OK, "{}", listed.text());
    assert!(d.terminate().await, "{}", d.log());

    let found = in_store_files(&d, SECRET);
    assert!(found.is_empty(), "the secret is in {found:?}");
    let leaks: Vec<String> = d
        .plain_log()
        .lines()
        .filter(|l| l.contains(SECRET))
        .map(String::from)
        .collect();
    assert!(
        leaks.is_empty(),
        "the daemon's log shows the secret:\n{}",
        leaks.join("\n")
    );
    d.restart().await;
    d.stop().await;
}

#[tokio::test]
async fn secrets_an_older_skiff_stored_in_plain_text_are_encrypted_at_start() {
    if !skiff_testing::ready() {
        return;
    }
    let mut d = Daemon::start(skiff_bin!(), &[]).await;
    d.deploy("env", spec()).await;
    assert!(d.terminate().await, "{}", d.log());

    // The row as an older skiff wrote it: the secrets in the configuration's JSON.
    {
        use sqlx::sqlite::SqliteConnectOptions;
        use sqlx::ConnectOptions;
        let mut db = SqliteConnectOptions::new()
            .filename(d.data_dir.path().join("skiff.db"))
            .connect()
            .await
            .expect("open the store");
        let config: String = sqlx::query_scalar("SELECT config FROM functions WHERE name = 'env'")
            .fetch_one(&mut db)
            .await
            .expect("config");
        let mut config: serde_json::Value = serde_json::from_str(&config).expect("json");
        config["secrets"] = json!({"API_TOKEN": SECRET});
        sqlx::query(
            "UPDATE functions SET config = $1, secrets = NULL, secrets_key = NULL WHERE name = 'env'",
        )
        .bind(config.to_string())
        .execute(&mut db)
        .await
        .expect("plain text row");
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut db)
            .await
            .expect("checkpoint");
    }
    assert_eq!(in_store_files(&d, SECRET), vec!["skiff.db".to_string()]);

    d.restart().await;
    assert!(
        d.plain_log()
            .contains("encrypted the secrets that were stored in plain text"),
        "{}",
        d.log()
    );
    has_secret(&d, "env").await;
    assert!(d.terminate().await, "{}", d.log());
    let found = in_store_files(&d, SECRET);
    assert!(found.is_empty(), "the secret is still in {found:?}");
    d.restart().await;
    d.stop().await;
}

#[tokio::test]
async fn on_postgres_no_table_holds_a_secret_and_daemons_must_share_the_key() {
    if !skiff_testing::ready() {
        return;
    }
    let Some(db) = TestDatabase::create("skiff_secrets").await else {
        return;
    };
    let (key, _) = skiff_store::SecretKeys::new_key().expect("key");
    let a = Daemon::builder(skiff_bin!())
        .args(&["--store", &db.url])
        .env("SKIFF_SECRET_KEY", &key)
        .start()
        .await;
    a.deploy("env", spec()).await;
    has_secret(&a, "env").await;
    assert!(!a.data_dir.path().join("secrets.key").exists());

    // Every table, as text.
    let mut conn = {
        use sqlx::ConnectOptions;
        let options: sqlx::postgres::PgConnectOptions = db.url.parse().expect("url");
        options.connect().await.expect("connect")
    };
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = current_schema()",
    )
    .fetch_all(&mut conn)
    .await
    .expect("tables");
    assert!(tables.contains(&"functions".to_string()), "{tables:?}");
    for table in &tables {
        let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT t::text FROM {table} t"
        )))
        .fetch_all(&mut conn)
        .await
        .expect("rows");
        let text = rows.join("\n");
        assert!(!text.contains(SECRET), "table {table} holds the secret");
        assert!(!text.contains(&key), "table {table} holds the key");
    }

    // A second daemon without the key does not start, and says why.
    let output = Command::new(skiff_bin!())
        .args(["serve", "--store", &db.url, "--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(tempfile::tempdir().expect("dir").path())
        .env_remove("SKIFF_SECRET_KEY")
        .env(
            "SKIFF_CLI_CONFIG",
            a.data_dir.path().join("unused-cli-config.toml"),
        )
        .output()
        .expect("skiff serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("SKIFF_SECRET_KEY"), "{stderr}");
    // With it, here from a file (as a Docker secret hands it over), the second daemon runs
    // the function with its secret.
    let key_dir = tempfile::tempdir().expect("dir");
    let key_file = key_dir.path().join("secret-key");
    std::fs::write(&key_file, format!("{key}\n")).expect("write the key");
    let mut b = Daemon::builder(skiff_bin!())
        .args(&["--store", &db.url])
        .env("SKIFF_SECRET_KEY_FILE", &key_file.display().to_string())
        .start()
        .await;
    // The store had a token already: the second daemon made none.
    assert!(b.token.is_empty());
    b.token = a.token.clone();
    has_secret(&b, "env").await;
    assert!(!a.log().contains(SECRET) && !b.log().contains(SECRET));
    b.stop().await;
    a.stop().await;
}
