//! `--broker kafka`: each path's broker is a one-node Apache Kafka (KRaft, the pinned release of
//! `scripts/kafka-fetch`), started by `benches/load/kafka_node.py` with `kafka/cluster.py` — the
//! settings of `scripts/kafka-cluster start --brokers 1 --pki … --port-base …`, advertising on
//! its PLAINTEXT listener what that path's clients must be told (HAProxy's address on the
//! haproxy path, the broker's own elsewhere). The paths use that PLAINTEXT listener, where
//! `User:ANONYMOUS` may do everything.
//!
//! Cleanup: the JVM is a child of the Python supervisor, in the benchmark's process group (not
//! in a session of its own as `scripts/kafka-cluster` would start it), so `scripts/bench`'s
//! group kill reaches it. The supervisor kills the JVM when its stdin closes — dropping a
//! [`KafkaNode`], or the benchmark dying in any way — and dropping a node falls back to
//! `scripts/kafka-cluster stop --dir …` if the JVM outlives its supervisor.
//!
//! Kafka is not restarted between measurements (see the benchmark's docs): before each produce
//! measurement the path's previous topic is deleted (here, straight on the broker: the
//! `proxy-acl` path has no right to delete) and a fresh one created through the path.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail, ensure};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, DeleteTopicsRequest, DeleteTopicsResponse, ListOffsetsRequest,
    ListOffsetsResponse,
};

use crate::client::{KafkaConn, negotiate, topic_name};
use crate::process::tail;

/// DeleteTopics v5: the last version that names topics in `topic_names` (v6 has `topics`).
const MAX_DELETE_TOPICS_VERSION: i16 = 5;
const MAX_LIST_OFFSETS_VERSION: i16 = 7;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
/// Starting four JVMs at once on two busy cores takes a while.
const START_LIMIT: Duration = Duration::from_secs(240);
/// Ports a node takes from its base (kafka/cluster.py: PLAINTEXT … CONTROLLER).
const PORTS_PER_NODE: u32 = 7;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Make sure the Kafka jars are there (`scripts/kafka-fetch`, cached after the first run) and
/// that `python3` runs; returns what the report calls the broker, e.g. "Apache Kafka 4.4.0".
pub fn prepare_kafka() -> Result<String> {
    let fetch = repo_root().join("scripts/kafka-fetch");
    let out = Command::new(&fetch)
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", fetch.display()))?;
    ensure!(
        out.status.success(),
        "{} failed ({}): Apache Kafka is not available",
        fetch.display(),
        out.status
    );
    let cache = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let python = Command::new("python3")
        .arg("--version")
        .output()
        .context("python3 (needed to run kafka/cluster.py) is not available")?;
    ensure!(python.status.success(), "python3 --version failed");
    let version = Path::new(&cache)
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("kafka-"))
        .unwrap_or("?");
    Ok(format!("Apache Kafka {version}"))
}

static NEXT_SLOT: AtomicU32 = AtomicU32::new(u32::MAX);

/// A base of `PORTS_PER_NODE` consecutive free ports, below Linux's ephemeral range (32768–)
/// so that no client's outgoing connection takes one of them, and different for every node of
/// this run.
fn port_base() -> Result<u16> {
    const LOW: u32 = 20_000;
    const SLOTS: u32 = 1_200; // bases 20000, 20010, …, 31990
    let seed = SystemTime::now().duration_since(UNIX_EPOCH)?.subsec_nanos() ^ std::process::id();
    let _ = NEXT_SLOT.compare_exchange(u32::MAX, seed % SLOTS, Ordering::SeqCst, Ordering::SeqCst);
    for _ in 0..SLOTS {
        let slot = NEXT_SLOT.fetch_add(1, Ordering::SeqCst) % SLOTS;
        let base = LOW + 10 * slot;
        let free = (0..PORTS_PER_NODE).all(|i| {
            u16::try_from(base + i)
                .is_ok_and(|p| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok())
        });
        if free {
            return Ok(u16::try_from(base)?);
        }
    }
    bail!("no {PORTS_PER_NODE} consecutive free ports between {LOW} and 32000")
}

/// How a path's Kafka node is started.
pub struct KafkaSpec {
    /// The benchmark's working directory (each node gets a folder in it).
    pub dir: PathBuf,
    pub pki: PathBuf,
    pub name: String,
    /// What the PLAINTEXT listener advertises instead of its own port (HAProxy's).
    pub advertised_port: Option<u16>,
}

impl KafkaSpec {
    /// Start the node and wait until it serves clients (a port taken meanwhile: another base).
    pub async fn start(&self) -> Result<KafkaNode> {
        let mut last = None;
        for attempt in 1..=3 {
            match self.start_once(attempt).await {
                Ok(node) => return Ok(node),
                Err(e) if format!("{e:#}").contains("ports already in use") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("{}: not started", self.name)))
    }

    async fn start_once(&self, attempt: u32) -> Result<KafkaNode> {
        let workdir = self.dir.join(format!("{}-{attempt}", self.name));
        let base = port_base()?;
        let script = repo_root().join("benches/load/kafka_node.py");
        let mut cmd = Command::new("python3");
        cmd.arg(&script)
            .arg(&workdir)
            .arg(&self.pki)
            .arg(base.to_string());
        if let Some(port) = self.advertised_port {
            cmd.arg(format!("127.0.0.1:{port}"));
        }
        let log = self.dir.join(format!("{}.log", self.name));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(out.try_clone()?)
            .stderr(out)
            .current_dir(&self.dir)
            .spawn()
            .with_context(|| format!("starting {} (python3 {})", self.name, script.display()))?;
        let mut node = KafkaNode {
            name: self.name.clone(),
            child,
            workdir: workdir.clone(),
            log,
            jvm_pid: None,
            node_id: 0,
            port: 0,
            server_log: workdir.join("node-1/server.log"),
            topics_created: 0,
        };
        let ready = workdir.join("ready.json");
        let start = Instant::now();
        loop {
            node.check_alive()?;
            if let Ok(text) = std::fs::read_to_string(&ready) {
                let v: serde_json::Value = serde_json::from_str(&text)
                    .with_context(|| format!("reading {}", ready.display()))?;
                let field = |p: &str| {
                    v.pointer(p)
                        .and_then(serde_json::Value::as_u64)
                        .ok_or_else(|| anyhow!("{}: no {p}", ready.display()))
                };
                node.jvm_pid = Some(u32::try_from(field("/pid")?)?);
                node.node_id = i32::try_from(field("/node_id")?)?;
                node.port = u16::try_from(field("/ports/PLAINTEXT")?)?;
                return Ok(node);
            }
            ensure!(
                start.elapsed() < START_LIMIT,
                "{} did not come up within {START_LIMIT:?}; end of {}:\n{}",
                self.name,
                node.log.display(),
                tail(&node.log, 20)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A running Kafka node (through its supervisor); stopped when dropped.
pub struct KafkaNode {
    name: String,
    /// The Python supervisor; the JVM is its child.
    child: Child,
    workdir: PathBuf,
    log: PathBuf,
    server_log: PathBuf,
    jvm_pid: Option<u32>,
    node_id: i32,
    port: u16,
    topics_created: u32,
}

impl KafkaNode {
    /// The broker JVM's pid (its CPU time is the broker's).
    pub fn pid(&self) -> u32 {
        self.jvm_pid.unwrap_or_else(|| self.child.id())
    }

    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The PLAINTEXT listener (what the terminators connect to).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// An error (with the ends of the logs) when the node has exited: the supervisor exits
    /// when the JVM does.
    pub fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!(
                "{} exited ({status}); end of {}:\n{}\nend of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 20),
                self.server_log.display(),
                tail(&self.server_log, 20)
            ),
        }
    }

    /// A topic name not used before on this node. `load-` is what the `proxy-acl` path allows
    /// creating and writing (and `load-bench-frozen` what it denies).
    pub fn next_topic(&mut self) -> String {
        self.topics_created += 1;
        format!("load-bench-{}", self.topics_created)
    }

    /// Delete `topic` (a measurement's leftovers), straight on the broker's PLAINTEXT listener.
    /// Kafka removes the files in the background, after `log.segment.delete.delay.ms`.
    pub async fn delete_topic(&self, topic: &str) -> Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut conn = KafkaConn::connect(addr, None).await?;
        let api = conn.api_versions().await?;
        let version = negotiate(&api, ApiKey::DeleteTopics, MAX_DELETE_TOPICS_VERSION)?;
        let request = DeleteTopicsRequest::default()
            .with_topic_names(vec![topic_name(topic)])
            .with_timeout_ms(30_000);
        let response: DeleteTopicsResponse =
            conn.call(ApiKey::DeleteTopics, version, &request).await?;
        for r in &response.responses {
            ensure!(
                r.error_code == 0 || r.error_code == UNKNOWN_TOPIC_OR_PARTITION,
                "{}: DeleteTopics {topic}: error {} {:?}",
                self.name,
                r.error_code,
                r.error_message
            );
        }
        conn.close().await;
        Ok(())
    }

    /// Wait until the broker takes writes on every partition of `topic`: its Metadata names
    /// the leader a moment before the partition is ready (Produce then fails with
    /// NOT_LEADER_OR_FOLLOWER), so ask it for the partitions' latest offsets until none refuses.
    pub async fn wait_writable(&self, topic: &str, partitions: usize) -> Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let mut conn = KafkaConn::connect(addr, None).await?;
        let api = conn.api_versions().await?;
        let version = negotiate(&api, ApiKey::ListOffsets, MAX_LIST_OFFSETS_VERSION)?;
        let wanted = (0..partitions)
            .map(|p| {
                Ok(ListOffsetsPartition::default()
                    .with_partition_index(i32::try_from(p)?)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(-1))
            })
            .collect::<Result<Vec<_>>>()?;
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(topic_name(topic))
                    .with_partitions(wanted),
            ]);
        for attempt in 0.. {
            let response: ListOffsetsResponse =
                conn.call(ApiKey::ListOffsets, version, &request).await?;
            let errors: Vec<(i32, i16)> = response
                .topics
                .iter()
                .flat_map(|t| &t.partitions)
                .map(|p| (p.partition_index, p.error_code))
                .collect();
            if errors.len() == partitions && errors.iter().all(|(_, e)| *e == 0) {
                break;
            }
            ensure!(
                attempt < 200,
                "{}: {topic} does not take writes after 20 s (partition, error): {errors:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        conn.close().await;
        Ok(())
    }

    fn stop(&mut self) {
        // End of stdin: the supervisor kills the JVM, waits for it and exits.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Should the JVM have outlived its supervisor: `kafka-cluster stop` (cluster.json has
        // its pid) ends it, SIGTERM then SIGKILL.
        if let Some(pid) = self.jvm_pid
            && jvm_running(pid)
        {
            eprintln!(
                "{}: the JVM (pid {pid}) outlived its supervisor; scripts/kafka-cluster stop",
                self.name
            );
            let _ = Command::new(repo_root().join("scripts/kafka-cluster"))
                .arg("stop")
                .arg("--dir")
                .arg(&self.workdir)
                .stdin(Stdio::null())
                .status();
        }
    }
}

/// Whether `pid` is a live (not zombie) process.
fn jvm_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rfind(')')
            .and_then(|i| stat.get(i + 1..))
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

impl Drop for KafkaNode {
    fn drop(&mut self) {
        self.stop();
    }
}
