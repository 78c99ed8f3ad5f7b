//! A reload changes what a configuration generation carries, and the proxy then uses it:
//! `limits.drain_timeout_ms` was once reported as restart-only while connections already used
//! their generation's value; now shutdown also waits for the current generation's.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use std::path::Path;
use std::time::Duration;

use kafka_mtls_proxy::config;
use kafka_mtls_proxy::server::Server;
use tokio::net::TcpStream;

mod support {
    pub mod proxy;
}
use support::proxy::Pki;

/// A proxy on a free port with no admin server, no audit and no file watch (reloads are the
/// test's); a client that never starts its TLS handshake stays for `handshake_timeout_ms`.
fn write_config(path: &Path, pki: &Pki, drain_timeout_ms: u64) {
    let text = format!(
        r#"listener:
  bootstrap: 127.0.0.1:0
  advertised_host: localhost
{tls}
upstream:
  bootstrap_servers: [127.0.0.1:9]
audit:
  path: "off"
reload:
  watch_interval_ms: 0
limits:
  handshake_timeout_ms: 3600000
  drain_timeout_ms: {drain_timeout_ms}
{cas}
"#,
        tls = pki.tls_yaml(),
        cas = pki.certificate_authorities_yaml(),
    );
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn a_reload_changes_the_drain_timeout_without_a_restart() {
    let pki = Pki::generate("changeit");
    let path = pki.path("proxy.yaml");
    write_config(&path, &pki, 600_000);
    let server = Server::bind(config::load(&path).unwrap()).await.unwrap();
    let ctx = server.reloader().clone();
    assert_eq!(
        ctx.current().config.limits.drain_timeout,
        Duration::from_secs(600)
    );

    write_config(&path, &pki, 250);
    let report = ctx.reload().unwrap();
    assert_eq!(report.needs_restart, Vec::<&str>::new());
    assert_eq!(report.generation, 2);
    assert_eq!(
        ctx.current().config.limits.drain_timeout,
        Duration::from_millis(250)
    );
}

#[tokio::test]
async fn shutdown_drains_for_the_current_generations_timeout() {
    let pki = Pki::generate("changeit");
    let path = pki.path("proxy.yaml");
    write_config(&path, &pki, 600_000);
    let server = Server::bind(config::load(&path).unwrap()).await.unwrap();
    let addr = server.local_addr().unwrap();
    let ctx = server.reloader().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    // A connection that holds its slot through shutdown: it never sends a ClientHello.
    let _client = TcpStream::connect(addr).await.unwrap();
    let accepted = r#"kafka_mtls_proxy_connections_active{listener="bootstrap"} 1"#;
    for _ in 0..500 {
        if ctx.metrics().encode().contains(accepted) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(ctx.metrics().encode().contains(accepted), "not accepted");

    write_config(&path, &pki, 250);
    assert_eq!(ctx.reload().unwrap().needs_restart, Vec::<&str>::new());

    // From here on the clock only moves when every task waits for it: the drain's wait is
    // measured, not slept.
    tokio::time::pause();
    let started = tokio::time::Instant::now();
    let _ = stop.send(());
    run.await.unwrap().unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(60),
        "shutdown waited {waited:?}, not the reloaded 250 ms"
    );
}
