//! Connections to the real Kafka brokers.
//!
//! - [`BrokerBook`]: what the proxy has learned from the cluster's responses — node id →
//!   the broker's own `host:port` — so a client dialling the proxy port of node N reaches N.
//! - [`UpstreamConnector`]: opens one upstream connection for one client connection
//!   (plaintext or TLS, optionally with the proxy's own client certificate). It is handed the
//!   client's identity: with `upstream.identity.mode: scram` it authenticates to the broker as
//!   the connection's primary pool (SaslHandshake v1, then SCRAM in SaslAuthenticate v2) before
//!   the client's first frame is forwarded. With `mode: oauthbearer` it presents a JWT the
//!   proxy signed for this connection ([`crate::oauth`]) in one OAUTHBEARER SaslAuthenticate.
//!
//! The primary pool is [`Resolution::primary`](crate::pools::Resolution::primary): highest
//! `priority`, then smallest pool id. The pool's password is read from its secret reference at
//! every connect (so a rotated secret needs no reload) and is never logged.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use crate::config::{UpstreamConfig, UpstreamIdentity, UpstreamTlsConfig};
use crate::kafka::sasl::{
    decode_sasl_authenticate_response, decode_sasl_handshake_response, sasl_authenticate_request,
    sasl_handshake_request,
};
use crate::kafka::{FrameError, FrameReader, response_correlation_id, write_frame};
use crate::oauth::sasl_message::ERROR_ACKNOWLEDGEMENT;
use crate::oauth::{IssuedToken, TokenIssuer};
use crate::scram::{Mechanism, ScramClient, ScramError, new_nonce};
use crate::session::ConnectionIdentity;

/// SASL responses are a few hundred bytes; anything near this is not a SASL response.
const MAX_SASL_FRAME: usize = 64 * 1024;
/// How long a broker's refusal of a pool's password is remembered. Clients reconnect at once
/// after a refusal (librdkafka every few tens of milliseconds); within this window they are
/// refused from memory instead of costing the broker a SCRAM login (a key derivation) each.
/// A different password (a rotated secret) is always tried at once.
const REFUSAL_MEMORY: Duration = Duration::from_secs(2);
/// How much of a broker's OAUTHBEARER error report goes into the refusal reason.
const MAX_OAUTH_ERROR_REPORT: usize = 512;

/// Which broker a client connection is meant for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Any of the configured bootstrap servers.
    Bootstrap,
    /// The broker with this node id, as learned from the cluster.
    Node(i32),
}

/// Node id → the broker's own address, learned from Metadata, FindCoordinator and
/// DescribeCluster responses.
#[derive(Debug, Default)]
pub struct BrokerBook {
    nodes: RwLock<HashMap<i32, (String, u16)>>,
}

impl BrokerBook {
    /// Record a broker address; returns true when it is new or changed.
    pub fn learn(&self, node_id: i32, host: &str, port: i32) -> bool {
        let Ok(port) = u16::try_from(port) else {
            return false;
        };
        if node_id < 0 || host.is_empty() {
            return false;
        }
        let Ok(mut nodes) = self.nodes.write() else {
            return false;
        };
        match nodes.get(&node_id) {
            Some((h, p)) if h == host && *p == port => false,
            _ => {
                nodes.insert(node_id, (host.to_string(), port));
                true
            }
        }
    }

    pub fn lookup(&self, node_id: i32) -> Option<(String, u16)> {
        self.nodes.read().ok()?.get(&node_id).cloned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no broker address is known for node {0} yet (the client must fetch metadata first)")]
    UnknownNode(i32),
    #[error("cannot connect to upstream broker {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("timed out after {ms} ms connecting to upstream broker {addr}")]
    Timeout { addr: String, ms: u128 },
    #[error("TLS handshake with upstream broker {addr} failed: {source}")]
    Tls { addr: String, source: io::Error },
    #[error("upstream TLS configuration: {0}")]
    TlsConfig(String),
    #[error("every bootstrap server failed: {0}")]
    AllBootstrapFailed(String),
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
}

/// An upstream byte stream, plaintext or TLS.
pub enum UpstreamStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamStream::Plain(s) => s.is_write_vectored(),
            UpstreamStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Presents the proxy's own certificate to brokers that ask for one.
#[derive(Debug)]
struct ProxyClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for ProxyClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Opens upstream connections. One per proxy configuration; shared by all connections.
pub struct UpstreamConnector {
    bootstrap: Vec<(String, u16)>,
    tls: Option<(tokio_rustls::TlsConnector, Option<String>)>,
    connect_timeout: Duration,
    book: Arc<BrokerBook>,
    identity: UpstreamIdentity,
    /// Pool id → the broker's last refusal of its credentials (see [`REFUSAL_MEMORY`]). A
    /// std mutex: held for a map lookup or insert only, never across an await.
    refusals: std::sync::Mutex<HashMap<String, RememberedRefusal>>,
    /// Signs the token of each connection in oauthbearer mode ([`Self::with_token_issuer`]).
    token_issuer: Option<TokenIssuer>,
}

/// A refusal, and which password it was for (a SHA-256 digest; the password is not kept).
struct RememberedRefusal {
    at: std::time::Instant,
    password_digest: Vec<u8>,
    addr: String,
    user: String,
    reason: String,
}

/// How one connection signs in to the broker.
enum Login {
    Scram(PoolLogin),
    OAuthBearer(BearerLogin),
}

/// A token signed for one connection and the SASL message that carries it. Refusals are not
/// remembered as SCRAM's are: a token costs a signature, not a key derivation on the broker.
struct BearerLogin {
    pool: String,
    token: IssuedToken,
    message: Bytes,
}

/// The credentials one connection authenticates with, read at connect time.
struct PoolLogin {
    pool: String,
    user: String,
    mechanism: Mechanism,
    password: Vec<u8>,
}

impl UpstreamConnector {
    pub fn new(
        config: &UpstreamConfig,
        book: Arc<BrokerBook>,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Self, UpstreamError> {
        let tls = match &config.tls {
            None => None,
            Some(t) => Some((tls_connector(t, provider)?, t.server_name.clone())),
        };
        Ok(Self {
            bootstrap: config.bootstrap_servers.clone(),
            tls,
            connect_timeout: config.connect_timeout,
            book,
            identity: config.identity.clone(),
            refusals: std::sync::Mutex::new(HashMap::new()),
            token_issuer: None,
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

    /// Connect on behalf of `identity` to `target`; in scram mode, authenticate as the
    /// primary pool's broker user before returning the stream.
    pub async fn connect(
        &self,
        target: Target,
        identity: &ConnectionIdentity,
    ) -> Result<UpstreamConnection, UpstreamError> {
        let login = self.login_for(identity)?;
        match target {
            Target::Node(id) => {
                let (host, port) = self.book.lookup(id).ok_or(UpstreamError::UnknownNode(id))?;
                let addr = format!("{host}:{port}");
                let mut stream = self.connect_to(&host, port).await?;
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
                for (host, port) in &self.bootstrap {
                    let addr = format!("{host}:{port}");
                    let mut stream = match self.connect_to(host, *port).await {
                        Ok(s) => s,
                        Err(e) => {
                            errors.push(e.to_string());
                            continue;
                        }
                    };
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
                Err(UpstreamError::AllBootstrapFailed(errors.join("; ")))
            }
        }
    }

    /// Log in again as `identity`'s primary pool over a live connection (KIP-368), reading the
    /// pool's secret now so a rotated password takes effect. Returns the new session lifetime.
    /// In `mode: none` there is nothing to renew.
    ///
    /// The refusal memory is neither consulted nor fed: it exists to spare the broker a storm of
    /// reconnects, and a re-authentication happens once per lifetime per connection. A refusal
    /// that is specific to re-authentication (tansu 0.6 answers any second SaslHandshake with
    /// UNSUPPORTED_SASL_MECHANISM) must not refuse fresh logins that would succeed.
    pub(crate) async fn reauthenticate<T: SaslTransport>(
        &self,
        transport: &mut T,
        addr: &str,
        identity: &ConnectionIdentity,
    ) -> Result<Option<Duration>, UpstreamError> {
        match self.login_for(identity)? {
            Some(login) => self.sign_in_now(transport, addr, &login).await,
            None => Ok(None),
        }
    }

    /// The primary pool's credentials with the password read now (a token signed now in
    /// oauthbearer mode), or `None` in `mode: none`.
    fn login_for(&self, identity: &ConnectionIdentity) -> Result<Option<Login>, UpstreamError> {
        if let Some(issuer) = &self.token_issuer {
            return bearer_login(issuer, identity).map(|l| Some(Login::OAuthBearer(l)));
        }
        let UpstreamIdentity::Scram {
            mechanism,
            credentials,
        } = &self.identity
        else {
            return Ok(None);
        };
        let primary = identity
            .resolved
            .evaluation
            .resolution
            .primary()
            .ok_or(UpstreamError::NoPool)?;
        let pool = primary.pool_id.clone();
        // A pool created through the admin API after the configuration was loaded can lack
        // credentials; it is refused here like a wrong password.
        let credential = credentials
            .get(&pool)
            .ok_or_else(|| UpstreamError::NoCredentials(pool.clone()))?;
        let password = credential
            .password
            .read()
            .map_err(|reason| UpstreamError::Secret {
                pool: pool.clone(),
                reason,
            })?;
        Ok(Some(Login::Scram(PoolLogin {
            pool,
            user: credential.username.clone(),
            mechanism: *mechanism,
            password,
        })))
    }

    /// Sign in with `login` over `transport` (the first login of a connection): SCRAM goes
    /// through the refusal memory, a token does not. Returns the session lifetime granted.
    async fn sign_in<T: SaslTransport>(
        &self,
        transport: &mut T,
        addr: &str,
        login: &Login,
    ) -> Result<Option<Duration>, UpstreamError> {
        match login {
            Login::Scram(scram) => {
                self.remembering_refusals(scram, self.sign_in_now(transport, addr, login))
                    .await
            }
            Login::OAuthBearer(_) => self.sign_in_now(transport, addr, login).await,
        }
    }

    /// Sign in now, bounded by the connect timeout, without the refusal memory (also the
    /// re-authentication path, see [`Self::reauthenticate`]).
    async fn sign_in_now<T: SaslTransport>(
        &self,
        transport: &mut T,
        addr: &str,
        login: &Login,
    ) -> Result<Option<Duration>, UpstreamError> {
        match login {
            Login::Scram(login) => {
                self.bounded(addr, &login.pool, self.scram(transport, addr, login))
                    .await
            }
            Login::OAuthBearer(login) => {
                self.bounded(addr, &login.pool, self.oauthbearer(transport, addr, login))
                    .await
            }
        }
    }

    /// One sign-in exchange, bounded by the connect timeout (the broker may never answer).
    async fn bounded(
        &self,
        addr: &str,
        pool: &str,
        exchange: impl std::future::Future<Output = Result<Option<Duration>, UpstreamError>>,
    ) -> Result<Option<Duration>, UpstreamError> {
        match tokio::time::timeout(self.connect_timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(UpstreamError::Sasl {
                addr: addr.to_string(),
                pool: pool.to_string(),
                reason: format!("no answer within {} ms", self.connect_timeout.as_millis()),
            }),
        }
    }

    /// SaslHandshake v1 `OAUTHBEARER`, then the token in one SaslAuthenticate v2 (RFC 7628).
    /// A broker that refuses the token answers with an error report instead of an empty
    /// message; the client acknowledges it with `\x01` and the broker then fails the exchange
    /// with an error code (§3.2.3). Either way it is [`UpstreamError::SaslRefused`].
    async fn oauthbearer<T: SaslTransport>(
        &self,
        transport: &mut T,
        addr: &str,
        login: &BearerLogin,
    ) -> Result<Option<Duration>, UpstreamError> {
        let mechanism = crate::oauth::MECHANISM;
        let who = SignInParty {
            addr,
            pool: &login.pool,
            user: &login.token.subject,
            mechanism,
        };
        let (failed, refused) = (|r| who.failed(r), |r| who.refused(r));
        self.handshake(transport, mechanism)
            .await
            .map_err(|step| step.into_error(&failed, &refused))?;
        let answer = self
            .authenticate_step(transport, login.message.clone())
            .await
            .map_err(|step| step.into_error(&failed, &refused))?;
        let report = answer.auth_bytes;
        if report.is_empty() {
            tracing::debug!(
                pool = %login.pool,
                kid = %login.token.kid,
                upstream = %addr,
                session_lifetime_ms = answer.session_lifetime_ms,
                "authenticated to the broker with a token for the pool"
            );
            return Ok(session_lifetime(answer.session_lifetime_ms));
        }
        let report = String::from_utf8_lossy(&report[..report.len().min(MAX_OAUTH_ERROR_REPORT)])
            .into_owned();
        let outcome = match self
            .authenticate_step(transport, Bytes::from_static(ERROR_ACKNOWLEDGEMENT))
            .await
        {
            Err(StepError::Refused(reason) | StepError::Failed(reason)) => reason,
            Ok(_) => "and then accepted the error acknowledgement".to_string(),
        };
        Err(refused(format!("the broker reported {report}; {outcome}")))
    }

    /// Run a SCRAM sign-in (`exchange`) through the refusal memory (see [`REFUSAL_MEMORY`]): a
    /// password the broker just refused is refused from memory, without asking the broker.
    async fn remembering_refusals(
        &self,
        login: &PoolLogin,
        exchange: impl std::future::Future<Output = Result<Option<Duration>, UpstreamError>>,
    ) -> Result<Option<Duration>, UpstreamError> {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(&login.password).to_vec();
        if let Ok(refusals) = self.refusals.lock()
            && let Some(r) = refusals.get(&login.pool)
            && r.password_digest == digest
            && r.at.elapsed() < REFUSAL_MEMORY
        {
            return Err(UpstreamError::SaslRefused {
                addr: r.addr.clone(),
                pool: login.pool.clone(),
                user: r.user.clone(),
                mechanism: login.mechanism.name(),
                reason: format!("{} (remembered for {:?})", r.reason, REFUSAL_MEMORY),
            });
        }
        let result = exchange.await;
        if let Ok(mut refusals) = self.refusals.lock() {
            match &result {
                Err(UpstreamError::SaslRefused {
                    addr, user, reason, ..
                }) => {
                    refusals.insert(
                        login.pool.clone(),
                        RememberedRefusal {
                            at: std::time::Instant::now(),
                            password_digest: digest,
                            addr: addr.clone(),
                            user: user.clone(),
                            reason: reason.clone(),
                        },
                    );
                }
                Ok(_) => {
                    refusals.remove(&login.pool);
                }
                Err(_) => {}
            }
        }
        result
    }

    /// The SCRAM mechanism: handshake, client-first, client-final, verify server-final.
    /// Returns the session lifetime of the final SaslAuthenticate answer.
    async fn scram<T: SaslTransport>(
        &self,
        transport: &mut T,
        addr: &str,
        login: &PoolLogin,
    ) -> Result<Option<Duration>, UpstreamError> {
        let mechanism = login.mechanism.name();
        let who = SignInParty {
            addr,
            pool: &login.pool,
            user: &login.user,
            mechanism,
        };
        let (failed, refused) = (|r| who.failed(r), |r| who.refused(r));
        let scram_error = |e: ScramError| match e {
            ScramError::ServerError(_) | ScramError::ServerSignature | ScramError::Username(_) => {
                refused(e.to_string())
            }
            _ => failed(e.to_string()),
        };

        self.handshake(transport, mechanism)
            .await
            .map_err(|step| step.into_error(&failed, &refused))?;

        let mut client =
            ScramClient::new(login.mechanism, &login.user, new_nonce()).map_err(scram_error)?;
        let server_first = self
            .authenticate_step(transport, Bytes::from(client.client_first()))
            .await
            .map_err(|step| step.into_error(&failed, &refused))?;
        let client_final = client
            .client_final(&server_first.auth_bytes, &login.password)
            .map_err(scram_error)?;
        let server_final = self
            .authenticate_step(transport, Bytes::from(client_final))
            .await
            .map_err(|step| step.into_error(&failed, &refused))?;
        client
            .verify_server_final(&server_final.auth_bytes)
            .map_err(scram_error)?;
        tracing::debug!(
            pool = %login.pool,
            user = %login.user,
            mechanism,
            upstream = %addr,
            session_lifetime_ms = server_final.session_lifetime_ms,
            "authenticated to the broker as the pool's upstream identity"
        );
        Ok(session_lifetime(server_final.session_lifetime_ms))
    }

    /// SaslHandshake v1: is `mechanism` enabled on this listener? Shared by every mechanism.
    async fn handshake<T: SaslTransport>(
        &self,
        transport: &mut T,
        mechanism: &'static str,
    ) -> Result<(), StepError> {
        let request =
            sasl_handshake_request(0, mechanism).map_err(|e| StepError::Failed(e.to_string()))?;
        let frame = transport
            .round_trip(request)
            .await
            .map_err(|e| StepError::Failed(e.to_string()))?;
        let (_, response) =
            decode_sasl_handshake_response(&frame).map_err(|e| StepError::Failed(e.to_string()))?;
        if response.error_code != 0 {
            let offered: Vec<&str> = response.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(StepError::Refused(format!(
                "SaslHandshake error {} ({}); the broker offers [{}]",
                response.error_code,
                error_name(response.error_code),
                offered.join(", ")
            )));
        }
        Ok(())
    }

    /// One SaslAuthenticate round trip.
    async fn authenticate_step<T: SaslTransport>(
        &self,
        transport: &mut T,
        auth_bytes: Bytes,
    ) -> Result<StepAnswer, StepError> {
        let request = sasl_authenticate_request(0, auth_bytes)
            .map_err(|e| StepError::Failed(e.to_string()))?;
        let frame = transport
            .round_trip(request)
            .await
            .map_err(|e| StepError::Failed(e.to_string()))?;
        let (_, response) = decode_sasl_authenticate_response(&frame)
            .map_err(|e| StepError::Failed(e.to_string()))?;
        if response.error_code != 0 {
            let message = response
                .error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            return Err(StepError::Refused(format!(
                "SaslAuthenticate error {} ({}){}",
                response.error_code,
                error_name(response.error_code),
                if message.is_empty() {
                    String::new()
                } else {
                    format!(": {message}")
                }
            )));
        }
        Ok(StepAnswer {
            auth_bytes: response.auth_bytes,
            session_lifetime_ms: response.session_lifetime_ms,
        })
    }

    async fn connect_to(&self, host: &str, port: u16) -> Result<UpstreamStream, UpstreamError> {
        let addr = format!("{host}:{port}");
        let tcp = match tokio::time::timeout(self.connect_timeout, TcpStream::connect((host, port)))
            .await
        {
            Err(_) => {
                return Err(UpstreamError::Timeout {
                    addr,
                    ms: self.connect_timeout.as_millis(),
                });
            }
            Ok(Err(source)) => return Err(UpstreamError::Connect { addr, source }),
            Ok(Ok(s)) => s,
        };
        // Kafka is request/response: small frames must not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let Some((connector, server_name)) = &self.tls else {
            return Ok(UpstreamStream::Plain(tcp));
        };
        let name = server_name.as_deref().unwrap_or(host);
        let name = ServerName::try_from(name.to_string())
            .map_err(|e| UpstreamError::TlsConfig(format!("`{name}`: {e}")))?;
        let tls = tokio::time::timeout(self.connect_timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| UpstreamError::Timeout {
                addr: addr.clone(),
                ms: self.connect_timeout.as_millis(),
            })?
            .map_err(|source| UpstreamError::Tls { addr, source })?;
        Ok(UpstreamStream::Tls(Box::new(tls)))
    }
}

/// A token for the connection's primary pool and its SASL message.
fn bearer_login(
    issuer: &TokenIssuer,
    identity: &ConnectionIdentity,
) -> Result<BearerLogin, UpstreamError> {
    let resolution = &identity.resolved.evaluation.resolution;
    let pool = resolution
        .primary()
        .ok_or(UpstreamError::NoPool)?
        .pool_id
        .clone();
    let token_error = |e: crate::oauth::TokenError| UpstreamError::Token {
        pool: pool.clone(),
        reason: e.to_string(),
    };
    let token = issuer.issue(resolution).map_err(token_error)?;
    let message = issuer.sasl_message(&token).map_err(token_error)?;
    Ok(BearerLogin {
        pool: pool.clone(),
        token,
        message: Bytes::from(message),
    })
}

/// Who signs in where, for the two ways a sign-in fails.
struct SignInParty<'a> {
    addr: &'a str,
    pool: &'a str,
    user: &'a str,
    mechanism: &'static str,
}

impl SignInParty<'_> {
    /// The exchange itself failed (I/O, protocol, timeout): not the broker's verdict.
    fn failed(&self, reason: String) -> UpstreamError {
        UpstreamError::Sasl {
            addr: self.addr.to_string(),
            pool: self.pool.to_string(),
            reason,
        }
    }

    /// The broker refused the pool's credentials (or could not prove it knows them).
    fn refused(&self, reason: String) -> UpstreamError {
        UpstreamError::SaslRefused {
            addr: self.addr.to_string(),
            pool: self.pool.to_string(),
            user: self.user.to_string(),
            mechanism: self.mechanism,
            reason,
        }
    }
}

/// How one SASL round trip failed.
enum StepError {
    Failed(String),
    Refused(String),
}

impl StepError {
    fn into_error(
        self,
        failed: &impl Fn(String) -> UpstreamError,
        refused: &impl Fn(String) -> UpstreamError,
    ) -> UpstreamError {
        match self {
            StepError::Failed(reason) => failed(reason),
            StepError::Refused(reason) => refused(reason),
        }
    }
}

/// What a mechanism needs from one successful SaslAuthenticate answer.
struct StepAnswer {
    auth_bytes: Bytes,
    /// KIP-368: how long the session lasts from now; meaningful on the final step only.
    session_lifetime_ms: i64,
}

/// A broker's `session_lifetime_ms`: zero or negative means the session never expires.
fn session_lifetime(ms: i64) -> Option<Duration> {
    u64::try_from(ms)
        .ok()
        .filter(|&ms| ms > 0)
        .map(Duration::from_millis)
}

fn error_name(code: i16) -> String {
    match kafka_protocol::ResponseError::try_from_code(code) {
        Some(e) => format!("{e:?}"),
        None => "unknown error".to_string(),
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

/// Why a SASL request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SaslTransportError {
    #[error("write: {0}")]
    Write(io::Error),
    #[error("read: {0}")]
    Read(FrameError),
    #[error("the broker closed the connection")]
    Closed,
    #[error("answered correlation id {got}, expected {expected}")]
    Correlation { expected: i32, got: i32 },
    #[error("malformed SASL request or response: {0}")]
    Protocol(crate::kafka::ProtocolError),
    /// The live session ended (the broker or the client went away) before the answer came.
    #[error("the session ended before the broker answered")]
    SessionEnded,
}

/// One SASL request to the broker and its answer, whatever carries them: the raw stream of a
/// fresh connection (the first login) or a live session (re-authentication, KIP-368). The
/// login code ([`UpstreamConnector::scram`] and the shared handshake) is written once against
/// this trait.
///
/// The transport owns the correlation ids of its connection, because only it knows which ids
/// are in use there: `request` is a whole request frame (no size prefix) whose correlation id
/// the transport overwrites with its own ([`stamp_correlation_id`]), and the answer returned
/// is checked to carry that id.
pub(crate) trait SaslTransport {
    async fn round_trip(&mut self, request: Bytes) -> Result<Bytes, SaslTransportError>;
}

/// Write `correlation_id` into a request frame: bytes 4..8 in every request header version
/// (api key, api version, correlation id come first).
pub(crate) fn stamp_correlation_id(
    request: &[u8],
    correlation_id: i32,
) -> Result<Bytes, SaslTransportError> {
    let mut out = bytes::BytesMut::from(request);
    let slot = out.get_mut(4..8).ok_or(SaslTransportError::Protocol(
        crate::kafka::ProtocolError::Truncated {
            what: "request header",
        },
    ))?;
    slot.copy_from_slice(&correlation_id.to_be_bytes());
    Ok(out.freeze())
}

/// The raw stream of a fresh upstream connection, before any client frame: nothing else is in
/// flight, so any correlation id is free; counting up from 1 keeps broker logs readable.
struct StreamTransport<'a, S> {
    stream: &'a mut S,
    next_correlation_id: i32,
}

impl<'a, S> StreamTransport<'a, S> {
    fn new(stream: &'a mut S) -> Self {
        Self {
            stream,
            next_correlation_id: 1,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> SaslTransport for StreamTransport<'_, S> {
    async fn round_trip(&mut self, request: Bytes) -> Result<Bytes, SaslTransportError> {
        let id = self.next_correlation_id;
        self.next_correlation_id = id.wrapping_add(1);
        let request = stamp_correlation_id(&request, id)?;
        write_frame(&mut *self.stream, &request)
            .await
            .map_err(SaslTransportError::Write)?;
        self.stream
            .flush()
            .await
            .map_err(SaslTransportError::Write)?;
        // The broker sends nothing else before answering: the reader cannot take bytes that
        // belong to a later frame.
        let mut reader = FrameReader::new(&mut *self.stream, MAX_SASL_FRAME);
        let frame = match reader.read_frame().await {
            Ok(Some(frame)) => frame,
            Ok(None) => return Err(SaslTransportError::Closed),
            Err(e) => return Err(SaslTransportError::Read(e)),
        };
        let got = response_correlation_id(&frame).map_err(SaslTransportError::Protocol)?;
        if got != id {
            return Err(SaslTransportError::Correlation { expected: id, got });
        }
        Ok(frame)
    }
}

fn tls_connector(
    t: &UpstreamTlsConfig,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<tokio_rustls::TlsConnector, UpstreamError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| UpstreamError::TlsConfig(e.to_string()))?
        .with_root_certificates(t.roots.clone());
    let config = match &t.client_key {
        Some(key) => builder.with_client_cert_resolver(Arc::new(ProxyClientCert(key.clone()))),
        None => builder.with_no_client_auth(),
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
