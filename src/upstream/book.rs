//! The broker book: what the proxy has learned of the cluster's own broker addresses.

use std::collections::HashMap;
use std::sync::RwLock;

use super::health::UpstreamHealth;

/// Node id → the broker's own address, learned from Metadata, FindCoordinator and
/// DescribeCluster responses; and which brokers are known not to answer.
#[derive(Debug, Default)]
pub struct BrokerBook {
    nodes: RwLock<HashMap<i32, (String, u16)>>,
    /// Kept here because, like the addresses, it outlives configuration generations.
    health: UpstreamHealth,
}

impl BrokerBook {
    /// Record a broker address; returns true when it is new or changed.
    pub fn learn(&self, node_id: i32, host: &str, port: i32) -> bool {
        let Ok(port) = u16::try_from(port) else {
            return false;
        };
        if node_id < 0 || host.is_empty() {
            return false;
        }
        let Ok(mut nodes) = self.nodes.write() else {
            return false;
        };
        match nodes.get(&node_id) {
            Some((h, p)) if h == host && *p == port => false,
            _ => {
                nodes.insert(node_id, (host.to_string(), port));
                true
            }
        }
    }

    /// Which listeners' brokers are known down.
    pub fn health(&self) -> &UpstreamHealth {
        &self.health
    }

    /// Every node id learned so far.
    pub fn node_ids(&self) -> Vec<i32> {
        self.nodes
            .read()
            .map(|nodes| nodes.keys().copied().collect())
            .unwrap_or_default()
    }

    pub fn lookup(&self, node_id: i32) -> Option<(String, u16)> {
        self.nodes.read().ok()?.get(&node_id).cloned()
    }
}
