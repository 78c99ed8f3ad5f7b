//! The `proxy` and `proxy-acl` paths' terminator: kafka-mtls-proxy (the release binary), its
//! configuration, and the proxy ACLs of `proxy-acl`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use crate::broker::Broker;
use crate::path::{Kind, SNI_DOMAIN, Setup};
use crate::process::{Proc, free_port, wait_for_port};

/// Proxy ACLs for the `proxy-acl` path: enforced globally; the client matches both pools and
/// gets the union of their rules. Only the prefixed `load-` allow matches what the benchmark
/// does (CreateTopics, Produce, Metadata of its topic; describe is implied by write); the
/// others, and the deny, are checked on every request without matching. No rule allows
/// describing every topic, so the Metadata listing is filtered.
pub const PROXY_ACLS: Acls = Acls {
    global: r#"
authorization:
  enabled: true
  rules:
    - {operations: [read], resource_type: group, pattern_type: prefixed, resource_name: load-}"#,
    pool_payments: r#"
        acls:
          - {permission: deny, operations: [write], resource_type: topic, resource_name: load-bench-frozen}
          - {operations: [write, describe], resource_type: topic, resource_name: payments}
          - {operations: [read], resource_type: topic, pattern_type: prefixed, resource_name: payments-}
          - {operations: [write, create], resource_type: topic, pattern_type: prefixed, resource_name: load-}"#,
    pool_acme_all: r#"
        acls:
          - {operations: [read], resource_type: topic, pattern_type: prefixed, resource_name: acme-shared-}
          - {operations: [describe], resource_type: topic, resource_name: acme-directory}"#,
};

/// YAML fragments that turn proxy ACLs on (empty strings: off).
#[derive(Debug, Clone, Copy)]
pub struct Acls {
    pub global: &'static str,
    pub pool_payments: &'static str,
    pub pool_acme_all: &'static str,
}

pub const NO_ACLS: Acls = Acls {
    global: "",
    pool_payments: "",
    pool_acme_all: "",
};

pub fn proxy_config(
    name: &str,
    dir: &Path,
    pki: &Path,
    ports: (u16, u16, u16),
    acls: Acls,
) -> String {
    let (bootstrap, first_port, broker) = ports;
    let p = |f: &str| pki.join(f).display().to_string();
    format!(
        r#"listener:
  bootstrap: 127.0.0.1:{bootstrap}
  advertised_host: localhost
  broker_ports:
    first_port: {first_port}
tls:
  certificate_chain: {server_pem}
  private_key: {server_key}
upstream:
  bootstrap_servers: [127.0.0.1:{broker}]
audit:
  path: {audit}
# Room for the idle figure (thousands of connections held).
limits:
  max_connections: 30000
log:
  level: {log_level}
certificate_authorities:
  - id: ca-acme
    display_name: Acme Internal Client CA
    certificate_chain: {client_ca}
    identity_pools:
      - id: pool-payments
        display_name: Payments
        external_identifier: CN
        filter: 'CN == "acme-client" && OU == "payments"'{pool_payments}
      - id: pool-acme-all
        display_name: All Acme clients
        external_identifier: SHA1
        filter: 'O == "Acme Inc"'{pool_acme_all}{global}
"#,
        server_pem = p("server.pem"),
        server_key = p("server.key"),
        audit = dir.join(format!("{name}-audit.log")).display(),
        pool_payments = acls.pool_payments,
        pool_acme_all = acls.pool_acme_all,
        global = acls.global,
        client_ca = p("acme-internal-client-ca.pem"),
        // `warn` as in production; LOAD_PROXY_LOG=info|debug to see why sessions end.
        log_level = std::env::var("LOAD_PROXY_LOG").unwrap_or_else(|_| "warn".into()),
    )
}

/// Start the path's broker, then the proxy in front of it; returns the proxy's process, the
/// broker and the proxy's bootstrap address.
pub async fn start(s: &Setup<'_>, kind: Kind) -> Result<(Proc, Broker, SocketAddr)> {
    let broker = Broker::start(s, kind, None).await?;
    let (term, addr) = start_proxy(s, kind, &broker, kind.name()).await?;
    Ok((term, broker, addr))
}

/// One more proxy in front of the path's broker, with ports of its own (the idle figure's
/// `--idle-processes`); `name` names its configuration, log and audit files.
pub async fn start_another(
    s: &Setup<'_>,
    kind: Kind,
    broker: &Broker,
    name: &str,
) -> Result<(Proc, SocketAddr)> {
    start_proxy(s, kind, broker, name).await
}

async fn start_proxy(
    s: &Setup<'_>,
    kind: Kind,
    broker: &Broker,
    name: &str,
) -> Result<(Proc, SocketAddr)> {
    let bootstrap = free_port()?;
    // first_port + the broker's node id (tansu: 111, Kafka: 1) must be free.
    let node_id = u16::try_from(broker.node_id())?;
    let first_port = loop {
        let p = free_port()?;
        if p > node_id + 1024 && p != bootstrap {
            break p - node_id;
        }
    };
    let acls = if kind == Kind::ProxyAcl {
        PROXY_ACLS
    } else {
        NO_ACLS
    };
    let cfg = s.dir.join(format!("{name}.yaml"));
    let mut config = proxy_config(
        name,
        s.dir,
        s.pki,
        (bootstrap, first_port, broker.port()),
        acls,
    );
    if kind == Kind::ProxySni {
        // Every broker on the bootstrap port, by server name: no broker port.
        config = config.replace(
            &format!("  broker_ports:\n    first_port: {first_port}\n"),
            &format!(
                "  sni:\n    bootstrap: bootstrap.{SNI_DOMAIN}\n    broker_pattern: \"broker-{{id}}.{SNI_DOMAIN}\"\n"
            ),
        );
    }
    std::fs::write(&cfg, config)?;
    let mut cmd = Command::new(&s.bins.proxy);
    cmd.arg("run")
        .arg("--config")
        .arg(&cfg)
        .current_dir(s.dir)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1");
    let log = s.dir.join(format!("{name}.log"));
    let mut term = Proc::spawn(&format!("kafka-mtls-proxy ({name})"), &mut cmd, log)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], bootstrap));
    wait_for_port(addr, &mut term, Duration::from_secs(30)).await?;
    Ok((term, addr))
}
