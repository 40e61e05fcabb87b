//! The functions' network on a swarm: an attachable overlay, and this process's own address
//! on it when skiff runs as a task on it (as in a stack).

use super::SwarmEngine;
use crate::docker::classify;
use crate::error::Op;
use crate::{EngineError, NetworkInfo};
use bollard::errors::Error as BollardError;
use bollard::models::NetworkCreateRequest;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

impl SwarmEngine {
    /// The id of the overlay network `name`, created (attachable, swarm-scoped, with
    /// `labels`) unless it exists.
    pub(super) async fn ensure_overlay(
        &self,
        name: &str,
        labels: &HashMap<String, String>,
    ) -> Result<String, EngineError> {
        self.manager
            .bounded("ensure network", Duration::ZERO, async {
                if let Some(id) = self.overlay_named(name).await? {
                    return Ok(id);
                }
                let request = NetworkCreateRequest {
                    name: name.to_string(),
                    driver: Some("overlay".to_string()),
                    scope: Some("swarm".to_string()),
                    // skiff itself, when it runs as a container or a task, joins it.
                    attachable: Some(true),
                    labels: Some(labels.clone()),
                    ..Default::default()
                };
                match self.manager.docker.create_network(request).await {
                    Ok(_) => {}
                    Err(BollardError::DockerResponseServerError {
                        status_code: 409, ..
                    }) => {}
                    Err(other) => return Err(classify(Op("create network"), other)),
                }
                self.overlay_named(name)
                    .await?
                    .ok_or_else(|| EngineError::Other {
                        op: "create network",
                        message: format!("network `{name}` was created but cannot be found"),
                    })
            })
            .await
    }

    /// The id of the swarm-scoped network named exactly `name` (the lowest, should there be
    /// several).
    async fn overlay_named(&self, name: &str) -> Result<Option<String>, EngineError> {
        let mut ids: Vec<String> = self
            .manager
            .networks_named(name)
            .await?
            .into_iter()
            .filter(|n| n.scope.as_deref() == Some("swarm"))
            .filter_map(|n| n.id)
            .collect();
        ids.sort();
        Ok(ids.into_iter().next())
    }
}

/// A network as the functions see it: on an overlay, containers reach each other (it has no
/// switch for that), and the gateway is this process's own address on the network, when it
/// is attached to it (the overlay's IPAM gateway is no host's address).
pub(super) fn as_seen_here(mut info: NetworkInfo) -> NetworkInfo {
    let local = if_addrs::get_if_addrs()
        .map(|interfaces| interfaces.into_iter().map(|i| i.ip()).collect::<Vec<_>>())
        .unwrap_or_else(|err| {
            tracing::debug!(%err, "the local interfaces cannot be listed");
            Vec::new()
        });
    info.gateway = address_in(&local, &info.subnets);
    info.containers_connect = true;
    info
}

/// The first of `addresses` inside one of `subnets`.
fn address_in(addresses: &[IpAddr], subnets: &[ipnet::IpNet]) -> Option<IpAddr> {
    addresses
        .iter()
        .find(|ip| subnets.iter().any(|net| net.contains(*ip)))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_is_a_local_address_inside_the_network() {
        let subnets: Vec<ipnet::IpNet> = vec!["10.232.0.0/24".parse().expect("subnet")];
        let local: Vec<IpAddr> = ["127.0.0.1", "10.231.0.1", "10.232.0.9"]
            .iter()
            .map(|a| a.parse().expect("address"))
            .collect();
        assert_eq!(address_in(&local, &subnets), "10.232.0.9".parse().ok());
        assert_eq!(address_in(&local[..2], &subnets), None);
    }
}
