//! End-to-end load benchmark: kafka-mtls-proxy against HAProxy terminating the same mTLS, and
//! against the broker itself, measured in one run on this machine.
//!
//! Two figures, five paths:
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
//! - `proxy-sni` (only when asked for, `--paths proxy,proxy-sni`): the proxy with
//!   `listener.sni`: every broker on the bootstrap port, the client setting the advertised name
//!   (`bootstrap.kafka.test`, `broker-<id>.kafka.test`) as the TLS server name and connecting to
//!   127.0.0.1. `proxy-sni/proxy` is the price of reading the ClientHello first and routing
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
//! cargo bench --bench load -- --paths proxy,haproxy --figures idle --idle-connections 9000
//!                                                 # memory per held connection, and after
//! cargo bench --bench load -- --paths proxy,haproxy --figures idle --idle-connections 10000 \
//!     --idle-processes 2                          # 10,000 over two processes of each (5,000
//!                                                 # each: 2 files per connection, limit 20,000)
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

use std::collections::HashMap;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};

#[path = "load/args.rs"]
mod args;
#[path = "load/broker.rs"]
mod broker;
#[path = "load/client.rs"]
mod client;
#[path = "load/connections.rs"]
mod connections;
#[path = "load/haproxy.rs"]
mod haproxy;
#[path = "load/idle.rs"]
mod idle;
#[path = "load/kafka.rs"]
mod kafka;
#[path = "load/measure.rs"]
mod measure;
#[path = "load/path.rs"]
mod path;
#[path = "load/process.rs"]
mod process;
#[path = "load/produce.rs"]
mod produce;
#[path = "load/proxy.rs"]
mod proxy;
#[path = "load/report.rs"]
mod report;

use args::{Args, USAGE, parse_args};
use broker::BrokerKind;
use client::client_tls;
use measure::{Figure, measure};
use path::{Kind, Setup, start_path};
use process::{Binaries, clock_ticks_per_sec, rss_mb};
use report::{Results, report};

/// With Kafka, the uncounted produce warm-up of each path lasts this many `--duration-secs`.
const KAFKA_PRODUCE_WARM_UP: u32 = 8;

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
        // The proxy-sni path's names (bootstrap.kafka.test, broker-<id>.kafka.test).
        .args(["--host", &format!("*.{}", path::SNI_DOMAIN)])
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
    if let Some(idle) = args.idle {
        let mut samples = Vec::new();
        for p in paths.iter_mut().filter(|p| p.terminator.is_some()) {
            // More processes of the path's terminator, started only for this figure.
            let mut extra = Vec::new();
            for n in 2..=idle.processes {
                if let Some(t) = path::start_another_terminator(p, &setup, n).await? {
                    extra.push(t);
                }
            }
            samples.push(idle::measure_idle(p, &mut extra, idle.connections, idle.openers).await?);
        }
        idle::report_idle(&samples);
        if figures.is_empty() {
            return Ok(());
        }
    }

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

/// Open files wanted: the idle figure holds thousands of connections, which takes as many
/// descriptors here, twice as many in the terminator, and as many in the broker (the children
/// inherit this process's limit). Without the privilege to raise the hard limit, the hard
/// limit is what there is.
const WANTED_OPEN_FILES: u64 = 1 << 17;

/// Raise the open-file limit for this process and its children: both limits to
/// [`WANTED_OPEN_FILES`] where allowed (root), else the soft one to the hard one.
fn raise_fd_limit() {
    let nofile = rlimit::Resource::NOFILE;
    let Ok((soft, hard)) = nofile.get() else {
        return;
    };
    let want = WANTED_OPEN_FILES.max(hard);
    if soft < want && nofile.set(want, want).is_err() && soft < hard {
        let _ = nofile.set(hard, hard);
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
    raise_fd_limit();
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
