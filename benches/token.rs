//! Upstream token cost in `mode: oauthbearer`, paid once per upstream connection: issuing one
//! token (claims JSON, base64url, ES256 signature) and building the SASL message around it.
//!
//! Run: `cargo bench --bench token -- --warm-up-time 1 --measurement-time 3`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup fails loudly"
)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use kafka_mtls_proxy::oauth::{
    Extensions, KeyRing, KeySettings, ManualClock, TokenIssuer, TokenSettings,
};
use kafka_mtls_proxy::pools::{CertIdentifier, ExternalIdentifier, MatchedPool, Resolution};

const NOW: u64 = 1_800_000_000_000;

/// A certificate that matched two pools of one CA, identified by its CN.
fn resolution() -> Resolution {
    let matched = |pool: &str, priority| MatchedPool {
        ca_id: "ca-acme".into(),
        pool_id: pool.into(),
        priority,
    };
    Resolution {
        matched: vec![matched("pool-payments", 10), matched("pool-acme-all", 0)],
        principals: vec!["User:pool-payments".into(), "User:pool-acme-all".into()],
        identifier: Some(CertIdentifier {
            kind: ExternalIdentifier::Cn,
            value: "payments-svc".into(),
        }),
    }
}

fn issuer() -> TokenIssuer {
    let keys = KeyRing::open(KeySettings::default(), Arc::new(ManualClock::new(NOW))).unwrap();
    let extensions = BTreeMap::from([("logicalCluster".to_string(), "lkc-payments".to_string())]);
    TokenIssuer::new(
        TokenSettings {
            issuer: "https://kafka-proxy.acme.internal".into(),
            audience: "kafka".into(),
            scope: None,
            extensions: Extensions::new(&extensions).unwrap(),
        },
        Arc::new(keys),
    )
}

fn token(c: &mut Criterion) {
    let issuer = issuer();
    let resolution = resolution();
    c.bench_function("token/issue (claims + ES256)", |b| {
        b.iter(|| black_box(issuer.issue(black_box(&resolution)).unwrap()))
    });
    let token = issuer.issue(&resolution).unwrap();
    c.bench_function("token/sasl_message", |b| {
        b.iter(|| black_box(issuer.sasl_message(black_box(&token)).unwrap()))
    });
}

criterion_group!(benches, token);
criterion_main!(benches);
