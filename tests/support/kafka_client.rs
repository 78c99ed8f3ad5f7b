//! The client side of the hostile-input tests: one TLS connection to the proxy speaking Kafka
//! frames ([`KafkaConn`]), the requests the tests send, and a strict response decoder.
#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, DescribeClusterRequest, FetchRequest, FindCoordinatorRequest,
    MetadataRequest, ProduceRequest, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::proxy::{framed, request};

/// How long a hostile connection may take to be closed, and a response to arrive.
pub const CLOSE_WITHIN: Duration = Duration::from_secs(5);

/// A request header v1 (api key, version, correlation id, client id) followed by `body`: what
/// a client sends for an api key kafka-protocol does not know.
pub fn raw_request(
    api_key: i16,
    version: i16,
    correlation_id: i32,
    client_id: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut buf = Vec::new();
    buf.put_i16(api_key);
    buf.put_i16(version);
    buf.put_i32(correlation_id);
    buf.put_i16(i16::try_from(client_id.len()).unwrap());
    buf.put_slice(client_id.as_bytes());
    buf.put_slice(body);
    framed(&buf)
}

/// Decodes a whole response frame (header version as Kafka says for `key`), refusing trailing
/// bytes.
pub fn decode<T: Decodable>(frame: &Bytes, key: ApiKey, version: i16) -> Result<(i32, T), String> {
    let mut buf = frame.clone();
    let header = ResponseHeader::decode(&mut buf, key.response_header_version(version))
        .map_err(|e| format!("{key:?} v{version} response header: {e:#}"))?;
    let body = T::decode(&mut buf, version).map_err(|e| format!("{key:?} v{version}: {e:#}"))?;
    if buf.has_remaining() {
        return Err(format!(
            "{key:?} v{version}: {} trailing bytes",
            buf.remaining()
        ));
    }
    Ok((header.correlation_id, body))
}

/// Metadata for all topics (v1+: a null topic list).
pub fn metadata_request() -> MetadataRequest {
    MetadataRequest::default().with_topics(None)
}

pub fn find_coordinator_request(version: i16) -> FindCoordinatorRequest {
    if version >= 4 {
        FindCoordinatorRequest::default()
            .with_coordinator_keys(vec![StrBytes::from_static_str("group-a")])
    } else {
        FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("group-a"))
    }
}

/// A sensible request of `key` at `version` (Produce with acks=1, so it expects an answer).
pub fn request_for(key: ApiKey, version: i16, correlation_id: i32, client_id: &str) -> Vec<u8> {
    let (corr, id) = (correlation_id, client_id);
    match key {
        ApiKey::Metadata => request(key, version, corr, id, &metadata_request()),
        ApiKey::FindCoordinator => {
            request(key, version, corr, id, &find_coordinator_request(version))
        }
        ApiKey::DescribeCluster => {
            request(key, version, corr, id, &DescribeClusterRequest::default())
        }
        ApiKey::ApiVersions => request(key, version, corr, id, &ApiVersionsRequest::default()),
        ApiKey::Produce => request(
            key,
            version,
            corr,
            id,
            &ProduceRequest::default().with_acks(1).with_timeout_ms(1000),
        ),
        ApiKey::Fetch => request(key, version, corr, id, &FetchRequest::default()),
        other => panic!("no request builder for {other:?}"),
    }
}

/// One TLS connection to the proxy, speaking Kafka frames.
pub struct KafkaConn {
    pub stream: TlsStream<TcpStream>,
    /// This end's address: the `peer` in the proxy's log lines about this connection.
    pub local: SocketAddr,
}

impl KafkaConn {
    pub async fn connect(
        addr: SocketAddr,
        tls: Arc<rustls::ClientConfig>,
    ) -> std::io::Result<Self> {
        Self::connect_named(addr, tls, "localhost").await
    }

    /// Connect with `server_name` as the TLS server name (SNI, and the name verified).
    pub async fn connect_named(
        addr: SocketAddr,
        tls: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> std::io::Result<Self> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let local = tcp.local_addr()?;
        let name = ServerName::try_from(server_name.to_owned()).unwrap();
        let stream = tokio::time::timeout(
            CLOSE_WITHIN,
            tokio_rustls::TlsConnector::from(tls).connect(name, tcp),
        )
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
        })??;
        Ok(Self { stream, local })
    }

    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// The next response frame (without its size prefix).
    pub async fn recv(&mut self) -> Result<Bytes, String> {
        let read = async {
            let size = self.stream.read_i32().await?;
            let size = usize::try_from(size).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("size {size}"))
            })?;
            let mut body = vec![0u8; size];
            self.stream.read_exact(&mut body).await?;
            Ok::<_, std::io::Error>(Bytes::from(body))
        };
        match tokio::time::timeout(CLOSE_WITHIN, read).await {
            Ok(Ok(frame)) => Ok(frame),
            Ok(Err(e)) => Err(format!("reading a response: {e}")),
            Err(_) => Err(format!("no response within {CLOSE_WITHIN:?}")),
        }
    }

    pub async fn round_trip(&mut self, frame: &[u8]) -> Result<Bytes, String> {
        self.send(frame)
            .await
            .map_err(|e| format!("sending a request: {e}"))?;
        self.recv().await
    }

    /// Waits for the proxy to close the connection: EOF or an error, without a single byte of
    /// response, within [`CLOSE_WITHIN`].
    pub async fn expect_closed(&mut self, what: &str) {
        let started = Instant::now();
        let mut buf = [0u8; 4096];
        let mut received = 0usize;
        loop {
            match tokio::time::timeout_at(
                (started + CLOSE_WITHIN).into(),
                self.stream.read(&mut buf),
            )
            .await
            {
                Err(_) => panic!(
                    "{what}: the proxy did not close the connection within {CLOSE_WITHIN:?} \
                     ({received} bytes received)"
                ),
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => received += n,
            }
        }
        assert_eq!(
            received, 0,
            "{what}: the proxy sent {received} bytes before closing instead of just closing"
        );
    }
}
