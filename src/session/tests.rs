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
use tokio::io::{AsyncWriteExt, DuplexStream, duplex};
use tokio::sync::broadcast;

use super::brokers::{BrokerDirectory, broker_listeners};
use super::end::{ClientFault, SessionEnd, UpstreamFault};
use super::pump::{PumpLimits, RequestSide, ResponseSide, pump};
use super::reauth::Reauthentication;
use crate::kafka::codec::{encode_request, encode_response};
use crate::kafka::frame::{FrameReader, write_frame};
use crate::kafka::rewrite::testing::TestMapper;
use crate::metrics::Metrics;
use crate::session::filter::local::LocalAnswers;
use crate::session::filter::rewrite::AddressRewrite;
use crate::session::filter::{RequestChain, ResponseChain};
use crate::upstream::BrokerBook;

const LIMITS: PumpLimits = PumpLimits {
    max_frame_bytes: 1 << 20,
    idle_timeout: Duration::from_secs(600),
    max_in_flight_requests: 8,
    drain_timeout: Duration::from_secs(30),
};

fn metadata_request(correlation_id: i32) -> Bytes {
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
    pumped: tokio::task::JoinHandle<Result<(), SessionEnd>>,
}

fn start(limits: PumpLimits) -> Harness {
    let (client, proxy_client) = duplex(1 << 16);
    let (proxy_upstream, broker) = duplex(1 << 16);
    let (stop, shutdown) = broadcast::channel(1);
    let pumped = tokio::spawn(async move {
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
    });
    Harness {
        client,
        broker: FrameReader::new(broker, 1 << 20),
        stop,
        pumped,
    }
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
    assert!(h.pumped.await.unwrap().is_ok());
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
