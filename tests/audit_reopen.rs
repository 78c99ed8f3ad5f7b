//! External rotation of the audit file, as logrotate does it: the file is moved away, then the
//! proxy gets SIGHUP and writes on to a new file at the configured path. The proxy runs as a
//! process (the signal handling is the command's); refused handshakes make the records.

#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod support {
    pub mod proxy;
}
use support::proxy::Pki;

/// Kills the proxy when a test fails half-way.
struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn signal(proxy: &Proxy, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(proxy.0.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name}");
}

/// The audit records in the file at `path` (none when it does not exist).
fn records(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Connect and close at once (an audited refusal) until `path` has a record; the proxy's
/// stderr on failure.
fn refuse_until_recorded(addr: SocketAddr, path: &Path, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while records(path).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no audit record in {}; proxy log:\n{}",
            path.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        drop(TcpStream::connect(addr));
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sighup_reopens_the_audit_file_after_it_was_moved_away() {
    let pki = Pki::generate("test-password");
    let dir = tempfile::tempdir().unwrap();
    let audit = dir.path().join("audit.log");
    let moved = dir.path().join("audit.log-rotated");
    let log = dir.path().join("proxy.log");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = dir.path().join("proxy.yaml");
    std::fs::write(
        &config,
        format!(
            r#"listener:
  bootstrap: {addr}
  advertised_host: localhost
{tls}
upstream:
  bootstrap_servers: [127.0.0.1:9]
audit:
  path: "{audit}"
  max_file_bytes: 0
reload:
  watch_interval_ms: 0
{cas}
"#,
            tls = pki.tls_yaml(),
            cas = pki.certificate_authorities_yaml(),
            audit = audit.display(),
        ),
    )
    .unwrap();
    let mut proxy = Proxy(
        Command::new(env!("CARGO_BIN_EXE_kafka-mtls-proxy"))
            .args(["run", "--config"])
            .arg(&config)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    refuse_until_recorded(addr, &audit, &log);

    // logrotate: `mv`, then `kill -HUP` (postrotate).
    std::fs::rename(&audit, &moved).unwrap();
    signal(&proxy, "HUP");
    refuse_until_recorded(addr, &audit, &log);
    // The same signal reloads the configuration, as before.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("configuration reloaded")
    {
        assert!(Instant::now() < deadline, "SIGHUP did not reload");
        std::thread::sleep(Duration::from_millis(50));
    }

    // SIGHUP did not end the process: it stops on SIGTERM, as always.
    signal(&proxy, "TERM");
    assert!(proxy.0.wait().unwrap().success());
    let before = records(&moved);
    let after = records(&audit);
    assert!(!before.is_empty());
    assert!(!after.is_empty());
    for record in before.iter().chain(&after) {
        assert_eq!(
            record["data"]["result"]["status"], "UNAUTHENTICATED",
            "{record}"
        );
    }
}
