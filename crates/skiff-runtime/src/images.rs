//! Images moved between the engine and a registry: the steps a pull or a push reports, the
//! credentials of a registry, and the registry an image reference names.

use futures::stream::BoxStream;
use std::fmt;

/// One step of a pull or a push, as the engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageProgress {
    /// The layer the step is about (`None`: the image as a whole).
    pub layer: Option<String>,
    /// What happens (`Pulling fs layer`, `Downloading`, `Pushed`, `Digest: sha256:...`).
    pub status: String,
    /// Bytes done, when the step moves bytes.
    pub current: Option<u64>,
    /// Bytes in all, when known.
    pub total: Option<u64>,
}

/// The steps of a pull or a push, ending at its end; an error ends it.
pub type Progress = BoxStream<'static, Result<ImageProgress, crate::EngineError>>;

/// The credentials of one registry. Its `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    /// The registry's address (`registry.example.com`, `127.0.0.1:5000`).
    pub server: String,
    /// The user.
    pub username: String,
    /// The password or token.
    pub password: String,
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegistryAuth")
            .field("server", &self.server)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The registry an image reference names: its first path component when that has a dot or
/// a colon or is `localhost`, as Docker reads it; Docker Hub (`docker.io`) otherwise.
pub fn registry_of(reference: &str) -> &str {
    match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

/// A reference split into the repository and the tag or digest to pull (`latest` when it
/// names neither).
pub fn split_reference(reference: &str) -> (&str, &str) {
    if let Some((repository, digest)) = reference.split_once('@') {
        return (repository, digest);
    }
    // A colon after the last slash separates the tag; one before it is a registry's port.
    let last_slash = reference.rfind('/').map_or(0, |at| at + 1);
    match reference[last_slash..].rfind(':') {
        Some(at) => (
            &reference[..last_slash + at],
            &reference[last_slash + at + 1..],
        ),
        None => (reference, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_names_its_registry_as_docker_reads_it() {
        assert_eq!(registry_of("127.0.0.1:5000/hello:v1"), "127.0.0.1:5000");
        assert_eq!(
            registry_of("registry.example.com/team/app"),
            "registry.example.com"
        );
        assert_eq!(registry_of("localhost/app"), "localhost");
        assert_eq!(registry_of("skiff/hello:latest"), "docker.io");
        assert_eq!(registry_of("busybox"), "docker.io");
    }

    #[test]
    fn a_reference_splits_into_repository_and_tag_or_digest() {
        assert_eq!(
            split_reference("127.0.0.1:5000/hello:v1"),
            ("127.0.0.1:5000/hello", "v1")
        );
        assert_eq!(
            split_reference("127.0.0.1:5000/hello"),
            ("127.0.0.1:5000/hello", "latest")
        );
        assert_eq!(split_reference("hello@sha256:abc"), ("hello", "sha256:abc"));
        assert_eq!(split_reference("busybox"), ("busybox", "latest"));
    }

    #[test]
    fn credentials_never_show_their_password() {
        let auth = RegistryAuth {
            server: "r".into(),
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{auth:?}").contains("hunter2"));
    }
}
