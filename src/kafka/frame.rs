//! Kafka's length-prefixed framing: a 4-byte big-endian size, then that many bytes.
//!
//! The reader owns its buffer and hands out each frame as `Bytes` split off that buffer, so a
//! frame that is forwarded untouched is never copied.
//!
//! On the client side the reader also takes frames larger than its own buffer from the shared
//! [`RequestBudget`], and closes a client that stops sending in the middle of a frame
//! ([`FrameReader::with_budget`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::budget::{Held, OverBudget, RequestBudget};

/// Kafka's default `socket.request.max.bytes`: brokers refuse larger requests, so the proxy does
/// too, before buffering them.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// The size prefix in front of every frame.
const LENGTH_PREFIX: usize = 4;

/// How much the reader asks for beyond the frame it is completing: enough to pick up several
/// small pipelined frames with one read, small enough that the buffer never holds much more than
/// the current frame.
const READ_CHUNK: usize = 8 * 1024;

/// Frames up to this size (prefix included) fit the reader's own buffer and take nothing from
/// the [`RequestBudget`]: every connection may hold that much.
pub const FREE_FRAME_BYTES: usize = READ_CHUNK;

/// The most memory reserved ahead of bytes actually received. A peer that announces a 100 MiB
/// frame has to send it before the proxy holds 100 MiB for it.
const MAX_RESERVE_AHEAD: usize = 1024 * 1024;

/// Frames up to this size are written together with their prefix from one buffer (one write
/// call, one TLS record); larger frames are written without being copied.
const COALESCE_WRITE_MAX: usize = 16 * 1024;

/// Why a frame could not be read.
#[derive(thiserror::Error, Debug)]
pub enum FrameError {
    /// The size prefix announces more than the configured maximum.
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    /// The size prefix is negative: the peer does not speak Kafka (or the stream is corrupt).
    #[error("negative size prefix {0}: a frame's size is 0 or more")]
    NegativeLength(i32),
    /// The peer closed the stream inside a frame. Both counts include the 4-byte prefix.
    #[error("connection closed mid-frame after {read} of {expected} bytes")]
    UnexpectedEof { read: usize, expected: usize },
    /// Nothing more of a started frame arrived for the stall timeout. Both counts include the
    /// 4-byte prefix.
    #[error(
        "stalled in the middle of a frame: {read} of {expected} bytes received, then nothing \
         for {waited_ms} ms"
    )]
    Stalled {
        read: usize,
        expected: usize,
        waited_ms: u128,
    },
    /// The frame is larger than the whole request memory budget: it could never be held.
    #[error(transparent)]
    OverBudget(#[from] OverBudget),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads whole frames from a byte stream.
pub struct FrameReader<R> {
    inner: R,
    /// Bytes received but not yet handed out: at most the current frame plus one `READ_CHUNK`.
    buf: BytesMut,
    max_frame: usize,
    /// Client side only: where frames larger than [`FREE_FRAME_BYTES`] take their bytes from.
    budget: Option<Arc<RequestBudget>>,
    /// Client side only: how long a started frame may go without a byte arriving.
    stall: Option<Duration>,
    /// The budget held for the frame at the front of `buf`, taken once its prefix arrived.
    held: Option<Held>,
    /// The budget held for the frame handed out last: the caller forwards it before asking
    /// for the next one, so it is given back then.
    handed_out: Option<Held>,
    /// The caller wants the large frame at the front read whole ([`FrameReader::hold_whole`]).
    whole: bool,
}

/// The start of the next frame ([`FrameReader::read_start`]).
#[derive(Debug)]
pub enum Start {
    /// The whole frame, without its prefix.
    Whole(Bytes),
    /// A frame larger than [`FREE_FRAME_BYTES`], of which only the start has been read: `head`
    /// is a copy of its first bytes (without the prefix), enough for its header in practice.
    /// The caller either streams it ([`FrameReader::stream_to`]) or has it read whole
    /// ([`FrameReader::hold_whole`], then `read_start` again).
    Large { head: Bytes, size: usize },
}

/// Why a frame could not be streamed: the client's side or the writer's.
#[derive(thiserror::Error, Debug)]
pub enum StreamError {
    #[error(transparent)]
    Read(#[from] FrameError),
    #[error(transparent)]
    Write(std::io::Error),
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R, max_frame: usize) -> Self {
        Self {
            inner,
            buf: BytesMut::new(),
            max_frame,
            budget: None,
            stall: None,
            held: None,
            handed_out: None,
            whole: false,
        }
    }

    /// Take frames larger than [`FREE_FRAME_BYTES`] from `budget` (waiting, and so not
    /// reading, while it is spent), and fail with [`FrameError::Stalled`] when a started frame
    /// gets no byte for `stall`. Waiting for the budget is not a stall: the proxy is the one
    /// not reading then.
    pub fn with_budget(mut self, budget: Arc<RequestBudget>, stall: Duration) -> Self {
        self.budget = Some(budget);
        self.stall = Some(stall);
        self
    }

    /// The next frame, or the start of a large one (see [`Start`]): a frame larger than
    /// [`FREE_FRAME_BYTES`] is handed out as [`Start::Large`] once that much of it arrived,
    /// before anything is taken from the budget, unless [`FrameReader::hold_whole`] asked for
    /// it whole. Cancel-safe, as [`FrameReader::read_frame`].
    pub async fn read_start(&mut self) -> Result<Option<Start>, FrameError> {
        self.handed_out = None;
        loop {
            match self.current_frame_total()? {
                None if self.buf.is_empty() => {
                    // Between frames, possibly idle for minutes: wait holding no buffer.
                    match self.read_between_frames().await {
                        Ok(0) => return Ok(None),
                        Ok(_) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                        Err(e) => return Err(e.into()),
                    }
                }
                None => {
                    self.buf.reserve(READ_CHUNK);
                    if self.fill(READ_CHUNK, self.buf.len(), LENGTH_PREFIX).await? == 0 {
                        if self.buf.is_empty() {
                            return Ok(None);
                        }
                        return Err(self.cut(LENGTH_PREFIX));
                    }
                }
                Some(total) if total > FREE_FRAME_BYTES && !self.whole => {
                    if self.buf.len() >= FREE_FRAME_BYTES {
                        let head = Bytes::copy_from_slice(&self.buf[LENGTH_PREFIX..]);
                        let size = total - LENGTH_PREFIX;
                        return Ok(Some(Start::Large { head, size }));
                    }
                    let limit = FREE_FRAME_BYTES - self.buf.len();
                    self.buf.reserve(limit);
                    if self.fill(limit, self.buf.len(), total).await? == 0 {
                        return Err(self.cut(total));
                    }
                }
                Some(_) => {
                    let frame = self.read_frame().await?;
                    self.whole = false;
                    return Ok(frame.map(Start::Whole));
                }
            }
        }
    }

    /// Read the large frame [`FrameReader::read_start`] started whole (taking its size from the
    /// budget) at the next `read_start`.
    pub fn hold_whole(&mut self) {
        self.whole = true;
    }

    /// Write the large frame [`FrameReader::read_start`] started to `w` (prefix included), each
    /// chunk as it arrives: it takes nothing from the budget. Returns the bytes written. Not
    /// cancel-safe: once started, the frame must be finished (or the connection dropped).
    pub async fn stream_to<W: AsyncWrite + Unpin>(
        &mut self,
        w: &mut W,
    ) -> Result<usize, StreamError> {
        let Some(total) = self.current_frame_total()? else {
            return Ok(0);
        };
        let mut remaining = total.saturating_sub(self.buf.len());
        loop {
            w.write_all(&self.buf).await.map_err(StreamError::Write)?;
            self.buf.clear();
            if remaining == 0 {
                return Ok(total);
            }
            let limit = remaining.min(READ_CHUNK);
            self.buf.reserve(limit);
            let n = self.fill(limit, total - remaining, total).await?;
            if n == 0 {
                return Err(FrameError::UnexpectedEof {
                    read: total - remaining,
                    expected: total,
                }
                .into());
            }
            remaining -= n;
        }
    }

    /// Read at most `limit` bytes into the buffer; 0 at the end of the stream. A read inside a
    /// started frame (`read` bytes of its `expected` total already received) fails with
    /// [`FrameError::Stalled`] after the stall timeout.
    async fn fill(
        &mut self,
        limit: usize,
        read: usize,
        expected: usize,
    ) -> Result<usize, FrameError> {
        let stall = self.stall.filter(|_| read > 0);
        // `take` bounds this read.
        let mut source = (&mut self.inner).take(limit as u64);
        let reading = source.read_buf(&mut self.buf);
        let result = match stall {
            Some(stall) => match tokio::time::timeout(stall, reading).await {
                Ok(result) => result,
                Err(_) => {
                    return Err(FrameError::Stalled {
                        read,
                        expected,
                        waited_ms: stall.as_millis(),
                    });
                }
            },
            None => reading.await,
        };
        match result {
            Ok(n) => Ok(n),
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    /// The end of the stream inside the frame at the front of the buffer.
    fn cut(&self, expected: usize) -> FrameError {
        FrameError::UnexpectedEof {
            read: self.buf.len(),
            expected,
        }
    }

    /// The next frame, without its 4-byte size prefix.
    ///
    /// `Ok(None)` on a clean EOF at a frame boundary; EOF inside a frame is
    /// [`FrameError::UnexpectedEof`]. Cancel-safe: bytes already read stay buffered.
    ///
    /// A read that fails with [`std::io::ErrorKind::UnexpectedEof`] is an end of stream too:
    /// that is how rustls reports a peer that closed without a TLS `close_notify`, which Kafka
    /// clients and brokers routinely do. The framing still tells a cut frame from a clean end.
    ///
    /// With a budget, the frame handed out last counts against it until this is called again.
    pub async fn read_frame(&mut self) -> Result<Option<Bytes>, FrameError> {
        self.handed_out = None;
        loop {
            let total = self.current_frame_total()?;
            if let Some(total) = total
                && self.buf.len() >= total
            {
                let mut frame = self.buf.split_to(total);
                frame.advance(LENGTH_PREFIX);
                self.handed_out = self.held.take();
                return Ok(Some(frame.freeze()));
            }
            if let Some(total) = total
                && total > FREE_FRAME_BYTES
                && self.held.is_none()
                && let Some(budget) = &self.budget
            {
                // Cancel-safe: a cancelled wait holds nothing, and a granted one is kept here.
                self.held = Some(budget.acquire(total).await?);
            }

            if self.buf.is_empty() {
                // Between frames, possibly idle for minutes: wait holding no buffer.
                match self.read_between_frames().await {
                    Ok(0) => return Ok(None),
                    Ok(_) => continue,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                    Err(e) => return Err(e.into()),
                }
            }
            let expected = total.unwrap_or(LENGTH_PREFIX);
            let needed = expected.saturating_sub(self.buf.len());
            self.buf
                .reserve(needed.clamp(READ_CHUNK, MAX_RESERVE_AHEAD));
            // The rest of the frame, or one chunk if that is less.
            let n = self
                .fill(needed.max(READ_CHUNK), self.buf.len(), expected)
                .await?;
            if n == 0 {
                if self.buf.is_empty() {
                    return Ok(None);
                }
                return Err(FrameError::UnexpectedEof {
                    read: self.buf.len(),
                    expected,
                });
            }
        }
    }

    /// One read into a stack chunk that lives for a single poll, then into a fresh buffer: while
    /// the peer sends nothing, this reader holds no heap memory at all (an idle connection
    /// would otherwise keep a `READ_CHUNK` buffer per direction). The previous frame's buffer
    /// is let go, so it is freed as soon as that frame is. `Ok(0)`: end of stream.
    async fn read_between_frames(&mut self) -> std::io::Result<usize> {
        self.buf = BytesMut::new();
        let (inner, buf) = (&mut self.inner, &mut self.buf);
        std::future::poll_fn(|cx| {
            let mut chunk = [0u8; READ_CHUNK];
            let mut read = tokio::io::ReadBuf::new(&mut chunk);
            std::task::ready!(std::pin::Pin::new(&mut *inner).poll_read(cx, &mut read))?;
            let got = read.filled();
            buf.reserve(READ_CHUNK.max(got.len()));
            buf.extend_from_slice(got);
            std::task::Poll::Ready(Ok(got.len()))
        })
        .await
    }

    /// The total size (prefix included) of the frame at the front of the buffer, once its prefix
    /// has arrived. Checks the limit before any of the frame's body is waited for.
    fn current_frame_total(&self) -> Result<Option<usize>, FrameError> {
        let Some(prefix) = self.buf.get(..LENGTH_PREFIX) else {
            return Ok(None);
        };
        let mut raw = [0u8; LENGTH_PREFIX];
        raw.copy_from_slice(prefix);
        let size = i32::from_be_bytes(raw);
        let size = usize::try_from(size).map_err(|_| FrameError::NegativeLength(size))?;
        if size > self.max_frame {
            return Err(FrameError::TooLarge {
                size,
                max: self.max_frame,
            });
        }
        Ok(Some(LENGTH_PREFIX + size))
    }

    /// The stream back. Bytes already read but not yet returned as a frame are dropped.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The stream, for writing to it (reading from it directly would skip buffered bytes).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }
}

/// Writes one frame: its size prefix, then the bytes. Does not flush.
///
/// Small frames go out in one write call; large ones are written without copying (vectored where
/// the writer supports it).
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> std::io::Result<()> {
    let size = i32::try_from(frame.len()).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!(
                "frame of {} bytes does not fit Kafka's int32 size",
                frame.len()
            ),
        )
    })?;
    let prefix = size.to_be_bytes();
    if frame.len() <= COALESCE_WRITE_MAX {
        let mut out = Vec::with_capacity(LENGTH_PREFIX + frame.len());
        out.extend_from_slice(&prefix);
        out.extend_from_slice(frame);
        w.write_all(&out).await
    } else {
        w.write_all_buf(&mut Buf::chain(&prefix[..], frame)).await
    }
}

#[cfg(test)]
mod tests;
