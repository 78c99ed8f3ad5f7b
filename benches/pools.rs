//! Identity-pool resolution cost: certificate parsing, uncached resolution with 1, 10 and 100
//! pools (realistic 2–4 clause Confluent filters, the matching pool last, so every filter runs),
//! and a cache hit.
//!
//! Run: `cargo bench --bench pools -- --warm-up-time 1 --measurement-time 3`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmark setup fails loudly"
)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kafka_mtls_proxy::identity::CertIdentity;
use kafka_mtls_proxy::pools::{
    Attributes, CaPools, ExternalIdentifier, Filter, Pool, ResolutionCache, Resolved, evaluate,
};
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair, SanType};

/// A typical service certificate: CN, two OUs' worth of subject, a SPIFFE URI and DNS SANs.
fn certificate() -> Vec<u8> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CountryName, "US");
    dn.push(DnType::OrganizationName, "Acme");
    dn.push(DnType::OrganizationalUnitName, "payments");
    dn.push(DnType::CommonName, "payments-svc");
    params.distinguished_name = dn;
    params.subject_alt_names = vec![
        SanType::URI(
            "spiffe://acme/ns/payments/sa/payments-svc"
                .try_into()
                .unwrap(),
        ),
        SanType::DnsName("payments.acme.internal".try_into().unwrap()),
    ];
    let key = KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

/// `n` pools; the first `n - 1` do not match this certificate, the last one does.
fn pools(n: usize) -> CaPools {
    let mut pools: Vec<Pool> = (0..n.saturating_sub(1))
        .map(|i| {
            let filter = match i % 3 {
                0 => format!(
                    r#"O == "Acme" && OU in ["team-{i}", "ops-{i}"] && CN.startsWith("svc-{i}-")"#
                ),
                1 => {
                    format!(r#"SAN.startsWith("spiffe://acme/ns/team-{i}/") || CN == "legacy-{i}""#)
                }
                _ => format!(
                    r#"C == "US" && O == "Acme" && OU == "team-{i}" && !CN.endsWith("-test")"#
                ),
            };
            pool(&format!("pool-{i}"), &filter)
        })
        .collect();
    pools.push(pool(
        "payments",
        r#"CN == "payments-svc" && OU == "payments" && O == "Acme" && SAN.contains("spiffe://acme/ns/payments/")"#,
    ));
    CaPools {
        ca_id: "corp".to_owned(),
        pools,
    }
}

fn pool(id: &str, filter: &str) -> Pool {
    Pool {
        id: id.to_owned(),
        display_name: id.to_owned(),
        description: String::new(),
        external_identifier: ExternalIdentifier::Cn,
        filter: Filter::compile(filter).unwrap(),
        priority: 0,
        acls: Vec::new(),
    }
}

fn bench(c: &mut Criterion) {
    let der = certificate();
    let identity = CertIdentity::from_der(&der).unwrap();

    c.bench_function("x509_parse", |b| {
        b.iter(|| CertIdentity::from_der(black_box(&der)).unwrap())
    });

    let mut uncached = c.benchmark_group("resolve_uncached");
    for n in [1, 10, 100] {
        let cas = pools(n);
        uncached.bench_with_input(BenchmarkId::from_parameter(n), &cas, |b, cas| {
            b.iter(|| {
                let attrs = Attributes::new(black_box(&identity));
                let evaluation = evaluate(&[cas], &identity, &attrs);
                assert!(evaluation.resolution.is_admitted());
                evaluation
            })
        });
    }
    uncached.finish();

    // The same 100 pools, one of them needing the interpreter: the price of the fallback
    // (building the certificate's CEL variables once, then one interpreted filter).
    let mut mixed = pools(100);
    mixed.pools[0] = pool(
        "interpreted",
        r#""payments" in cert.subject.OU && CN == "x""#,
    );
    c.bench_function("resolve_uncached_one_interpreted/100", |b| {
        b.iter(|| {
            let attrs = Attributes::new(black_box(&identity));
            evaluate(&[&mixed], &identity, &attrs)
        })
    });

    let mut cached = c.benchmark_group("resolve_cached");
    for n in [1, 10, 100] {
        let cas = pools(n);
        let cache = ResolutionCache::new(1_000);
        let resolve = || {
            let identity = CertIdentity::from_der(&der)?;
            let attrs = Attributes::new(&identity);
            let evaluation = evaluate(&[&cas], &identity, &attrs);
            Ok(Arc::new(Resolved {
                identity,
                evaluation,
                crl_urls: Vec::new(),
            }))
        };
        cache.get_or_resolve(&der, &[&cas], resolve).unwrap();
        cached.bench_with_input(BenchmarkId::from_parameter(n), &cas, |b, cas| {
            b.iter(|| {
                cache
                    .get_or_resolve(black_box(&der), &[cas], || {
                        unreachable!("cache hit expected")
                    })
                    .unwrap()
            })
        });
    }
    cached.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
