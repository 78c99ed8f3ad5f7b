//! The framing's tests: whole frames, limits, ends of stream, and writes.

#![allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]

use super::*;
use tokio::io::AsyncWriteExt;

fn framed(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

#[tokio::test]
async fn reads_exact_frame_without_prefix() {
    let data = framed(b"hello");
    let mut r = FrameReader::new(&data[..], 1024);
    assert_eq!(r.read_frame().await.unwrap().unwrap(), &b"hello"[..]);
    assert!(r.read_frame().await.unwrap().is_none());
}

#[tokio::test]
async fn reads_frame_split_across_reads() {
    let data = framed(b"split-frame-body");
    // Deliver one byte per read: the prefix and the body arrive in pieces.
    let mut builder = chunked_reader(&data, 1);
    let mut r = FrameReader::new(&mut builder, 1024);
    assert_eq!(
        r.read_frame().await.unwrap().unwrap(),
        &b"split-frame-body"[..]
    );
    assert!(r.read_frame().await.unwrap().is_none());
}

#[tokio::test]
async fn reads_several_frames_from_one_read() {
    let mut data = framed(b"one");
    data.extend(framed(b""));
    data.extend(framed(b"three"));
    let mut r = FrameReader::new(&data[..], 1024);
    assert_eq!(r.read_frame().await.unwrap().unwrap(), &b"one"[..]);
    assert_eq!(r.read_frame().await.unwrap().unwrap(), &b""[..]);
    assert_eq!(r.read_frame().await.unwrap().unwrap(), &b"three"[..]);
    assert!(r.read_frame().await.unwrap().is_none());
}

#[tokio::test]
async fn clean_eof_at_boundary_is_none() {
    let mut r = FrameReader::new(&b""[..], 1024);
    assert!(r.read_frame().await.unwrap().is_none());
}

#[tokio::test]
async fn eof_inside_prefix_is_unexpected_eof() {
    let mut r = FrameReader::new(&[0u8, 0][..], 1024);
    match r.read_frame().await {
        Err(FrameError::UnexpectedEof {
            read: 2,
            expected: 4,
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn eof_inside_body_is_unexpected_eof() {
    let mut data = framed(b"0123456789");
    data.truncate(8);
    let mut r = FrameReader::new(&data[..], 1024);
    match r.read_frame().await {
        Err(FrameError::UnexpectedEof {
            read: 8,
            expected: 14,
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn oversized_frame_is_refused_before_its_body_is_buffered() {
    // Announce 1 GiB but send only the prefix: the reader must fail at once instead of
    // waiting for (or reserving) the body.
    let (mut client, server) = tokio::io::duplex(64);
    client.write_all(&(1i32 << 30).to_be_bytes()).await.unwrap();
    let mut r = FrameReader::new(server, 1024);
    match r.read_frame().await {
        Err(FrameError::TooLarge { size, max: 1024 }) => assert_eq!(size, 1 << 30),
        other => panic!("unexpected {other:?}"),
    }
    assert!(r.buf.capacity() < 1024 * 1024);
}

#[tokio::test]
async fn frame_at_limit_is_accepted() {
    let data = framed(&[7u8; 16]);
    let mut r = FrameReader::new(&data[..], 16);
    assert_eq!(r.read_frame().await.unwrap().unwrap().len(), 16);
}

#[tokio::test]
async fn negative_length_is_refused() {
    let data = (-5i32).to_be_bytes();
    let mut r = FrameReader::new(&data[..], 1024);
    assert!(matches!(
        r.read_frame().await,
        Err(FrameError::NegativeLength(-5))
    ));
}

#[tokio::test]
async fn negative_and_oversized_prefixes_say_what_came_and_what_was_allowed() {
    let data = (-1i32).to_be_bytes();
    let e = FrameReader::new(&data[..], 1024)
        .read_frame()
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "negative size prefix -1: a frame's size is 0 or more"
    );
    let data = 1025i32.to_be_bytes();
    let e = FrameReader::new(&data[..], 1024)
        .read_frame()
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "frame of 1025 bytes exceeds the limit of 1024 bytes"
    );
}

#[tokio::test]
async fn a_zero_size_frame_is_an_empty_frame() {
    // Kafka's framing allows it; what it lacks is the header parser's to say.
    let data = 0i32.to_be_bytes();
    let mut r = FrameReader::new(&data[..], 1024);
    assert_eq!(r.read_frame().await.unwrap().unwrap(), &b""[..]);
    assert!(r.read_frame().await.unwrap().is_none());
}

#[tokio::test]
async fn a_tls_close_without_close_notify_is_an_end_of_stream() {
    // rustls reports a peer that closed without close_notify as an `UnexpectedEof` error.
    let data = framed(b"whole");
    let mut r = FrameReader::new(ending_with(&data, std::io::ErrorKind::UnexpectedEof), 1024);
    assert_eq!(r.read_frame().await.unwrap().unwrap(), &b"whole"[..]);
    assert!(r.read_frame().await.unwrap().is_none());

    let cut = &data[..6];
    let mut r = FrameReader::new(ending_with(cut, std::io::ErrorKind::UnexpectedEof), 1024);
    match r.read_frame().await {
        Err(FrameError::UnexpectedEof {
            read: 6,
            expected: 9,
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn other_read_errors_stay_io_errors() {
    let mut r = FrameReader::new(
        ending_with(&framed(b"x")[..2], std::io::ErrorKind::ConnectionReset),
        1024,
    );
    match r.read_frame().await {
        Err(FrameError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn buffer_never_holds_more_than_frame_plus_chunk() {
    // Many small frames sent at once: each read is bounded by READ_CHUNK.
    let mut data = Vec::new();
    for i in 0..10_000u32 {
        data.extend(framed(&i.to_be_bytes()));
    }
    let mut r = FrameReader::new(&data[..], 1024);
    let mut count = 0u32;
    while let Some(frame) = r.read_frame().await.unwrap() {
        assert_eq!(frame, &count.to_be_bytes()[..]);
        assert!(r.buf.len() <= READ_CHUNK + LENGTH_PREFIX);
        count += 1;
    }
    assert_eq!(count, 10_000);
}

#[tokio::test]
async fn large_frame_survives_small_reads() {
    let body: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let data = framed(&body);
    let mut reader = chunked_reader(&data, 4093);
    let mut r = FrameReader::new(&mut reader, DEFAULT_MAX_FRAME_BYTES);
    assert_eq!(r.read_frame().await.unwrap().unwrap(), &body[..]);
}

#[tokio::test]
async fn write_frame_round_trips_small_and_large() {
    let small = vec![1u8; 10];
    let large = vec![2u8; COALESCE_WRITE_MAX + 1];
    let mut out = Vec::new();
    write_frame(&mut out, &small).await.unwrap();
    write_frame(&mut out, &large).await.unwrap();
    out.flush().await.unwrap();
    let mut expected = framed(&small);
    expected.extend(framed(&large));
    assert_eq!(out, expected);
}

/// A reader that returns `data`, then fails with `kind`.
fn ending_with(data: &[u8], kind: std::io::ErrorKind) -> impl AsyncRead + Unpin + use<> {
    AsyncReadExt::chain(std::io::Cursor::new(data.to_vec()), FailingReader(kind))
}

struct FailingReader(std::io::ErrorKind);

impl AsyncRead for FailingReader {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        _buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Err(self.0.into()))
    }
}

/// A reader that returns at most `step` bytes per read.
fn chunked_reader(data: &[u8], step: usize) -> impl AsyncRead + Unpin + use<> {
    ChunkedReader {
        data: data.to_vec(),
        pos: 0,
        step,
    }
}

struct ChunkedReader {
    data: Vec<u8>,
    pos: usize,
    step: usize,
}

impl AsyncRead for ChunkedReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let end = (self.pos + self.step)
            .min(self.data.len())
            .min(self.pos + buf.remaining());
        let pos = self.pos;
        buf.put_slice(&self.data[pos..end]);
        self.pos = end;
        std::task::Poll::Ready(Ok(()))
    }
}

/// An idle connection costs no frame buffer: while the reader waits between frames it holds
/// no heap memory, and a frame that arrives after the wait is read whole.
#[tokio::test(start_paused = true)]
async fn waiting_between_frames_holds_no_buffer() {
    let (mut peer, stream) = tokio::io::duplex(64 * 1024);
    let mut r = FrameReader::new(stream, 1024 * 1024);
    peer.write_all(&framed(&[7u8; 3000])).await.unwrap();
    assert_eq!(r.read_frame().await.unwrap().unwrap().len(), 3000);

    // Nothing to read: the wait is cancelled by the timeout, as the pump's select! would.
    let waited = tokio::time::timeout(std::time::Duration::from_secs(60), r.read_frame()).await;
    assert!(waited.is_err(), "a frame out of nothing");
    assert_eq!(r.buf.capacity(), 0, "an idle reader holds a buffer");

    peer.write_all(&framed(b"after the wait")).await.unwrap();
    assert_eq!(
        r.read_frame().await.unwrap().unwrap(),
        &b"after the wait"[..]
    );
    drop(peer);
    assert!(r.read_frame().await.unwrap().is_none());
}

/// The client side's reader (`read_start`, with a budget) holds no buffer between frames either.
#[tokio::test(start_paused = true)]
async fn read_start_waits_between_frames_holding_no_buffer() {
    let (mut peer, stream) = tokio::io::duplex(64 * 1024);
    let budget = RequestBudget::new(1 << 20, Default::default());
    let mut r = FrameReader::new(stream, 1024 * 1024)
        .with_budget(budget, std::time::Duration::from_secs(30));
    peer.write_all(&framed(&[7u8; 3000])).await.unwrap();
    assert!(matches!(r.read_start().await.unwrap(), Some(Start::Whole(f)) if f.len() == 3000));

    let waited = tokio::time::timeout(std::time::Duration::from_secs(60), r.read_start()).await;
    assert!(waited.is_err(), "a frame out of nothing");
    assert_eq!(r.buf.capacity(), 0, "an idle reader holds a buffer");

    peer.write_all(&framed(b"after the wait")).await.unwrap();
    assert!(
        matches!(r.read_start().await.unwrap(), Some(Start::Whole(f)) if &f[..] == b"after the wait")
    );
}
