//! The Lambda API's CreateFunction and UpdateFunctionCode take an image from its registry
//! when the engine lacks it, as AWS does, within what an access key may reach: requests
//! signed with SigV4 by AWS's own signer, to the gateway on a socket, over the fake engine.

mod common;

use common::{script, Harness};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use skiff_core::api::AccessKeyRequest;
use skiff_testing::aws::{sign_request, AwsKey};
use std::time::SystemTime;

/// The gateway on a socket of its own; its base URL.
async fn serve(h: &Harness) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let app = h.api.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{address}")
}

/// `method path` with the JSON `body`, signed with `key`; the status and the JSON answer.
async fn signed(
    url: &str,
    key: &AwsKey,
    method: Method,
    path: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let client = reqwest::Client::new();
    let mut request = client
        .request(method, format!("{url}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .build()
        .expect("request");
    sign_request(&mut request, key, SystemTime::now());
    let response = client.execute(request).await.expect("send");
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn create(name: &str, image: &str) -> Value {
    json!({
        "FunctionName": name,
        "PackageType": "Image",
        "Code": {"ImageUri": image},
        "Role": "arn:aws:iam::000000000000:role/skiff",
    })
}

#[tokio::test]
async fn create_and_update_pull_an_image_the_engine_lacks() {
    skiff_testing::tls::install_provider();
    let h = Harness::start(&[], |_| {}).await;
    let created = h
        .platform
        .create_access_key(&AccessKeyRequest {
            namespace: None,
            description: None,
        })
        .await
        .expect("an access key");
    let key = AwsKey {
        id: created.key.id.clone(),
        secret: created.secret.clone(),
    };
    let url = serve(&h).await;
    let pulls = || -> Vec<String> {
        h.engine
            .operations()
            .into_iter()
            .filter(|op| op.starts_with("pull "))
            .collect()
    };

    // In the registry, not on the engine: pulled (anonymously), then created.
    h.engine
        .add_registry_image("registry.example.com/team/fn:1", script("one\n", "", 0));
    let (status, body) = signed(
        &url,
        &key,
        Method::POST,
        "/2015-03-31/functions",
        &create("fn", "registry.example.com/team/fn:1"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(pulls(), ["pull registry.example.com/team/fn:1"]);

    // A new version of the code, pulled as well.
    h.engine
        .add_registry_image("registry.example.com/team/fn:2", script("two\n", "", 0));
    let (status, body) = signed(
        &url,
        &key,
        Method::PUT,
        "/2015-03-31/functions/fn/code",
        &json!({"ImageUri": "registry.example.com/team/fn:2"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(pulls().len(), 2, "{:?}", pulls());

    // In no registry: a client error that says so, and no function.
    let (status, body) = signed(
        &url,
        &key,
        Method::POST,
        "/2015-03-31/functions",
        &create("missing", "registry.example.com/team/none:1"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("has no image")),
        "{body}"
    );
    assert!(h.platform.function("missing").is_err());

    // A registry on this host or a private network is not pulled from with an access key.
    let before = pulls().len();
    let (status, body) = signed(
        &url,
        &key,
        Method::POST,
        "/2015-03-31/functions",
        &create("local", "127.0.0.1:5000/fn:1"),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(pulls().len(), before, "no pull from a local registry");
}
