//! The `idle` figure: what a held connection costs the terminator, and whether its memory comes
//! back once the connections are gone.
//!
//! Per path, one after the other (so the client never holds two paths' connections at once):
//! warm up with a few connections, then sample the terminator's RSS (`VmRSS`, from
//! `/proc/PID/status`) as the baseline; open `--idle-connections` mTLS connections (each does
//! ApiVersions and Metadata, so that the upstream connection is open and every buffer has been
//! used once), wait for the terminator to settle and sample again: (held − baseline) / N is the
//! per-connection cost, its upstream side included (socket buffers are kernel memory, not RSS).
//! Then close them all and sample 10 s and 60 s later: how much of the spike came back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, ensure};

use crate::client::KafkaConn;
use crate::path::{Endpoint, Route};
use crate::process::Proc;

/// Connections opened (and closed) before the baseline: first-use allocations are not per
/// connection.
const WARM_UP_CONNECTIONS: usize = 50;
/// Time for the terminator to finish its work on the last connections before a sample.
const SETTLE: Duration = Duration::from_secs(3);
/// Samples after every connection closed.
const AFTER_CLOSE: [Duration; 2] = [Duration::from_secs(10), Duration::from_secs(60)];

/// One path's idle figure.
pub struct IdleSample {
    pub path: &'static str,
    /// Terminator processes the connections were spread over (RSS summed).
    pub processes: usize,
    pub connections: usize,
    pub failures: usize,
    pub open_secs: f64,
    pub baseline_kib: u64,
    pub held_kib: u64,
    pub open_fds: Option<usize>,
    /// RSS at each of [`AFTER_CLOSE`].
    pub after_kib: Vec<u64>,
}

impl IdleSample {
    pub fn per_connection_kib(&self) -> f64 {
        let opened = self.connections.saturating_sub(self.failures).max(1);
        (self.held_kib.saturating_sub(self.baseline_kib)) as f64 / opened as f64
    }
}

/// Resident memory of a process, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Open descriptors of a process.
pub fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// Connect, ApiVersions, Metadata: a connection that has been used, then is held.
async fn used_connection(ep: &Endpoint) -> Result<KafkaConn> {
    let mut conn = KafkaConn::connect(ep.bootstrap, ep.tls.as_ref()).await?;
    conn.api_versions().await?;
    conn.metadata(ep.versions.metadata, None).await?;
    Ok(conn)
}

/// `n` used connections from `openers` concurrent tasks; failures are counted.
async fn open_many(ep: &Arc<Endpoint>, n: usize, openers: usize) -> (Vec<KafkaConn>, usize) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let tasks: Vec<_> = (0..openers.max(1))
        .map(|_| {
            let (ep, next) = (ep.clone(), next.clone());
            tokio::spawn(async move {
                let mut held = Vec::new();
                let mut failures = 0usize;
                let mut first_failure = None;
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                    match used_connection(&ep).await {
                        Ok(c) => held.push(c),
                        Err(e) => {
                            failures += 1;
                            first_failure.get_or_insert(e);
                        }
                    }
                }
                (held, failures, first_failure)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(n);
    let mut failures = 0;
    for t in tasks {
        match t.await {
            Ok((held, f, first)) => {
                all.extend(held);
                failures += f;
                if let Some(e) = first {
                    eprintln!("  {}: a connection failed: {e:#}", ep.kind.name());
                }
            }
            Err(e) => eprintln!("  {}: an opener task failed: {e}", ep.kind.name()),
        }
    }
    (all, failures)
}

/// `counts[i]` used connections to `endpoints[i]`, all at once, `openers` concurrent tasks in
/// all; per endpoint, the connections held and how many failed.
async fn open_spread(
    endpoints: &[Arc<Endpoint>],
    counts: &[usize],
    openers: usize,
) -> Vec<(Vec<KafkaConn>, usize)> {
    let per = openers.div_ceil(endpoints.len().max(1));
    futures_util::future::join_all(
        endpoints
            .iter()
            .zip(counts)
            .map(|(ep, &count)| open_many(ep, count, per)),
    )
    .await
}

/// The idle figure of one path (one with a terminator), its connections spread evenly over
/// the path's terminator and `extra` ones (more processes of the same kind in front of the same
/// broker, `--idle-processes`): RSS and open files are the sums over them all.
pub async fn measure_idle(
    path: &mut Route,
    extra: &mut [(Proc, SocketAddr)],
    n: usize,
    openers: usize,
) -> Result<IdleSample> {
    let ep = path.endpoint.clone();
    let name = ep.kind.name();
    let first = path
        .terminator
        .as_ref()
        .map(|t| (t.pid(), ep.clone()))
        .ok_or_else(|| anyhow!("{name}: no terminator to measure"))?;
    // Each terminator, and the endpoint that reaches it.
    let mut terminators = vec![first];
    for (proc, addr) in extra.iter() {
        let endpoint = Endpoint {
            kind: ep.kind,
            bootstrap: *addr,
            tls: ep.tls.clone(),
            versions: ep.versions,
            topic: ep.topic.clone(),
            leaders: Vec::new(),
        };
        terminators.push((proc.pid(), Arc::new(endpoint)));
    }
    let processes = terminators.len();
    let rss = || -> Result<u64> {
        terminators.iter().try_fold(0, |sum, (pid, _)| {
            let kib =
                rss_kib(*pid).ok_or_else(|| anyhow!("{name}: cannot read /proc/{pid}/status"))?;
            Ok(sum + kib)
        })
    };
    let endpoints: Vec<_> = terminators.iter().map(|(_, ep)| ep.clone()).collect();
    // As even as can be: the first `n % processes` terminators get one more.
    let shares: Vec<usize> = (0..processes)
        .map(|i| n / processes + usize::from(i < n % processes))
        .collect();

    let warm = open_spread(&endpoints, &vec![WARM_UP_CONNECTIONS; processes], 4).await;
    drop(warm);
    tokio::time::sleep(SETTLE).await;
    let baseline_kib = rss()?;

    let began = Instant::now();
    let opened = open_spread(&endpoints, &shares, openers).await;
    let open_secs = began.elapsed().as_secs_f64();
    let failures: usize = opened.iter().map(|(_, f)| f).sum();
    let held: Vec<KafkaConn> = opened.into_iter().flat_map(|(held, _)| held).collect();
    ensure!(!held.is_empty(), "{name}: no connection opened");
    tokio::time::sleep(SETTLE).await;
    let held_kib = rss()?;
    let open = terminators
        .iter()
        .try_fold(0, |sum, (pid, _)| open_fds(*pid).map(|f| sum + f));
    path.check_alive()
        .with_context(|| format!("{name} with {} connections held", held.len()))?;
    for (proc, _) in extra.iter_mut() {
        proc.check_alive()
            .with_context(|| format!("{} with {} connections held", proc.name, held.len()))?;
    }
    eprintln!(
        "  {name}: {} connections held over {processes} process(es) ({failures} failed) in {open_secs:.1} s: RSS {baseline_kib} → {held_kib} KiB",
        held.len()
    );

    for c in held {
        c.close().await;
    }
    let closed = Instant::now();
    let mut after_kib = Vec::new();
    for at in AFTER_CLOSE {
        tokio::time::sleep(at.saturating_sub(closed.elapsed())).await;
        after_kib.push(rss()?);
    }
    Ok(IdleSample {
        path: name,
        processes,
        connections: n,
        failures,
        open_secs,
        baseline_kib,
        held_kib,
        open_fds: open,
        after_kib,
    })
}

/// The table of every path's idle figure, with each path's per-connection cost against the
/// first path's (the proxy, when measured).
pub fn report_idle(samples: &[IdleSample]) {
    println!();
    println!(
        "idle connections: RSS of the terminator (VmRSS), KiB, summed over its processes; per \
         connection = (held − before) / opened"
    );
    println!(
        "{:<10} {:>5} {:>7} {:>6} {:>9} {:>10} {:>10} {:>7} {:>10} {:>10} {:>9}",
        "path",
        "procs",
        "opened",
        "failed",
        "open s",
        "before",
        "held",
        "fds",
        "+10 s",
        "+60 s",
        "KiB/conn"
    );
    for s in samples {
        let after = |i: usize| s.after_kib.get(i).map_or("?".into(), |v| v.to_string());
        println!(
            "{:<10} {:>5} {:>7} {:>6} {:>9.1} {:>10} {:>10} {:>7} {:>10} {:>10} {:>9.1}",
            s.path,
            s.processes,
            s.connections - s.failures,
            s.failures,
            s.open_secs,
            s.baseline_kib,
            s.held_kib,
            s.open_fds.map_or("?".into(), |f| f.to_string()),
            after(0),
            after(1),
            s.per_connection_kib(),
        );
    }
    if let Some(first) = samples.first() {
        for s in samples.iter().skip(1) {
            println!(
                "{} / {}: {:.2} × the memory per idle connection",
                first.path,
                s.path,
                first.per_connection_kib() / s.per_connection_kib().max(f64::MIN_POSITIVE)
            );
        }
    }
}
