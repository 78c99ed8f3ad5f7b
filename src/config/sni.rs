//! `listener.sni`: every broker behind one port, told apart by the TLS server name.
//!
//! Clients bootstrap on `bootstrap` and are told `broker_pattern` (with the node id in place
//! of `{id}`) on `advertised_port` for every broker; the proxy reads the server name of each
//! ClientHello and routes by it ([`SniConfig::route`]).

use rustls_pki_types::ServerName;

use super::Issues;
use super::raw::RawSni;

/// What stands for the node id in `broker_pattern`.
pub const NODE_ID_PLACEHOLDER: &str = "{id}";

/// `listener.sni`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniConfig {
    /// The bootstrap server name, lower case.
    pub bootstrap: String,
    pub broker_pattern: BrokerNamePattern,
    /// The port every broker name is advertised with: the bootstrap port, or a load
    /// balancer's.
    pub advertised_port: u16,
}

/// Where a ClientHello's server name leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SniRoute {
    /// The bootstrap name, or no server name at all (a client that sends none cannot be
    /// asking for a particular broker; the bootstrap servers answer anything).
    Bootstrap,
    /// A broker name: the node id it carries.
    Broker(i32),
    /// Neither: refused with `unrecognized_name`, never guessed.
    Unrecognized,
}

impl SniConfig {
    /// Route a ClientHello by its server name (`None`: the client sent none). Host names
    /// compare without regard to case (RFC 4343).
    pub fn route(&self, server_name: Option<&str>) -> SniRoute {
        let Some(name) = server_name else {
            return SniRoute::Bootstrap;
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        if name.eq_ignore_ascii_case(&self.bootstrap) {
            return SniRoute::Bootstrap;
        }
        match self.broker_pattern.node_id(name) {
            Some(id) => SniRoute::Broker(id),
            None => SniRoute::Unrecognized,
        }
    }
}

/// `broker-{id}.kafka.example.com`: a host name with `{id}` once, split around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerNamePattern {
    /// Lower case, like `suffix`.
    prefix: String,
    suffix: String,
}

impl BrokerNamePattern {
    /// Parse a pattern: `{id}` exactly once, and a valid DNS host name around it (checked with
    /// a node id in place).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parts = text.split(NODE_ID_PLACEHOLDER);
        let (Some(prefix), Some(suffix), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!(
                "`{text}` must hold `{NODE_ID_PLACEHOLDER}` exactly once (e.g. broker-{{id}}.kafka.example.com)"
            ));
        };
        let pattern = Self {
            prefix: prefix.to_ascii_lowercase(),
            suffix: suffix.to_ascii_lowercase(),
        };
        // The widest id checks the label length too.
        for id in [0, i32::MAX] {
            let name = pattern.name_for(id);
            check_host_name(&name).map_err(|reason| {
                format!("`{text}` does not make a host name (`{name}`: {reason})")
            })?;
        }
        Ok(pattern)
    }

    /// The host name of node `node_id`.
    pub fn name_for(&self, node_id: i32) -> String {
        format!("{}{node_id}{}", self.prefix, self.suffix)
    }

    /// The node id `name` carries, if it is this pattern with a node id in place: decimal
    /// digits as the proxy writes them (no sign, no leading zero), within `0..=i32::MAX`.
    pub fn node_id(&self, name: &str) -> Option<i32> {
        let prefix = name.get(..self.prefix.len())?;
        let rest = name.get(self.prefix.len()..)?;
        let split = rest.len().checked_sub(self.suffix.len())?;
        let (digits, suffix) = (rest.get(..split)?, rest.get(split..)?);
        if !prefix.eq_ignore_ascii_case(&self.prefix) || !suffix.eq_ignore_ascii_case(&self.suffix)
        {
            return None;
        }
        if digits.is_empty()
            || !digits.bytes().all(|b| b.is_ascii_digit())
            || (digits.len() > 1 && digits.starts_with('0'))
        {
            return None;
        }
        digits.parse::<i32>().ok()
    }
}

impl std::fmt::Display for BrokerNamePattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{NODE_ID_PLACEHOLDER}{}", self.prefix, self.suffix)
    }
}

/// A DNS host name a client can put in its server name: not an IP address, no wildcard.
fn check_host_name(name: &str) -> Result<(), String> {
    if name.contains('*') {
        return Err("a wildcard is not a host name".into());
    }
    match ServerName::try_from(name) {
        Ok(ServerName::DnsName(_)) if !name.ends_with('.') => Ok(()),
        Ok(ServerName::IpAddress(_)) => Err("an IP address carries no server name".into()),
        _ => Err("not a valid DNS host name".into()),
    }
}

/// Check `listener.sni`; `bootstrap_port` is the bound bootstrap port (the default
/// `advertised_port`).
pub(super) fn check(issues: &mut Issues, raw: &RawSni, bootstrap_port: u16) -> Option<SniConfig> {
    let bootstrap = raw.bootstrap.trim().to_ascii_lowercase();
    let mut ok = true;
    if let Err(reason) = check_host_name(&bootstrap) {
        issues.error(
            "listener.sni.bootstrap",
            format!("`{}`: {reason}", raw.bootstrap),
        );
        ok = false;
    }
    let pattern = match BrokerNamePattern::parse(raw.broker_pattern.trim()) {
        Ok(p) => Some(p),
        Err(reason) => {
            issues.error("listener.sni.broker_pattern", reason);
            None
        }
    };
    if let Some(pattern) = &pattern
        && let Some(id) = pattern.node_id(&bootstrap)
    {
        issues.error(
            "listener.sni.bootstrap",
            format!("`{bootstrap}` is also the name of node {id} by listener.sni.broker_pattern"),
        );
        ok = false;
    }
    if raw.advertised_port == Some(0) {
        issues.error("listener.sni.advertised_port", "must be a port above 0");
        ok = false;
    }
    let advertised_port = raw.advertised_port.unwrap_or(bootstrap_port);
    match (ok, pattern) {
        (true, Some(broker_pattern)) => Some(SniConfig {
            bootstrap,
            broker_pattern,
            advertised_port,
        }),
        _ => None,
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;

    fn sni() -> SniConfig {
        SniConfig {
            bootstrap: "bootstrap.kafka.test".into(),
            broker_pattern: BrokerNamePattern::parse("broker-{id}.kafka.test").unwrap(),
            advertised_port: 9092,
        }
    }

    #[test]
    fn names_route_to_bootstrap_a_broker_or_nowhere() {
        let sni = sni();
        assert_eq!(sni.route(Some("bootstrap.kafka.test")), SniRoute::Bootstrap);
        assert_eq!(
            sni.route(Some("Bootstrap.KAFKA.test.")),
            SniRoute::Bootstrap
        );
        assert_eq!(sni.route(None), SniRoute::Bootstrap);
        assert_eq!(sni.route(Some("broker-0.kafka.test")), SniRoute::Broker(0));
        assert_eq!(
            sni.route(Some("BROKER-12.kafka.test")),
            SniRoute::Broker(12)
        );
        assert_eq!(
            sni.route(Some("broker-2147483647.kafka.test")),
            SniRoute::Broker(i32::MAX)
        );
        for name in [
            "broker-.kafka.test",
            "broker-01.kafka.test",
            "broker--1.kafka.test",
            "broker-+1.kafka.test",
            "broker-2147483648.kafka.test",
            "broker-1x.kafka.test",
            "broker-1.kafka.test.evil",
            "xbroker-1.kafka.test",
            "broker-1.other.test",
            "kafka.test",
            "",
        ] {
            assert_eq!(sni.route(Some(name)), SniRoute::Unrecognized, "{name}");
        }
    }

    #[test]
    fn patterns_make_names_and_read_them_back() {
        let p = BrokerNamePattern::parse("Broker-{id}.Kafka.Test").unwrap();
        assert_eq!(p.name_for(7), "broker-7.kafka.test");
        assert_eq!(p.node_id(&p.name_for(7)), Some(7));
        assert_eq!(p.to_string(), "broker-{id}.kafka.test");
        // The id may sit anywhere in a label, or be a label of its own.
        let p = BrokerNamePattern::parse("{id}.brokers.example").unwrap();
        assert_eq!(p.node_id("3.brokers.example"), Some(3));
        let p = BrokerNamePattern::parse("kafka.b{id}.example").unwrap();
        assert_eq!(p.node_id("kafka.b3.example"), Some(3));
    }

    #[test]
    fn bad_patterns_say_why() {
        for (text, why) in [
            ("broker.kafka.test", "exactly once"),
            ("broker-{id}-{id}.kafka.test", "exactly once"),
            ("broker_{id}.kafka test", "not a valid DNS host name"),
            ("*.{id}.kafka.test", "wildcard"),
            ("{id}", "not a valid DNS host name"),
            ("broker-{id}.kafka.test.", "not a valid DNS host name"),
            (
                "a-very-long-label-that-is-almost-sixty-three-bytes-long-{id}.test",
                "not a valid DNS host name",
            ),
        ] {
            let e = BrokerNamePattern::parse(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn the_section_is_checked_field_by_field() {
        let raw = |bootstrap: &str, pattern: &str, port| RawSni {
            bootstrap: bootstrap.into(),
            broker_pattern: pattern.into(),
            advertised_port: port,
        };
        let mut issues = Issues::default();
        let ok = check(
            &mut issues,
            &raw("Bootstrap.kafka.test", "broker-{id}.kafka.test", None),
            9092,
        )
        .unwrap();
        assert!(issues.errors.is_empty());
        assert_eq!(ok.bootstrap, "bootstrap.kafka.test");
        assert_eq!(ok.advertised_port, 9092);

        let mut issues = Issues::default();
        assert!(
            check(
                &mut issues,
                &raw("broker-1.kafka.test", "broker-{id}.kafka.test", Some(0)),
                9092
            )
            .is_none()
        );
        let fields: Vec<&str> = issues.errors.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(
            fields,
            ["listener.sni.bootstrap", "listener.sni.advertised_port"]
        );
        assert!(
            issues.errors[0].reason.contains("node 1"),
            "{}",
            issues.errors[0].reason
        );

        let mut issues = Issues::default();
        assert!(
            check(
                &mut issues,
                &raw("10.0.0.1", "broker.kafka.test", Some(443)),
                9092
            )
            .is_none()
        );
        let fields: Vec<&str> = issues.errors.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(
            fields,
            ["listener.sni.bootstrap", "listener.sni.broker_pattern"]
        );
    }
}
