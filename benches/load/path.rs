//! The five paths (proxy, proxy-acl, proxy-sni, haproxy, direct): starting one with its broker, and
//! preparing it — versions negotiated, the topic created, its partition leaders learned.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{ApiKey, CreateTopicsRequest, CreateTopicsResponse};

use crate::broker::{Broker, BrokerKind};
use crate::client::{ClientTls, KafkaConn, Versions, negotiate, topic_name};
use crate::measure::CpuSnapshot;
use crate::process::{Binaries, Proc, cpu_ticks};
use crate::{haproxy, proxy};

/// The API versions this client speaks at most (Produce: v9, the last before KIP-951's
/// `node_endpoints`, like the brief asks; Metadata v12 is what current Java clients send).
const MAX_PRODUCE_VERSION: i16 = 9;
const MAX_METADATA_VERSION: i16 = 12;
const MAX_CREATE_TOPICS_VERSION: i16 = 7;
const TOPIC_ALREADY_EXISTS: i16 = 36;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Proxy,
    /// The proxy with proxy ACLs enforced.
    ProxyAcl,
    /// The proxy with SNI routing: every broker on one port, chosen by the TLS server name.
    ProxySni,
    Haproxy,
    Direct,
}

/// The domain of the `proxy-sni` path's names (`bootstrap.kafka.test`, `broker-<id>.kafka.test`),
/// covered by the wildcard in the benchmark PKI's server certificate. Never resolved: the
/// client connects to 127.0.0.1 and sets the name as the TLS server name.
pub const SNI_DOMAIN: &str = "kafka.test";

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Proxy => "proxy",
            Kind::ProxyAcl => "proxy-acl",
            Kind::ProxySni => "proxy-sni",
            Kind::Haproxy => "haproxy",
            Kind::Direct => "direct",
        }
    }
}

/// What workers need to reach a path (cheap to share).
pub struct Endpoint {
    pub kind: Kind,
    pub bootstrap: SocketAddr,
    pub tls: Option<ClientTls>,
    pub versions: Versions,
    /// The topic produced to.
    pub topic: String,
    /// Partition index → its leader, as advertised (and resolved to loopback).
    pub leaders: Vec<Leader>,
}

/// Where a partition's leader is reached, and the TLS client (with the server name) to use.
pub struct Leader {
    pub addr: SocketAddr,
    pub tls: Option<ClientTls>,
}

/// A running path: its processes and how to reach it.
pub struct Route {
    pub endpoint: Arc<Endpoint>,
    /// The TLS terminator (proxy or haproxy), when there is one. Declared before the broker:
    /// stopped first.
    pub terminator: Option<Proc>,
    pub broker: Broker,
    pub partitions: usize,
    pub tls_params: String,
}

impl Route {
    /// Bring the broker back to the state every produce measurement starts from — an empty
    /// topic with one partition per connection — and learn its leaders through the path again.
    /// tansu is replaced by a fresh one (empty memory storage) on the same port, which also keeps
    /// its memory bounded (tansu keeps every record in memory, and slows down as it grows);
    /// Kafka keeps running: the previous topic is deleted and a new one created.
    pub async fn fresh_state(&mut self) -> Result<()> {
        let ep = self.endpoint.clone();
        let topic = self.broker.reset(&ep.topic).await?;
        let (endpoint, _) = prepare(
            ep.kind,
            ep.bootstrap,
            ep.tls.clone(),
            self.partitions,
            topic,
        )
        .await
        .with_context(|| format!("preparing the {} path again", ep.kind.name()))?;
        self.broker
            .wait_writable(&endpoint.topic, self.partitions)
            .await?;
        self.endpoint = Arc::new(endpoint);
        Ok(())
    }

    pub fn check_alive(&mut self) -> Result<()> {
        self.broker.check_alive()?;
        if let Some(t) = &mut self.terminator {
            t.check_alive()?;
        }
        Ok(())
    }

    pub fn cpu(&self) -> CpuSnapshot {
        CpuSnapshot {
            terminator: self.terminator.as_ref().and_then(|t| cpu_ticks(t.pid())),
            broker: cpu_ticks(self.broker.pid()),
            client: cpu_ticks(std::process::id()),
            at: Instant::now(),
        }
    }
}

/// Resolve an advertised `host:port` to a loopback address (all traffic stays on 127.0.0.1).
pub async fn resolve_loopback(host: &str, port: i32) -> Result<SocketAddr> {
    let port = u16::try_from(port)?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4() && a.ip().is_loopback())
        .copied()
        .ok_or_else(|| anyhow!("{host}:{port} resolves to {addrs:?}, not to 127.0.0.1"))
}

/// Negotiate versions, create the topic, learn its partition leaders.
pub async fn prepare(
    kind: Kind,
    bootstrap: SocketAddr,
    tls: Option<ClientTls>,
    partitions: usize,
    topic: String,
) -> Result<(Endpoint, String)> {
    let mut conn = KafkaConn::connect(bootstrap, tls.as_ref()).await?;
    let tls_params = conn
        .tls_params
        .clone()
        .unwrap_or_else(|| "plaintext".into());
    let api = conn.api_versions().await?;
    let versions = Versions {
        metadata: negotiate(&api, ApiKey::Metadata, MAX_METADATA_VERSION)?,
        produce: negotiate(&api, ApiKey::Produce, MAX_PRODUCE_VERSION)?,
        create_topics: negotiate(&api, ApiKey::CreateTopics, MAX_CREATE_TOPICS_VERSION)?,
    };
    let request = CreateTopicsRequest::default()
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(&topic))
                .with_num_partitions(i32::try_from(partitions)?)
                .with_replication_factor(1),
        ])
        .with_timeout_ms(10_000);
    let created: CreateTopicsResponse = conn
        .call(ApiKey::CreateTopics, versions.create_topics, &request)
        .await?;
    for t in &created.topics {
        ensure!(
            t.error_code == 0 || t.error_code == TOPIC_ALREADY_EXISTS,
            "CreateTopics {}: error {} {:?}",
            t.name.0.as_str(),
            t.error_code,
            t.error_message
        );
    }
    // Bounded wait for every partition to have a leader.
    let mut leaders = Vec::new();
    for attempt in 0.. {
        let md = conn.metadata(versions.metadata, Some(&topic)).await?;
        let brokers: HashMap<i32, (String, i32)> = md
            .brokers
            .iter()
            .map(|b| (b.node_id.0, (b.host.as_str().to_string(), b.port)))
            .collect();
        let listed = md
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() == topic));
        let mut found = Vec::new();
        if let Some(listed) = listed.filter(|t| t.error_code == 0) {
            let mut parts: Vec<_> = listed.partitions.iter().collect();
            parts.sort_by_key(|p| p.partition_index);
            for p in parts {
                if let Some((host, port)) = brokers.get(&p.leader_id.0) {
                    found.push(match (kind, &tls) {
                        // The name the proxy advertised is the server name; the address is
                        // the proxy's one port on loopback (no DNS for the names).
                        (Kind::ProxySni, Some(t)) => Leader {
                            addr: SocketAddr::from(([127, 0, 0, 1], u16::try_from(*port)?)),
                            tls: Some(t.named(host)?),
                        },
                        _ => Leader {
                            addr: resolve_loopback(host, *port).await?,
                            tls: tls.clone(),
                        },
                    });
                }
            }
        }
        if found.len() == partitions {
            leaders = found;
            break;
        }
        ensure!(
            attempt < 100,
            "{}: topic {topic} has no leader for every partition after 10 s: {md:?}",
            kind.name()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    conn.close().await;
    Ok((
        Endpoint {
            kind,
            bootstrap,
            tls,
            versions,
            topic,
            leaders,
        },
        tls_params,
    ))
}

pub struct Setup<'a> {
    pub bins: &'a Binaries,
    pub broker: BrokerKind,
    pub dir: &'a Path,
    pub pki: &'a Path,
    pub tls: &'a ClientTls,
    pub partitions: usize,
}

/// One more terminator of the path's kind in front of its broker (the idle figure's
/// `--idle-processes`): the `n`th, counting the path's own as the first. `None` for a path
/// without a terminator.
pub async fn start_another_terminator(
    route: &Route,
    s: &Setup<'_>,
    n: usize,
) -> Result<Option<(Proc, SocketAddr)>> {
    let kind = route.endpoint.kind;
    let name = format!("{}-{n}", kind.name());
    Ok(match kind {
        Kind::Direct => None,
        Kind::Haproxy => Some(haproxy::start_another(s, &route.broker, &name).await?),
        Kind::Proxy | Kind::ProxyAcl | Kind::ProxySni => {
            Some(proxy::start_another(s, kind, &route.broker, &name).await?)
        }
    })
}

pub async fn start_path(kind: Kind, s: &Setup<'_>) -> Result<Route> {
    let (terminator, mut broker, bootstrap, tls) = match kind {
        Kind::Direct => {
            let broker = Broker::start(s, kind, None).await?;
            let addr = SocketAddr::from(([127, 0, 0, 1], broker.port()));
            (None, broker, addr, None)
        }
        Kind::Haproxy => {
            let (term, broker, addr) = haproxy::start(s, kind).await?;
            (Some(term), broker, addr, Some(s.tls.clone()))
        }
        Kind::Proxy | Kind::ProxyAcl => {
            let (term, broker, addr) = proxy::start(s, kind).await?;
            (Some(term), broker, addr, Some(s.tls.clone()))
        }
        Kind::ProxySni => {
            let (term, broker, addr) = proxy::start(s, kind).await?;
            let tls = s.tls.named(&format!("bootstrap.{SNI_DOMAIN}"))?;
            (Some(term), broker, addr, Some(tls))
        }
    };
    let topic = broker.first_topic();
    let (endpoint, tls_params) = prepare(kind, bootstrap, tls, s.partitions, topic)
        .await
        .with_context(|| format!("preparing the {} path", kind.name()))?;
    broker.wait_writable(&endpoint.topic, s.partitions).await?;
    Ok(Route {
        endpoint: Arc::new(endpoint),
        terminator,
        broker,
        partitions: s.partitions,
        tls_params,
    })
}
