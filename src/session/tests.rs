//! The pumps over in-memory streams, on a paused clock: timeouts and drains are checked at the
//! virtual instant they fire, never by waiting.

#![allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::MetadataResponse;
use kafka_protocol::messages::{ApiKey, MetadataRequest, RequestHeader, ResponseHeader};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, DuplexStream, duplex};
use tokio::sync::broadcast;

use super::ConnectionIdentity;
use super::brokers::{BrokerDirectory, broker_listeners};
use super::end::{ClientFault, ClosedBy, Party, SessionEnd, UpstreamFault};
use super::pump::{PumpLimits, RequestSide, ResponseSide, pump};
use super::reauth::Reauthentication;
use crate::audit::AuditSink;
use crate::identity::CertIdentity;
use crate::kafka::budget::{BudgetMetrics, RequestBudget};
use crate::kafka::codec::{encode_request, encode_response};
use crate::kafka::frame::{FrameReader, write_frame};
use crate::kafka::rewrite::testing::TestMapper;
use crate::metrics::Metrics;
use crate::pools::{Evaluation, Resolution, Resolved};
use crate::session::filter::local::LocalAnswers;
use crate::session::filter::rewrite::AddressRewrite;
use crate::session::filter::{RequestChain, ResponseChain};
use crate::tls::RefusalReason;
use crate::upstream::{BrokerBook, UpstreamError};

pub(super) const LIMITS: PumpLimits = PumpLimits {
    max_frame_bytes: 1 << 20,
    idle_timeout: Duration::from_secs(600),
    request_stall_timeout: Duration::from_secs(30),
    max_in_flight_requests: 8,
    drain_timeout: Duration::from_secs(30),
};

pub(super) fn metadata_request(correlation_id: i32) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Metadata as i16)
        .with_request_api_version(12)
        .with_correlation_id(correlation_id);
    encode_request(&header, 2, &MetadataRequest::default(), 12).unwrap()
}

fn metadata_response(correlation_id: i32) -> Bytes {
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    encode_response(&header, 1, &MetadataResponse::default(), 12).unwrap()
}

/// Runs a pump between two in-memory peers: the test's client and broker ends.
struct Harness {
    client: DuplexStream,
    broker: FrameReader<DuplexStream>,
    stop: broadcast::Sender<()>,
    pumped: tokio::task::JoinHandle<Result<ClosedBy, SessionEnd>>,
}

fn start(limits: PumpLimits) -> Harness {
    let (client, proxy_client) = duplex(1 << 16);
    let (broker, stop, pumped) = spawn_pump(limits, proxy_client);
    Harness {
        client,
        broker,
        stop,
        pumped,
    }
}

/// A pump whose client side is `proxy_client`; the test's broker end, shutdown and the pump.
fn spawn_pump<C>(
    limits: PumpLimits,
    proxy_client: C,
) -> (
    FrameReader<DuplexStream>,
    broadcast::Sender<()>,
    tokio::task::JoinHandle<Result<ClosedBy, SessionEnd>>,
)
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let budget = RequestBudget::new(1 << 30, BudgetMetrics::default());
    spawn_pump_with(limits, proxy_client, budget)
}

/// [`spawn_pump`], with the request memory budget `budget` (shared with other pumps).
pub(super) fn spawn_pump_with<C>(
    limits: PumpLimits,
    proxy_client: C,
    budget: Arc<RequestBudget>,
) -> (
    FrameReader<DuplexStream>,
    broadcast::Sender<()>,
    tokio::task::JoinHandle<Result<ClosedBy, SessionEnd>>,
)
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (proxy_upstream, broker) = duplex(1 << 16);
    let (stop, shutdown) = broadcast::channel(1);
    let pumped = spawn_pump_between(limits, proxy_client, proxy_upstream, shutdown, budget);
    (FrameReader::new(broker, 1 << 20), stop, pumped)
}

/// A pump between `proxy_client` and `proxy_upstream`, the streams the proxy holds.
fn spawn_pump_between<C, U>(
    limits: PumpLimits,
    proxy_client: C,
    proxy_upstream: U,
    shutdown: broadcast::Receiver<()>,
    budget: Arc<RequestBudget>,
) -> tokio::task::JoinHandle<Result<ClosedBy, SessionEnd>>
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    U: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let (listeners, _requests) = broker_listeners();
        let brokers = BrokerDirectory {
            book: Arc::new(BrokerBook::default()),
            listeners,
        };
        let responses = ResponseChain::new(AddressRewrite::new(Arc::new(TestMapper::default())));
        let metrics = Metrics::new();
        pump(
            RequestSide {
                client: proxy_client,
                chain: RequestChain::new(LocalAnswers, None),
                budget,
            },
            ResponseSide {
                chain: &responses,
                brokers: &brokers,
            },
            proxy_upstream,
            Reauthentication::none(),
            limits,
            &metrics,
            shutdown,
        )
        .await
    })
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_closed_when_the_idle_timeout_fires() {
    let h = start(LIMITS);
    let started = tokio::time::Instant::now();
    let end = h.pumped.await.unwrap().unwrap_err();
    assert!(
        matches!(end, SessionEnd::Client(ClientFault::Idle(600_000))),
        "{end}"
    );
    assert_eq!(started.elapsed(), LIMITS.idle_timeout);
    drop(h.client);
}

#[tokio::test(start_paused = true)]
async fn a_broker_that_never_answers_frees_the_session_after_the_drain_timeout() {
    let mut h = start(LIMITS);
    write_frame(&mut h.client, &metadata_request(7))
        .await
        .unwrap();
    // The broker reads the request and keeps quiet; the client leaves.
    let request = h.broker.read_frame().await.unwrap().unwrap();
    assert_eq!(request, metadata_request(7));
    h.client.shutdown().await.unwrap();
    let left = tokio::time::Instant::now();
    let end = h.pumped.await.unwrap().unwrap_err();
    assert_eq!(left.elapsed(), LIMITS.drain_timeout);
    let SessionEnd::Upstream(UpstreamFault::DrainTimeout {
        unanswered, oldest, ..
    }) = end
    else {
        panic!("{end}");
    };
    assert_eq!(unanswered, 1);
    assert!(
        oldest.starts_with("Metadata v12, correlation id 7"),
        "{oldest}"
    );
}

#[tokio::test(start_paused = true)]
async fn on_shutdown_the_answer_in_flight_is_delivered_then_the_session_ends() {
    let mut h = start(LIMITS);
    write_frame(&mut h.client, &metadata_request(3))
        .await
        .unwrap();
    h.broker.read_frame().await.unwrap().unwrap();
    h.stop.send(()).unwrap();
    // The broker answers a minute later, within the drain timeout of this test.
    tokio::time::sleep(Duration::from_secs(20)).await;
    write_frame(h.broker.get_mut(), &metadata_response(3))
        .await
        .unwrap();
    let mut client = FrameReader::new(h.client, 1 << 20);
    let answer = client.read_frame().await.unwrap().unwrap();
    assert_eq!(crate::kafka::response_correlation_id(&answer).unwrap(), 3);
    assert_eq!(h.pumped.await.unwrap().unwrap(), ClosedBy::Shutdown);
}

#[tokio::test(start_paused = true)]
async fn a_session_drains_with_the_limit_it_was_started_with() {
    // Each session drains with the limits of the generation it started with.
    let short = PumpLimits {
        drain_timeout: Duration::from_secs(2),
        ..LIMITS
    };
    let mut h = start(short);
    write_frame(&mut h.client, &metadata_request(1))
        .await
        .unwrap();
    h.broker.read_frame().await.unwrap().unwrap();
    h.client.shutdown().await.unwrap();
    let left = tokio::time::Instant::now();
    let end = h.pumped.await.unwrap().unwrap_err();
    assert!(matches!(
        end,
        SessionEnd::Upstream(UpstreamFault::DrainTimeout { .. })
    ));
    assert_eq!(left.elapsed(), Duration::from_secs(2));
}

// ---- how a session that ends without a fault closes ------------------------------------------

/// A client stream that plays `reads` (bytes, or a read error of that kind), then waits; what
/// the proxy writes to it is discarded. For the ends an in-memory pipe cannot make: a reset, and
/// rustls' `UnexpectedEof` for a peer gone without a TLS close_notify.
struct Scripted {
    reads: std::collections::VecDeque<Result<Vec<u8>, std::io::ErrorKind>>,
}

fn scripted(reads: Vec<Result<Vec<u8>, std::io::ErrorKind>>) -> Scripted {
    Scripted {
        reads: reads.into(),
    }
}

impl AsyncRead for Scripted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.reads.pop_front() {
            Some(Ok(bytes)) => {
                buf.put_slice(&bytes);
                std::task::Poll::Ready(Ok(()))
            }
            Some(Err(kind)) => std::task::Poll::Ready(Err(kind.into())),
            None => std::task::Poll::Pending,
        }
    }
}

impl AsyncWrite for Scripted {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

/// `frame` with its size prefix, as a client sends it.
fn framed(frame: &[u8]) -> Vec<u8> {
    let mut out = i32::try_from(frame.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(frame);
    out
}

#[tokio::test(start_paused = true)]
async fn a_client_that_closes_between_frames_closed_the_connection() {
    let mut h = start(LIMITS);
    write_frame(&mut h.client, &metadata_request(5))
        .await
        .unwrap();
    h.broker.read_frame().await.unwrap().unwrap();
    write_frame(h.broker.get_mut(), &metadata_response(5))
        .await
        .unwrap();
    let mut client = FrameReader::new(h.client, 1 << 20);
    client.read_frame().await.unwrap().unwrap();
    client.get_mut().shutdown().await.unwrap();
    let closed = h.pumped.await.unwrap().unwrap();
    assert_eq!(closed, ClosedBy::Client);
    assert_eq!(closed.to_string(), "client closed the connection");
}

#[tokio::test(start_paused = true)]
async fn a_client_that_closes_mid_frame_gets_its_answers_then_that_reason() {
    let mut h = start(LIMITS);
    let second = framed(&metadata_request(9));
    let mut sent = framed(&metadata_request(8));
    sent.extend_from_slice(&second[..7]);
    h.client.write_all(&sent).await.unwrap();
    h.client.shutdown().await.unwrap();
    // The whole request before the cut still gets its answer.
    assert_eq!(
        h.broker.read_frame().await.unwrap().unwrap(),
        metadata_request(8)
    );
    write_frame(h.broker.get_mut(), &metadata_response(8))
        .await
        .unwrap();
    let mut client = FrameReader::new(h.client, 1 << 20);
    let answer = client.read_frame().await.unwrap().unwrap();
    assert_eq!(crate::kafka::response_correlation_id(&answer).unwrap(), 8);
    let closed = h.pumped.await.unwrap().unwrap();
    assert_eq!(
        closed,
        ClosedBy::ClientMidFrame {
            read: 7,
            expected: second.len()
        }
    );
    assert_eq!(
        closed.to_string(),
        format!(
            "client closed the connection in the middle of a frame (7 of {} bytes)",
            second.len()
        )
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_gone_without_tls_close_notify_closed_the_connection() {
    use std::io::ErrorKind::UnexpectedEof;
    // rustls reports a peer that closed without close_notify as an `UnexpectedEof` read error.
    let (_broker, _stop, pumped) = spawn_pump(LIMITS, scripted(vec![Err(UnexpectedEof)]));
    assert_eq!(pumped.await.unwrap().unwrap(), ClosedBy::Client);

    let frame = framed(&metadata_request(1));
    let cut = scripted(vec![Ok(frame[..6].to_vec()), Err(UnexpectedEof)]);
    let (_broker, _stop, pumped) = spawn_pump(LIMITS, cut);
    assert_eq!(
        pumped.await.unwrap().unwrap(),
        ClosedBy::ClientMidFrame {
            read: 6,
            expected: frame.len()
        }
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_that_resets_reset_the_connection() {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionReset};
    let frame = framed(&metadata_request(1));
    for reads in [
        vec![Err(ConnectionReset)],
        vec![Ok(frame[..6].to_vec()), Err(ConnectionReset)],
        vec![Err(ConnectionAborted)],
    ] {
        let (_broker, _stop, pumped) = spawn_pump(LIMITS, scripted(reads));
        let closed = pumped.await.unwrap().unwrap();
        assert_eq!(closed, ClosedBy::ClientReset);
        assert_eq!(closed.to_string(), "client reset the connection");
    }
}

#[tokio::test(start_paused = true)]
async fn on_shutdown_an_idle_session_ends_as_the_proxy_shutting_down() {
    let h = start(LIMITS);
    h.stop.send(()).unwrap();
    let closed = h.pumped.await.unwrap().unwrap();
    assert_eq!(closed, ClosedBy::Shutdown);
    assert_eq!(closed.to_string(), "the proxy is shutting down");
    drop(h.client);
}

#[tokio::test(start_paused = true)]
async fn a_client_read_error_other_than_a_reset_is_a_client_io_fault() {
    let reads = vec![Err(std::io::ErrorKind::InvalidData)];
    let (_broker, _stop, pumped) = spawn_pump(LIMITS, scripted(reads));
    let end = pumped.await.unwrap().unwrap_err();
    assert!(
        matches!(end, SessionEnd::Client(ClientFault::Io(_))),
        "{end}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_broker_that_resets_is_an_upstream_io_fault_not_a_bad_frame() {
    // A broker host that crashed, then answers the proxy's next packet with a reset: the close
    // line must say so, not blame the broker's framing.
    use std::io::ErrorKind::ConnectionReset;
    let frame = framed(&metadata_response(1));
    for reads in [
        vec![Err(ConnectionReset)],
        vec![Ok(frame[..6].to_vec()), Err(ConnectionReset)],
    ] {
        let (_client, proxy_client) = duplex(1 << 16);
        let (_stop, shutdown) = broadcast::channel(1);
        let budget = RequestBudget::new(1 << 30, BudgetMetrics::default());
        let pumped = spawn_pump_between(LIMITS, proxy_client, scripted(reads), shutdown, budget);
        let end = pumped.await.unwrap().unwrap_err();
        assert!(
            matches!(end, SessionEnd::Upstream(UpstreamFault::Io(_))),
            "{end}"
        );
        assert!(end.to_string().starts_with("upstream I/O: "), "{end}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_zero_size_frame_is_refused_as_an_empty_frame() {
    let mut h = start(LIMITS);
    h.client.write_all(&0i32.to_be_bytes()).await.unwrap();
    let end = h.pumped.await.unwrap().unwrap_err();
    assert_eq!(
        end.to_string(),
        "client sent a malformed request: empty frame: size prefix 0 (a request needs at least \
         its 8-byte header)"
    );
}

// ---- the close line --------------------------------------------------------------------------

/// What `end.report` logs (every level), as plain text lines.
fn report_lines(end: &SessionEnd, party: Party<'_>) -> Vec<String> {
    let logs = Arc::new(std::sync::Mutex::new(Vec::new()));
    let writer = CapturedLogs(Arc::clone(&logs));
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let metrics = Metrics::new();
    tracing::subscriber::with_default(subscriber, || {
        end.report(party, "bootstrap", &AuditSink::disabled(), &metrics);
    });
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    text.lines().map(str::to_owned).collect()
}

#[derive(Clone)]
struct CapturedLogs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn admitted_identity() -> ConnectionIdentity {
    let der = crate::identity::test_certs::self_signed(&rcgen::CertificateParams::default());
    ConnectionIdentity {
        connection_id: "conn-1".into(),
        peer: "127.0.0.1:40000".parse().unwrap(),
        via: None,
        server_name: None,
        resolved: Arc::new(Resolved {
            identity: CertIdentity::from_der(&der).unwrap(),
            evaluation: Evaluation {
                results: Vec::new(),
                resolution: Resolution {
                    matched: Vec::new(),
                    principals: Vec::new(),
                    identifier: None,
                },
            },
            crl_urls: Vec::new(),
        }),
        verified_by: vec!["ca".into()],
    }
}

#[test]
fn every_end_of_an_admitted_connection_logs_one_close_line_at_info_with_its_reason() {
    let identity = admitted_identity();
    let ends = [
        (
            SessionEnd::Closed(ClosedBy::Client),
            "client closed the connection",
        ),
        (
            SessionEnd::Closed(ClosedBy::ClientMidFrame {
                read: 7,
                expected: 30,
            }),
            "client closed the connection in the middle of a frame (7 of 30 bytes)",
        ),
        (
            SessionEnd::Closed(ClosedBy::ClientReset),
            "client reset the connection",
        ),
        (
            SessionEnd::Closed(ClosedBy::Shutdown),
            "the proxy is shutting down",
        ),
        (
            SessionEnd::Client(ClientFault::Idle(600_000)),
            "idle for 600000 ms",
        ),
        (
            SessionEnd::Upstream(UpstreamFault::Closed(2)),
            "upstream closed the connection with 2 request(s) unanswered",
        ),
        (
            SessionEnd::NoUpstream(UpstreamError::UnknownNode(3)),
            "no upstream connection: the cluster names no broker with node id 3",
        ),
        (
            SessionEnd::NoLongerAdmitted("pool removed".into()),
            "no longer admitted (pool removed)",
        ),
        (
            SessionEnd::Unauthorizable("topic id".into()),
            "request refused by proxy ACLs: topic id",
        ),
    ];
    for (end, reason) in ends {
        let lines = report_lines(&end, Party::Admitted(&identity));
        let closes: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains("connection closed"))
            .collect();
        assert_eq!(closes.len(), 1, "{end}: {lines:#?}");
        assert!(closes[0].contains(" INFO "), "{}", closes[0]);
        assert!(
            closes[0].contains(&format!("reason={reason}")),
            "{reason}: {}",
            closes[0]
        );
    }
}

#[test]
fn a_refused_handshake_logs_client_refused_and_no_close_line() {
    let end = SessionEnd::Refused {
        reason: RefusalReason::NoCertificate,
        detail: "no certificate".into(),
        verdict: None,
    };
    let party = Party::Unknown {
        connection_id: "conn-2",
        peer: "127.0.0.1:40001".parse().unwrap(),
        via: None,
        server_name: None,
    };
    let lines = report_lines(&end, party);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(lines[0].contains("client refused"), "{}", lines[0]);
}
