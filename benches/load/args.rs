//! The command line: options, their defaults and limits.

use std::time::Duration;

use anyhow::{Result, anyhow, bail, ensure};

use crate::broker::BrokerKind;
use crate::measure::Figure;
use crate::path::Kind;

#[derive(Debug, Clone)]
pub struct Args {
    pub broker: BrokerKind,
    /// Length of one measurement (one figure on one path in one round).
    pub duration: Duration,
    pub rounds: usize,
    /// Produce connections (one partition each).
    pub connections: usize,
    /// Produce requests in flight per connection.
    pub in_flight: usize,
    /// Concurrent workers of the concurrent connection test.
    pub workers: usize,
    /// Keep the working directory (configurations, logs) instead of deleting it.
    pub keep: bool,
    /// The paths to measure (all by default; a subset is for profiling one of them).
    pub paths: Vec<Kind>,
    /// The figures to measure (all by default).
    pub figures: Vec<Figure>,
    /// The idle figure (`--figures idle`, not run by default): connections held per path.
    pub idle: Option<IdleArgs>,
}

/// The idle figure's options (`load/idle.rs`).
#[derive(Debug, Clone, Copy)]
pub struct IdleArgs {
    pub connections: usize,
    /// Concurrent tasks opening them.
    pub openers: usize,
    /// Terminator processes per path the connections are spread over (each in front of the
    /// path's one broker): one process cannot hold more connections than half its open-file
    /// limit.
    pub processes: usize,
}

pub const USAGE: &str = "\
usage: cargo bench --bench load -- [--broker kafka|tansu] [--duration-secs N] [--rounds N]
                                   [--connections N] [--in-flight N] [--workers N] [--quick]
                                   [--keep] [--paths proxy,proxy-acl,proxy-sni,haproxy,direct]
                                   [--figures produce,seq,concurrent,idle]
                                   [--idle-connections N] [--idle-openers N]
                                   [--idle-processes N]
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
                     concurrent (connections from --workers workers); idle (not by default:
                     terminator RSS with --idle-connections held, and 10 s / 60 s after they
                     closed; paths measured one after the other)
  --idle-connections N  connections the idle figure holds per path (default 9000: the terminator
                     needs 2 open files per connection, and a hard limit of 20000 is common)
  --idle-openers N   concurrent tasks opening them (default 32)
  --idle-processes N  spread them evenly over N terminator processes per path, all in front of
                     the path's one broker (default 1; 2 holds 10000 under a limit of 20000);
                     RSS and open files are summed over the N
Criterion-style arguments (--bench, filters, …) are ignored.";

pub fn parse_args() -> Result<Option<Args>> {
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
    let mut idle = false;
    let mut idle_connections = 9_000;
    let mut idle_openers = 32;
    let mut idle_processes = 1;
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
                        "proxy-sni" => Ok(Kind::ProxySni),
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
                idle = list.split(',').any(|f| f.trim() == "idle");
                figures = list
                    .split(',')
                    .filter(|f| f.trim() != "idle")
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
            "--idle-connections" => idle_connections = value("--idle-connections")?,
            "--idle-openers" => idle_openers = value("--idle-openers")?,
            "--idle-processes" => idle_processes = value("--idle-processes")?,
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
        idle: if idle {
            Some(IdleArgs {
                connections: small(idle_connections, 100_000, "--idle-connections")?,
                openers: small(idle_openers, 512, "--idle-openers")?,
                processes: small(idle_processes, 8, "--idle-processes")?,
            })
        } else {
            None
        },
    }))
}
