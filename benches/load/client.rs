//! A minimal Kafka client, the same code on every path: connect (plaintext or mTLS), one
//! request and its answer, version negotiation.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, MetadataResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const CLIENT_ID: &str = "load-bench";
/// Every single network operation of the client (connect, handshake, one write, one read).
const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest response the client accepts.
const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;
const API_VERSIONS_VERSION: i16 = 3;
const UNSUPPORTED_VERSION: i16 = 35;

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// How the client reaches a path: plaintext, or mTLS with the client certificate.
#[derive(Clone)]
pub struct ClientTls {
    pub connector: TlsConnector,
    pub server_name: ServerName<'static>,
}

impl ClientTls {
    /// The same client with `host` as the TLS server name (SNI, and the name verified).
    pub fn named(&self, host: &str) -> Result<ClientTls> {
        Ok(ClientTls {
            connector: self.connector.clone(),
            server_name: ServerName::try_from(host.to_owned())?,
        })
    }
}

pub async fn timed<T, E>(what: &str, fut: impl Future<Output = Result<T, E>>) -> Result<T>
where
    E: Into<anyhow::Error>,
{
    match tokio::time::timeout(IO_TIMEOUT, fut).await {
        Err(_) => bail!("{what}: no progress within {IO_TIMEOUT:?}"),
        Ok(r) => r.map_err(Into::into).with_context(|| what.to_string()),
    }
}

pub struct KafkaConn {
    pub io: BufReader<Box<dyn Io>>,
    pub next_correlation: i32,
    /// Protocol version, cipher suite and key exchange group, when TLS.
    pub tls_params: Option<String>,
}

impl KafkaConn {
    pub async fn connect(addr: SocketAddr, tls: Option<&ClientTls>) -> Result<Self> {
        let tcp = timed("TCP connect", TcpStream::connect(addr)).await?;
        tcp.set_nodelay(true)?;
        let (io, tls_params): (Box<dyn Io>, _) = match tls {
            None => (Box::new(tcp), None),
            Some(t) => {
                let stream = timed(
                    "TLS handshake",
                    t.connector.connect(t.server_name.clone(), tcp),
                )
                .await?;
                let (_, conn) = stream.get_ref();
                let params = format!(
                    "{:?} {:?} {:?}",
                    conn.protocol_version()
                        .ok_or_else(|| anyhow!("no TLS version"))?,
                    conn.negotiated_cipher_suite()
                        .ok_or_else(|| anyhow!("no cipher suite"))?
                        .suite(),
                    conn.negotiated_key_exchange_group()
                        .ok_or_else(|| anyhow!("no key exchange group"))?
                        .name(),
                );
                (Box::new(stream), Some(params))
            }
        };
        Ok(Self {
            io: BufReader::with_capacity(64 * 1024, io),
            next_correlation: 1,
            tls_params,
        })
    }

    pub fn correlation_id(&mut self) -> i32 {
        let id = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        id
    }

    pub async fn write(&mut self, frame: &[u8]) -> Result<()> {
        timed("write", self.io.write_all(frame)).await
    }

    pub async fn flush(&mut self) -> Result<()> {
        timed("flush", self.io.flush()).await
    }

    pub async fn read_frame(&mut self) -> Result<Bytes> {
        let len = timed("read response size", self.io.read_i32()).await?;
        let len = usize::try_from(len).map_err(|_| anyhow!("negative response size {len}"))?;
        ensure!(len <= MAX_RESPONSE_BYTES, "response of {len} bytes");
        let mut body = vec![0u8; len];
        timed("read response", self.io.read_exact(&mut body)).await?;
        Ok(Bytes::from(body))
    }

    pub async fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &Req,
    ) -> Result<Resp> {
        let correlation = self.correlation_id();
        let frame = request_frame(key, version, correlation, request)?;
        self.write(&frame).await?;
        self.flush().await?;
        let mut response = self.read_frame().await?;
        decode_response(key, version, correlation, &mut response)
    }

    pub async fn api_versions(&mut self) -> Result<ApiVersionsResponse> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str(CLIENT_ID))
            .with_client_software_version(StrBytes::from_static_str("1.0"));
        let mut response: ApiVersionsResponse = self
            .call(ApiKey::ApiVersions, API_VERSIONS_VERSION, &request)
            .await?;
        if response.error_code == UNSUPPORTED_VERSION {
            // KIP-511: retry with the oldest version.
            response = self
                .call(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
                .await?;
        }
        ensure!(
            response.error_code == 0,
            "ApiVersions error {}",
            response.error_code
        );
        Ok(response)
    }

    pub async fn metadata(
        &mut self,
        version: i16,
        topic: Option<&str>,
    ) -> Result<MetadataResponse> {
        let topics =
            topic.map(|t| vec![MetadataRequestTopic::default().with_name(Some(topic_name(t)))]);
        let request = MetadataRequest::default()
            .with_topics(topics)
            .with_allow_auto_topic_creation(false);
        self.call(ApiKey::Metadata, version, &request).await
    }

    /// Close like a Java client: TLS close_notify (when TLS), then FIN.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.io.shutdown()).await;
    }
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// A whole request frame: size prefix, header, body.
pub fn request_frame<T: Encodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &T,
) -> Result<BytesMut> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)))
        .encode(&mut buf, key.request_header_version(version))?;
    body.encode(&mut buf, version)?;
    let size = i32::try_from(buf.len() - 4)?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf)
}

/// Where the correlation id sits in a request frame: size (4), api key (2), api version (2).
pub const CORRELATION_OFFSET: usize = 8;

pub fn decode_response<T: Decodable>(
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    buf: &mut Bytes,
) -> Result<T> {
    let header = ResponseHeader::decode(buf, key.response_header_version(version))?;
    ensure!(
        header.correlation_id == correlation_id,
        "{key:?} response has correlation id {}, expected {correlation_id}",
        header.correlation_id
    );
    T::decode(buf, version).with_context(|| format!("decoding {key:?} v{version} response"))
}

/// The version to use: the highest both sides speak.
pub fn negotiate(versions: &ApiVersionsResponse, key: ApiKey, ours: i16) -> Result<i16> {
    let theirs = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == key as i16)
        .ok_or_else(|| anyhow!("the broker does not support {key:?}"))?;
    ensure!(
        theirs.min_version <= ours,
        "{key:?}: the broker needs v{} or later, this client speaks up to v{ours}",
        theirs.min_version
    );
    Ok(theirs.max_version.min(ours))
}

#[derive(Debug, Clone, Copy)]
pub struct Versions {
    pub metadata: i16,
    pub produce: i16,
    pub create_topics: i16,
}

pub fn client_tls(pki: &Path) -> Result<ClientTls> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(pki.join("server-ca.pem"))? {
        roots.add(cert?)?;
    }
    let chain = CertificateDer::pem_file_iter(pki.join("acme-client.pem"))?
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(pki.join("acme-client.key"))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    // Every connection is a full handshake: nothing is ever resumed.
    config.resumption = rustls::client::Resumption::disabled();
    config.enable_early_data = false;
    Ok(ClientTls {
        connector: TlsConnector::from(Arc::new(config)),
        server_name: ServerName::try_from("localhost")?.to_owned(),
    })
}
