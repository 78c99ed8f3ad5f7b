//! Every configuration error the proxy promises to catch at load, each with its field: the
//! fixture here, the tests in one file per section of the configuration.

mod admin;
mod audit;
mod authorities;
mod authorization;
mod listener;
mod oauthbearer;
mod proxy_login;
mod reload;
mod server_tls;
mod sources;
mod startup;
mod upstream_health;
mod upstream_identity;

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

use super::*;
use crate::pools::ExternalIdentifier;

struct Fixture {
    dir: tempfile::TempDir,
}

fn ca_pem(cn: &str) -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

fn leaf_pem_and_key(host: &str) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec![host.to_string()]).unwrap();
    (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
}

impl Fixture {
    fn new() -> Self {
        let f = Self {
            dir: tempfile::tempdir().unwrap(),
        };
        let (cert, key) = leaf_pem_and_key("localhost");
        f.write("server.pem", &cert);
        f.write("server.key", &key);
        f.write("ca.pem", &ca_pem("Acme Internal Client CA"));
        f
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// A valid configuration; `cas` is the YAML of the `certificate_authorities` list.
    fn yaml(&self, cas: &str) -> String {
        format!(
            r#"
listener:
  bootstrap: 127.0.0.1:9092
  advertised_host: localhost
tls:
  certificate_chain: {d}/server.pem
  private_key: {d}/server.key
upstream:
  bootstrap_servers: [127.0.0.1:19092]
audit:
  path: "off"
certificate_authorities:
{cas}
"#,
            d = self.dir.path().display()
        )
    }

    fn ca_block(&self, chain: &Path, pools: &str) -> String {
        format!(
            r#"  - id: ca-acme
    display_name: Acme Internal Client CA
    description: Acme certificate authority for internal client applications
    certificate_chain: {}
    identity_pools:
{pools}"#,
            chain.display()
        )
    }

    fn load(&self, yaml: &str) -> Result<Config, ConfigError> {
        let p = self.write("proxy.yaml", yaml);
        load(&p)
    }

    fn issues(&self, yaml: &str) -> Vec<Issue> {
        match self.load(yaml) {
            Err(ConfigError::Invalid { issues, .. }) => issues,
            Err(other) => panic!("expected field errors, got {other}"),
            Ok(_) => panic!("expected the configuration to be refused"),
        }
    }
}

const GOOD_POOLS: &str = r#"      - id: pool-payments
        display_name: Payments
        description: Payment services
        external_identifier: CN
        filter: 'CN == "acme-client" && OU == "payments"'
      - id: pool-acme-all
        display_name: All Acme clients
        external_identifier: SHA1
        filter: 'O == "Acme Inc"'
"#;

fn has(issues: &[Issue], field: &str, needle: &str) -> bool {
    issues
        .iter()
        .any(|i| i.field == field && i.reason.contains(needle))
}

impl Fixture {
    /// The valid configuration with `identity` (YAML under `upstream.identity`, indented by 4).
    fn with_identity(&self, identity: &str) -> String {
        self.yaml(&self.ca_block(&self.path("ca.pem"), GOOD_POOLS))
            .replace(
                "  bootstrap_servers: [127.0.0.1:19092]\n",
                &format!("  bootstrap_servers: [127.0.0.1:19092]\n  identity:\n{identity}"),
            )
    }
}

impl Fixture {
    /// `with_identity` plus an admin server on `listen` (none when `None`).
    fn with_oauth(&self, identity: &str, listen: Option<&str>) -> String {
        let admin = listen.map_or(String::new(), |l| format!("admin:\n  listen: {l}\n"));
        format!("{}{admin}", self.with_identity(identity))
    }
}

#[test]
fn the_issue_example_block_loads_as_written() {
    let f = Fixture::new();
    let cfg = f
        .load(&f.yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS)))
        .unwrap();
    assert_eq!(cfg.reloadable.authorities.len(), 1);
    let ca = &cfg.reloadable.authorities[0];
    assert_eq!(ca.id, "ca-acme");
    assert_eq!(ca.pools.pools.len(), 2);
    assert_eq!(
        ca.pools.pools[1].external_identifier,
        ExternalIdentifier::Sha1
    );
    assert_eq!(cfg.reloadable.limits.max_frame_bytes, 100 * 1024 * 1024);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn an_unknown_key_is_an_error_with_its_name() {
    let f = Fixture::new();
    let yaml = f
        .yaml(&f.ca_block(&f.path("ca.pem"), GOOD_POOLS))
        .replace("external_identifier: CN", "external_identifer: CN");
    match f.load(&yaml) {
        Err(ConfigError::Syntax { message, .. }) => {
            assert!(message.contains("external_identifer"), "{message}")
        }
        Err(other) => panic!("expected a syntax error, got {other}"),
        Ok(_) => panic!("a typo was silently accepted"),
    }
}

#[test]
fn all_problems_are_reported_in_one_pass() {
    let f = Fixture::new();
    let pools = GOOD_POOLS
        .replace("external_identifier: SHA1", "external_identifier: NOPE")
        .replace(r#"'CN == "acme-client" && OU == "payments"'"#, "'CN =='");
    let yaml = f
        .yaml(&f.ca_block(&f.path("missing.pem"), &pools))
        .replace("127.0.0.1:19092", "no-port-here");
    let issues = f.issues(&yaml);
    assert!(issues.len() >= 4, "{issues:?}");
}
