//! A listener whose broker is down is *closed*, so that a client's connect is refused by the
//! kernel exactly as the broker's own port would refuse it.
//!
//! A TCP reset right after accept (what [`crate::upstream::UpstreamHealth`] gives a client
//! while its broker is down) is near, but not the same: librdkafka 2.16 retries a connection
//! that was accepted and then reset sooner than a refused one (its re-bootstrap timers; 1.2–2×
//! the direct rate in 10 s runs). So the accept loop closes its socket as soon as it sees its
//! target down, and while closed it probes the broker itself (no client arrives to do it), at
//! the health's own interval, doubling up to the maximum. Once the broker answers it binds the
//! same address again and accepts as before.
//!
//! With `listener.sni` one listener serves the bootstrap name and every broker: it closes only
//! when the whole cluster is known down (the bootstrap servers and every broker learned so
//! far), probes the bootstrap servers meanwhile, and while any broker may still answer it stays
//! open and refuses per target before the handshake.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tracing::{error, info, warn};

use super::listeners::Acceptor;
use crate::log_limit::Level;
use crate::metrics::listener_label;
use crate::upstream::Target;

/// Should the accept loop of `target`'s listener close now? The configuration refuses clients
/// while down, and everything the listener serves is known down: its broker, or with SNI
/// routing the bootstrap servers and every broker learned so far (a broker never tried since
/// counts as up).
pub(crate) fn should_close(acceptor: &Acceptor, target: Target) -> bool {
    let generation = acceptor.handles.generations.borrow().clone();
    let upstream = &generation.upstream;
    let down = |t: Target| upstream.next_probe(t).is_some();
    upstream.health_settings().refuse_when_down
        && down(target)
        && (acceptor.handles.sni.is_none()
            || upstream
                .book()
                .node_ids()
                .into_iter()
                .all(|id| down(Target::Node(id))))
}

/// Close `listener` until `target`'s broker answers a probe, then bind its address again.
/// `None`: shutdown came first. A listener whose address cannot be read (a bound socket's can)
/// is kept open, since it could not be bound again.
pub(crate) async fn close_until_reachable(
    acceptor: &Acceptor,
    listener: TcpListener,
    target: Target,
    shutdown: &mut broadcast::Receiver<()>,
) -> Option<TcpListener> {
    let addr = match listener.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            error!(listener = %target, error = %e, "cannot close a listener whose address is unknown");
            return Some(listener);
        }
    };
    drop(listener);
    let label = listener_label(target);
    acceptor.handles.metrics.listener_closed(&label, true);
    warn!(
        listener = %target,
        %addr,
        "listener closed while its broker is down: connects are refused, as by the broker itself, until it answers"
    );
    let reopened = tokio::select! {
        l = reopen_when_reachable(acceptor, addr, target) => Some(l),
        _ = shutdown.recv() => None,
    };
    acceptor.handles.metrics.listener_closed(&label, false);
    reopened
}

async fn reopen_when_reachable(
    acceptor: &Acceptor,
    addr: SocketAddr,
    target: Target,
) -> TcpListener {
    wait_until_reachable(acceptor, target).await;
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => {
                info!(listener = %target, %addr, "broker reachable again: listening");
                return listener;
            }
            Err(e) => {
                // Another process took the port meanwhile: keep trying, and say so.
                let key = format!("{target} {addr}");
                if crate::log_limit::warnings().admit(Level::Error, "cannot listen again", &key) {
                    error!(listener = %target, %addr, error = %e, "cannot listen again after the broker came back; retrying");
                }
                let settings = *acceptor
                    .handles
                    .generations
                    .borrow()
                    .upstream
                    .health_settings();
                tokio::time::sleep(settings.probe_interval).await;
            }
        }
    }
}

/// Probe `target`'s broker when each probe is due, until one reaches it (or another connection,
/// such as the broker list's refresh, found it up).
async fn wait_until_reachable(acceptor: &Acceptor, target: Target) {
    loop {
        // The generation in force at each step: a reload may change the intervals.
        let generation = acceptor.handles.generations.borrow().clone();
        let upstream = &generation.upstream;
        if !upstream.health_settings().refuse_when_down {
            return;
        }
        let Some(due) = upstream.next_probe(target) else {
            return;
        };
        // Bounded: a reload that shortens the interval is seen within a second.
        let wake = due.min(tokio::time::Instant::now() + Duration::from_secs(1));
        tokio::time::sleep_until(wake).await;
        if tokio::time::Instant::now() >= due && upstream.admit(target).await {
            return;
        }
    }
}
