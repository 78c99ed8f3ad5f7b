//! The brokers a session may name to its client: where each one is upstream (learned from
//! answers), and the proxy's listener for it, bound on request before the answer leaves.

use std::net::SocketAddr;
use std::sync::Arc;

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
}

/// How many requests to serve a broker may wait; each is a handful of bytes and is answered as
/// fast as a listener binds.
const PENDING_REQUESTS: usize = 64;

/// A [`BrokerListeners`] handle and the receiver its owner serves.
pub fn broker_listeners() -> (BrokerListeners, mpsc::Receiver<ServeBroker>) {
    let (tx, rx) = mpsc::channel(PENDING_REQUESTS);
    (BrokerListeners { tx }, rx)
}

impl BrokerListeners {
    /// Make sure the proxy listens for `node_id`; returns its address.
    pub async fn ensure(&self, node_id: i32) -> Result<SocketAddr, String> {
        let (reply, outcome) = oneshot::channel();
        self.tx
            .send(ServeBroker { node_id, reply })
            .await
            .map_err(|_| "the proxy is stopping".to_string())?;
        outcome
            .await
            .map_err(|_| "the proxy is stopping".to_string())?
    }
}

/// What a session knows of the brokers.
#[derive(Clone)]
pub struct BrokerDirectory {
    /// Node id → upstream address, learned from answers; survives reloads.
    pub book: Arc<BrokerBook>,
    pub listeners: BrokerListeners,
}
