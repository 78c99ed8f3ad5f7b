//! End-to-end load benchmark: kafka-mtls-proxy against HAProxy terminating the same mTLS, and
//! against the broker itself, measured in one run on this machine.
//!
//! Two figures, four paths:
//!
//! - **produce throughput**: `--connections` connections (default 4), each pipelining Produce
//!   requests (acks=1, v9 or lower, one ~16 KiB record batch each, `--in-flight` requests in
//!   flight) to its own partition of one topic, for `--duration-secs`;
//! - **new-connection rate**: the `kafka-topics.sh --list` pattern, repeated: TCP connect, full
//!   mTLS handshake (the client never resumes), ApiVersions, Metadata (all topics), close —
//!   sequentially, then with `--workers` concurrent workers.
//!
//! Paths, each with its own broker — `--broker kafka` (the default: Apache Kafka, the project's
//! reference broker, one KRaft node per path, see `load/kafka.rs`) or `--broker tansu` — with
//! the same settings on every path:
//!
//! - `proxy`:   client ─mTLS─▶ kafka-mtls-proxy (release binary) ─▶ broker
//! - `proxy-acl`: the same, with proxy ACLs on (`authorization.enabled: true`): every request
//!   is checked against the pools' rules (a few that do not match, one deny, the prefixed allow
//!   the benchmark needs), ApiVersions answers are narrowed, and the Metadata listing of the
//!   connection test is filtered to the describable topics. `proxy-acl/proxy` is the price of
//!   ACLs; `proxy` itself runs without them, as before
//! - `haproxy`: client ─mTLS─▶ HAProxy (`mode tcp`, `ssl … verify required`) ─▶ broker, which
//!   advertises HAProxy's address so that clients stay on HAProxy
//! - `direct`:  client ─plaintext─▶ broker (the ceiling)
//!
//! Every produce measurement starts from the same broker state, an empty topic with one
//! partition per connection:
//!
//! - tansu keeps every record in memory and slows down as it grows, so its broker is restarted
//!   empty (milliseconds) before every produce measurement and the topic created again;
//! - Apache Kafka appends to segment files on disk, at a cost that does not depend on how much
//!   the log already holds, so its broker is **not** restarted (a JVM restart costs ~10–30 s
//!   here, and would throw away the JIT's warm-up, penalising whichever path ran first after
//!   it): before every produce measurement the path's previous topic is deleted and a fresh one
//!   (`load-bench-N`) created through the path. Kafka deletes the old files in the background a
//!   minute later, so the disk stays bounded and the Metadata listing of the connection test
//!   always holds that one topic, as with tansu. Before a new topic is produced to, the broker
//!   is asked (ListOffsets) until every partition takes writes. A JVM also needs a far longer
//!   warm-up (its throughput climbs for its first ~20–40 s of produce traffic): with Kafka, every
//!   path first produces for 8 × `--duration-secs` and runs each connection figure for one
//!   `--duration-secs`, uncounted (tansu: 0.5 s each).
//!
//! Client, terminators and broker share this machine's cores, so absolute figures mean little:
//! paths are interleaved (each figure is measured on every path, in a rotating order, `--rounds`
//! times) and the report is the median of the rounds plus ratios computed within each round.
//! The CPU time each process used (from `/proc/PID/stat`) is reported per MB and per
//! connection: it is the least noisy measure of what the terminator itself costs. Failed
//! connections or sessions are counted, reported and left out of the figures (a produce
//! connection that fails is replaced, as a client would).
//!
//! ```text
//! cargo bench --bench load                        # Apache Kafka, ~6 minutes
//! cargo bench --bench load -- --broker tansu      # tansu, ~3 minutes
//! cargo bench --bench load -- --quick             # smoke run: ~1.5 minutes (tansu: ~20 s)
//! cargo bench --bench load -- --duration-secs 6 --rounds 5 --connections 8
//! cargo bench --bench load -- --paths proxy --figures produce --duration-secs 20 --keep
//!                                                 # one path, one figure: for `perf record -p`
//! ```
//!
//! `scripts/bench` installs what is missing (the Kafka jars through `scripts/kafka-fetch`, or
//! tansu with `--broker tansu`; haproxy), builds the proxy and runs this. Binaries are found
//! through `KAFKA_MTLS_PROXY_BIN`, `TANSU_BIN` and `HAPROXY_BIN`, else next to this executable
//! (the proxy, rebuilt with `cargo build --release` when run by cargo) and on `PATH` (or
//! `~/.cargo/bin`, `/usr/sbin`); Kafka runs from `kafka/bin` with `python3` and
//! `kafka/cluster.py`. Without haproxy its path is skipped. All traffic stays on 127.0.0.1;
//! every child process (the Kafka JVMs included) is killed when the benchmark ends, fails or is
//! interrupted.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::future::Future;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail, ensure};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH, NO_PRODUCER_ID, NO_SEQUENCE, Record,
    RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

#[path = "load/broker.rs"]
mod broker;
#[path = "load/kafka.rs"]
mod kafka;

use broker::{Broker, BrokerKind};

/// With Kafka, the uncounted produce warm-up of each path lasts this many `--duration-secs`.
const KAFKA_PRODUCE_WARM_UP: u32 = 8;
/// The node id tansu gives its single broker.
const TANSU_NODE_ID: i32 = 111;
/// The topic on tansu (restarted empty before each produce measurement); Kafka gets a fresh
/// `load-bench-N` instead.
const TOPIC: &str = "load-bench";
const CLIENT_ID: &str = "load-bench";
/// Every single network operation of the client (connect, handshake, one write, one read).
const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest response the client accepts.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
/// Records per Produce request and value size: a batch of ~16 KiB, Kafka's default `batch.size`.
const RECORDS_PER_BATCH: usize = 16;
const VALUE_BYTES: usize = 1000;
/// Upper bounds, whatever the duration: produce requests per connection per segment, and
/// connections per worker per segment.
const MAX_PRODUCE_REQUESTS: u64 = 1_000_000;
const MAX_CONNECTIONS_PER_WORKER: u64 = 200_000;
/// The API versions this client speaks at most (Produce: v9, the last before KIP-951's
/// `node_endpoints`, like the brief asks; Metadata v12 is what current Java clients send).
const MAX_PRODUCE_VERSION: i16 = 9;
const MAX_METADATA_VERSION: i16 = 12;
const MAX_CREATE_TOPICS_VERSION: i16 = 7;
const API_VERSIONS_VERSION: i16 = 3;
const UNSUPPORTED_VERSION: i16 = 35;
const TOPIC_ALREADY_EXISTS: i16 = 36;

// ------------------------------------------------------------------------------------------
// Command line
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Args {
    broker: BrokerKind,
    /// Length of one measurement (one figure on one path in one round).
    duration: Duration,
    rounds: usize,
    /// Produce connections (one partition each).
    connections: usize,
    /// Produce requests in flight per connection.
    in_flight: usize,
    /// Concurrent workers of the concurrent connection test.
    workers: usize,
    /// Keep the working directory (configurations, logs) instead of deleting it.
    keep: bool,
    /// The paths to measure (all by default; a subset is for profiling one of them).
    paths: Vec<Kind>,
    /// The figures to measure (all by default).
    figures: Vec<Figure>,
}

const USAGE: &str = "\
usage: cargo bench --bench load -- [--broker kafka|tansu] [--duration-secs N] [--rounds N]
                                   [--connections N] [--in-flight N] [--workers N] [--quick]
                                   [--keep] [--paths proxy,proxy-acl,haproxy,direct]
                                   [--figures produce,seq,concurrent]
  --broker B         each path's broker: kafka (default; a one-node Apache Kafka per path, from
                     scripts/kafka-fetch) or tansu (needs scripts/install-tansu)
  --duration-secs N  length of each measurement (default 4; --quick: 1)
  --rounds N         times each figure is measured on each path, interleaved (default 3; --quick: 1)
  --connections N    produce connections, one partition each (default 4)
  --in-flight N      produce requests in flight per connection (default 4)
  --workers N        concurrent workers of the connection test (default 4)
  --keep             keep the working directory (configs, PKI, process logs) and print its path
  --paths LIST       measure only these paths (e.g. `--paths proxy` to profile the proxy alone)
  --figures LIST     measure only these figures: produce, seq (connections one at a time),
                     concurrent (connections from --workers workers)
Criterion-style arguments (--bench, filters, …) are ignored.";

fn parse_args() -> Result<Option<Args>> {
    let mut quick = false;
    let mut keep = false;
    let mut broker = BrokerKind::Kafka;
    let mut paths = vec![Kind::Proxy, Kind::ProxyAcl, Kind::Haproxy, Kind::Direct];
    let mut figures = vec![
        Figure::Produce,
        Figure::ConnSequential,
        Figure::ConnConcurrent,
    ];
    let mut duration = None;
    let mut rounds = None;
    let mut connections = 4;
    let mut in_flight = 4;
    let mut workers = 4;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = |what: &str| -> Result<u64> {
            let v = match inline.clone() {
                Some(v) => v,
                None => it.next().ok_or_else(|| anyhow!("{what} needs a value"))?,
            };
            let n: u64 = v
                .parse()
                .map_err(|_| anyhow!("{what}: `{v}` is not a positive integer"))?;
            ensure!(n > 0, "{what} must be at least 1");
            Ok(n)
        };
        match name.as_str() {
            "--quick" => quick = true,
            "--keep" => keep = true,
            "--broker" => {
                let b = match inline.clone() {
                    Some(v) => v,
                    None => it.next().ok_or_else(|| anyhow!("--broker needs a value"))?,
                };
                broker = match b.as_str() {
                    "kafka" => BrokerKind::Kafka,
                    "tansu" => BrokerKind::Tansu,
                    other => bail!("--broker: `{other}` is neither kafka nor tansu"),
                };
            }
            "--paths" => {
                let list = match inline.clone() {
                    Some(v) => v,
                    None => it.next().ok_or_else(|| anyhow!("--paths needs a value"))?,
                };
                paths = list
                    .split(',')
                    .map(|p| match p.trim() {
                        "proxy" => Ok(Kind::Proxy),
                        "proxy-acl" => Ok(Kind::ProxyAcl),
                        "haproxy" => Ok(Kind::Haproxy),
                        "direct" => Ok(Kind::Direct),
                        other => Err(anyhow!("--paths: unknown path `{other}`")),
                    })
                    .collect::<Result<_>>()?;
            }
            "--figures" => {
                let list = match inline.clone() {
                    Some(v) => v,
                    None => it
                        .next()
                        .ok_or_else(|| anyhow!("--figures needs a value"))?,
                };
                figures = list
                    .split(',')
                    .map(|f| match f.trim() {
                        "produce" => Ok(Figure::Produce),
                        "seq" => Ok(Figure::ConnSequential),
                        "concurrent" => Ok(Figure::ConnConcurrent),
                        other => Err(anyhow!("--figures: unknown figure `{other}`")),
                    })
                    .collect::<Result<_>>()?;
            }
            "--duration-secs" => duration = Some(value("--duration-secs")?),
            "--rounds" => rounds = Some(value("--rounds")?),
            "--connections" => connections = value("--connections")?,
            "--in-flight" => in_flight = value("--in-flight")?,
            "--workers" => workers = value("--workers")?,
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(None);
            }
            // `cargo bench` passes `--bench`; criterion-style flags and filters mean nothing here.
            _ => {}
        }
    }
    let small = |n: u64, max: u64, what: &str| -> Result<usize> {
        ensure!(n <= max, "{what} is at most {max}");
        Ok(usize::try_from(n)?)
    };
    Ok(Some(Args {
        broker,
        duration: Duration::from_secs(duration.unwrap_or(if quick { 1 } else { 4 }).min(600)),
        rounds: small(rounds.unwrap_or(if quick { 1 } else { 3 }), 50, "--rounds")?,
        connections: small(connections, 64, "--connections")?,
        in_flight: small(in_flight, 64, "--in-flight")?,
        workers: small(workers, 64, "--workers")?,
        keep,
        paths,
        figures,
    }))
}

// ------------------------------------------------------------------------------------------
// Child processes
// ------------------------------------------------------------------------------------------

/// A child process that is killed (and reaped) when dropped.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> Result<Self> {
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", cmd.get_program()))?;
        Ok(Self {
            name: name.to_string(),
            child,
            log,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An error (with the end of its log) when the process has exited.
    fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!(
                "{} exited ({status}); end of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 20)
            ),
        }
    }
}

impl Proc {
    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Wait until `addr` accepts TCP connections, or `proc` dies, or `limit` passes.
async fn wait_for_port(addr: SocketAddr, proc: &mut Proc, limit: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        proc.check_alive()?;
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(addr)).await
        {
            drop(s);
            return Ok(());
        }
        ensure!(
            start.elapsed() < limit,
            "{} does not listen on {addr} after {limit:?}; end of {}:\n{}",
            proc.name,
            proc.log.display(),
            tail(&proc.log, 20)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// utime + stime of a process (all its threads), in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start with the state (field 3);
    // utime and stime are fields 14 and 15.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident memory of a process, MB.
fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn clock_ticks_per_sec() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

fn find_in_path(name: &str, extra: &[PathBuf]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().cloned())
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

struct Binaries {
    proxy: PathBuf,
    /// With `--broker tansu` only.
    tansu: Option<PathBuf>,
    haproxy: Option<PathBuf>,
}

impl Binaries {
    fn find(broker: BrokerKind) -> Result<Self> {
        let proxy = match std::env::var_os("KAFKA_MTLS_PROXY_BIN") {
            Some(p) => PathBuf::from(p),
            None => build_proxy()?,
        };
        ensure!(
            proxy.is_file(),
            "no proxy binary at {} (run `cargo build --release --bins`, or set KAFKA_MTLS_PROXY_BIN)",
            proxy.display()
        );
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let cargo_bin: Vec<PathBuf> = home.iter().map(|h| h.join(".cargo/bin")).collect();
        let tansu = match (broker, std::env::var_os("TANSU_BIN")) {
            (BrokerKind::Kafka, _) => None,
            (BrokerKind::Tansu, Some(p)) => Some(PathBuf::from(p)),
            (BrokerKind::Tansu, None) => Some(
                find_in_path("tansu", &cargo_bin)
                    .ok_or_else(|| anyhow!("tansu not found: run scripts/install-tansu"))?,
            ),
        };
        let haproxy = match std::env::var_os("HAPROXY_BIN") {
            Some(p) => Some(PathBuf::from(p)),
            None => find_in_path("haproxy", &[PathBuf::from("/usr/sbin")]),
        };
        Ok(Self {
            proxy,
            tansu,
            haproxy,
        })
    }
}

/// The release proxy binary next to this benchmark (`target/release/deps/load-…` →
/// `target/release/kafka-mtls-proxy`), rebuilt first when cargo runs us, so the benchmark never
/// measures a stale binary.
fn build_proxy() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let release = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("cannot locate the target directory from {}", exe.display()))?;
    if let Some(cargo) = std::env::var_os("CARGO") {
        eprintln!(
            "building the release proxy binary (cargo build --release --bin kafka-mtls-proxy)…"
        );
        let status = Command::new(cargo)
            .args(["build", "--release", "--quiet", "--bin", "kafka-mtls-proxy"])
            .env("CARGO_TARGET_DIR", release.parent().unwrap_or(release))
            .status()
            .context("running cargo build")?;
        ensure!(status.success(), "cargo build --release failed ({status})");
    }
    Ok(release.join("kafka-mtls-proxy"))
}

// ------------------------------------------------------------------------------------------
// A minimal Kafka client (the same code on every path)
// ------------------------------------------------------------------------------------------

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How the client reaches a path: plaintext, or mTLS with the client certificate.
#[derive(Clone)]
struct ClientTls {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

async fn timed<T, E>(what: &str, fut: impl Future<Output = Result<T, E>>) -> Result<T>
where
    E: Into<anyhow::Error>,
{
    match tokio::time::timeout(IO_TIMEOUT, fut).await {
        Err(_) => bail!("{what}: no progress within {IO_TIMEOUT:?}"),
        Ok(r) => r.map_err(Into::into).with_context(|| what.to_string()),
    }
}

struct KafkaConn {
    io: BufReader<Box<dyn Io>>,
    next_correlation: i32,
    /// Protocol version, cipher suite and key exchange group, when TLS.
    tls_params: Option<String>,
}

impl KafkaConn {
    async fn connect(addr: SocketAddr, tls: Option<&ClientTls>) -> Result<Self> {
        let tcp = timed("TCP connect", TcpStream::connect(addr)).await?;
        tcp.set_nodelay(true)?;
        let (io, tls_params): (Box<dyn Io>, _) = match tls {
            None => (Box::new(tcp), None),
            Some(t) => {
                let stream = timed(
                    "TLS handshake",
                    t.connector.connect(t.server_name.clone(), tcp),
                )
                .await?;
                let (_, conn) = stream.get_ref();
                let params = format!(
                    "{:?} {:?} {:?}",
                    conn.protocol_version()
                        .ok_or_else(|| anyhow!("no TLS version"))?,
                    conn.negotiated_cipher_suite()
                        .ok_or_else(|| anyhow!("no cipher suite"))?
                        .suite(),
                    conn.negotiated_key_exchange_group()
                        .ok_or_else(|| anyhow!("no key exchange group"))?
                        .name(),
                );
                (Box::new(stream), Some(params))
            }
        };
        Ok(Self {
            io: BufReader::with_capacity(64 * 1024, io),
            next_correlation: 1,
            tls_params,
        })
    }

    fn correlation_id(&mut self) -> i32 {
        let id = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        id
    }

    async fn write(&mut self, frame: &[u8]) -> Result<()> {
        timed("write", self.io.write_all(frame)).await
    }

    async fn flush(&mut self) -> Result<()> {
        timed("flush", self.io.flush()).await
    }

    async fn read_frame(&mut self) -> Result<Bytes> {
        let len = timed("read response size", self.io.read_i32()).await?;
        let len = usize::try_from(len).map_err(|_| anyhow!("negative response size {len}"))?;
        ensure!(len <= MAX_RESPONSE_BYTES, "response of {len} bytes");
        let mut body = vec![0u8; len];
        timed("read response", self.io.read_exact(&mut body)).await?;
        Ok(Bytes::from(body))
    }

    async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp> {
        let correlation = self.correlation_id();
        let frame = request_frame(key, version, correlation, request)?;
        self.write(&frame).await?;
        self.flush().await?;
        let mut response = self.read_frame().await?;
        decode_response(key, version, correlation, &mut response)
    }

    async fn api_versions(&mut self) -> Result<ApiVersionsResponse> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str("1.0"));
        let mut response: ApiVersionsResponse = self
            .call(ApiKey::ApiVersions, API_VERSIONS_VERSION, &request)
            .await?;
        if response.error_code == UNSUPPORTED_VERSION {
            // KIP-511: retry with the oldest version.
            response = self
                .call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
                .await?;
        }
        ensure!(
            response.error_code == 0,
            "ApiVersions error {}",
            response.error_code
        );
        Ok(response)
    }

    async fn metadata(&mut self, version: i16, topic: Option<&str>) -> Result<MetadataResponse> {
        let topics =
            topic.map(|t| vec![MetadataRequestTopic::default().with_name(Some(topic_name(t)))]);
        let request = MetadataRequest::default()
            .with_topics(topics)
            .with_allow_auto_topic_creation(false);
        self.call(ApiKey::Metadata, version, &request).await
    }

    /// Close like a Java client: TLS close_notify (when TLS), then FIN.
    async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.io.shutdown()).await;
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// A whole request frame: size prefix, header, body.
fn request_frame<T: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<BytesMut> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)))
        .encode(&mut buf, key.request_header_version(version))?;
    body.encode(&mut buf, version)?;
    let size = i32::try_from(buf.len() - 4)?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf)
}

/// Where the correlation id sits in a request frame: size (4), api key (2), api version (2).
const CORRELATION_OFFSET: usize = 8;

fn decode_response<T: Decodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    buf: &mut Bytes,
) -> Result<T> {
    let header = ResponseHeader::decode(buf, key.response_header_version(version))?;
    ensure!(
        header.correlation_id == correlation_id,
        "{key:?} response has correlation id {}, expected {correlation_id}",
        header.correlation_id
    );
    T::decode(buf, version).with_context(|| format!("decoding {key:?} v{version} response"))
}

/// The version to use: the highest both sides speak.
fn negotiate(versions: &ApiVersionsResponse, key: ApiKey, ours: i16) -> Result<i16> {
    let theirs = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == key as i16)
        .ok_or_else(|| anyhow!("the broker does not support {key:?}"))?;
    ensure!(
        theirs.min_version <= ours,
        "{key:?}: the broker needs v{} or later, this client speaks up to v{ours}",
        theirs.min_version
    );
    Ok(theirs.max_version.min(ours))
}

#[derive(Debug, Clone, Copy)]
struct Versions {
    metadata: i16,
    produce: i16,
    create_topics: i16,
}

/// One record batch (v2, uncompressed) of `RECORDS_PER_BATCH` records.
fn record_batch() -> Result<Bytes> {
    let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    // Not all one byte: something a compressor or a dedup could not shortcut, were one involved.
    let value: Vec<u8> = (0..VALUE_BYTES)
        .map(|i| u8::try_from((i * 31 + 7) % 251).unwrap_or(0))
        .collect();
    let value = Bytes::from(value);
    let records = (0..RECORDS_PER_BATCH)
        .map(|i| {
            Ok(Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
                producer_id: NO_PRODUCER_ID,
                producer_epoch: NO_PRODUCER_EPOCH,
                timestamp_type: TimestampType::Creation,
                offset: i64::try_from(i)?,
                // The encoder puts records in one batch only while `offset - sequence` stays
                // the same, and derives the batch's base sequence from the first record: this
                // gives one batch with base sequence -1 (no idempotence), as the Java producer
                // writes it. With NO_SEQUENCE on every record each record became a batch of its
                // own — which Apache Kafka refuses (INVALID_RECORD: Produce v3+ allows exactly one
                // batch per partition) and tansu accepted.
                sequence: NO_SEQUENCE + i32::try_from(i)?,
                timestamp: now,
                key: Some(Bytes::from(format!("key-{i:04}"))),
                value: Some(value.clone()),
                headers: Default::default(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )?;
    // One batch: base offset (8 bytes), then the batch length, which covers the rest.
    let length = buf
        .get(8..12)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(i32::from_be_bytes);
    ensure!(
        length.and_then(|l| usize::try_from(l).ok()) == Some(buf.len() - 12),
        "the records did not encode as one batch"
    );
    Ok(buf.freeze())
}

// ------------------------------------------------------------------------------------------
// Paths
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Proxy,
    /// The proxy with proxy ACLs enforced.
    ProxyAcl,
    Haproxy,
    Direct,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Proxy => "proxy",
            Kind::ProxyAcl => "proxy-acl",
            Kind::Haproxy => "haproxy",
            Kind::Direct => "direct",
        }
    }
}

/// What workers need to reach a path (cheap to share).
struct Endpoint {
    kind: Kind,
    bootstrap: SocketAddr,
    tls: Option<ClientTls>,
    versions: Versions,
    /// The topic produced to.
    topic: String,
    /// Partition index → its leader's address, as advertised (and resolved to loopback).
    leaders: Vec<SocketAddr>,
}

/// A running path: its processes and how to reach it.
struct Route {
    endpoint: Arc<Endpoint>,
    /// The TLS terminator (proxy or haproxy), when there is one. Declared before the broker:
    /// stopped first.
    terminator: Option<Proc>,
    broker: Broker,
    partitions: usize,
    tls_params: String,
}

impl Route {
    /// Bring the broker back to the state every produce measurement starts from — an empty
    /// topic with one partition per connection — and learn its leaders through the path again.
    /// tansu is replaced by a fresh one (empty memory storage) on the same port, which also keeps
    /// its memory bounded (tansu keeps every record in memory, and slows down as it grows);
    /// Kafka keeps running: the previous topic is deleted and a new one created.
    async fn fresh_state(&mut self) -> Result<()> {
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

    fn check_alive(&mut self) -> Result<()> {
        self.broker.check_alive()?;
        if let Some(t) = &mut self.terminator {
            t.check_alive()?;
        }
        Ok(())
    }

    fn cpu(&self) -> CpuSnapshot {
        CpuSnapshot {
            terminator: self.terminator.as_ref().and_then(|t| cpu_ticks(t.pid())),
            broker: cpu_ticks(self.broker.pid()),
            client: cpu_ticks(std::process::id()),
            at: Instant::now(),
        }
    }
}

/// Proxy ACLs for the `proxy-acl` path: enforced globally; the client matches both pools and
/// gets the union of their rules. Only the prefixed `load-` allow matches what the benchmark
/// does (CreateTopics, Produce, Metadata of its topic; describe is implied by write); the
/// others, and the deny, are checked on every request without matching. No rule allows
/// describing every topic, so the Metadata listing is filtered.
const PROXY_ACLS: Acls = Acls {
    global: r#"
authorization:
  enabled: true
  rules:
    - {operations: [read], resource_type: group, pattern_type: prefixed, resource_name: load-}"#,
    pool_payments: r#"
        acls:
          - {permission: deny, operations: [write], resource_type: topic, resource_name: load-bench-frozen}
          - {operations: [write, describe], resource_type: topic, resource_name: payments}
          - {operations: [read], resource_type: topic, pattern_type: prefixed, resource_name: payments-}
          - {operations: [write, create], resource_type: topic, pattern_type: prefixed, resource_name: load-}"#,
    pool_acme_all: r#"
        acls:
          - {operations: [read], resource_type: topic, pattern_type: prefixed, resource_name: acme-shared-}
          - {operations: [describe], resource_type: topic, resource_name: acme-directory}"#,
};

/// YAML fragments that turn proxy ACLs on (empty strings: off).
#[derive(Debug, Clone, Copy)]
struct Acls {
    global: &'static str,
    pool_payments: &'static str,
    pool_acme_all: &'static str,
}

const NO_ACLS: Acls = Acls {
    global: "",
    pool_payments: "",
    pool_acme_all: "",
};

fn proxy_config(name: &str, dir: &Path, pki: &Path, ports: (u16, u16, u16), acls: Acls) -> String {
    let (bootstrap, first_port, broker) = ports;
    let p = |f: &str| pki.join(f).display().to_string();
    format!(
        r#"listener:
  bootstrap: 127.0.0.1:{bootstrap}
  advertised_host: localhost
  broker_ports:
    first_port: {first_port}
tls:
  certificate_chain: {server_pem}
  private_key: {server_key}
upstream:
  bootstrap_servers: [127.0.0.1:{broker}]
audit:
  path: {audit}
log:
  level: {log_level}
certificate_authorities:
  - id: ca-acme
    display_name: Acme Internal Client CA
    certificate_chain: {client_ca}
    identity_pools:
      - id: pool-payments
        display_name: Payments
        external_identifier: CN
        filter: 'CN == "acme-client" && OU == "payments"'{pool_payments}
      - id: pool-acme-all
        display_name: All Acme clients
        external_identifier: SHA1
        filter: 'O == "Acme Inc"'{pool_acme_all}{global}
"#,
        server_pem = p("server.pem"),
        server_key = p("server.key"),
        audit = dir.join(format!("{name}-audit.log")).display(),
        pool_payments = acls.pool_payments,
        pool_acme_all = acls.pool_acme_all,
        global = acls.global,
        client_ca = p("acme-internal-client-ca.pem"),
        // `warn` as in production; LOAD_PROXY_LOG=info|debug to see why sessions end.
        log_level = std::env::var("LOAD_PROXY_LOG").unwrap_or_else(|_| "warn".into()),
    )
}

fn haproxy_config(pem: &Path, client_ca: &Path, port: u16, broker: u16) -> String {
    format!(
        r#"# The same mTLS as the proxy (server certificate, client CA, verify required), TCP mode.
# TLS versions, ciphers and threads are HAProxy's defaults (nbthread = the CPUs available).
global
    maxconn 8000

defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend kafka_mtls
    bind 127.0.0.1:{port} ssl crt {pem} ca-file {ca} verify required
    default_backend broker

backend broker
    server broker 127.0.0.1:{broker}
"#,
        pem = pem.display(),
        ca = client_ca.display(),
    )
}

fn client_tls(pki: &Path) -> Result<ClientTls> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pki.join("server-ca.pem"))? {
        roots.add(cert?)?;
    }
    let chain = CertificateDer::pem_file_iter(pki.join("acme-client.pem"))?
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(pki.join("acme-client.key"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    // Every connection is a full handshake: nothing is ever resumed.
    config.resumption = rustls::client::Resumption::disabled();
    config.enable_early_data = false;
    Ok(ClientTls {
        connector: TlsConnector::from(Arc::new(config)),
        server_name: ServerName::try_from("localhost")?.to_owned(),
    })
}

/// Resolve an advertised `host:port` to a loopback address (all traffic stays on 127.0.0.1).
async fn resolve_loopback(host: &str, port: i32) -> Result<SocketAddr> {
    let port = u16::try_from(port)?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4() && a.ip().is_loopback())
        .copied()
        .ok_or_else(|| anyhow!("{host}:{port} resolves to {addrs:?}, not to 127.0.0.1"))
}

/// Negotiate versions, create the topic, learn its partition leaders.
async fn prepare(
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
                    found.push(resolve_loopback(host, *port).await?);
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

struct Setup<'a> {
    bins: &'a Binaries,
    broker: BrokerKind,
    dir: &'a Path,
    pki: &'a Path,
    tls: &'a ClientTls,
    partitions: usize,
}

async fn start_path(kind: Kind, s: &Setup<'_>) -> Result<Route> {
    let (terminator, mut broker, bootstrap, tls) = match kind {
        Kind::Direct => {
            let broker = Broker::start(s, kind, None).await?;
            let addr = SocketAddr::from(([127, 0, 0, 1], broker.port()));
            (None, broker, addr, None)
        }
        Kind::Haproxy => {
            let haproxy = s
                .bins
                .haproxy
                .as_ref()
                .ok_or_else(|| anyhow!("haproxy is not installed"))?;
            let port = free_port()?;
            // The broker advertises HAProxy's address: clients that follow Metadata stay on
            // HAProxy.
            let broker = Broker::start(s, kind, Some(port)).await?;
            let pem = s.dir.join("haproxy-server.pem");
            let mut both = std::fs::read(s.pki.join("server.pem"))?;
            both.push(b'\n');
            both.extend(std::fs::read(s.pki.join("server.key"))?);
            std::fs::write(&pem, both)?;
            let cfg = s.dir.join("haproxy.cfg");
            std::fs::write(
                &cfg,
                haproxy_config(
                    &pem,
                    &s.pki.join("acme-internal-client-ca.pem"),
                    port,
                    broker.port(),
                ),
            )?;
            let check = Command::new(haproxy)
                .arg("-c")
                .arg("-f")
                .arg(&cfg)
                .output()?;
            ensure!(
                check.status.success(),
                "haproxy rejects {}: {}{}",
                cfg.display(),
                String::from_utf8_lossy(&check.stdout),
                String::from_utf8_lossy(&check.stderr)
            );
            let mut cmd = Command::new(haproxy);
            cmd.arg("-db").arg("-f").arg(&cfg).current_dir(s.dir);
            let mut term = Proc::spawn("haproxy", &mut cmd, s.dir.join("haproxy.log"))?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            wait_for_port(addr, &mut term, Duration::from_secs(30)).await?;
            (Some(term), broker, addr, Some(s.tls.clone()))
        }
        Kind::Proxy | Kind::ProxyAcl => {
            let broker = Broker::start(s, kind, None).await?;
            let bootstrap = free_port()?;
            // first_port + the broker's node id (tansu: 111, Kafka: 1) must be free.
            let node_id = u16::try_from(broker.node_id())?;
            let first_port = loop {
                let p = free_port()?;
                if p > node_id + 1024 && p != bootstrap {
                    break p - node_id;
                }
            };
            let acls = if kind == Kind::ProxyAcl {
                PROXY_ACLS
            } else {
                NO_ACLS
            };
            let cfg = s.dir.join(format!("{}.yaml", kind.name()));
            std::fs::write(
                &cfg,
                proxy_config(
                    kind.name(),
                    s.dir,
                    s.pki,
                    (bootstrap, first_port, broker.port()),
                    acls,
                ),
            )?;
            let mut cmd = Command::new(&s.bins.proxy);
            cmd.arg("run")
                .arg("--config")
                .arg(&cfg)
                .current_dir(s.dir)
                .env_remove("RUST_LOG")
                .env("NO_COLOR", "1");
            let log = s.dir.join(format!("{}.log", kind.name()));
            let mut term = Proc::spawn(
                &format!("kafka-mtls-proxy ({})", kind.name()),
                &mut cmd,
                log,
            )?;
            let addr = SocketAddr::from(([127, 0, 0, 1], bootstrap));
            wait_for_port(addr, &mut term, Duration::from_secs(30)).await?;
            (Some(term), broker, addr, Some(s.tls.clone()))
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

// ------------------------------------------------------------------------------------------
// Measurements
// ------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
struct CpuSnapshot {
    terminator: Option<u64>,
    broker: Option<u64>,
    client: Option<u64>,
    at: Instant,
}

/// CPU seconds each process used between two snapshots.
#[derive(Debug, Clone, Copy, Default)]
struct CpuUsed {
    terminator: Option<f64>,
    broker: Option<f64>,
    client: Option<f64>,
    wall: f64,
}

fn cpu_used(before: &CpuSnapshot, after: &CpuSnapshot, ticks_per_sec: f64) -> CpuUsed {
    let d = |a: Option<u64>, b: Option<u64>| -> Option<f64> {
        Some(b?.saturating_sub(a?) as f64 / ticks_per_sec)
    };
    CpuUsed {
        terminator: d(before.terminator, after.terminator),
        broker: d(before.broker, after.broker),
        client: d(before.client, after.client),
        wall: after.at.duration_since(before.at).as_secs_f64(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Figure {
    Produce,
    ConnSequential,
    ConnConcurrent,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    /// Produce: MB/s (10^6 bytes of record batches acknowledged). Connections: per second.
    rate: f64,
    /// Produce: records/s. Connections: median latency of one connection, ms.
    secondary: f64,
    /// Units of work done: MB produced, or connections completed.
    work: f64,
    errors: u64,
    cpu: CpuUsed,
}

/// Failures a produce worker tolerates in one measurement before it gives up (each one is
/// counted and reported; the path is then plainly broken).
const MAX_PRODUCE_FAILURES: u64 = 50;

/// A produce connection, ready: connected, ApiVersions done (as every client does first).
async fn produce_connection(ep: &Endpoint, partition: usize) -> Result<KafkaConn> {
    let leader = ep
        .leaders
        .get(partition)
        .ok_or_else(|| anyhow!("no leader for partition {partition}"))?;
    let mut conn = KafkaConn::connect(*leader, ep.tls.as_ref()).await?;
    conn.api_versions().await?;
    Ok(conn)
}

/// What one worker did in one measurement.
#[derive(Default)]
struct WorkerOutcome {
    /// Produce: acknowledged requests. Connections: completed connections.
    done: u64,
    latencies: Vec<Duration>,
    failures: u64,
    first_failure: Option<anyhow::Error>,
}

impl WorkerOutcome {
    fn fail(&mut self, e: anyhow::Error) {
        self.failures += 1;
        self.first_failure.get_or_insert(e);
    }

    fn merge(&mut self, other: WorkerOutcome) {
        self.done += other.done;
        self.latencies.extend(other.latencies);
        self.failures += other.failures;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }
}

fn report_failures(kind: Kind, figure: Figure, outcome: &WorkerOutcome) {
    if let Some(e) = &outcome.first_failure {
        eprintln!(
            "  {} {figure:?}: {} failure(s), not counted; first: {e:#}",
            kind.name(),
            outcome.failures
        );
    }
}

async fn measure_produce(ep: &Arc<Endpoint>, args: &Args, duration: Duration) -> Result<Sample> {
    let batch = record_batch()?;
    let batch_len = batch.len();
    let partitions = args.connections.min(ep.leaders.len());
    // Connect (and negotiate) before the clock starts; a connection that fails here is retried
    // a few times (and counted).
    let mut setup = WorkerOutcome::default();
    let mut conns = Vec::new();
    for partition in 0..partitions {
        let request = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(topic_name(&ep.topic))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(i32::try_from(partition)?)
                            .with_records(Some(batch.clone())),
                    ]),
            ]);
        let template = request_frame(ApiKey::Produce, ep.versions.produce, 0, &request)?;
        let mut conn = None;
        for _ in 0..5 {
            match produce_connection(ep, partition).await {
                Ok(c) => {
                    conn = Some(c);
                    break;
                }
                Err(e) => setup.fail(e),
            }
        }
        let conn = conn.ok_or_else(|| {
            anyhow!(
                "{}: cannot open a produce connection: {:?}",
                ep.kind.name(),
                setup.first_failure
            )
        })?;
        conns.push((partition, conn, template));
    }
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|(partition, conn, template)| {
            tokio::spawn(produce_worker(
                ep.clone(),
                partition,
                conn,
                template,
                args.in_flight,
                deadline,
            ))
        })
        .collect();
    let mut outcome = setup;
    for t in tasks {
        outcome.merge(t.await?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    report_failures(ep.kind, Figure::Produce, &outcome);
    let mb = outcome.done as f64 * batch_len as f64 / 1e6;
    Ok(Sample {
        rate: mb / elapsed,
        secondary: (outcome.done * RECORDS_PER_BATCH as u64) as f64 / elapsed,
        work: mb,
        errors: outcome.failures,
        cpu: CpuUsed::default(),
    })
}

/// Keep `in_flight` Produce requests outstanding on one partition until the deadline, like a
/// client: a connection that fails is counted, and replaced (requests in flight on it are lost,
/// not counted).
async fn produce_worker(
    ep: Arc<Endpoint>,
    partition: usize,
    conn: KafkaConn,
    mut frame: BytesMut,
    in_flight: usize,
    deadline: Instant,
) -> WorkerOutcome {
    let mut outcome = WorkerOutcome::default();
    let mut conn = Some(conn);
    let mut sent = 0u64;
    while Instant::now() < deadline && outcome.failures < MAX_PRODUCE_FAILURES {
        let mut c = match conn.take() {
            Some(c) => c,
            None => match produce_connection(&ep, partition).await {
                Ok(c) => c,
                Err(e) => {
                    outcome.fail(e);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
        };
        let result = produce_pipeline(
            &mut c,
            &mut frame,
            ep.versions.produce,
            in_flight,
            deadline,
            &mut sent,
            &mut outcome.done,
        )
        .await;
        match result {
            Ok(()) => {
                c.close().await;
                break;
            }
            Err(e) => outcome.fail(e),
        }
    }
    outcome
}

/// The pipelined produce loop on one connection: returns once the deadline has passed and every
/// request in flight is answered.
async fn produce_pipeline(
    conn: &mut KafkaConn,
    frame: &mut BytesMut,
    version: i16,
    in_flight: usize,
    deadline: Instant,
    sent: &mut u64,
    acked: &mut u64,
) -> Result<()> {
    let mut outstanding = VecDeque::with_capacity(in_flight);
    loop {
        let mut wrote = false;
        while outstanding.len() < in_flight
            && *sent < MAX_PRODUCE_REQUESTS
            && Instant::now() < deadline
        {
            let correlation = conn.correlation_id();
            frame[CORRELATION_OFFSET..CORRELATION_OFFSET + 4]
                .copy_from_slice(&correlation.to_be_bytes());
            conn.write(frame).await?;
            outstanding.push_back(correlation);
            *sent += 1;
            wrote = true;
        }
        if wrote {
            conn.flush().await?;
        }
        let Some(correlation) = outstanding.pop_front() else {
            return Ok(());
        };
        let mut body = conn.read_frame().await?;
        let response: ProduceResponse =
            decode_response(ApiKey::Produce, version, correlation, &mut body)?;
        for topic in &response.responses {
            for p in &topic.partition_responses {
                ensure!(
                    p.error_code == 0,
                    "Produce to partition {} failed: error {} {:?} {:?}",
                    p.index,
                    p.error_code,
                    p.error_message,
                    p.record_errors
                );
            }
        }
        *acked += 1;
    }
}

async fn measure_connections(
    ep: &Arc<Endpoint>,
    figure: Figure,
    workers: usize,
    duration: Duration,
) -> Result<Sample> {
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = (0..workers)
        .map(|_| tokio::spawn(connection_worker(ep.clone(), deadline)))
        .collect();
    let mut outcome = WorkerOutcome::default();
    for t in tasks {
        outcome.merge(t.await?);
    }
    let elapsed = start.elapsed().as_secs_f64();
    report_failures(ep.kind, figure, &outcome);
    let mut latencies = outcome.latencies;
    ensure!(
        !latencies.is_empty(),
        "{}: no connection completed",
        ep.kind.name()
    );
    latencies.sort();
    let completed = latencies.len() as f64;
    Ok(Sample {
        rate: completed / elapsed,
        secondary: latencies[latencies.len() / 2].as_secs_f64() * 1e3,
        work: completed,
        errors: outcome.failures,
        cpu: CpuUsed::default(),
    })
}

/// The `kafka-topics.sh --list` pattern until the deadline: connect, full handshake,
/// ApiVersions, Metadata (all topics), close. Failures are counted, not timed.
async fn connection_worker(ep: Arc<Endpoint>, deadline: Instant) -> WorkerOutcome {
    let mut outcome = WorkerOutcome::default();
    let mut attempts = 0u64;
    let mut consecutive_failures = 0u32;
    while Instant::now() < deadline && attempts < MAX_CONNECTIONS_PER_WORKER {
        attempts += 1;
        let t0 = Instant::now();
        let result = async {
            let mut conn = KafkaConn::connect(ep.bootstrap, ep.tls.as_ref()).await?;
            conn.api_versions().await?;
            let md = conn.metadata(ep.versions.metadata, None).await?;
            ensure!(!md.brokers.is_empty(), "Metadata lists no broker");
            conn.close().await;
            Ok::<_, anyhow::Error>(())
        }
        .await;
        match result {
            Ok(()) => {
                outcome.latencies.push(t0.elapsed());
                outcome.done += 1;
                consecutive_failures = 0;
            }
            Err(e) => {
                outcome.fail(e);
                consecutive_failures += 1;
                // A broken path must not spin; a sporadic failure is not waited for (that
                // would count against the path twice).
                if consecutive_failures >= 3 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
    outcome
}

async fn measure(
    path: &mut Route,
    figure: Figure,
    args: &Args,
    duration: Duration,
    ticks: f64,
) -> Result<Sample> {
    if figure == Figure::Produce {
        path.fresh_state().await?;
    }
    let ep = path.endpoint.clone();
    let before = path.cpu();
    let mut sample = match figure {
        Figure::Produce => measure_produce(&ep, args, duration).await,
        Figure::ConnSequential => measure_connections(&ep, figure, 1, duration).await,
        Figure::ConnConcurrent => measure_connections(&ep, figure, args.workers, duration).await,
    }
    .with_context(|| format!("{} {figure:?}", ep.kind.name()))?;
    let after = path.cpu();
    sample.cpu = cpu_used(&before, &after, ticks);
    path.check_alive()?;
    Ok(sample)
}

// ------------------------------------------------------------------------------------------
// Report
// ------------------------------------------------------------------------------------------

fn median(mut xs: Vec<f64>) -> Option<f64> {
    if xs.is_empty() {
        return None;
    }
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    Some(if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    })
}

type Results = HashMap<(Kind, Figure), Vec<Sample>>;

fn fmt_opt(v: Option<f64>, width: usize, prec: usize) -> String {
    match v {
        Some(v) => format!("{v:>width$.prec$}"),
        None => format!("{:>width$}", "–"),
    }
}

fn median_of(
    results: &Results,
    kind: Kind,
    figure: Figure,
    f: impl Fn(&Sample) -> Option<f64>,
) -> Option<f64> {
    median(
        results
            .get(&(kind, figure))
            .map(|v| v.iter().filter_map(&f).collect())
            .unwrap_or_default(),
    )
}

/// Ratio a/b per round (the two were measured minutes apart at most), as median [min–max].
fn ratio(results: &Results, a: Kind, b: Kind, figure: Figure) -> String {
    let (Some(xs), Some(ys)) = (results.get(&(a, figure)), results.get(&(b, figure))) else {
        return format!("{:>22}", "–");
    };
    let rs: Vec<f64> = xs
        .iter()
        .zip(ys)
        .filter(|(_, y)| y.rate > 0.0)
        .map(|(x, y)| x.rate / y.rate)
        .collect();
    let lo = rs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = rs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    match median(rs) {
        None => format!("{:>22}", "–"),
        Some(m) if lo == hi => format!("{:>22}", format!("{m:.2}")),
        Some(m) => format!("{:>22}", format!("{m:.2} [{lo:.2}–{hi:.2}]")),
    }
}

fn report(
    args: &Args,
    broker: &str,
    kinds: &[Kind],
    tls: &[(Kind, String)],
    results: &Results,
    versions: &str,
) {
    use Figure::{ConnConcurrent, ConnSequential, Produce};
    let mut out = String::new();
    let w = args.workers;
    out.push_str(&format!(
        "\n== kafka-mtls-proxy load benchmark, broker {broker} (one per path): {} round(s) × {} s per figure and path, paths interleaved; medians of rounds ==\n",
        args.rounds,
        args.duration.as_secs()
    ));
    out.push_str(&format!(
        "produce: {} connection(s) × {} in flight, acks=1, {RECORDS_PER_BATCH} × {VALUE_BYTES} B records per ~16 KiB batch; \
         connections: connect + full mTLS handshake + ApiVersions + Metadata + close; {versions}\n",
        args.connections, args.in_flight
    ));
    for (k, p) in tls {
        out.push_str(&format!("TLS {:<9} {p}\n", k.name()));
    }
    out.push_str(&format!(
        "\n{:<9} {:>12} {:>12} {:>11} {:>11} {:>11} {:>11} {:>8}\n",
        "path",
        "produce MB/s",
        "records/s",
        "conn/s seq",
        format!("conn/s x{w}"),
        "p50 ms seq",
        format!("p50 ms x{w}"),
        "failures",
    ));
    for &k in kinds {
        let m = |f: Figure| median_of(results, k, f, |s| Some(s.rate));
        let s = |f: Figure| median_of(results, k, f, |s| Some(s.secondary));
        let failures: u64 = [Produce, ConnSequential, ConnConcurrent]
            .iter()
            .filter_map(|&f| results.get(&(k, f)))
            .flatten()
            .map(|s| s.errors)
            .sum();
        out.push_str(&format!(
            "{:<9} {} {} {} {} {} {} {:>8}\n",
            k.name(),
            fmt_opt(m(Produce), 12, 1),
            fmt_opt(s(Produce), 12, 0),
            fmt_opt(m(ConnSequential), 11, 0),
            fmt_opt(m(ConnConcurrent), 11, 0),
            fmt_opt(s(ConnSequential), 11, 2),
            fmt_opt(s(ConnConcurrent), 11, 2),
            failures,
        ));
    }
    out.push_str(&format!(
        "\n{:<18} {:>22} {:>22} {:>22}\n",
        "ratio (per round)",
        "produce",
        "conn/s seq",
        format!("conn/s x{w}")
    ));
    for (a, b) in [
        (Kind::Proxy, Kind::Direct),
        (Kind::Haproxy, Kind::Direct),
        (Kind::Proxy, Kind::Haproxy),
        (Kind::ProxyAcl, Kind::Haproxy),
        (Kind::ProxyAcl, Kind::Proxy),
    ] {
        if !kinds.contains(&a) || !kinds.contains(&b) {
            continue;
        }
        out.push_str(&format!(
            "{:<18} {} {} {}\n",
            format!("{}/{}", a.name(), b.name()),
            ratio(results, a, b, Produce),
            ratio(results, a, b, ConnSequential),
            ratio(results, a, b, ConnConcurrent),
        ));
    }
    out.push_str(&format!(
        "\nCPU time used per unit of work (medians; % = share of one core during the measurement)\n\
         {:<9} {:>14} {:>14} {:>14} {:>14} {:>14} {:>14}\n",
        "path",
        "term ms/MB",
        "broker ms/MB",
        "client ms/MB",
        format!("term ms/conn"),
        "broker ms/conn",
        "client ms/conn",
    ));
    for &k in kinds {
        let per = |f: Figure, which: fn(&CpuUsed) -> Option<f64>| {
            median_of(results, k, f, |s| {
                (s.work > 0.0).then_some(())?;
                Some(which(&s.cpu)? * 1e3 / s.work)
            })
        };
        let term = |c: &CpuUsed| c.terminator;
        let broker = |c: &CpuUsed| c.broker;
        let client = |c: &CpuUsed| c.client;
        out.push_str(&format!(
            "{:<9} {} {} {} {} {} {}\n",
            k.name(),
            fmt_opt(per(Produce, term), 14, 2),
            fmt_opt(per(Produce, broker), 14, 2),
            fmt_opt(per(Produce, client), 14, 2),
            fmt_opt(per(ConnConcurrent, term), 14, 3),
            fmt_opt(per(ConnConcurrent, broker), 14, 3),
            fmt_opt(per(ConnConcurrent, client), 14, 3),
        ));
    }
    out.push_str(&format!(
        "{:<9} {:>14} {:>14} {:>14} {:>14} {:>14} {:>14}\n",
        "", "term %", "broker %", "client %", "term %", "broker %", "client %"
    ));
    for &k in kinds {
        let pct = |f: Figure, which: fn(&CpuUsed) -> Option<f64>| {
            median_of(results, k, f, |s| Some(which(&s.cpu)? * 100.0 / s.cpu.wall))
        };
        let term = |c: &CpuUsed| c.terminator;
        let broker = |c: &CpuUsed| c.broker;
        let client = |c: &CpuUsed| c.client;
        out.push_str(&format!(
            "{:<9} {} {} {} {} {} {}\n",
            k.name(),
            fmt_opt(pct(Produce, term), 14, 0),
            fmt_opt(pct(Produce, broker), 14, 0),
            fmt_opt(pct(Produce, client), 14, 0),
            fmt_opt(pct(ConnConcurrent, term), 14, 0),
            fmt_opt(pct(ConnConcurrent, broker), 14, 0),
            fmt_opt(pct(ConnConcurrent, client), 14, 0),
        ));
    }
    if kinds.contains(&Kind::ProxyAcl) && kinds.contains(&Kind::Proxy) {
        // The terminator's CPU per unit of work, proxy-acl over proxy (ratio of the medians).
        let term_per = |k: Kind, f: Figure| {
            median_of(results, k, f, |s| {
                (s.work > 0.0).then_some(())?;
                Some(s.cpu.terminator? / s.work)
            })
        };
        let cpu_ratio = |f: Figure| match (term_per(Kind::ProxyAcl, f), term_per(Kind::Proxy, f)) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        out.push_str(&format!(
            "\nterminator CPU proxy-acl/proxy: {} per MB produced, {} per connection (x{w})\n",
            fmt_opt(cpu_ratio(Produce), 0, 2),
            fmt_opt(cpu_ratio(ConnConcurrent), 0, 2),
        ));
    }
    let errors: u64 = results.values().flatten().map(|s| s.errors).sum();
    if errors > 0 {
        out.push_str(&format!(
            "\nWARNING: {errors} connection(s)/session(s) failed during the measurements (their work \
             is not counted; the first failure of each measurement is printed above)\n"
        ));
    }
    print!("{out}");
    let _ = std::io::stdout().flush();
}

// ------------------------------------------------------------------------------------------
// Main
// ------------------------------------------------------------------------------------------

async fn run(args: Args) -> Result<()> {
    let bins = Binaries::find(args.broker)?;
    let broker = match args.broker {
        BrokerKind::Kafka => kafka::prepare_kafka()?,
        BrokerKind::Tansu => {
            let bin = bins
                .tansu
                .as_ref()
                .ok_or_else(|| anyhow!("no tansu binary"))?;
            let out = Command::new(bin).arg("--version").output();
            let version = out.map_or_else(
                |_| "tansu".to_string(),
                |o| String::from_utf8_lossy(&o.stdout).trim().to_string(),
            );
            if version.is_empty() {
                "tansu".to_string()
            } else {
                version
            }
        }
    };
    let tmp = tempfile::Builder::new()
        .prefix("kafka-mtls-proxy-load-")
        .tempdir()?;
    // Deleted at the end unless --keep (then kept even when the run fails).
    let (_tmp_guard, dir) = if args.keep {
        let kept = tmp.keep();
        eprintln!("working directory (kept): {}", kept.display());
        (None, kept)
    } else {
        let path = tmp.path().to_path_buf();
        (Some(tmp), path)
    };
    let pki = dir.join("pki");
    let out = Command::new(&bins.proxy)
        .arg("pki")
        .arg("--out")
        .arg(&pki)
        .output()
        .context("running kafka-mtls-proxy pki")?;
    ensure!(
        out.status.success(),
        "kafka-mtls-proxy pki failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tls = client_tls(&pki)?;
    let setup = Setup {
        bins: &bins,
        broker: args.broker,
        dir: &dir,
        pki: &pki,
        tls: &tls,
        partitions: args.connections,
    };
    let mut kinds = args.paths.clone();
    if bins.haproxy.is_none() && kinds.contains(&Kind::Haproxy) {
        eprintln!("haproxy not found (apt-get install haproxy, or set HAPROXY_BIN): path skipped");
        kinds.retain(|&k| k != Kind::Haproxy);
    }
    ensure!(!kinds.is_empty(), "no path to measure");
    // All paths start at once (a JVM broker takes ~10–30 s); if one fails, dropping the others
    // stops what they had started.
    eprintln!(
        "starting the paths ({}), each with its own {broker}…",
        kinds
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let began = Instant::now();
    let mut paths =
        futures_util::future::try_join_all(kinds.iter().map(|&k| start_path(k, &setup))).await?;
    eprintln!("paths up in {:.1} s", began.elapsed().as_secs_f64());
    let tls_params: Vec<(Kind, String)> = paths
        .iter()
        .map(|p| (p.endpoint.kind, p.tls_params.clone()))
        .collect();
    let versions = {
        let v = paths
            .first()
            .map(|p| p.endpoint.versions)
            .ok_or_else(|| anyhow!("no path"))?;
        format!("Produce v{}, Metadata v{}", v.produce, v.metadata)
    };
    let ticks = clock_ticks_per_sec();
    let figures = args.figures.clone();

    // Warm-up (not counted): first connections, listeners, caches, allocator — and a JVM's JIT,
    // which needs far longer: Kafka's produce throughput here climbs steeply for its first ~20 s
    // of produce traffic (~50 → ~200 MB/s direct), then slowly for another ~20 s.
    let warm = |f: Figure| match (args.broker, f) {
        (BrokerKind::Tansu, _) => Duration::from_millis(500).min(args.duration),
        (BrokerKind::Kafka, Figure::Produce) => args.duration * KAFKA_PRODUCE_WARM_UP,
        (BrokerKind::Kafka, _) => args.duration,
    };
    eprintln!(
        "warming up (not counted): {}",
        figures
            .iter()
            .map(|&f| format!("{f:?} {:.1} s", warm(f).as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    for p in &mut paths {
        for &f in &figures {
            measure(p, f, &args, warm(f), ticks).await?;
        }
    }

    let mut results: Results = HashMap::new();
    for round in 0..args.rounds {
        for &f in &figures {
            // Rotate the order every round so no path always runs first or last.
            let n = paths.len();
            for i in 0..n {
                let p = &mut paths[(i + round) % n];
                let s = measure(p, f, &args, args.duration, ticks).await?;
                let kind = p.endpoint.kind;
                eprintln!(
                    "round {}/{} {:<15} {:<9} {:>9.1} {}",
                    round + 1,
                    args.rounds,
                    format!("{f:?}"),
                    kind.name(),
                    s.rate,
                    if f == Figure::Produce {
                        "MB/s"
                    } else {
                        "conn/s"
                    },
                );
                results.entry((kind, f)).or_default().push(s);
            }
        }
    }
    report(&args, &broker, &kinds, &tls_params, &results, &versions);
    // tansu's memory storage keeps every record (Kafka's heap is fixed): what the run cost it.
    let rss: Vec<String> = paths
        .iter()
        .map(|p| {
            let mb = rss_mb(p.broker.pid()).map_or("?".into(), |m| format!("{m:.0} MB"));
            format!("{} {mb}", p.endpoint.kind.name())
        })
        .collect();
    println!("broker memory (RSS) at the end: {}", rss.join(", "));
    drop(paths);
    Ok(())
}

async fn interrupted() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Dropping `run` (on a signal) drops every `Proc`, which kills and reaps the children.
    let result = runtime.block_on(async {
        tokio::select! {
            r = run(args) => r,
            _ = interrupted() => Err(anyhow!("interrupted")),
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
