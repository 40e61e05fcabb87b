//! The Lambda API as AWS clients reach it: requests signed with SigV4 (by AWS's own
//! signer, `aws-sigv4`) with the access key a daemon made at its first start.

use crate::{Answer, Daemon};
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use reqwest::Method;
use std::time::SystemTime;

/// An access key: id and secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsKey {
    /// `aws_access_key_id`.
    pub id: String,
    /// `aws_secret_access_key`.
    pub secret: String,
}

/// The region requests are signed for (any region is taken).
pub const REGION: &str = "us-east-1";

/// Signs `request` for the Lambda service with `key`, dated `at`.
pub fn sign_request(request: &mut reqwest::Request, key: &AwsKey, at: SystemTime) {
    let identity =
        aws_credential_types::Credentials::new(&key.id, &key.secret, None, None, "test").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("lambda")
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let body = request
        .body()
        .and_then(|b| b.as_bytes())
        .unwrap_or_default()
        .to_vec();
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().expect("text header").to_string()))
        .collect();
    let signable = SignableRequest::new(
        request.method().as_str(),
        request.url().as_str(),
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(&body),
    )
    .expect("signable request");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    for (name, value) in instructions.headers() {
        request.headers_mut().insert(
            reqwest::header::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            value.parse().expect("header value"),
        );
    }
}

impl Daemon {
    /// The access key the daemon made at its first start (its data directory's
    /// `aws-credentials` file).
    pub fn aws_key(&self) -> AwsKey {
        let path = self.data_dir.path().join("aws-credentials");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|l| l.trim().strip_prefix('='))
                .map(|v| v.trim().to_string())
                .unwrap_or_else(|| panic!("no {name} in {text}"))
        };
        AwsKey {
            id: value("aws_access_key_id"),
            secret: value("aws_secret_access_key"),
        }
    }

    /// A Lambda API request (`path` below the daemon's URL) with `body`, signed with the
    /// daemon's first access key, whatever the answer.
    pub async fn lambda(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Answer {
        self.lambda_signed(method, path, body, &self.aws_key(), SystemTime::now())
            .await
    }

    /// A Lambda API request signed with `key` at `at`, whatever the answer.
    pub async fn lambda_signed(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        key: &AwsKey,
        at: SystemTime,
    ) -> Answer {
        let client = self.client();
        let mut builder = client.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let mut request = builder.build().expect("request");
        sign_request(&mut request, key, at);
        let response = client.execute(request).await.expect("Lambda API request");
        Answer::from_response(response).await
    }
}
