//! `listener`: where clients connect: the bootstrap listener and one listener per broker.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use super::Issues;
use super::raw::{RawAdvertised, RawListener};
use super::upstream::split_host_port;

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub bootstrap: SocketAddr,
    pub advertised_host: String,
    pub broker_bind: IpAddr,
    pub broker_ports: BrokerPorts,
    /// What clients are told when it differs from what is bound (`listener.advertised`).
    pub advertised: AdvertisedBrokers,
}

impl ListenerConfig {
    /// The address clients are told for `node_id`: `advertised.nodes`, else `advertised_host`
    /// with the advertised port (`advertised.node_ports`, `advertised.first_port + N`), else the
    /// port the proxy binds for it. `None` when the node has no proxy port, bound or advertised.
    pub fn advertised_address(&self, node_id: i32) -> Option<(&str, u16)> {
        // A node the proxy does not serve is never advertised, whatever the table says.
        let bound = self.broker_ports.port_for(node_id)?;
        if let Some((host, port)) = self.advertised.nodes.get(&node_id) {
            return Some((host, *port));
        }
        let port = match (
            self.advertised.node_ports.get(&node_id),
            self.advertised.first_port,
        ) {
            (Some(port), _) => *port,
            (None, Some(first)) => u16::try_from(i64::from(first) + i64::from(node_id)).ok()?,
            (None, None) => bound,
        };
        Some((&self.advertised_host, port))
    }
}

/// `listener.advertised`: the broker addresses clients are told, apart from the bound ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdvertisedBrokers {
    pub first_port: Option<u16>,
    pub node_ports: BTreeMap<i32, u16>,
    pub nodes: BTreeMap<i32, (String, u16)>,
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
    let advertised = advertised(
        issues,
        l.advertised.as_ref().unwrap_or(&RawAdvertised::default()),
    );
    Some(ListenerConfig {
        bootstrap: bootstrap?,
        advertised_host,
        broker_bind: broker_bind?,
        broker_ports: BrokerPorts {
            first_port: ports.first_port,
            node_ports: ports.node_ports.clone(),
        },
        advertised,
    })
}

/// Check `listener.advertised`.
fn advertised(issues: &mut Issues, a: &RawAdvertised) -> AdvertisedBrokers {
    if a.first_port == Some(0) {
        issues.error("listener.advertised.first_port", "must be a port above 0");
    }
    for (node, port) in &a.node_ports {
        if *port == 0 {
            issues.error(
                format!("listener.advertised.node_ports.{node}"),
                "must be a port above 0",
            );
        }
    }
    let mut nodes = BTreeMap::new();
    for (node, address) in &a.nodes {
        match split_host_port(address) {
            Some((host, port)) if !host.contains(char::is_whitespace) => {
                nodes.insert(*node, (host, port));
            }
            _ => issues.error(
                format!("listener.advertised.nodes.{node}"),
                format!("`{address}` is not host:port (e.g. broker-{node}.kafka.example.com:9093)"),
            ),
        }
    }
    AdvertisedBrokers {
        first_port: a.first_port,
        node_ports: a.node_ports.clone(),
        nodes,
    }
}
