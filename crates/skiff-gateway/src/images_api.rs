//! Images pulled from and pushed to registries, their steps streamed as NDJSON.

use crate::auth::{forbidden, Access, AuditTarget};
use crate::body::{BodyRejection, Object};
use crate::error::ApiError;
use crate::logs_api::ndjson;
use crate::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures::StreamExt;
use skiff_core::api::{ErrorBody, ImageDone, ImageEvent, ImageStep, PullRequest, PushRequest};
use skiff_invoker::{ImageSteps, Platform};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// `POST /v1/images/pull`: pulls an image from its registry onto the engine.
#[utoipa::path(post, path = "/v1/images/pull", tag = "images",
    request_body = PullRequest,
    responses(
        (status = 200, description = "The pull's steps, one `ImageEvent` a line (`application/x-ndjson`; blank lines are keep-alives): `progress` lines, then `done` (the image's id and digests) or `error` (`image_not_found`: the registry has no such image; `registry_error`: the registry could not be used, or gave no progress for 120 s). The daemon's registry credentials (`--registry-auth`) are used for a token of every namespace only; a token of some namespaces pulls anonymously, and not from a registry on a loopback, link-local or private address (403).",
            content_type = "application/x-ndjson", body = ImageEvent),
        (status = 400, body = ErrorBody)))]
pub async fn pull(
    State(state): State<AppState>,
    Extension(access): Extension<Access>,
    request: Result<Object<PullRequest>, BodyRejection>,
) -> Result<Response, ApiError> {
    let Object(request) =
        request.map_err(|r| ApiError::body_rejection(&r, "invalid_request", "the pull request"))?;
    let image = request.image.clone();
    // The daemon's credentials and its host's network are for those who manage all of it.
    let trusted = access.grant.covers_all();
    let answer = if !trusted && skiff_invoker::registry_is_local(&request.image) {
        Err(forbidden(
            "a registry on this host or a private network is for a token of every namespace",
        ))
    } else {
        state
            .platform
            .pull_image(&request.image, trusted)
            .map(|steps| stream(state.platform.clone(), request.image, steps))
            .map_err(ApiError::from)
    };
    Ok(audited(answer, image))
}

/// The answer, with the image it is about for the audit log.
fn audited(answer: Result<Response, ApiError>, image: String) -> Response {
    let mut response = answer.into_response();
    response.extensions_mut().insert(AuditTarget(image));
    response
}

/// `POST /v1/images/push`: pushes an image on the engine to a registry.
#[utoipa::path(post, path = "/v1/images/push", tag = "images",
    request_body = PushRequest,
    responses(
        (status = 200, description = "The push's steps, one `ImageEvent` a line (`application/x-ndjson`): `progress` lines, then `done` or `error` (`registry_error`: the registry could not be used or refused the push). With `to`, the image is tagged `to` first and pushed under that name.",
            content_type = "application/x-ndjson", body = ImageEvent),
        (status = 400, body = ErrorBody),
        (status = 422, description = "No such image on the engine", body = ErrorBody)))]
pub async fn push(
    State(state): State<AppState>,
    request: Result<Object<PushRequest>, BodyRejection>,
) -> Result<Response, ApiError> {
    let Object(request) =
        request.map_err(|r| ApiError::body_rejection(&r, "invalid_request", "the push request"))?;
    let pushed = request.to.clone().unwrap_or_else(|| request.image.clone());
    let answer = async {
        // What a missing image means is known before a byte moves: a plain 422.
        state.platform.image_info(&request.image).await?;
        let steps = state
            .platform
            .push_image(&request.image, request.to.as_deref())
            .await?;
        Ok(stream(state.platform.clone(), pushed.clone(), steps))
    }
    .await;
    Ok(audited(answer, pushed))
}

/// The steps as NDJSON, then the image's `done` line, or the `error` line that ended them
/// (`steps` ends at its first error); a blank line whenever nothing was sent for
/// 15 s (`logs_api::ndjson`), so that a caller can tell a quiet registry from a dead connection.
fn stream(platform: Arc<Platform>, image: String, steps: ImageSteps) -> Response {
    let failed = Arc::new(AtomicBool::new(false));
    let failing = failed.clone();
    let events = steps.map(move |step| match step {
        Ok(step) => ImageEvent::Progress(ImageStep {
            layer: step.layer,
            status: step.status,
            current: step.current,
            total: step.total,
        }),
        Err(err) => {
            failing.store(true, Ordering::Release);
            ImageEvent::Error(ApiError::from(err).into_detail())
        }
    });
    // Asked only once the steps ended, and only if they ended well.
    let ended = futures::stream::once(async move {
        if failed.load(Ordering::Acquire) {
            return None;
        }
        Some(match platform.image_info(&image).await {
            Ok(info) => ImageEvent::Done(ImageDone {
                digests: of_repository(&image, info.digests),
                image,
                id: info.id,
            }),
            Err(err) => ImageEvent::Error(ApiError::from(err).into_detail()),
        })
    })
    .filter_map(futures::future::ready);
    ndjson(events.chain(ended))
}

/// The digests of `image`'s own repository first: an image pulled from or pushed to
/// several registries has a digest in each.
fn of_repository(image: &str, mut digests: Vec<String>) -> Vec<String> {
    let (repository, _) = skiff_invoker::split_reference(image);
    digests.sort_by_key(|digest| {
        digest
            .split_once('@')
            .is_none_or(|(repo, _)| repo != repository)
    });
    digests
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_image_s_own_digest_comes_first() {
        let digests = of_repository(
            "127.0.0.1:5000/hello:v1",
            vec![
                "busybox@sha256:aaa".to_string(),
                "127.0.0.1:5000/hello@sha256:bbb".to_string(),
            ],
        );
        assert_eq!(digests[0], "127.0.0.1:5000/hello@sha256:bbb");
    }
}
