//! Connections to the real Kafka brokers.
//!
//! - [`BrokerBook`]: what the proxy has learned from the cluster's responses — node id →
//!   the broker's own `host:port` — so a client dialling the proxy port of node N reaches N.
//! - [`UpstreamConnector`]: opens one upstream connection for one client connection
//!   (plaintext or TLS, optionally with the proxy's own client certificate). It is handed the
//!   client's pool resolution: with `upstream.identity.mode: scram` it authenticates to the
//!   broker as the connection's primary pool (SaslHandshake v1, then SCRAM in
//!   SaslAuthenticate v2) before the client's first frame is forwarded. With
//!   `mode: oauthbearer` it presents a JWT the proxy signed for this connection
//!   ([`crate::oauth`]) in one OAUTHBEARER SaslAuthenticate.
//!
//! The primary pool is [`Resolution::primary`]: highest `priority`, then smallest pool id. The
//! pool's password is read from its secret reference at every connect (so a rotated secret
//! needs no reload) and is never logged.
//!
//! Upstream knows nothing of the client connection beyond its [`Resolution`]; the connection
//! depends on upstream, not the other way round (it implements `SaslTransport` to
//! re-authenticate over a live session).
//!
//! The parts, in the order a connection meets them:
//!
//! - `book`: node id → broker address.
//! - `health`: which brokers are known not to answer; their listeners refuse clients before
//!   the handshake ([`UpstreamConnector::admit`]).
//! - `connect`: TCP and TLS to one broker ([`UpstreamStream`]).
//! - `login`: which credentials the connection signs in with.
//! - `refusals`: a SCRAM password the broker just refused is refused from memory.
//! - `sasl`: the SCRAM and OAUTHBEARER exchanges.
//! - `transport`: what carries a SASL request (`SaslTransport`).

mod book;
mod connect;
#[doc(hidden)]
pub mod fuzzing;
mod health;
mod login;
mod refusals;
mod sasl;
mod transport;

use std::io;
use std::sync::Arc;
use std::time::Duration;

pub use book::BrokerBook;
pub use connect::UpstreamStream;
pub use health::{Admission, Change, UpstreamHealth};
pub use transport::SaslTransportError;
pub(crate) use transport::{SaslTransport, stamp_correlation_id};

use crate::config::{HealthSettings, UpstreamConfig, UpstreamIdentity};
use crate::kafka::broker_list::{broker_list_request, decode_broker_list};
use crate::oauth::TokenIssuer;
use crate::pools::Resolution;
use connect::Dialer;
use login::Login;
use refusals::RefusalMemory;
use transport::StreamTransport;

/// Which broker a client connection is meant for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Any of the configured bootstrap servers.
    Bootstrap,
    /// The broker with this node id, as learned from the cluster.
    Node(i32),
}

impl std::fmt::Display for Target {
    /// As the listener is named in logs and metrics: `bootstrap`, `broker-<id>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Bootstrap => f.write_str("bootstrap"),
            Target::Node(id) => write!(f, "broker-{id}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the cluster names no broker with node id {0}")]
    UnknownNode(i32),
    #[error("asking {addr} for the cluster's brokers: {reason}")]
    BrokerList { addr: String, reason: String },
    #[error("cannot connect to upstream broker {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("timed out after {ms} ms connecting to upstream broker {addr}")]
    Timeout { addr: String, ms: u128 },
    #[error("TLS handshake with upstream broker {addr} failed: {source}")]
    Tls { addr: String, source: io::Error },
    #[error("upstream TLS configuration: {0}")]
    TlsConfig(String),
    #[error("every bootstrap server failed: {errors}")]
    AllBootstrapFailed {
        errors: String,
        /// No server could be reached at all (as opposed to TLS or SASL failures).
        unreachable: bool,
    },
    /// The broker refused the pool's credentials (or could not prove it knows them).
    #[error(
        "broker {addr} refused the upstream identity of pool `{pool}` (user `{user}`, \
         {mechanism}): {reason}"
    )]
    SaslRefused {
        addr: String,
        pool: String,
        user: String,
        mechanism: &'static str,
        reason: String,
    },
    /// The SASL exchange failed for a reason other than the credentials (I/O, protocol).
    #[error("SASL with broker {addr} for pool `{pool}` failed: {reason}")]
    Sasl {
        addr: String,
        pool: String,
        reason: String,
    },
    #[error("pool `{0}` has no upstream credentials (upstream.identity.credentials)")]
    NoCredentials(String),
    #[error("cannot read the upstream password of pool `{pool}`: {reason}")]
    Secret { pool: String, reason: String },
    #[error("the connection matched no pool, so it has no upstream identity")]
    NoPool,
    /// No token could be made for the pool (oauthbearer mode).
    #[error("cannot issue an upstream token for pool `{pool}`: {reason}")]
    Token { pool: String, reason: String },
}

impl UpstreamError {
    /// The pool whose upstream identity could not be established, when that is the failure:
    /// the client gets an authentication error instead of a network error it would retry.
    pub fn refused_pool(&self) -> Option<&str> {
        match self {
            UpstreamError::SaslRefused { pool, .. }
            | UpstreamError::NoCredentials(pool)
            | UpstreamError::Secret { pool, .. }
            | UpstreamError::Token { pool, .. } => Some(pool),
            _ => None,
        }
    }

    /// The broker could not be reached at all (TCP refused or timed out): what marks its
    /// listener down ([`UpstreamHealth`]). A broker that answers with a TLS or SASL failure
    /// is reachable.
    pub fn unreachable(&self) -> bool {
        match self {
            UpstreamError::Connect { .. } | UpstreamError::Timeout { .. } => true,
            UpstreamError::AllBootstrapFailed { unreachable, .. } => *unreachable,
            _ => false,
        }
    }
}

/// Opens upstream connections. One per proxy configuration; shared by all connections.
pub struct UpstreamConnector {
    bootstrap: Vec<(String, u16)>,
    dialer: Dialer,
    /// The configured connect timeout, which also bounds each sign-in exchange.
    connect_timeout: Duration,
    book: Arc<BrokerBook>,
    identity: UpstreamIdentity,
    /// The broker's recent refusals of SCRAM passwords (see [`refusals::REFUSAL_MEMORY`]).
    refusals: RefusalMemory,
    /// Signs the token of each connection in oauthbearer mode ([`Self::with_token_issuer`]).
    token_issuer: Option<TokenIssuer>,
    /// When the broker list was last asked for ([`Self::refresh_brokers`]). An async lock held
    /// across the refresh: callers that need one meanwhile wait for it instead of asking too.
    last_refresh: tokio::sync::Mutex<Option<tokio::time::Instant>>,
    /// `upstream.health`: when to refuse clients of a broker known down.
    health: HealthSettings,
}

impl UpstreamConnector {
    pub fn new(
        config: &UpstreamConfig,
        book: Arc<BrokerBook>,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Self, UpstreamError> {
        Ok(Self {
            bootstrap: config.bootstrap_servers.clone(),
            dialer: Dialer::new(config, provider)?,
            connect_timeout: config.connect_timeout,
            book,
            identity: config.identity.clone(),
            refusals: RefusalMemory::default(),
            token_issuer: None,
            last_refresh: tokio::sync::Mutex::new(None),
            health: config.health,
        })
    }

    /// Sign in with tokens from `issuer` (oauthbearer mode) instead of `identity`'s SCRAM.
    pub fn with_token_issuer(mut self, issuer: TokenIssuer) -> Self {
        self.token_issuer = Some(issuer);
        self
    }

    pub fn book(&self) -> &Arc<BrokerBook> {
        &self.book
    }

    /// May a new client of `target`'s listener go on to its TLS handshake? `false`: its
    /// broker is known down (see [`UpstreamHealth`]); close the connection unanswered. When a
    /// re-check of a down broker is due, this client's arrival makes it: the broker is dialled
    /// now, and the client served if it answers.
    pub async fn admit(&self, target: Target) -> bool {
        let health = self.book.health();
        match health.admit(target, &self.health, tokio::time::Instant::now()) {
            Admission::Serve => true,
            Admission::Refuse => false,
            Admission::Probe => {
                // Ends the probe however this future ends (cancelled mid-dial too).
                let _probing = ProbeGuard { health, target };
                let result = self.probe(target).await;
                let reachable = !matches!(&result, Err(e) if e.unreachable());
                self.record(target, &result);
                reachable
            }
        }
    }

    /// Can `target`'s broker be reached? TCP (and TLS when configured), no sign-in.
    async fn probe(&self, target: Target) -> Result<(), UpstreamError> {
        match target {
            Target::Node(id) => match self.book.lookup(id) {
                Some((host, port)) => self.dialer.dial(&host, port).await.map(drop),
                // Nothing to dial: let the connection find that out (UnknownNode).
                None => Ok(()),
            },
            Target::Bootstrap => {
                let mut errors = Vec::new();
                for (host, port) in &self.bootstrap {
                    match self.dialer.dial(host, *port).await {
                        Ok(_) => return Ok(()),
                        Err(e) if !e.unreachable() => return Err(e),
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                Err(UpstreamError::AllBootstrapFailed {
                    errors: errors.join("; "),
                    unreachable: true,
                })
            }
        }
    }

    /// Tell the health state how a connect attempt to `target` went; log a change once.
    fn record<T>(&self, target: Target, result: &Result<T, UpstreamError>) {
        let reachable = !matches!(result, Err(e) if e.unreachable());
        let now = tokio::time::Instant::now();
        match self
            .book
            .health()
            .record(target, reachable, &self.health, now)
        {
            Some(Change::WentDown) => {
                let error = result
                    .as_ref()
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                if self.health.refuse_when_down {
                    tracing::warn!(
                        listener = %target,
                        %error,
                        "upstream down: refusing new connections on this listener before the TLS handshake until it answers"
                    );
                } else {
                    tracing::warn!(listener = %target, %error, "upstream down");
                }
            }
            Some(Change::CameBack { down_for, refused }) => tracing::info!(
                listener = %target,
                down_ms = down_for.as_millis() as u64,
                refused,
                "upstream reachable again: serving new connections"
            ),
            None => {}
        }
    }

    /// Connect to `target` for a client whose pools resolved to `resolution`; in scram (or
    /// oauthbearer) mode, authenticate as its primary pool before returning the stream. The
    /// outcome updates the target's health.
    pub async fn connect(
        &self,
        target: Target,
        resolution: &Resolution,
    ) -> Result<UpstreamConnection, UpstreamError> {
        let result = self.connect_now(target, resolution).await;
        if !matches!(result, Err(UpstreamError::UnknownNode(_))) {
            self.record(target, &result);
        }
        result
    }

    async fn connect_now(
        &self,
        target: Target,
        resolution: &Resolution,
    ) -> Result<UpstreamConnection, UpstreamError> {
        let login = self.login_for(resolution)?;
        match target {
            Target::Node(id) => {
                let (host, port) = match self.book.lookup(id) {
                    Some(known) => known,
                    None => {
                        // A broker no answer through this proxy has named yet (it joined
                        // later, or this replica just started): ask the cluster, as this
                        // connection's pool.
                        let refresh_login = self.login_for(resolution)?;
                        self.refresh_brokers(refresh_login.as_ref()).await?;
                        self.book.lookup(id).ok_or(UpstreamError::UnknownNode(id))?
                    }
                };
                let addr = format!("{host}:{port}");
                let mut stream = self.dialer.dial(&host, port).await?;
                let session_lifetime = match &login {
                    Some(login) => {
                        let mut transport = StreamTransport::new(&mut stream);
                        self.sign_in(&mut transport, &addr, login).await?
                    }
                    None => None,
                };
                Ok(UpstreamConnection {
                    stream,
                    addr,
                    session_lifetime,
                })
            }
            Target::Bootstrap => {
                let mut errors = Vec::new();
                let mut unreachable = true;
                for (host, port) in &self.bootstrap {
                    let addr = format!("{host}:{port}");
                    let mut stream = match self.dialer.dial(host, *port).await {
                        Ok(s) => s,
                        Err(e) => {
                            unreachable &= e.unreachable();
                            errors.push(e.to_string());
                            continue;
                        }
                    };
                    unreachable = false;
                    let Some(login) = &login else {
                        return Ok(UpstreamConnection {
                            stream,
                            addr,
                            session_lifetime: None,
                        });
                    };
                    let mut transport = StreamTransport::new(&mut stream);
                    match self.sign_in(&mut transport, &addr, login).await {
                        Ok(session_lifetime) => {
                            return Ok(UpstreamConnection {
                                stream,
                                addr,
                                session_lifetime,
                            });
                        }
                        // The credentials are the same on every broker: do not try the next.
                        Err(e @ UpstreamError::SaslRefused { .. }) => return Err(e),
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                Err(UpstreamError::AllBootstrapFailed {
                    errors: errors.join("; "),
                    unreachable,
                })
            }
        }
    }

    /// Is node `node_id` a broker of the cluster? Asked before a client's handshake (SNI
    /// routing), when no pool is known yet: an unknown id is looked up with a broker-list
    /// refresh when the proxy can ask without a pool's login (`upstream.identity.mode: none`);
    /// otherwise the answer waits for the connection's own login ([`Self::connect`] refreshes
    /// as its pool).
    pub async fn discover(&self, node_id: i32) -> Discovery {
        if self.book.lookup(node_id).is_some() {
            return Discovery::Known;
        }
        let needs_pool =
            self.token_issuer.is_some() || matches!(self.identity, UpstreamIdentity::Scram { .. });
        if needs_pool {
            return Discovery::AfterLogin;
        }
        if let Err(e) = self.refresh_brokers(None).await {
            tracing::warn!(error = %e, node_id, "cannot refresh the cluster's broker list");
        }
        match self.book.lookup(node_id) {
            Some(_) => Discovery::Known,
            None => Discovery::Unknown,
        }
    }

    /// Ask a bootstrap server for the cluster's brokers and learn them, signed in with `login`
    /// when there is one. At most once per [`MIN_REFRESH_INTERVAL`]: a flood of names of
    /// brokers that do not exist costs the cluster one Metadata request a second, not one per
    /// connection.
    async fn refresh_brokers(&self, login: Option<&Login>) -> Result<(), UpstreamError> {
        let mut last = self.last_refresh.lock().await;
        let now = tokio::time::Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < MIN_REFRESH_INTERVAL) {
            return Ok(());
        }
        *last = Some(now);
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

    /// Log in again as `resolution`'s primary pool over a live connection (KIP-368), reading
    /// the pool's secret now so a rotated password takes effect. Returns the new session
    /// lifetime. In `mode: none` there is nothing to renew.
    ///
    /// The refusal memory is neither consulted nor fed: it exists to spare the broker a storm of
    /// reconnects, and a re-authentication happens once per lifetime per connection. A refusal
    /// that is specific to re-authentication (tansu 0.6 answers any second SaslHandshake with
    /// UNSUPPORTED_SASL_MECHANISM) must not refuse fresh logins that would succeed.
    pub(crate) async fn reauthenticate<T: SaslTransport>(
        &self,
        transport: &mut T,
        addr: &str,
        resolution: &Resolution,
    ) -> Result<Option<Duration>, UpstreamError> {
        match self.login_for(resolution)? {
            Some(login) => sasl::sign_in_now(transport, addr, &login, self.connect_timeout).await,
            None => Ok(None),
        }
    }

    /// The primary pool's credentials with the password read now (a token signed now in
    /// oauthbearer mode), or `None` in `mode: none`.
    fn login_for(&self, resolution: &Resolution) -> Result<Option<Login>, UpstreamError> {
        Login::for_primary_pool(&self.identity, self.token_issuer.as_ref(), resolution)
    }

    /// Sign in with `login` over `transport` (the first login of a connection): SCRAM goes
    /// through the refusal memory, a token does not. Returns the session lifetime granted.
    async fn sign_in<T: SaslTransport>(
        &self,
        transport: &mut T,
        addr: &str,
        login: &Login,
    ) -> Result<Option<Duration>, UpstreamError> {
        let exchange = sasl::sign_in_now(transport, addr, login, self.connect_timeout);
        match login {
            Login::Scram(scram) => self.refusals.remembering(scram, exchange).await,
            Login::OAuthBearer(_) => exchange.await,
        }
    }
}

/// The proxy's own SCRAM user, for its own connections (the shared pool store).
pub struct OwnLogin {
    pub user: String,
    pub mechanism: crate::scram::Mechanism,
    pub password: Vec<u8>,
}

/// Open a connection to `host:port` as the proxy itself (the shared pool store, the `store` module):
/// dialled as client connections are (TCP, and TLS with `config.tls`), then signed in with
/// `login` when given. The connect timeout bounds the dial and each sign-in exchange.
pub async fn connect_as_proxy(
    config: &UpstreamConfig,
    provider: Arc<rustls::crypto::CryptoProvider>,
    host: &str,
    port: u16,
    login: Option<OwnLogin>,
) -> Result<UpstreamStream, UpstreamError> {
    let dialer = Dialer::new(config, provider)?;
    let mut stream = dialer.dial(host, port).await?;
    if let Some(own) = login {
        let addr = format!("{host}:{port}");
        let login = Login::Scram(login::PoolLogin {
            pool: "(the proxy's own store user)".to_string(),
            user: own.user,
            mechanism: own.mechanism,
            password: own.password,
        });
        let mut transport = StreamTransport::new(&mut stream);
        sasl::sign_in_now(&mut transport, &addr, &login, config.connect_timeout).await?;
    }
    Ok(stream)
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
    /// Only a pool's login can ask the cluster: the connection's own, after its handshake.
    AfterLogin,
}

/// Marks a probe over when dropped, after its result is recorded or when cancelled.
struct ProbeGuard<'a> {
    health: &'a UpstreamHealth,
    target: Target,
}

impl Drop for ProbeGuard<'_> {
    fn drop(&mut self) {
        self.health.probe_done(self.target);
    }
}

/// An upstream connection ready for the client's frames.
pub struct UpstreamConnection {
    pub stream: UpstreamStream,
    /// The broker's `host:port`.
    pub addr: String,
    /// How long the broker's SASL session lasts (KIP-368): the proxy must re-authenticate on
    /// this connection before it ends. `None`: no login, or a session that never expires.
    pub session_lifetime: Option<Duration>,
}
