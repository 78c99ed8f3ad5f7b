//! A node id the broker book does not know, looked up with the cluster before a client's
//! handshake (SNI routing): one Metadata request a second at most, signed in as the proxy
//! itself in the SASL modes (`upstream.proxy_login`).

use std::time::Duration;

use super::login::Login;
use super::transport::{SaslTransport, StreamTransport};
use super::{UpstreamConnector, UpstreamError};
use crate::config::UpstreamIdentity;
use crate::kafka::broker_list::{broker_list_request, decode_broker_list};
use crate::log_limit::{Level, warnings};

impl UpstreamConnector {
    /// Is node `node_id` a broker of the cluster? Asked before a client's handshake (SNI
    /// routing), when no pool is known yet: an unknown id is looked up with a broker-list
    /// refresh (at most one a second). In `mode: none` the proxy asks as the clients'
    /// connections do, without SASL; in the SASL modes it signs in with its own login
    /// (`upstream.proxy_login`; in oauthbearer mode a token for its own subject). A SASL mode
    /// without one cannot ask: the answer waits for the connection's own login
    /// ([`Self::connect`] refreshes as its pool).
    pub async fn discover(&self, node_id: i32) -> Discovery {
        if self.book.lookup(node_id).is_some() {
            return Discovery::Known;
        }
        let signs_in =
            self.token_issuer.is_some() || matches!(self.identity, UpstreamIdentity::Scram { .. });
        let login = match (&self.proxy_login, signs_in) {
            (_, false) => None,
            (None, true) => return Discovery::AfterLogin,
            (Some(own), true) => match Login::for_proxy(own, self.token_issuer.as_ref()) {
                Ok(login) => Some(login),
                Err(e) => {
                    log_lookup_failure(&e, own.principal_name());
                    return Discovery::Failed;
                }
            },
        };
        if self.refresh_brokers(login.as_ref()).await.is_err() {
            return Discovery::Failed;
        }
        match self.book.lookup(node_id) {
            Some(_) => Discovery::Known,
            None => Discovery::Unknown,
        }
    }

    /// Ask a bootstrap server for the cluster's brokers and learn them, signed in with `login`
    /// when there is one. At most once per [`MIN_REFRESH_INTERVAL`]: a flood of names of
    /// brokers that do not exist costs the cluster one Metadata request a second, not one per
    /// connection; a caller within the interval gets the last refresh's outcome. A failure is
    /// logged here (one line per distinct failure every few seconds, `log_limit`).
    pub(super) async fn refresh_brokers(&self, login: Option<&Login>) -> Result<(), UpstreamError> {
        let mut last = self.last_refresh.lock().await;
        let now = tokio::time::Instant::now();
        if let Some((at, failed)) = last.as_ref()
            && now.duration_since(*at) < MIN_REFRESH_INTERVAL
        {
            return match failed {
                None => Ok(()),
                Some(e) => Err(UpstreamError::RecentRefreshFailed(e.clone())),
            };
        }
        let result = self.ask_for_brokers(login).await;
        if let Err(e) = &result {
            log_lookup_failure(e, login.map_or("", Login::principal));
        }
        *last = Some((now, result.as_ref().err().map(ToString::to_string)));
        result
    }

    async fn ask_for_brokers(&self, login: Option<&Login>) -> Result<(), UpstreamError> {
        let mut errors = Vec::new();
        for (host, port) in &self.bootstrap {
            let addr = format!("{host}:{port}");
            match self.broker_list_from(host, *port, &addr, login).await {
                Ok(brokers) => {
                    for b in &brokers {
                        self.book.learn(b.node_id, &b.host, b.port);
                    }
                    tracing::debug!(from = %addr, brokers = brokers.len(), "broker list refreshed");
                    return Ok(());
                }
                // The credentials are the same on every broker: do not try the next.
                Err(e @ UpstreamError::SaslRefused { .. }) => return Err(e),
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(UpstreamError::AllBootstrapFailed {
            errors: errors.join("; "),
            unreachable: false,
        })
    }

    async fn broker_list_from(
        &self,
        host: &str,
        port: u16,
        addr: &str,
        login: Option<&Login>,
    ) -> Result<Vec<crate::kafka::BrokerAddress>, UpstreamError> {
        let mut stream = self.dialer.dial(host, port).await?;
        let mut transport = StreamTransport::new(&mut stream);
        if let Some(login) = login {
            self.sign_in(&mut transport, addr, login).await?;
        }
        let failed = |reason: String| UpstreamError::BrokerList {
            addr: addr.to_string(),
            reason,
        };
        let request = broker_list_request(0).map_err(|e| failed(e.to_string()))?;
        let answer = tokio::time::timeout(self.connect_timeout, transport.round_trip(request))
            .await
            .map_err(|_| {
                failed(format!(
                    "no answer within {} ms",
                    self.connect_timeout.as_millis()
                ))
            })?
            .map_err(|e| failed(e.to_string()))?;
        decode_broker_list(&answer).map_err(|e| failed(e.to_string()))
    }
}

/// One warning line for a broker lookup that failed, naming the login it used (`principal`:
/// the proxy's own user or subject, a pool's user, or none) and the broker's error; the same
/// failure repeated is summarised by `log_limit`.
fn log_lookup_failure(error: &UpstreamError, principal: &str) {
    let message = match error {
        UpstreamError::SaslRefused { .. } => {
            "the cluster refused the login the proxy looks brokers up with: server names of brokers not seen yet are refused before the handshake"
        }
        _ => {
            "cannot ask the cluster for its broker list: server names of brokers not seen yet are refused before the handshake"
        }
    };
    if warnings().admit(Level::Warn, message, principal) {
        tracing::warn!(login = principal, error = %error, "{message}");
    }
}

/// The least time between two broker-list refreshes ([`UpstreamConnector::discover`]).
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// Whether a node id is a broker of the cluster, as far as the proxy can tell before a
/// client's handshake ([`UpstreamConnector::discover`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discovery {
    /// Known (perhaps just now, from a refresh).
    Known,
    /// The cluster's broker list does not name it (or could not be had).
    Unknown,
    /// Only a pool's login can ask the cluster: the connection's own, after its handshake (a
    /// SASL mode without `upstream.proxy_login`).
    AfterLogin,
    /// The cluster could not be asked (unreachable, or the proxy's own login refused): not
    /// known to be unknown.
    Failed,
}
