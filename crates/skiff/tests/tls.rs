//! The API over TLS (`--tls-cert`, `--tls-key`) and callbacks to `https://` URLs: certificates
//! from a CA made for the test, trusted by the clients given it (`--ca-cert` for the CLI,
//! `--callback-ca` for callbacks) and by nobody else.

use skiff_testing::{skiff_bin, tls, Daemon};
use std::process::Command;
use std::time::Duration;

/// An HTTPS receiver of callbacks on 127.0.0.1 with the test's server certificate; hands
/// the body of every request to the returned channel.
async fn https_receiver(
    certs: &std::path::Path,
) -> (String, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(body.to_vec());
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("https://{}/hook", listener.local_addr().expect("addr"));
    let acceptor =
        skiff_gateway::tls::acceptor(&certs.join("server.pem"), &certs.join("server-key.pem"))
            .expect("acceptor");
    let listener = skiff_gateway::tls::TlsListener::new(listener, acceptor).expect("listener");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, rx)
}

#[tokio::test]
async fn the_api_speaks_tls_and_callbacks_reach_https_receivers() {
    if !skiff_testing::ready() {
        return;
    }
    let has_openssl = Command::new("openssl").arg("version").output().is_ok();
    if !skiff_testing::needs(has_openssl, "openssl", ".ci/run installs it") {
        return;
    }
    let certs = tempfile::tempdir().expect("tempdir");
    tls::make_certificates(certs.path());
    let ca = certs.path().join("ca.pem");
    let ca_arg = ca.display().to_string();
    let d = Daemon::builder(skiff_bin!())
        .tls(certs.path())
        .args(&["--callback-allow", "127.0.0.1/32", "--callback-ca", &ca_arg])
        .start()
        .await;
    assert!(d.url.starts_with("https://"), "{}", d.url);
    assert!(
        d.plain_log().contains("listening on https://"),
        "{}",
        d.log()
    );

    // A client trusting the CA deploys and calls; plain HTTP and a client that does not
    // trust the CA get nowhere.
    d.deploy(
        "hello",
        serde_json::json!({"image": "skiff/hello:latest", "timeout": "10s"}),
    )
    .await;
    let out = d.call("hello", r#"{"name":"TLS"}"#).await;
    assert_eq!(out.text().trim(), "Hello TLS!", "{}", d.log());
    let plain = d.url.replacen("https://", "http://", 1);
    let refused = tls::client().get(format!("{plain}/healthz")).send().await;
    assert!(
        refused.is_err() || !refused.is_ok_and(|r| r.status().is_success()),
        "plain HTTP answered"
    );
    let untrusted = tls::client().get(format!("{}/healthz", d.url)).send().await;
    assert!(untrusted.is_err(), "a client without the CA connected");

    // The CLI, with and without the CA.
    let ls = d
        .cli()
        .args(["--ca-cert", &ca_arg, "ls"])
        .output()
        .expect("skiff ls");
    assert!(
        ls.status.success(),
        "{}",
        String::from_utf8_lossy(&ls.stderr)
    );
    assert!(String::from_utf8_lossy(&ls.stdout).contains("hello"));
    let without = d
        .cli()
        .arg("ls")
        .env_remove("SKIFF_CA_CERT")
        .output()
        .expect("skiff ls");
    assert!(!without.status.success());
    skiff_testing::cli::assert_one_error_line(&without);

    // An async call's result goes to an https:// callback, over TLS.
    let (url, mut hooks) = https_receiver(certs.path()).await;
    let accepted = d
        .call_async("/fn/hello", r#"{"name":"callback"}"#, Some(&url))
        .await;
    assert_eq!(
        accepted.status,
        reqwest::StatusCode::ACCEPTED,
        "{}",
        accepted.text()
    );
    let body = tokio::time::timeout(Duration::from_secs(60), hooks.recv())
        .await
        .unwrap_or_else(|_| panic!("no callback within 60 s:\n{}", d.log()))
        .expect("receiver open");
    assert_eq!(String::from_utf8_lossy(&body).trim(), "Hello callback!");
    d.stop().await;
}
