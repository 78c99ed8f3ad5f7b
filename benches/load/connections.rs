//! The new-connection-rate figure: the `kafka-topics.sh --list` pattern, repeated.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, ensure};

use crate::client::KafkaConn;
use crate::measure::{CpuUsed, Figure, Sample, WorkerOutcome, report_failures};
use crate::path::Endpoint;

/// Upper bound, whatever the duration: connections per worker per segment.
const MAX_CONNECTIONS_PER_WORKER: u64 = 200_000;

pub async fn measure_connections(
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
pub async fn connection_worker(ep: Arc<Endpoint>, deadline: Instant) -> WorkerOutcome {
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
