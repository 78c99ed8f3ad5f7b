//! The proxy under test for the hostile-input tests: in-process, in front of a
//! [`FakeBroker`], with a well-behaved client ([`GoodClient`]) that keeps doing ApiVersions +
//! Metadata round trips while a hostile one hits the proxy ([`with_good_client`]).
#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataResponse};
use tokio::task::JoinHandle;

use super::fake_broker::{FakeBroker, NODE_ID};
use super::kafka_client::{CLOSE_WITHIN, KafkaConn, decode, metadata_request};
use super::logs::{assert_no_foreign_panics, close_reason, init_logging};
use super::proxy::{Pki, ServerTask, request};

/// `limits.max_frame_bytes` of every proxy here: small, so the size-limit tests are cheap.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;
/// `limits.drain_timeout_ms` of every proxy here: longer than
/// [`SLOW_ANSWER`](super::fake_broker::SLOW_ANSWER), so a drained answer arrives in time, and
/// short, so the test of a broker that never answers is quick.
pub const DRAIN_TIMEOUT: Duration = Duration::from_millis(3000);
/// Small, so a Metadata answer listing many node ids reaches it.
pub const MAX_BROKER_LISTENERS: usize = 4;
/// `advertised_host` of every proxy here (in the dev PKI's server certificate).
pub const ADVERTISED_HOST: &str = "127.0.0.1";

/// A TCP port that was free a moment ago (bound on port 0, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Writes the proxy's YAML configuration and returns its path.
pub fn write_config(
    pki: &Pki,
    bootstrap: SocketAddr,
    first_port: u16,
    upstream: SocketAddr,
    log_level: &str,
) -> PathBuf {
    let yaml = format!(
        r#"listener:
  bootstrap: "{bootstrap}"
  advertised_host: "{ADVERTISED_HOST}"
  broker_ports:
    first_port: {first_port}
{tls}
upstream:
  bootstrap_servers:
    - "{upstream}"
  connect_timeout_ms: 3000
audit:
  path: "off"
limits:
  max_frame_bytes: {MAX_FRAME_BYTES}
  handshake_timeout_ms: 5000
  drain_timeout_ms: {drain_timeout_ms}
  max_broker_listeners: {MAX_BROKER_LISTENERS}
log:
  format: plain
  level: {log_level}
{certificate_authorities}
"#,
        tls = pki.tls_yaml(),
        certificate_authorities = pki.certificate_authorities_yaml(),
        drain_timeout_ms = DRAIN_TIMEOUT.as_millis(),
    );
    let path = pki.path("proxy.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

pub struct TestProxy {
    pub pki: Pki,
    pub fake: FakeBroker,
    pub server: ServerTask,
    pub addr: SocketAddr,
    /// The proxy port clients must be told for node [`NODE_ID`].
    pub broker_port: u16,
    pub good_tls: Arc<rustls::ClientConfig>,
}

impl TestProxy {
    pub async fn start() -> Self {
        Self::start_with("hostile-inputs", "", false).await
    }

    /// A proxy named `name` (its PKI directory) in front of a fake broker, with `limits` (YAML
    /// lines, each `  key: value\n`) added to the test configuration's `limits:` section, and
    /// the admin server on a free port when `admin` is set.
    pub async fn start_with(name: &str, limits: &str, admin: bool) -> Self {
        init_logging();
        let pki = Pki::generate(name);
        let fake = FakeBroker::start().await;
        // Broker listeners: node N on first_port + N. A port that was just free, per proxy, so
        // parallel tests never collide.
        let broker_port = free_port();
        let first_port = broker_port - u16::try_from(NODE_ID).unwrap();
        let path = write_config(
            &pki,
            "127.0.0.1:0".parse().unwrap(),
            first_port,
            fake.addr,
            "info",
        );
        if !limits.is_empty() || admin {
            let mut yaml = std::fs::read_to_string(&path).unwrap().replacen(
                "limits:\n",
                &format!("limits:\n{limits}"),
                1,
            );
            if admin {
                yaml.push_str("admin:\n  listen: \"127.0.0.1:0\"\n");
            }
            std::fs::write(&path, yaml).unwrap();
        }
        let server = ServerTask::start(&path).await;
        let good_tls = pki.client_config("acme-client", rustls::DEFAULT_VERSIONS);
        Self {
            pki,
            fake,
            addr: server.addr,
            server,
            broker_port,
            good_tls,
        }
    }

    pub async fn connect_good(&self) -> KafkaConn {
        KafkaConn::connect(self.addr, self.good_tls.clone())
            .await
            .unwrap()
    }

    /// A fresh connection completes a good round trip: the proxy is alive and accepting.
    pub async fn assert_alive(&self) {
        assert!(!self.server.is_finished(), "the proxy's server task ended");
        let mut conn = self.connect_good().await;
        if let Err(e) = good_round_trip(&mut conn, 900_000, self.broker_port, self.fake.addr).await
        {
            let reason = close_reason(conn.local).await;
            panic!("a fresh good connection failed: {e}\nproxy: {reason}");
        }
    }

    /// Shuts the proxy down and checks that it drains promptly and returns Ok.
    pub async fn stop(self) {
        self.server.stop().await;
        drop(self.fake);
        drop(self.pki);
    }
}

/// ApiVersions v3 then Metadata v12 on `conn`, checking the answers: ApiVersions narrowed by the
/// proxy, Metadata naming only the proxy's address for the broker.
pub async fn good_round_trip(
    conn: &mut KafkaConn,
    correlation_id: i32,
    broker_port: u16,
    fake: SocketAddr,
) -> Result<(), String> {
    let frame = request(
        ApiKey::ApiVersions,
        3,
        correlation_id,
        "good",
        &ApiVersionsRequest::default(),
    );
    let response = conn.round_trip(&frame).await?;
    let (corr, body) = decode::<ApiVersionsResponse>(&response, ApiKey::ApiVersions, 3)?;
    if corr != correlation_id || body.error_code != 0 {
        return Err(format!(
            "ApiVersions: correlation id {corr} (sent {correlation_id}), error {}",
            body.error_code
        ));
    }
    if body
        .api_keys
        .iter()
        .any(|a| a.api_key == 17 || a.api_key == 36)
    {
        return Err("ApiVersions still lists SASL".into());
    }

    let corr_md = correlation_id.wrapping_add(1);
    let frame = request(ApiKey::Metadata, 12, corr_md, "good", &metadata_request());
    let response = conn.round_trip(&frame).await?;
    let (corr, body) = decode::<MetadataResponse>(&response, ApiKey::Metadata, 12)?;
    if corr != corr_md {
        return Err(format!("Metadata: correlation id {corr}, sent {corr_md}"));
    }
    check_brokers(
        body.brokers
            .iter()
            .map(|b| (b.node_id.0, b.host.to_string(), b.port)),
        broker_port,
        fake,
    )
}

/// Every broker named is node [`NODE_ID`] at the proxy's address — never the fake's.
pub fn check_brokers(
    brokers: impl Iterator<Item = (i32, String, i32)>,
    broker_port: u16,
    fake: SocketAddr,
) -> Result<(), String> {
    let brokers: Vec<_> = brokers.collect();
    let want = vec![(NODE_ID, ADVERTISED_HOST.to_owned(), i32::from(broker_port))];
    if brokers != want {
        return Err(format!(
            "brokers {brokers:?}, expected {want:?} (the fake broker is at {fake})"
        ));
    }
    Ok(())
}

/// The well-behaved client that keeps working while the hostile ones hit the proxy.
pub struct GoodClient {
    round_trips: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    /// Why the client stopped, as soon as it did (the task's result is only read at the end).
    failure: Arc<Mutex<Option<String>>>,
    task: JoinHandle<Result<(), String>>,
}

impl GoodClient {
    pub async fn start(proxy: &TestProxy) -> Self {
        let mut conn = proxy.connect_good().await;
        let round_trips = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let failure = Arc::new(Mutex::new(None));
        let (count, stopping, failed) = (round_trips.clone(), stop.clone(), failure.clone());
        let (broker_port, fake) = (proxy.broker_port, proxy.fake.addr);
        let task = tokio::spawn(async move {
            let mut corr = 1i32;
            while !stopping.load(Ordering::Relaxed) {
                if let Err(e) = good_round_trip(&mut conn, corr, broker_port, fake).await {
                    let e = format!(
                        "after {} round trips: {e}\nproxy: {}",
                        count.load(Ordering::Relaxed),
                        close_reason(conn.local).await
                    );
                    *failed.lock().unwrap() = Some(e.clone());
                    return Err(e);
                }
                corr = corr.wrapping_add(2);
                count.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Ok(())
        });
        let client = Self {
            round_trips,
            stop,
            failure,
            task,
        };
        client.wait_for_progress("before the hostile input").await;
        client
    }

    /// Waits for a few more round trips; fails if the client broke or stalled.
    pub async fn wait_for_progress(&self, when: &str) {
        let start = self.round_trips.load(Ordering::Relaxed);
        let deadline = Instant::now() + CLOSE_WITHIN;
        while self.round_trips.load(Ordering::Relaxed) < start + 3 {
            if let Some(e) = self.failure.lock().unwrap().as_ref() {
                panic!("the good client failed {when}: {e}");
            }
            assert!(!self.task.is_finished(), "the good client stopped {when}");
            assert!(
                Instant::now() < deadline,
                "the good client made no progress {when}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        let result = tokio::time::timeout(CLOSE_WITHIN, self.task)
            .await
            .expect("the good client hung")
            .expect("the good client panicked");
        if let Err(e) = result {
            panic!("the good client failed: {e}");
        }
        self.round_trips.load(Ordering::Relaxed)
    }
}

/// Runs `hostile` against a proxy while a good client works; then checks the good client kept
/// going, a fresh connection works, and the proxy shuts down cleanly.
pub async fn with_good_client<F, Fut>(hostile: F)
where
    F: FnOnce(Arc<TestProxy>, Arc<GoodClient>) -> Fut,
    Fut: Future<Output = ()>,
{
    let proxy = Arc::new(TestProxy::start().await);
    let good = Arc::new(GoodClient::start(&proxy).await);
    hostile(proxy.clone(), good.clone()).await;
    good.wait_for_progress("after the hostile input").await;
    proxy.assert_alive().await;
    let good = Arc::into_inner(good).expect("the hostile closure kept the good client");
    let round_trips = good.finish().await;
    assert!(round_trips >= 6, "only {round_trips} good round trips");
    let proxy = Arc::into_inner(proxy).expect("the hostile closure kept the proxy");
    proxy.stop().await;
    assert_no_foreign_panics();
}

/// Sends `frame` as the `evil-*` client and checks that the proxy closes the connection.
pub async fn hostile_broker_answer(proxy: &TestProxy, good: &GoodClient, what: &str, frame: &[u8]) {
    let mut conn = proxy.connect_good().await;
    conn.send(frame).await.unwrap();
    conn.expect_closed(what).await;
    good.wait_for_progress(&format!("after {what}")).await;
}
