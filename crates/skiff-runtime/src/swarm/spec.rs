//! A [`ContainerSpec`] as the spec of a Swarm service with one task: the same sandbox as
//! [`crate::docker::DockerEngine`] gives a container, as far as the Swarm API allows, and
//! the image pinned by its registry digest.

use crate::{ContainerSpec, EngineError, ImageInfo};
use bollard::models::{
    EndpointSpec, EndpointSpecModeEnum, Limit, Mount, MountTmpfsOptions, MountType,
    NetworkAttachmentConfig, ResourceObject, ResourcesUlimits, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, TaskSpec, TaskSpecContainerSpec, TaskSpecContainerSpecPrivileges,
    TaskSpecResources, TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use std::time::Duration;

/// How long Swarm lets a task's process stop after SIGTERM before it kills it. Swarm takes it
/// from the service spec, not from the request that removes the service, so
/// [`crate::ContainerEngine::stop`]'s grace cannot apply per call: every instance gets this.
pub const STOP_GRACE_PERIOD: Duration = Duration::from_secs(10);

/// The first API version whose `ContainerSpec.Privileges` carries `NoNewPrivileges` (Docker
/// 25.0). Older managers (API 1.41 is Docker 20.10) have no way to set it on a service: their
/// tasks run without `no-new-privileges`; every capability is dropped all the same.
pub const NO_NEW_PRIVILEGES_SINCE: (usize, usize) = (1, 44);

/// The digest reference (`REPOSITORY@sha256:...`) that pins `image` for every node: the one
/// of the repository the caller named, when it named one, else the first in order.
/// [`EngineError::ImageNotInRegistry`] when the image was never pushed to nor pulled from a
/// registry.
pub fn pinned_reference(requested: &str, image: &ImageInfo) -> Result<String, EngineError> {
    let mut digests: Vec<&String> = image
        .digests
        .iter()
        .filter(|d| d.contains("@sha256:"))
        .collect();
    digests.sort();
    let named = requested
        .split_once('@')
        .map(|(repo, _)| repo)
        .unwrap_or(requested);
    let named = crate::split_reference(named).0;
    digests
        .iter()
        .find(|d| d.split_once('@').map(|(repo, _)| repo) == Some(named))
        .or_else(|| digests.first())
        .map(|d| d.to_string())
        .ok_or_else(|| EngineError::ImageNotInRegistry {
            image: requested.to_string(),
        })
}

/// Refuses what a service cannot have: bind mounts name a path on one host, and a task may
/// run on any node.
pub fn check(spec: &ContainerSpec) -> Result<(), EngineError> {
    if !spec.mounts.is_empty() {
        return Err(EngineError::Unsupported {
            op: "a bind mount of a host path (tasks run on any node)",
            engine: "swarm",
        });
    }
    Ok(())
}

/// The spec of the service that is one instance: one replica, never restarted, no virtual
/// IP (`dnsrr`: its task is addressed by its own IP), `image` the pinned reference.
/// `no_new_privileges` when the manager's API can say it (see [`NO_NEW_PRIVILEGES_SINCE`]).
pub fn service_spec(spec: &ContainerSpec, image: &str, no_new_privileges: bool) -> ServiceSpec {
    let limits = &spec.limits;
    let memory = i64::try_from(limits.memory_bytes).unwrap_or(i64::MAX);
    let nano_cpus = (limits.cpus * 1e9) as i64;
    let nofile = i64::try_from(limits.nofile).unwrap_or(i64::MAX);
    let tmp = i64::try_from(limits.tmp_bytes).unwrap_or(i64::MAX);
    let mounts = std::iter::once(Mount {
        target: Some("/tmp".to_string()),
        typ: Some(MountType::TMPFS),
        tmpfs_options: Some(MountTmpfsOptions {
            size_bytes: Some(tmp),
            mode: Some(0o1777),
            ..Default::default()
        }),
        ..Default::default()
    })
    .chain(spec.volumes.iter().map(|v| Mount {
        // Named volumes are local to each node: the node's engine creates the volume on the
        // first mount (see `SwarmEngine::ensure_volume`).
        source: Some(v.name.clone()),
        target: Some(v.target.clone()),
        typ: Some(MountType::VOLUME),
        read_only: Some(v.read_only),
        ..Default::default()
    }))
    .collect();
    let container = TaskSpecContainerSpec {
        image: Some(image.to_string()),
        labels: Some(spec.labels.clone()),
        // Swarm's Command replaces the image's entrypoint and Args its command, as the
        // container API's Entrypoint and Cmd do.
        command: spec.entrypoint.clone(),
        args: spec.cmd.clone(),
        env: Some(spec.env.clone()),
        privileges: no_new_privileges.then(|| TaskSpecContainerSpecPrivileges {
            no_new_privileges: Some(true),
            ..Default::default()
        }),
        read_only: Some(true),
        mounts: Some(mounts),
        stop_grace_period: Some(i64::try_from(STOP_GRACE_PERIOD.as_nanos()).unwrap_or(i64::MAX)),
        init: Some(false),
        capability_drop: Some(vec!["ALL".to_string()]),
        ulimits: Some(vec![ResourcesUlimits {
            name: Some("nofile".to_string()),
            soft: Some(nofile),
            hard: Some(nofile),
        }]),
        tty: Some(false),
        open_stdin: Some(false),
        ..Default::default()
    };
    let resources = TaskSpecResources {
        limits: Some(Limit {
            nano_cpus: Some(nano_cpus),
            memory_bytes: Some(memory),
            pids: Some(i64::from(limits.pids)),
        }),
        // Reserved as much as the limit: Swarm places a task only on a node with that much
        // unreserved, so placement follows the instances' sizes.
        reservations: Some(ResourceObject {
            nano_cpus: Some(nano_cpus),
            memory_bytes: Some(memory),
            ..Default::default()
        }),
        ..Default::default()
    };
    let networks = spec.network.as_ref().map(|network| {
        vec![NetworkAttachmentConfig {
            target: Some(network.clone()),
            ..Default::default()
        }]
    });
    ServiceSpec {
        name: Some(spec.name.clone()),
        labels: Some(spec.labels.clone()),
        task_template: Some(TaskSpec {
            container_spec: Some(container),
            resources: Some(resources),
            // An instance that ended is over: the pool starts another where it wants one.
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                max_attempts: Some(0),
                ..Default::default()
            }),
            networks,
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec {
            mode: Some(EndpointSpecModeEnum::DNSRR),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BindMount, Limits, NamedVolume};
    use std::collections::HashMap;

    fn spec() -> ContainerSpec {
        ContainerSpec {
            name: "skiff-fn-1".to_string(),
            image: "sha256:abc".to_string(),
            image_reference: None,
            entrypoint: None,
            cmd: Some(vec!["serve".to_string()]),
            env: vec!["PORT=8080".to_string()],
            labels: HashMap::from([("skiff.managed".to_string(), "true".to_string())]),
            limits: Limits {
                memory_bytes: 64 << 20,
                cpus: 0.5,
                pids: 64,
                tmp_bytes: 16 << 20,
                nofile: 1024,
            },
            stdin: false,
            network: Some("skiff-fn".to_string()),
            mounts: Vec::new(),
            volumes: vec![NamedVolume {
                name: "data".to_string(),
                target: "/data".to_string(),
                read_only: false,
            }],
        }
    }

    fn image(digests: &[&str]) -> ImageInfo {
        ImageInfo {
            id: "sha256:abc".to_string(),
            entrypoint: Vec::new(),
            cmd: Vec::new(),
            env: Vec::new(),
            digests: digests.iter().map(|d| d.to_string()).collect(),
        }
    }

    #[test]
    fn an_image_is_pinned_by_the_digest_of_the_repository_named() {
        let info = image(&["b.example/x@sha256:1", "a.example/x@sha256:1"]);
        assert_eq!(
            pinned_reference("b.example/x:latest", &info).expect("pinned"),
            "b.example/x@sha256:1"
        );
        assert_eq!(
            pinned_reference("sha256:abc", &info).expect("pinned"),
            "a.example/x@sha256:1"
        );
        let err = pinned_reference("sha256:abc", &image(&[])).expect_err("no digest");
        assert!(
            matches!(err, EngineError::ImageNotInRegistry { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("skiff push"), "{err}");
    }

    #[test]
    fn bind_mounts_are_refused() {
        let mut with_bind = spec();
        with_bind.mounts.push(BindMount {
            source: "/etc".into(),
            target: "/host-etc".to_string(),
        });
        assert!(matches!(
            check(&with_bind),
            Err(EngineError::Unsupported {
                engine: "swarm",
                ..
            })
        ));
        assert!(check(&spec()).is_ok());
    }

    #[test]
    fn the_service_is_one_sandboxed_task_that_reserves_its_limits() {
        let service = service_spec(&spec(), "r/x@sha256:1", false);
        assert_eq!(service.name.as_deref(), Some("skiff-fn-1"));
        let replicas = service
            .mode
            .and_then(|m| m.replicated)
            .and_then(|r| r.replicas);
        assert_eq!(replicas, Some(1));
        let endpoint = service.endpoint_spec.and_then(|e| e.mode);
        assert_eq!(endpoint, Some(EndpointSpecModeEnum::DNSRR));
        let task = service.task_template.expect("task");
        let restart = task.restart_policy.and_then(|r| r.condition);
        assert_eq!(restart, Some(TaskSpecRestartPolicyConditionEnum::NONE));
        let container = task.container_spec.expect("container");
        assert_eq!(container.image.as_deref(), Some("r/x@sha256:1"));
        assert_eq!(container.read_only, Some(true));
        assert_eq!(container.capability_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(container.command, None);
        assert_eq!(container.args, Some(vec!["serve".to_string()]));
        assert!(container.privileges.is_none());
        let mounts = container.mounts.expect("mounts");
        assert_eq!(mounts[0].typ, Some(MountType::TMPFS));
        assert_eq!(
            mounts[0].tmpfs_options.as_ref().and_then(|t| t.size_bytes),
            Some(16 << 20)
        );
        assert_eq!(mounts[1].typ, Some(MountType::VOLUME));
        let resources = task.resources.expect("resources");
        let limits = resources.limits.expect("limits");
        let reserved = resources.reservations.expect("reservations");
        assert_eq!(limits.memory_bytes, Some(64 << 20));
        assert_eq!(limits.pids, Some(64));
        assert_eq!(reserved.memory_bytes, limits.memory_bytes);
        assert_eq!(reserved.nano_cpus, Some(500_000_000));
        let networks = task.networks.expect("networks");
        assert_eq!(networks[0].target.as_deref(), Some("skiff-fn"));

        let newer = service_spec(&spec(), "r/x@sha256:1", true);
        let privileges = newer
            .task_template
            .and_then(|t| t.container_spec)
            .and_then(|c| c.privileges)
            .and_then(|p| p.no_new_privileges);
        assert_eq!(privileges, Some(true));
    }
}
