//! Listeners and the shared state of a running proxy.
//!
//! The bootstrap listener is bound at start. A listener per broker (port-per-broker: node N on
//! `first_port + N`, or an explicit port) is bound the first time that broker appears in a
//! response, *before* the response reaches the client that will dial it. Every accepted socket
//! becomes a [`connection::serve`] task.
//!
//! Shutdown is injected ([`Server::run`] takes a future): listeners stop accepting, every
//! connection stops reading new requests and delivers the answers already in flight, and the
//! server waits for them up to [`DRAIN_TIMEOUT`].

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{Mutex, Semaphore, broadcast};
use tracing::{error, info, warn};

use crate::audit::{AuditError, AuditSink};
use crate::config::{BrokerPorts, Config};
use crate::connection;
use crate::kafka::header::ProtocolError;
use crate::kafka::rewrite::{AddressMapper, BrokerAddress};
use crate::tls::{TlsAcceptorFactory, TrustStore};
use crate::upstream::{BrokerBook, Target, UpstreamConnector, UpstreamError};

/// How long shutdown waits for connections to deliver the answers they owe.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

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
        let max = ctx.config.limits.max_broker_listeners;
        if bound.len() >= max {
            return Err(ListenerError::TooMany { node_id, max });
        }
        let port = ctx
            .config
            .listener
            .broker_ports
            .port_for(node_id)
            .ok_or(ListenerError::NoPort(node_id))?;
        let addr = SocketAddr::new(ctx.config.listener.broker_bind, port);
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

/// Everything connections share. One per running proxy.
pub struct ProxyContext {
    pub config: Arc<Config>,
    pub tls: TlsAcceptorFactory,
    pub upstream: UpstreamConnector,
    pub mapper: ProxyAddressMapper,
    pub audit: AuditSink,
    pub listeners: ListenerRegistry,
    /// Bounds concurrent connections (`limits.max_connections`); a connection holds a permit.
    connections: Arc<Semaphore>,
    /// Tells accept loops and connections to stop.
    shutdown: broadcast::Sender<()>,
    next_id: AtomicU64,
}

impl ProxyContext {
    pub fn new(config: Config, audit: AuditSink) -> Result<Arc<Self>, ServerError> {
        let provider = crate::tls::provider();
        let trust = TrustStore::new(
            &config.authorities,
            config.limits.pool_cache_entries,
            provider.clone(),
        )?;
        let tls = TlsAcceptorFactory::new(
            Arc::new(trust),
            config.server_tls.certified_key.clone(),
            config.server_tls.tls13_only,
        );
        let upstream =
            UpstreamConnector::new(&config.upstream, Arc::new(BrokerBook::default()), provider)?;
        let mapper = ProxyAddressMapper {
            advertised_host: config.listener.advertised_host.clone(),
            ports: config.listener.broker_ports.clone(),
        };
        let (shutdown, _) = broadcast::channel(1);
        Ok(Arc::new(Self {
            connections: Arc::new(Semaphore::new(config.limits.max_connections)),
            config: Arc::new(config),
            tls,
            upstream,
            mapper,
            audit,
            listeners: ListenerRegistry::default(),
            shutdown,
            next_id: AtomicU64::new(1),
        }))
    }

    /// A short id for logs and audit records, unique within this process.
    pub fn next_connection_id(&self) -> String {
        format!("conn-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }
}

/// A bound, not yet running, proxy.
pub struct Server {
    ctx: Arc<ProxyContext>,
    bootstrap: TcpListener,
    audit_task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Start the audit writer and bind the bootstrap listener.
    pub async fn bind(config: Config) -> Result<Self, ServerError> {
        let (audit, audit_task) = AuditSink::start(&config.audit)?;
        let addr = config.listener.bootstrap;
        let ctx = ProxyContext::new(config, audit)?;
        let bootstrap = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        Ok(Self {
            ctx,
            bootstrap,
            audit_task,
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.bootstrap.local_addr().ok()
    }

    pub fn context(&self) -> &Arc<ProxyContext> {
        &self.ctx
    }

    /// Serve until `shutdown` completes, then drain.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server {
            ctx,
            bootstrap,
            audit_task,
        } = self;
        if let Ok(addr) = bootstrap.local_addr() {
            info!(%addr, advertised_host = %ctx.config.listener.advertised_host, "bootstrap listener ready");
        }
        let accept = tokio::spawn(accept_loop(ctx.clone(), bootstrap, Target::Bootstrap));
        shutdown.await;
        info!("shutting down: no new connections; draining in-flight requests");
        let _ = ctx.shutdown.send(());
        let _ = accept.await;
        let max = ctx.config.limits.max_connections;
        let all = u32::try_from(max).unwrap_or(u32::MAX);
        match tokio::time::timeout(DRAIN_TIMEOUT, ctx.connections.acquire_many(all)).await {
            Ok(_) => info!("all connections drained"),
            Err(_) => warn!(
                open = max - ctx.connections.available_permits(),
                "drain timeout: closing remaining connections"
            ),
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
                max = ctx.config.limits.max_connections,
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
