//! Peer bytes through the frame reader, delivered in pieces: "a frame's size is checked before
//! anything is buffered, and no input panics the reader".
//!
//! Input layout: byte 0 sets how many bytes each read delivers (1 to 256: frames and size
//! prefixes arrive split, as TCP and TLS records split them), byte 1 the frame size limit
//! (0 to 255 × 16 bytes, or the proxy's default for 255); the rest is the stream.
//!
//! What must hold: every frame read is within the limit, and the frames read, written back with
//! `write_frame`, are exactly the stream's bytes they came from (all of them on a clean end).

#![no_main]

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use kafka_mtls_proxy::kafka::{DEFAULT_MAX_FRAME_BYTES, FrameError, FrameReader, write_frame};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncRead, ReadBuf};

/// A stream that hands out at most `chunk` bytes per read.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = self.chunk.min(self.data.len()).min(buf.remaining());
        let (now, later) = self.data.split_at(n);
        buf.put_slice(now);
        self.data = later;
        Poll::Ready(Ok(()))
    }
}

fuzz_target!(|data: &[u8]| {
    let [chunk, limit, stream @ ..] = data else {
        return;
    };
    let chunk = usize::from(*chunk) + 1;
    let max_frame = if *limit == u8::MAX {
        DEFAULT_MAX_FRAME_BYTES
    } else {
        usize::from(*limit) * 16
    };
    let (frames, end) = kafka_mtls_proxy_fuzz::block_on(async {
        let mut reader = FrameReader::new(
            Chunked {
                data: stream,
                chunk,
            },
            max_frame,
        );
        let mut frames = Vec::new();
        loop {
            match reader.read_frame().await {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break (frames, None),
                Err(e) => break (frames, Some(e)),
            }
        }
    });
    let mut written = Vec::new();
    for frame in &frames {
        assert!(frame.len() <= max_frame, "{} > {max_frame}", frame.len());
        if let Err(e) = kafka_mtls_proxy_fuzz::block_on(write_frame(&mut written, frame)) {
            panic!("writing to a Vec failed: {e}");
        }
    }
    match end {
        None => assert_eq!(written, stream, "a clean end left bytes unread"),
        Some(FrameError::Io(e)) => panic!("the in-memory stream cannot fail: {e}"),
        Some(_) => assert!(
            stream.starts_with(&written),
            "frames differ from the stream"
        ),
    }
});
