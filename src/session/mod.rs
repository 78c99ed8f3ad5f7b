//! One client connection, from the TLS handshake to the close.
//!
//! [`Session::run`] goes handshake → identity → upstream → pump, and ends with one
//! [`end::SessionEnd`], which [`end::SessionEnd::report`] turns into the closing log line, the
//! metric and the audit record in one place.
//!
//! - [`in_flight`]: what the client asked, in order; `acks=0`; the proxy's own requests.
//! - [`pump`]: the two loops that move frames, through the filter chains ([`crate::session::filter`]).
//! - [`reauth`]: KIP-368 re-authentication to the broker on the live connection.
//! - [`refusal`]: the short conversation with a client whose pool the broker refused.
//! - [`live`]: the admitted connections, re-evaluated on reload.
//! - [`brokers`]: the broker directory (upstream addresses, the proxy's listeners).

pub mod brokers;
pub(crate) mod end;
pub(crate) mod filter;
mod handoff;
pub(crate) mod in_flight;
pub mod live;
pub(crate) mod pump;
pub(crate) mod reauth;
pub(crate) mod refusal;
#[cfg(test)]
mod test_budget;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio::sync::{broadcast, watch};
use tracing::{Instrument, debug, info, warn};

use crate::audit::{AttemptOutcome, AuditSink, AuthenticationAttempt};
use crate::config::{SniConfig, SniRoute};
use crate::generation::Generation;
use crate::kafka::budget::RequestBudget;
use crate::log_limit::Level;
use crate::metrics::{ConnectionRefusal, Metrics, UNVERIFIED_BROKER_LISTENER};
use crate::pools::Resolved;
use crate::session::filter::acl::AclFilter;
use crate::session::filter::local::LocalAnswers;
use crate::session::filter::{RequestChain, ResponseChain};
use crate::tls::crl::FetchedCrls;
use crate::tls::sni::{HelloError, read_client_hello, refuse_unrecognized_name};
use crate::tls::{HandshakeOutcome, RefusalReason, Verdict};
use crate::upstream::{Discovery, Target, UpstreamConnection};

pub use brokers::{BrokerDirectory, BrokerListeners, ServeBroker, broker_listeners};
pub use live::LiveConnections;

use end::{Party, SessionEnd};
use pump::{PumpLimits, RequestSide, ResponseSide};
use reauth::Reauthentication;

/// Who is on the other end of an admitted connection. Built once, after the handshake.
#[derive(Debug, Clone)]
pub struct ConnectionIdentity {
    pub connection_id: String,
    pub peer: SocketAddr,
    /// The load balancer that relayed the client (PROXY protocol), if any.
    pub via: Option<SocketAddr>,
    /// The TLS server name the client asked for (SNI), if it sent one.
    pub server_name: Option<String>,
    pub resolved: Arc<Resolved>,
    /// Certificate authorities that verified the client chain.
    pub verified_by: Vec<String>,
}

impl ConnectionIdentity {
    /// `User:<pool-id>` for every matched pool.
    pub fn principals(&self) -> &[String] {
        &self.resolved.evaluation.resolution.principals
    }

    /// The pool the connection acts as upstream (empty when none matched).
    pub fn primary_pool(&self) -> String {
        self.resolved
            .evaluation
            .resolution
            .primary()
            .map(|p| p.pool_id.clone())
            .unwrap_or_default()
    }
}

/// What every session is handed: the handles it uses, nothing else.
pub struct SessionHandles {
    /// The current configuration generation; a session takes it at its start.
    pub generations: watch::Receiver<Arc<Generation>>,
    pub audit: AuditSink,
    pub metrics: Arc<Metrics>,
    pub brokers: BrokerDirectory,
    /// The response filters (the same for every session: addresses depend on the listeners).
    pub(crate) responses: ResponseChain,
    pub live: Arc<LiveConnections>,
    /// Where the CRL distribution points of admitted client certificates are reported.
    pub crls: Arc<FetchedCrls>,
    /// Request bytes held across every connection (`limits.max_buffered_request_bytes`).
    pub budget: Arc<RequestBudget>,
    /// `listener.sni`: route each connection by its TLS server name; `None`: by its listener.
    pub sni: Option<Arc<SniConfig>>,
}

impl SessionHandles {
    /// `live` and `crls` are the reloader's: it re-evaluates the one and fetches for the other.
    pub fn new(
        generations: watch::Receiver<Arc<Generation>>,
        audit: AuditSink,
        metrics: Arc<Metrics>,
        brokers: BrokerDirectory,
        mapper: Arc<dyn crate::kafka::rewrite::AddressMapper + Send + Sync>,
        (live, crls): (Arc<LiveConnections>, Arc<FetchedCrls>),
        max_buffered_request_bytes: usize,
    ) -> Self {
        let budget = RequestBudget::new(max_buffered_request_bytes, metrics.request_budget());
        Self {
            budget,
            generations,
            audit,
            metrics,
            brokers,
            responses: ResponseChain::new(crate::session::filter::rewrite::AddressRewrite::new(
                mapper,
            )),
            live,
            crls,
            sni: None,
        }
    }

    /// Route connections by their TLS server name (`listener.sni`).
    pub fn with_sni(mut self, sni: Option<SniConfig>) -> Self {
        self.sni = sni.map(Arc::new);
        self
    }
}

/// One accepted client connection.
pub struct Session {
    pub handles: Arc<SessionHandles>,
    pub connection_id: String,
    /// The client's address: the socket's, or the one a trusted PROXY protocol header gave.
    pub peer: SocketAddr,
    /// The load balancer's address when a PROXY protocol header named the client.
    pub via: Option<SocketAddr>,
    /// The listener it came in on; with `listener.sni`, the broker its server name named.
    pub target: Target,
    /// The TLS server name the client asked for (SNI); read with the ClientHello, before the
    /// handshake, only with `listener.sni`.
    pub server_name: Option<String>,
}

impl Session {
    /// Serve the connection until it closes. Not an `async fn` (nor is `route_and_serve`): its
    /// future would store its arguments twice, in every session's future for its whole life.
    pub fn run(
        self,
        tcp: TcpStream,
        shutdown: broadcast::Receiver<()>,
    ) -> impl Future<Output = ()> {
        let span = tracing::info_span!(
            "conn",
            id = %self.connection_id,
            peer = %self.peer,
            listener = tracing::field::Empty,
            sni = tracing::field::Empty,
            via = tracing::field::Empty,
            pools = tracing::field::Empty,
            identifier = tracing::field::Empty,
        );
        // Known now unless the server name decides it (SNI routing: recorded once routed).
        if self.handles.sni.is_none() {
            let listener = crate::metrics::listener_label(self.target);
            span.record("listener", tracing::field::display(listener));
        }
        if let Some(via) = self.via {
            span.record("via", tracing::field::display(via));
        }
        let _ = tcp.set_nodelay(true);
        self.route_and_serve(tcp, shutdown).instrument(span)
    }

    /// With `listener.sni`, read the ClientHello and route by its server name first; then
    /// serve the connection as its listener's.
    #[allow(
        clippy::manual_async_fn,
        reason = "an `async fn` stores its arguments twice in its future, held for the whole session"
    )]
    fn route_and_serve(
        mut self,
        tcp: TcpStream,
        shutdown: broadcast::Receiver<()>,
    ) -> impl Future<Output = ()> {
        async move {
            // This connection lives with the configuration it started with, whatever reloads
            // follow.
            let generation = self.handles.generations.borrow().clone();
            let budget = generation.config.limits.handshake_timeout;
            // One deadline for the whole handshake, ClientHello included.
            let deadline = tokio::time::Instant::now() + budget;
            // A node id no one could check before the handshake (see `Routed::verified`).
            let mut unverified = false;
            let client = match self.handles.sni.clone() {
                None => Client::Accepted(tcp),
                Some(sni) => {
                    let Some(routed) =
                        Box::pin(self.route(&sni, &generation, tcp, deadline, budget)).await
                    else {
                        return;
                    };
                    self.target = routed.target;
                    self.server_name = routed.server_name;
                    unverified = !routed.verified;
                    let listener = listener_label(self.target, unverified);
                    tracing::Span::current().record("listener", tracing::field::display(&listener));
                    Client::HelloRead(Box::new(routed.start))
                }
            };
            let listener = listener_label(self.target, unverified);
            let _open = self.handles.metrics.connection_opened_on(&listener);
            self.serve(client, &generation, (deadline, budget), &listener, shutdown)
                .await
        }
    }

    /// Where the ClientHello's server name leads; `None` when the connection was refused
    /// (reported here).
    async fn route(
        &self,
        sni: &SniConfig,
        generation: &Generation,
        tcp: TcpStream,
        deadline: tokio::time::Instant,
        budget: std::time::Duration,
    ) -> Option<Routed> {
        let hello = match read_client_hello(tcp, deadline, budget).await {
            Ok(hello) => hello,
            Err(e) => {
                let reason = match e {
                    HelloError::Timeout(_) => RefusalReason::HandshakeTimeout,
                    HelloError::Read(_) => RefusalReason::HandshakeFailed,
                };
                let end = SessionEnd::Refused {
                    reason,
                    detail: e.to_string(),
                    verdict: None,
                };
                let listener = crate::metrics::listener_label(self.target);
                end.report(
                    self.party(),
                    &listener,
                    &self.handles.audit,
                    &self.handles.metrics,
                );
                return None;
            }
        };
        let name = hello.server_name.as_deref();
        if let Some(name) = name {
            tracing::Span::current().record("sni", tracing::field::display(name));
        }
        let mut verified = true;
        let target = match sni.route(name) {
            SniRoute::Bootstrap => Some(Target::Bootstrap),
            SniRoute::Broker(id) => {
                // A node id the broker book does not know yet is looked up (a broker that
                // joined later) before anything is answered; a lookup that outlives the
                // handshake's time counts as not found.
                let discovery = tokio::time::timeout_at(deadline, generation.upstream.discover(id));
                match discovery.await {
                    Ok(Discovery::Known) => Some(Target::Node(id)),
                    Ok(Discovery::AfterLogin) => {
                        verified = false;
                        Some(Target::Node(id))
                    }
                    Ok(Discovery::Failed) => {
                        // Not known to be no broker: refused as a down broker's client is (a
                        // reset, no alert), so the client retries; logged by `discover`.
                        let _ = hello.start.io.set_zero_linger();
                        self.handles.metrics.connection_refused_on(
                            UNVERIFIED_BROKER_LISTENER,
                            ConnectionRefusal::BrokerLookupFailed,
                        );
                        debug!(
                            "closed before the TLS handshake: the broker could not be looked up"
                        );
                        return None;
                    }
                    Ok(Discovery::Unknown) | Err(_) => None,
                }
            }
            SniRoute::Unrecognized => None,
        };
        if let Some(target) = target {
            return Some(Routed {
                target,
                start: hello.start,
                server_name: hello.server_name,
                verified,
            });
        }
        let name = name.unwrap_or_default();
        self.handles.metrics.sni_unrecognized();
        if crate::log_limit::warnings().admit(Level::Warn, "unrecognized server name", name) {
            warn!(
                server_name = name,
                "refused before the TLS handshake: the server name is neither the bootstrap name \
                 nor a broker of the cluster (alert unrecognized_name)"
            );
        }
        refuse_unrecognized_name(hello.start.io, budget).await;
        None
    }

    /// The client before its handshake, for a refusal's report.
    fn party(&self) -> Party<'_> {
        Party::Unknown {
            connection_id: &self.connection_id,
            peer: self.peer,
            via: self.via,
            server_name: self.server_name.as_deref(),
        }
    }

    async fn serve(
        &self,
        client: Client,
        generation: &Arc<Generation>,
        (deadline, budget): (tokio::time::Instant, std::time::Duration),
        listener: &str,
        shutdown: broadcast::Receiver<()>,
    ) {
        // The steps before the pump are boxed: each is a large state held only while it runs,
        // and inline they would add to the size of every session's future for its whole life.
        if !Box::pin(generation.upstream.admit(self.target)).await {
            // Its broker is down: a TCP reset before any TLS byte, as near as an accepted
            // connection gets to a refused connect, so the client backs off as it would from
            // the broker itself (a handshake then a close would count as a connection that
            // worked).
            let _ = client.tcp().set_zero_linger();
            self.handles
                .metrics
                .connection_refused_on(listener, ConnectionRefusal::UpstreamDown);
            debug!("closed before the TLS handshake: the upstream broker is down");
            return;
        }
        let outcome = match client {
            Client::Accepted(tcp) => Box::pin(generation.tls.accept(tcp, budget)).await,
            Client::HelloRead(start) => {
                Box::pin(generation.tls.accept_started(*start, deadline, budget)).await
            }
        };
        let (mut tls, verdict) = match outcome {
            HandshakeOutcome::Admitted { stream, verdict } => (stream, verdict),
            HandshakeOutcome::Refused {
                reason,
                detail,
                verdict,
            } => {
                let end = SessionEnd::Refused {
                    reason,
                    detail,
                    verdict: verdict.map(Box::new),
                };
                return end.report(
                    self.party(),
                    listener,
                    &self.handles.audit,
                    &self.handles.metrics,
                );
            }
        };
        let Some(identity) = self.admitted(&verdict, listener) else {
            return;
        };
        // Taken, not copied: the live registry keeps the chain for the connection's life, and
        // rustls need not (vendor/rustls/PATCHED.md).
        let chain: Vec<CertificateDer<'static>> =
            tls.get_mut().1.take_peer_certificates().unwrap_or_default();
        learn_crl_urls(&self.handles.crls, generation, &identity);
        let (_live, closed_by_reload) = self.handles.live.register(&identity, listener, chain);
        // The broker's session lifetime counts from no later than this (the proxy errs early).
        let login_started = tokio::time::Instant::now();
        let resolution = &identity.resolved.evaluation.resolution;
        let party = Party::Admitted(&identity);
        let upstream = match Box::pin(generation.upstream.connect(self.target, resolution)).await {
            Ok(upstream) => upstream,
            Err(e) => {
                let refused = e.refused_pool().is_some();
                // Reported while the client is still connected: by the time it sees the
                // close, the log line and the audit record exist.
                SessionEnd::NoUpstream(e).report(
                    party,
                    listener,
                    &self.handles.audit,
                    &self.handles.metrics,
                );
                if refused {
                    let limits = &generation.config.limits;
                    let (max_frame, timeout) = (limits.max_frame_bytes, limits.handshake_timeout);
                    if let Err(end) =
                        Box::pin(refusal::refuse_upstream_identity(tls, max_frame, timeout)).await
                    {
                        debug!(reason = %end, "refused client gone");
                    }
                }
                return;
            }
        };
        let end = tokio::select! {
            // The TLS stream stays boxed: moved by value, it would take room in this future
            // (and again in each one it is passed down to) for the whole session.
            end = self.proxy(generation, &identity, listener, tls, upstream, login_started, shutdown) => end,
            Ok(reason) = closed_by_reload => SessionEnd::NoLongerAdmitted(reason),
        };
        let handles = &self.handles;
        end.report(party, listener, &handles.audit, &handles.metrics);
    }

    /// Move frames between the client and the broker, through the filters, until the session
    /// ends.
    #[allow(
        clippy::too_many_arguments,
        reason = "the parts of one session, passed once"
    )]
    async fn proxy<C>(
        &self,
        generation: &Generation,
        identity: &ConnectionIdentity,
        listener: &str,
        client: C,
        upstream: UpstreamConnection,
        login_started: tokio::time::Instant,
        shutdown: broadcast::Receiver<()>,
    ) -> SessionEnd
    where
        C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        let handles = &self.handles;
        let limits = &generation.config.limits;
        debug!(
            upstream = %upstream.addr,
            session_lifetime_ms = upstream.session_lifetime.map(|l| l.as_millis() as u64),
            "upstream connected"
        );
        // The filters, in their fixed order (see `filter`).
        let acl = AclFilter::new(
            identity,
            listener,
            &handles.audit,
            &handles.metrics,
            handles.generations.clone(),
        );
        let requests = RequestSide {
            client,
            chain: RequestChain::new(LocalAnswers, Some(acl)),
            budget: handles.budget.clone(),
        };
        let responses = ResponseSide {
            chain: &handles.responses,
            brokers: &handles.brokers,
        };
        let reauth = Reauthentication::new(
            &generation.upstream,
            identity,
            &upstream.addr,
            limits.idle_timeout,
            &handles.metrics,
            login_started,
            upstream.session_lifetime,
        );
        let limits = PumpLimits {
            max_frame_bytes: limits.max_frame_bytes,
            idle_timeout: limits.idle_timeout,
            request_stall_timeout: limits.request_stall_timeout,
            max_in_flight_requests: limits.max_in_flight_requests,
            drain_timeout: limits.drain_timeout,
        };
        let pumped = pump::pump(
            requests,
            responses,
            upstream.stream,
            reauth,
            limits,
            &handles.metrics,
            shutdown,
        );
        match pumped.await {
            Ok(closed) => SessionEnd::Closed(closed),
            Err(end) => end,
        }
    }

    /// Audit, count and log an admitted handshake; the connection's identity.
    fn admitted(&self, verdict: &Verdict, listener: &str) -> Option<ConnectionIdentity> {
        let handles = &self.handles;
        handles.audit.authentication(&AuthenticationAttempt {
            connection_id: &self.connection_id,
            client_address: self.peer,
            via: self.via,
            server_name: self.server_name.as_deref(),
            listener,
            outcome: AttemptOutcome::Admitted(verdict),
        });
        let Verdict::Admitted {
            resolved,
            verified_by,
        } = verdict
        else {
            return None;
        };
        let identity = ConnectionIdentity {
            connection_id: self.connection_id.clone(),
            peer: self.peer,
            via: self.via,
            server_name: self.server_name.clone(),
            resolved: resolved.clone(),
            verified_by: verified_by.clone(),
        };
        handles.metrics.handshake_admitted();
        let span = tracing::Span::current();
        let resolution = &identity.resolved.evaluation.resolution;
        for pool in resolution.pool_ids() {
            handles.metrics.pool_matched(pool);
        }
        span.record("pools", resolution.pool_ids().join(",").as_str());
        if let Some(id) = &resolution.identifier {
            span.record("identifier", format!("{}={}", id.kind, id.value).as_str());
        }
        info!(principals = ?identity.principals(), "client authenticated");
        Some(identity)
    }
}

/// Where a ClientHello's server name leads (SNI routing).
struct Routed {
    target: Target,
    start: tokio_rustls::StartHandshake<TcpStream>,
    server_name: Option<String>,
    /// `false`: a node id the broker book does not know and the proxy could not ask about
    /// (a SASL mode without `upstream.proxy_login`); the connection's own login decides.
    verified: bool,
}

/// The `listener` label and log field: an unverified node id is any number a client chose,
/// so it is never a label value ([`UNVERIFIED_BROKER_LISTENER`]).
fn listener_label(target: Target, unverified: bool) -> String {
    if unverified {
        UNVERIFIED_BROKER_LISTENER.to_string()
    } else {
        crate::metrics::listener_label(target)
    }
}

/// A client connection before its TLS handshake: as accepted, or with its ClientHello read
/// (SNI routing).
enum Client {
    Accepted(TcpStream),
    HelloRead(Box<tokio_rustls::StartHandshake<TcpStream>>),
}

impl Client {
    fn tcp(&self) -> &TcpStream {
        match self {
            Client::Accepted(tcp) => tcp,
            Client::HelloRead(start) => &start.io,
        }
    }
}

/// Report the CRL distribution points of an admitted client certificate for each CA that
/// verified it and has no CRL configured (`crl_url`, `crl_chain`): the proxy then fetches that
/// CRL and closes the connection if it is revoked. Only verified certificates get here; the
/// URLs were read when the certificate was parsed for its identity.
fn learn_crl_urls(crls: &FetchedCrls, generation: &Generation, identity: &ConnectionIdentity) {
    let urls = &identity.resolved.crl_urls;
    if urls.is_empty() {
        return;
    }
    for ca in generation
        .config
        .authorities
        .iter()
        .filter(|ca| ca.learns_crl_urls() && identity.verified_by.contains(&ca.id))
    {
        crls.discover(ca, urls);
    }
}
