//! The JSON body of a management request: an object, never an array. serde reads a struct
//! from an array of its fields in order too (`[null, null]` would be a request with every
//! field left out); the API documents objects, so anything else is refused.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::Json;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A JSON object body read into `T`.
#[derive(Debug)]
pub struct Object<T>(pub T);

/// Why a body was refused.
#[derive(Debug)]
pub enum BodyRejection {
    /// Not JSON, too large, or the wrong content type.
    Json(JsonRejection),
    /// JSON, but not an object.
    NotObject,
    /// An object that is not a `T`.
    Invalid(serde_json::Error),
}

impl BodyRejection {
    /// Whether the body was over the size limit.
    pub fn too_large(&self) -> bool {
        matches!(self, BodyRejection::Json(r) if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE)
    }

    /// What was wrong, in one line.
    pub fn message(&self) -> String {
        match self {
            BodyRejection::Json(r) => r.body_text(),
            BodyRejection::NotObject => "the body must be a JSON object".to_string(),
            BodyRejection::Invalid(err) => err.to_string(),
        }
    }
}

impl axum::response::IntoResponse for BodyRejection {
    fn into_response(self) -> axum::response::Response {
        crate::error::ApiError::body_rejection(&self, "invalid_request", "the body").into_response()
    }
}

impl<S, T> FromRequest<S> for Object<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = BodyRejection;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(value) = Json::<Value>::from_request(request, state)
            .await
            .map_err(BodyRejection::Json)?;
        if !value.is_object() {
            return Err(BodyRejection::NotObject);
        }
        serde_json::from_value(value)
            .map(Object)
            .map_err(BodyRejection::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    #[derive(Debug, serde::Deserialize)]
    struct Pair {
        #[allow(dead_code)]
        a: Option<u32>,
        #[allow(dead_code)]
        b: Option<u32>,
    }

    async fn read(body: &'static str) -> Result<Object<Pair>, BodyRejection> {
        let request = Request::builder()
            .header("content-type", "application/json")
            .body(Body::from(body))
            .expect("request");
        Object::<Pair>::from_request(request, &()).await
    }

    #[tokio::test]
    async fn only_an_object_of_the_right_shape_is_read() {
        assert!(read(r#"{"a": 1}"#).await.is_ok());
        assert!(matches!(
            read("[null, null]").await,
            Err(BodyRejection::NotObject)
        ));
        assert!(matches!(read("3").await, Err(BodyRejection::NotObject)));
        let wrong = read(r#"{"a": "x"}"#)
            .await
            .expect_err("a string for a number");
        assert!(matches!(wrong, BodyRejection::Invalid(_)));
        assert!(
            wrong.message().contains("invalid type"),
            "{}",
            wrong.message()
        );
        assert!(matches!(read("{").await, Err(BodyRejection::Json(_))));
    }
}
