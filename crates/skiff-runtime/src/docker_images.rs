//! Pulls, pushes and tags on the Docker Engine API: the engine's progress messages as
//! [`ImageProgress`], its refusals as typed errors.

use crate::docker::{classify, DockerEngine};
use crate::error::Op;
use crate::{split_reference, EngineError, ImageProgress, Progress, RegistryAuth};
use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::models::ProgressDetail;
use bollard::query_parameters::{
    CreateImageOptionsBuilder, PushImageOptionsBuilder, TagImageOptionsBuilder,
};
use futures::StreamExt;

impl DockerEngine {
    pub(crate) fn pull(&self, reference: &str, auth: Option<RegistryAuth>) -> Progress {
        let (repository, tag) = split_reference(reference);
        let options = CreateImageOptionsBuilder::default()
            .from_image(repository)
            .tag(tag)
            .build();
        let reference = reference.to_string();
        self.docker
            .create_image(Some(options), None, auth.map(credentials))
            .map(move |step| match step {
                Ok(info) => Ok(progress(info.id, info.status, info.progress_detail)),
                Err(err) => Err(refused("pull", &reference, err)),
            })
            .boxed()
    }

    pub(crate) fn push(&self, reference: &str, auth: Option<RegistryAuth>) -> Progress {
        let (repository, tag) = split_reference(reference);
        let options = PushImageOptionsBuilder::default().tag(tag).build();
        let reference = reference.to_string();
        self.docker
            .push_image(repository, Some(options), auth.map(credentials))
            .map(move |step| match step {
                Ok(info) => Ok(progress(None, info.status, info.progress_detail)),
                Err(err) => Err(refused("push", &reference, err)),
            })
            .boxed()
    }

    pub(crate) async fn tag(&self, source: &str, target: &str) -> Result<(), EngineError> {
        let (repository, tag) = split_reference(target);
        let options = TagImageOptionsBuilder::default()
            .repo(repository)
            .tag(tag)
            .build();
        self.docker
            .tag_image(source, Some(options))
            .await
            .map_err(|err| match err {
                BollardError::DockerResponseServerError {
                    status_code: 404, ..
                } => EngineError::ImageNotFound {
                    reference: source.to_string(),
                },
                // The engine answers 400 or 500 for a name it cannot parse or refuses.
                BollardError::DockerResponseServerError { message, .. }
                    if REFUSED_NAME.iter().any(|m| message.contains(m)) =>
                {
                    EngineError::InvalidReference {
                        reference: target.to_string(),
                        message,
                    }
                }
                other => classify(Op("tag image"), other),
            })
    }
}

/// What the engine says of a name it will not give an image: unparsable, too long, a
/// 64-digit hex string (an id's shape), a bad tag.
const REFUSED_NAME: &[&str] = &[
    "invalid reference format",
    "repository name must",
    "invalid repository name",
    "invalid tag format",
];

fn credentials(auth: RegistryAuth) -> DockerCredentials {
    DockerCredentials {
        username: Some(auth.username),
        password: Some(auth.password),
        serveraddress: Some(auth.server),
        ..Default::default()
    }
}

fn progress(
    layer: Option<String>,
    status: Option<String>,
    detail: Option<ProgressDetail>,
) -> ImageProgress {
    let detail = detail.unwrap_or_default();
    let bytes = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok()).filter(|n| *n > 0);
    ImageProgress {
        layer,
        status: status.unwrap_or_default(),
        current: bytes(detail.current),
        total: bytes(detail.total),
    }
}

/// What a refused pull or push means: a reference the registry does not know, or a
/// registry that could not be used.
fn refused(op: &'static str, reference: &str, err: BollardError) -> EngineError {
    let message = match err {
        BollardError::DockerResponseServerError { message, .. } => message,
        BollardError::DockerStreamError { error } => error,
        other => return classify(Op(op), other),
    };
    let lower = message.to_ascii_lowercase();
    if op == "pull"
        && (lower.contains("manifest unknown")
            || lower.contains("not found")
            || lower.contains("repository does not exist"))
    {
        return EngineError::ImageNotFound {
            reference: reference.to_string(),
        };
    }
    if lower.contains("invalid reference format") {
        return EngineError::InvalidReference {
            reference: reference.to_string(),
            message,
        };
    }
    EngineError::Registry {
        op,
        reference: reference.to_string(),
        message,
    }
}
