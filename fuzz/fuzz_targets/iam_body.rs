//! Arbitrary request bodies of the iam/v2 API (`POST`/`PATCH`/`PUT` of certificate authorities
//! and identity pools): `parse_body`, `requested_id`, the merge into the stored resource
//! (`merge_ca`, `merge_pool`), the resource as the API shows it back, and the configuration
//! check the API runs before it writes anything (`config::from_raw` on the changed
//! configuration).
//!
//! Input layout: bit 0 of byte 0 picks a CA (1) or a pool (0) body, bit 1 a create (0) or an
//! update of an existing resource (1); the rest is the body.
//!
//! What must hold: no panic; every refusal is a 4xx.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use kafka_mtls_proxy::admin::iam::{
    ApiError, Urls, ca_json, merge_ca, merge_pool, parse_body, pool_json, requested_id,
};
use kafka_mtls_proxy::config::raw::RawConfig;
use kafka_mtls_proxy::config::{from_raw, parse_yaml};
use libfuzzer_sys::fuzz_target;

/// The configuration the API changes: one CA with one pool. It names files that do not exist,
/// so its check reports them, but every other check (the pool's filter, its ACLs, ids) runs.
const BASE: &str = r#"
listener: { bootstrap: "127.0.0.1:9092", advertised_host: localhost, broker_ports: { first_port: 9093 } }
tls: { certificate_chain: fuzz-absent/server.pem, private_key: fuzz-absent/server.key }
upstream: { bootstrap_servers: ["127.0.0.1:19092"] }
audit: { path: "off" }
certificate_authorities:
  - id: op-fuzz
    display_name: Fuzz CA
    certificate_chain: fuzz-absent/ca.pem
    identity_pools:
      - id: pool-fuzz
        display_name: Fuzz
        external_identifier: CN
        filter: 'CN == "fuzz" && OU == "payments"'
"#;

static BASE_RAW: LazyLock<RawConfig> = LazyLock::new(|| {
    parse_yaml(Path::new("base.yaml"), BASE).unwrap_or_else(|e| panic!("the base config: {e}"))
});

fn assert_client_error(e: &ApiError) {
    assert!(
        (400..500).contains(&e.status),
        "not a client error: {}",
        e.body()
    );
}

fuzz_target!(|data: &[u8]| {
    let [mode, body @ ..] = data else {
        return;
    };
    let (is_ca, update) = (mode & 1 == 1, mode & 2 == 2);
    let body = match parse_body(body) {
        Ok(body) => body,
        Err(e) => return assert_client_error(&e),
    };
    let id = match requested_id(&body) {
        Ok(id) => id.unwrap_or_else(|| "new-fuzz".to_owned()),
        Err(e) => return assert_client_error(&e),
    };
    let urls = Urls::new(Some("admin.fuzz:8080"));
    let mut raw = BASE_RAW.clone();
    let Some(base_ca) = raw.certificate_authorities.first_mut() else {
        panic!("the base config has no CA");
    };
    if is_ca {
        let existing = update.then(|| base_ca.clone());
        let id = if update { base_ca.id.clone() } else { id };
        // The API writes PEM text to a file under the configuration's directory; here every PEM
        // field lands at one path that does not exist, so the check reports it unreadable.
        let mut write_pem = |field: &str, _pem: &str| -> Result<PathBuf, ApiError> {
            Ok(PathBuf::from(format!("fuzz-absent/{field}.pem")))
        };
        let ca = match merge_ca(existing.as_ref(), &id, body, &mut write_pem) {
            Ok(ca) => ca,
            Err(e) => return assert_client_error(&e),
        };
        let _ = ca_json(&ca, &urls);
        *base_ca = ca;
    } else {
        let existing = update
            .then(|| base_ca.identity_pools.first().cloned())
            .flatten();
        let id = existing.as_ref().map_or(id, |pool| pool.id.clone());
        let pool = match merge_pool(existing.as_ref(), &id, body) {
            Ok(pool) => pool,
            Err(e) => return assert_client_error(&e),
        };
        let _ = pool_json(&base_ca.id, &pool, &urls);
        base_ca.identity_pools.retain(|p| p.id != pool.id);
        base_ca.identity_pools.push(pool);
    }
    let _ = from_raw(Path::new("fuzz.yaml"), &raw);
});
