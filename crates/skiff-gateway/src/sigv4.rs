//! Checking AWS Signature Version 4 on the Lambda API's requests.
//!
//! The `Authorization` header names the access key, the credential scope, the signed
//! headers and the signature. The signature is computed again by the `aws-sigv4` crate
//! (AWS's own signer) over the request as received, with the stored secret of that access
//! key, and the two are compared in constant time (`subtle`). The request's `X-Amz-Date`
//! must be within [`MAX_SKEW`] of the daemon's clock. Each refusal carries the AWS error
//! type a client expects for it, so boto3 and the AWS CLI report it as they would against
//! AWS.

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use chrono::{DateTime, NaiveDateTime, Utc};
use http::request::Parts;
use http::StatusCode;
use subtle::ConstantTimeEq;

/// How far a request's date may be from the daemon's clock.
pub const MAX_SKEW: chrono::Duration = chrono::Duration::minutes(15);
/// The only algorithm taken.
const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The service requests must be signed for.
pub const SERVICE: &str = "lambda";
/// The `X-Amz-Date` header.
const DATE_HEADER: &str = "x-amz-date";
/// The date format of `X-Amz-Date`.
const DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// Why a request's signature is refused: each with AWS's status and error type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureError {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not a SigV4 one, or lacks a part.
    Incomplete(String),
    /// An access key id the daemon does not know (or one revoked).
    UnknownKey,
    /// The signature does not match, or the scope is wrong.
    Mismatch(String),
    /// The request's date is too far from the daemon's clock.
    Expired(String),
}

impl SignatureError {
    /// The HTTP status, the AWS error type and the message.
    pub fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            SignatureError::Missing => (
                StatusCode::FORBIDDEN,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token".to_string(),
            ),
            SignatureError::Incomplete(message) => (
                StatusCode::BAD_REQUEST,
                "IncompleteSignatureException",
                message.clone(),
            ),
            SignatureError::UnknownKey => (
                StatusCode::FORBIDDEN,
                "UnrecognizedClientException",
                "The security token included in the request is invalid.".to_string(),
            ),
            SignatureError::Mismatch(message) | SignatureError::Expired(message) => (
                StatusCode::FORBIDDEN,
                "InvalidSignatureException",
                message.clone(),
            ),
        }
    }
}

/// What the `Authorization` header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The access key id.
    pub key_id: String,
    /// The scope's date (`YYYYMMDD`).
    pub date: String,
    /// The scope's region.
    pub region: String,
    /// The scope's service.
    pub service: String,
    /// The signed headers, lowercase.
    pub signed_headers: Vec<String>,
    /// The signature, hex.
    pub signature: String,
}

/// Reads the `Authorization` header of `parts`.
pub fn credential(parts: &Parts) -> Result<Credential, SignatureError> {
    let value = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .ok_or(SignatureError::Missing)?
        .to_str()
        .map_err(|_| SignatureError::Incomplete("Authorization header is not text".into()))?;
    let rest = value
        .strip_prefix(ALGORITHM)
        .filter(|rest| rest.starts_with(' '))
        .ok_or_else(|| {
            SignatureError::Incomplete(format!(
                "Authorization header requires the {ALGORITHM} algorithm"
            ))
        })?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let Some((name, value)) = part.trim().split_once('=') else {
            continue;
        };
        match name {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed = Some(value),
            "Signature" => signature = Some(value),
            _ => {}
        }
    }
    let missing = |what: &str| {
        SignatureError::Incomplete(format!(
            "Authorization header requires '{what}' parameter. Authorization={value}"
        ))
    };
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed = signed.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [key_id, date, region, service, "aws4_request"] = scope.as_slice() else {
        return Err(SignatureError::Incomplete(format!(
            "Credential should be scoped to a valid region, a service and aws4_request: {credential}"
        )));
    };
    Ok(Credential {
        key_id: key_id.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers: signed.split(';').map(str::to_ascii_lowercase).collect(),
        signature: signature.to_ascii_lowercase(),
    })
}

/// Checks the signature of the request (`parts` and `body`) against the access key's
/// `secret`, at `now`.
pub fn verify(
    parts: &Parts,
    body: &[u8],
    credential: &Credential,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<(), SignatureError> {
    let date_text = parts
        .headers
        .get(DATE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            SignatureError::Incomplete(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header"
                    .into(),
            )
        })?;
    let signed_at = NaiveDateTime::parse_from_str(date_text, DATE_FORMAT)
        .map_err(|_| {
            SignatureError::Incomplete(format!(
                "X-Amz-Date must be in the ISO8601 Long Format ({date_text})"
            ))
        })?
        .and_utc();
    let stamp = |t: DateTime<Utc>| t.format(DATE_FORMAT).to_string();
    if signed_at < now - MAX_SKEW {
        return Err(SignatureError::Expired(format!(
            "Signature expired: {date_text} is now earlier than {} ({} - 15 min.)",
            stamp(now - MAX_SKEW),
            stamp(now)
        )));
    }
    if signed_at > now + MAX_SKEW {
        return Err(SignatureError::Expired(format!(
            "Signature not yet current: {date_text} is still later than {} ({} + 15 min.)",
            stamp(now + MAX_SKEW),
            stamp(now)
        )));
    }
    if credential.service != SERVICE {
        return Err(SignatureError::Mismatch(format!(
            "Credential should be scoped to correct service: '{SERVICE}'."
        )));
    }
    if credential.date != signed_at.format("%Y%m%d").to_string() {
        return Err(SignatureError::Mismatch(format!(
            "Credential should be scoped to a valid date: '{}'.",
            signed_at.format("%Y%m%d")
        )));
    }
    if !credential.signed_headers.iter().any(|h| h == "host") {
        return Err(SignatureError::Mismatch(
            "'Host' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    let expected = expected_signature(parts, body, credential, secret, signed_at)?;
    if bool::from(expected.as_bytes().ct_eq(credential.signature.as_bytes())) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch(
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details."
                .into(),
        ))
    }
}

/// The signature AWS's signer makes for the request's signed headers, with `secret`.
fn expected_signature(
    parts: &Parts,
    body: &[u8],
    credential: &Credential,
    secret: &str,
    signed_at: DateTime<Utc>,
) -> Result<String, SignatureError> {
    let mut headers = Vec::with_capacity(credential.signed_headers.len());
    for name in &credential.signed_headers {
        for value in parts.headers.get_all(name.as_str()) {
            let value = value.to_str().map_err(|_| {
                SignatureError::Mismatch(format!("the signed header {name} is not text"))
            })?;
            headers.push((name.as_str(), value));
        }
    }
    let uri = parts.uri.path_and_query().map_or_else(
        || parts.uri.path().to_string(),
        |pq| pq.as_str().to_string(),
    );
    let identity = aws_credential_types::Credentials::new(
        credential.key_id.clone(),
        secret.to_string(),
        None,
        None,
        "skiff",
    )
    .into();
    let mut settings = SigningSettings::default();
    // Only what is signed is given to the signer: nothing to leave out but the signature.
    settings.excluded_headers = Some(vec![http::header::AUTHORIZATION.as_str().into()]);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&credential.region)
        .name(&credential.service)
        .time(signed_at.into())
        .settings(settings)
        .build()
        .map_err(|e| SignatureError::Incomplete(e.to_string()))?
        .into();
    let request = SignableRequest::new(
        parts.method.as_str(),
        uri,
        headers.into_iter(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| SignatureError::Incomplete(e.to_string()))?;
    let output = sign(request, &params).map_err(|e| SignatureError::Mismatch(e.to_string()))?;
    Ok(output.signature().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AKIAEXAMPLE000000001";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY";

    /// A request signed by AWS's signer at `at` with `secret`, as a client sends it.
    fn signed(secret: &str, at: DateTime<Utc>, body: &'static [u8]) -> Parts {
        let mut request = http::Request::builder()
            .method("POST")
            .uri("/2015-03-31/functions/hello/invocations?Qualifier=%24LATEST")
            .header("host", "127.0.0.1:8080")
            .header("x-amz-invocation-type", "RequestResponse")
            .header("user-agent", "Boto3/1.0")
            .body(body)
            .expect("request");
        let identity =
            aws_credential_types::Credentials::new(KEY, secret, None, None, "test").into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("us-east-1")
            .name("lambda")
            .time(at.into())
            .settings(SigningSettings::default())
            .build()
            .expect("params")
            .into();
        let signable = SignableRequest::new(
            "POST",
            "http://127.0.0.1:8080/2015-03-31/functions/hello/invocations?Qualifier=%24LATEST",
            request
                .headers()
                .iter()
                .map(|(k, v)| (k.as_str(), v.to_str().expect("text"))),
            SignableBody::Bytes(body),
        )
        .expect("signable");
        let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
        instructions.apply_to_request_http1x(&mut request);
        request.into_parts().0
    }

    fn check(parts: &Parts, body: &[u8], now: DateTime<Utc>) -> Result<(), SignatureError> {
        let credential = credential(parts)?;
        assert_eq!(credential.key_id, KEY);
        verify(parts, body, &credential, SECRET, now)
    }

    #[test]
    fn a_request_signed_with_the_secret_passes_and_any_change_fails() {
        let now = Utc::now();
        let parts = signed(SECRET, now, b"{\"name\":\"Ann\"}");
        assert_eq!(check(&parts, b"{\"name\":\"Ann\"}", now), Ok(()));
        // Another body, another secret, a header changed: refused as AWS refuses.
        let err = check(&parts, b"{\"name\":\"Bob\"}", now).expect_err("body");
        assert_eq!(err.parts().1, "InvalidSignatureException");
        let wrong = signed("not-the-secret", now, b"x");
        assert!(matches!(
            check(&wrong, b"x", now),
            Err(SignatureError::Mismatch(_))
        ));
        let mut changed = signed(SECRET, now, b"x");
        changed.headers.insert(
            "x-amz-invocation-type",
            http::HeaderValue::from_static("Event"),
        );
        assert!(matches!(
            check(&changed, b"x", now),
            Err(SignatureError::Mismatch(_))
        ));
        // The user agent is not signed: a proxy may change it.
        let mut agent = signed(SECRET, now, b"x");
        agent
            .headers
            .insert("user-agent", http::HeaderValue::from_static("other"));
        assert_eq!(check(&agent, b"x", now), Ok(()));
    }

    #[test]
    fn stale_and_future_dates_are_refused_as_expired() {
        let now = Utc::now();
        let old = signed(SECRET, now - chrono::Duration::minutes(16), b"");
        let err = check(&old, b"", now).expect_err("stale");
        assert!(
            matches!(&err, SignatureError::Expired(m) if m.starts_with("Signature expired:")),
            "{err:?}"
        );
        assert_eq!(err.parts().0, StatusCode::FORBIDDEN);
        let future = signed(SECRET, now + chrono::Duration::minutes(16), b"");
        assert!(matches!(
            check(&future, b"", now),
            Err(SignatureError::Expired(_))
        ));
        let skewed = signed(SECRET, now - chrono::Duration::minutes(14), b"");
        assert_eq!(check(&skewed, b"", now), Ok(()));
    }

    #[test]
    fn headers_that_are_not_sigv4_are_named() {
        let mut parts = signed(SECRET, Utc::now(), b"");
        parts.headers.remove(http::header::AUTHORIZATION);
        assert_eq!(credential(&parts), Err(SignatureError::Missing));
        assert_eq!(
            SignatureError::Missing.parts().1,
            "MissingAuthenticationTokenException"
        );
        parts.headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("Bearer abc"),
        );
        assert!(matches!(
            credential(&parts),
            Err(SignatureError::Incomplete(_))
        ));
        parts.headers.insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIA/20240101/us-east-1/lambda/aws4_request, Signature=ab",
            ),
        );
        let err = credential(&parts).expect_err("no SignedHeaders");
        assert!(
            matches!(&err, SignatureError::Incomplete(m) if m.contains("SignedHeaders")),
            "{err:?}"
        );
        assert_eq!(err.parts().0, StatusCode::BAD_REQUEST);
    }
}
