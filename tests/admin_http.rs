//! The admin HTTP server, black box: bind it on 127.0.0.1:0 and speak plain HTTP/1.1 to it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kafka_mtls_proxy::admin::{self, AdminState, Readiness, UpstreamProbe};
use kafka_mtls_proxy::kafka::ApiKey;
use kafka_mtls_proxy::metrics::{Direction, Metrics};
use kafka_mtls_proxy::oauth::{KeyRing, KeySettings, SystemClock};
use kafka_mtls_proxy::tls::RefusalReason;
use kafka_mtls_proxy::upstream::Target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

mod support {
    pub mod http;
}
use support::http::Reply;

/// Far longer than any request takes; a test that needs it has failed.
const PATIENCE: Duration = Duration::from_secs(10);

struct Admin {
    addr: SocketAddr,
    state: AdminState,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Admin {
    /// Serve an admin server whose upstream probe dials `upstream`.
    async fn start(upstream: Vec<(String, u16)>) -> Self {
        Self::start_with_keys(upstream, None).await
    }

    /// With the oauthbearer key ring `jwks` published.
    async fn start_with_keys(upstream: Vec<(String, u16)>, jwks: Option<Arc<KeyRing>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AdminState {
            metrics: Arc::new(Metrics::new()),
            readiness: Arc::new(Readiness::new()),
            upstream: Arc::new(UpstreamProbe::new(upstream, Duration::from_secs(1))),
            iam: None,
            jwks,
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(admin::serve(listener, state.clone(), async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            state,
            stop: Some(stop),
            task,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.request("GET", path).await
    }

    async fn request(&self, method: &str, path: &str) -> Reply {
        let mut tcp = TcpStream::connect(self.addr).await.unwrap();
        let head = format!("{method} {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
        tcp.write_all(head.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(PATIENCE, tcp.read_to_end(&mut raw))
            .await
            .expect("the admin server answers in time")
            .unwrap();
        Reply::parse(&String::from_utf8(raw).unwrap())
    }
}

/// A port nothing listens on (bound, then released).
async fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// A stand-in upstream broker: it only needs to accept TCP (the kernel does, from the backlog).
async fn reachable_upstream() -> (TcpListener, Vec<(String, u16)>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    (l, vec![("127.0.0.1".to_string(), port)])
}

/// The value of the sample `series` (name and label set exactly as encoded); 0 when absent,
/// as Prometheus treats a series that does not exist yet.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let value = line.strip_prefix(series)?.strip_prefix(' ')?;
            value.split(' ').next()?.parse().ok()
        })
        .unwrap_or(0.0)
}

#[tokio::test]
async fn healthz_answers_ok() {
    let admin = Admin::start(vec![]).await;
    let reply = admin.get("/healthz").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body.trim(), "ok");
}

#[tokio::test]
async fn readyz_is_503_with_the_reasons_until_the_core_is_ready() {
    let (_upstream, servers) = reachable_upstream().await;
    let admin = Admin::start(servers).await;

    let reply = admin.get("/readyz").await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("application/json"),
        "{reply:?}"
    );
    assert_eq!(reply.json()["status"], "not_ready");
    assert_eq!(reply.not_ready(), ["config_loaded", "listeners_bound"]);

    admin.state.readiness.set_config_loaded(true);
    assert_eq!(admin.get("/readyz").await.not_ready(), ["listeners_bound"]);

    admin.state.readiness.set_listeners_bound(true);
    let reply = admin.get("/readyz").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["status"], "ready");
    assert!(reply.not_ready().is_empty());

    admin.state.readiness.set_shutting_down(true);
    let reply = admin.get("/readyz").await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.not_ready(), ["not_shutting_down"]);
}

#[tokio::test]
async fn readyz_is_503_while_no_upstream_accepts_connections() {
    let closed = closed_port().await;
    let admin = Admin::start(vec![("127.0.0.1".to_string(), closed)]).await;
    admin.state.readiness.set_config_loaded(true);
    admin.state.readiness.set_listeners_bound(true);

    let reply = admin.get("/readyz").await;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.not_ready(), ["upstream_reachable"]);
    let reason = reply.json()["not_ready"][0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains(&format!("127.0.0.1:{closed}")), "{reason}");

    // A reload pointing at a broker that is up: ready at once (no stale cached failure).
    let (_upstream, servers) = reachable_upstream().await;
    admin
        .state
        .upstream
        .set_targets(servers, Duration::from_secs(1));
    let reply = admin.get("/readyz").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn metrics_show_the_counters_moving() {
    let admin = Admin::start(vec![]).await;
    let before = admin.get("/metrics").await;
    assert_eq!(before.status, 200);
    assert!(
        before
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/openmetrics-text")),
        "{before:?}"
    );
    assert!(before.body.ends_with("# EOF\n"), "{}", before.body);

    let m = &admin.state.metrics;
    let _open = m.connection_opened(Target::Bootstrap);
    let closed = m.connection_opened(Target::Node(1));
    drop(closed);
    m.handshake_admitted();
    m.handshake_refused(RefusalReason::UntrustedChain);
    m.pool_matched("pool-payments");
    m.request(ApiKey::PRODUCE, Duration::from_millis(2));
    m.request(ApiKey::PRODUCE, Duration::from_millis(4));
    m.bytes(Direction::ClientToUpstream, 1_000);
    m.bytes(Direction::UpstreamToClient, 250);
    m.upstream_connect_error();
    m.reload_failed();
    m.audit_dropped(3);

    let after = admin.get("/metrics").await.body;
    let moved = |series: &str| sample(&after, series) - sample(&before.body, series);
    for (series, delta) in [
        (
            r#"kafka_mtls_proxy_connections_total{listener="bootstrap"}"#,
            1.0,
        ),
        (
            r#"kafka_mtls_proxy_connections_active{listener="bootstrap"}"#,
            1.0,
        ),
        (
            r#"kafka_mtls_proxy_connections_total{listener="broker-1"}"#,
            1.0,
        ),
        (
            r#"kafka_mtls_proxy_connections_active{listener="broker-1"}"#,
            0.0,
        ),
        (
            r#"kafka_mtls_proxy_handshakes_total{result="success",reason=""}"#,
            1.0,
        ),
        (
            r#"kafka_mtls_proxy_handshakes_total{result="refused",reason="untrusted_chain"}"#,
            1.0,
        ),
        (
            r#"kafka_mtls_proxy_pool_matches_total{pool="pool-payments"}"#,
            1.0,
        ),
        (r#"kafka_mtls_proxy_requests_total{api_key="Produce"}"#, 2.0),
        (
            r#"kafka_mtls_proxy_request_duration_seconds_count{api_key="Produce"}"#,
            2.0,
        ),
        (
            r#"kafka_mtls_proxy_request_duration_seconds_bucket{le="0.005",api_key="Produce"}"#,
            2.0,
        ),
        (
            r#"kafka_mtls_proxy_bytes_total{direction="client_to_upstream"}"#,
            1_000.0,
        ),
        (
            r#"kafka_mtls_proxy_bytes_total{direction="upstream_to_client"}"#,
            250.0,
        ),
        ("kafka_mtls_proxy_upstream_connect_errors_total", 1.0),
        (r#"kafka_mtls_proxy_reloads_total{result="failure"}"#, 1.0),
        ("kafka_mtls_proxy_audit_records_dropped_total", 3.0),
    ] {
        assert_eq!(moved(series), delta, "{series}\n{after}");
    }
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    let admin = Admin::start(vec![]).await;
    assert_eq!(admin.get("/").await.status, 404);
    assert_eq!(admin.get("/metrics/extra").await.status, 404);
    assert_eq!(admin.request("POST", "/metrics").await.status, 405);
}

#[tokio::test]
async fn the_shutdown_future_stops_the_server() {
    let mut admin = Admin::start(vec![]).await;
    // An idle keep-alive connection must not hold the shutdown up.
    let mut idle = TcpStream::connect(admin.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: admin\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");

    admin.stop.take().unwrap().send(()).unwrap();
    let result = tokio::time::timeout(admin::DRAIN_TIMEOUT / 2, &mut admin.task)
        .await
        .expect("serve returns promptly after shutdown")
        .unwrap();
    assert!(result.is_ok(), "{result:?}");
    assert!(
        TcpStream::connect(admin.addr).await.is_err(),
        "the admin port is closed"
    );
}

#[tokio::test]
async fn jwks_is_served_without_auth_with_a_short_cache_lifetime() {
    let keys = Arc::new(KeyRing::open(KeySettings::default(), Arc::new(SystemClock)).unwrap());
    let admin = Admin::start_with_keys(vec![], Some(keys.clone())).await;
    let reply = admin.get("/.well-known/jwks.json").await.expect(200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("public, max-age=60"));
    let jwks = reply.json();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["kid"], keys.signer().unwrap().kid());
}

#[tokio::test]
async fn jwks_is_not_found_outside_oauthbearer_mode() {
    let admin = Admin::start(vec![]).await;
    admin.get("/.well-known/jwks.json").await.expect(404);
}
