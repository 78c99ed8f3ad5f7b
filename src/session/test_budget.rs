//! The request memory budget and the stall timeout through the pump, over in-memory streams on
//! a paused clock: a client that stalls mid-frame is closed at the instant the timeout fires,
//! and a spent budget stops only the connections that need more of it.

#![allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::StrBytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

use super::end::{ClientFault, SessionEnd};
use super::tests::{LIMITS, metadata_request, spawn_pump_with};
use crate::kafka::budget::{BudgetMetrics, RequestBudget};
use crate::kafka::codec::{encode_request, encode_response};
use crate::kafka::frame::{FREE_FRAME_BYTES, FrameReader, write_frame};

/// An ApiVersions request of about `size` bytes (its client id fills it): too large for the
/// reader's own buffer, and wanted by a filter, so it is read whole and takes its size from
/// the budget.
fn large_request(correlation_id: i32, size: usize) -> Bytes {
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::ApiVersions as i16)
        .with_request_api_version(3)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string("x".repeat(size))));
    encode_request(&header, 2, &ApiVersionsRequest::default(), 3).unwrap()
}

/// A Produce v7 request (`acks`) with `payload` bytes after its fixed fields: no filter of
/// these pumps wants it, and the proxy reads no further than `acks`.
fn produce(correlation_id: i32, acks: i16, payload: usize) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&0i16.to_be_bytes());
    frame.extend_from_slice(&7i16.to_be_bytes());
    frame.extend_from_slice(&correlation_id.to_be_bytes());
    frame.extend_from_slice(&1i16.to_be_bytes());
    frame.push(b'p');
    frame.extend_from_slice(&(-1i16).to_be_bytes()); // transactional_id: null
    frame.extend_from_slice(&acks.to_be_bytes());
    frame.extend_from_slice(&30_000i32.to_be_bytes());
    frame.extend((0..payload).map(|i| i as u8));
    framed(&frame)
}

fn framed(frame: &[u8]) -> Vec<u8> {
    let mut out = i32::try_from(frame.len()).unwrap().to_be_bytes().to_vec();
    out.extend_from_slice(frame);
    out
}

struct Conn {
    client: DuplexStream,
    broker: FrameReader<DuplexStream>,
    pumped: tokio::task::JoinHandle<Result<super::end::ClosedBy, SessionEnd>>,
}

fn connect(budget: &Arc<RequestBudget>) -> Conn {
    let (client, proxy_client) = duplex(1 << 16);
    let (broker, stop, pumped) = spawn_pump_with(LIMITS, proxy_client, budget.clone());
    // The pump ends if its shutdown sender is dropped; keep it for the test's length.
    std::mem::forget(stop);
    Conn {
        client,
        broker,
        pumped,
    }
}

fn budget(total: usize) -> (Arc<RequestBudget>, BudgetMetrics) {
    let metrics = BudgetMetrics::default();
    (RequestBudget::new(total, metrics.clone()), metrics)
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stalls_mid_frame_is_closed_when_the_stall_timeout_fires() {
    let (budget, metrics) = budget(1 << 20);
    let mut c = connect(&budget);
    let frame = framed(&large_request(1, 20_000));
    c.client.write_all(&frame[..10_000]).await.unwrap();
    let stalled = tokio::time::Instant::now();
    let end = c.pumped.await.unwrap().unwrap_err();
    // The stall timeout, not the (much longer) idle timeout.
    assert_eq!(stalled.elapsed(), LIMITS.request_stall_timeout);
    let SessionEnd::Client(ClientFault::Stalled {
        read,
        expected,
        waited_ms,
    }) = end
    else {
        panic!("{end}");
    };
    assert_eq!((read, expected, waited_ms), (10_000, frame.len(), 30_000));
    assert_eq!(
        SessionEnd::from(ClientFault::Stalled {
            read,
            expected,
            waited_ms
        })
        .to_string(),
        format!(
            "client stalled in the middle of a frame (10000 of {} bytes received, then \
             nothing for 30000 ms)",
            frame.len()
        )
    );
    // What the frame held went back with the connection.
    assert_eq!((budget.held(), metrics.held.get()), (0, 0));
}

#[tokio::test(start_paused = true)]
async fn a_spent_budget_stops_only_the_clients_that_need_more_of_it() {
    let size = 30_000;
    let (budget, metrics) = budget(2 * size);
    let frame = framed(&large_request(1, size));
    assert!(frame.len() > FREE_FRAME_BYTES && 2 * frame.len() > budget.total());

    // A starts a large frame and stalls: once its start is in, it holds the whole size.
    let mut a = connect(&budget);
    a.client.write_all(&frame[..10_000]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(budget.held(), frame.len());

    // B sends a whole large frame: the budget has no room for it, so B is not read.
    let mut b = connect(&budget);
    b.client.write_all(&frame).await.unwrap();
    // C's small requests need no budget: C is served meanwhile.
    let mut c = connect(&budget);
    for id in 0..3 {
        write_frame(&mut c.client, &metadata_request(id))
            .await
            .unwrap();
        assert_eq!(
            c.broker.read_frame().await.unwrap().unwrap(),
            metadata_request(id)
        );
    }
    let waiting = tokio::time::timeout(Duration::from_secs(20), b.broker.read_frame()).await;
    assert!(waiting.is_err(), "B's frame was read with the budget spent");
    assert_eq!(metrics.waits.get(), 1);
    assert!(budget.held() <= budget.total());

    // A's stall timeout frees its share; B's frame goes through at once.
    let end = a.pumped.await.unwrap().unwrap_err();
    assert!(
        matches!(end, SessionEnd::Client(ClientFault::Stalled { .. })),
        "{end}"
    );
    let forwarded = b.broker.read_frame().await.unwrap().unwrap();
    assert_eq!(forwarded, frame[4..]);
    // Once forwarded and B reads on, B's frame gives its bytes back.
    write_frame(&mut b.client, &metadata_request(2))
        .await
        .unwrap();
    b.broker.read_frame().await.unwrap().unwrap();
    assert_eq!((budget.held(), metrics.held.get()), (0, 0));
    drop((a.client, c.pumped, b.pumped));
}

#[tokio::test(start_paused = true)]
async fn a_frame_larger_than_the_whole_budget_closes_the_client_at_once() {
    let (budget, _) = budget(10_000);
    let mut c = connect(&budget);
    let frame = framed(&large_request(1, 20_000));
    c.client
        .write_all(&frame[..FREE_FRAME_BYTES])
        .await
        .unwrap();
    let end = c.pumped.await.unwrap().unwrap_err();
    assert_eq!(
        end.to_string(),
        format!(
            "client sent a bad frame: frame of {} bytes exceeds the request memory budget of \
             10000 bytes",
            frame.len()
        )
    );
    c.client.shutdown().await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_large_frame_no_filter_wants_goes_to_the_broker_as_it_arrives_without_budget() {
    // A budget far smaller than the frame: streaming needs none of it.
    let (budget, metrics) = budget(16 * 1024);
    let mut c = connect(&budget);
    let frame = produce(41, 1, 200_000);
    c.client.write_all(&frame[..100_000]).await.unwrap();
    // The first half reaches the broker before the client sent the rest.
    let mut first = vec![0u8; 100_000];
    c.broker.get_mut().read_exact(&mut first).await.unwrap();
    assert_eq!(first, frame[..100_000]);
    assert_eq!((budget.held(), metrics.waits.get()), (0, 0));
    c.client.write_all(&frame[100_000..]).await.unwrap();
    let mut rest = vec![0u8; frame.len() - 100_000];
    c.broker.get_mut().read_exact(&mut rest).await.unwrap();
    assert_eq!(rest, frame[100_000..]);
    // It was recorded in flight like any request: the broker's answer reaches the client.
    let answer = encode_response(
        &ResponseHeader::default().with_correlation_id(41),
        0,
        &kafka_protocol::messages::ProduceResponse::default(),
        7,
    )
    .unwrap();
    write_frame(c.broker.get_mut(), &answer).await.unwrap();
    let mut client = FrameReader::new(c.client, 1 << 20);
    let got = client.read_frame().await.unwrap().unwrap();
    assert_eq!(crate::kafka::response_correlation_id(&got).unwrap(), 41);
    // A small request after it still goes through, as a whole frame.
    write_frame(client.get_mut(), &metadata_request(42))
        .await
        .unwrap();
    assert_eq!(
        c.broker.read_frame().await.unwrap().unwrap(),
        metadata_request(42)
    );
    assert_eq!((budget.held(), metrics.waits.get()), (0, 0));
    drop(c.pumped);
}

#[tokio::test(start_paused = true)]
async fn a_client_that_stalls_inside_a_streamed_frame_is_closed_at_the_stall_timeout() {
    let (budget, _) = budget(16 * 1024);
    let mut c = connect(&budget);
    let frame = produce(5, 0, 200_000);
    c.client.write_all(&frame[..50_000]).await.unwrap();
    let mut first = vec![0u8; 50_000];
    c.broker.get_mut().read_exact(&mut first).await.unwrap();
    let stalled = tokio::time::Instant::now();
    let end = c.pumped.await.unwrap().unwrap_err();
    assert_eq!(stalled.elapsed(), LIMITS.request_stall_timeout);
    let SessionEnd::Client(ClientFault::Stalled { read, expected, .. }) = end else {
        panic!("{end}");
    };
    assert_eq!((read, expected), (50_000, frame.len()));
}
