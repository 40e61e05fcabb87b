//! Images pulled from and pushed to registries, with the credentials of the daemon's
//! configuration: each step as the engine reports it, a registry that stops answering ended
//! after [`IMAGE_IDLE`].

use super::Platform;
use crate::PlatformError;
use futures::stream::{BoxStream, StreamExt};
use skiff_runtime::{EngineError, ImageInfo, ImageProgress};
use std::time::Duration;

/// How long a pull or a push may go without a step before it is ended as failed.
pub const IMAGE_IDLE: Duration = Duration::from_secs(120);

/// The steps of a pull or a push; an error is the last item.
pub type ImageSteps = BoxStream<'static, Result<ImageProgress, PlatformError>>;

impl Platform {
    /// Pulls `image` from its registry onto the engine: with the daemon's credentials for
    /// that registry when `credentials` (the caller may use them), anonymously otherwise.
    pub fn pull_image(&self, image: &str, credentials: bool) -> Result<ImageSteps, PlatformError> {
        let image = checked(image)?;
        tracing::info!(image, credentials, "pulling an image");
        let auth = credentials
            .then(|| self.config.registries.for_image(image))
            .flatten();
        Ok(bounded("pull", image, self.engine.pull_image(image, auth)))
    }

    /// Pulls `image` as [`Platform::pull_image`] does and waits for the end: `Ok` once the
    /// image is on the engine, or the error that ended the pull.
    pub async fn pull_to_end(&self, image: &str, credentials: bool) -> Result<(), PlatformError> {
        let mut steps = self.pull_image(image, credentials)?;
        while let Some(step) = futures::StreamExt::next(&mut steps).await {
            step?;
        }
        Ok(())
    }

    /// Pushes `image`, on the engine, to its registry; with `to`, it is first tagged `to`
    /// and that is pushed.
    pub async fn push_image(
        &self,
        image: &str,
        to: Option<&str>,
    ) -> Result<ImageSteps, PlatformError> {
        let image = checked(image)?;
        let target = match to {
            Some(to) => {
                let to = checked(to)?;
                self.engine
                    .tag_image(image, to)
                    .await
                    .map_err(|err| classify("push", image, err))?;
                to
            }
            None => image,
        };
        tracing::info!(image, to = target, "pushing an image");
        let auth = self.config.registries.for_image(target);
        Ok(bounded(
            "push",
            target,
            self.engine.push_image(target, auth),
        ))
    }

    /// What the engine knows of `image`: its id and its registry digests.
    pub async fn image_info(&self, image: &str) -> Result<ImageInfo, PlatformError> {
        let image = checked(image)?;
        self.engine
            .inspect_image(image)
            .await
            .map_err(|err| classify("inspect", image, err))
    }
}

/// A reference fit to hand the engine: not empty, no blanks, not absurdly long.
fn checked(image: &str) -> Result<&str, PlatformError> {
    let image = image.trim();
    if image.is_empty() || image.len() > 512 || image.contains(char::is_whitespace) {
        return Err(PlatformError::InvalidSpec(skiff_core::SpecError::new(
            "image",
            format!("`{image}` is not an image reference"),
        )));
    }
    Ok(image)
}

fn classify(op: &'static str, image: &str, err: EngineError) -> PlatformError {
    match err {
        EngineError::ImageNotFound { reference } if op == "pull" => PlatformError::NotInRegistry {
            registry: skiff_runtime::registry_of(&reference).to_string(),
            image: reference,
        },
        EngineError::ImageNotFound { reference } => {
            PlatformError::ImageNotFound { image: reference }
        }
        err @ EngineError::InvalidReference { .. } => {
            PlatformError::InvalidSpec(skiff_core::SpecError::new("image", err.to_string()))
        }
        EngineError::Registry { message, .. } => PlatformError::Registry {
            op,
            image: image.to_string(),
            message,
        },
        other => PlatformError::Engine(other),
    }
}

/// `steps`, its errors classified, ended with an error when no step comes for
/// [`IMAGE_IDLE`], and ended after its first error.
fn bounded(op: &'static str, image: &str, steps: skiff_runtime::Progress) -> ImageSteps {
    let image = image.to_string();
    futures::stream::unfold(Some(steps), move |steps| {
        let image = image.clone();
        async move {
            let mut steps = steps?;
            match tokio::time::timeout(IMAGE_IDLE, steps.next()).await {
                Ok(Some(Ok(step))) => Some((Ok(step), Some(steps))),
                Ok(Some(Err(err))) => Some((Err(classify(op, &image, err)), None)),
                Ok(None) => None,
                Err(_) => Some((
                    Err(PlatformError::Registry {
                        op,
                        image,
                        message: format!(
                            "no progress for {}s; the registry may be unreachable",
                            IMAGE_IDLE.as_secs()
                        ),
                    }),
                    None,
                )),
            }
        }
    })
    .boxed()
}
