//! Connections to the real Kafka brokers.
//!
//! - [`BrokerBook`]: what the proxy has learned from the cluster's responses — node id →
//!   the broker's own `host:port` — so a client dialling the proxy port of node N reaches N.
//! - [`UpstreamConnector`]: opens one upstream connection for one client connection
//!   (plaintext or TLS, optionally with the proxy's own client certificate). It is handed the
//!   client's identity, which is where a per-pool upstream identity (SASL) plugs in.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::config::{UpstreamConfig, UpstreamTlsConfig};
use crate::connection::ConnectionIdentity;

/// Which broker a client connection is meant for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Any of the configured bootstrap servers.
    Bootstrap,
    /// The broker with this node id, as learned from the cluster.
    Node(i32),
}

/// Node id → the broker's own address, learned from Metadata, FindCoordinator and
/// DescribeCluster responses.
#[derive(Debug, Default)]
pub struct BrokerBook {
    nodes: RwLock<HashMap<i32, (String, u16)>>,
}

impl BrokerBook {
    /// Record a broker address; returns true when it is new or changed.
    pub fn learn(&self, node_id: i32, host: &str, port: i32) -> bool {
        let Ok(port) = u16::try_from(port) else {
            return false;
        };
        if node_id < 0 || host.is_empty() {
            return false;
        }
        let Ok(mut nodes) = self.nodes.write() else {
            return false;
        };
        match nodes.get(&node_id) {
            Some((h, p)) if h == host && *p == port => false,
            _ => {
                nodes.insert(node_id, (host.to_string(), port));
                true
            }
        }
    }

    pub fn lookup(&self, node_id: i32) -> Option<(String, u16)> {
        self.nodes.read().ok()?.get(&node_id).cloned()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no broker address is known for node {0} yet (the client must fetch metadata first)")]
    UnknownNode(i32),
    #[error("cannot connect to upstream broker {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("timed out after {ms} ms connecting to upstream broker {addr}")]
    Timeout { addr: String, ms: u128 },
    #[error("TLS handshake with upstream broker {addr} failed: {source}")]
    Tls { addr: String, source: io::Error },
    #[error("upstream TLS configuration: {0}")]
    TlsConfig(String),
    #[error("every bootstrap server failed: {0}")]
    AllBootstrapFailed(String),
}

/// An upstream byte stream, plaintext or TLS.
pub enum UpstreamStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for UpstreamStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for UpstreamStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamStream::Plain(s) => s.is_write_vectored(),
            UpstreamStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_flush(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            UpstreamStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Presents the proxy's own certificate to brokers that ask for one.
#[derive(Debug)]
struct ProxyClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for ProxyClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Opens upstream connections. One per proxy configuration; shared by all connections.
pub struct UpstreamConnector {
    bootstrap: Vec<(String, u16)>,
    tls: Option<(tokio_rustls::TlsConnector, Option<String>)>,
    connect_timeout: Duration,
    book: Arc<BrokerBook>,
}

impl UpstreamConnector {
    pub fn new(
        config: &UpstreamConfig,
        book: Arc<BrokerBook>,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Self, UpstreamError> {
        let tls = match &config.tls {
            None => None,
            Some(t) => Some((tls_connector(t, provider)?, t.server_name.clone())),
        };
        Ok(Self {
            bootstrap: config.bootstrap_servers.clone(),
            tls,
            connect_timeout: config.connect_timeout,
            book,
        })
    }

    pub fn book(&self) -> &Arc<BrokerBook> {
        &self.book
    }

    /// Connect on behalf of `identity` to `target`.
    ///
    /// The identity is not used on the wire yet: this is the one place where a per-pool
    /// upstream identity (SASL as the pool's principal) will be attached.
    pub async fn connect(
        &self,
        target: Target,
        _identity: &ConnectionIdentity,
    ) -> Result<(UpstreamStream, String), UpstreamError> {
        match target {
            Target::Node(id) => {
                let (host, port) = self.book.lookup(id).ok_or(UpstreamError::UnknownNode(id))?;
                let stream = self.connect_to(&host, port).await?;
                Ok((stream, format!("{host}:{port}")))
            }
            Target::Bootstrap => {
                let mut errors = Vec::new();
                for (host, port) in &self.bootstrap {
                    match self.connect_to(host, *port).await {
                        Ok(s) => return Ok((s, format!("{host}:{port}"))),
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                Err(UpstreamError::AllBootstrapFailed(errors.join("; ")))
            }
        }
    }

    async fn connect_to(&self, host: &str, port: u16) -> Result<UpstreamStream, UpstreamError> {
        let addr = format!("{host}:{port}");
        let tcp = match tokio::time::timeout(self.connect_timeout, TcpStream::connect((host, port)))
            .await
        {
            Err(_) => {
                return Err(UpstreamError::Timeout {
                    addr,
                    ms: self.connect_timeout.as_millis(),
                });
            }
            Ok(Err(source)) => return Err(UpstreamError::Connect { addr, source }),
            Ok(Ok(s)) => s,
        };
        // Kafka is request/response: small frames must not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let Some((connector, server_name)) = &self.tls else {
            return Ok(UpstreamStream::Plain(tcp));
        };
        let name = server_name.as_deref().unwrap_or(host);
        let name = ServerName::try_from(name.to_string())
            .map_err(|e| UpstreamError::TlsConfig(format!("`{name}`: {e}")))?;
        let tls = tokio::time::timeout(self.connect_timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| UpstreamError::Timeout {
                addr: addr.clone(),
                ms: self.connect_timeout.as_millis(),
            })?
            .map_err(|source| UpstreamError::Tls { addr, source })?;
        Ok(UpstreamStream::Tls(Box::new(tls)))
    }
}

fn tls_connector(
    t: &UpstreamTlsConfig,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<tokio_rustls::TlsConnector, UpstreamError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| UpstreamError::TlsConfig(e.to_string()))?
        .with_root_certificates(t.roots.clone());
    let config = match &t.client_key {
        Some(key) => builder.with_client_cert_resolver(Arc::new(ProxyClientCert(key.clone()))),
        None => builder.with_no_client_auth(),
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
