//! TCP, then TLS when configured, to one broker: [`Dialer`] and the [`UpstreamStream`] it
//! opens, with the proxy's own client certificate for brokers that ask for one.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use rustls_pki_types::ServerName;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::UpstreamError;
use crate::config::{UpstreamConfig, UpstreamTlsConfig};

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

/// TCP keepalive on every upstream connection. A broker host that vanishes without a FIN or RST
/// (crashed, cut off, rebooted) leaves the proxy's socket half-open: nothing is read, and a
/// client with nothing to send keeps a dead connection until the idle timeout. Probes after
/// `KEEPALIVE_IDLE` of silence find out within `KEEPALIVE_IDLE + KEEPALIVE_INTERVAL *
/// KEEPALIVE_RETRIES` (a reset from a broker that came back, sooner); the read fails and the
/// client's connection is closed, so it reconnects. The OS default (2 h idle) is of no use here.
pub(crate) const KEEPALIVE_IDLE: Duration = Duration::from_secs(30);
pub(crate) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
pub(crate) const KEEPALIVE_RETRIES: u32 = 3;

fn keepalive() -> TcpKeepalive {
    TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES)
}

/// Opens the byte stream to one broker: TCP, then TLS when `upstream.tls` is configured, each
/// bounded by the connect timeout.
pub(super) struct Dialer {
    /// The TLS client and the server name to verify (`None`: the broker's host name).
    tls: Option<(tokio_rustls::TlsConnector, Option<String>)>,
    connect_timeout: Duration,
}

impl Dialer {
    pub(super) fn new(
        config: &UpstreamConfig,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Self, UpstreamError> {
        let tls = match &config.tls {
            None => None,
            Some(t) => Some((tls_connector(t, provider)?, t.server_name.clone())),
        };
        Ok(Self {
            tls,
            connect_timeout: config.connect_timeout,
        })
    }

    pub(super) async fn dial(
        &self,
        host: &str,
        port: u16,
    ) -> Result<UpstreamStream, UpstreamError> {
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
        // Best effort, like Nagle's: without it a vanished broker is noticed later, not never
        // (the client's request timeout, then the drain timeout, still end the session).
        let _ = SockRef::from(&tcp).set_tcp_keepalive(&keepalive());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn upstream_sockets_probe_a_silent_broker_with_keepalive() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let dialer = Dialer {
            tls: None,
            connect_timeout: Duration::from_secs(5),
        };
        let UpstreamStream::Plain(tcp) = dialer.dial("127.0.0.1", port).await.unwrap() else {
            panic!("no TLS configured, yet a TLS stream");
        };
        let socket = SockRef::from(&tcp);
        assert!(socket.keepalive().unwrap());
        assert_eq!(socket.tcp_keepalive_time().unwrap(), KEEPALIVE_IDLE);
        assert_eq!(socket.tcp_keepalive_interval().unwrap(), KEEPALIVE_INTERVAL);
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), KEEPALIVE_RETRIES);
    }
}
