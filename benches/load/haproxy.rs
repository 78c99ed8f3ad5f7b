//! The `haproxy` path's terminator: HAProxy in TCP mode with the same mTLS as the proxy.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, anyhow, ensure};

use crate::broker::Broker;
use crate::path::{Kind, Setup};
use crate::process::{Proc, free_port, wait_for_port};

pub fn haproxy_config(pem: &Path, client_ca: &Path, port: u16, broker: u16) -> String {
    format!(
        r#"# The same mTLS as the proxy (server certificate, client CA, verify required), TCP mode.
# TLS versions, ciphers and threads are HAProxy's defaults (nbthread = the CPUs available).
# maxconn and timeouts leave room for the idle figure (thousands of connections held for a
# while; 9900 stays within an open-file limit of 20000, which haproxy needs 2 × maxconn of).
global
    maxconn 9900

defaults
    mode tcp
    timeout connect 5s
    timeout client 10m
    timeout server 10m

frontend kafka_mtls
    bind 127.0.0.1:{port} ssl crt {pem} ca-file {ca} verify required
    default_backend broker

backend broker
    server broker 127.0.0.1:{broker}
"#,
        pem = pem.display(),
        ca = client_ca.display(),
    )
}

/// Start the path's broker (advertising HAProxy's address), then HAProxy in front of it;
/// returns HAProxy's process, the broker and HAProxy's address.
pub async fn start(s: &Setup<'_>, kind: Kind) -> Result<(Proc, Broker, SocketAddr)> {
    let haproxy = s
        .bins
        .haproxy
        .as_ref()
        .ok_or_else(|| anyhow!("haproxy is not installed"))?;
    let port = free_port()?;
    // The broker advertises HAProxy's address: clients that follow Metadata stay on
    // HAProxy.
    let broker = Broker::start(s, kind, Some(port)).await?;
    let (term, addr) = start_haproxy(s, haproxy, broker.port(), port, "haproxy").await?;
    Ok((term, broker, addr))
}

/// One more HAProxy in front of the path's broker, on a port of its own (the idle figure's
/// `--idle-processes`); `name` names its configuration and log.
pub async fn start_another(
    s: &Setup<'_>,
    broker: &Broker,
    name: &str,
) -> Result<(Proc, SocketAddr)> {
    let haproxy = s
        .bins
        .haproxy
        .as_ref()
        .ok_or_else(|| anyhow!("haproxy is not installed"))?;
    start_haproxy(s, haproxy, broker.port(), free_port()?, name).await
}

async fn start_haproxy(
    s: &Setup<'_>,
    haproxy: &Path,
    broker_port: u16,
    port: u16,
    name: &str,
) -> Result<(Proc, SocketAddr)> {
    let pem = s.dir.join(format!("{name}-server.pem"));
    let mut both = std::fs::read(s.pki.join("server.pem"))?;
    both.push(b'\n');
    both.extend(std::fs::read(s.pki.join("server.key"))?);
    std::fs::write(&pem, both)?;
    let cfg = s.dir.join(format!("{name}.cfg"));
    std::fs::write(
        &cfg,
        haproxy_config(
            &pem,
            &s.pki.join("acme-internal-client-ca.pem"),
            port,
            broker_port,
        ),
    )?;
    let check = Command::new(haproxy)
        .arg("-c")
        .arg("-f")
        .arg(&cfg)
        .output()?;
    ensure!(
        check.status.success(),
        "haproxy rejects {}: {}{}",
        cfg.display(),
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let mut cmd = Command::new(haproxy);
    cmd.arg("-db").arg("-f").arg(&cfg).current_dir(s.dir);
    let mut term = Proc::spawn(name, &mut cmd, s.dir.join(format!("{name}.log")))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_for_port(addr, &mut term, Duration::from_secs(30)).await?;
    Ok((term, addr))
}
