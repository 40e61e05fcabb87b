//! Request and response bodies as skiff passes them along: one boxed stream type, and the
//! helpers that read or bound a body.

use crate::error::PlatformError;
use bytes::Bytes;
use http::HeaderMap;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;

/// An error inside a body stream.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A request or response body: streamed, of any origin.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A body holding `bytes`.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// `body`, failing with a `LengthLimitError` past `limit` bytes. (A plain function, so that
/// async code holding the result sees only the boxed type.)
pub(crate) fn limited(body: Body, limit: usize) -> Body {
    http_body_util::Limited::new(body, limit).boxed_unsync()
}

/// The request's declared body length.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Whether the request declares a body over `limit` bytes.
pub(crate) fn too_large(headers: &HeaderMap, limit: usize) -> bool {
    content_length(headers).is_some_and(|len| len > limit as u64)
}

/// The whole of a request body of at most `limit` bytes: `PayloadTooLarge` past it,
/// `BadRequest` if it cannot be read.
pub(crate) async fn read(body: Body, limit: usize) -> Result<Bytes, PlatformError> {
    match limited(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => {
            Err(PlatformError::PayloadTooLarge { limit })
        }
        Err(err) => Err(PlatformError::BadRequest {
            message: format!("cannot read the request body: {err}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bodies_are_read_whole_up_to_their_limit() {
        assert_eq!(
            read(full("hello"), 5).await.ok(),
            Some(Bytes::from("hello"))
        );
        assert!(matches!(
            read(full("hello!"), 5).await,
            Err(PlatformError::PayloadTooLarge { limit: 5 })
        ));
        let mut headers = HeaderMap::new();
        assert!(!too_large(&headers, 5));
        headers.insert(http::header::CONTENT_LENGTH, "6".parse().expect("value"));
        assert_eq!(content_length(&headers), Some(6));
        assert!(too_large(&headers, 5));
    }
}
