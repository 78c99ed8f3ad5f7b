//! Configuration reloads: load the file again, build a new generation, publish it, and
//! re-evaluate the connections already open.
//!
//! Triggers are SIGHUP, the file watch, the admin API and the CRL refresh; they are serialized,
//! so an older configuration never lands last. Sessions see the new generation through a
//! `watch` channel: new sessions take it, open ones keep theirs (only their proxy ACLs follow).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::audit::AuditSink;
use crate::config::raw::RawCertificateAuthority;
use crate::config::{Config, ConfigError, ExistingConnections, ReloadableConfig, StartupConfig};
use crate::generation::{Generation, GenerationError};
use crate::metrics::Metrics;
use crate::oauth::KeyRing;
use crate::session::LiveConnections;
use crate::tls::crl::{FetchedCrls, Refreshed};
use crate::upstream::BrokerBook;

/// Why a reload was refused. The running configuration is untouched.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Build(#[from] GenerationError),
}

/// What a successful reload did.
#[derive(Debug, Default)]
pub struct ReloadReport {
    pub generation: u64,
    /// Live connections closed because the new configuration no longer admits them.
    pub closed: usize,
    /// Settings that changed but take effect only at restart.
    pub needs_restart: Vec<&'static str>,
}

/// Builds and publishes configuration generations. One per running proxy.
pub struct Reloader {
    /// The settings the proxy started with: what a reload cannot change is compared with them.
    startup: StartupConfig,
    /// The configuration file, read again at every reload.
    config_path: PathBuf,
    /// The current generation; sessions hold receivers.
    generation: watch::Sender<Arc<Generation>>,
    /// Node id → upstream address, learned from responses; survives reloads.
    book: Arc<BrokerBook>,
    /// CRLs fetched from `crl_url`s; survive reloads.
    crls: Arc<FetchedCrls>,
    /// The oauthbearer signing keys, when that is the mode at start; survive reloads (tokens
    /// signed before a reload must still verify after it).
    token_keys: Option<Arc<KeyRing>>,
    /// Admitted connections, re-evaluated when a generation is installed.
    live: Arc<LiveConnections>,
    audit: AuditSink,
    metrics: Arc<Metrics>,
    /// Serializes reloads (SIGHUP, file watch, admin API, CRL refresh): each one loads, builds
    /// and installs a generation as one step, so an older configuration never lands last.
    reloading: std::sync::Mutex<()>,
    /// The shared pool store's CAs and pools (the `store` module), in place of the file's
    /// `certificate_authorities` once the store has been read; `None` without a store.
    authorities: std::sync::Mutex<Option<Vec<RawCertificateAuthority>>>,
}

/// What a [`Reloader`] shares with the rest of the proxy.
pub struct ReloaderParts {
    pub config: Config,
    pub book: Arc<BrokerBook>,
    pub crls: Arc<FetchedCrls>,
    pub token_keys: Option<Arc<KeyRing>>,
    pub live: Arc<LiveConnections>,
    pub audit: AuditSink,
    pub metrics: Arc<Metrics>,
}

impl Reloader {
    /// Build generation 1 from the configuration the proxy starts with.
    pub fn new(parts: ReloaderParts) -> Result<Self, GenerationError> {
        let Config {
            source: config_path,
            startup,
            reloadable,
            ..
        } = parts.config;
        let first = Generation::build(
            1,
            reloadable,
            parts.book.clone(),
            &parts.crls,
            parts.token_keys.as_ref(),
        )?;
        let (generation, _) = watch::channel(Arc::new(first));
        Ok(Self {
            startup,
            config_path,
            generation,
            book: parts.book,
            crls: parts.crls,
            token_keys: parts.token_keys,
            live: parts.live,
            audit: parts.audit,
            metrics: parts.metrics,
            reloading: std::sync::Mutex::new(()),
            authorities: std::sync::Mutex::new(None),
        })
    }

    /// The generation new connections use.
    pub fn current(&self) -> Arc<Generation> {
        self.generation.borrow().clone()
    }

    /// Follow the current generation.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Generation>> {
        self.generation.subscribe()
    }

    /// The settings the proxy started with.
    pub fn startup(&self) -> &StartupConfig {
        &self.startup
    }

    /// The configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The admitted connections.
    pub fn live(&self) -> &LiveConnections {
        &self.live
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// Load the configuration file again and, if it is valid, make it the current generation.
    /// On any error the running configuration stays as it is.
    pub fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let authorities = self.store_authorities();
        self.reload_locked(authorities)
    }

    /// The store's CAs in force (`None`: the file's are).
    pub fn store_authorities(&self) -> Option<Vec<RawCertificateAuthority>> {
        self.authorities
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Would the configuration load with `authorities` in place of the file's CAs?
    pub fn check_authorities(
        &self,
        authorities: Vec<RawCertificateAuthority>,
    ) -> Result<Config, ConfigError> {
        crate::config::load_with_authorities(&self.config_path, authorities)
    }

    /// Make `authorities` (the shared pool store's) the CAs in force, with the file's other
    /// sections, as a reload does; they stay in force across later reloads. On error nothing
    /// changes.
    pub fn install_authorities(
        &self,
        authorities: Vec<RawCertificateAuthority>,
    ) -> Result<ReloadReport, ReloadError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let report = self.reload_locked(Some(authorities.clone()))?;
        *self.authorities.lock().unwrap_or_else(|p| p.into_inner()) = Some(authorities);
        Ok(report)
    }

    fn reload_locked(
        &self,
        authorities: Option<Vec<RawCertificateAuthority>>,
    ) -> Result<ReloadReport, ReloadError> {
        let path = &self.config_path;
        let config = match authorities {
            Some(cas) => crate::config::load_with_authorities(path, cas)?,
            None => crate::config::load(path)?,
        };
        for w in &config.warnings {
            warn!(file = %path.display(), "{w}");
        }
        let needs_restart = self.startup.restart_only_changes(&config.startup);
        // A CRL URL this configuration names for the first time is fetched before it applies.
        record_crl_fetches(&self.crls.refresh(&config.reloadable, true), &self.metrics);
        let closed = self.install(config.reloadable)?;
        Ok(ReloadReport {
            generation: self.current().number,
            closed,
            needs_restart,
        })
    }

    /// Fetch every CRL URL again; when a CRL changed, rebuild the trust store (same
    /// configuration) and re-evaluate live connections. Blocking: run it off the workers.
    pub fn refresh_crls(&self) -> Result<usize, GenerationError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let config = self.current().config.clone();
        let refreshed = self.crls.refresh(&config, false);
        record_crl_fetches(&refreshed, &self.metrics);
        if !refreshed.changed {
            return Ok(0);
        }
        self.install((*config).clone())
    }

    /// Fetch the CRL URLs never fetched so far (those just learned from client certificates);
    /// when one brings a CRL, rebuild the trust store and re-evaluate live connections.
    /// Blocking: run it off the workers.
    pub fn fetch_new_crls(&self) -> Result<usize, GenerationError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let config = self.current().config.clone();
        let refreshed = self.crls.refresh(&config, true);
        record_crl_fetches(&refreshed, &self.metrics);
        if !refreshed.changed {
            return Ok(0);
        }
        self.install((*config).clone())
    }

    /// The CRLs fetched so far; sessions report the distribution points they learn to it.
    pub fn crls(&self) -> &Arc<FetchedCrls> {
        &self.crls
    }

    /// Build a generation from `config`, make it current, and re-evaluate live connections
    /// (when configured); returns how many were closed.
    fn install(&self, config: ReloadableConfig) -> Result<usize, GenerationError> {
        let mode = config.reload.existing_connections;
        let number = self.current().number + 1;
        let next = Arc::new(Generation::build(
            number,
            config,
            self.book.clone(),
            &self.crls,
            self.token_keys.as_ref(),
        )?);
        self.generation.send_replace(next.clone());
        Ok(match mode {
            ExistingConnections::Reevaluate => self.live.reevaluate(&next, &self.audit),
            ExistingConnections::Keep => 0,
        })
    }
}

/// The CRL age metric of each CA whose CRL was just fetched.
pub fn record_crl_fetches(refreshed: &Refreshed, metrics: &Metrics) {
    for (ca_id, unix_seconds) in &refreshed.fetched {
        metrics.crl_fetched(ca_id, *unix_seconds);
    }
}

/// Reload and log the outcome (used by SIGHUP and the file watch); true when it took effect.
pub fn reload_and_log(ctx: &Reloader, trigger: &str) -> bool {
    let result = ctx.reload();
    let ok = result.is_ok();
    if ok {
        ctx.metrics().reload_succeeded();
    } else {
        ctx.metrics().reload_failed();
    }
    match result {
        Ok(report) => {
            info!(
                trigger,
                generation = report.generation,
                closed = report.closed,
                "configuration reloaded"
            );
            for setting in report.needs_restart {
                warn!(
                    setting,
                    "changed in the configuration; takes effect at the next restart"
                );
            }
        }
        Err(ReloadError::Config(e)) => {
            for line in e.issues() {
                error!(
                    trigger,
                    "reload refused, previous configuration kept: {line}"
                );
            }
        }
        Err(e) => error!(trigger, error = %e, "reload refused, previous configuration kept"),
    }
    ok
}

/// What the file watch compares: each file's modification time and size (`None`: unreadable).
type FileStamps = Vec<(PathBuf, Option<(std::time::SystemTime, u64)>)>;

fn stamps(files: Vec<PathBuf>) -> FileStamps {
    files
        .into_iter()
        .map(|f| {
            let stamp = std::fs::metadata(&f)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())));
            (f, stamp)
        })
        .collect()
}

/// Reload when the configuration file or any file it names changes (polled: works for
/// editors, `mv` into place and Kubernetes' symlink swaps alike). A half-written change fails
/// to load, is refused, and the next change is picked up: the old configuration serves
/// meanwhile.
pub async fn watch_files(ctx: Arc<Reloader>) {
    let watched = || ctx.current().config.watched_files(ctx.config_path());
    let mut seen = stamps(watched());
    loop {
        let Some(interval) = ctx.current().config.reload.watch_interval else {
            return;
        };
        tokio::time::sleep(interval).await;
        let now = stamps(watched());
        if now != seen {
            let ctx2 = ctx.clone();
            // Loading reads and parses files: keep it off the runtime's workers.
            let reloaded =
                tokio::task::spawn_blocking(move || reload_and_log(&ctx2, "file change"))
                    .await
                    .unwrap_or(false);
            // After a refusal remember what was seen, so the same broken change is not retried
            // until the files change again; after a reload, watch the new file list.
            seen = if reloaded { stamps(watched()) } else { now };
        }
    }
}

/// Fetch the CRL URLs again every `revocation.crl_refresh_interval_ms`.
pub async fn refresh_crls(ctx: Arc<Reloader>) {
    loop {
        let config = ctx.current().config.clone();
        if !ctx.crls.has_urls(&config) {
            // Nothing to fetch; a reload may add a URL, so look again later.
            tokio::time::sleep(Duration::from_secs(60)).await;
            continue;
        }
        tokio::time::sleep(config.revocation.crl_refresh_interval).await;
        let ctx2 = ctx.clone();
        match tokio::task::spawn_blocking(move || ctx2.refresh_crls()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(closed)) => info!(closed, "CRLs changed; live connections re-evaluated"),
            Ok(Err(e)) => error!(error = %e, "CRL refresh could not rebuild the trust store"),
            Err(_) => {}
        }
    }
}

/// Fetch each CRL distribution point as soon as a client certificate names it (see
/// [`FetchedCrls::discover`]), so a revoked certificate's connection is closed within a fetch.
pub async fn fetch_learned_crls(ctx: Arc<Reloader>) {
    loop {
        ctx.crls.discovered().await;
        let ctx2 = ctx.clone();
        match tokio::task::spawn_blocking(move || ctx2.fetch_new_crls()).await {
            Ok(Ok(0)) => {}
            Ok(Ok(closed)) => info!(closed, "CRLs learned; live connections re-evaluated"),
            Ok(Err(e)) => error!(error = %e, "a learned CRL could not rebuild the trust store"),
            Err(_) => {}
        }
    }
}
