//! Accepting one TLS connection and learning its verdict.
//!
//! rustls' client-certificate verifier only answers yes or no. To know which pools a
//! connection was admitted to (or exactly why it was refused), each connection gets its own
//! verifier with a slot the verdict is written into, and its own `ServerConfig` around it
//! (cheap: a handful of `Arc` clones). Session resumption is off: rustls resumes a session
//! without re-verifying the client chain, which would let a certificate that is no longer
//! trusted (or no longer matches a pool) back in through a ticket.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::DigitallySignedStruct;
use rustls::ServerConfig;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;

use super::trust::{RefusalReason, TrustStore, Verdict};

/// Builds a rustls acceptor per connection from the shared trust store and server key.
#[derive(Clone)]
pub struct TlsAcceptorFactory {
    trust: Arc<TrustStore>,
    server_key: Arc<dyn ResolvesServerCert>,
    tls13_only: bool,
}

/// The result of a handshake attempt: the stream when admitted, and the verdict either way.
pub enum HandshakeOutcome<IO> {
    Admitted {
        stream: Box<TlsStream<IO>>,
        verdict: Verdict,
    },
    Refused {
        reason: RefusalReason,
        detail: String,
        /// The certificate verdict, when verification got that far.
        verdict: Option<Verdict>,
    },
}

/// Serves one fixed certificate (hot reload swaps the whole factory).
#[derive(Debug)]
struct FixedKey(Arc<CertifiedKey>);

impl ResolvesServerCert for FixedKey {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl TlsAcceptorFactory {
    pub fn new(trust: Arc<TrustStore>, server_key: Arc<CertifiedKey>, tls13_only: bool) -> Self {
        Self {
            trust,
            server_key: Arc::new(FixedKey(server_key)),
            tls13_only,
        }
    }

    pub fn trust(&self) -> &Arc<TrustStore> {
        &self.trust
    }

    fn server_config(
        &self,
        slot: Arc<Mutex<Option<Verdict>>>,
    ) -> Result<ServerConfig, rustls::Error> {
        let versions: &[&rustls::SupportedProtocolVersion] = if self.tls13_only {
            &[&rustls::version::TLS13]
        } else {
            &[&rustls::version::TLS13, &rustls::version::TLS12]
        };
        let verifier = Arc::new(RecordingVerifier {
            trust: self.trust.clone(),
            slot,
        });
        let mut config = ServerConfig::builder_with_provider(self.trust.provider().clone())
            .with_protocol_versions(versions)?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(self.server_key.clone());
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
        Ok(config)
    }

    /// Run the TLS handshake on `io`, bounded by `timeout`.
    pub async fn accept<IO>(&self, io: IO, timeout: Duration) -> HandshakeOutcome<IO>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let deadline = tokio::time::Instant::now() + timeout;
        self.handshake(deadline, timeout, |config| {
            tokio_rustls::TlsAcceptor::from(config).accept(io)
        })
        .await
    }

    /// Finish the handshake of a connection whose ClientHello was read already
    /// ([`super::sni::read_client_hello`]), by `deadline`; `budget` is the whole handshake's
    /// time, for the refusal's detail.
    pub async fn accept_started<IO>(
        &self,
        start: tokio_rustls::StartHandshake<IO>,
        deadline: tokio::time::Instant,
        budget: Duration,
    ) -> HandshakeOutcome<IO>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        self.handshake(deadline, budget, |config| start.into_stream(config))
            .await
    }

    async fn handshake<IO, F>(
        &self,
        deadline: tokio::time::Instant,
        timeout: Duration,
        start: F,
    ) -> HandshakeOutcome<IO>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
        F: FnOnce(Arc<ServerConfig>) -> tokio_rustls::Accept<IO>,
    {
        let slot = Arc::new(Mutex::new(None));
        let config = match self.server_config(slot.clone()) {
            Ok(c) => c,
            Err(e) => {
                return HandshakeOutcome::Refused {
                    reason: RefusalReason::HandshakeFailed,
                    detail: format!("TLS configuration error: {e}"),
                    verdict: None,
                };
            }
        };
        let result = tokio::time::timeout_at(deadline, start(Arc::new(config))).await;
        let verdict = slot.lock().map(|mut g| g.take()).unwrap_or(None);
        match (result, verdict) {
            (Ok(Ok(stream)), Some(verdict @ Verdict::Admitted { .. })) => {
                HandshakeOutcome::Admitted {
                    stream: Box::new(stream),
                    verdict,
                }
            }
            // The verifier refused: its reason is the precise one.
            (
                _,
                Some(Verdict::Refused {
                    reason,
                    detail,
                    identity,
                }),
            ) => HandshakeOutcome::Refused {
                reason,
                detail: detail.clone(),
                verdict: Some(Verdict::Refused {
                    reason,
                    detail,
                    identity,
                }),
            },
            (Err(_), verdict) => HandshakeOutcome::Refused {
                reason: RefusalReason::HandshakeTimeout,
                detail: format!(
                    "no complete TLS handshake within {} ms",
                    timeout.as_millis()
                ),
                verdict,
            },
            (Ok(Err(e)), verdict) => {
                let reason = match rustls_error(&e) {
                    Some(rustls::Error::NoCertificatesPresented) => RefusalReason::NoCertificate,
                    _ => RefusalReason::HandshakeFailed,
                };
                HandshakeOutcome::Refused {
                    reason,
                    detail: format!("TLS handshake failed: {e}"),
                    verdict,
                }
            }
            // A completed handshake always ran the verifier (client auth is mandatory); be
            // strict if that ever stops being true.
            (Ok(Ok(_)), None) => HandshakeOutcome::Refused {
                reason: RefusalReason::NoCertificate,
                detail: "handshake completed without a verified client certificate".into(),
                verdict: None,
            },
        }
    }
}

fn rustls_error(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// Verifies client chains through the [`TrustStore`] and records the verdict for the
/// connection that owns it.
#[derive(Debug)]
struct RecordingVerifier {
    trust: Arc<TrustStore>,
    /// Written once by the handshake, read once by the connection task after it.
    slot: Arc<Mutex<Option<Verdict>>>,
}

impl ClientCertVerifier for RecordingVerifier {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.trust.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verdict = self.trust.verdict(end_entity, intermediates, now);
        let result = verdict.to_rustls_result();
        if let Ok(mut slot) = self.slot.lock() {
            *slot = Some(verdict);
        }
        result.map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.trust.provider().signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.trust.provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.trust
            .provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}
