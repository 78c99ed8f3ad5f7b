//! Listeners and the shared state of a running proxy.
//!
//! The bootstrap listener is bound at start. A listener per broker (port-per-broker: node N on
//! `first_port + N`, or an explicit port) is bound the first time that broker appears in a
//! response, *before* the response reaches the client that will dial it. Every accepted socket
//! becomes a [`connection::serve`] task.
//!
//! Shutdown is injected ([`Server::run`] takes a future): listeners stop accepting, every
//! connection stops reading new requests and delivers the answers already in flight, and the
//! server waits for them up to `limits.drain_timeout_ms`.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rustls_pki_types::{CertificateDer, UnixTime};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Semaphore, broadcast, oneshot};
use tracing::{error, info, warn};

use std::sync::RwLock;

use crate::admin::{self, AdminState, Readiness, UpstreamProbe};
use crate::audit::{AttemptOutcome, AuditError, AuditSink, AuthenticationAttempt};
use crate::config::{
    BrokerPorts, Config, ExistingConnections, ReloadableConfig, StartupConfig, UpstreamIdentity,
};
use crate::connection;
use crate::kafka::header::ProtocolError;
use crate::kafka::rewrite::{AddressMapper, BrokerAddress};
use crate::metrics::Metrics;
use crate::oauth::TokenIssuer;
use crate::tls::crl::FetchedCrls;
use crate::tls::{TlsAcceptorFactory, TrustStore, Verdict};
use crate::upstream::{BrokerBook, Target, UpstreamConnector, UpstreamError};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Trust(#[from] crate::tls::trust::TrustError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    OAuthKeys(#[from] crate::oauth::KeyRingError),
    /// The key ring is made at start: a reload cannot switch oauthbearer on.
    #[error(
        "upstream.identity.mode: oauthbearer was not the mode at start; restart the proxy to \
         switch to it (its signing keys and JWKS are set up at start)"
    )]
    OAuthNeedsRestart,
}

#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("no proxy port for node id {0}: add it to listener.broker_ports.node_ports")]
    NoPort(i32),
    #[error(
        "not opening a listener for node id {node_id}: limits.max_broker_listeners ({max}) reached"
    )]
    TooMany { node_id: i32, max: usize },
    #[error(transparent)]
    Bind(#[from] ServerError),
}

/// Broker address → the proxy's address for it (port-per-broker).
#[derive(Debug, Clone)]
pub struct ProxyAddressMapper {
    pub advertised_host: String,
    pub ports: BrokerPorts,
}

impl AddressMapper for ProxyAddressMapper {
    fn client_address(&self, upstream: &BrokerAddress) -> Result<(String, i32), ProtocolError> {
        match self.ports.port_for(upstream.node_id) {
            Some(port) => Ok((self.advertised_host.clone(), i32::from(port))),
            None => Err(ProtocolError::UnmappedBroker {
                node_id: upstream.node_id,
                host: upstream.host.clone(),
                port: upstream.port,
            }),
        }
    }
}

/// The per-broker listeners opened so far.
#[derive(Default)]
pub struct ListenerRegistry {
    /// Held across `bind` so two connections discovering the same broker bind it once.
    bound: Mutex<HashMap<i32, SocketAddr>>,
}

impl ListenerRegistry {
    /// Make sure the proxy listens for `node_id`; returns its address.
    pub async fn ensure(
        &self,
        ctx: &Arc<ProxyContext>,
        node_id: i32,
    ) -> Result<SocketAddr, ListenerError> {
        let mut bound = self.bound.lock().await;
        if let Some(addr) = bound.get(&node_id) {
            return Ok(*addr);
        }
        let max = ctx.startup.limits.max_broker_listeners;
        if bound.len() >= max {
            return Err(ListenerError::TooMany { node_id, max });
        }
        let port = ctx
            .startup
            .listener
            .broker_ports
            .port_for(node_id)
            .ok_or(ListenerError::NoPort(node_id))?;
        let addr = SocketAddr::new(ctx.startup.listener.broker_bind, port);
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local = listener.local_addr().unwrap_or(addr);
        info!(node_id, addr = %local, "serving broker");
        tokio::spawn(accept_loop(ctx.clone(), listener, Target::Node(node_id)));
        bound.insert(node_id, local);
        Ok(local)
    }
}

/// What a configuration load produces and a reload replaces as a whole: the reloadable
/// configuration, the TLS acceptor (server key and trusted CAs with their pools) and the
/// upstream connector. A connection takes the current generation when it starts and keeps it
/// to the end.
pub struct Generation {
    pub number: u64,
    /// Only what a reload may change: startup settings are on [`ProxyContext::startup`].
    pub config: Arc<ReloadableConfig>,
    pub tls: TlsAcceptorFactory,
    pub upstream: UpstreamConnector,
}

impl Generation {
    fn build(
        number: u64,
        config: ReloadableConfig,
        book: Arc<BrokerBook>,
        crls: &FetchedCrls,
        token_keys: Option<&Arc<crate::oauth::KeyRing>>,
    ) -> Result<Self, ServerError> {
        let provider = crate::tls::provider();
        let trust = TrustStore::new(
            &config.authorities,
            crls,
            config.limits.pool_cache_entries,
            provider.clone(),
        )?;
        let tls = TlsAcceptorFactory::new(
            Arc::new(trust),
            config.server_tls.certified_key.clone(),
            config.server_tls.tls13_only,
        );
        let mut upstream = UpstreamConnector::new(&config.upstream, book, provider)?;
        if let UpstreamIdentity::OAuthBearer { token } = &config.upstream.identity {
            let keys = token_keys.ok_or(ServerError::OAuthNeedsRestart)?;
            upstream = upstream.with_token_issuer(TokenIssuer::new(token.clone(), keys.clone()));
        }
        Ok(Self {
            number,
            config: Arc::new(config),
            tls,
            upstream,
        })
    }
}

/// Everything connections share. One per running proxy.
pub struct ProxyContext {
    /// The configuration the proxy started with: listener addresses, broker ports,
    /// `max_connections`, audit, log and the admin server are fixed for the life of the process.
    pub startup: StartupConfig,
    /// The configuration file: every reload reads it again.
    config_path: PathBuf,
    /// The current generation; replaced whole by [`ProxyContext::reload`].
    generation: RwLock<Arc<Generation>>,
    pub mapper: ProxyAddressMapper,
    pub audit: AuditSink,
    pub listeners: ListenerRegistry,
    pub metrics: Arc<Metrics>,
    /// What `/readyz` reports; set as the proxy starts and stops.
    pub readiness: Arc<Readiness>,
    /// `/readyz`'s upstream check; retargeted when a reload changes the upstream.
    pub upstream_probe: Arc<UpstreamProbe>,
    /// Admitted connections, for re-evaluation on reload.
    pub live: LiveConnections,
    /// Node id → upstream address, learned from responses; survives reloads.
    book: Arc<BrokerBook>,
    /// CRLs fetched from `crl_url`s; survive reloads.
    crls: Arc<FetchedCrls>,
    /// The oauthbearer signing keys, when that is the mode at start; survive reloads (tokens
    /// signed before a reload must still verify after it). Published by the admin server.
    pub token_keys: Option<Arc<crate::oauth::KeyRing>>,
    /// Serializes reloads (SIGHUP, file watch, admin API, CRL refresh): each one loads, builds
    /// and installs a generation as one step, so an older configuration never lands last.
    reloading: std::sync::Mutex<()>,
    /// Bounds concurrent connections (`limits.max_connections`); a connection holds a permit.
    connections: Arc<Semaphore>,
    /// Tells accept loops and connections to stop.
    shutdown: broadcast::Sender<()>,
    next_id: AtomicU64,
    /// The current generation's number, readable without the lock: connections compare it on
    /// every request to notice a reload (proxy ACLs are re-derived then).
    generation_number: AtomicU64,
}

/// Why a reload was refused. The running configuration is untouched.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Build(#[from] ServerError),
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

impl ProxyContext {
    /// `crls`: the CRLs fetched so far (see [`FetchedCrls::refresh`]).
    pub fn new(
        config: Config,
        audit: AuditSink,
        metrics: Arc<Metrics>,
        crls: Arc<FetchedCrls>,
    ) -> Result<Arc<Self>, ServerError> {
        let Config {
            source: config_path,
            startup,
            reloadable,
            warnings: _,
        } = config;
        let book = Arc::new(BrokerBook::default());
        let upstream_probe = Arc::new(UpstreamProbe::from_config(&reloadable.upstream));
        let mapper = ProxyAddressMapper {
            advertised_host: startup.listener.advertised_host.clone(),
            ports: startup.listener.broker_ports.clone(),
        };
        let token_keys = match &startup.oauth_keys {
            Some(keys) => Some(Arc::new(crate::oauth::KeyRing::open(
                keys.clone(),
                Arc::new(crate::oauth::SystemClock),
            )?)),
            None => None,
        };
        let generation =
            Generation::build(1, reloadable, book.clone(), &crls, token_keys.as_ref())?;
        let (shutdown, _) = broadcast::channel(1);
        Ok(Arc::new(Self {
            connections: Arc::new(Semaphore::new(startup.limits.max_connections)),
            startup,
            config_path,
            generation: RwLock::new(Arc::new(generation)),
            mapper,
            audit,
            listeners: ListenerRegistry::default(),
            metrics,
            readiness: Arc::new(Readiness::new()),
            upstream_probe,
            live: LiveConnections::default(),
            book,
            crls,
            token_keys,
            reloading: std::sync::Mutex::new(()),
            shutdown,
            next_id: AtomicU64::new(1),
            generation_number: AtomicU64::new(1),
        }))
    }

    /// The generation new connections use.
    pub fn current(&self) -> Arc<Generation> {
        match self.generation.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The configuration file the proxy was started with (and reloads).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The number of the current generation (a lock-free read).
    pub fn generation_number(&self) -> u64 {
        self.generation_number.load(Ordering::Acquire)
    }

    /// A short id for logs and audit records, unique within this process.
    pub fn next_connection_id(&self) -> String {
        format!("conn-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Load the configuration file again and, if it is valid, make it the current generation.
    /// On any error the running configuration stays as it is.
    pub fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let path = &self.config_path;
        let config = crate::config::load(path)?;
        for w in &config.warnings {
            warn!(file = %path.display(), "{w}");
        }
        let needs_restart = self.startup.restart_only_changes(&config.startup);
        // A CRL URL this configuration names for the first time is fetched before it applies.
        self.crls
            .refresh(&config.reloadable, true, Some(&self.metrics));
        let closed = self.install(config.reloadable)?;
        Ok(ReloadReport {
            generation: self.current().number,
            closed,
            needs_restart,
        })
    }

    /// Fetch every CRL URL again; when a CRL changed, rebuild the trust store (same
    /// configuration) and re-evaluate live connections. Blocking: run it off the workers.
    pub fn refresh_crls(&self) -> Result<usize, ServerError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let config = self.current().config.clone();
        if !self.crls.refresh(&config, false, Some(&self.metrics)) {
            return Ok(0);
        }
        self.install((*config).clone())
    }

    /// Build a generation from `config`, make it current, and re-evaluate live connections
    /// (when configured); returns how many were closed.
    fn install(&self, config: ReloadableConfig) -> Result<usize, ServerError> {
        let mode = config.reload.existing_connections;
        let next = {
            let number = self.current().number + 1;
            Arc::new(Generation::build(
                number,
                config,
                self.book.clone(),
                &self.crls,
                self.token_keys.as_ref(),
            )?)
        };
        match self.generation.write() {
            Ok(mut g) => *g = next.clone(),
            Err(poisoned) => *poisoned.into_inner() = next.clone(),
        }
        self.generation_number.store(next.number, Ordering::Release);
        self.upstream_probe.set_targets(
            next.config.upstream.bootstrap_servers.clone(),
            next.config.upstream.connect_timeout,
        );
        Ok(match mode {
            ExistingConnections::Reevaluate => self.live.reevaluate(&next, &self.audit),
            ExistingConnections::Keep => 0,
        })
    }
}

/// One admitted connection, as re-evaluation needs it.
struct LiveConnection {
    connection_id: String,
    peer: SocketAddr,
    listener: String,
    /// The client's chain as presented: leaf first.
    chain: Arc<Vec<CertificateDer<'static>>>,
    pools: Vec<String>,
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
        identity: &crate::connection::ConnectionIdentity,
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
                    listener: listener.to_string(),
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

    pub fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Re-check every live connection against `generation`; close (and audit) those it no
    /// longer admits. Returns how many were closed.
    fn reevaluate(&self, generation: &Generation, audit: &AuditSink) -> usize {
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
                        listener: &live.listener,
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

/// A bound, not yet running, proxy.
pub struct Server {
    ctx: Arc<ProxyContext>,
    bootstrap: TcpListener,
    admin: Option<TcpListener>,
    audit_task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Start the audit writer and bind the bootstrap listener.
    pub async fn bind(config: Config) -> Result<Self, ServerError> {
        let metrics = Arc::new(Metrics::new());
        let (audit, audit_task) = AuditSink::start(&config.startup.audit, metrics.clone())?;
        let addr = config.startup.listener.bootstrap;
        let admin_addr = config.startup.admin.as_ref().map(|a| a.listen);
        let crls = Arc::new(FetchedCrls::default());
        {
            // Blocking HTTP, bounded by crl_fetch_timeout_ms per URL.
            let (crls, config, m) = (crls.clone(), config.reloadable.clone(), metrics.clone());
            let _ =
                tokio::task::spawn_blocking(move || crls.refresh(&config, true, Some(&m))).await;
        }
        let ctx = ProxyContext::new(config, audit, metrics, crls)?;
        ctx.readiness.set_config_loaded(true);
        let bootstrap = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let admin = match admin_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .map_err(|source| ServerError::Bind { addr, source })?,
            ),
            None => None,
        };
        ctx.readiness.set_listeners_bound(true);
        Ok(Self {
            ctx,
            bootstrap,
            admin,
            audit_task,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.bootstrap.local_addr().ok()
    }

    /// Where the admin server listens, when configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|a| a.local_addr().ok())
    }

    pub fn context(&self) -> &Arc<ProxyContext> {
        &self.ctx
    }

    /// Serve until `shutdown` completes, then drain.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server {
            ctx,
            bootstrap,
            admin,
            audit_task,
        } = self;
        let admin_task = admin.map(|listener| {
            if let Ok(addr) = listener.local_addr() {
                info!(%addr, "admin server ready (/healthz, /readyz, /metrics, /iam/v2)");
            }
            let state = AdminState {
                metrics: ctx.metrics.clone(),
                readiness: ctx.readiness.clone(),
                upstream: ctx.upstream_probe.clone(),
                iam: Some(Arc::new(admin::iam::IamApi::new(ctx.clone()))),
                jwks: ctx.token_keys.clone(),
            };
            let mut stop = ctx.shutdown.subscribe();
            tokio::spawn(async move {
                let stopped = async move {
                    let _ = stop.recv().await;
                };
                if let Err(e) = admin::serve(listener, state, stopped).await {
                    error!(error = %e, "admin server failed");
                }
            })
        });
        if let Ok(addr) = bootstrap.local_addr() {
            info!(%addr, advertised_host = %ctx.startup.listener.advertised_host, "bootstrap listener ready");
        }
        let accept = tokio::spawn(accept_loop(ctx.clone(), bootstrap, Target::Bootstrap));
        let watch = tokio::spawn(watch_files(ctx.clone()));
        let crl_refresh = tokio::spawn(refresh_crls(ctx.clone()));
        let key_rotation = ctx.token_keys.clone().map(|keys| {
            let mut stop = ctx.shutdown.subscribe();
            tokio::spawn(crate::oauth::run_rotation(keys, async move {
                let _ = stop.recv().await;
            }))
        });
        shutdown.await;
        watch.abort();
        crl_refresh.abort();
        info!("shutting down: no new connections; draining in-flight requests");
        ctx.readiness.set_shutting_down(true);
        let _ = ctx.shutdown.send(());
        let _ = accept.await;
        if let Some(task) = key_rotation {
            // A tick in progress finishes its file writes; the loop then sees the signal.
            let _ = task.await;
        }
        let max = ctx.startup.limits.max_connections;
        let all = u32::try_from(max).unwrap_or(u32::MAX);
        // The current generation's: a reload may have changed it since start.
        let drain = ctx.current().config.limits.drain_timeout;
        match tokio::time::timeout(drain, ctx.connections.acquire_many(all)).await {
            Ok(_) => info!("all connections drained"),
            Err(_) => warn!(
                open = max - ctx.connections.available_permits(),
                "drain timeout: closing remaining connections"
            ),
        }
        if let Some(task) = admin_task {
            let _ = tokio::time::timeout(admin::DRAIN_TIMEOUT, task).await;
        }
        drop(ctx);
        if let Some(task) = audit_task {
            // Every connection task has ended or been abandoned; give the writer a moment to
            // flush what it has.
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        Ok(())
    }
}

/// Reload and log the outcome (used by SIGHUP and the file watch); true when it took effect.
pub fn reload_and_log(ctx: &ProxyContext, trigger: &str) -> bool {
    let result = ctx.reload();
    let ok = result.is_ok();
    if ok {
        ctx.metrics.reload_succeeded();
    } else {
        ctx.metrics.reload_failed();
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
async fn watch_files(ctx: Arc<ProxyContext>) {
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
async fn refresh_crls(ctx: Arc<ProxyContext>) {
    loop {
        let config = ctx.current().config.clone();
        if config.authorities.iter().all(|a| a.crl_url.is_none()) {
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

/// Accept connections on one listener until shutdown.
///
/// Boxed with an explicit `Send` type because it is recursive through the connection task
/// (a connection discovering a broker opens that broker's listener).
fn accept_loop(
    ctx: Arc<ProxyContext>,
    listener: TcpListener,
    target: Target,
) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(accept_connections(ctx, listener, target))
}

async fn accept_connections(ctx: Arc<ProxyContext>, listener: TcpListener, target: Target) {
    let mut shutdown = ctx.shutdown.subscribe();
    loop {
        let permit = tokio::select! {
            p = ctx.connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.recv() => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.recv() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                error!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if ctx.connections.available_permits() == 0 {
            warn!(
                max = ctx.startup.limits.max_connections,
                "connection limit reached; further clients wait in the accept queue"
            );
        }
        let conn_ctx = ctx.clone();
        let conn_shutdown = ctx.shutdown.subscribe();
        tokio::spawn(async move {
            connection::serve(conn_ctx, tcp, peer, target, conn_shutdown).await;
            drop(permit);
        });
    }
}
