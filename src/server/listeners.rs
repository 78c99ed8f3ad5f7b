//! The proxy's listeners: the bootstrap listener, bound at start, and one per broker
//! (port-per-broker: node N on `first_port + N`, or an explicit port), bound the first time that
//! broker appears in an answer — *before* the answer reaches the client that will dial it.
//! Sessions ask for a broker's listener through [`crate::session::BrokerListeners`]; this
//! module serves those requests and runs the accept loops. With `listener.sni` no broker
//! listener is bound: every broker is served on the bootstrap listener, and each session
//! routes itself by the ClientHello's server name (`Session::run`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc};
use tracing::{error, info};

use super::admission::admit;
use super::closed_while_down;

use crate::config::{ListenerConfig, ProxyProtocolConfig};
use crate::kafka::ProtocolError;
use crate::kafka::rewrite::{AddressMapper, BrokerAddress};
use crate::log_limit::Level;
use crate::session::{ServeBroker, Session, SessionHandles};
use crate::upstream::Target;

use super::proxy_protocol;

#[derive(Debug, thiserror::Error)]
pub enum ListenerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no proxy port for node id {0}: add it to listener.broker_ports.node_ports")]
    NoPort(i32),
    #[error(
        "not opening a listener for node id {node_id}: limits.max_broker_listeners ({max}) reached"
    )]
    TooMany { node_id: i32, max: usize },
}

/// Broker address → the proxy's address for it (port-per-broker).
#[derive(Debug, Clone)]
pub struct ProxyAddressMapper {
    pub listener: ListenerConfig,
}

impl AddressMapper for ProxyAddressMapper {
    fn client_address(&self, upstream: &BrokerAddress) -> Result<(String, i32), ProtocolError> {
        match self.listener.advertised_address(upstream.node_id) {
            Some((host, port)) => Ok((host.into_owned(), i32::from(port))),
            None => Err(ProtocolError::UnmappedBroker {
                node_id: upstream.node_id,
                host: upstream.host.clone(),
                port: upstream.port,
            }),
        }
    }
}

/// What every accept loop shares.
pub(crate) struct Acceptor {
    pub handles: Arc<SessionHandles>,
    /// Bounds concurrent connections (`limits.max_connections`); a connection holds a permit.
    pub connections: Arc<Semaphore>,
    pub max_connections: usize,
    /// Tells accept loops and sessions to stop.
    pub shutdown: broadcast::Sender<()>,
    /// `listener.proxy_protocol`: read a PROXY header before the handshake; `None`: off.
    proxy_protocol: Option<Arc<ProxyProtocolConfig>>,
    next_id: AtomicU64,
}

impl Acceptor {
    pub fn new(
        handles: Arc<SessionHandles>,
        max_connections: usize,
        shutdown: broadcast::Sender<()>,
    ) -> Self {
        Self {
            handles,
            connections: Arc::new(Semaphore::new(max_connections)),
            max_connections,
            shutdown,
            proxy_protocol: None,
            next_id: AtomicU64::new(1),
        }
    }

    /// Read PROXY protocol headers on every listener, as `config` allows.
    pub fn with_proxy_protocol(mut self, config: Option<ProxyProtocolConfig>) -> Self {
        self.proxy_protocol = config.map(Arc::new);
        self
    }

    /// A short id for logs and audit records, unique within this process.
    fn next_connection_id(&self) -> String {
        format!("conn-{}", self.next_id.fetch_add(1, Ordering::Relaxed))
    }
}

/// Accept connections on one listener until shutdown; each becomes a [`Session`] task.
/// While everything it serves is down, the listener is closed ([`closed_while_down`]).
pub(crate) async fn accept_loop(
    acceptor: Arc<Acceptor>,
    mut listener: TcpListener,
    target: Target,
) {
    let mut shutdown = acceptor.shutdown.subscribe();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.recv() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                let kind = e.kind().to_string();
                if crate::log_limit::warnings().admit(Level::Error, "accept failed", &kind) {
                    error!(error = %e, "accept failed");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(permit) = admit(
            &acceptor.connections,
            acceptor.max_connections,
            &acceptor.handles.metrics,
            target,
            peer,
        ) else {
            // Closed at once: the client sees the end of its connection, not a silent queue.
            drop(tcp);
            continue;
        };
        let session = Session {
            handles: acceptor.handles.clone(),
            connection_id: acceptor.next_connection_id(),
            peer,
            via: None,
            target,
            server_name: None,
        };
        let session_shutdown = acceptor.shutdown.subscribe();
        let proxy_protocol = acceptor.proxy_protocol.clone();
        tokio::spawn(connection_task(
            session,
            tcp,
            proxy_protocol,
            permit,
            session_shutdown,
        ));
        // Checked after each client, not watched: until the next one arrives an open port
        // costs nobody a retry. (This client's session refuses it, or probes, as usual.)
        if closed_while_down::should_close(&acceptor, target) {
            match closed_while_down::close_until_reachable(
                &acceptor,
                listener,
                target,
                &mut shutdown,
            )
            .await
            {
                Some(reopened) => listener = reopened,
                None => return,
            }
        }
    }
}

/// One accepted connection's task, from the PROXY header (if any) to the session's end. Its
/// future is held for as long as the connection is open, idle or not, so its size is part of
/// what every idle connection costs (a test bounds it). An `async` block, not an `async fn`:
/// the latter would store each argument twice for the whole session.
#[allow(
    clippy::manual_async_fn,
    reason = "an `async fn` stores its arguments twice in its future, held for the whole session"
)]
fn connection_task(
    mut session: Session,
    mut tcp: TcpStream,
    proxy_protocol: Option<Arc<ProxyProtocolConfig>>,
    permit: OwnedSemaphorePermit,
    shutdown: broadcast::Receiver<()>,
) -> impl Future<Output = ()> {
    async move {
        // In the session's task: a slow header holds up only its own connection. Boxed: the
        // header's read is over before the session starts.
        if let Some(config) = proxy_protocol
            && !Box::pin(proxy_protocol::admit(&config, &mut tcp, &mut session)).await
        {
            drop(permit);
            return;
        }
        session.run(tcp, shutdown).await;
        drop(permit);
    }
}

/// Serve requests to open broker listeners until every sender is gone (or shutdown).
pub(crate) async fn serve_brokers(
    acceptor: Arc<Acceptor>,
    listener: ListenerConfig,
    max_broker_listeners: usize,
    mut requests: mpsc::Receiver<ServeBroker>,
) {
    let mut bound: HashMap<i32, SocketAddr> = HashMap::new();
    let mut shutdown = acceptor.shutdown.subscribe();
    loop {
        let request = tokio::select! {
            r = requests.recv() => match r {
                Some(r) => r,
                None => return,
            },
            _ = shutdown.recv() => return,
        };
        let outcome = match bound.get(&request.node_id) {
            Some(addr) => Ok(*addr),
            None => bind_broker(
                &acceptor,
                &listener,
                max_broker_listeners,
                &mut bound,
                request.node_id,
            )
            .await
            .map_err(|e| e.to_string()),
        };
        // The session may have gone meanwhile.
        let _ = request.reply.send(outcome);
    }
}

async fn bind_broker(
    acceptor: &Arc<Acceptor>,
    config: &ListenerConfig,
    max: usize,
    bound: &mut HashMap<i32, SocketAddr>,
    node_id: i32,
) -> Result<SocketAddr, ListenerError> {
    if config.sni.is_some() {
        // SNI routing: every broker is served on the bootstrap listener, by server name.
        return Ok(config.bootstrap);
    }
    if bound.len() >= max {
        return Err(ListenerError::TooMany { node_id, max });
    }
    let port = config
        .broker_ports
        .port_for(node_id)
        .ok_or(ListenerError::NoPort(node_id))?;
    let addr = SocketAddr::new(config.broker_bind, port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ListenerError::Bind { addr, source })?;
    let local = listener.local_addr().unwrap_or(addr);
    info!(node_id, addr = %local, "serving broker");
    tokio::spawn(accept_loop(
        acceptor.clone(),
        listener,
        Target::Node(node_id),
    ));
    bound.insert(node_id, local);
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::connection_task;

    /// The size of the future an `async fn` of five arguments returns, without calling it.
    fn future_size<A, B, C, D, E, F>(_: impl FnOnce(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every open connection holds its task's future for its whole life, idle or not: 9,824
    /// bytes for the session's part alone when the TLS stream was moved by value and the steps
    /// before the pump (upstream check, handshake, upstream login) were inline; 4,160 once they
    /// were boxed, 4,928 with SNI routing's state (the routed client, one more level); 3,552
    /// (3,472 in a release build) once each value was stored once (the requests loop built in
    /// `pin!`, the wrappers `async` blocks). With tokio's task header that fits jemalloc's
    /// 3.5 KiB size class (`tests/idle_memory.rs` prints the classes).
    #[test]
    fn a_connection_task_future_is_at_most_3_5_kib() {
        let size = future_size(connection_task);
        assert!(size <= 3584, "a connection's task future is {size} bytes");
    }
}
