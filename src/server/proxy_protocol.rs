//! PROXY protocol v1/v2 on the client listeners (`listener.proxy_protocol`).
//!
//! A load balancer in TCP mode (haproxy `send-proxy-v2`, AWS NLB, …) puts a header in front of
//! the client's bytes saying whom it relays. The proxy reads it before the TLS handshake, and
//! the header's source address becomes the session's `peer` (logs, audit, metrics); the load
//! balancer's own address is kept as `via`.
//!
//! Only configured trusted sources may send a header ([`ProxyProtocolConfig::trusts`]); anyone
//! else who starts with a PROXY signature is refused and counted, never believed.
//!
//! The header is read *exactly* — never a byte past its end — so the TLS ClientHello that may
//! share its TCP segment stays in the socket for the handshake: whether a connection starts with
//! a signature is decided with one `peek`; a v2 header announces its length in its first 16
//! bytes; a v1 line is read a few bytes at a time up to its `\r\n`. Parsing is `ppp`'s; this
//! module adds the limits, the exact reads and the policy.

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;
use tracing::{Instrument, debug, warn};

use crate::config::ProxyProtocolConfig;
use crate::metrics::ProxyProtocolRefusal;
use crate::session::Session;

/// The v2 signature: the first 12 bytes of every v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The v1 signature (a text line `PROXY TCP4 … \r\n`).
pub const V1_SIGNATURE: &[u8] = b"PROXY ";
/// The longest v1 line, `\r\n` included (the specification's worst case, TCP6).
pub const V1_MAX_BYTES: usize = 107;
/// The shortest v1 line: `PROXY UNKNOWN\r\n`.
const V1_MIN_BYTES: usize = 15;
/// A v2 header's fixed part: signature, version/command, family/protocol, payload length.
pub const V2_FIXED_BYTES: usize = 16;
/// The longest v2 payload (addresses and TLVs) accepted. The protocol allows 65,535 bytes;
/// addresses take at most 216 (UNIX) and the TLVs load balancers send (ALPN, authority, AWS
/// VPC endpoint, SSL info) stay well under this, so a bigger header is refused rather than
/// buffered.
pub const V2_MAX_PAYLOAD_BYTES: usize = 1024;

/// Which version a header is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderVersion {
    V1,
    V2,
}

impl HeaderVersion {
    fn number(self) -> u8 {
        match self {
            HeaderVersion::V1 => 1,
            HeaderVersion::V2 => 2,
        }
    }
}

/// What a header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The load balancer relays a client connected from `source` to its `destination`.
    Proxied {
        version: HeaderVersion,
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// The connection is the load balancer's own (v2 `LOCAL`, e.g. a health check; v1
    /// `UNKNOWN`; v2 `UNSPEC` addresses): the socket's address stands.
    Local { version: HeaderVersion },
}

/// Why a header was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("not a PROXY protocol header (no v1 or v2 signature)")]
    NoSignature,
    #[error("PROXY v1 header has no \\r\\n within {V1_MAX_BYTES} bytes")]
    V1TooLong,
    #[error(
        "PROXY v2 header announces {0} bytes of addresses and TLVs; at most \
         {V2_MAX_PAYLOAD_BYTES} are accepted"
    )]
    V2TooLong(usize),
    #[error("malformed PROXY v{version} header: {detail}")]
    Malformed { version: u8, detail: String },
    #[error("PROXY v2 header with UNIX socket addresses: no IP address to use")]
    UnixAddresses,
    #[error("the header ended before it was complete")]
    Truncated,
    #[error("I/O while reading the PROXY header: {0}")]
    Io(std::io::Error),
}

/// Whether `bytes` (the start of a connection, possibly short) begin with a v1 or v2
/// signature, or with as much of one as has arrived.
pub fn signature(bytes: &[u8]) -> Option<HeaderVersion> {
    let starts = |sig: &[u8]| {
        let n = bytes.len().min(sig.len());
        n > 0 && bytes[..n] == sig[..n]
    };
    if starts(&V2_SIGNATURE) {
        Some(HeaderVersion::V2)
    } else if starts(V1_SIGNATURE) {
        Some(HeaderVersion::V1)
    } else {
        None
    }
}

/// Parse the header at the start of `bytes`: what it says, and how many bytes it took.
/// Bytes after the header are left alone; a header cut short is [`ProxyHeaderError::Truncated`].
pub fn parse_header(bytes: &[u8]) -> Result<(ProxyHeader, usize), ProxyHeaderError> {
    match signature(bytes) {
        Some(HeaderVersion::V2) => parse_v2(bytes),
        Some(HeaderVersion::V1) => parse_v1(bytes),
        None => Err(ProxyHeaderError::NoSignature),
    }
}

fn parse_v2(bytes: &[u8]) -> Result<(ProxyHeader, usize), ProxyHeaderError> {
    use ppp::v2::{Addresses, Command};
    let Some(fixed) = bytes.get(..V2_FIXED_BYTES) else {
        return Err(ProxyHeaderError::Truncated);
    };
    let payload = usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if payload > V2_MAX_PAYLOAD_BYTES {
        return Err(ProxyHeaderError::V2TooLong(payload));
    }
    let header = ppp::v2::Header::try_from(bytes).map_err(|e| match e {
        ppp::v2::ParseError::Incomplete(_) | ppp::v2::ParseError::Partial(..) => {
            ProxyHeaderError::Truncated
        }
        e => malformed(HeaderVersion::V2, e),
    })?;
    let version = HeaderVersion::V2;
    let parsed = match (header.command, header.addresses) {
        (Command::Local, _) | (Command::Proxy, Addresses::Unspecified) => {
            ProxyHeader::Local { version }
        }
        (Command::Proxy, Addresses::IPv4(a)) => ProxyHeader::Proxied {
            version,
            source: SocketAddr::from((a.source_address, a.source_port)),
            destination: SocketAddr::from((a.destination_address, a.destination_port)),
        },
        (Command::Proxy, Addresses::IPv6(a)) => ProxyHeader::Proxied {
            version,
            source: SocketAddr::from((a.source_address, a.source_port)),
            destination: SocketAddr::from((a.destination_address, a.destination_port)),
        },
        (Command::Proxy, Addresses::Unix(_)) => return Err(ProxyHeaderError::UnixAddresses),
    };
    Ok((parsed, header.len()))
}

fn parse_v1(bytes: &[u8]) -> Result<(ProxyHeader, usize), ProxyHeaderError> {
    use ppp::v1::Addresses;
    let window = &bytes[..bytes.len().min(V1_MAX_BYTES)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return Err(if window.len() >= V1_MAX_BYTES {
            ProxyHeaderError::V1TooLong
        } else {
            ProxyHeaderError::Truncated
        });
    };
    let len = end + 2;
    let header =
        ppp::v1::Header::try_from(&bytes[..len]).map_err(|e| malformed(HeaderVersion::V1, e))?;
    let version = HeaderVersion::V1;
    let parsed = match header.addresses {
        Addresses::Unknown => ProxyHeader::Local { version },
        Addresses::Tcp4(a) => ProxyHeader::Proxied {
            version,
            source: SocketAddr::from((a.source_address, a.source_port)),
            destination: SocketAddr::from((a.destination_address, a.destination_port)),
        },
        Addresses::Tcp6(a) => ProxyHeader::Proxied {
            version,
            source: SocketAddr::from((a.source_address, a.source_port)),
            destination: SocketAddr::from((a.destination_address, a.destination_port)),
        },
    };
    Ok((parsed, len))
}

fn malformed(version: HeaderVersion, e: impl std::fmt::Display) -> ProxyHeaderError {
    ProxyHeaderError::Malformed {
        version: version.number(),
        detail: e.to_string(),
    }
}

/// Read one header from `io`, consuming exactly its bytes (none of what follows).
pub async fn read_header<R>(io: &mut R) -> Result<ProxyHeader, ProxyHeaderError>
where
    R: AsyncRead + Unpin,
{
    // At most the fixed part of v2 or the longest v1 line, plus a capped v2 payload.
    let mut buf = Vec::with_capacity(V2_FIXED_BYTES.max(V1_MAX_BYTES));
    read_more(io, &mut buf, 1).await?;
    match signature(&buf) {
        Some(HeaderVersion::V2) => {
            read_more(io, &mut buf, V2_FIXED_BYTES - 1).await?;
            if buf[..V2_SIGNATURE.len()] != V2_SIGNATURE {
                return Err(ProxyHeaderError::NoSignature);
            }
            let payload = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
            if payload > V2_MAX_PAYLOAD_BYTES {
                return Err(ProxyHeaderError::V2TooLong(payload));
            }
            read_more(io, &mut buf, payload).await?;
        }
        Some(HeaderVersion::V1) => {
            read_more(io, &mut buf, V1_MIN_BYTES - 1).await?;
            // Never past the line's end: 2 bytes while neither can be its `\n`, else 1.
            while !buf.contains(&b'\n') {
                if buf.len() >= V1_MAX_BYTES {
                    return Err(ProxyHeaderError::V1TooLong);
                }
                let step = if buf.last() == Some(&b'\r') { 1 } else { 2 };
                let step = step.min(V1_MAX_BYTES - buf.len());
                read_more(io, &mut buf, step).await?;
            }
            if !buf.windows(2).any(|w| w == b"\r\n") {
                return Err(malformed(HeaderVersion::V1, "a bare \\n inside the line"));
            }
        }
        None => return Err(ProxyHeaderError::NoSignature),
    }
    let (header, len) = parse_header(&buf)?;
    if len != buf.len() {
        // A `\n` inside the line (or a v2 TLV area the parser did not take): not a header.
        return Err(malformed(
            if buf[0] == b'P' {
                HeaderVersion::V1
            } else {
                HeaderVersion::V2
            },
            format!("{} stray bytes after the header's end", buf.len() - len),
        ));
    }
    Ok(header)
}

/// Append exactly `n` bytes from `io` to `buf`.
async fn read_more<R>(io: &mut R, buf: &mut Vec<u8>, n: usize) -> Result<(), ProxyHeaderError>
where
    R: AsyncRead + Unpin,
{
    let start = buf.len();
    buf.resize(start + n, 0);
    match io.read_exact(&mut buf[start..]).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(ProxyHeaderError::Truncated),
        Err(e) => Err(ProxyHeaderError::Io(e)),
    }
}

/// Where a connection comes from, once its header (if any) is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The client: the header's source, or the socket's address.
    pub client: SocketAddr,
    /// The load balancer that relayed the client, when a header named one.
    pub via: Option<SocketAddr>,
}

/// Why a connection was refused before its TLS handshake.
#[derive(Debug, thiserror::Error)]
pub enum ProxyRefusal {
    #[error(
        "sent a PROXY protocol header from a source not in listener.proxy_protocol.trusted_sources"
    )]
    UntrustedHeader,
    #[error(
        "no PROXY protocol header from a trusted source (listener.proxy_protocol.required is true)"
    )]
    MissingHeader,
    #[error(
        "a direct connection from a source not in listener.proxy_protocol.trusted_sources \
         (listener.proxy_protocol.allow_direct is false)"
    )]
    DirectRefused,
    #[error("bad PROXY protocol header from a trusted source: {0}")]
    BadHeader(ProxyHeaderError),
    #[error("no complete PROXY protocol header within the handshake timeout ({0} ms)")]
    Timeout(u128),
}

impl ProxyRefusal {
    fn metric(&self) -> ProxyProtocolRefusal {
        match self {
            ProxyRefusal::UntrustedHeader => ProxyProtocolRefusal::UntrustedHeader,
            ProxyRefusal::MissingHeader => ProxyProtocolRefusal::MissingHeader,
            ProxyRefusal::DirectRefused => ProxyProtocolRefusal::DirectRefused,
            ProxyRefusal::BadHeader(_) => ProxyProtocolRefusal::BadHeader,
            ProxyRefusal::Timeout(_) => ProxyProtocolRefusal::Timeout,
        }
    }
}

/// What the start of a connection decides, before anything is consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The client closed without sending a byte (a TCP health check).
    Closed,
    Header,
    NoHeader,
}

/// The policy: what a connection from `trusted` (or not) that starts as `start` gets.
fn decide(config: &ProxyProtocolConfig, trusted: bool, header: bool) -> Result<bool, ProxyRefusal> {
    match (trusted, header) {
        (true, true) => Ok(true),
        (true, false) if config.required => Err(ProxyRefusal::MissingHeader),
        (false, true) => Err(ProxyRefusal::UntrustedHeader),
        (false, false) if !config.allow_direct => Err(ProxyRefusal::DirectRefused),
        _ => Ok(false),
    }
}

/// Where the connection from `peer` on `tcp` comes from, reading its header when the policy
/// says it carries one; `Ok(None)` when it closed before sending anything.
pub async fn resolve<S>(
    config: &ProxyProtocolConfig,
    tcp: &mut S,
    peer: SocketAddr,
    timeout: Duration,
) -> Result<Option<Origin>, ProxyRefusal>
where
    S: PeekStart + AsyncRead + Unpin,
{
    let trusted = config.trusts(peer.ip());
    let work = async {
        let header = match tcp.peek_start().await.map_err(ProxyHeaderError::Io)? {
            Start::Closed => return Ok(None),
            Start::Header => decide(config, trusted, true)?,
            Start::NoHeader => decide(config, trusted, false)?,
        };
        if !header {
            return Ok(Some(Origin {
                client: peer,
                via: None,
            }));
        }
        Ok(Some(match read_header(tcp).await? {
            ProxyHeader::Proxied { source, .. } => Origin {
                client: source,
                via: Some(peer),
            },
            ProxyHeader::Local { .. } => Origin {
                client: peer,
                via: None,
            },
        }))
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(result) => result,
        Err(_) => Err(ProxyRefusal::Timeout(timeout.as_millis())),
    }
}

impl From<ProxyHeaderError> for ProxyRefusal {
    fn from(e: ProxyHeaderError) -> Self {
        ProxyRefusal::BadHeader(e)
    }
}

/// A stream whose first bytes can be looked at without consuming them.
pub trait PeekStart {
    /// Whether the stream starts with a PROXY signature; waits for its first bytes.
    fn peek_start(&mut self) -> impl Future<Output = std::io::Result<Start>> + Send;
}

impl PeekStart for TcpStream {
    async fn peek_start(&mut self) -> std::io::Result<Start> {
        let mut first = [0u8; V2_SIGNATURE.len()];
        // One peek: whatever has arrived decides (a TLS ClientHello starts with 0x16, which
        // matches no signature); `peek` waits for at least one byte.
        let n = self.peek(&mut first).await?;
        Ok(match n {
            0 => Start::Closed,
            n if signature(&first[..n]).is_some() => Start::Header,
            _ => Start::NoHeader,
        })
    }
}

/// The accept path's one call: set the session's `peer` and `via` from the connection's
/// header, or log and count why it is refused. `false`: drop the connection.
pub(crate) async fn admit(
    config: &ProxyProtocolConfig,
    tcp: &mut TcpStream,
    session: &mut Session,
) -> bool {
    let handles = session.handles.clone();
    // The same bound as the TLS handshake that follows.
    let timeout = handles.generations.borrow().config.limits.handshake_timeout;
    let span = tracing::info_span!("conn", id = %session.connection_id, peer = %session.peer);
    let resolved = resolve(config, tcp, session.peer, timeout)
        .instrument(span.clone())
        .await;
    let _entered = span.enter();
    match resolved {
        Ok(Some(origin)) => {
            (session.peer, session.via) = (origin.client, origin.via);
            true
        }
        Ok(None) => {
            debug!("closed before sending anything");
            false
        }
        Err(refusal) => {
            warn!(reason = %refusal, "connection refused before the TLS handshake");
            handles.metrics.proxy_protocol_refused(refusal.metric());
            false
        }
    }
}
