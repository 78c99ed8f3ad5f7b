//! One client session: TLS handshake, audit, upstream connection, then Kafka frames both ways.
//!
//! ```text
//!  client ──TLS──▶ requests task ──frames──▶ upstream broker
//!                     │  (Pending entries, bounded: back-pressure)
//!                     ▼
//!  client ◀──TLS── responses task ◀──frames── upstream broker
//! ```
//!
//! The requests task reads a frame, parses only its header, records what response to expect
//! (api key, version, correlation id) and forwards the frame untouched. The responses task
//! takes the next expectation, reads the broker's response, checks the correlation id, and
//! rewrites the frame only when it carries broker addresses (or is ApiVersions). Responses the
//! proxy makes itself (KIP-511 ApiVersions, SASL refusals) go through the same queue, so the
//! client sees every response in request order. Produce with `acks=0` expects no response; the
//! responses task keeps reading the broker even when nothing is due, and drops an answer to an
//! `acks=0` request should a Kafka-compatible broker send one anyway.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc};
use tracing::{Instrument, debug, info, warn};

use crate::acl::{Action, Permissions, ResponsePatch, check_request};
use crate::audit::{AttemptOutcome, AuthenticationAttempt, AuthorizationDenial};
use crate::kafka::ProtocolError;
use crate::kafka::frame::{FrameError, FrameReader, write_frame};
use crate::kafka::header::{
    RequestHeader, parse_request_header, produce_acks, response_correlation_id,
};
use crate::kafka::rewrite::{response_needs_rewrite, rewrite_response};
use crate::kafka::versions::{
    proxy_version_range, sasl_refusal_response, unsupported_api_versions_response,
    upstream_auth_failed_response,
};
use crate::metrics::{Direction, Metrics};
use crate::pools::Resolved;
use crate::server::{Generation, ProxyContext};
use crate::tls::{HandshakeOutcome, Verdict};
use crate::upstream::Target;

mod api {
    pub const PRODUCE: i16 = 0;
    pub const SASL_HANDSHAKE: i16 = 17;
    pub const API_VERSIONS: i16 = 18;
    pub const SASL_AUTHENTICATE: i16 = 36;
}

/// Who is on the other end of an admitted connection. Built once, after the handshake.
#[derive(Debug, Clone)]
pub struct ConnectionIdentity {
    pub connection_id: String,
    pub peer: SocketAddr,
    pub resolved: Arc<Resolved>,
    /// Certificate authorities that verified the client chain.
    pub verified_by: Vec<String>,
}

impl ConnectionIdentity {
    /// `User:<pool-id>` for every matched pool.
    pub fn principals(&self) -> &[String] {
        &self.resolved.evaluation.resolution.principals
    }
}

/// What the responses task must send next.
enum Pending {
    /// The broker will answer this request.
    Upstream {
        api_key: i16,
        api_version: i16,
        correlation_id: i32,
        /// When the request left for the broker (request latency metric).
        sent: Instant,
        /// Proxy ACLs narrowed the request: what to change in the answer.
        patch: Option<ResponsePatch>,
    },
    /// The proxy answers itself; `close` ends the session after this response.
    Local { frame: Bytes, close: bool },
    /// A Produce with `acks=0`: no answer is due (see [`UnansweredProduce`]).
    NoResponse { correlation_id: i32 },
}

/// Why a session ended, for the closing log line.
#[derive(Debug, thiserror::Error)]
enum SessionEnd {
    #[error("client sent a bad frame: {0}")]
    ClientFrame(FrameError),
    #[error("upstream sent a bad frame: {0}")]
    UpstreamFrame(FrameError),
    #[error("client sent a malformed request: {0}")]
    ClientProtocol(crate::kafka::header::ProtocolError),
    #[error("upstream sent a malformed response: {0}")]
    UpstreamProtocol(crate::kafka::header::ProtocolError),
    #[error("cannot rewrite the upstream response: {0}")]
    Rewrite(crate::kafka::header::ProtocolError),
    #[error("upstream answered correlation id {got}, expected {expected}")]
    CorrelationMismatch { expected: i32, got: i32 },
    #[error("upstream sent a response (correlation id {0}) to no request")]
    Unsolicited(i32),
    #[error("upstream closed the connection with {0} request(s) unanswered")]
    UpstreamClosed(usize),
    #[error("client I/O: {0}")]
    ClientIo(std::io::Error),
    #[error("upstream I/O: {0}")]
    UpstreamIo(std::io::Error),
    #[error("idle for {0} ms")]
    Idle(u128),
    #[error("client used SASL on the TLS listener")]
    SaslRefused,
    #[error("no longer admitted ({0})")]
    NoLongerAdmitted(String),
    #[error("request refused by proxy ACLs: {0}")]
    Unauthorizable(String),
    #[error("cannot apply proxy ACLs to the upstream response: {0}")]
    Patch(crate::kafka::header::ProtocolError),
}

/// Serve one accepted TCP connection until it closes.
pub async fn serve(
    ctx: Arc<ProxyContext>,
    tcp: TcpStream,
    peer: SocketAddr,
    target: Target,
    shutdown: broadcast::Receiver<()>,
) {
    let connection_id = ctx.next_connection_id();
    let listener = match target {
        Target::Bootstrap => "bootstrap".to_string(),
        Target::Node(id) => format!("broker-{id}"),
    };
    let span = tracing::info_span!(
        "conn",
        id = %connection_id,
        peer = %peer,
        listener = %listener,
        pools = tracing::field::Empty,
        identifier = tracing::field::Empty,
    );
    serve_inner(ctx, tcp, peer, target, shutdown, connection_id, listener)
        .instrument(span)
        .await
}

async fn serve_inner(
    ctx: Arc<ProxyContext>,
    tcp: TcpStream,
    peer: SocketAddr,
    target: Target,
    shutdown: broadcast::Receiver<()>,
    connection_id: String,
    listener: String,
) {
    let _ = tcp.set_nodelay(true);
    let _open = ctx.metrics.connection_opened(target);
    // This connection lives with the configuration it started with, whatever reloads follow.
    let generation = ctx.current();
    let outcome = generation
        .tls
        .accept(tcp, generation.config.limits.handshake_timeout)
        .await;
    let (tls, verdict) = match outcome {
        HandshakeOutcome::Refused {
            reason,
            detail,
            verdict,
        } => {
            warn!(%reason, %detail, "client refused");
            ctx.metrics.handshake_refused(reason);
            ctx.audit.authentication(&AuthenticationAttempt {
                connection_id: &connection_id,
                client_address: peer,
                listener: &listener,
                outcome: AttemptOutcome::Refused {
                    reason,
                    detail: &detail,
                    verdict: verdict.as_ref(),
                },
            });
            return;
        }
        HandshakeOutcome::Admitted { stream, verdict } => (stream, verdict),
    };
    ctx.audit.authentication(&AuthenticationAttempt {
        connection_id: &connection_id,
        client_address: peer,
        listener: &listener,
        outcome: AttemptOutcome::Admitted(&verdict),
    });
    let Verdict::Admitted {
        resolved,
        verified_by,
    } = verdict
    else {
        return;
    };
    let identity = ConnectionIdentity {
        connection_id,
        peer,
        resolved,
        verified_by,
    };
    ctx.metrics.handshake_admitted();
    let span = tracing::Span::current();
    let resolution = &identity.resolved.evaluation.resolution;
    for pool in resolution.pool_ids() {
        ctx.metrics.pool_matched(pool);
    }
    span.record("pools", resolution.pool_ids().join(",").as_str());
    if let Some(id) = &resolution.identifier {
        span.record("identifier", format!("{}={}", id.kind, id.value).as_str());
    }
    info!(principals = ?identity.principals(), "client authenticated");

    let chain: Vec<CertificateDer<'static>> = tls
        .get_ref()
        .1
        .peer_certificates()
        .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect())
        .unwrap_or_default();
    let (_live, closed_by_reload) = ctx.live.register(&identity, &listener, chain);

    let (upstream, upstream_addr) = match generation.upstream.connect(target, &identity).await {
        Ok(u) => u,
        Err(e) => {
            ctx.metrics.upstream_connect_error();
            if let Some(pool) = e.refused_pool() {
                warn!(%pool, error = %e, "closing: the broker refused the pool's upstream identity");
                ctx.audit.authentication(&AuthenticationAttempt {
                    connection_id: &identity.connection_id,
                    client_address: peer,
                    listener: &listener,
                    outcome: AttemptOutcome::UpstreamRefused {
                        resolved: &identity.resolved,
                        verified_by: &identity.verified_by,
                        pool,
                        detail: &e.to_string(),
                    },
                });
                if let Err(end) = refuse_upstream_identity(&generation, *tls).await {
                    debug!(reason = %end, "refused client gone");
                }
            } else {
                warn!(error = %e, "closing: no upstream connection");
            }
            return;
        }
    };
    debug!(upstream = %upstream_addr, "upstream connected");
    let authorizer = RequestAuthorizer::new(&ctx, &generation, &identity, &listener);
    let session = proxy_frames(&ctx, &generation, authorizer, *tls, upstream, shutdown);
    let end = tokio::select! {
        end = session => end,
        Ok(reason) = closed_by_reload => Err(SessionEnd::NoLongerAdmitted(reason)),
    };
    match end {
        Ok(()) => debug!("connection closed"),
        Err(end) => info!(reason = %end, "connection closed"),
    }
}

/// The broker refused the upstream identity of the client's pool: tell the client in the
/// Kafka protocol rather than closing a socket it would reconnect to for minutes.
///
/// Clients send ApiVersions first on every connection; its response has an error code, so it
/// is answered with SASL_AUTHENTICATION_FAILED (58). kafka-python raises
/// `SaslAuthenticationFailedError`; librdkafka reports "ApiVersionRequest failed: Broker: SASL
/// Authentication failed". An ApiVersions version newer than the proxy knows gets the KIP-511
/// answer first, so the client retries with one the error can be encoded at. The proxy then
/// waits (up to the handshake timeout) for the client to close: closing right after the
/// answer makes kafka-python drop the answer it has already received and report a network
/// error instead. Any other request closes the connection (it has no generic error response).
async fn refuse_upstream_identity<C>(generation: &Generation, client: C) -> Result<(), SessionEnd>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let limits = &generation.config.limits;
    let deadline = tokio::time::Instant::now() + limits.handshake_timeout;
    let mut client = FrameReader::new(client, limits.max_frame_bytes);
    // Never a long conversation: a few KIP-511 retries and refusals at most.
    for _ in 0..8 {
        let frame = match tokio::time::timeout_at(deadline, client.read_frame()).await {
            Err(_) => return Err(SessionEnd::Idle(limits.handshake_timeout.as_millis())),
            Ok(Err(FrameError::Io(e))) if client_went_away(&e) => return Ok(()),
            Ok(Err(e)) => return Err(SessionEnd::ClientFrame(e)),
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(frame))) => frame,
        };
        let header = parse_request_header(&frame).map_err(SessionEnd::ClientProtocol)?;
        let answer = match header.api_key {
            api::API_VERSIONS
                if proxy_version_range(api::API_VERSIONS)
                    .is_some_and(|(_, max)| header.api_version > max) =>
            {
                unsupported_api_versions_response(header.correlation_id)
            }
            api::API_VERSIONS => {
                upstream_auth_failed_response(&header).map_err(SessionEnd::ClientProtocol)?
            }
            api::SASL_HANDSHAKE | api::SASL_AUTHENTICATE => {
                sasl_refusal_response(&header).map_err(SessionEnd::ClientProtocol)?
            }
            _ => return Ok(()),
        };
        send(client.get_mut(), &answer).await?;
    }
    Ok(())
}

/// Move Kafka frames both ways until one side closes or fails.
async fn proxy_frames<C, U>(
    ctx: &Arc<ProxyContext>,
    generation: &Generation,
    authorizer: RequestAuthorizer<'_>,
    client: C,
    upstream: U,
    shutdown: broadcast::Receiver<()>,
) -> Result<(), SessionEnd>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let limits = &generation.config.limits;
    let (client_r, client_w) = tokio::io::split(client);
    let (upstream_r, upstream_w) = tokio::io::split(upstream);
    // Bounded: when the broker falls behind, the proxy stops reading requests (back-pressure),
    // exactly as a broker does with `queued.max.requests`.
    let (tx, rx) = mpsc::channel::<Pending>(limits.max_in_flight_requests);
    let requests = forward_requests(
        generation,
        &ctx.metrics,
        authorizer,
        FrameReader::new(client_r, limits.max_frame_bytes),
        upstream_w,
        tx,
        shutdown,
    );
    let responses = forward_responses(
        ctx,
        generation,
        FrameReader::new(upstream_r, limits.max_frame_bytes),
        client_w,
        rx,
    );
    tokio::try_join!(requests, responses).map(|_| ())
}

async fn forward_requests<R, W>(
    generation: &Generation,
    metrics: &Metrics,
    mut authorizer: RequestAuthorizer<'_>,
    mut client: FrameReader<R>,
    mut upstream: W,
    tx: mpsc::Sender<Pending>,
    mut shutdown: broadcast::Receiver<()>,
) -> Result<(), SessionEnd>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let idle = generation.config.limits.idle_timeout;
    loop {
        let frame = tokio::select! {
            read = tokio::time::timeout(idle, client.read_frame()) => match read {
                Err(_) => return Err(SessionEnd::Idle(idle.as_millis())),
                // Kafka clients close without a TLS close_notify, or reset: they left.
                Ok(Err(FrameError::Io(e))) if client_went_away(&e) => return Ok(()),
                Ok(Err(e)) => return Err(SessionEnd::ClientFrame(e)),
                // Clean EOF: let the responses task drain what is in flight.
                Ok(Ok(None)) => return Ok(()),
                Ok(Ok(Some(frame))) => frame,
            },
            // Stop taking requests; answers to those in flight are still delivered.
            _ = shutdown.recv() => return Ok(()),
        };
        let header = parse_request_header(&frame).map_err(SessionEnd::ClientProtocol)?;
        tracing::trace!(
            api_key = header.api_key,
            api_version = header.api_version,
            correlation_id = header.correlation_id,
            "request"
        );
        let local = match header.api_key {
            api::API_VERSIONS
                if proxy_version_range(api::API_VERSIONS)
                    .is_some_and(|(_, max)| header.api_version > max) =>
            {
                Some((
                    unsupported_api_versions_response(header.correlation_id),
                    false,
                ))
            }
            api::SASL_HANDSHAKE | api::SASL_AUTHENTICATE => {
                warn!(
                    api_key = header.api_key,
                    "client sent SASL on the mTLS listener; it must use security.protocol=SSL \
                     and authenticate with its certificate"
                );
                let frame = sasl_refusal_response(&header).map_err(SessionEnd::ClientProtocol)?;
                Some((frame, true))
            }
            _ => None,
        };
        if let Some((frame, close)) = local {
            // On `close` the responses task ends the session once this answer is written.
            if tx.send(Pending::Local { frame, close }).await.is_err() || close {
                return Ok(());
            }
            continue;
        }
        let expects_response = header.api_key != api::PRODUCE
            || produce_acks(&frame, &header).map_err(SessionEnd::ClientProtocol)? != 0;
        let (frame, patch) = match authorizer.check(&header, frame)? {
            Authorized::Forward { frame, patch } => (frame, patch),
            Authorized::Answer(answer) => {
                let pending = match answer {
                    Some(frame) => Pending::Local {
                        frame,
                        close: false,
                    },
                    None => Pending::NoResponse {
                        correlation_id: header.correlation_id,
                    },
                };
                if tx.send(pending).await.is_err() {
                    return Ok(());
                }
                continue;
            }
        };
        let pending = if expects_response {
            Pending::Upstream {
                api_key: header.api_key,
                api_version: header.api_version,
                correlation_id: header.correlation_id,
                sent: Instant::now(),
                patch,
            }
        } else {
            Pending::NoResponse {
                correlation_id: header.correlation_id,
            }
        };
        // Queue the expectation before the request leaves, so the response can never
        // arrive first.
        if tx.send(pending).await.is_err() {
            return Ok(());
        }
        write_frame(&mut upstream, &frame)
            .await
            .map_err(SessionEnd::UpstreamIo)?;
        upstream.flush().await.map_err(SessionEnd::UpstreamIo)?;
        metrics.bytes(Direction::ClientToUpstream, frame_bytes(&frame));
    }
}

/// A frame's size on the wire (with its 4-byte size prefix).
fn frame_bytes(frame: &[u8]) -> u64 {
    frame.len() as u64 + 4
}

fn client_went_away(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    matches!(
        e.kind(),
        UnexpectedEof | ConnectionReset | ConnectionAborted | BrokenPipe
    )
}

async fn forward_responses<R, W>(
    ctx: &Arc<ProxyContext>,
    generation: &Generation,
    mut upstream: FrameReader<R>,
    mut client: W,
    mut rx: mpsc::Receiver<Pending>,
) -> Result<(), SessionEnd>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let limit = generation.config.limits.max_in_flight_requests;
    // Expectations taken off the channel, in request order. Bounded by `limit`: the channel
    // is only read while there is room.
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut unanswered = UnansweredProduce::default();
    let mut requests_done = false;
    loop {
        retire_front(&mut queue, &mut unanswered, &mut client).await?;
        if requests_done && queue.is_empty() {
            return Ok(());
        }
        // Keep reading the broker even when no answer is due, so a broker that does answer
        // acks=0 produce requests can never fill the socket and stall the client.
        tokio::select! {
            biased;
            pending = rx.recv(), if !requests_done && queue.len() < limit => match pending {
                Some(p) => queue.push_back(p),
                None => requests_done = true,
            },
            read = upstream.read_frame() => {
                let frame = match read {
                    Ok(Some(f)) => f,
                    // Even with nothing due: the client must reconnect, not talk into a void.
                    Ok(None) => return Err(SessionEnd::UpstreamClosed(queue.len())),
                    Err(e) => return Err(SessionEnd::UpstreamFrame(e)),
                };
                let got = response_correlation_id(&frame).map_err(SessionEnd::UpstreamProtocol)?;
                // The expectation is always queued before its request is written, but it may
                // still sit in the channel: take what is there before judging this response.
                loop {
                    retire_front(&mut queue, &mut unanswered, &mut client).await?;
                    if !queue.is_empty() {
                        break;
                    }
                    match rx.try_recv() {
                        Ok(p) => queue.push_back(p),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            requests_done = true;
                            break;
                        }
                    }
                }
                match queue.front() {
                    Some(Pending::Upstream { correlation_id, .. }) if *correlation_id == got => {
                        let Some(Pending::Upstream { api_key, api_version, sent, patch, .. }) =
                            queue.pop_front()
                        else {
                            continue;
                        };
                        let elapsed = sent.elapsed();
                        ctx.metrics.request(api_key, elapsed);
                        debug!(
                            api_key,
                            api_version,
                            correlation_id = got,
                            bytes = frame.len(),
                            micros = elapsed.as_micros() as u64,
                            "request"
                        );
                        let mut out = rewrite(ctx, generation, api_key, api_version, frame).await?;
                        if let Some(patch) = patch {
                            out = patch(out).map_err(SessionEnd::Patch)?;
                        }
                        send(&mut client, &out).await?;
                        ctx.metrics.bytes(Direction::UpstreamToClient, frame_bytes(&out));
                    }
                    _ if unanswered.take(got) => {
                        debug!(correlation_id = got, "dropped the broker's answer to an acks=0 produce");
                    }
                    Some(Pending::Upstream { correlation_id, .. }) => {
                        return Err(SessionEnd::CorrelationMismatch { expected: *correlation_id, got });
                    }
                    _ => return Err(SessionEnd::Unsolicited(got)),
                }
            }
        }
    }
}

/// Send the proxy's own answers, and retire `acks=0` markers, at the front of the queue: both
/// are due as soon as every earlier request is answered.
async fn retire_front<W: AsyncWrite + Unpin>(
    queue: &mut VecDeque<Pending>,
    unanswered: &mut UnansweredProduce,
    client: &mut W,
) -> Result<(), SessionEnd> {
    loop {
        match queue.front() {
            Some(Pending::Local { .. }) => {
                let Some(Pending::Local { frame, close }) = queue.pop_front() else {
                    return Ok(());
                };
                send(client, &frame).await?;
                if close {
                    let _ = client.shutdown().await;
                    return Err(SessionEnd::SaslRefused);
                }
            }
            Some(Pending::NoResponse { correlation_id }) => {
                unanswered.push(*correlation_id);
                queue.pop_front();
            }
            Some(Pending::Upstream { .. }) | None => return Ok(()),
        }
    }
}

async fn send<W: AsyncWrite + Unpin>(client: &mut W, frame: &[u8]) -> Result<(), SessionEnd> {
    write_frame(client, frame)
        .await
        .map_err(SessionEnd::ClientIo)?;
    client.flush().await.map_err(SessionEnd::ClientIo)
}

/// Correlation ids of recent `acks=0` produce requests.
///
/// Kafka brokers never answer them, but some Kafka-compatible brokers (tansu 0.6) do; such an
/// answer is dropped instead of being taken for a protocol error (a client would choke on it
/// too). Bounded: against a real broker the ids are never taken, and the oldest fall off.
#[derive(Default)]
struct UnansweredProduce {
    ids: VecDeque<i32>,
}

impl UnansweredProduce {
    const CAPACITY: usize = 1024;

    fn push(&mut self, correlation_id: i32) {
        if self.ids.len() == Self::CAPACITY {
            self.ids.pop_front();
        }
        self.ids.push_back(correlation_id);
    }

    /// Whether `correlation_id` is a recent acks=0 request; forgets it and every older one
    /// (answers come in request order).
    fn take(&mut self, correlation_id: i32) -> bool {
        match self.ids.iter().position(|&id| id == correlation_id) {
            Some(i) => {
                self.ids.drain(..=i);
                true
            }
            None => false,
        }
    }
}

/// Rewrite a response when it must change; otherwise return it as it came.
async fn rewrite(
    ctx: &Arc<ProxyContext>,
    generation: &Generation,
    api_key: i16,
    api_version: i16,
    frame: Bytes,
) -> Result<Bytes, SessionEnd> {
    // ApiVersions is narrowed here too: `rewrite_response` is the one entry point.
    if !response_needs_rewrite(api_key, api_version) {
        return Ok(frame);
    }
    let rewritten =
        rewrite_response(api_key, api_version, &frame, &ctx.mapper).map_err(|e| match e {
            ProtocolError::UnmappedBroker { .. } => SessionEnd::Rewrite(e),
            e => SessionEnd::UpstreamProtocol(e),
        })?;
    for broker in &rewritten.upstream_brokers {
        generation
            .upstream
            .book()
            .learn(broker.node_id, &broker.host, broker.port);
        // The client will dial the broker's proxy port as soon as it reads this response:
        // the listener must be bound before the response leaves.
        if let Err(e) = ctx.listeners.ensure(ctx, broker.node_id).await {
            // Clients will dial that port regardless: make this loud.
            tracing::error!(node_id = broker.node_id, error = %e, "cannot serve broker");
        }
    }
    Ok(rewritten.frame)
}

/// Proxy ACLs for one connection: the permissions of its pools under the current configuration
/// (re-derived when a reload installs a new one), applied to each request.
struct RequestAuthorizer<'a> {
    ctx: &'a ProxyContext,
    identity: &'a ConnectionIdentity,
    listener: &'a str,
    generation: u64,
    /// `None`: no certificate authority of the connection's pools enforces ACLs.
    permissions: Option<Arc<Permissions>>,
    /// Per api key (0..128): 0 not yet known, 1 needs no check, 2 is checked. Reset with the
    /// permissions.
    unchecked: [u8; 128],
}

/// What the requests task does with a request after the ACL check.
enum Authorized {
    /// Forward `frame` (the client's, or a narrowed copy); patch the answer when asked.
    Forward {
        frame: Bytes,
        patch: Option<ResponsePatch>,
    },
    /// Answer locally (`None`: no answer is due, an `acks=0` produce).
    Answer(Option<Bytes>),
}

impl<'a> RequestAuthorizer<'a> {
    fn new(
        ctx: &'a ProxyContext,
        generation: &Generation,
        identity: &'a ConnectionIdentity,
        listener: &'a str,
    ) -> Self {
        RequestAuthorizer {
            ctx,
            identity,
            listener,
            generation: generation.number,
            permissions: Permissions::for_connection(
                &generation.config,
                &identity.resolved.evaluation.resolution,
            )
            .map(Arc::new),
            unchecked: [0; 128],
        }
    }

    /// Whether this connection's requests of `api_key` need no check ([`crate::acl::needs`]).
    fn unconditionally_allowed(&mut self, permissions: &Permissions, api_key: i16) -> bool {
        let Some(slot) = usize::try_from(api_key)
            .ok()
            .and_then(|i| self.unchecked.get_mut(i))
        else {
            return false;
        };
        if *slot == 0 {
            *slot = if crate::acl::needs::unconditionally_allowed(permissions, api_key) {
                1
            } else {
                2
            };
        }
        *slot == 1
    }

    /// Check one request. With ACLs off this is one atomic load and a branch.
    fn check(&mut self, header: &RequestHeader, frame: Bytes) -> Result<Authorized, SessionEnd> {
        if self.ctx.generation_number() != self.generation {
            let current = self.ctx.current();
            self.generation = current.number;
            self.permissions = Permissions::for_connection(
                &current.config,
                &self.identity.resolved.evaluation.resolution,
            )
            .map(Arc::new);
            self.unchecked = [0; 128];
        }
        let Some(permissions) = self.permissions.clone() else {
            return Ok(Authorized::Forward { frame, patch: None });
        };
        if self.unconditionally_allowed(&permissions, header.api_key) {
            return Ok(Authorized::Forward { frame, patch: None });
        }
        let checked =
            check_request(&permissions, header, &frame).map_err(SessionEnd::ClientProtocol)?;
        for denial in &checked.denials {
            info!(
                api = denial.api,
                resource_type = %denial.resource_type,
                resource = %denial.resource,
                operation = %denial.operation,
                "denied by proxy ACLs"
            );
            self.ctx.metrics.authorization_denied(
                denial.api,
                denial.resource_type.as_str(),
                denial.operation.as_str(),
            );
            self.ctx.audit.authorization(&AuthorizationDenial {
                connection_id: &self.identity.connection_id,
                client_address: self.identity.peer,
                listener: self.listener,
                principals: self.identity.principals(),
                pool_ids: &permissions.pool_ids,
                denial,
            });
        }
        match checked.action {
            Action::Forward {
                frame: narrowed,
                patch,
            } => Ok(Authorized::Forward {
                frame: narrowed.unwrap_or(frame),
                patch,
            }),
            Action::Answer(answer) => Ok(Authorized::Answer(answer)),
            Action::Refuse(reason) => {
                warn!(api_key = header.api_key, %reason, "closing: request refused by proxy ACLs");
                let denial = crate::acl::Denial {
                    api: kafka_protocol::messages::ApiKey::try_from(header.api_key)
                        .map(crate::acl::check::api_name)
                        .unwrap_or("unknown"),
                    resource_type: crate::acl::ResourceType::Cluster,
                    resource: format!("api_key={}", header.api_key),
                    operation: crate::acl::Operation::All,
                };
                self.ctx.audit.authorization(&AuthorizationDenial {
                    connection_id: &self.identity.connection_id,
                    client_address: self.identity.peer,
                    listener: self.listener,
                    principals: self.identity.principals(),
                    pool_ids: &permissions.pool_ids,
                    denial: &denial,
                });
                Err(SessionEnd::Unauthorizable(reason))
            }
        }
    }
}
