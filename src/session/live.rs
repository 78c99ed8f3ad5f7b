//! The admitted connections of the proxy, so that a reload can check each one again against the
//! new certificate authorities and pools, and close those it no longer admits.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls_pki_types::{CertificateDer, UnixTime};
use tokio::sync::oneshot;
use tracing::{info, warn};

use super::ConnectionIdentity;
use crate::audit::{AttemptOutcome, AuditSink, AuthenticationAttempt};
use crate::config::CertificateExpiry;
use crate::generation::Generation;
use crate::tls::Verdict;

/// One admitted connection, as re-evaluation needs it.
struct LiveConnection {
    connection_id: String,
    peer: SocketAddr,
    via: Option<SocketAddr>,
    listener: String,
    /// The TLS server name it asked for (SNI routing), for the audit record of its close.
    server_name: Option<String>,
    /// The client's chain as presented: leaf first.
    chain: Arc<Vec<CertificateDer<'static>>>,
    pools: Vec<String>,
    /// The client certificate's `notAfter` (Unix seconds), for the per-pool expiry gauge.
    not_after: Option<i64>,
    /// Closes the connection (with the reason) when it is no longer admitted.
    close: Option<oneshot::Sender<String>>,
}

/// The admitted connections of the proxy, so a reload can re-check them.
#[derive(Default)]
pub struct LiveConnections {
    next: AtomicU64,
    /// Held briefly: registration, removal, and one pass of re-evaluation.
    entries: std::sync::Mutex<HashMap<u64, LiveConnection>>,
}

/// Removes a connection from [`LiveConnections`] when dropped.
pub struct LiveGuard<'a> {
    registry: &'a LiveConnections,
    key: u64,
}

impl Drop for LiveGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut entries) = self.registry.entries.lock() {
            entries.remove(&self.key);
        }
    }
}

impl LiveConnections {
    /// Register an admitted connection; the receiver fires if a reload closes it.
    pub fn register(
        &self,
        identity: &ConnectionIdentity,
        listener: &str,
        chain: Vec<CertificateDer<'static>>,
    ) -> (LiveGuard<'_>, oneshot::Receiver<String>) {
        let (tx, rx) = oneshot::channel();
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(
                key,
                LiveConnection {
                    connection_id: identity.connection_id.clone(),
                    peer: identity.peer,
                    via: identity.via,
                    listener: listener.to_string(),
                    server_name: identity.server_name.clone(),
                    not_after: chain
                        .first()
                        .and_then(CertificateExpiry::of)
                        .map(|e| e.not_after),
                    chain: Arc::new(chain),
                    pools: identity
                        .resolved
                        .evaluation
                        .resolution
                        .pool_ids()
                        .iter()
                        .map(|p| p.to_string())
                        .collect(),
                    close: Some(tx),
                },
            );
        }
        (
            LiveGuard {
                registry: self,
                key,
            },
            rx,
        )
    }

    /// The earliest client certificate `notAfter` among each pool's live connections.
    pub fn earliest_expiry_by_pool(&self) -> BTreeMap<String, i64> {
        let mut earliest = BTreeMap::new();
        let Ok(entries) = self.entries.lock() else {
            return earliest;
        };
        for live in entries.values() {
            let Some(not_after) = live.not_after else {
                continue;
            };
            for pool in &live.pools {
                earliest
                    .entry(pool.clone())
                    .and_modify(|t: &mut i64| *t = (*t).min(not_after))
                    .or_insert(not_after);
            }
        }
        earliest
    }

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Re-check every live connection against `generation`; close (and audit) those it no
    /// longer admits. Returns how many were closed.
    pub fn reevaluate(&self, generation: &Generation, audit: &AuditSink) -> usize {
        let Ok(mut entries) = self.entries.lock() else {
            return 0;
        };
        let now = UnixTime::now();
        let trust = generation.tls.trust();
        let mut closed = 0;
        for live in entries.values_mut() {
            let Some((leaf, intermediates)) = live.chain.split_first() else {
                continue;
            };
            let verdict = trust.verdict(leaf, intermediates, now);
            match &verdict {
                Verdict::Admitted { resolved, .. } => {
                    let pools = resolved.evaluation.resolution.pool_ids();
                    if pools != live.pools {
                        info!(
                            id = %live.connection_id,
                            before = ?live.pools,
                            after = ?pools,
                            "live connection still admitted; its pools apply from its next connection"
                        );
                    }
                }
                Verdict::Refused { reason, detail, .. } => {
                    let detail = format!("re-evaluated after a configuration reload: {detail}");
                    warn!(id = %live.connection_id, %reason, %detail, "closing a live connection");
                    audit.authentication(&AuthenticationAttempt {
                        connection_id: &live.connection_id,
                        client_address: live.peer,
                        via: live.via,
                        listener: &live.listener,
                        server_name: live.server_name.as_deref(),
                        outcome: AttemptOutcome::Refused {
                            reason: *reason,
                            detail: &detail,
                            verdict: Some(&verdict),
                        },
                    });
                    if let Some(close) = live.close.take() {
                        let _ = close.send(format!("{reason}: {detail}"));
                        closed += 1;
                    }
                }
            }
        }
        closed
    }
}
