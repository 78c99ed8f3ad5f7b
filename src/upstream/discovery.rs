//! A node id the broker book does not know, looked up with the cluster before a client's
//! handshake (SNI routing): one Metadata request a second at most, signed in as the proxy
//! itself in the SASL modes (`upstream.proxy_login`).

use std::time::Duration;

use super::login::Login;
use super::transport::{SaslTransport, StreamTransport};
use super::{UpstreamConnector, UpstreamError};
use crate::config::UpstreamIdentity;
use crate::kafka::broker_list::{broker_list_request, decode_broker_list};
use crate::log_limit::{Level, warnings};

impl UpstreamConnector {
    /// Is node `node_id` a broker of the cluster? Asked before a client's handshake (SNI
    /// routing), when no pool is known yet: an unknown id is looked up with a broker-list
    /// refresh (at most one a second). In `mode: none` the proxy asks as the clients'
    /// connections do, without SASL; in the SASL modes it signs in with its own login
    /// (`upstream.proxy_login`; in oauthbearer mode a token for its own subject). A SASL mode
    /// without one cannot ask: the answer waits for the connection's own login
    /// ([`Self::connect`] refreshes as its pool).
    pub async fn discover(&self, node_id: i32) -> Discovery {
        if self.book.lookup(node_id).is_some() {
            return Discovery::Known;
        }
        let signs_in =
            self.token_issuer.is_some() || matches!(self.identity, UpstreamIdentity::Scram { .. });
        let login = match (&self.proxy_login, signs_in) {
            (_, false) => None,
            (None, true) => return Discovery::AfterLogin,
            (Some(own), true) => match Login::for_proxy(own, self.token_issuer.as_ref()) {
                Ok(login) => Some(login),
                Err(e) => {
                    log_lookup_failure(&e, own.principal_name());
                    return Discovery::Failed;
                }
            },
        };
        if self.refresh_brokers(login.as_ref()).await.is_err() {
            return Discovery::Failed;
        }
        match self.book.lookup(node_id) {
            Some(_) => Discovery::Known,
            None => Discovery::Unknown,
        }
    }

    /// Ask a bootstrap server for the cluster's brokers and learn them, signed in with `login`
    /// when there is one. At most once per [`MIN_REFRESH_INTERVAL`]: a flood of names of
    /// brokers that do not exist costs the cluster one Metadata request a second, not one per
    /// connection; a caller within the interval gets the last refresh's outcome. A failure is
    /// logged here (one line per distinct failure every few seconds, `log_limit`).
    pub(super) async fn refresh_brokers(&self, login: Option<&Login>) -> Result<(), UpstreamError> {
        let mut last = self.last_refresh.lock().await;
        let now = tokio::time::Instant::now();
        if let Some((at, failed)) = last.as_ref()
            && now.duration_since(*at) < MIN_REFRESH_INTERVAL
        {
            return match failed {
                None => Ok(()),
                Some(e) => Err(UpstreamError::RecentRefreshFailed(e.clone())),
            };
        }
        let result = self.ask_for_brokers(login).await;
        if let Err(e) = &result {
            log_lookup_failure(e, login.map_or("", Login::principal));
        }
        *last = Some((now, result.as_ref().err().map(ToString::to_string)));
        result
    }

    async fn ask_for_brokers(&self, login: Option<&Login>) -> Result<(), UpstreamError> {
        let mut errors = Vec::new();
        for (host, port) in &self.bootstrap {
            let addr = format!("{host}:{port}");
            match self.broker_list_from(host, *port, &addr, login).await {
                Ok(brokers) => {
                    for b in &brokers {
                        self.book.learn(b.node_id, &b.host, b.port);
                    }
                    tracing::debug!(from = %addr, brokers = brokers.len(), "broker list refreshed");
                    return Ok(());
                }
                // The credentials are the same on every broker: do not try the next.
                Err(e @ UpstreamError::SaslRefused { .. }) => return Err(e),
                Err(e) => errors.push(e.to_string()),
            }
        }
        Err(UpstreamError::AllBootstrapFailed {
            errors: errors.join("; "),
            unreachable: false,
        })
    }

    async fn broker_list_from(
        &self,
        host: &str,
        port: u16,
        addr: &str,
        login: Option<&Login>,
    ) -> Result<Vec<crate::kafka::BrokerAddress>, UpstreamError> {
        let mut stream = self.dialer.dial(host, port).await?;
        let mut transport = StreamTransport::new(&mut stream);
        if let Some(login) = login {
            self.sign_in(&mut transport, addr, login).await?;
        }
        let failed = |reason: String| UpstreamError::BrokerList {
            addr: addr.to_string(),
            reason,
        };
        let request = broker_list_request(0).map_err(|e| failed(e.to_string()))?;
        let answer = tokio::time::timeout(self.connect_timeout, transport.round_trip(request))
            .await
            .map_err(|_| {
                failed(format!(
                    "no answer within {} ms",
                    self.connect_timeout.as_millis()
                ))
            })?
            .map_err(|e| failed(e.to_string()))?;
        decode_broker_list(&answer).map_err(|e| failed(e.to_string()))
    }
}

/// One warning line for a broker lookup that failed, naming the login it used (`principal`:
/// the proxy's own user or subject, a pool's user, or none) and the broker's error; the same
/// failure repeated is summarised by `log_limit`.
fn log_lookup_failure(error: &UpstreamError, principal: &str) {
    let message = match error {
        UpstreamError::SaslRefused { .. } => {
            "the cluster refused the login the proxy looks brokers up with: server names of brokers not seen yet are refused before the handshake"
        }
        _ => {
            "cannot ask the cluster for its broker list: server names of brokers not seen yet are refused before the handshake"
        }
    };
    if warnings().admit(Level::Warn, message, principal) {
        tracing::warn!(login = principal, error = %error, "{message}");
    }
}

/// The least time between two broker-list refreshes ([`UpstreamConnector::discover`]).
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(1);

/// Whether a node id is a broker of the cluster, as far as the proxy can tell before a
/// client's handshake ([`UpstreamConnector::discover`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discovery {
    /// Known (perhaps just now, from a refresh).
    Known,
    /// The cluster's broker list does not name it (or could not be had).
    Unknown,
    /// Only a pool's login can ask the cluster: the connection's own, after its handshake (a
    /// SASL mode without `upstream.proxy_login`).
    AfterLogin,
    /// The cluster could not be asked (unreachable, or the proxy's own login refused): not
    /// known to be unknown.
    Failed,
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
    use kafka_protocol::messages::{
        ApiKey, BrokerId, MetadataResponse, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
        SaslAuthenticateResponse, SaslHandshakeResponse,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;
    use crate::config::{HealthSettings, ProxyLogin, UpstreamConfig};
    use crate::oauth::{Extensions, KeyRing, KeySettings, ManualClock, TokenIssuer, TokenSettings};
    use crate::upstream::BrokerBook;

    /// What a fake OAUTHBEARER broker saw: connections, and each SASL client message.
    #[derive(Default)]
    struct Seen {
        connections: usize,
        messages: Vec<String>,
    }

    /// A broker that takes OAUTHBEARER logins (or refuses them) and answers Metadata, after a
    /// login only, with brokers 1 and 2.
    async fn fake_broker(refuse: bool) -> (u16, Arc<Mutex<Seen>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let record = seen.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                record.lock().unwrap().connections += 1;
                tokio::spawn(serve(socket, refuse, record.clone()));
            }
        });
        (port, seen)
    }

    async fn serve(mut socket: TcpStream, refuse: bool, seen: Arc<Mutex<Seen>>) {
        let mut signed_in = false;
        loop {
            let Ok(size) = socket.read_i32().await else {
                return;
            };
            let mut frame = vec![0u8; usize::try_from(size).unwrap()];
            socket.read_exact(&mut frame).await.unwrap();
            let mut buf = Bytes::from(frame);
            let key = ApiKey::try_from(i16::from_be_bytes([buf[0], buf[1]])).unwrap();
            let version = i16::from_be_bytes([buf[2], buf[3]]);
            let header =
                RequestHeader::decode(&mut buf, key.request_header_version(version)).unwrap();
            let mut out = BytesMut::new();
            ResponseHeader::default()
                .with_correlation_id(header.correlation_id)
                .encode(&mut out, key.response_header_version(version))
                .unwrap();
            match key {
                ApiKey::SaslHandshake => SaslHandshakeResponse::default()
                    .with_mechanisms(vec![StrBytes::from_static_str("OAUTHBEARER")])
                    .encode(&mut out, version)
                    .unwrap(),
                ApiKey::SaslAuthenticate => {
                    let request = SaslAuthenticateRequest::decode(&mut buf, version).unwrap();
                    let message = String::from_utf8(request.auth_bytes.to_vec()).unwrap();
                    seen.lock().unwrap().messages.push(message);
                    let answer = if refuse {
                        SaslAuthenticateResponse::default()
                            .with_error_code(58)
                            .with_error_message(Some(StrBytes::from_static_str(
                                "invalid_token: the signature does not verify",
                            )))
                    } else {
                        signed_in = true;
                        SaslAuthenticateResponse::default()
                    };
                    answer.encode(&mut out, version).unwrap();
                }
                ApiKey::Metadata if signed_in => MetadataResponse::default()
                    .with_brokers(
                        [1, 2]
                            .map(|id| {
                                MetadataResponseBroker::default()
                                    .with_node_id(BrokerId(id))
                                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                                    .with_port(9000 + id)
                            })
                            .to_vec(),
                    )
                    .encode(&mut out, version)
                    .unwrap(),
                _ => return,
            }
            let size = i32::try_from(out.len()).unwrap();
            let mut framed = size.to_be_bytes().to_vec();
            framed.extend_from_slice(&out);
            if socket.write_all(&framed).await.is_err()
                || (refuse && key == ApiKey::SaslAuthenticate)
            {
                return;
            }
        }
    }

    fn connector(
        port: u16,
        identity: UpstreamIdentity,
        login: Option<ProxyLogin>,
    ) -> UpstreamConnector {
        let config = UpstreamConfig {
            bootstrap_servers: vec![("127.0.0.1".to_string(), port)],
            tls_files: Vec::new(),
            tls: None,
            connect_timeout: Duration::from_secs(5),
            identity,
            proxy_login: login,
            health: HealthSettings::default(),
        };
        UpstreamConnector::new(
            &config,
            Arc::new(BrokerBook::default()),
            crate::tls::provider(),
        )
        .unwrap()
    }

    fn oauth_connector(port: u16) -> UpstreamConnector {
        let settings = TokenSettings {
            issuer: "https://proxy.test".into(),
            audience: "kafka".into(),
            scope: None,
            extensions: Extensions::default(),
        };
        let keys = Arc::new(
            KeyRing::open(
                KeySettings::default(),
                Arc::new(ManualClock::new(1_800_000_000_000)),
            )
            .unwrap(),
        );
        let login = ProxyLogin::OAuthBearer {
            subject: "kafka-mtls-proxy".into(),
        };
        connector(
            port,
            UpstreamIdentity::OAuthBearer {
                token: settings.clone(),
            },
            Some(login),
        )
        .with_token_issuer(TokenIssuer::new(settings, keys))
    }

    #[tokio::test]
    async fn an_unknown_id_is_looked_up_with_a_token_for_the_proxys_own_subject() {
        let (port, seen) = fake_broker(false).await;
        let upstream = oauth_connector(port);
        assert_eq!(upstream.discover(2).await, Discovery::Known);
        assert_eq!(upstream.book().lookup(2), Some(("127.0.0.1".into(), 9002)));
        let message = seen.lock().unwrap().messages[0].clone();
        let jwt = message
            .strip_prefix("n,,\x01auth=Bearer ")
            .and_then(|m| m.strip_suffix("\x01\x01"))
            .expect("a lone token, no extension");
        let claims: serde_json::Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(jwt.split('.').nth(1).unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["sub"], "kafka-mtls-proxy");
        assert_eq!(claims["pools"], serde_json::json!([]));
        // Within the second, an id the cluster did not name is unknown without asking again.
        assert_eq!(upstream.discover(7).await, Discovery::Unknown);
        assert_eq!(seen.lock().unwrap().connections, 1);
    }

    #[tokio::test]
    async fn a_refused_own_login_is_a_failed_lookup_not_an_unknown_id() {
        let (port, seen) = fake_broker(true).await;
        let upstream = oauth_connector(port);
        assert_eq!(upstream.discover(2).await, Discovery::Failed);
        // The failure stands for the rest of the second: no second login attempt.
        assert_eq!(upstream.discover(3).await, Discovery::Failed);
        assert_eq!(seen.lock().unwrap().connections, 1);
    }

    #[tokio::test]
    async fn scram_mode_without_an_own_login_leaves_the_lookup_to_the_clients_login() {
        let (port, seen) = fake_broker(false).await;
        let scram = UpstreamIdentity::Scram {
            mechanism: crate::scram::Mechanism::Sha512,
            credentials: BTreeMap::new(),
        };
        let upstream = connector(port, scram, None);
        assert_eq!(upstream.discover(2).await, Discovery::AfterLogin);
        assert_eq!(seen.lock().unwrap().connections, 0);
    }
}
