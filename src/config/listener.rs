//! `listener`: where clients connect: the bootstrap listener and one listener per broker.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use super::Issues;
use super::raw::RawListener;

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub bootstrap: SocketAddr,
    pub advertised_host: String,
    pub broker_bind: IpAddr,
    pub broker_ports: BrokerPorts,
}

/// Port-per-broker mapping: how a node id becomes the proxy port clients dial.
#[derive(Debug, Clone)]
pub struct BrokerPorts {
    pub first_port: u16,
    pub node_ports: BTreeMap<i32, u16>,
}

impl BrokerPorts {
    /// The proxy port for `node_id`, or `None` when it would fall outside the port range.
    pub fn port_for(&self, node_id: i32) -> Option<u16> {
        if let Some(port) = self.node_ports.get(&node_id) {
            return Some(*port);
        }
        if node_id < 0 {
            return None;
        }
        u16::try_from(i64::from(self.first_port) + i64::from(node_id)).ok()
    }
}

/// Check `listener`.
pub(super) fn check(issues: &mut Issues, l: &RawListener) -> Option<ListenerConfig> {
    let bootstrap = match l.bootstrap.parse::<SocketAddr>() {
        Ok(addr) => Some(addr),
        Err(_) => {
            issues.error(
                "listener.bootstrap",
                format!(
                    "`{}` is not an IP:port address (e.g. 0.0.0.0:9092)",
                    l.bootstrap
                ),
            );
            None
        }
    };
    let advertised_host = l.advertised_host.trim().to_string();
    if advertised_host.is_empty() {
        issues.error("listener.advertised_host", "must not be empty");
    } else if advertised_host.contains(':') && advertised_host.parse::<IpAddr>().is_err() {
        issues.error(
            "listener.advertised_host",
            "a host name or IP address without a port",
        );
    }
    let broker_bind = match &l.broker_bind_address {
        Some(text) => match text.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                issues.error(
                    "listener.broker_bind_address",
                    format!("`{text}` is not an IP address"),
                );
                None
            }
        },
        None => bootstrap.map(|a| a.ip()),
    };
    let ports = &l.broker_ports;
    if ports.first_port == 0 {
        issues.error("listener.broker_ports.first_port", "must be a port above 0");
    }
    let mut seen = HashSet::new();
    for (node, port) in &ports.node_ports {
        let field = format!("listener.broker_ports.node_ports.{node}");
        if *port == 0 {
            issues.error(&field, "must be a port above 0");
        }
        if !seen.insert(*port) {
            issues.error(&field, format!("port {port} is assigned to two node ids"));
        }
        if bootstrap.is_some_and(|b| b.port() == *port) {
            issues.error(&field, format!("port {port} is the bootstrap port"));
        }
    }
    Some(ListenerConfig {
        bootstrap: bootstrap?,
        advertised_host,
        broker_bind: broker_bind?,
        broker_ports: BrokerPorts {
            first_port: ports.first_port,
            node_ports: ports.node_ports.clone(),
        },
    })
}
