//! KIP-368 re-authentication on the live upstream connection, through a live proxy in front of
//! a FAKE broker, in `upstream.identity.mode: scram` and `mode: oauthbearer`.
//!
//! The fake broker speaks just enough Kafka: SaslHandshake v1, SaslAuthenticate v2 (SCRAM-SHA-256
//! server side, checking the proof against the passwords it knows; or OAUTHBEARER, recording
//! every token and its SASL extensions) and Produce v9. Like a Kafka
//! broker it grants a short `session_lifetime_ms` and closes a connection whose session expired
//! at the next non-SASL request. Like tansu it answers `acks=0` produce requests, but late: only
//! when the next request arrives. So when the proxy re-authenticates right after a client's
//! `acks=0` requests, those ids are still unanswered, and the fake checks that the proxy's own
//! correlation id is none of them (the client uses exactly the ids the proxy counts from, so a
//! naive counter would collide).
//!
//! - `reauthenticates_repeatedly_…`: several re-authentications on one upstream connection while
//!   a client pipelines requests; every answer reaches the client in order, no session expires,
//!   and a password rotated in the secret file is used by the next re-authentication.
//! - `a_refused_reauthentication_…` / `a_reauthentication_left_unanswered_…`: the proxy closes
//!   the client's connection itself, with a log line and an audit record, before the broker
//!   cuts it.
//! - `oauthbearer_…`: the same with tokens the proxy signs: every re-authentication presents a
//!   freshly signed token (its own `jti`, `sub` = the primary pool, the `identityPoolId`
//!   extension, an ES256 signature that verifies against the proxy's JWKS), and a token refused
//!   with an RFC 7628 error report (acknowledged with `\x01`) closes the session like a refused
//!   password.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

mod support {
    pub mod proxy;
    pub mod scram_broker;
}
use support::proxy::{FakeListener, Pki, ServerTask, capture_logs, captured_logs, request};
use support::scram_broker::{
    SASL_AUTHENTICATION_FAILED, ScramServer, invalid_credentials, read_request, response,
};

/// The pool's broker user, and the password the secret file holds at first.
const USER: &str = "payments";
const PASSWORD: &str = "first-password";
const ROTATED_PASSWORD: &str = "rotated-password";
const PRODUCE_VERSION: i16 = 9;
/// `acks=0` ids the client sends after each `acks=1` request: the first ids the proxy's own
/// counter would pick (it counts from `i32::MIN`), so the proxy must skip them while unanswered.
const COLLIDING_IDS: std::ops::Range<i32> = i32::MIN..i32::MIN + 16;
/// Far longer than any step takes; a test that needs it has failed.
const PATIENCE: Duration = Duration::from_secs(10);
/// acme-client's only (so primary) pool: the tokens' `sub` in oauthbearer mode.
const POOL: &str = "pool-payments";
/// The tokens' `iss` and `aud` in oauthbearer mode.
const ISSUER: &str = "https://kafka-proxy.test";
const AUDIENCE: &str = "kafka-test";
/// The RFC 7628 error report with which a broker refuses a token.
const INVALID_TOKEN: &str = r#"{"status":"invalid_token"}"#;

// ---------------------------------------------------------------------------------------------
// Logs and the secret file.
// ---------------------------------------------------------------------------------------------

/// The proxy's log lines about the connection from `client` (its `peer` field).
fn logs_about(client: SocketAddr) -> String {
    let peer = format!("peer={client}");
    captured_logs()
        .lines()
        .filter(|l| l.contains(&peer))
        .collect::<Vec<_>>()
        .join("\n")
}

fn write_secret(path: &Path, password: &str) {
    std::fs::write(path, format!("{password}\n")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// The fake broker.
// ---------------------------------------------------------------------------------------------

/// The SASL mechanism the fake's listener enables, and the proxy's `upstream.identity.mode`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mechanism {
    Scram,
    OAuthBearer,
}

impl Mechanism {
    fn name(self) -> &'static str {
        match self {
            Mechanism::Scram => "SCRAM-SHA-256",
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

/// What the fake does with a re-authentication (a SaslHandshake after a successful login).
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnReauth {
    Answer,
    /// Never answer it: the proxy must give up on its own.
    Ignore,
    /// Refuse the SaslHandshake as tansu 0.6 does (UNSUPPORTED_SASL_MECHANISM), while fresh
    /// logins still succeed.
    RefuseHandshake,
    /// OAUTHBEARER: refuse the re-authentication's token as a Kafka broker does (RFC 7628
    /// §3.2.2): an error report in place of the empty server message, error 58 once the
    /// client acknowledged it with `\x01`, then close the connection.
    RefuseToken,
}

/// One OAUTHBEARER client message the fake received.
#[derive(Debug, Clone)]
struct PresentedToken {
    jwt: String,
    /// The SASL extensions (KIP-342): every key but `auth`.
    extensions: BTreeMap<String, String>,
}

/// What the fake saw on one connection.
#[derive(Default, Debug, Clone)]
struct ConnRecord {
    /// Successful logins; the first is the connect, the rest re-authentications.
    logins: usize,
    /// Which of the fake's passwords each successful login proved.
    passwords: Vec<String>,
    /// Every OAUTHBEARER token presented, accepted or not, in order.
    tokens: Vec<PresentedToken>,
    /// The proxy acknowledged an OAUTHBEARER error report with `\x01` (RFC 7628 §3.2.3).
    acknowledged_refusal: bool,
    /// Correlation ids of the proxy's SASL requests after the first login.
    reauth_ids: Vec<i32>,
    /// Re-authentications that began while a [`COLLIDING_IDS`] produce was unanswered.
    reauths_with_colliding_ids_unanswered: usize,
    /// Client produce requests answered (acks=1) or left for later (acks=0).
    produced: usize,
    /// Protocol violations by the proxy (a SASL id equal to an unanswered client id, …).
    violations: Vec<String>,
    /// A non-SASL request arrived after the session expired: the fake closed the connection.
    expired: bool,
}

struct FakeBroker {
    addr: SocketAddr,
    /// Passwords the fake accepts for [`USER`] (rotation: old and new for a while).
    passwords: Arc<Mutex<Vec<String>>>,
    connections: Arc<Mutex<Vec<Arc<Mutex<ConnRecord>>>>>,
    _listener: FakeListener,
}

impl FakeBroker {
    async fn start(mechanism: Mechanism, lifetime: Duration, on_reauth: OnReauth) -> Self {
        let passwords = Arc::new(Mutex::new(vec![PASSWORD.to_string()]));
        let connections: Arc<Mutex<Vec<Arc<Mutex<ConnRecord>>>>> = Arc::default();
        let (p, c) = (passwords.clone(), connections.clone());
        let listener = FakeListener::start(move |socket, _| {
            let record = Arc::new(Mutex::new(ConnRecord::default()));
            c.lock().unwrap().push(record.clone());
            fake_connection(socket, mechanism, lifetime, on_reauth, p.clone(), record)
        })
        .await;
        Self {
            addr: listener.addr,
            passwords,
            connections,
            _listener: listener,
        }
    }

    fn only_connection(&self) -> Arc<Mutex<ConnRecord>> {
        let conns = self.connections.lock().unwrap();
        assert_eq!(
            conns.len(),
            1,
            "the proxy opened {} upstream connections",
            conns.len()
        );
        conns[0].clone()
    }
}

/// An OAUTHBEARER client message (RFC 7628 §3.1 with KIP-342 extensions):
/// `n,,\x01auth=Bearer <jwt>\x01<key>=<value>\x01…\x01\x01`.
fn parse_client_message(message: &[u8]) -> Result<PresentedToken, String> {
    let text = std::str::from_utf8(message).map_err(|e| e.to_string())?;
    let pairs = text
        .strip_prefix("n,,\x01")
        .and_then(|t| t.strip_suffix("\x01\x01"))
        .ok_or_else(|| format!("not a GS2 client message: {text:?}"))?;
    let mut fields = BTreeMap::new();
    for pair in pairs.split('\x01') {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{pair}` is not key=value"))?;
        if fields.insert(key.to_string(), value.to_string()).is_some() {
            return Err(format!("`{key}` twice"));
        }
    }
    let auth = fields.remove("auth").ok_or("no auth key")?;
    let jwt = auth
        .strip_prefix("Bearer ")
        .ok_or_else(|| format!("auth is not a bearer token: {auth:?}"))?;
    Ok(PresentedToken {
        jwt: jwt.to_string(),
        extensions: fields,
    })
}

/// The fake's OAUTHBEARER server side. It does not check tokens (the test does, afterwards):
/// a token is accepted with a session lifetime unless `refuse`, in which case it answers with
/// an error report and waits for the `\x01` acknowledgement, which it fails with error 58, as
/// Kafka's `OAuthBearerSaslServer` does. Returns the answer and whether a session was granted.
fn oauth_answer(
    auth_bytes: &[u8],
    refuse: bool,
    awaiting_acknowledgement: &mut bool,
    lifetime: Duration,
    record: &mut ConnRecord,
) -> (SaslAuthenticateResponse, bool) {
    if std::mem::take(awaiting_acknowledgement) {
        if auth_bytes == b"\x01" {
            record.acknowledged_refusal = true;
        } else {
            record.violations.push(format!(
                "answered the error report with {auth_bytes:?}, not the \\x01 acknowledgement"
            ));
        }
        let failed = SaslAuthenticateResponse::default()
            .with_error_code(SASL_AUTHENTICATION_FAILED)
            .with_error_message(Some(StrBytes::from_static_str(INVALID_TOKEN)));
        return (failed, false);
    }
    match parse_client_message(auth_bytes) {
        Ok(token) => record.tokens.push(token),
        Err(e) => {
            record.violations.push(format!("OAUTHBEARER message: {e}"));
            let failed = SaslAuthenticateResponse::default()
                .with_error_code(SASL_AUTHENTICATION_FAILED)
                .with_error_message(Some(StrBytes::from_string(e)));
            return (failed, false);
        }
    }
    if refuse {
        *awaiting_acknowledgement = true;
        let report = SaslAuthenticateResponse::default()
            .with_auth_bytes(Bytes::from_static(INVALID_TOKEN.as_bytes()));
        return (report, false);
    }
    record.logins += 1;
    let granted = SaslAuthenticateResponse::default()
        .with_session_lifetime_ms(i64::try_from(lifetime.as_millis()).unwrap());
    (granted, true)
}

async fn fake_connection(
    mut socket: TcpStream,
    mechanism: Mechanism,
    lifetime: Duration,
    on_reauth: OnReauth,
    passwords: Arc<Mutex<Vec<String>>>,
    record: Arc<Mutex<ConnRecord>>,
) {
    let mut expires: Option<Instant> = None;
    let mut scram: Option<ScramServer> = None;
    // OAUTHBEARER: an error report was sent; the next message must be its acknowledgement.
    let mut awaiting_acknowledgement = false;
    // Like tansu, the fake answers acks=0 produce requests; unlike it, only when the next
    // request arrives, so they are still unanswered when a re-authentication starts.
    let mut unanswered_acks0: Vec<i32> = Vec::new();
    loop {
        let Some((key, version, id, mut buf)) = read_request(&mut socket).await else {
            return;
        };
        let logged_in = record.lock().unwrap().logins > 0;
        let mut out = Vec::new();
        // Answers in request order: the late acks=0 answers go before any other answer.
        let mut answer_late_ones = |out: &mut Vec<u8>| {
            for late in unanswered_acks0.drain(..) {
                out.extend(response(
                    ApiKey::Produce,
                    PRODUCE_VERSION,
                    late,
                    &ProduceResponse::default(),
                ));
            }
        };
        match key {
            ApiKey::SaslHandshake => {
                let request = SaslHandshakeRequest::decode(&mut buf, version).unwrap();
                answer_late_ones(&mut out);
                assert_eq!(request.mechanism.as_str(), mechanism.name());
                if logged_in {
                    {
                        let mut r = record.lock().unwrap();
                        r.reauth_ids.push(id);
                        // The late answers just queued were unanswered until this request.
                        let pending_ids = late_ids(&out);
                        if pending_ids.contains(&id) {
                            r.violations.push(format!(
                                "SaslHandshake with correlation id {id}, which the client's \
                                 unanswered acks=0 produce also uses"
                            ));
                        }
                        if pending_ids.iter().any(|i| COLLIDING_IDS.contains(i)) {
                            r.reauths_with_colliding_ids_unanswered += 1;
                        }
                    }
                    if on_reauth == OnReauth::Ignore {
                        let _ = socket.write_all(&out).await;
                        continue;
                    }
                    if on_reauth == OnReauth::RefuseHandshake {
                        out.extend(response(
                            key,
                            version,
                            id,
                            &SaslHandshakeResponse::default()
                                .with_error_code(33)
                                .with_mechanisms(vec![StrBytes::from_static_str(mechanism.name())]),
                        ));
                        let _ = socket.write_all(&out).await;
                        return;
                    }
                }
                out.extend(response(
                    key,
                    version,
                    id,
                    &SaslHandshakeResponse::default()
                        .with_mechanisms(vec![StrBytes::from_static_str(mechanism.name())]),
                ));
            }
            ApiKey::SaslAuthenticate => {
                let request = SaslAuthenticateRequest::decode(&mut buf, version).unwrap();
                answer_late_ones(&mut out);
                if logged_in {
                    record.lock().unwrap().reauth_ids.push(id);
                }
                if mechanism == Mechanism::OAuthBearer {
                    let refuse = logged_in && on_reauth == OnReauth::RefuseToken;
                    let (body, granted) = oauth_answer(
                        &request.auth_bytes,
                        refuse,
                        &mut awaiting_acknowledgement,
                        lifetime,
                        &mut record.lock().unwrap(),
                    );
                    out.extend(response(key, version, id, &body));
                    if granted {
                        expires = Some(Instant::now() + lifetime);
                    }
                    let failed = body.error_code != 0;
                    if socket.write_all(&out).await.is_err() || failed {
                        // A Kafka broker closes the connection after a failed authentication.
                        return;
                    }
                    continue;
                }
                let body = match scram.take() {
                    None => {
                        let server = ScramServer::start(&request.auth_bytes).unwrap();
                        assert_eq!(server.user(), USER);
                        let answer = SaslAuthenticateResponse::default()
                            .with_auth_bytes(Bytes::from(server.server_first().to_owned()));
                        scram = Some(server);
                        answer
                    }
                    Some(server) => {
                        let known = passwords.lock().unwrap().clone();
                        match server.finish(&request.auth_bytes, known.iter().map(String::as_str)) {
                            Some((server_final, password)) => {
                                let mut r = record.lock().unwrap();
                                r.logins += 1;
                                r.passwords.push(password.to_owned());
                                expires = Some(Instant::now() + lifetime);
                                SaslAuthenticateResponse::default()
                                    .with_auth_bytes(Bytes::from(server_final))
                                    .with_session_lifetime_ms(
                                        i64::try_from(lifetime.as_millis()).unwrap(),
                                    )
                            }
                            None => invalid_credentials(),
                        }
                    }
                };
                out.extend(response(key, version, id, &body));
            }
            ApiKey::Produce => {
                if !logged_in {
                    record
                        .lock()
                        .unwrap()
                        .violations
                        .push("a client request before any login".into());
                    return;
                }
                // KIP-368: the broker closes a connection whose session expired at its next
                // request (other than a re-authentication).
                if expires.is_some_and(|e| Instant::now() > e) {
                    record.lock().unwrap().expired = true;
                    return;
                }
                let request = ProduceRequest::decode(&mut buf, version).unwrap();
                record.lock().unwrap().produced += 1;
                if request.acks == 0 {
                    unanswered_acks0.push(id);
                } else {
                    answer_late_ones(&mut out);
                    out.extend(response(key, version, id, &ProduceResponse::default()));
                }
            }
            other => panic!("the fake broker got an unexpected {other:?}"),
        }
        if socket.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// Correlation ids of the response frames in `out` (each with its size prefix).
fn late_ids(mut out: &[u8]) -> Vec<i32> {
    let mut ids = Vec::new();
    while out.len() >= 8 {
        let size = usize::try_from(i32::from_be_bytes(out[..4].try_into().unwrap())).unwrap();
        ids.push(i32::from_be_bytes(out[4..8].try_into().unwrap()));
        out = &out[4 + size..];
    }
    ids
}

// ---------------------------------------------------------------------------------------------
// The proxy under test, in-process, and a client.
// ---------------------------------------------------------------------------------------------

struct TestProxy {
    pki: Pki,
    server: ServerTask,
    secret: PathBuf,
    audit: PathBuf,
}

impl TestProxy {
    async fn start(upstream: SocketAddr, connect_timeout: Duration, mechanism: Mechanism) -> Self {
        capture_logs();
        let pki = Pki::generate("reauthentication");
        let secret = pki.path("payments.secret");
        write_secret(&secret, PASSWORD);
        let audit = pki.path("audit.log");
        let identity = match mechanism {
            Mechanism::Scram => format!(
                r#"    mode: scram
    mechanism: SCRAM-SHA-256
    credentials:
      {POOL}: {{ username: {USER}, password_file: "{secret}" }}"#,
                secret = secret.display(),
            ),
            // The admin server serves the JWKS; the port is the system's pick.
            Mechanism::OAuthBearer => format!(
                r#"    mode: oauthbearer
    issuer: "{ISSUER}"
    audience: "{AUDIENCE}"
    extensions: {{ logicalCluster: lkc-test }}
admin:
  listen: "127.0.0.1:0""#
            ),
        };
        let yaml = format!(
            r#"listener:
  bootstrap: "127.0.0.1:0"
  advertised_host: "127.0.0.1"
  broker_ports:
    first_port: 30000
{tls}
upstream:
  bootstrap_servers:
    - "{upstream}"
  connect_timeout_ms: {connect_ms}
  identity:
{identity}
audit:
  path: "{audit}"
log:
  format: plain
  level: debug
{certificate_authorities}
"#,
            tls = pki.tls_yaml(),
            certificate_authorities = pki.certificate_authorities_yaml(),
            connect_ms = connect_timeout.as_millis(),
            audit = audit.display(),
        );
        let path = pki.path("proxy.yaml");
        std::fs::write(&path, yaml).unwrap();
        let server = ServerTask::start(&path).await;
        Self {
            pki,
            server,
            secret,
            audit,
        }
    }

    async fn connect(&self) -> (ClientTls, SocketAddr) {
        let tcp = TcpStream::connect(self.server.addr).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let local = tcp.local_addr().unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        // acme-client (pool-payments), trusting the proxy's CA.
        let client_tls = self
            .pki
            .client_config("acme-client", rustls::DEFAULT_VERSIONS);
        let tls = tokio_rustls::TlsConnector::from(client_tls)
            .connect(name, tcp)
            .await
            .unwrap();
        (tls, local)
    }

    /// Audit records with `reason`, waiting up to [`PATIENCE`] for the first.
    async fn audit_records(&self, reason: &str) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = std::fs::read_to_string(&self.audit).unwrap_or_default();
            let found: Vec<serde_json::Value> = text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .filter(|r| r["data"]["result"]["reason"] == reason)
                .collect();
            if !found.is_empty() || Instant::now() > deadline {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The JWKS the admin server publishes (oauthbearer mode), as a broker fetches it.
    async fn jwks(&self) -> serde_json::Value {
        let admin = self
            .server
            .admin_addr
            .expect("oauthbearer mode has an admin server");
        let url = format!("http://{admin}/.well-known/jwks.json");
        let body = tokio::task::spawn_blocking(move || {
            let agent = ureq::Agent::config_builder()
                .timeout_global(Some(PATIENCE))
                .build()
                .new_agent();
            agent
                .get(&url)
                .call()
                .unwrap()
                .body_mut()
                .read_to_string()
                .unwrap()
        })
        .await
        .unwrap();
        serde_json::from_str(&body).unwrap()
    }

    async fn stop(self) {
        self.server.stop().await;
    }
}

/// A JWT's header and claims, after checking its ES256 signature against the key of `jwks`
/// that its `kid` names (an uncompressed P-256 point from the JWK's `x` and `y`).
fn verified_jwt(jwt: &str, jwks: &serde_json::Value) -> (serde_json::Value, serde_json::Value) {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;

    let (signed, signature) = jwt.rsplit_once('.').unwrap();
    let (header, claims) = signed.split_once('.').unwrap();
    let json = |part: &str| -> serde_json::Value {
        serde_json::from_slice(&B64URL.decode(part).unwrap()).unwrap()
    };
    let (header, claims) = (json(header), json(claims));
    assert_eq!(header["alg"], "ES256", "{header}");
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap_or_else(|| panic!("the JWKS has no key {}: {jwks}", header["kid"]));
    assert!(key["kty"] == "EC" && key["crv"] == "P-256", "{key}");
    let coordinate = |name: &str| B64URL.decode(key[name].as_str().unwrap()).unwrap();
    let mut point = vec![0x04];
    point.extend(coordinate("x"));
    point.extend(coordinate("y"));
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        .verify(signed.as_bytes(), &B64URL.decode(signature).unwrap())
        .unwrap_or_else(|_| panic!("the signature of {jwt} does not verify against the JWKS"));
    (header, claims)
}

fn produce(correlation_id: i32, acks: i16) -> Vec<u8> {
    request(
        ApiKey::Produce,
        PRODUCE_VERSION,
        correlation_id,
        "reauth-test",
        &ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(1000),
    )
}

type ClientTls = tokio_rustls::client::TlsStream<TcpStream>;

/// A client pipelining produce requests through the proxy until [`Pipeline::finish`]: up to 4
/// batches in flight, each one acks=1 produce (ids 0, 1, 2, …: what a naive counter starting
/// at 0 or 1 would pick too), then acks=0 produces with [`COLLIDING_IDS`]. Its reader checks
/// that the acks=1 answers all arrive, in order.
struct Pipeline {
    stop: Arc<AtomicBool>,
    /// Hands back the write half, so that the connection stays open until the reader is done.
    writer: JoinHandle<WriteHalf<ClientTls>>,
    /// The number of answers read.
    reader: JoinHandle<usize>,
}

impl Pipeline {
    fn start(tls: ClientTls) -> Self {
        let (mut reader, mut writer) = tokio::io::split(tls);
        let in_flight = Arc::new(Semaphore::new(4));
        let (expect_tx, mut expect_rx) = mpsc::channel::<i32>(8);
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (in_flight, stop) = (in_flight.clone(), stop.clone());
            tokio::spawn(async move {
                let mut next = 0i32;
                while !stop.load(Ordering::Relaxed) {
                    in_flight.acquire().await.unwrap().forget();
                    let mut batch = produce(next, 1);
                    for id in COLLIDING_IDS {
                        batch.extend(produce(id, 0));
                    }
                    expect_tx.send(next).await.unwrap();
                    writer.write_all(&batch).await.unwrap();
                    writer.flush().await.unwrap();
                    next += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                writer
            })
        };
        let reader = tokio::spawn(async move {
            let mut answered = VecDeque::new();
            while let Some(expected) = expect_rx.recv().await {
                let got = tokio::time::timeout(PATIENCE, read_response_id(&mut reader))
                    .await
                    .expect("no answer in time");
                assert_eq!(
                    got,
                    Some(expected),
                    "answers out of order (or the proxy closed)"
                );
                answered.push_back(expected);
                in_flight.add_permits(1);
            }
            answered.len()
        });
        Self {
            stop,
            writer,
            reader,
        }
    }

    /// Stops sending, waits for the answers still due, and returns how many answers came.
    async fn finish(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let _writer = self.writer.await.unwrap();
        self.reader.await.unwrap()
    }
}

/// The next response frame's correlation id, or `None` at EOF / error.
async fn read_response_id<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> Option<i32> {
    let size = r.read_i32().await.ok()?;
    let mut body = vec![0u8; usize::try_from(size).ok()?];
    r.read_exact(&mut body).await.ok()?;
    Some(i32::from_be_bytes(body.get(..4)?.try_into().ok()?))
}

// ---------------------------------------------------------------------------------------------
// Tests.
// ---------------------------------------------------------------------------------------------

#[test]
fn late_ids_reads_every_frame() {
    let mut out = response(ApiKey::Produce, 9, 5, &ProduceResponse::default());
    out.extend(response(
        ApiKey::Produce,
        9,
        -7,
        &ProduceResponse::default(),
    ));
    assert_eq!(late_ids(&out), vec![5, -7]);
}

#[test]
fn parse_client_message_reads_the_token_and_the_extensions() {
    let token =
        parse_client_message(b"n,,\x01auth=Bearer a.b.c\x01identityPoolId=p1,p2\x01x=y\x01\x01")
            .unwrap();
    assert_eq!(token.jwt, "a.b.c");
    assert_eq!(
        token.extensions,
        BTreeMap::from([
            ("identityPoolId".to_string(), "p1,p2".to_string()),
            ("x".to_string(), "y".to_string()),
        ])
    );
    for bad in [
        &b"n,,\x01auth=Bearer a.b.c\x01"[..],
        b"n,a=u,\x01auth=Bearer a.b.c\x01\x01",
        b"n,,\x01identityPoolId=p1\x01\x01",
        b"n,,\x01auth=a.b.c\x01\x01",
    ] {
        assert!(parse_client_message(bad).is_err(), "{bad:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauthenticates_repeatedly_on_the_same_connection_answering_pipelined_requests_in_order() {
    let lifetime = Duration::from_millis(400);
    let fake = FakeBroker::start(Mechanism::Scram, lifetime, OnReauth::Answer).await;
    let proxy = TestProxy::start(fake.addr, Duration::from_secs(3), Mechanism::Scram).await;
    let (tls, local) = proxy.connect().await;
    let pipeline = Pipeline::start(tls);

    // Three lifetimes with the first password, then rotate it: the broker accepts both for the
    // moment, and the proxy must use the new one from the next re-authentication on.
    tokio::time::sleep(lifetime * 3).await;
    fake.passwords
        .lock()
        .unwrap()
        .push(ROTATED_PASSWORD.to_string());
    write_secret(&proxy.secret, ROTATED_PASSWORD);
    tokio::time::sleep(lifetime * 3).await;
    let answered = pipeline.finish().await;

    let record = fake.only_connection();
    let record = record.lock().unwrap().clone();
    assert_kept_up_on_one_connection(&record, answered);
    assert_eq!(record.passwords.first().map(String::as_str), Some(PASSWORD));
    assert_eq!(
        record.passwords.last().map(String::as_str),
        Some(ROTATED_PASSWORD),
        "the rotated secret was not read at re-authentication: {:?}",
        record.passwords
    );
    let logs = logs_about(local);
    assert!(logs.contains("re-authenticated to the broker"), "{logs}");
    for secret in [PASSWORD, ROTATED_PASSWORD] {
        assert!(!logs.contains(secret), "a password reached the log");
    }
    proxy.stop().await;
}

/// Waits for the proxy to close the client's connection (EOF or an error, no bytes).
async fn expect_closed<R: tokio::io::AsyncRead + Unpin>(r: &mut R, within: Duration) {
    let mut buf = [0u8; 64];
    match tokio::time::timeout(within, r.read(&mut buf)).await {
        Err(_) => panic!("the proxy did not close the connection within {within:?}"),
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("the proxy sent {n} unexpected bytes"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reauthentication_closes_the_session_with_a_log_line_and_an_audit_record() {
    let lifetime = Duration::from_millis(500);
    let fake = FakeBroker::start(Mechanism::Scram, lifetime, OnReauth::Answer).await;
    let proxy = TestProxy::start(fake.addr, Duration::from_secs(3), Mechanism::Scram).await;
    let (mut tls, local) = proxy.connect().await;
    tls.write_all(&produce(1, 1)).await.unwrap();
    assert_eq!(read_response_id(&mut tls).await, Some(1));

    // The secret now holds a password the broker does not know: the next re-authentication
    // reads it and is refused.
    write_secret(&proxy.secret, "not-the-password");
    expect_closed(&mut tls, lifetime * 2 + Duration::from_secs(2)).await;

    let record = fake.only_connection();
    {
        let record = record.lock().unwrap();
        // (On a loaded machine a re-authentication may come before the secret changed.)
        assert!(record.logins >= 1, "{record:?}");
        assert!(
            !record.expired,
            "the broker, not the proxy, closed the connection"
        );
        assert!(record.violations.is_empty(), "{:?}", record.violations);
    }
    let data = assert_reauthentication_failure_recorded(&proxy, local, "invalid credentials").await;
    assert_eq!(data["primaryPoolId"], "pool-payments");
    assert_eq!(data["result"]["status"], "UNAUTHENTICATED");
    assert!(
        !logs_about(local).contains("not-the-password"),
        "a password reached the log"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reauthentication_left_unanswered_closes_the_session_after_the_connect_timeout() {
    let lifetime = Duration::from_millis(400);
    let connect_timeout = Duration::from_millis(300);
    let fake = FakeBroker::start(Mechanism::Scram, lifetime, OnReauth::Ignore).await;
    let proxy = TestProxy::start(fake.addr, connect_timeout, Mechanism::Scram).await;
    // Before the connect: the proxy's first login, which the lifetime counts from, comes later.
    let started = Instant::now();
    let (mut tls, local) = proxy.connect().await;
    tls.write_all(&produce(1, 1)).await.unwrap();
    assert_eq!(read_response_id(&mut tls).await, Some(1));
    expect_closed(
        &mut tls,
        lifetime + connect_timeout + Duration::from_secs(2),
    )
    .await;
    assert!(
        started.elapsed() >= lifetime * 85 / 100 + connect_timeout - Duration::from_millis(50),
        "closed before the re-authentication could time out ({:?})",
        started.elapsed()
    );
    assert_reauthentication_failure_recorded(&proxy, local, "no answer within 300 ms").await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_refusing_reauthentication_does_not_refuse_the_next_fresh_connection() {
    // Long enough for the second connection's round trip to finish before its own
    // re-authentication is refused, even on a loaded machine.
    let lifetime = Duration::from_millis(1000);
    let fake = FakeBroker::start(Mechanism::Scram, lifetime, OnReauth::RefuseHandshake).await;
    let proxy = TestProxy::start(fake.addr, Duration::from_secs(3), Mechanism::Scram).await;
    let (mut tls, _) = proxy.connect().await;
    tls.write_all(&produce(1, 1)).await.unwrap();
    assert_eq!(read_response_id(&mut tls).await, Some(1));
    expect_closed(&mut tls, lifetime * 2 + Duration::from_secs(2)).await;
    assert_eq!(
        proxy
            .audit_records("upstream_reauthentication_failed")
            .await
            .len(),
        1
    );

    // At once (within the connect-time refusal memory of 2 s): the password is right, and a
    // refusal of re-authentication says nothing about a fresh login.
    let (mut tls, local) = proxy.connect().await;
    tls.write_all(&produce(2, 1)).await.unwrap();
    assert_eq!(
        read_response_id(&mut tls).await,
        Some(2),
        "{}",
        logs_about(local)
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_reauthenticates_repeatedly_on_one_connection_with_a_fresh_token_each_time() {
    let lifetime = Duration::from_millis(600);
    let fake = FakeBroker::start(Mechanism::OAuthBearer, lifetime, OnReauth::Answer).await;
    let proxy = TestProxy::start(fake.addr, Duration::from_secs(3), Mechanism::OAuthBearer).await;
    let (tls, local) = proxy.connect().await;
    let pipeline = Pipeline::start(tls);
    tokio::time::sleep(lifetime * 6).await;
    let answered = pipeline.finish().await;

    let record = fake.only_connection();
    let record = record.lock().unwrap().clone();
    assert_kept_up_on_one_connection(&record, answered);

    // One token per login, each signed for this login: its own jti, a signature that verifies
    // against the published keys, the primary pool as subject and in identityPoolId.
    assert_eq!(record.tokens.len(), record.logins, "{record:?}");
    let jwks = proxy.jwks().await;
    let mut jtis = HashSet::new();
    let mut issued_at = Vec::new();
    for token in &record.tokens {
        let (_, claims) = verified_jwt(&token.jwt, &jwks);
        assert_eq!(claims["sub"], POOL, "{claims}");
        assert_eq!(claims["pools"], serde_json::json!([POOL]), "{claims}");
        assert_eq!(claims["iss"], ISSUER, "{claims}");
        assert_eq!(claims["aud"], AUDIENCE, "{claims}");
        assert!(
            jtis.insert(claims["jti"].as_str().unwrap().to_string()),
            "a jti was presented twice: {claims}"
        );
        issued_at.push(claims["iat"].as_u64().unwrap());
        assert_eq!(
            token.extensions,
            BTreeMap::from([
                ("identityPoolId".to_string(), POOL.to_string()),
                ("logicalCluster".to_string(), "lkc-test".to_string()),
            ])
        );
    }
    let distinct_jwts: HashSet<&str> = record.tokens.iter().map(|t| t.jwt.as_str()).collect();
    assert_eq!(
        distinct_jwts.len(),
        record.tokens.len(),
        "a token was reused"
    );
    // `iat` is in whole seconds: consecutive tokens may share one, but over six lifetimes
    // (3.6 s) it must move forward, never back.
    assert!(issued_at.is_sorted(), "{issued_at:?}");
    assert!(issued_at.first() < issued_at.last(), "{issued_at:?}");

    let logs = logs_about(local);
    assert!(logs.contains("re-authenticated to the broker"), "{logs}");
    for token in &record.tokens {
        assert!(!logs.contains(&token.jwt), "a token reached the log");
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauthbearer_a_refused_reauthentication_is_acknowledged_then_closes_the_session() {
    let lifetime = Duration::from_millis(500);
    let fake = FakeBroker::start(Mechanism::OAuthBearer, lifetime, OnReauth::RefuseToken).await;
    let proxy = TestProxy::start(fake.addr, Duration::from_secs(3), Mechanism::OAuthBearer).await;
    let (mut tls, local) = proxy.connect().await;
    tls.write_all(&produce(1, 1)).await.unwrap();
    assert_eq!(read_response_id(&mut tls).await, Some(1));
    expect_closed(&mut tls, lifetime * 2 + Duration::from_secs(2)).await;

    let record = fake.only_connection();
    {
        let record = record.lock().unwrap();
        assert_eq!(record.logins, 1, "{record:?}");
        assert_eq!(
            record.tokens.len(),
            2,
            "the connect's token and the refused one: {record:?}"
        );
        assert_ne!(record.tokens[0].jwt, record.tokens[1].jwt);
        assert!(
            record.acknowledged_refusal,
            "the proxy did not acknowledge the error report with \\x01: {record:?}"
        );
        assert!(
            !record.expired,
            "the broker, not the proxy, closed the connection"
        );
        assert!(record.violations.is_empty(), "{:?}", record.violations);
    }
    let data = assert_reauthentication_failure_recorded(&proxy, local, "invalid_token").await;
    assert_eq!(data["primaryPoolId"], POOL);
    assert_eq!(data["result"]["status"], "UNAUTHENTICATED");
    proxy.stop().await;
}

/// What every failed re-authentication must leave: exactly one
/// `upstream_reauthentication_failed` audit record whose message contains `reason`, and the
/// closing warning in the connection's log. Returns the record's `data` for further checks.
async fn assert_reauthentication_failure_recorded(
    proxy: &TestProxy,
    local: SocketAddr,
    reason: &str,
) -> serde_json::Value {
    let audit = proxy
        .audit_records("upstream_reauthentication_failed")
        .await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    let data = audit[0]["data"].clone();
    let message = data["result"]["message"].as_str().unwrap();
    assert!(message.contains(reason), "{message}");
    let logs = logs_about(local);
    assert!(
        logs.contains("closing: re-authentication to the broker failed"),
        "{logs}"
    );
    data
}

/// What every repeated re-authentication run must show: no protocol violation, no expired
/// session, several logins on the one connection, progress for the client, and proxy
/// correlation ids that never collided with the client's unanswered ones.
#[track_caller]
fn assert_kept_up_on_one_connection(record: &ConnRecord, answered: usize) {
    assert!(record.violations.is_empty(), "{:?}", record.violations);
    assert!(
        !record.expired,
        "the session expired: the proxy re-authenticated too late"
    );
    assert!(
        record.logins > 3,
        "expected the connect and at least 3 re-authentications in 6 lifetimes: {record:?}"
    );
    assert!(
        answered > 20,
        "the client made little progress: {answered} answers"
    );
    // With `violations` empty, no SASL request used an id the broker still owed the client an
    // answer for. That is the exact rule: a colliding id the client has not sent yet (a slow
    // start on a loaded machine), or whose answer went out already, is free to use.
    assert!(
        record.reauths_with_colliding_ids_unanswered >= 1,
        "no re-authentication started while the colliding ids were unanswered: {record:?}"
    );
}
