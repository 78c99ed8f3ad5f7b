//! The two loops of a live session: client requests to the broker, broker answers to the
//! client. They know nothing of ACLs, SASL or rewriting: the filter chains decide what a frame
//! becomes, the in-flight manager what is due when.
//!
//! ```text
//!  client ──TLS──▶ requests ──(filters)──▶ broker
//!                     │ in flight (bounded: back-pressure)
//!                     ▼
//!  client ◀──TLS── responses ◀──(filters)── broker
//! ```
//!
//! The two run as concurrent futures of one task, so that a broker busy writing answers never
//! blocks the proxy writing it requests, and the other way round.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast;
use tracing::{debug, error};

use super::end::{ClientFault, ClosedBy, SessionEnd, UpstreamFault};
use super::in_flight::{Answer, Asked, Due, InFlightRx, InFlightTx, Queued, in_flight};
use super::reauth::{Reauthentication, Renewal};
use crate::kafka::ApiKey;
use crate::kafka::budget::RequestBudget;
use crate::kafka::frame::{FrameError, FrameReader, Start, StreamError, write_frame};
use crate::kafka::header::{
    RequestHeader, parse_request_header, produce_acks, response_correlation_id,
};
use crate::metrics::{Direction, Metrics};
use crate::session::BrokerDirectory;
use crate::session::filter::{Decision, RequestChain, Response, ResponseChain};

/// The limits one session applies (from its configuration generation).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PumpLimits {
    pub max_frame_bytes: usize,
    pub idle_timeout: Duration,
    /// How long a started request frame may go without a byte arriving.
    pub request_stall_timeout: Duration,
    pub max_in_flight_requests: usize,
    pub drain_timeout: Duration,
}

/// The client side of a pumped session: its requests through `chain`.
pub(crate) struct RequestSide<'a, C> {
    pub client: C,
    pub chain: RequestChain<'a>,
    /// The request memory budget every client connection shares.
    pub budget: Arc<RequestBudget>,
}

/// The answer side: broker answers through `chain`, and the brokers they name.
pub(crate) struct ResponseSide<'a> {
    pub chain: &'a ResponseChain,
    pub brokers: &'a BrokerDirectory,
}

/// Move Kafka frames both ways until one side closes or fails: `Ok` says who closed it, once
/// every answer due was delivered.
#[allow(
    clippy::manual_async_fn,
    reason = "an `async fn` stores its arguments twice in its future, held for the whole session"
)]
pub(crate) fn pump<C, U>(
    requests: RequestSide<'_, C>,
    responses: ResponseSide<'_>,
    upstream: U,
    reauth: Reauthentication<'_>,
    limits: PumpLimits,
    metrics: &Metrics,
    shutdown: broadcast::Receiver<()>,
) -> impl Future<Output = Result<ClosedBy, SessionEnd>>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    async move {
        let (client_r, client_w) = tokio::io::split(requests.client);
        let (upstream_r, upstream_w) = tokio::io::split(upstream);
        let (tx, rx) = in_flight(limits.max_in_flight_requests);
        // Built inside `pin!`: bound to a local first, the future would be stored twice in this
        // one (the local and the pinned copy), for the whole session.
        let mut forward = std::pin::pin!(forward_requests(
            FrameReader::new(client_r, limits.max_frame_bytes)
                .with_budget(requests.budget, limits.request_stall_timeout),
            upstream_w,
            requests.chain,
            tx,
            reauth,
            limits.idle_timeout,
            metrics,
            shutdown,
        ));
        // Boxed so that it can be dropped before the requests loop is awaited (below).
        let mut deliver = Box::pin(forward_responses(
            FrameReader::new(upstream_r, limits.max_frame_bytes),
            client_w,
            rx,
            responses,
            limits.drain_timeout,
            metrics,
        ));
        // Like `try_join!` (the first error ends both), with one exception: a Kafka broker closes
        // the connection right after refusing a re-authentication, and the responses loop may see
        // that close before the requests loop has read the refusal it was handed. The refusal is
        // the reason worth logging and auditing: dropping the responses loop releases whatever the
        // requests loop still waits for, so it ends at once with its own verdict.
        tokio::select! {
            end = &mut forward => {
                let stopped = end?;
                deliver.await.result?;
                Ok(stopped.closed_by())
            }
            ended = &mut deliver => match ended {
                Delivered { result: Ok(()), .. } => forward.await.map(Stopped::closed_by),
                Delivered { result: Err(end), during_own_exchange: true } => {
                    drop(deliver);
                    match forward.await {
                        Err(refused @ SessionEnd::Upstream(UpstreamFault::Reauthentication(_))) => {
                            Err(refused)
                        }
                        _ => Err(end),
                    }
                }
                Delivered { result: Err(end), .. } => Err(end),
            },
        }
    }
}

/// Why the requests loop stopped, when not for an error of its own.
enum Stopped {
    /// It reads no more: the session closes this way once the answers in flight are delivered.
    Reading(ClosedBy),
    /// The responses loop ended first: the session ends for its reason.
    AnswersEnded,
}

impl Stopped {
    /// Who closed a session whose responses loop then ended cleanly.
    fn closed_by(self) -> ClosedBy {
        match self {
            Stopped::Reading(by) => by,
            // The responses loop ends cleanly only after this loop has ended, so after
            // `AnswersEnded` it has ended with an error, which is the session's end. Should
            // that ever change, this is all that is known.
            Stopped::AnswersEnded => ClosedBy::Finished,
        }
    }
}

/// What a failed read of the client's next frame means for the session.
fn read_failed(e: FrameError) -> Result<Stopped, SessionEnd> {
    match e {
        // Kafka clients close without a TLS close_notify (the reader reports that as an end);
        // some cut a frame short as they go.
        FrameError::UnexpectedEof { read, expected } => {
            Ok(Stopped::Reading(ClosedBy::ClientMidFrame {
                read,
                expected,
            }))
        }
        FrameError::Io(e) if client_went_away(&e) => Ok(Stopped::Reading(ClosedBy::ClientReset)),
        FrameError::Io(e) => Err(ClientFault::Io(e).into()),
        FrameError::Stalled {
            read,
            expected,
            waited_ms,
        } => Err(ClientFault::Stalled {
            read,
            expected,
            waited_ms,
        }
        .into()),
        e @ (FrameError::TooLarge { .. }
        | FrameError::NegativeLength(_)
        | FrameError::OverBudget(_)) => Err(ClientFault::Frame(e).into()),
    }
}

/// A large frame that no filter wants can go to the broker as its bytes arrive: its header, and
/// whether it expects an answer, from its first bytes. `None` when it must be read whole.
fn streamable(chain: &RequestChain<'_>, head: &[u8]) -> Option<(RequestHeader, bool)> {
    let header = parse_request_header(head).ok()?;
    if chain.wants(&header) {
        return None;
    }
    let expects_answer =
        header.api_key != ApiKey::PRODUCE || produce_acks(head, &header).ok()? != 0;
    Some((header, expects_answer))
}

/// A client read that failed in the middle of a streamed frame: the broker has part of it, so
/// the session ends now rather than waiting for answers.
fn stream_failed(e: FrameError) -> SessionEnd {
    match read_failed(e) {
        Ok(Stopped::Reading(by)) => SessionEnd::Closed(by),
        Ok(Stopped::AnswersEnded) => SessionEnd::Closed(ClosedBy::Finished),
        Err(end) => end,
    }
}

/// Whether the broker will answer this request: not a Produce with `acks=0`.
fn expects_answer(header: &RequestHeader, frame: &[u8]) -> Result<bool, SessionEnd> {
    Ok(header.api_key != ApiKey::PRODUCE
        || produce_acks(frame, header).map_err(ClientFault::Protocol)? != 0)
}

#[allow(
    clippy::too_many_arguments,
    reason = "the parts of one loop, passed once"
)]
#[allow(
    clippy::manual_async_fn,
    reason = "an `async fn` stores its arguments twice in its future, held for the whole session"
)]
fn forward_requests<R, W>(
    mut client: FrameReader<R>,
    mut upstream: W,
    mut chain: RequestChain<'_>,
    in_flight: InFlightTx,
    mut reauth: Reauthentication<'_>,
    idle: Duration,
    metrics: &Metrics,
    mut shutdown: broadcast::Receiver<()>,
) -> impl Future<Output = Result<Stopped, SessionEnd>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    async move {
        loop {
            let frame = tokio::select! {
                // Disabled (never polled) when the session has no lifetime.
                () = reauth.due(), if reauth.is_scheduled() => {
                    // Boxed: a login is a large state, held only while it runs.
                    match Box::pin(reauth.run(&in_flight, &mut upstream)).await? {
                        Renewal::Renewed => continue,
                        // The responses loop has ended; its reason is the session's.
                        Renewal::SessionGone => return Ok(Stopped::AnswersEnded),
                    }
                },
                read = tokio::time::timeout(idle, client.read_start()) => match read {
                    Err(_) => return Err(ClientFault::Idle(idle.as_millis()).into()),
                    Ok(Err(e)) => return read_failed(e),
                    // EOF between frames: let the responses loop drain what is in flight.
                    Ok(Ok(None)) => return Ok(Stopped::Reading(ClosedBy::Client)),
                    Ok(Ok(Some(Start::Whole(frame)))) => frame,
                    Ok(Ok(Some(Start::Large { head, .. }))) => {
                        match streamable(&chain, &head) {
                            Some((header, expects_answer)) => {
                                // Recorded before a byte of it leaves, as every request is.
                                let decision =
                                    Decision::Forward { frame: Bytes::new(), patch: None };
                                let queued = queue(&in_flight, &header, expects_answer, decision);
                                if let Next::Stop = queued.await {
                                    return Ok(Stopped::AnswersEnded);
                                }
                                let sent = client.stream_to(&mut upstream).await;
                                let sent = sent.map_err(|e| match e {
                                    StreamError::Read(e) => stream_failed(e),
                                    StreamError::Write(e) => UpstreamFault::Io(e).into(),
                                })?;
                                upstream.flush().await.map_err(UpstreamFault::Io)?;
                                metrics.bytes(Direction::ClientToUpstream, sent as u64);
                            }
                            // A filter wants it (or its header is not in the head): read it whole.
                            None => client.hold_whole(),
                        }
                        continue;
                    }
                },
                // Stop taking requests; answers to those in flight are still delivered.
                _ = shutdown.recv() => return Ok(Stopped::Reading(ClosedBy::Shutdown)),
            };
            let header = parse_request_header(&frame).map_err(ClientFault::Protocol)?;
            tracing::trace!(
                api_key = header.api_key.0,
                api_version = header.api_version,
                correlation_id = header.correlation_id,
                "request"
            );
            let expects_answer = expects_answer(&header, &frame)?;
            let decision = chain.on_request(&header, frame)?;
            let frame = match queue(&in_flight, &header, expects_answer, decision).await {
                Next::Forward(frame) => frame,
                Next::ReadMore => continue,
                Next::Stop => return Ok(Stopped::AnswersEnded),
            };
            write_frame(&mut upstream, &frame)
                .await
                .map_err(UpstreamFault::Io)?;
            upstream.flush().await.map_err(UpstreamFault::Io)?;
            metrics.bytes(Direction::ClientToUpstream, frame_bytes(&frame));
        }
    }
}

/// What the requests loop does after a request is queued.
enum Next {
    /// Write this frame to the broker.
    Forward(Bytes),
    /// Read the next request.
    ReadMore,
    /// Read nothing more: the session ends (the responses loop says why, once earlier answers
    /// are delivered).
    Stop,
}

/// Record what the filters decided in the in-flight queue, before anything is written, so an
/// answer can never arrive before its entry. A queue whose other side has gone means the
/// responses loop has ended, and its reason is the session's.
///
/// The entry is built before the wait for room (not an `async fn`: its future would keep the
/// decision as well), so that the wait holds only its box.
fn queue<'a>(
    in_flight: &'a InFlightTx,
    header: &RequestHeader,
    expects_answer: bool,
    decision: Decision,
) -> impl Future<Output = Next> + 'a {
    let (entry, next) = entry_for(header, expects_answer, decision);
    async move {
        match in_flight.push(entry).await {
            Ok(()) => next,
            Err(_) => Next::Stop,
        }
    }
}

/// The in-flight entry for a request the filters decided on, and what the requests loop does
/// once it is queued.
fn entry_for(header: &RequestHeader, expects_answer: bool, decision: Decision) -> (Queued, Next) {
    match decision {
        Decision::Forward { frame, patch } if expects_answer => {
            let asked = Asked {
                api_key: header.api_key,
                api_version: header.api_version,
                correlation_id: header.correlation_id,
                sent: Instant::now(),
                patch,
            };
            (Queued::asked(asked), Next::Forward(frame))
        }
        Decision::Forward { frame, .. } => (
            Queued::no_answer(header.correlation_id),
            Next::Forward(frame),
        ),
        Decision::Answer(answer) => (Queued::answer(answer), Next::ReadMore),
        Decision::Swallow => (Queued::no_answer(header.correlation_id), Next::ReadMore),
        // The responses loop ends the session once the answer is written.
        Decision::AnswerAndClose(answer, end) => {
            (Queued::answer_and_close(answer, end), Next::Stop)
        }
        // Earlier answers still reach the client; nothing more is read.
        Decision::Refuse(reason) => (Queued::refuse(reason), Next::Stop),
    }
}

/// How the responses loop ended.
struct Delivered {
    result: Result<(), SessionEnd>,
    /// The proxy's own exchange (re-authentication) was under way.
    during_own_exchange: bool,
}

#[allow(
    clippy::manual_async_fn,
    reason = "an `async fn` stores its arguments twice in its future, held for the whole session"
)]
fn forward_responses<R, W>(
    mut upstream: FrameReader<R>,
    mut client: W,
    mut in_flight: InFlightRx,
    side: ResponseSide<'_>,
    drain: Duration,
    metrics: &Metrics,
) -> impl Future<Output = Delivered>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    async move {
        let result = deliver(
            &mut upstream,
            &mut client,
            &mut in_flight,
            &side,
            drain,
            metrics,
        )
        .await;
        Delivered {
            result,
            during_own_exchange: in_flight.quiesced(),
        }
    }
}

async fn deliver<R, W>(
    upstream: &mut FrameReader<R>,
    client: &mut W,
    in_flight: &mut InFlightRx,
    side: &ResponseSide<'_>,
    drain: Duration,
    metrics: &Metrics,
) -> Result<(), SessionEnd>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Once the client stops sending (it closed, or the proxy is shutting down), the answers
    // still due get `drain` to arrive: a broker that never answers must not hold the session,
    // and its upstream connection, forever.
    let mut drain_until: Option<tokio::time::Instant> = None;
    let mut due = Vec::new();
    loop {
        while let Some(item) = in_flight.due() {
            send_due(client, item).await?;
        }
        if in_flight.finished() {
            return Ok(());
        }
        if in_flight.requests_done() && drain_until.is_none() {
            drain_until = Some(tokio::time::Instant::now() + drain);
            if let Some(oldest) = in_flight.oldest() {
                debug!(
                    unanswered = in_flight.len(),
                    %oldest,
                    "no more requests from this client; waiting for the broker's answers in flight"
                );
            }
        }
        // Keep reading the broker even when no answer is due, so a broker that does answer
        // acks=0 produce requests can never fill the socket and stall the client.
        tokio::select! {
            biased;
            () = in_flight.take(), if in_flight.has_room() => {},
            () = sleep_until_some(drain_until), if drain_until.is_some() => {
                return Err(UpstreamFault::DrainTimeout {
                    unanswered: in_flight.len(),
                    waited_ms: drain.as_millis(),
                    oldest: in_flight.oldest().unwrap_or_else(|| "none".to_string()),
                }
                .into());
            },
            read = upstream.read_frame() => {
                let frame = match read {
                    Ok(Some(frame)) => frame,
                    // Even with nothing due: the client must reconnect, not talk into a void.
                    Ok(None) => return Err(UpstreamFault::Closed(in_flight.len()).into()),
                    // A reset is the broker (or its host) gone, not a broken frame.
                    Err(FrameError::Io(e)) => return Err(UpstreamFault::Io(e).into()),
                    Err(e) => return Err(UpstreamFault::Frame(e).into()),
                };
                let got = response_correlation_id(&frame).map_err(UpstreamFault::Protocol)?;
                let answer = in_flight.answer(got, frame, &mut due)?;
                for item in due.drain(..) {
                    send_due(client, item).await?;
                }
                deliver_answer(side, client, answer, got, metrics).await?;
            }
        }
    }
}

/// Deliver what one broker frame answered: a client's answer through the response filters; the
/// proxy's own answers were handed back already.
async fn deliver_answer<W: AsyncWrite + Unpin>(
    side: &ResponseSide<'_>,
    client: &mut W,
    answer: Answer,
    correlation_id: i32,
    metrics: &Metrics,
) -> Result<(), SessionEnd> {
    match answer {
        Answer::Client(asked, frame) => {
            let elapsed = asked.sent.elapsed();
            metrics.request(asked.api_key, elapsed);
            debug!(
                api_key = asked.api_key.0,
                api_version = asked.api_version,
                correlation_id,
                bytes = frame.len(),
                micros = elapsed.as_micros() as u64,
                "request"
            );
            // Boxed: decoding and rewriting is a state of its own, held only while it runs; inline,
            // every idle session would hold room for it.
            let wanted = side
                .chain
                .wants(asked.api_key, asked.api_version, asked.patch.is_some());
            let out = if wanted {
                Box::pin(filter_answer(side, asked, frame)).await?
            } else {
                frame
            };
            send(client, &out).await?;
            metrics.bytes(Direction::UpstreamToClient, frame_bytes(&out));
        }
        Answer::Own => {}
        Answer::Dropped => {
            debug!(
                correlation_id,
                "dropped the broker's answer to an acks=0 produce"
            );
        }
    }
    Ok(())
}

/// Run a client's answer that a response filter wants through the filters, then make sure
/// every broker it names is served before it leaves.
async fn filter_answer(
    side: &ResponseSide<'_>,
    asked: Asked,
    frame: Bytes,
) -> Result<Bytes, SessionEnd> {
    let mut response = Response::new(asked.api_key, asked.api_version, frame);
    side.chain.on_response(&mut response, asked.patch)?;
    for broker in &response.brokers_named {
        side.brokers
            .book
            .learn(broker.node_id, &broker.host, broker.port);
        // The client will dial the broker's proxy port as soon as it reads this answer: the
        // listener must be bound before the answer leaves.
        if let Err(e) = side.brokers.listeners.ensure(broker.node_id).await {
            // Clients will dial that port regardless: make this loud.
            error!(node_id = broker.node_id, error = %e, "cannot serve broker");
        }
    }
    response.into_frame()
}

async fn send_due<W: AsyncWrite + Unpin>(client: &mut W, due: Due) -> Result<(), SessionEnd> {
    match due {
        Due::Send(frame) => send(client, &frame).await,
        Due::SendAndClose(frame, end) => {
            send(client, &frame).await?;
            let _ = client.shutdown().await;
            Err(end)
        }
        Due::Refuse(reason) => {
            let _ = client.shutdown().await;
            Err(SessionEnd::Unauthorizable(reason))
        }
    }
}

pub(crate) async fn send<W: AsyncWrite + Unpin>(
    client: &mut W,
    frame: &[u8],
) -> Result<(), SessionEnd> {
    write_frame(client, frame).await.map_err(ClientFault::Io)?;
    client.flush().await.map_err(ClientFault::Io)?;
    Ok(())
}

async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A frame's size on the wire (with its 4-byte size prefix).
fn frame_bytes(frame: &[u8]) -> u64 {
    frame.len() as u64 + 4
}

/// The client reset or aborted the connection (its end of a clean close is an EOF).
pub(crate) fn client_went_away(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset};
    matches!(e.kind(), ConnectionReset | ConnectionAborted | BrokenPipe)
}
