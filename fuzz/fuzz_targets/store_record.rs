//! Records of the shared pool store's topic, which anyone allowed to write to it controls: the
//! fetched record batches (`store::fuzzing::decode_fetched`, what the tail decodes a Fetch
//! partition's `records` with), each record's key and JSON value (`Change::decode`), and the
//! change applied to a state (`StoreState::apply`) with the validation the proxy runs
//! (`config::load_with_authorities`: the configuration file with the store's CAs, as
//! `Reloader::check_authorities` loads it).
//!
//! Input layout: bit 0 of byte 0 picks the half.
//! - Clear: the rest is split at each `\xff\xfe` pair into parts, taken two by two as a record's
//!   key and value (an empty value is a tombstone; a last key without a value too).
//! - Set: byte 1 is the offset fetched from; the rest is a Fetch partition's `records` bytes.
//!   The records decoded go through decode and apply as in the first half.
//!
//! What must hold: no panic (nor one the codec's `catch_unwind` caught); a fetch returns only
//! records at or past the offset asked, no control record, and a next offset not before it; a
//! record that is refused (undecodable or invalid) leaves the state exactly as it was; a
//! decoded change encodes to a record that decodes to the same key.

#![no_main]

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use bytes::Bytes;
use kafka_mtls_proxy::config::raw::RawCertificateAuthority;
use kafka_mtls_proxy::config::{ConfigError, load_with_authorities};
use kafka_mtls_proxy::store::fuzzing::{Applied, decode_fetched};
use kafka_mtls_proxy::store::{Change, StoreState, Validate};
use kafka_mtls_proxy_fuzz::split;
use libfuzzer_sys::fuzz_target;

/// A directory holding a configuration file that loads (a server certificate and key made
/// here), and `pem/`, where applying a record writes the CAs' PEM text.
struct Setup {
    config: PathBuf,
    pem: PathBuf,
    _dir: tempfile::TempDir,
}

static SETUP: LazyLock<Setup> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("a temporary directory: {e}"));
    let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("a key: {e}"));
    let cert = rcgen::CertificateParams::new(vec!["proxy.fuzz".to_owned()])
        .and_then(|params| params.self_signed(&key))
        .unwrap_or_else(|e| panic!("a server certificate: {e}"));
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).unwrap_or_else(|e| panic!("{name}: {e}"));
    };
    write("server.pem", &cert.pem());
    write("server.key", &key.serialize_pem());
    write(
        "proxy.yaml",
        r#"listener: { bootstrap: "127.0.0.1:9092", advertised_host: localhost, broker_ports: { first_port: 9093 } }
tls: { certificate_chain: server.pem, private_key: server.key }
upstream: { bootstrap_servers: ["127.0.0.1:19092"] }
audit: { path: "off" }
certificate_authorities: []
"#,
    );
    let pem = dir.path().join("pem");
    std::fs::create_dir_all(&pem).unwrap_or_else(|e| panic!("{}: {e}", pem.display()));
    Setup {
        config: dir.path().join("proxy.yaml"),
        pem,
        _dir: dir,
    }
});

/// The proxy's check of a candidate state (`store::AsLoaded`).
struct AsLoaded<'a>(&'a Path);

impl Validate for AsLoaded<'_> {
    fn validate(&self, cas: &[RawCertificateAuthority]) -> Result<(), String> {
        match load_with_authorities(self.0, cas.to_vec()) {
            Ok(_) => Ok(()),
            Err(ConfigError::Invalid { issues, .. }) => Err(format!("{} issues", issues.len())),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn apply(state: &mut StoreState, key: Option<&[u8]>, value: Option<&[u8]>) {
    let setup = &*SETUP;
    let before = state.clone();
    let change = match Change::decode(key, value) {
        Ok(change) => change,
        Err(_) => return,
    };
    let (key, value) = change.encode();
    match Change::decode(Some(&key), value.as_deref()) {
        Ok(again) => assert_eq!(again.key(), change.key(), "a record changed its key"),
        Err(e) => panic!("the proxy's own record does not decode: {e}"),
    }
    match state.apply(change, &setup.pem, &AsLoaded(&setup.config)) {
        Ok(Applied::Changed) => assert_ne!(*state, before, "a change changed nothing"),
        Ok(Applied::Unchanged | Applied::Held) => {}
        Err(_) => assert_eq!(*state, before, "a refused record changed the state"),
    }
}

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else {
        return;
    };
    let mut state = StoreState::default();
    if mode & 1 == 0 {
        let parts = split(rest);
        for record in parts.chunks(2) {
            let value = record.get(1).copied().filter(|v| !v.is_empty());
            apply(&mut state, Some(record[0]), value);
        }
    } else {
        let [offset, records @ ..] = rest else {
            return;
        };
        let offset = i64::from(*offset);
        match decode_fetched(&Bytes::copy_from_slice(records), offset) {
            Ok((records, next)) => {
                assert!(next >= offset, "fetched from {offset}, next is {next}");
                for r in &records {
                    assert!(r.offset >= offset && !r.control, "{r:?} from {offset}");
                    apply(&mut state, r.key.as_deref(), r.value.as_deref());
                }
            }
            Err(e) => assert!(!e.to_string().contains("panicked"), "{e}"),
        }
    }
    // Applying writes the CAs' PEM text (named by content): keep the directory small.
    if let Ok(entries) = std::fs::read_dir(&SETUP.pem) {
        for entry in entries.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
});
