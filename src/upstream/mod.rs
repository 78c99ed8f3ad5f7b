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
//! - `discovery`: a node id the book does not know, looked up with the cluster.
//! - `health`: which brokers are known not to answer; their listeners refuse clients before
//!   the handshake ([`UpstreamConnector::admit`]).
//! - `connect`: TCP and TLS to one broker ([`UpstreamStream`]).
//! - `login`: which credentials the connection signs in with (a pool's, or the proxy's own:
//!   `upstream.proxy_login`, for [`UpstreamConnector::discover`] and
//!   [`UpstreamConnector::connect_as_proxy`]).
//! - `refusals`: a SCRAM password the broker just refused is refused from memory.
//! - `sasl`: the SCRAM and OAUTHBEARER exchanges.
//! - `transport`: what carries a SASL request (`SaslTransport`).

mod book;
mod connect;
mod discovery;
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
pub use discovery::{Discovery, MIN_REFRESH_INTERVAL};
pub use health::{Admission, Change, UpstreamHealth};
pub use transport::SaslTransportError;
pub(crate) use transport::{SaslTransport, stamp_correlation_id};

use crate::config::{HealthSettings, ProxyLogin, UpstreamConfig, UpstreamIdentity};
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
    /// The broker list was asked for under [`MIN_REFRESH_INTERVAL`] ago, and that failed.
    #[error(
        "the cluster's broker list could not be had a moment ago (asked at most once a second): {0}"
    )]
    RecentRefreshFailed(String),
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
    /// `upstream.proxy_login`: who the proxy is when it asks the cluster for itself.
    proxy_login: Option<ProxyLogin>,
    /// When the broker list was last asked for, and why that failed if it did
    /// ([`Self::refresh_brokers`]). An async lock held across the refresh: callers that need
    /// one meanwhile wait for it and take its outcome instead of asking too.
    last_refresh: tokio::sync::Mutex<Option<(tokio::time::Instant, Option<String>)>>,
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
            proxy_login: config.proxy_login.clone(),
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

    /// `upstream.health` of this generation.
    pub fn health_settings(&self) -> &HealthSettings {
        &self.health
    }

    /// When `target`'s broker may next be probed; `None` when it is not known down.
    pub fn next_probe(&self, target: Target) -> Option<tokio::time::Instant> {
        self.book.health().next_probe(target)
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

    /// Open a connection to `host:port` as the proxy itself (the shared pool store): dialled
    /// as client connections are (TCP, and TLS with `upstream.tls`), then signed in with
    /// `upstream.proxy_login` when there is one — its password read now, or a token signed
    /// now. The connect timeout bounds the dial and each sign-in exchange. The connection's
    /// `session_lifetime` is when the broker ends the login: open a new one before.
    pub async fn connect_as_proxy(
        &self,
        host: &str,
        port: u16,
    ) -> Result<UpstreamConnection, UpstreamError> {
        let login = match &self.proxy_login {
            Some(own) => Some(Login::for_proxy(own, self.token_issuer.as_ref())?),
            None => None,
        };
        let addr = format!("{host}:{port}");
        let mut stream = self.dialer.dial(host, port).await?;
        let session_lifetime = match &login {
            Some(login) => {
                let mut transport = StreamTransport::new(&mut stream);
                sasl::sign_in_now(&mut transport, &addr, login, self.connect_timeout).await?
            }
            None => None,
        };
        Ok(UpstreamConnection {
            stream,
            addr,
            session_lifetime,
        })
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
