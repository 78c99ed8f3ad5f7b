//! The first half of an SNI-routed handshake: read the ClientHello, and refuse a server name
//! that names no broker with the `unrecognized_name` alert.
//!
//! The proxy decides where a connection goes before it answers anything, so a name it does not
//! serve gets no ServerHello and no certificate: rustls can send an alert only once it has a
//! configuration for the connection, so the alert record is written here, in plaintext, as the
//! first and only bytes the client reads.

use std::time::Duration;

use rustls::server::Acceptor;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_rustls::{LazyConfigAcceptor, StartHandshake};

/// TLS record content type `alert` (RFC 8446 §5.1).
const CONTENT_TYPE_ALERT: u8 = 21;
/// `legacy_record_version`: TLS 1.2's, as every TLS 1.3 record but the first ClientHello has.
const RECORD_VERSION_TLS12: [u8; 2] = [0x03, 0x03];
/// Alert level `fatal` (RFC 8446 §6).
const ALERT_LEVEL_FATAL: u8 = 2;
/// `unrecognized_name` (RFC 6066 §3): the server does not serve the name the client asked for.
pub const ALERT_UNRECOGNIZED_NAME: u8 = 112;

/// The whole fatal `unrecognized_name` alert record, as sent before any ServerHello.
pub const UNRECOGNIZED_NAME_RECORD: [u8; 7] = [
    CONTENT_TYPE_ALERT,
    RECORD_VERSION_TLS12[0],
    RECORD_VERSION_TLS12[1],
    0,
    2,
    ALERT_LEVEL_FATAL,
    ALERT_UNRECOGNIZED_NAME,
];

/// Why no ClientHello was read.
#[derive(Debug, thiserror::Error)]
pub enum HelloError {
    #[error("no ClientHello within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("reading the ClientHello: {0}")]
    Read(std::io::Error),
}

/// A ClientHello read, and the connection to go on with.
pub struct ClientHello<IO> {
    pub start: StartHandshake<IO>,
    /// The server name the client asked for (lower case), if any.
    pub server_name: Option<String>,
}

/// Read the ClientHello from `io` by `deadline` (which the rest of the handshake shares).
/// A malformed hello has been answered with rustls' alert when this returns the error.
pub async fn read_client_hello<IO>(
    io: IO,
    deadline: tokio::time::Instant,
    budget: Duration,
) -> Result<ClientHello<IO>, HelloError>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let acceptor = LazyConfigAcceptor::new(Acceptor::default(), io);
    let start = tokio::time::timeout_at(deadline, acceptor)
        .await
        .map_err(|_| HelloError::Timeout(budget))?
        .map_err(HelloError::Read)?;
    let server_name = start
        .client_hello()
        .server_name()
        .map(|name| name.to_ascii_lowercase());
    Ok(ClientHello { start, server_name })
}

/// Refuse the connection with a fatal `unrecognized_name` alert, before any ServerHello.
/// Best effort: a client already gone needs no alert.
pub async fn refuse_unrecognized_name<IO>(mut io: IO, timeout: Duration)
where
    IO: AsyncWrite + Unpin,
{
    let send = async {
        io.write_all(&UNRECOGNIZED_NAME_RECORD).await?;
        io.flush().await?;
        io.shutdown().await
    };
    let _ = tokio::time::timeout(timeout, send).await;
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::ServerName;
    use tokio::io::AsyncReadExt;

    use super::*;

    fn client_config() -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        Arc::new(config)
    }

    #[test]
    fn the_alert_record_is_fatal_unrecognized_name() {
        assert_eq!(
            UNRECOGNIZED_NAME_RECORD,
            [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x70]
        );
    }

    /// A rustls client reads the record as the alert it is, by its name.
    #[tokio::test]
    async fn a_rustls_client_sees_unrecognized_name() {
        let (client_io, server_io) = tokio::io::duplex(16 * 1024);
        let server = tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            let hello = read_client_hello(server_io, deadline, Duration::from_secs(5))
                .await
                .unwrap();
            assert_eq!(hello.server_name.as_deref(), Some("broker-9.kafka.test"));
            refuse_unrecognized_name(hello.start.io, Duration::from_secs(5)).await;
        });
        let connector = tokio_rustls::TlsConnector::from(client_config());
        let name = ServerName::try_from("Broker-9.Kafka.Test").unwrap();
        let err = match connector.connect(name, client_io).await {
            Ok(_) => panic!("the handshake must fail"),
            Err(e) => e,
        };
        server.await.unwrap();
        let rustls_error = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
            .unwrap();
        assert_eq!(
            rustls_error,
            &rustls::Error::AlertReceived(rustls::AlertDescription::UnrecognisedName)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_times_out() {
        let (mut client_io, server_io) = tokio::io::duplex(1024);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        let err = read_client_hello(server_io, deadline, Duration::from_secs(2))
            .await
            .err()
            .unwrap();
        assert!(matches!(err, HelloError::Timeout(_)), "{err}");
        // Nothing was written to it.
        let mut buf = [0u8; 1];
        drop(err);
        assert_eq!(client_io.read(&mut buf).await.unwrap(), 0);
    }
}
