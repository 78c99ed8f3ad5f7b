//! The report: medians of the rounds, ratios within each round, CPU time per unit of work.

use std::collections::HashMap;
use std::io::Write as _;

use crate::args::Args;
use crate::measure::{CpuUsed, Figure, Sample};
use crate::path::Kind;
use crate::produce::{RECORDS_PER_BATCH, VALUE_BYTES};

pub fn median(mut xs: Vec<f64>) -> Option<f64> {
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

pub type Results = HashMap<(Kind, Figure), Vec<Sample>>;

pub fn fmt_opt(v: Option<f64>, width: usize, prec: usize) -> String {
    match v {
        Some(v) => format!("{v:>width$.prec$}"),
        None => format!("{:>width$}", "–"),
    }
}

pub fn median_of(
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
pub fn ratio(results: &Results, a: Kind, b: Kind, figure: Figure) -> String {
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

pub fn report(
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
        (Kind::ProxySni, Kind::Proxy),
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
