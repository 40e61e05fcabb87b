//! Registry credentials, read from a Docker client configuration file
//! (`~/.docker/config.json`, or the file `--registry-auth` names): the `auths` section,
//! each entry's `auth` (base64 of `user:password`) or its `username` and `password`.
//! Credential helpers (`credsStore`, `credHelpers`) are not run.

use base64::Engine as _;
use serde::Deserialize;
use skiff_runtime::{registry_of, RegistryAuth};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What can be wrong with a credentials file.
#[derive(Debug, thiserror::Error)]
pub enum RegistriesError {
    /// The file cannot be read.
    #[error("cannot read the registry credentials in {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a Docker client configuration.
    #[error("{path} is not a Docker client configuration: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The credentials of each registry, by its address.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    auths: HashMap<String, RegistryAuth>,
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

impl Registries {
    /// None: images come from registries that need no credentials.
    pub fn none() -> Registries {
        Registries::default()
    }

    /// The credentials in the Docker client configuration at `path`.
    pub fn load(path: &Path) -> Result<Registries, RegistriesError> {
        let text = std::fs::read_to_string(path).map_err(|source| RegistriesError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Registries::parse(&text).map_err(|message| RegistriesError::Invalid {
            path: path.to_path_buf(),
            message,
        })
    }

    /// The credentials in the Docker client configuration `text`.
    pub fn parse(text: &str) -> Result<Registries, String> {
        // serde would read the struct from an array too: only an object is a configuration.
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if !value.is_object() {
            return Err("not a JSON object".to_string());
        }
        let file: ConfigFile = serde_json::from_value(value).map_err(|e| e.to_string())?;
        let mut auths = HashMap::new();
        for (key, entry) in file.auths {
            let server = server_of(&key);
            let (username, password) = match (entry.auth, entry.username, entry.password) {
                (Some(auth), _, _) if !auth.is_empty() => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .map_err(|e| format!("the auth of {key} is not base64: {e}"))?;
                    let decoded = String::from_utf8(decoded)
                        .map_err(|_| format!("the auth of {key} is not text"))?;
                    let (user, password) = decoded
                        .split_once(':')
                        .ok_or_else(|| format!("the auth of {key} is not user:password"))?;
                    (user.to_string(), password.to_string())
                }
                (_, Some(username), Some(password)) => (username, password),
                // An entry a credential helper fills: nothing here to use.
                _ => continue,
            };
            auths.insert(
                server.clone(),
                RegistryAuth {
                    server,
                    username,
                    password,
                },
            );
        }
        Ok(Registries { auths })
    }

    /// The credentials for the registry of image `reference`, if there are any.
    pub fn for_image(&self, reference: &str) -> Option<RegistryAuth> {
        let registry = registry_of(reference);
        self.auths
            .get(registry)
            .or_else(|| {
                (registry == "docker.io")
                    .then(|| self.auths.get("index.docker.io"))
                    .flatten()
            })
            .cloned()
    }

    /// How many registries have credentials.
    pub fn len(&self) -> usize {
        self.auths.len()
    }

    /// Whether no registry has credentials.
    pub fn is_empty(&self) -> bool {
        self.auths.is_empty()
    }
}

/// A registry's address as an `auths` key gives it: `https://index.docker.io/v1/` is
/// `index.docker.io`, `http://127.0.0.1:5000` is `127.0.0.1:5000`.
fn server_of(key: &str) -> String {
    let bare = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    bare.split('/').next().unwrap_or(bare).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_read_as_the_docker_client_writes_them() {
        let registries = Registries::parse(
            r#"{"auths": {
                "127.0.0.1:5000": {"auth": "YWxpY2U6czNjcmV0"},
                "https://index.docker.io/v1/": {"username": "bob", "password": "pw"},
                "helped.example.com": {}
            }, "credsStore": "desktop"}"#,
        )
        .expect("parse");
        assert_eq!(registries.len(), 2);
        let local = registries
            .for_image("127.0.0.1:5000/hello:v1")
            .expect("local");
        assert_eq!(
            (local.username.as_str(), local.password.as_str()),
            ("alice", "s3cret")
        );
        assert_eq!(local.server, "127.0.0.1:5000");
        let hub = registries.for_image("library/busybox").expect("hub");
        assert_eq!(hub.username, "bob");
        assert!(registries.for_image("other.example.com/x").is_none());
    }

    #[test]
    fn a_broken_file_is_refused_with_its_reason() {
        let err = Registries::parse(r#"{"auths": {"r": {"auth": "not base64!"}}}"#)
            .expect_err("bad auth");
        assert!(err.contains("not base64"), "{err}");
        assert!(Registries::parse("[]").is_err());
    }
}
