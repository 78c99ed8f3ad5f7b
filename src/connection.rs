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
//!
//! ## Re-authentication (KIP-368)
//!
//! When the proxy logged in to the broker (`upstream.identity.mode: scram` or `oauthbearer`)
//! and the broker's final SaslAuthenticate answer carried `session_lifetime_ms > 0`, the broker
//! closes the connection at the first request it reads after the session expired. So the
//! requests task logs in again on the same connection before that, at a random point between
//! 85% and 95% of the lifetime (as Java clients do, so that connections opened together do not
//! re-authenticate together):
//!
//! 1. It stops reading client requests (they wait in the socket, like back-pressure) and queues
//!    [`Pending::Quiesce`]. The responses task keeps delivering the answers to everything sent
//!    before, in order; when the marker reaches the front, every earlier request is answered and
//!    it hands back a correlation id of the proxy's own (see [`ProxyCorrelationIds`]).
//! 2. It runs the same login as the first connect (SaslHandshake v1, then the mechanism's
//!    SaslAuthenticate steps; the pool's secret is read again, so a rotated password is used, or
//!    a new token is signed)
//!    over [`LiveSession`]: each request is queued as [`Pending::Proxy`] before it is written,
//!    and the responses task hands its answer back instead of sending it to the client.
//! 3. It schedules the next re-authentication from the new lifetime and reads client requests
//!    again.
//!
//! Waiting for earlier answers first costs one round trip per lifetime and matches what a Kafka
//! broker does anyway (it reads one request per connection at a time, so a SaslHandshake sent
//! behind a parked Fetch would wait for it too); it also means the SASL steps themselves are
//! bounded by the upstream connect timeout alone, like the first login. A refusal or a timeout
//! closes the connection with a log line, an audit record (`upstream_reauthentication_failed`)
//! and the `upstream_reauthentications_total{result="failure"}` counter, rather than letting the
//! broker cut it in the middle of a request. Without a lifetime (`mode: none`, or a broker that
//! grants sessions that never expire) no timer exists: the `select!` branch is disabled.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::Sleep;
use tracing::{Instrument, debug, info, warn};

use crate::acl::{Action, Permissions, ResponsePatch, apply_patch, check_request};
use crate::audit::{AttemptOutcome, AuthenticationAttempt, AuthorizationDenial};
use crate::kafka::frame::{FrameError, FrameReader, write_frame};
use crate::kafka::header::{
    RequestHeader, parse_request_header, produce_acks, response_correlation_id,
};
use crate::kafka::rewrite::{response_needs_rewrite, rewrite_response};
use crate::kafka::versions::{
    proxy_version_range, sasl_refusal_response, unsupported_api_versions_response,
    upstream_auth_failed_response,
};
use crate::kafka::{ApiKey, ProtocolError};
use crate::metrics::{Direction, Metrics};
use crate::pools::Resolved;
use crate::server::{Generation, ProxyContext};
use crate::tls::{HandshakeOutcome, Verdict};
use crate::upstream::Target;
use crate::upstream::{
    SaslTransport, SaslTransportError, UpstreamConnection, UpstreamError, stamp_correlation_id,
};

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
        api_key: ApiKey,
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
    /// Proxy ACLs refused a request they cannot authorize: once every earlier request is
    /// answered, the session ends with this reason.
    Refused { reason: String },
    /// The requests task is about to re-authenticate and forwards nothing until it is done.
    /// Due once every earlier request is answered: the responses task then sends back a
    /// correlation id for the proxy's own requests ([`ProxyCorrelationIds`]).
    Quiesce { free_id: oneshot::Sender<i32> },
    /// A request of the proxy's own (re-authentication): its answer goes back to the requests
    /// task through `reply`, never to the client.
    Proxy {
        correlation_id: i32,
        reply: oneshot::Sender<Bytes>,
    },
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
    #[error("re-authentication to the broker failed: {0}")]
    Reauthentication(UpstreamError),
    #[error(
        "no more requests were coming (the client closed, or the proxy is stopping), and \
         {unanswered} request(s) were still unanswered by the broker after {waited_ms} ms \
         (oldest: {oldest})"
    )]
    DrainTimeout {
        unanswered: usize,
        waited_ms: u128,
        oldest: String,
    },
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

    // The broker's session lifetime counts from no later than this (the proxy errs early).
    let login_started = tokio::time::Instant::now();
    let upstream = match generation.upstream.connect(target, &identity).await {
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
    debug!(
        upstream = %upstream.addr,
        session_lifetime_ms = upstream.session_lifetime.map(|l| l.as_millis() as u64),
        "upstream connected"
    );
    let authorizer = RequestAuthorizer::new(&ctx, &generation, &identity, &listener);
    let session = proxy_frames(
        &ctx,
        &generation,
        authorizer,
        *tls,
        upstream,
        login_started,
        shutdown,
    );
    let end = tokio::select! {
        end = session => end,
        Ok(reason) = closed_by_reload => Err(SessionEnd::NoLongerAdmitted(reason)),
    };
    match end {
        Ok(()) => debug!("connection closed"),
        Err(SessionEnd::Reauthentication(e)) => {
            let pool = primary_pool(&identity);
            warn!(
                %pool,
                error = %e,
                "closing: re-authentication to the broker failed; the client will reconnect"
            );
            ctx.audit.authentication(&AuthenticationAttempt {
                connection_id: &identity.connection_id,
                client_address: peer,
                listener: &listener,
                outcome: AttemptOutcome::UpstreamReauthenticationFailed {
                    resolved: &identity.resolved,
                    verified_by: &identity.verified_by,
                    pool: &pool,
                    detail: &e.to_string(),
                },
            });
            info!(reason = %SessionEnd::Reauthentication(e), "connection closed");
        }
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
            ApiKey::API_VERSIONS
                if proxy_version_range(ApiKey::API_VERSIONS)
                    .is_some_and(|(_, max)| header.api_version > max) =>
            {
                unsupported_api_versions_response(header.correlation_id)
            }
            ApiKey::API_VERSIONS => {
                upstream_auth_failed_response(&header).map_err(SessionEnd::ClientProtocol)?
            }
            ApiKey::SASL_HANDSHAKE | ApiKey::SASL_AUTHENTICATE => {
                sasl_refusal_response(&header).map_err(SessionEnd::ClientProtocol)?
            }
            _ => return Ok(()),
        };
        send(client.get_mut(), &answer).await?;
    }
    Ok(())
}

/// Move Kafka frames both ways until one side closes or fails.
async fn proxy_frames<C>(
    ctx: &Arc<ProxyContext>,
    generation: &Generation,
    authorizer: RequestAuthorizer<'_>,
    client: C,
    upstream: UpstreamConnection,
    login_started: tokio::time::Instant,
    shutdown: broadcast::Receiver<()>,
) -> Result<(), SessionEnd>
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let limits = &generation.config.limits;
    let (client_r, client_w) = tokio::io::split(client);
    let reauthenticating = AtomicBool::new(false);
    let identity = authorizer.identity;
    let reauth = Reauthentication {
        identity,
        addr: &upstream.addr,
        next: upstream
            .session_lifetime
            .map(|lifetime| reauthentication_timer(login_started, lifetime)),
        in_progress: &reauthenticating,
    };
    let (upstream_r, upstream_w) = tokio::io::split(upstream.stream);
    // Bounded: when the broker falls behind, the proxy stops reading requests (back-pressure),
    // exactly as a broker does with `queued.max.requests`.
    let (tx, rx) = mpsc::channel::<Pending>(limits.max_in_flight_requests);
    let requests = forward_requests(
        generation,
        &ctx.metrics,
        RequestsControl { authorizer, reauth },
        FrameReader::new(client_r, limits.max_frame_bytes),
        upstream_w,
        tx,
        shutdown,
    );
    let mut requests = std::pin::pin!(requests);
    // Boxed so that it can be dropped before the requests task is awaited (below).
    let mut responses = Box::pin(forward_responses(
        ctx,
        generation,
        FrameReader::new(upstream_r, limits.max_frame_bytes),
        client_w,
        rx,
    ));
    // Like `try_join!` (the first error ends both), with one exception: a Kafka broker closes
    // the connection right after refusing a re-authentication, and the responses task may see
    // that close before the requests task has read the refusal it was handed. The refusal is
    // the reason worth logging and auditing: dropping the responses task releases whatever the
    // requests task still waits for, so it ends at once with its own verdict.
    tokio::select! {
        end = &mut requests => {
            end?;
            responses.await
        }
        end = &mut responses => match end {
            Ok(()) => requests.await,
            Err(end) if reauthenticating.load(Ordering::Relaxed) => {
                drop(responses);
                match requests.await {
                    Err(refused @ SessionEnd::Reauthentication(_)) => Err(refused),
                    _ => Err(end),
                }
            }
            Err(end) => Err(end),
        },
    }
}

/// What the requests task applies besides forwarding: proxy ACLs on each request, and the
/// re-authentication schedule.
struct RequestsControl<'a> {
    authorizer: RequestAuthorizer<'a>,
    reauth: Reauthentication<'a>,
}

async fn forward_requests<R, W>(
    generation: &Generation,
    metrics: &Metrics,
    control: RequestsControl<'_>,
    mut client: FrameReader<R>,
    mut upstream: W,
    tx: mpsc::Sender<Pending>,
    mut shutdown: broadcast::Receiver<()>,
) -> Result<(), SessionEnd>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let RequestsControl {
        mut authorizer,
        mut reauth,
    } = control;
    let idle = generation.config.limits.idle_timeout;
    loop {
        let frame = tokio::select! {
            // Disabled (never polled) when the session has no lifetime.
            () = reauthentication_due(&mut reauth.next), if reauth.next.is_some() => {
                reauth.in_progress.store(true, Ordering::Relaxed);
                let renewal = reauthenticate(generation, metrics, &reauth, &mut upstream, &tx).await;
                reauth.in_progress.store(false, Ordering::Relaxed);
                match renewal {
                    Ok(Renewal::Renewed(next)) => reauth.next = next,
                    // The responses task has ended; its reason is the session's.
                    Ok(Renewal::SessionGone) => return Ok(()),
                    Err(e) => return Err(SessionEnd::Reauthentication(e)),
                }
                continue;
            },
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
            api_key = header.api_key.0,
            api_version = header.api_version,
            correlation_id = header.correlation_id,
            "request"
        );
        let local = match header.api_key {
            ApiKey::API_VERSIONS
                if proxy_version_range(ApiKey::API_VERSIONS)
                    .is_some_and(|(_, max)| header.api_version > max) =>
            {
                Some((
                    unsupported_api_versions_response(header.correlation_id),
                    false,
                ))
            }
            ApiKey::SASL_HANDSHAKE | ApiKey::SASL_AUTHENTICATE => {
                warn!(
                    api_key = header.api_key.0,
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
        let expects_response = header.api_key != ApiKey::PRODUCE
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
            Authorized::Refuse(reason) => {
                // Earlier answers still reach the client; nothing more is read.
                let _ = tx.send(Pending::Refused { reason }).await;
                return Ok(());
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
    let limits = &generation.config.limits;
    let limit = limits.max_in_flight_requests;
    // Expectations taken off the channel, in request order. Bounded by `limit`: the channel
    // is only read while there is room.
    let mut queue: VecDeque<Pending> = VecDeque::new();
    let mut unanswered = UnansweredProduce::default();
    let mut proxy_ids = ProxyCorrelationIds::default();
    let mut requests_done = false;
    // Once the client stops sending (it closed, or the proxy is shutting down), the answers
    // still due get `drain_timeout` to arrive: a broker that never answers must not hold the
    // session, and its upstream connection, forever.
    let mut drain_until: Option<tokio::time::Instant> = None;
    loop {
        retire_front(&mut queue, &mut unanswered, &mut proxy_ids, &mut client).await?;
        if requests_done && queue.is_empty() {
            return Ok(());
        }
        if requests_done && drain_until.is_none() {
            drain_until = Some(tokio::time::Instant::now() + limits.drain_timeout);
            if let Some(oldest) = oldest_unanswered(&queue) {
                debug!(
                    unanswered = queue.len(),
                    %oldest,
                    "no more requests from this client; waiting for the broker's answers in flight"
                );
            }
        }
        // Keep reading the broker even when no answer is due, so a broker that does answer
        // acks=0 produce requests can never fill the socket and stall the client.
        tokio::select! {
            biased;
            pending = rx.recv(), if !requests_done && queue.len() < limit => match pending {
                Some(p) => queue.push_back(p),
                None => requests_done = true,
            },
            () = sleep_until_some(drain_until), if drain_until.is_some() => {
                return Err(SessionEnd::DrainTimeout {
                    unanswered: queue.len(),
                    waited_ms: limits.drain_timeout.as_millis(),
                    oldest: oldest_unanswered(&queue).unwrap_or_else(|| "none".to_string()),
                });
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
                    retire_front(&mut queue, &mut unanswered, &mut proxy_ids, &mut client).await?;
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
                            api_key = api_key.0,
                            api_version,
                            correlation_id = got,
                            bytes = frame.len(),
                            micros = elapsed.as_micros() as u64,
                            "request"
                        );
                        let mut out = rewrite(ctx, generation, api_key, api_version, frame).await?;
                        if let Some(patch) = patch {
                            out = apply_patch(patch, api_key, api_version, out)
                                .map_err(SessionEnd::Patch)?;
                        }
                        send(&mut client, &out).await?;
                        ctx.metrics.bytes(Direction::UpstreamToClient, frame_bytes(&out));
                    }
                    Some(Pending::Proxy { correlation_id, .. }) if *correlation_id == got => {
                        if let Some(Pending::Proxy { reply, .. }) = queue.pop_front() {
                            // The requests task may have given up (timeout): then nobody waits.
                            let _ = reply.send(frame);
                        }
                    }
                    _ if unanswered.take(got) => {
                        debug!(correlation_id = got, "dropped the broker's answer to an acks=0 produce");
                    }
                    Some(Pending::Upstream { correlation_id, .. } | Pending::Proxy { correlation_id, .. }) => {
                        return Err(SessionEnd::CorrelationMismatch { expected: *correlation_id, got });
                    }
                    _ => return Err(SessionEnd::Unsolicited(got)),
                }
            }
        }
    }
}

/// The oldest request still waiting for the broker, for logs: "Metadata v12, correlation id 2,
/// sent 1520 ms ago".
fn oldest_unanswered(queue: &VecDeque<Pending>) -> Option<String> {
    queue.iter().find_map(|p| match p {
        Pending::Upstream {
            api_key,
            api_version,
            correlation_id,
            sent,
            ..
        } => Some(format!(
            "{} v{api_version}, correlation id {correlation_id}, sent {} ms ago",
            api_key.label(),
            sent.elapsed().as_millis()
        )),
        _ => None,
    })
}

async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Send the proxy's own answers, retire `acks=0` markers and release re-authentications at the
/// front of the queue: all are due as soon as every earlier request is answered.
async fn retire_front<W: AsyncWrite + Unpin>(
    queue: &mut VecDeque<Pending>,
    unanswered: &mut UnansweredProduce,
    proxy_ids: &mut ProxyCorrelationIds,
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
            Some(Pending::Refused { .. }) => {
                if let Some(Pending::Refused { reason }) = queue.pop_front() {
                    let _ = client.shutdown().await;
                    return Err(SessionEnd::Unauthorizable(reason));
                }
            }
            Some(Pending::Quiesce { .. }) => {
                if let Some(Pending::Quiesce { free_id }) = queue.pop_front() {
                    // Nobody waits if the requests task has ended.
                    let _ = free_id.send(proxy_ids.pick(unanswered));
                }
            }
            Some(Pending::Upstream { .. } | Pending::Proxy { .. }) | None => return Ok(()),
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

    fn contains(&self, correlation_id: i32) -> bool {
        self.ids.contains(&correlation_id)
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
    api_key: ApiKey,
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

/// How many denials of one request are logged and audited one by one (all are counted).
const MAX_REPORTED_DENIALS: usize = 32;

/// Proxy ACLs for one connection: the permissions of its pools under the current configuration
/// (re-derived when a reload installs a new one), applied to each request.
struct RequestAuthorizer<'a> {
    ctx: &'a ProxyContext,
    identity: &'a ConnectionIdentity,
    listener: &'a str,
    generation: u64,
    /// `Ok(None)`: no certificate authority of the connection's pools enforces ACLs. `Err`: the
    /// configuration no longer has one of the connection's CAs or pools (see
    /// [`crate::acl::StaleResolution`]); the connection is closed at its next request.
    permissions: Result<Option<Arc<Permissions>>, crate::acl::StaleResolution>,
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
    /// The request cannot be authorized: end the session once earlier answers are delivered.
    Refuse(String),
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
            .map(|p| p.map(Arc::new)),
        }
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
            .map(|p| p.map(Arc::new));
        }
        let permissions = match &self.permissions {
            Ok(Some(permissions)) => permissions.clone(),
            Ok(None) => return Ok(Authorized::Forward { frame, patch: None }),
            Err(stale) => return Err(SessionEnd::NoLongerAdmitted(stale.to_string())),
        };
        let offered = crate::acl::apis::range_with_acls(header.api_key)
            .is_some_and(|(min, max)| (min..=max).contains(&header.api_version));
        if offered && permissions.needs_no_check(header.api_key) {
            return Ok(Authorized::Forward { frame, patch: None });
        }
        let checked =
            check_request(&permissions, header, &frame).map_err(SessionEnd::ClientProtocol)?;
        for (i, denial) in checked.denials.iter().enumerate() {
            self.ctx.metrics.authorization_denied(
                denial.api_key,
                denial.resource_type.as_str(),
                denial.operation.as_str(),
            );
            // One request can name many thousands of resources: log and audit a bounded
            // number of them. Names come from the client: `?` quotes and escapes them.
            if i < MAX_REPORTED_DENIALS {
                info!(
                    api = %denial.api_key.label(),
                    resource_type = %denial.resource_type,
                    resource = ?denial.resource,
                    operation = %denial.operation,
                    "denied by proxy ACLs"
                );
                self.audit(&permissions, denial);
            }
        }
        if let Some(more) = checked.denials.len().checked_sub(MAX_REPORTED_DENIALS)
            && more > 0
        {
            info!(
                api = %header.api_key.label(),
                more, "denied by proxy ACLs: further resources of this request not reported"
            );
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
                let key = header.api_key.known();
                // The resource names the request itself: which API, at which version.
                let request = match key {
                    Some(key) => format!("{key:?} v{}", header.api_version),
                    None => format!("api key {} v{}", header.api_key.0, header.api_version),
                };
                warn!(%request, %reason, "closing: request refused by proxy ACLs");
                let denial = crate::acl::Denial {
                    api_key: header.api_key,
                    resource_type: crate::acl::ResourceType::Cluster,
                    resource: request,
                    operation: crate::acl::Operation::All,
                };
                self.audit(&permissions, &denial);
                Ok(Authorized::Refuse(reason))
            }
        }
    }

    /// The `kafka.Authorization` audit record of one denial.
    fn audit(&self, permissions: &Permissions, denial: &crate::acl::Denial) {
        self.ctx.audit.authorization(&AuthorizationDenial {
            connection_id: &self.identity.connection_id,
            client_address: self.identity.peer,
            listener: self.listener,
            principal: self
                .identity
                .resolved
                .evaluation
                .resolution
                .primary_principal(),
            principals: self.identity.principals(),
            pool_ids: &permissions.pool_ids,
            denial,
        });
    }
}

/// Correlation ids for the proxy's own requests on a live session (re-authentication).
///
/// Why they never equal a client id the broker may still answer: the proxy's requests leave
/// only once [`Pending::Quiesce`] reached the front of the queue — every earlier client request
/// that expects an answer has been answered — and no client request is forwarded until the
/// re-authentication is over. The only client ids still in flight are then those of recent
/// `acks=0` produce requests (a Kafka broker never answers them, tansu does), which
/// [`UnansweredProduce`] holds, and the id is picked outside that set. A client may use any
/// `i32`, negative ones included, so no range can be reserved without remapping every client
/// id on the hot path; checking the one set that matters is exact and costs nothing per frame.
/// One id serves a whole re-authentication: its steps are strictly sequential. Counting up from
/// `i32::MIN` merely keeps the proxy's requests easy to tell apart in broker logs from the
/// small positive ids clients usually use.
struct ProxyCorrelationIds {
    next: i32,
}

impl Default for ProxyCorrelationIds {
    fn default() -> Self {
        Self { next: i32::MIN }
    }
}

impl ProxyCorrelationIds {
    fn pick(&mut self, unanswered: &UnansweredProduce) -> i32 {
        // Ends within `UnansweredProduce::CAPACITY + 1` steps: the set is that small.
        loop {
            let id = self.next;
            self.next = self.next.wrapping_add(1);
            if !unanswered.contains(id) {
                return id;
            }
        }
    }
}

/// What the requests task needs to renew the upstream login on this connection.
struct Reauthentication<'a> {
    identity: &'a ConnectionIdentity,
    /// The broker's address, for log lines and errors.
    addr: &'a str,
    /// When the next re-authentication is due; `None` when the session never expires (then no
    /// timer exists at all).
    next: Option<Pin<Box<Sleep>>>,
    /// Set while a re-authentication runs, so that the session's end is blamed on its outcome
    /// rather than on the broker closing the connection after refusing it (see `proxy_frames`).
    in_progress: &'a AtomicBool,
}

/// Due at a random point between 85% and 95% of `lifetime` after `since`, as Java clients do:
/// late enough not to waste logins, early enough for a slow round trip, and spread so that
/// connections opened together do not re-authenticate together.
fn reauthentication_timer(since: tokio::time::Instant, lifetime: Duration) -> Pin<Box<Sleep>> {
    use rand::RngExt as _;
    let per_mille: u32 = rand::rng().random_range(850..=950);
    Box::pin(tokio::time::sleep_until(
        since + lifetime * per_mille / 1000,
    ))
}

/// Completes when the timer fires; never when there is none (the branch is disabled then).
async fn reauthentication_due(timer: &mut Option<Pin<Box<Sleep>>>) {
    match timer {
        Some(timer) => timer.as_mut().await,
        None => std::future::pending().await,
    }
}

/// How a re-authentication ended, when it did not fail.
enum Renewal {
    /// Logged in again; the next re-authentication is due at this timer (`None`: the new
    /// session never expires).
    Renewed(Option<Pin<Box<Sleep>>>),
    /// The responses task ended first (the broker or the client went away).
    SessionGone,
}

/// Log in again on the live connection: wait for every earlier answer, then run the login over
/// [`LiveSession`]. Counted in the re-authentication metric either way.
async fn reauthenticate<W: AsyncWrite + Unpin>(
    generation: &Generation,
    metrics: &Metrics,
    reauth: &Reauthentication<'_>,
    upstream: &mut W,
    tx: &mpsc::Sender<Pending>,
) -> Result<Renewal, UpstreamError> {
    let started = tokio::time::Instant::now();
    let result = reauthenticate_now(generation, reauth, upstream, tx).await;
    match &result {
        Ok(Renewal::Renewed(_)) => {
            metrics.upstream_reauthentication(true);
            info!(
                upstream = %reauth.addr,
                millis = started.elapsed().as_millis() as u64,
                "re-authenticated to the broker"
            );
        }
        Ok(Renewal::SessionGone) => {}
        Err(_) => metrics.upstream_reauthentication(false),
    }
    result
}

async fn reauthenticate_now<W: AsyncWrite + Unpin>(
    generation: &Generation,
    reauth: &Reauthentication<'_>,
    upstream: &mut W,
    tx: &mpsc::Sender<Pending>,
) -> Result<Renewal, UpstreamError> {
    let (free_id, correlation_id) = oneshot::channel();
    if tx.send(Pending::Quiesce { free_id }).await.is_err() {
        return Ok(Renewal::SessionGone);
    }
    // Earlier requests are the client's (a Fetch parks up to fetch.max.wait.ms, a JoinGroup
    // for a rebalance): bounded by the idle timeout, like any wait on this connection.
    let idle = generation.config.limits.idle_timeout;
    let correlation_id = match tokio::time::timeout(idle, correlation_id).await {
        Ok(Ok(id)) => id,
        Ok(Err(_)) => return Ok(Renewal::SessionGone),
        Err(_) => {
            return Err(UpstreamError::Sasl {
                addr: reauth.addr.to_string(),
                pool: primary_pool(reauth.identity),
                reason: format!(
                    "earlier requests were still unanswered after {} ms",
                    idle.as_millis()
                ),
            });
        }
    };
    let login_started = tokio::time::Instant::now();
    let mut transport = LiveSession {
        upstream,
        tx,
        correlation_id,
        ended: false,
    };
    let lifetime = generation
        .upstream
        .reauthenticate(&mut transport, reauth.addr, reauth.identity)
        .await;
    if transport.ended {
        return Ok(Renewal::SessionGone);
    }
    Ok(Renewal::Renewed(lifetime?.map(|lifetime| {
        reauthentication_timer(login_started, lifetime)
    })))
}

fn primary_pool(identity: &ConnectionIdentity) -> String {
    identity
        .resolved
        .evaluation
        .resolution
        .primary()
        .map(|p| p.pool_id.clone())
        .unwrap_or_default()
}

/// The live session as a SASL transport: each request is queued as [`Pending::Proxy`] before it
/// is written (as client requests are), and the responses task hands its answer back.
struct LiveSession<'a, W> {
    upstream: &'a mut W,
    tx: &'a mpsc::Sender<Pending>,
    /// Free of every client id the broker may still answer ([`ProxyCorrelationIds`]).
    correlation_id: i32,
    /// The responses task ended mid-exchange: the session is over for another reason.
    ended: bool,
}

impl<W: AsyncWrite + Unpin> SaslTransport for LiveSession<'_, W> {
    async fn round_trip(&mut self, request: Bytes) -> Result<Bytes, SaslTransportError> {
        let request = stamp_correlation_id(&request, self.correlation_id)?;
        let (reply, answer) = oneshot::channel();
        let pending = Pending::Proxy {
            correlation_id: self.correlation_id,
            reply,
        };
        if self.tx.send(pending).await.is_err() {
            self.ended = true;
            return Err(SaslTransportError::SessionEnded);
        }
        write_frame(&mut *self.upstream, &request)
            .await
            .map_err(SaslTransportError::Write)?;
        self.upstream
            .flush()
            .await
            .map_err(SaslTransportError::Write)?;
        answer.await.map_err(|_| {
            self.ended = true;
            SaslTransportError::SessionEnded
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proxys_correlation_id_skips_every_unanswered_acks0_id() {
        let mut unanswered = UnansweredProduce::default();
        // A client that uses exactly the ids the proxy counts from, and a negative one.
        for id in (i32::MIN..i32::MIN + 5).chain([-1]) {
            unanswered.push(id);
        }
        let mut ids = ProxyCorrelationIds::default();
        assert_eq!(ids.pick(&unanswered), i32::MIN + 5);
        assert_eq!(ids.pick(&unanswered), i32::MIN + 6);
        // Once answered (and forgotten), an id is free again; the counter wraps past i32::MAX.
        let mut ids = ProxyCorrelationIds { next: i32::MAX };
        assert_eq!(ids.pick(&unanswered), i32::MAX);
        assert_eq!(ids.pick(&unanswered), i32::MIN + 5);
    }

    #[tokio::test]
    async fn reauthentication_is_due_between_85_and_95_percent_of_the_lifetime() {
        let since = tokio::time::Instant::now();
        let lifetime = Duration::from_secs(100);
        for _ in 0..200 {
            let due = reauthentication_timer(since, lifetime).deadline() - since;
            assert!(
                (Duration::from_secs(85)..=Duration::from_secs(95)).contains(&due),
                "{due:?}"
            );
        }
    }
}
