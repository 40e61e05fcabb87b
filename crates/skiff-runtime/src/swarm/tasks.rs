//! A service's tasks as skiff sees an instance: which task is current, whether it runs, its
//! address, whether it is over and with which exit code.
//!
//! The engine's task objects carry each task's addresses (`NetworksAttachments`), which
//! bollard's `Task` model leaves out (the API's own schema does not list them): the tasks
//! are read as JSON here, their documented part parsed into bollard's model and the
//! attachments read beside it.

use crate::endpoint::Endpoint;
use crate::EngineError;
use bollard::models::{Node, NodeSpecAvailabilityEnum, NodeState, Task, TaskState};
use std::net::IpAddr;
use std::time::Duration;

/// The exit code reported for an instance that ended without one (its node went down or
/// was drained, its task was removed): as for a process killed by SIGKILL.
pub const LOST_EXIT_CODE: i64 = 137;

/// A task, with its addresses.
#[derive(Debug, Clone)]
pub struct TaskView {
    /// The task as bollard models it.
    pub task: Task,
    /// Its addresses: (network id, network name, address).
    pub addresses: Vec<(String, String, IpAddr)>,
}

impl TaskView {
    /// Reads one task object of the engine's answer.
    pub fn from_json(value: serde_json::Value) -> Result<TaskView, EngineError> {
        let addresses = addresses(&value);
        let task = serde_json::from_value(value).map_err(|e| EngineError::Other {
            op: "list tasks",
            message: format!("a task the engine listed cannot be read: {e}"),
        })?;
        Ok(TaskView { task, addresses })
    }

    /// Its state now.
    pub fn state(&self) -> Option<TaskState> {
        self.task.status.as_ref().and_then(|s| s.state)
    }

    /// Its address on the network the service was attached to (the first of the task's
    /// spec), else on any network but the ingress.
    pub fn ip(&self) -> Option<IpAddr> {
        let wanted: Vec<&str> = self
            .task
            .spec
            .as_ref()
            .and_then(|s| s.networks.as_ref())
            .map(|networks| {
                networks
                    .iter()
                    .filter_map(|n| n.target.as_deref())
                    .collect()
            })
            .unwrap_or_default();
        self.addresses
            .iter()
            .find(|(id, name, _)| wanted.iter().any(|w| w == id || w == name))
            .or_else(|| self.addresses.iter().find(|(_, name, _)| name != "ingress"))
            .map(|(_, _, ip)| *ip)
    }

    /// The exit code of its container, once it has one.
    pub fn exit_code(&self) -> Option<i64> {
        self.task
            .status
            .as_ref()
            .and_then(|s| s.container_status.as_ref())
            .and_then(|c| c.exit_code)
    }

    /// Whether the engine says the kernel's out-of-memory killer ended it.
    pub fn oom_killed(&self) -> bool {
        self.task
            .status
            .as_ref()
            .and_then(|s| s.err.as_deref())
            .is_some_and(|err| {
                let err = err.to_ascii_lowercase();
                err.contains("oom") || err.contains("out of memory")
            })
    }

    /// The node it was given to, once it has one.
    pub fn node(&self) -> Option<&str> {
        self.task.node_id.as_deref().filter(|n| !n.is_empty())
    }

    /// What the engine says of it, for error messages.
    pub fn describe(&self) -> String {
        let status = self.task.status.as_ref();
        let state = status
            .and_then(|s| s.state)
            .map_or_else(|| "unknown".to_string(), |s| s.to_string());
        let message = status.and_then(|s| s.message.as_deref()).unwrap_or("");
        let err = status.and_then(|s| s.err.as_deref()).unwrap_or("");
        format!("task state {state}: {message} {err}")
            .trim()
            .to_string()
    }
}

/// The addresses of a task object's `NetworksAttachments`, the `/prefix` stripped.
fn addresses(task: &serde_json::Value) -> Vec<(String, String, IpAddr)> {
    let Some(attachments) = task.get("NetworksAttachments").and_then(|a| a.as_array()) else {
        return Vec::new();
    };
    attachments
        .iter()
        .flat_map(|attachment| {
            let network = attachment.get("Network");
            let id = network
                .and_then(|n| n.get("ID"))
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            let name = network
                .and_then(|n| n.get("Spec"))
                .and_then(|s| s.get("Name"))
                .and_then(|v| v.as_str())
                .unwrap_or("")
                .to_string();
            attachment
                .get("Addresses")
                .and_then(|a| a.as_array())
                .into_iter()
                .flatten()
                .filter_map(|a| a.as_str())
                .filter_map(|a| a.split('/').next()?.parse().ok())
                .map(move |ip| (id.clone(), name.clone(), ip))
        })
        .collect()
}

/// The task that is the instance now: the newest by creation, then by version.
pub fn current(tasks: &[TaskView]) -> Option<&TaskView> {
    tasks.iter().max_by_key(|t| {
        (
            t.task.created_at.as_ref().map(|c| time_key(&c.to_string())),
            t.task.version.as_ref().and_then(|v| v.index),
        )
    })
}

/// A timestamp as the engine writes it (`2026-01-01T00:00:05.12Z`, the fraction's trailing
/// zeros left out) in a form that sorts in time order: the fraction padded to nanoseconds.
fn time_key(timestamp: &str) -> (String, String) {
    match timestamp.split_once('.') {
        Some((seconds, rest)) => {
            let fraction: String = rest.chars().take_while(char::is_ascii_digit).collect();
            (seconds.to_string(), format!("{fraction:0<9}"))
        }
        None => (
            timestamp
                .trim_end_matches(|c: char| !c.is_ascii_digit())
                .to_string(),
            "0".repeat(9),
        ),
    }
}

/// Whether a task in `state` is over for good.
pub fn terminal(state: TaskState) -> bool {
    matches!(
        state,
        TaskState::COMPLETE
            | TaskState::FAILED
            | TaskState::SHUTDOWN
            | TaskState::REJECTED
            | TaskState::ORPHANED
            | TaskState::REMOVE
    )
}

/// Whether the instances on `node` are lost: it is down, or drained (Swarm shuts its tasks
/// down and, with restart condition `none`, starts no other).
pub fn node_lost(node: &Node) -> bool {
    let down = node.status.as_ref().and_then(|s| s.state) == Some(NodeState::DOWN);
    let drained =
        node.spec.as_ref().and_then(|s| s.availability) == Some(NodeSpecAvailabilityEnum::DRAIN);
    down || drained
}

/// Reads tasks as JSON from the engine (see the module's documentation).
#[derive(Debug, Clone)]
pub struct TaskReader {
    client: reqwest::Client,
    base: String,
    timeout: Duration,
}

impl TaskReader {
    /// A reader of the engine at `endpoint`.
    pub fn new(endpoint: &Endpoint, timeout: Duration) -> Result<TaskReader, EngineError> {
        let invalid = |message: String| EngineError::Other {
            op: "connect",
            message,
        };
        // reqwest looks for the process's rustls provider; make sure there is one.
        if tokio_rustls::rustls::crypto::CryptoProvider::get_default().is_none() {
            let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        }
        let builder = reqwest::Client::builder().timeout(timeout);
        let (builder, base) = match endpoint {
            Endpoint::Unix(path) => (
                builder.unix_socket(path.as_path()),
                "http://docker".to_string(),
            ),
            Endpoint::Tcp { address } => (builder, format!("http://{address}")),
            Endpoint::Tls { address, cert_dir } => {
                let read = |file: &str| {
                    let path = cert_dir.join(file);
                    std::fs::read(&path).map_err(|e| {
                        EngineError::from(crate::endpoint::EndpointError::Certificate {
                            path,
                            message: e.to_string(),
                        })
                    })
                };
                let ca = reqwest::Certificate::from_pem(&read("ca.pem")?)
                    .map_err(|e| invalid(format!("ca.pem: {e}")))?;
                let mut pem = read("cert.pem")?;
                pem.push(b'\n');
                pem.extend(read("key.pem")?);
                let identity = reqwest::Identity::from_pem(&pem)
                    .map_err(|e| invalid(format!("cert.pem and key.pem: {e}")))?;
                (
                    builder.tls_certs_only([ca]).identity(identity),
                    format!("https://{address}"),
                )
            }
        };
        let client = builder
            .build()
            .map_err(|e| invalid(format!("an HTTP client for the tasks: {e}")))?;
        Ok(TaskReader {
            client,
            base,
            timeout,
        })
    }

    /// The tasks of `service` (id or name), through API `version` (`1.41`).
    pub async fn tasks(&self, version: &str, service: &str) -> Result<Vec<TaskView>, EngineError> {
        let filters = serde_json::json!({ "service": [service] }).to_string();
        let url = reqwest::Url::parse_with_params(
            &format!("{}/v{version}/tasks", self.base),
            &[("filters", filters)],
        )
        .map_err(|e| EngineError::Other {
            op: "list tasks",
            message: format!("no URL for the tasks: {e}"),
        })?;
        let answer = self.client.get(url).send().await.map_err(|e| {
            if e.is_timeout() {
                EngineError::TimedOut {
                    op: "list tasks",
                    after: self.timeout,
                }
            } else {
                EngineError::Unavailable {
                    op: "list tasks",
                    message: e.to_string(),
                }
            }
        })?;
        let status = answer.status();
        let body = answer.bytes().await.map_err(|e| EngineError::Unavailable {
            op: "list tasks",
            message: e.to_string(),
        })?;
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("message")?.as_str().map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            return Err(EngineError::Api {
                op: "list tasks",
                status: status.as_u16(),
                message,
            });
        }
        let tasks: Vec<serde_json::Value> =
            serde_json::from_slice(&body).map_err(|e| EngineError::Other {
                op: "list tasks",
                message: format!("the engine's answer is not a list of tasks: {e}"),
            })?;
        tasks.into_iter().map(TaskView::from_json).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::NodeStatus;

    fn task(id: &str, created: &str, state: &str, extra: serde_json::Value) -> TaskView {
        let mut value = serde_json::json!({
            "ID": id,
            "CreatedAt": created,
            "Version": {"Index": 10},
            "NodeID": "node-1",
            "Spec": {"Networks": [{"Target": "net-fn"}]},
            "Status": {"State": state},
            "NetworksAttachments": [
                {"Network": {"ID": "net-ingress", "Spec": {"Name": "ingress"}},
                 "Addresses": ["10.0.0.5/24"]},
                {"Network": {"ID": "net-fn", "Spec": {"Name": "skiff-fn"}},
                 "Addresses": ["10.232.0.7/24"]}
            ]
        });
        if let (Some(v), Some(extra)) = (value.as_object_mut(), extra.as_object()) {
            for (k, e) in extra {
                v.insert(k.clone(), e.clone());
            }
        }
        TaskView::from_json(value).expect("a task")
    }

    #[test]
    fn the_current_task_is_the_newest_and_its_ip_is_on_the_services_network() {
        let tasks = vec![
            task(
                "old",
                "2026-01-01T00:00:00Z",
                "failed",
                serde_json::json!({}),
            ),
            task(
                "new",
                "2026-01-01T00:00:05.1Z",
                "running",
                serde_json::json!({}),
            ),
            task(
                "mid",
                "2026-01-01T00:00:05.09Z",
                "failed",
                serde_json::json!({}),
            ),
        ];
        let now = current(&tasks).expect("a task");
        assert_eq!(now.task.id.as_deref(), Some("new"));
        assert_eq!(now.state(), Some(TaskState::RUNNING));
        assert_eq!(now.ip(), "10.232.0.7".parse().ok());
        assert_eq!(now.node(), Some("node-1"));
        assert!(current(&[]).is_none());
    }

    #[test]
    fn exit_codes_and_oom_come_from_the_task_status() {
        let failed = task(
            "t",
            "2026-01-01T00:00:00Z",
            "failed",
            serde_json::json!({"Status": {"State": "failed",
                "Err": "task: non-zero exit (137): OOMKilled",
                "ContainerStatus": {"ExitCode": 137}}}),
        );
        assert_eq!(failed.exit_code(), Some(137));
        assert!(failed.oom_killed());
        assert!(terminal(TaskState::FAILED));
        assert!(terminal(TaskState::COMPLETE));
        assert!(!terminal(TaskState::RUNNING));
        assert!(!terminal(TaskState::PENDING));
        let done = task(
            "t",
            "2026-01-01T00:00:00Z",
            "complete",
            serde_json::json!({"Status": {"State": "complete",
                "ContainerStatus": {"ExitCode": 0}}}),
        );
        assert_eq!(done.exit_code(), Some(0));
        assert!(!done.oom_killed());
    }

    #[test]
    fn a_down_or_drained_node_loses_its_instances() {
        let node = |state, availability| Node {
            status: Some(NodeStatus {
                state: Some(state),
                ..Default::default()
            }),
            spec: Some(bollard::models::NodeSpec {
                availability: Some(availability),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(!node_lost(&node(
            NodeState::READY,
            NodeSpecAvailabilityEnum::ACTIVE
        )));
        assert!(node_lost(&node(
            NodeState::READY,
            NodeSpecAvailabilityEnum::DRAIN
        )));
        assert!(node_lost(&node(
            NodeState::DOWN,
            NodeSpecAvailabilityEnum::ACTIVE
        )));
    }
}
