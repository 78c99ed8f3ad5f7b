//! One measurement of one figure on one path, and what it yields: rate, work done, failures and
//! the CPU time of every process involved.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::args::Args;
use crate::connections::measure_connections;
use crate::path::{Kind, Route};
use crate::produce::measure_produce;

#[derive(Debug, Clone, Copy)]
pub struct CpuSnapshot {
    pub terminator: Option<u64>,
    pub broker: Option<u64>,
    pub client: Option<u64>,
    pub at: Instant,
}

/// CPU seconds each process used between two snapshots.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUsed {
    pub terminator: Option<f64>,
    pub broker: Option<f64>,
    pub client: Option<f64>,
    pub wall: f64,
}

pub fn cpu_used(before: &CpuSnapshot, after: &CpuSnapshot, ticks_per_sec: f64) -> CpuUsed {
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
pub enum Figure {
    Produce,
    ConnSequential,
    ConnConcurrent,
}

#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Produce: MB/s (10^6 bytes of record batches acknowledged). Connections: per second.
    pub rate: f64,
    /// Produce: records/s. Connections: median latency of one connection, ms.
    pub secondary: f64,
    /// Units of work done: MB produced, or connections completed.
    pub work: f64,
    pub errors: u64,
    pub cpu: CpuUsed,
}

#[derive(Default)]
pub struct WorkerOutcome {
    /// Produce: acknowledged requests. Connections: completed connections.
    pub done: u64,
    pub latencies: Vec<Duration>,
    pub failures: u64,
    pub first_failure: Option<anyhow::Error>,
}

impl WorkerOutcome {
    pub fn fail(&mut self, e: anyhow::Error) {
        self.failures += 1;
        self.first_failure.get_or_insert(e);
    }

    pub fn merge(&mut self, other: WorkerOutcome) {
        self.done += other.done;
        self.latencies.extend(other.latencies);
        self.failures += other.failures;
        if self.first_failure.is_none() {
            self.first_failure = other.first_failure;
        }
    }
}

pub fn report_failures(kind: Kind, figure: Figure, outcome: &WorkerOutcome) {
    if let Some(e) = &outcome.first_failure {
        eprintln!(
            "  {} {figure:?}: {} failure(s), not counted; first: {e:#}",
            kind.name(),
            outcome.failures
        );
    }
}

pub async fn measure(
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
