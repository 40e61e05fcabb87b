//! The volumes area of a spec: Docker named volumes mounted in a function's containers.

use super::SpecError;
use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

const MAX_VOLUMES: usize = 16;
/// Paths a volume may not be mounted on, nor below: the sandbox's own mounts.
const RESERVED_MOUNT_PATHS: [&str; 5] = ["/tmp", "/proc", "/dev", "/sys", "/.skiff"];

/// A named volume mounted in a function's containers: `name:/target` or `name:/target:ro`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct VolumeMount {
    /// The Docker volume's name.
    pub name: String,
    /// Where it is mounted in the container (an absolute path).
    pub target: String,
    /// Whether it is mounted read-only.
    pub read_only: bool,
}

impl fmt::Display for VolumeMount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.name, self.target)?;
        if self.read_only {
            f.write_str(":ro")?;
        }
        Ok(())
    }
}

/// Checks that `name` is a Docker named volume's name (not a host path); the error says
/// what is wrong.
pub fn check_volume_name(name: &str) -> Result<(), String> {
    if name.starts_with(['/', '.', '~']) || name.contains('/') {
        return Err(format!(
            "`{name}` is a host path: only Docker named volumes can be mounted"
        ));
    }
    let valid_name = (2..=128).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid_name {
        return Err(format!(
            "`{name}` is not a volume name: use 2 to 128 letters, digits, `_`, `.` or `-`, starting with a letter or digit"
        ));
    }
    Ok(())
}

impl VolumeMount {
    /// Reads `NAME:/path[:ro|:rw]`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split(':').collect();
        let (name, target, mode) = match parts.as_slice() {
            [name, target] => (*name, *target, None),
            [name, target, mode] => (*name, *target, Some(*mode)),
            _ => {
                return Err(format!(
                    "`{text}` is not a volume: use NAME:/path or NAME:/path:ro"
                ))
            }
        };
        check_volume_name(name)?;
        let valid_path = target.starts_with('/')
            && target.len() <= 512
            && !target.chars().any(|c| c.is_whitespace() || c.is_control())
            && (target == "/"
                || target[1..]
                    .split('/')
                    .all(|part| !matches!(part, "" | "." | "..")));
        if !valid_path {
            return Err(format!(
                "`{target}` is not a mount path: use an absolute path such as /data, without `.`, `..` or `//`"
            ));
        }
        if target == "/" {
            return Err("a volume cannot be mounted over `/`".to_string());
        }
        if let Some(reserved) = RESERVED_MOUNT_PATHS
            .iter()
            .find(|r| target == **r || target.starts_with(&format!("{r}/")))
        {
            return Err(format!(
                "`{target}` is reserved: a volume cannot be mounted on or below {reserved}"
            ));
        }
        let read_only = match mode {
            None | Some("rw") => false,
            Some("ro") => true,
            Some(other) => {
                return Err(format!(
                    "`{other}` is not a mount mode: use ro (read-only) or rw (the default)"
                ))
            }
        };
        Ok(VolumeMount {
            name: name.to_string(),
            target: target.to_string(),
            read_only,
        })
    }
}

/// The named volumes of a spec, checked: at most 16, one per mount path.
/// The prefix of the engine's names of the volumes of a namespace other than `default`:
/// volume `V` of namespace `NS` is the engine's volume `skiff-ns.NS.V`, so that no two
/// namespaces share one. Specs may not name such volumes themselves.
pub const NAMESPACED_VOLUME_PREFIX: &str = "skiff-ns.";

impl VolumeMount {
    /// This mount with its volume named as the engine knows it for a function of
    /// `namespace`.
    pub fn in_namespace(&self, namespace: &str) -> VolumeMount {
        let mut mount = self.clone();
        if namespace != crate::access::DEFAULT_NAMESPACE {
            mount.name = format!("{NAMESPACED_VOLUME_PREFIX}{namespace}.{}", self.name);
        }
        mount
    }

    /// This mount with its volume named as its namespace knows it (the reverse of
    /// [`VolumeMount::in_namespace`]).
    pub fn as_seen_in(&self, namespace: &str) -> VolumeMount {
        let mut mount = self.clone();
        let prefix = format!("{NAMESPACED_VOLUME_PREFIX}{namespace}.");
        if let Some(name) = self.name.strip_prefix(&prefix) {
            mount.name = name.to_string();
        }
        mount
    }
}

pub(super) fn validate(volumes: &[String]) -> Result<Vec<VolumeMount>, SpecError> {
    if volumes.len() > MAX_VOLUMES {
        return Err(SpecError::new(
            "volumes",
            format!("too many volumes: at most {MAX_VOLUMES}"),
        ));
    }
    let mut mounts: Vec<VolumeMount> = Vec::with_capacity(volumes.len());
    for (i, text) in volumes.iter().enumerate() {
        let field = format!("volumes[{i}]");
        let volume = VolumeMount::parse(text.trim()).map_err(|m| SpecError::new(&field, m))?;
        if volume.name.starts_with(NAMESPACED_VOLUME_PREFIX) {
            return Err(SpecError::new(
                field,
                format!("volume names starting with `{NAMESPACED_VOLUME_PREFIX}` are reserved for the volumes of namespaces"),
            ));
        }
        if mounts.iter().any(|v| v.target == volume.target) {
            return Err(SpecError::new(
                field,
                format!("{} is already mounted by another volume", volume.target),
            ));
        }
        mounts.push(volume);
    }
    Ok(mounts)
}
