//! A running proxy: binds its listeners, wires the parts together, and stops them in order.
//!
//! - [`listeners`]: the bootstrap and per-broker listeners and their accept loops;
//!   `admission` refuses clients over `limits.max_connections` at accept; `closed_while_down`
//!   closes a listener while everything it serves is down.
//! - [`crate::reload`]: configuration generations, published to sessions.
//! - [`crate::session`]: one task per accepted connection.
//!
//! Shutdown is injected ([`Server::run`] takes a future): listeners stop accepting, every
//! session stops reading new requests and delivers the answers already in flight, and the
//! server waits for them up to `limits.drain_timeout_ms` (of the configuration in force then).

mod admission;
mod closed_while_down;
pub mod fd_limit;
pub mod listeners;
pub mod proxy_protocol;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tracing::{error, info, warn};

use crate::admin::{self, AdminState, Readiness, UpstreamProbe};
use crate::audit::{AuditError, AuditReopen, AuditSink};
use crate::config::Config;
use crate::generation::GenerationError;
use crate::metrics::Metrics;
use crate::oauth::KeyRing;
use crate::reload::{Reloader, ReloaderParts};
use crate::session::{BrokerDirectory, LiveConnections, SessionHandles, broker_listeners};
use crate::store::SharedStore;
use crate::tls::crl::FetchedCrls;
use crate::upstream::{BrokerBook, Target};

use listeners::{Acceptor, accept_loop, serve_brokers};
pub use listeners::{ListenerError, ProxyAddressMapper};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Listen(#[from] ListenerError),
    #[error(transparent)]
    Generation(#[from] GenerationError),
    #[error(transparent)]
    Audit(#[from] AuditError),
    #[error(transparent)]
    OAuthKeys(#[from] crate::oauth::KeyRingError),
}

/// A bound, not yet running, proxy.
pub struct Server {
    reloader: Arc<Reloader>,
    acceptor: Arc<Acceptor>,
    serve_brokers: tokio::task::JoinHandle<()>,
    live: Arc<LiveConnections>,
    readiness: Arc<Readiness>,
    upstream_probe: Arc<UpstreamProbe>,
    token_keys: Option<Arc<KeyRing>>,
    bootstrap: TcpListener,
    admin: Option<TcpListener>,
    audit_task: Option<tokio::task::JoinHandle<()>>,
    audit_reopen: AuditReopen,
    /// The shared pool store, when configured (`store`).
    store: Option<Arc<SharedStore>>,
}

impl Server {
    /// Start the audit writer, build the first generation and bind the bootstrap listener.
    pub async fn bind(config: Config) -> Result<Self, ServerError> {
        let metrics = Arc::new(Metrics::new());
        let startup = &config.startup;
        let (audit, audit_task) = AuditSink::start(&startup.audit, metrics.clone())?;
        let audit_reopen = audit.reopener();
        let crls = first_crls(&config, &metrics).await;
        let token_keys = match &config.startup.oauth_keys {
            Some(keys) => Some(Arc::new(KeyRing::open(
                keys.clone(),
                Arc::new(crate::oauth::SystemClock),
            )?)),
            None => None,
        };
        let book = Arc::new(BrokerBook::default());
        let live = Arc::new(LiveConnections::default());
        let listener_config = config.startup.listener.clone();
        let (max_connections, max_broker_listeners, max_buffered_request_bytes) = (
            config.startup.limits.max_connections,
            config.startup.limits.max_broker_listeners,
            config.startup.limits.max_buffered_request_bytes,
        );
        let admin_addr = config.startup.admin.as_ref().map(|a| a.listen);
        let upstream_probe = Arc::new(UpstreamProbe::from_config(&config.reloadable.upstream));
        let store_config = config.startup.store.clone();
        // The file's CAs seed an empty store topic (the file was just loaded: it reads).
        let seed = match &store_config {
            Some(_) => crate::config::read_raw(&config.source)
                .map(|raw| raw.certificate_authorities)
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let reloader = Arc::new(Reloader::new(ReloaderParts {
            config,
            book: book.clone(),
            crls,
            token_keys: token_keys.clone(),
            live: live.clone(),
            audit: audit.clone(),
            metrics: metrics.clone(),
        })?);
        let readiness = Arc::new(Readiness::new());
        readiness.set_config_loaded(true);
        let store =
            store_config.map(|c| SharedStore::new(c, reloader.clone(), metrics.clone(), seed));
        if let Some(store) = &store {
            readiness.set_store(store.status().clone());
        }

        let (listeners, serve_requests) = broker_listeners();
        let mapper = Arc::new(ProxyAddressMapper {
            listener: listener_config.clone(),
        });
        let brokers = BrokerDirectory { book, listeners };
        let handles = SessionHandles::new(
            reloader.subscribe(),
            audit,
            metrics,
            brokers,
            mapper,
            (live.clone(), reloader.crls().clone()),
            max_buffered_request_bytes,
        )
        .with_sni(listener_config.sni.clone());
        let handles = Arc::new(handles);
        let (shutdown, _) = broadcast::channel(1);
        let acceptor = Acceptor::new(handles, max_connections, shutdown)
            .with_proxy_protocol(listener_config.proxy_protocol.clone());
        let acceptor = Arc::new(acceptor);
        let serve_brokers = tokio::spawn(serve_brokers(
            acceptor.clone(),
            listener_config.clone(),
            max_broker_listeners,
            serve_requests,
        ));

        let bootstrap = bind(listener_config.bootstrap).await?;
        let admin = match admin_addr {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        readiness.set_listeners_bound(true);
        Ok(Self {
            reloader,
            acceptor,
            serve_brokers,
            live,
            readiness,
            upstream_probe,
            token_keys,
            bootstrap,
            admin,
            audit_task,
            audit_reopen,
            store,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.bootstrap.local_addr().ok()
    }

    /// Where the admin server listens, when configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().and_then(|a| a.local_addr().ok())
    }

    /// Reloads and the configuration in force.
    pub fn reloader(&self) -> &Arc<Reloader> {
        &self.reloader
    }

    /// What re-opens the audit file (SIGHUP, after logrotate moved it).
    pub fn audit_reopen(&self) -> &AuditReopen {
        &self.audit_reopen
    }

    /// The admitted connections.
    pub fn live(&self) -> &Arc<LiveConnections> {
        &self.live
    }

    /// Serve until `shutdown` completes, then drain.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server {
            reloader,
            acceptor,
            serve_brokers,
            live: _,
            readiness,
            upstream_probe,
            token_keys,
            bootstrap,
            admin,
            audit_task,
            audit_reopen: _,
            store,
        } = self;
        let admin_task = admin.map(|listener| {
            let state = AdminState {
                metrics: acceptor.handles.metrics.clone(),
                readiness: readiness.clone(),
                upstream: upstream_probe.clone(),
                iam: Some(Arc::new(
                    admin::iam::IamApi::new(reloader.clone()).with_store(store.clone()),
                )),
                jwks: token_keys.clone(),
            };
            tokio::spawn(serve_admin(listener, state, acceptor.shutdown.subscribe()))
        });
        if let Ok(addr) = bootstrap.local_addr() {
            let listener = &reloader.startup().listener;
            match &listener.sni {
                Some(sni) => info!(
                    %addr,
                    bootstrap = %sni.bootstrap,
                    brokers = %sni.broker_pattern,
                    advertised_port = sni.advertised_port,
                    "SNI listener ready: every broker on this port, routed by TLS server name"
                ),
                None => {
                    let advertised_host = listener.advertised_host.as_deref().unwrap_or_default();
                    info!(%addr, %advertised_host, "bootstrap listener ready");
                }
            }
        }
        let accept = tokio::spawn(accept_loop(acceptor.clone(), bootstrap, Target::Bootstrap));
        let watch = tokio::spawn(crate::reload::watch_files(reloader.clone()));
        let crl_refresh = tokio::spawn(crate::reload::refresh_crls(reloader.clone()));
        let expiry = tokio::spawn(crate::expiry::watch(reloader.clone()));
        let learned_crls = tokio::spawn(crate::reload::fetch_learned_crls(reloader.clone()));
        let probe_targets = tokio::spawn(follow_upstream(reloader.clone(), upstream_probe));
        let repeated_warnings = tokio::spawn(crate::log_limit::flush_periodically());
        let store_tail = store.map(|s| tokio::spawn(crate::store::run(s)));
        let key_rotation = token_keys.map(|keys| {
            let mut stop = acceptor.shutdown.subscribe();
            tokio::spawn(crate::oauth::run_rotation(keys, async move {
                let _ = stop.recv().await;
            }))
        });
        shutdown.await;
        watch.abort();
        crl_refresh.abort();
        expiry.abort();
        learned_crls.abort();
        probe_targets.abort();
        repeated_warnings.abort();
        if let Some(task) = store_tail {
            task.abort();
        }
        info!("shutting down: no new connections; draining in-flight requests");
        readiness.set_shutting_down(true);
        let _ = acceptor.shutdown.send(());
        let _ = accept.await;
        let _ = serve_brokers.await;
        if let Some(task) = key_rotation {
            // A tick in progress finishes its file writes; the loop then sees the signal.
            let _ = task.await;
        }
        // The configuration in force now: a reload may have changed the drain timeout.
        drain(&acceptor, reloader.current().config.limits.drain_timeout).await;
        if let Some(task) = admin_task {
            let _ = tokio::time::timeout(admin::DRAIN_TIMEOUT, task).await;
        }
        drop((reloader, acceptor));
        if let Some(task) = audit_task {
            // Every connection task has ended or been abandoned; give the writer a moment to
            // flush what it has.
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        Ok(())
    }
}

/// Point `/readyz`'s upstream check at the upstream of each new generation.
async fn follow_upstream(reloader: Arc<Reloader>, probe: Arc<UpstreamProbe>) {
    let mut generations = reloader.subscribe();
    while generations.changed().await.is_ok() {
        let generation = generations.borrow_and_update().clone();
        let upstream = &generation.config.upstream;
        probe.set_targets(upstream.bootstrap_servers.clone(), upstream.connect_timeout);
    }
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ListenerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ListenerError::Bind { addr, source })
}

/// The CRLs of every `crl_url`, fetched once before the first generation is built (blocking
/// HTTP, bounded by `crl_fetch_timeout_ms` per URL).
async fn first_crls(config: &Config, metrics: &Arc<Metrics>) -> Arc<FetchedCrls> {
    let crls = Arc::new(FetchedCrls::default());
    let (fetched, reloadable, m) = (crls.clone(), config.reloadable.clone(), metrics.clone());
    let _ = tokio::task::spawn_blocking(move || {
        crate::reload::record_crl_fetches(&fetched.refresh(&reloadable, true), &m);
    })
    .await;
    crls
}

/// The admin server until shutdown.
async fn serve_admin(listener: TcpListener, state: AdminState, mut stop: broadcast::Receiver<()>) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "admin server ready (/healthz, /readyz, /metrics, /iam/v2)");
    }
    let stopped = async move {
        let _ = stop.recv().await;
    };
    if let Err(e) = admin::serve(listener, state, stopped).await {
        error!(error = %e, "admin server failed");
    }
}

/// Wait up to `timeout` for every session to end (each holds a connection permit).
async fn drain(acceptor: &Acceptor, timeout: Duration) {
    let max = acceptor.max_connections;
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    match tokio::time::timeout(timeout, acceptor.connections.acquire_many(all)).await {
        Ok(_) => info!("all connections drained"),
        Err(_) => warn!(
            open = max - acceptor.connections.available_permits(),
            "drain timeout: closing remaining connections"
        ),
    }
}
