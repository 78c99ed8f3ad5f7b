//! `check-config` and `run` on a configuration whose secrets are not there: checking it (in CI,
//! without the secrets) warns, `--strict` refuses it as `run` does, and `run` does not start.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "in a test, a panic is the failure report"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support {
    pub mod proxy;
}
use support::proxy::Pki;

/// Named by the configuration, removed from the command's environment.
const PASSWORD_ENV: &str = "KAFKA_MTLS_PROXY_TEST_ABSENT_SCRAM_PASSWORD";

/// A configuration that is valid but for its two secrets: pool-payments' SCRAM password (an
/// environment variable) and the admin token (a file), neither of which exists.
fn write_config(dir: &Path, pki: &Pki) -> (PathBuf, PathBuf) {
    let token = dir.join("admin.token");
    let text = format!(
        r#"listener:
  bootstrap: 127.0.0.1:0
  advertised_host: localhost
{tls}
upstream:
  bootstrap_servers: [127.0.0.1:9]
  identity:
    mode: scram
    mechanism: SCRAM-SHA-512
    credentials:
      pool-payments: {{ username: payments, password_env: {PASSWORD_ENV} }}
audit:
  path: "off"
reload:
  watch_interval_ms: 0
# Small, so that no open-file limit of the machine running the tests draws a warning.
limits:
  max_connections: 1000
admin:
  listen: 127.0.0.1:0
  token_file: "{token}"
{cas}
"#,
        tls = pki.tls_yaml(),
        cas = pki.certificate_authorities_yaml(),
        token = token.display(),
    );
    let path = dir.join("proxy.yaml");
    std::fs::write(&path, text).unwrap();
    (path, token)
}

fn proxy(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kafka-mtls-proxy"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env_remove(PASSWORD_ENV)
        .env_remove("KAFKA_MTLS_PROXY_CONFIG")
        .output()
        .unwrap()
}

/// The `PREFIX: FILE: FIELD: REASON` lines of stderr naming the two absent secrets.
fn secret_lines(out: &Output, prefix: &str, config: &Path) -> Vec<String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let start = format!("{prefix}: {}: ", config.display());
    let fields = [
        "upstream.identity.credentials.pool-payments.password_env: ",
        "admin.token_file: ",
    ];
    fields
        .iter()
        .filter_map(|field| {
            stderr
                .lines()
                .find(|line| line.starts_with(&format!("{start}{field}")))
                .map(str::to_string)
        })
        .collect()
}

#[test]
fn check_config_warns_about_absent_secrets_and_succeeds() {
    let pki = Pki::generate("test-password");
    let dir = tempfile::tempdir().unwrap();
    let (config, token) = write_config(dir.path(), &pki);

    let out = proxy(&["check-config"], &config);

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let warnings = secret_lines(&out, "warning", &config);
    assert_eq!(warnings.len(), 2, "{stderr}");
    assert!(
        warnings[0].ends_with(&format!("{PASSWORD_ENV} is not set")),
        "{stderr}"
    );
    assert!(
        warnings[1].contains(&format!("{}: cannot read", token.display())),
        "{stderr}"
    );
    assert!(!stderr.lines().any(|l| l.starts_with("error")), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).contains(": OK"));
}

#[test]
fn check_config_strict_refuses_absent_secrets_as_errors() {
    let pki = Pki::generate("test-password");
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = write_config(dir.path(), &pki);

    let out = proxy(&["check-config", "--strict"], &config);

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(secret_lines(&out, "error", &config).len(), 2, "{stderr}");
    assert!(
        !stderr.lines().any(|l| l.starts_with("warning")),
        "{stderr}"
    );
}

#[test]
fn check_config_strict_accepts_the_configuration_once_the_secrets_are_there() {
    let pki = Pki::generate("test-password");
    let dir = tempfile::tempdir().unwrap();
    let (config, token) = write_config(dir.path(), &pki);
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_kafka-mtls-proxy"))
        .args(["check-config", "--strict", "--config"])
        .arg(&config)
        .env(PASSWORD_ENV, "s3cret")
        .output()
        .unwrap();

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.trim().is_empty(), "{stderr}");
}

/// Starting needs the secrets (every upstream login and every IAM write would fail): `run`
/// refuses, with the errors `check-config --strict` prints, before binding anything.
#[test]
fn run_refuses_to_start_without_its_secrets() {
    let pki = Pki::generate("test-password");
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = write_config(dir.path(), &pki);

    let out = proxy(&["run"], &config);

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(secret_lines(&out, "error", &config).len(), 2, "{stderr}");
}

/// The open-file limit cannot serve a million connections anywhere (Linux caps any process at
/// `fs.nr_open`, 2^20 by default): `check-config` says so, naming the setting, and succeeds.
#[test]
fn check_config_warns_when_the_open_file_limit_cannot_serve_max_connections() {
    let pki = Pki::generate("test-password");
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = write_config(dir.path(), &pki);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("max_connections: 1000\n", "max_connections: 1000000\n"),
    )
    .unwrap();

    let out = proxy(&["check-config"], &config);

    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let start = format!(
        "warning: {}: limits.max_connections: 1000000 connections need up to 2001064 open files",
        config.display()
    );
    assert!(stderr.lines().any(|l| l.starts_with(&start)), "{stderr}");
}
