//! Bodies of the image routes: `POST /v1/images/pull` and `POST /v1/images/push` take an
//! image and answer with its steps as NDJSON, each line an [`ImageEvent`].

use super::ErrorDetail;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An image to pull (`POST /v1/images/pull`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    /// The image reference (`REGISTRY/REPOSITORY[:TAG]` or `...@sha256:...`).
    #[schema(min_length = 1, max_length = 512)]
    pub image: String,
}

/// An image to push (`POST /v1/images/push`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PushRequest {
    /// An image on the engine.
    #[schema(min_length = 1, max_length = 512)]
    pub image: String,
    /// The name to push it as (`REGISTRY/REPOSITORY[:TAG]`); without it, `image` itself
    /// is pushed to the registry its name says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(min_length = 1, max_length = 512)]
    pub to: Option<String>,
}

/// One step of a pull or a push.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImageStep {
    /// The layer it is about; none for the image as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<String>,
    /// What happens (`Downloading`, `Pull complete`, `Pushed`, ...).
    pub status: String,
    /// Bytes done, when the step moves bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    /// Bytes in all, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

/// The image, once on the engine or in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ImageDone {
    /// The reference pulled or pushed.
    pub image: String,
    /// The image's id on the engine (`sha256:...`).
    pub id: String,
    /// Its digests in registries (`REPOSITORY@sha256:...`).
    pub digests: Vec<String>,
}

/// One line of the answer to a pull or a push: a step, the end, or the error that ended it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ImageEvent {
    /// A step.
    Progress(ImageStep),
    /// The last line of a pull or a push that succeeded.
    Done(ImageDone),
    /// The last line of one that failed.
    Error(ErrorDetail),
}
