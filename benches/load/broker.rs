//! The broker behind each path of the load benchmark: tansu (restarted empty before every
//! produce measurement) or Apache Kafka (`kafka.rs`; kept running, a fresh topic instead). See
//! the benchmark's docs for why they differ.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, anyhow};

use crate::kafka;
use crate::path::{Kind, Setup};
use crate::process::{Proc, free_port, wait_for_port};

/// The node id tansu gives its single broker.
const TANSU_NODE_ID: i32 = 111;
/// The topic on tansu (restarted empty before each produce measurement); Kafka gets a fresh
/// `load-bench-N` instead.
const TOPIC: &str = "load-bench";

/// Which broker stands behind every path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    Kafka,
    Tansu,
}

/// A path's broker.
pub enum Broker {
    /// Restarted empty before every produce measurement.
    Tansu { proc: Proc, spec: TansuSpec },
    /// Kept running; a fresh topic for every produce measurement.
    Kafka(kafka::KafkaNode),
}

impl Broker {
    pub async fn start(s: &Setup<'_>, kind: Kind, advertised_port: Option<u16>) -> Result<Self> {
        match s.broker {
            BrokerKind::Tansu => {
                let port = free_port()?;
                let spec = TansuSpec {
                    bin: s
                        .bins
                        .tansu
                        .clone()
                        .ok_or_else(|| anyhow!("no tansu binary"))?,
                    dir: s.dir.to_path_buf(),
                    name: format!("tansu-{}", kind.name()),
                    port,
                    advertised_port: advertised_port.unwrap_or(port),
                };
                Ok(Broker::Tansu {
                    proc: spec.start().await?,
                    spec,
                })
            }
            BrokerKind::Kafka => {
                let spec = kafka::KafkaSpec {
                    dir: s.dir.to_path_buf(),
                    pki: s.pki.to_path_buf(),
                    name: format!("kafka-{}", kind.name()),
                    advertised_port,
                };
                Ok(Broker::Kafka(spec.start().await?))
            }
        }
    }

    /// The broker's own (plaintext) port.
    pub fn port(&self) -> u16 {
        match self {
            Broker::Tansu { spec, .. } => spec.port,
            Broker::Kafka(node) => node.port(),
        }
    }

    pub fn node_id(&self) -> i32 {
        match self {
            Broker::Tansu { .. } => TANSU_NODE_ID,
            Broker::Kafka(node) => node.node_id(),
        }
    }

    /// The process whose CPU time is the broker's (the JVM, for Kafka).
    pub fn pid(&self) -> u32 {
        match self {
            Broker::Tansu { proc, .. } => proc.pid(),
            Broker::Kafka(node) => node.pid(),
        }
    }

    pub fn check_alive(&mut self) -> Result<()> {
        match self {
            Broker::Tansu { proc, .. } => proc.check_alive(),
            Broker::Kafka(node) => node.check_alive(),
        }
    }

    /// Kafka: wait until every partition of a new topic takes writes (tansu: at once).
    pub async fn wait_writable(&self, topic: &str, partitions: usize) -> Result<()> {
        match self {
            Broker::Tansu { .. } => Ok(()),
            Broker::Kafka(node) => node.wait_writable(topic, partitions).await,
        }
    }

    /// Back to the state every produce measurement starts from; returns the topic to create.
    /// tansu is replaced by a fresh one (empty memory storage) on the same port; Kafka keeps
    /// running, and `old_topic` is deleted for a new one.
    pub async fn reset(&mut self, old_topic: &str) -> Result<String> {
        match self {
            Broker::Tansu { proc, spec } => {
                proc.stop();
                *proc = spec.start().await?;
                Ok(TOPIC.to_string())
            }
            Broker::Kafka(node) => {
                node.delete_topic(old_topic).await?;
                Ok(node.next_topic())
            }
        }
    }

    /// The topic of a path's first set-up.
    pub fn first_topic(&mut self) -> String {
        match self {
            Broker::Tansu { .. } => TOPIC.to_string(),
            Broker::Kafka(node) => node.next_topic(),
        }
    }
}

/// How a path's tansu is (re)started: the same settings every time, on every path.
#[derive(Debug, Clone)]
pub struct TansuSpec {
    bin: PathBuf,
    dir: PathBuf,
    name: String,
    port: u16,
    /// Where clients are told the broker is (HAProxy's port on the haproxy path).
    advertised_port: u16,
}

impl TansuSpec {
    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Start it and wait until it listens.
    pub async fn start(&self) -> Result<Proc> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("broker")
            .arg("--listener-url")
            .arg(format!("tcp://127.0.0.1:{}", self.port))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://localhost:{}", self.advertised_port))
            .arg("--storage-engine")
            .arg("memory://tansu/")
            .current_dir(&self.dir);
        // Nothing from the caller's environment.
        for var in [
            "CLUSTER_ID",
            "LISTENER_URL",
            "ADVERTISED_LISTENER_URL",
            "STORAGE_ENGINE",
            "SCHEMA_REGISTRY",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("RUST_LOG", "warn").env("NO_COLOR", "1");
        let log = self.dir.join(format!("{}.log", self.name));
        let mut proc = Proc::spawn(&self.name, &mut cmd, log)?;
        wait_for_port(self.addr(), &mut proc, Duration::from_secs(30)).await?;
        Ok(proc)
    }
}
