//! Arbitrary text as the configuration file: `parse_yaml` (serde-saphyr into `RawConfig`), then
//! `from_raw`, which reads the files the configuration names and checks every section (limits,
//! listeners, TLS, upstream, CAs, pools and their CEL filters, ACLs), as a load, a reload and
//! `check-config` do.
//!
//! What must hold: no panic, and a configuration that loads can be checked again with the same
//! result (it is what a reload of an unchanged file does).
//!
//! The files a fuzzed configuration names are read from the working directory; inputs naming
//! device or kernel files (`/dev`, `/proc`, `/sys`: reading `/dev/zero` never ends) stop after
//! the parse.

#![no_main]

use std::path::Path;

use kafka_mtls_proxy::config::{from_raw, parse_yaml};
use libfuzzer_sys::fuzz_target;

const UNREADABLE: [&str; 3] = ["/dev", "/proc", "/sys"];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.yaml");
    let Ok(raw) = parse_yaml(path, text) else {
        return;
    };
    if UNREADABLE.iter().any(|dir| text.contains(dir)) {
        return;
    }
    let first = from_raw(path, &raw).map_err(|e| e.issues());
    let again = from_raw(path, &raw).map_err(|e| e.issues());
    assert_eq!(first.is_ok(), again.is_ok());
    if let (Err(first), Err(again)) = (first, again) {
        assert_eq!(
            first, again,
            "checking the same configuration twice differs"
        );
    }
});
