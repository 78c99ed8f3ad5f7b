//! `upstream_reachable`: can the proxy open a TCP connection to the real cluster?
//!
//! The admin server answers this itself rather than trusting the data path: with no clients
//! connected, the data path would never find out. The check dials every configured bootstrap
//! server at once and is satisfied by the first to accept, so one dead broker does not make
//! the proxy unready while its peers are up. TCP only: a TLS or SASL failure upstream is a
//! configuration error that the data path logs loudly, not something a restart or a load
//! balancer can fix.
//!
//! The result is cached for [`CACHE_TTL`]: orchestrators probe every few seconds, often from
//! several places, and each probe must not become a connection to the brokers. Concurrent
//! `/readyz` requests share one dial (the cache lock is held across it).

use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::UpstreamConfig;

/// How long a check result is reused.
pub const CACHE_TTL: Duration = Duration::from_secs(2);

/// The longest one check may take, whatever `upstream.connect_timeout_ms` says (10 s by
/// default): Kubernetes gives a probe 1 s by default, and a probe that times out reports
/// nothing, where a `503` with a reason tells the operator what is wrong. A TCP connect within
/// a data centre takes one round trip; 750 ms is generous.
pub const MAX_CHECK_TIME: Duration = Duration::from_millis(750);

/// Dials the upstream bootstrap servers, at most once per [`CACHE_TTL`].
#[derive(Debug)]
pub struct UpstreamProbe {
    /// What to dial; replaced by [`UpstreamProbe::set_targets`] on a reload. A std lock: it is
    /// only held to copy or swap the list, never across an await.
    targets: std::sync::RwLock<Targets>,
    /// The last result. A tokio lock, held across the dial on purpose, so concurrent checks
    /// wait for one dial instead of each starting their own.
    last: Mutex<Option<Cached>>,
}

#[derive(Debug, Clone)]
struct Targets {
    servers: Vec<(String, u16)>,
    budget: Duration,
    /// Bumped on every change, so a result for the old list is never served for the new.
    generation: u64,
}

#[derive(Debug)]
struct Cached {
    at: Instant,
    generation: u64,
    result: Result<(), String>,
}

impl UpstreamProbe {
    /// Dial `servers` (`(host, port)`, as in [`UpstreamConfig::bootstrap_servers`]), each
    /// attempt bounded by `connect_timeout` and by [`MAX_CHECK_TIME`].
    pub fn new(servers: Vec<(String, u16)>, connect_timeout: Duration) -> Self {
        Self {
            targets: std::sync::RwLock::new(Targets {
                servers,
                budget: connect_timeout.min(MAX_CHECK_TIME),
                generation: 0,
            }),
            last: Mutex::new(None),
        }
    }

    /// The bootstrap servers and connect timeout of the `upstream` section.
    pub fn from_config(upstream: &UpstreamConfig) -> Self {
        Self::new(upstream.bootstrap_servers.clone(), upstream.connect_timeout)
    }

    /// Use a new list from now on (after a configuration reload); the cached result is
    /// dropped with the old list.
    pub fn set_targets(&self, servers: Vec<(String, u16)>, connect_timeout: Duration) {
        // A poisoned lock only means a writer panicked mid-swap of plain data: the value is
        // still a whole `Targets`, so carry on with it.
        let mut targets = self
            .targets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *targets = Targets {
            servers,
            budget: connect_timeout.min(MAX_CHECK_TIME),
            generation: targets.generation.wrapping_add(1),
        };
    }

    /// `Ok` if a bootstrap server accepted a TCP connection within the last [`CACHE_TTL`];
    /// otherwise why none did, naming each server.
    pub async fn check(&self) -> Result<(), String> {
        let mut last = self.last.lock().await;
        let targets = self
            .targets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(cached) = last.as_ref()
            && cached.generation == targets.generation
            && cached.at.elapsed() < CACHE_TTL
        {
            return cached.result.clone();
        }
        let result = dial_any(&targets.servers, targets.budget).await;
        *last = Some(Cached {
            at: Instant::now(),
            generation: targets.generation,
            result: result.clone(),
        });
        result
    }
}

/// Dial every server at once; `Ok` on the first to connect (the others are dropped, which
/// closes their sockets), else every server's failure.
async fn dial_any(servers: &[(String, u16)], budget: Duration) -> Result<(), String> {
    if servers.is_empty() {
        return Err("no upstream bootstrap servers are configured".to_string());
    }
    let mut dials: FuturesUnordered<_> = servers
        .iter()
        .map(|(host, port)| async move {
            // The whole attempt, name resolution included, is bounded.
            match tokio::time::timeout(budget, TcpStream::connect((host.as_str(), *port))).await {
                Ok(Ok(_stream)) => Ok(()),
                Ok(Err(e)) => Err(format!("{host}:{port}: {e}")),
                Err(_) => Err(format!(
                    "{host}:{port}: no connection within {} ms",
                    budget.as_millis()
                )),
            }
        })
        .collect();
    let mut failures = Vec::new();
    while let Some(outcome) = dials.next().await {
        match outcome {
            Ok(()) => return Ok(()),
            Err(why) => failures.push(why),
        }
    }
    Err(format!(
        "no upstream bootstrap server accepts connections: {}",
        failures.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A local port nothing listens on (bound, then released).
    async fn closed_port() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn one_reachable_server_is_enough() {
        let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = up.local_addr().unwrap().port();
        let closed = closed_port().await;
        let probe = UpstreamProbe::new(
            vec![("127.0.0.1".into(), closed), ("127.0.0.1".into(), open)],
            Duration::from_secs(1),
        );
        assert_eq!(probe.check().await, Ok(()));
    }

    #[tokio::test]
    async fn failures_name_every_server() {
        let closed = closed_port().await;
        let probe = UpstreamProbe::new(vec![("127.0.0.1".into(), closed)], Duration::from_secs(1));
        let why = probe.check().await.unwrap_err();
        assert!(why.contains(&format!("127.0.0.1:{closed}")), "{why}");
    }

    #[tokio::test]
    async fn no_servers_is_not_ready() {
        let probe = UpstreamProbe::new(vec![], Duration::from_secs(1));
        assert!(probe.check().await.unwrap_err().contains("no upstream"));
    }

    #[tokio::test]
    async fn results_are_cached_until_the_targets_change() {
        let up = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = up.local_addr().unwrap().port();
        let probe = UpstreamProbe::new(vec![("127.0.0.1".into(), port)], Duration::from_secs(1));
        assert_eq!(probe.check().await, Ok(()));
        drop(up);
        // Within CACHE_TTL: the broker going away is not noticed yet.
        assert_eq!(probe.check().await, Ok(()));
        // A reload with new targets is noticed at once.
        probe.set_targets(vec![("127.0.0.1".into(), port)], Duration::from_secs(1));
        assert!(probe.check().await.is_err());
    }

    #[test]
    fn the_budget_is_capped_for_orchestrator_probes() {
        let probe = UpstreamProbe::new(vec![], Duration::from_secs(10));
        let budget = probe.targets.read().unwrap().budget;
        assert_eq!(budget, MAX_CHECK_TIME);
    }
}
