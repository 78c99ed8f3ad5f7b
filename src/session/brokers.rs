//! The brokers a session may name to its client: where each one is upstream (learned from
//! answers), and the proxy's listener for it, bound on request before the answer leaves.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, oneshot};

use crate::upstream::BrokerBook;

/// A request to serve a broker: its node id, and where to say the outcome.
pub struct ServeBroker {
    pub node_id: i32,
    /// The proxy's address for the broker, or why it cannot be served.
    pub reply: oneshot::Sender<Result<SocketAddr, String>>,
}

/// Asks whoever owns the listeners (the server) to serve a broker. A channel rather than a
/// call: sessions do not know the server, and the server's accept loops start sessions.
#[derive(Clone)]
pub struct BrokerListeners {
    tx: mpsc::Sender<ServeBroker>,
    /// Listeners known to be bound: every Metadata answer names the brokers, and asking the
    /// server each time would cost every answer a round trip between tasks. A std lock: held
    /// only to read or insert, never across an await.
    bound: Arc<RwLock<HashMap<i32, SocketAddr>>>,
}

/// How many requests to serve a broker may wait; each is a handful of bytes and is answered as
/// fast as a listener binds.
const PENDING_REQUESTS: usize = 64;

/// A [`BrokerListeners`] handle and the receiver its owner serves.
pub fn broker_listeners() -> (BrokerListeners, mpsc::Receiver<ServeBroker>) {
    let (tx, rx) = mpsc::channel(PENDING_REQUESTS);
    let bound = Arc::new(RwLock::new(HashMap::new()));
    (BrokerListeners { tx, bound }, rx)
}

impl BrokerListeners {
    /// Make sure the proxy listens for `node_id`; returns its address.
    pub async fn ensure(&self, node_id: i32) -> Result<SocketAddr, String> {
        if let Some(addr) = self
            .bound
            .read()
            .ok()
            .and_then(|b| b.get(&node_id).copied())
        {
            return Ok(addr);
        }
        let (reply, outcome) = oneshot::channel();
        self.tx
            .send(ServeBroker { node_id, reply })
            .await
            .map_err(|_| "the proxy is stopping".to_string())?;
        let addr = outcome
            .await
            .map_err(|_| "the proxy is stopping".to_string())??;
        if let Ok(mut bound) = self.bound.write() {
            bound.insert(node_id, addr);
        }
        Ok(addr)
    }
}

/// What a session knows of the brokers.
#[derive(Clone)]
pub struct BrokerDirectory {
    /// Node id → upstream address, learned from answers; survives reloads.
    pub book: Arc<BrokerBook>,
    pub listeners: BrokerListeners,
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bound_listener_is_not_asked_for_again() {
        let (listeners, mut requests) = broker_listeners();
        let addr: SocketAddr = "127.0.0.1:9193".parse().unwrap();
        let server = tokio::spawn(async move {
            let request = requests.recv().await.unwrap();
            assert_eq!(request.node_id, 3);
            request.reply.send(Ok(addr)).unwrap();
            // The server is gone from here on: only the cache can answer.
        });
        assert_eq!(listeners.ensure(3).await.unwrap(), addr);
        server.await.unwrap();
        assert_eq!(listeners.ensure(3).await.unwrap(), addr);
        assert_eq!(
            listeners.ensure(4).await.unwrap_err(),
            "the proxy is stopping"
        );
    }
}
