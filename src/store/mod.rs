//! The shared pool store: the certificate authorities and identity pools of every replica, in
//! one compacted Kafka topic (`store.topic`, one partition, so every replica applies the same
//! sequence and concurrent writers end in one agreed state).
//!
//! - `record`: the key (`ca/<id>`, `pool/<ca>/<id>`) and JSON value of a record; tombstones.
//! - `state`: the CAs and pools applied so far; a record is applied only if the configuration
//!   with it validates as a load would, otherwise it is skipped with a log line and a metric.
//! - `client`: the Kafka requests (Metadata, CreateTopics, ListOffsets, Fetch, Produce), as
//!   the proxy itself (`upstream.proxy_login`: a SCRAM user, or in oauthbearer mode a token
//!   the proxy signs for its own subject) over the upstream connection settings; a connection
//!   whose login session nears its end is replaced.
//! - `status`: not ready until the topic is read to its end; degraded (serving the last
//!   applied state) when it cannot be read afterwards.
//!
//! Every replica tails the topic from the beginning ([`run`]) and installs the store's CAs in
//! place of the file's (`Reloader::install_authorities`): the file's other sections stay in
//! force and reloadable. A write through the IAM API is computed against the applied state,
//! validated, produced with `acks=all`, and answered once this replica's tail has applied it
//! ([`SharedStore::write`]). A topic with no record at all is seeded from the file's CAs.

mod batch;
mod client;
mod record;
mod state;
mod status;

use std::collections::VecDeque;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::config::raw::RawCertificateAuthority;
use crate::config::{ConfigError, StoreConfig};
use crate::metrics::Metrics;
use crate::reload::Reloader;
use client::{ClientError, Connection, Leader};

pub use record::{CaDoc, Change, RecordError};

/// What the `store_record` fuzz target reaches (fuzz/README.md): the fetched-records decoder
/// and what applying a record returns. Not an API.
#[doc(hidden)]
pub mod fuzzing {
    pub use super::batch::decode_fetched;
    pub use super::client::ClientError;
    pub use super::state::Applied;
}
pub use state::{StoreState, Validate, diff};
pub use status::{StoreReadiness, StoreStatus};

/// Recent rejections remembered for writers waiting on their records (bounded).
const REMEMBERED_REJECTIONS: usize = 64;
/// Pause between attempts to read the topic after a failure; doubles up to the maximum.
const RETRY_FIRST: Duration = Duration::from_millis(200);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Why a write through the store was not applied.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("the pool store topic cannot be written: {0}")]
    Unavailable(String),
    #[error("the change was written to the pool store topic but not applied here within {ms} ms")]
    NotApplied { ms: u128 },
    #[error("the pool store refused the change when it was applied: {0}")]
    Rejected(String),
    #[error("cannot read the PEM text of a certificate authority: {0}")]
    Pem(String),
}

/// One replica's view of the store. Shared by the tail, the IAM API and `/readyz`.
pub struct SharedStore {
    config: StoreConfig,
    reloader: Arc<Reloader>,
    metrics: Arc<Metrics>,
    /// The state as applied; the tail is its only writer, the API reads it to compute writes.
    state: Mutex<StoreState>,
    /// The next offset to apply: writers wait for it to pass their records.
    applied: watch::Sender<i64>,
    status: Arc<StoreStatus>,
    /// Records the tail refused, by offset, for writers waiting on them (bounded).
    rejected: Mutex<VecDeque<(i64, String)>>,
    /// The connection writes are produced on; one write at a time from this replica, so each
    /// is computed against a state that holds the previous one.
    writer: tokio::sync::Mutex<Option<Connection>>,
    /// The file's CAs, produced once when the topic has no record at all.
    seed: Mutex<Option<Vec<RawCertificateAuthority>>>,
}

impl std::fmt::Debug for SharedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStore")
            .field("topic", &self.config.topic)
            .finish_non_exhaustive()
    }
}

/// Validation of a candidate state: the configuration file with these CAs, loaded as a
/// reload would load it.
struct AsLoaded<'a>(&'a Reloader);

impl Validate for AsLoaded<'_> {
    fn validate(&self, cas: &[RawCertificateAuthority]) -> Result<(), String> {
        match self.0.check_authorities(cas.to_vec()) {
            Ok(_) => Ok(()),
            Err(ConfigError::Invalid { issues, .. }) => Err(issues
                .iter()
                .map(|i| format!("{}: {}", i.field, i.reason))
                .collect::<Vec<_>>()
                .join("; ")),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl SharedStore {
    /// The store of a proxy whose configuration file has `seed` as its CAs.
    pub fn new(
        config: StoreConfig,
        reloader: Arc<Reloader>,
        metrics: Arc<Metrics>,
        seed: Vec<RawCertificateAuthority>,
    ) -> Arc<Self> {
        metrics.store().set_up(&config.topic, false);
        Arc::new(Self {
            config,
            reloader,
            metrics,
            state: Mutex::new(StoreState::default()),
            applied: watch::channel(0).0,
            status: Arc::new(StoreStatus::default()),
            rejected: Mutex::new(VecDeque::with_capacity(REMEMBERED_REJECTIONS)),
            writer: tokio::sync::Mutex::new(None),
            seed: Mutex::new(Some(seed)),
        })
    }

    pub fn status(&self) -> &Arc<StoreStatus> {
        &self.status
    }

    /// Where the store's PEM text is written for the trust store (and where the IAM API
    /// writes posted PEM text in store mode).
    pub fn directory(&self) -> &Path {
        &self.config.directory
    }

    /// The applied CAs and pools as the configuration names them.
    pub fn authorities(&self) -> std::io::Result<Vec<RawCertificateAuthority>> {
        self.lock_state().raw_cas(&self.config.directory)
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, StoreState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Produce `changes` as one batch with `acks=all`, then wait until this replica's tail
    /// has applied them (at most `store.write_timeout_ms`).
    pub async fn write(&self, changes: Vec<Change>) -> Result<(), WriteError> {
        if changes.is_empty() {
            return Ok(());
        }
        let records: Vec<_> = changes.iter().map(Change::encode).collect();
        let mut slot = self.writer.lock().await;
        let mut last_error = String::new();
        let mut base = None;
        if slot.as_ref().is_some_and(Connection::login_expiring) {
            *slot = None;
        }
        // One retry on a fresh connection: the leader may have moved since the last write.
        for _ in 0..2 {
            let conn = match slot.as_mut() {
                Some(c) => c,
                None => match self.leader_connection().await {
                    Ok(c) => slot.insert(c),
                    Err(e) => {
                        last_error = e.to_string();
                        continue;
                    }
                },
            };
            match conn.produce(&self.config.topic, &records).await {
                Ok(offset) => {
                    base = Some(offset);
                    break;
                }
                Err(e) => {
                    last_error = e.to_string();
                    *slot = None;
                }
            }
        }
        drop(slot);
        let base = base.ok_or(WriteError::Unavailable(last_error))?;
        let end = base + records.len() as i64;
        wait_applied(self.applied.subscribe(), end, self.config.write_timeout).await?;
        let rejected = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
        let ours: Vec<&str> = rejected
            .iter()
            .filter(|(o, _)| (base..end).contains(o))
            .map(|(_, r)| r.as_str())
            .collect();
        if ours.is_empty() {
            Ok(())
        } else {
            Err(WriteError::Rejected(ours.join("; ")))
        }
    }

    /// A connection to the topic's partition leader; the topic is created when missing.
    async fn leader_connection(&self) -> Result<Connection, ClientError> {
        // The current generation's connector: its TLS settings and the proxy's own login.
        let generation = self.reloader.current();
        let upstream = &generation.upstream;
        let timeout = generation.config.upstream.connect_timeout;
        let bootstrap = self
            .config
            .bootstrap_servers
            .as_ref()
            .unwrap_or(&generation.config.upstream.bootstrap_servers);
        let mut errors = Vec::new();
        for (host, port) in bootstrap {
            let mut conn = match client::connect(upstream, timeout, host, *port).await {
                Ok(c) => c,
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            };
            let mut created = false;
            let mut why = String::from("the topic is being created");
            for _ in 0..50 {
                match conn.leader(&self.config.topic).await? {
                    Leader::At { host: h, port: p } => {
                        if conn.addr == format!("{h}:{p}") {
                            return Ok(conn);
                        }
                        return client::connect(upstream, timeout, &h, p).await;
                    }
                    Leader::NoTopic if !created => {
                        info!(topic = %self.config.topic, "pool store topic missing: creating it");
                        conn.create_topic(&self.config).await?;
                        created = true;
                    }
                    Leader::NoTopic => {}
                    Leader::None(code) => why = code.to_string(),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            return Err(ClientError::Protocol(format!(
                "topic `{}` has no partition leader ({why})",
                self.config.topic
            )));
        }
        Err(ClientError::Protocol(format!(
            "no bootstrap server answered: {}",
            errors.join("; ")
        )))
    }

    /// One connection's worth of tail: from the next offset to apply, until an error.
    async fn tail(self: &Arc<Self>) -> Result<(), ClientError> {
        let mut conn = self.leader_connection().await?;
        let mut end = conn.end_offset(&self.config.topic).await?;
        if end == 0 && self.seed(&mut conn).await? {
            end = conn.end_offset(&self.config.topic).await?;
        }
        // Caught up means: up to the end seen now, seed included.
        self.status.set_target(end);
        loop {
            if conn.login_expiring() {
                // A new login before the broker ends this one (a token signed again).
                conn = self.leader_connection().await?;
            }
            let from = *self.applied.borrow();
            let (records, next) = conn.fetch(&self.config.topic, from).await?;
            self.metrics.store().set_up(&self.config.topic, true);
            // Ready only once what was read is installed: the status advances after the apply.
            let install = !self.status.caught_up() && self.status.reaches_target(next);
            if install {
                self.note_unused_seed();
            }
            if !records.is_empty() || install {
                let this = self.clone();
                // Validation reads files and compiles filters; installing builds a generation.
                tokio::task::spawn_blocking(move || this.apply_records(records, install))
                    .await
                    .map_err(|e| ClientError::Protocol(format!("the apply task failed: {e}")))?;
            }
            self.status.advanced(next);
            end = end.max(next);
            self.metrics.store().set_lag(&self.config.topic, end - next);
            self.applied.send_replace(next);
        }
    }

    /// Apply fetched records one by one, then install the result if it changed (or if
    /// `install`: the first catch-up, when the store replaces the file's CAs even unchanged).
    fn apply_records(&self, records: Vec<kafka_protocol::records::Record>, install: bool) {
        let mut changed = install;
        let topic = self.config.topic.as_str();
        {
            let mut state = self.lock_state();
            let validate = AsLoaded(&self.reloader);
            for r in records {
                let offset = r.offset;
                let outcome = Change::decode(r.key.as_deref(), r.value.as_deref())
                    .and_then(|c| state.apply(c, &self.config.directory, &validate));
                match outcome {
                    Ok(state::Applied::Changed) => {
                        changed = true;
                        self.metrics.store().applied(topic);
                    }
                    Ok(state::Applied::Unchanged) => self.metrics.store().applied(topic),
                    Ok(state::Applied::Held) => {
                        self.metrics.store().applied(topic);
                        warn!(
                            offset,
                            "pool store record held: its certificate authority is not in the store (yet)"
                        );
                    }
                    Err(e) => {
                        self.metrics.store().rejected(topic, e.label());
                        error!(offset, reason = e.label(), error = %e, "pool store record skipped");
                        let mut rejected = self.rejected.lock().unwrap_or_else(|p| p.into_inner());
                        if rejected.len() == REMEMBERED_REJECTIONS {
                            rejected.pop_front();
                        }
                        rejected.push_back((offset, e.to_string()));
                    }
                }
            }
        }
        if changed {
            self.install();
        }
    }

    /// Make the applied state the CAs in force.
    fn install(&self) {
        let cas = match self.authorities() {
            Ok(cas) => cas,
            Err(e) => {
                error!(error = %e, dir = %self.config.directory.display(), "pool store: cannot write the CAs' PEM files");
                return;
            }
        };
        let (count, pools) = (
            cas.len(),
            cas.iter().map(|c| c.identity_pools.len()).sum::<usize>(),
        );
        match self.reloader.install_authorities(cas.clone()) {
            Ok(report) => {
                self.metrics.reload_succeeded();
                info!(
                    trigger = "pool store",
                    generation = report.generation,
                    closed = report.closed,
                    certificate_authorities = count,
                    pools,
                    "configuration reloaded"
                );
                state::remove_unreferenced(&self.config.directory, &cas);
            }
            Err(e) => {
                self.metrics.reload_failed();
                error!(trigger = "pool store", error = %e, "reload refused the pool store's state; previous configuration kept");
            }
        }
    }

    /// Say once that the file's CAs are not in force: the topic had records already.
    fn note_unused_seed(&self) {
        let seed = self.seed.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(seed) = seed.filter(|s| !s.is_empty()) {
            let ids: Vec<&str> = seed.iter().map(|c| c.id.as_str()).collect();
            info!(
                file_cas = ?ids,
                topic = %self.config.topic,
                "the configuration file's certificate_authorities are not in force: the pool store topic holds the CAs and pools"
            );
        }
    }

    /// Produce the file's CAs and pools into a topic that has never had a record; whether
    /// anything was produced. The seed is kept until it is produced.
    async fn seed(&self, conn: &mut Connection) -> Result<bool, ClientError> {
        let seed = self.seed.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Some(seed) = seed.filter(|s| !s.is_empty()) else {
            return Ok(false);
        };
        let changes = match diff(&[], &seed) {
            Ok(c) => c,
            Err(e) => {
                error!(error = %e, "pool store: cannot read the file's CAs to seed the empty topic");
                return Ok(false);
            }
        };
        let records: Vec<_> = changes.iter().map(Change::encode).collect();
        conn.produce(&self.config.topic, &records).await?;
        *self.seed.lock().unwrap_or_else(|p| p.into_inner()) = None;
        info!(records = records.len(), topic = %self.config.topic, "pool store topic was empty: seeded from the configuration file");
        Ok(true)
    }
}

/// Wait until the tail's next offset reaches `end` (every record before it applied or
/// refused), at most `timeout`.
async fn wait_applied(
    mut applied: watch::Receiver<i64>,
    end: i64,
    timeout: Duration,
) -> Result<(), WriteError> {
    let not_applied = || WriteError::NotApplied {
        ms: timeout.as_millis(),
    };
    tokio::time::timeout(timeout, applied.wait_for(|next| *next >= end))
        .await
        .map_err(|_| not_applied())?
        .map_err(|_| not_applied())?;
    Ok(())
}

/// Tail the topic for as long as the proxy runs: reconnect after any failure (with a growing
/// pause), from the next offset to apply, keeping the applied state meanwhile.
pub async fn run(store: Arc<SharedStore>) {
    let mut pause = RETRY_FIRST;
    loop {
        let started = tokio::time::Instant::now();
        if let Err(e) = store.tail().await {
            store.metrics.store().set_up(&store.config.topic, false);
            if store.status.caught_up() {
                warn!(error = %e, topic = %store.config.topic, "pool store topic cannot be read: serving the last applied state");
            } else {
                warn!(error = %e, topic = %store.config.topic, "pool store topic cannot be read yet: not ready");
            }
            store.status.failed(e.to_string());
        }
        if started.elapsed() > RETRY_MAX {
            pause = RETRY_FIRST;
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(RETRY_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_write_is_answered_when_the_tail_passes_it_and_not_after_the_timeout() {
        let (applied, _) = watch::channel(3_i64);
        let timeout = Duration::from_secs(10);
        let waiting = tokio::spawn(wait_applied(applied.subscribe(), 5, timeout));
        tokio::time::sleep(Duration::from_secs(1)).await;
        applied.send_replace(4);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(
            !waiting.is_finished(),
            "answered before its last record was applied"
        );
        applied.send_replace(5);
        assert!(waiting.await.unwrap().is_ok());

        let start = tokio::time::Instant::now();
        let e = wait_applied(applied.subscribe(), 6, timeout)
            .await
            .unwrap_err();
        assert_eq!(start.elapsed(), timeout);
        assert!(matches!(e, WriteError::NotApplied { ms: 10_000 }), "{e}");
    }
}
