//! `listener`: where clients connect: the bootstrap listener and one listener per broker.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::Issues;
use super::raw::{RawAdvertised, RawListener, RawProxyProtocol};
use super::sni::{self, SniConfig};
use super::upstream::split_host_port;

#[derive(Debug, Clone)]
pub struct ListenerConfig {
    pub bootstrap: SocketAddr,
    /// The host clients are told for every broker in port-per-broker mode (always set there);
    /// `None` only with `listener.sni`, which advertises the broker pattern instead.
    pub advertised_host: Option<String>,
    pub broker_bind: IpAddr,
    pub broker_ports: BrokerPorts,
    /// What clients are told when it differs from what is bound (`listener.advertised`).
    pub advertised: AdvertisedBrokers,
    /// PROXY protocol on the bootstrap and broker listeners; `None`: off.
    pub proxy_protocol: Option<ProxyProtocolConfig>,
    /// `listener.sni`: every broker on the bootstrap port, routed by server name; `None`:
    /// port-per-broker.
    pub sni: Option<SniConfig>,
}

impl ListenerConfig {
    /// The address clients are told for `node_id`. With `listener.sni`: the broker pattern's
    /// name on `sni.advertised_port`. Otherwise `advertised.nodes`, else `advertised_host`
    /// with the advertised port (`advertised.node_ports`, `advertised.first_port + N`), else the
    /// port the proxy binds for it. `None` when the node has no proxy port, bound or advertised.
    pub fn advertised_address(&self, node_id: i32) -> Option<(Cow<'_, str>, u16)> {
        if let Some(sni) = &self.sni {
            // Node ids are never negative (the pattern reads back only non-negative ones).
            return (node_id >= 0).then(|| {
                (
                    Cow::Owned(sni.broker_pattern.name_for(node_id)),
                    sni.advertised_port,
                )
            });
        }
        self.port_per_broker_address(node_id)
            .map(|(host, port)| (Cow::Borrowed(host), port))
    }

    fn port_per_broker_address(&self, node_id: i32) -> Option<(&str, u16)> {
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
        Some((self.advertised_host.as_deref()?, port))
    }
}

/// `listener.advertised`: the broker addresses clients are told, apart from the bound ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdvertisedBrokers {
    pub first_port: Option<u16>,
    pub node_ports: BTreeMap<i32, u16>,
    pub nodes: BTreeMap<i32, (String, u16)>,
}

/// `listener.proxy_protocol`, checked.
///
/// - A connection from a trusted source may carry a v1 or v2 header, whose source address
///   then is the client's; with `required`, a trusted connection without one is refused.
/// - A connection from any other source that starts with a PROXY signature is refused: only
///   a trusted load balancer may say who the client is.
/// - Any other connection without a header is a direct client, unless `allow_direct` is off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyProtocolConfig {
    pub trusted_sources: Vec<IpNet>,
    pub required: bool,
    pub allow_direct: bool,
}

impl ProxyProtocolConfig {
    /// Whether a connection from `addr` may carry a PROXY header. IPv4-mapped IPv6 addresses
    /// (a dual-stack `[::]` listener) count as the IPv4 address they carry.
    pub fn trusts(&self, addr: IpAddr) -> bool {
        let addr = addr.to_canonical();
        self.trusted_sources.iter().any(|net| net.contains(&addr))
    }
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
    let advertised_host = l.advertised_host.as_deref().map(str::trim);
    match advertised_host {
        // SNI mode advertises the broker pattern; port-per-broker mode needs the host.
        None if l.sni.is_none() => issues.error(
            "listener.advertised_host",
            "required in port-per-broker mode: the host name clients are told for every \
             broker (only listener.sni goes without it)",
        ),
        None => {}
        Some("") => issues.error("listener.advertised_host", "must not be empty"),
        Some(host) if host.contains(':') && host.parse::<IpAddr>().is_err() => issues.error(
            "listener.advertised_host",
            "a host name or IP address without a port",
        ),
        Some(_) => {}
    }
    let advertised_host = advertised_host.map(str::to_string);
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
    let sni = match (&l.sni, bootstrap) {
        (Some(raw), Some(bootstrap)) => {
            if advertised != AdvertisedBrokers::default() {
                issues.error(
                    "listener.advertised",
                    "not with listener.sni: every broker is advertised as \
                     listener.sni.broker_pattern on listener.sni.advertised_port",
                );
            }
            Some(sni::check(issues, raw, bootstrap.port())?)
        }
        _ => None,
    };
    let proxy_protocol = match &l.proxy_protocol {
        Some(raw) => Some(check_proxy_protocol(issues, raw)?),
        None => None,
    };
    Some(ListenerConfig {
        sni,
        proxy_protocol,
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

/// Check `listener.proxy_protocol`.
fn check_proxy_protocol(
    issues: &mut Issues,
    raw: &RawProxyProtocol,
) -> Option<ProxyProtocolConfig> {
    const FIELD: &str = "listener.proxy_protocol.trusted_sources";
    if raw.trusted_sources.is_empty() {
        issues.error(
            FIELD,
            "must name at least one CIDR range (e.g. 10.0.0.0/8) of the load balancers",
        );
        return None;
    }
    let mut trusted = Vec::with_capacity(raw.trusted_sources.len());
    let mut ok = true;
    for (i, text) in raw.trusted_sources.iter().enumerate() {
        match parse_cidr(text.trim()) {
            Ok(net) => trusted.push(net),
            Err(reason) => {
                issues.error(format!("{FIELD}[{i}]"), reason);
                ok = false;
            }
        }
    }
    ok.then_some(ProxyProtocolConfig {
        trusted_sources: trusted,
        required: raw.required,
        allow_direct: raw.allow_direct,
    })
}

/// `10.0.0.0/8`, `fd00::/8`, or one address (`/32`, `/128`). Host bits set after the prefix
/// (`10.1.2.3/8`) are refused: most likely a typo for a narrower range.
fn parse_cidr(text: &str) -> Result<IpNet, String> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(ip));
    }
    let net = text.parse::<IpNet>().map_err(|_| {
        format!("`{text}` is not a CIDR range or an IP address (e.g. 10.0.0.0/8, 192.0.2.7)")
    })?;
    if net.trunc() != net {
        return Err(format!(
            "`{text}` has bits set after the /{} prefix: write {} (or the single address)",
            net.prefix_len(),
            net.trunc()
        ));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(sources: &[&str]) -> RawProxyProtocol {
        RawProxyProtocol {
            trusted_sources: sources.iter().map(|s| s.to_string()).collect(),
            required: true,
            allow_direct: true,
        }
    }

    #[test]
    fn trusted_sources_are_ranges_or_addresses() {
        let mut issues = Issues::default();
        let config = check_proxy_protocol(&mut issues, &raw(&["10.0.0.0/8", "::1", "192.0.2.7"]));
        assert!(issues.errors.is_empty());
        let config = config.unwrap();
        assert!(config.trusts("10.200.0.1".parse().unwrap()));
        assert!(config.trusts("192.0.2.7".parse().unwrap()));
        assert!(!config.trusts("192.0.2.8".parse().unwrap()));
        assert!(config.trusts("::1".parse().unwrap()));
        // A dual-stack listener sees IPv4 peers as mapped IPv6 addresses.
        assert!(config.trusts("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!config.trusts("11.0.0.1".parse().unwrap()));
    }

    #[test]
    fn bad_ranges_name_their_entry_and_reason() {
        let mut issues = Issues::default();
        let config = check_proxy_protocol(
            &mut issues,
            &raw(&["10.0.0.0/8", "10.1.2.3/8", "lb.example", "10.0.0.0/33"]),
        );
        assert!(config.is_none());
        let got: Vec<(String, String)> = issues
            .errors
            .iter()
            .map(|i| (i.field.clone(), i.reason.clone()))
            .collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0].0, "listener.proxy_protocol.trusted_sources[1]");
        assert!(got[0].1.contains("write 10.0.0.0/8"), "{}", got[0].1);
        assert_eq!(got[1].0, "listener.proxy_protocol.trusted_sources[2]");
        assert!(got[1].1.contains("not a CIDR range"), "{}", got[1].1);
        assert_eq!(got[2].0, "listener.proxy_protocol.trusted_sources[3]");
    }

    #[test]
    fn an_empty_trust_list_is_refused() {
        let mut issues = Issues::default();
        assert!(check_proxy_protocol(&mut issues, &raw(&[])).is_none());
        assert_eq!(
            issues.errors[0].field,
            "listener.proxy_protocol.trusted_sources"
        );
    }
}
