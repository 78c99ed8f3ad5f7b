//! The development PKI as a client, a broker and the proxy see it: every file, its mode, the
//! chains, the rogue and expired certificates, the keystores, the properties files.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    reason = "a failed expectation in a test is the test failing"
)]

use std::path::{Path, PathBuf};

use p12_keystore::{KeyStore, KeyStoreEntry, Pkcs12ImportPolicy};
use rcgen::KeyPair;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use super::clients::CLIENTS;
use super::*;

/// Every file `run` must write, in the directory it writes them to.
const EXPECTED_FILES: &[&str] = &[
    "server-ca.pem",
    "server-ca.key",
    "server.pem",
    "server.key",
    "broker.pem",
    "broker.key",
    "proxy-upstream-client.pem",
    "proxy-upstream-client.key",
    "acme-root-ca.pem",
    "acme-root-ca.key",
    "acme-intermediate-ca.pem",
    "acme-intermediate-ca.key",
    "acme-internal-client-ca.pem",
    "rogue-ca.pem",
    "rogue-ca.key",
    "truststore.p12",
    "acme-client.pem",
    "acme-client.key",
    "acme-client.p12",
    "acme-client.properties",
    "client.properties",
    "acme-analytics.pem",
    "acme-analytics.key",
    "acme-analytics.p12",
    "acme-analytics.properties",
    "outsider.pem",
    "outsider.key",
    "outsider.p12",
    "outsider.properties",
    "expired.pem",
    "expired.key",
    "expired.p12",
    "expired.properties",
    "rogue.pem",
    "rogue.key",
    "rogue.p12",
    "rogue.properties",
    "revoked.pem",
    "revoked.key",
    "revoked.p12",
    "revoked.properties",
    "acme-intermediate-ca.crl.pem",
];

const PASSWORD: &str = "test-password";

fn args(out: &Path) -> PkiArgs {
    PkiArgs {
        out: out.to_owned(),
        password: Some(PASSWORD.to_owned()),
        hosts: vec!["kafka.example.test".to_owned(), "10.1.2.3".to_owned()],
        no_jks: true, // keytool costs a JVM start per keystore; jks.rs tests it
        ..PkiArgs::default()
    }
}

fn generated() -> (tempfile::TempDir, PkiReport) {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = run(&args(&dir.path().join("certs"))).expect("pki run");
    (dir, report)
}

fn pem_chain(report: &PkiReport, name: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(report.out_dir.join(name))
        .expect("open pem")
        .collect::<Result<Vec<_>, _>>()
        .expect("parse pem")
}

fn parse<'a>(der: &'a CertificateDer<'_>) -> X509Certificate<'a> {
    let (rest, cert) = X509Certificate::from_der(der.as_ref()).expect("parse x509");
    assert!(rest.is_empty(), "trailing bytes after certificate");
    cert
}

fn is_ca(cert: &X509Certificate<'_>) -> bool {
    cert.basic_constraints()
        .expect("basicConstraints parses")
        .is_some_and(|bc| bc.value.ca)
}

/// Verifies `chain[0]` as a client certificate against `anchors`, with `chain[1..]` as
/// intermediates — what the proxy's verifier does.
fn verify_client(
    chain: &[CertificateDer<'static>],
    anchors: &[CertificateDer<'static>],
    at: UnixTime,
) -> Result<(), webpki::Error> {
    let anchors: Vec<_> = anchors
        .iter()
        .map(|a| webpki::anchor_from_trusted_cert(a).expect("anchor"))
        .collect();
    let ee = webpki::EndEntityCert::try_from(&chain[0]).expect("end entity");
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        &chain[1..],
        at,
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map(|_| ())
}

#[test]
fn writes_every_file_and_only_those() {
    let (_dir, report) = generated();
    let written: Vec<String> = report
        .files
        .iter()
        .map(|f| {
            f.path
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(written, EXPECTED_FILES);
    for file in &report.files {
        assert!(file.path.is_absolute());
        let meta = fs::metadata(&file.path).expect("file exists");
        assert!(meta.len() > 0, "{} is empty", file.path.display());
    }
    assert_eq!(report.password, PASSWORD);
    assert!(!report.password_generated);
}

#[cfg(unix)]
#[test]
fn private_keys_are_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, report) = generated();
    for file in &report.files {
        let mode = fs::metadata(&file.path).expect("meta").permissions().mode() & 0o777;
        let name = file.path.to_string_lossy();
        if name.ends_with(".key") || name.ends_with(".properties") {
            assert!(file.secret, "{name} must be marked secret");
        }
        if file.secret {
            assert_eq!(mode, 0o600, "{name}");
        } else {
            assert_eq!(mode & 0o077 & !0o044, 0, "{name} is group/world writable");
        }
    }
}

#[test]
fn keys_are_pkcs8_p256() {
    let (_dir, report) = generated();
    for file in report
        .files
        .iter()
        .filter(|f| f.path.extension().is_some_and(|e| e == "key"))
    {
        let pem = fs::read_to_string(&file.path).expect("read key");
        assert!(
            pem.starts_with("-----BEGIN PRIVATE KEY-----"),
            "{}",
            file.path.display()
        );
        let key = KeyPair::from_pem(&pem).expect("key parses");
        assert_eq!(key.algorithm(), &rcgen::PKCS_ECDSA_P256_SHA256);
    }
}

#[test]
fn client_chain_verifies_to_the_bundle() {
    let (_dir, report) = generated();
    let bundle = pem_chain(&report, "acme-internal-client-ca.pem");
    assert_eq!(bundle.len(), 2, "bundle = intermediate then root");
    let (intermediate, root) = (parse(&bundle[0]), parse(&bundle[1]));
    assert_eq!(root.subject(), root.issuer(), "root is self-signed");
    assert_eq!(intermediate.issuer(), root.subject());
    assert!(is_ca(&root) && is_ca(&intermediate));
    let bc = intermediate
        .basic_constraints()
        .expect("bc")
        .expect("present");
    assert_eq!(bc.value.path_len_constraint, Some(0));

    for name in ["acme-client", "acme-analytics", "outsider"] {
        let chain = pem_chain(&report, &format!("{name}.pem"));
        assert_eq!(chain.len(), 2, "{name}.pem = leaf then intermediate");
        assert_eq!(chain[1], bundle[0]);
        let leaf = parse(&chain[0]);
        assert_eq!(leaf.issuer(), intermediate.subject());
        assert!(!is_ca(&leaf));
        let eku = leaf.extended_key_usage().expect("eku").expect("present");
        assert!(eku.value.client_auth && !eku.value.server_auth);
        // Only the root is a trust anchor; the intermediate must come from the chain.
        verify_client(&chain, &bundle[1..], UnixTime::now())
            .unwrap_or_else(|e| panic!("{name} does not verify: {e:?}"));
    }

    let client_chain = pem_chain(&report, "acme-client.pem");
    let client = parse(&client_chain[0]);
    assert_eq!(
        client.subject().to_string(),
        "C=US, O=Acme Inc, OU=payments, CN=acme-client"
    );
    let sans = client
        .subject_alternative_name()
        .expect("san")
        .expect("present");
    let sans: Vec<String> = sans
        .value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(
        sans,
        [
            "URI(spiffe://acme/payments)",
            "DNSName(acme-client.acme.internal)"
        ]
    );
}

#[test]
fn rogue_leaf_does_not_chain_to_the_real_intermediate() {
    let (_dir, report) = generated();
    let bundle = pem_chain(&report, "acme-internal-client-ca.pem");
    let rogue = pem_chain(&report, "rogue.pem");
    let rogue_ca = pem_chain(&report, "rogue-ca.pem");
    let real = pem_chain(&report, "acme-client.pem");

    // Same names everywhere: only the keys differ.
    let (rogue_leaf, real_leaf) = (parse(&rogue[0]), parse(&real[0]));
    assert_eq!(rogue_leaf.subject(), real_leaf.subject());
    assert_eq!(rogue_leaf.issuer(), real_leaf.issuer());
    assert_eq!(parse(&rogue_ca[0]).subject(), parse(&bundle[0]).subject());
    assert_ne!(
        parse(&rogue_ca[0]).public_key().raw,
        parse(&bundle[0]).public_key().raw
    );

    // With the real bundle, neither the rogue's own chain nor the real intermediate help.
    let err = verify_client(&rogue, &bundle[1..], UnixTime::now()).expect_err("rogue via its CA");
    assert!(matches!(err, webpki::Error::UnknownIssuer), "{err:?}");
    let via_real = [rogue[0].clone(), bundle[0].clone()];
    let err = verify_client(&via_real, &bundle[1..], UnixTime::now())
        .expect_err("rogue via the real intermediate");
    // The issuer name matches, so the verifier tries the real intermediate's key — and the
    // signature does not verify under it.
    assert!(
        matches!(err, webpki::Error::InvalidSignatureForPublicKey),
        "{err:?}"
    );
    // Even with the real intermediate itself as a trust anchor, the signature does not match.
    let err = verify_client(&rogue[..1], &bundle[..1], UnixTime::now())
        .expect_err("rogue against the intermediate anchor");
    assert!(
        matches!(err, webpki::Error::InvalidSignatureForPublicKey),
        "{err:?}"
    );

    // Sanity: it is a well-formed certificate that its own CA does vouch for.
    verify_client(&rogue[..1], &rogue_ca, UnixTime::now()).expect("rogue verifies to rogue-ca");
}

#[test]
fn expired_certificate_is_in_the_past() {
    let (_dir, report) = generated();
    let chain = pem_chain(&report, "expired.pem");
    let leaf = parse(&chain[0]);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    assert!(leaf.validity().not_after.timestamp() < now);
    assert!(leaf.validity().not_before.timestamp() < leaf.validity().not_after.timestamp());
    let bundle = pem_chain(&report, "acme-internal-client-ca.pem");
    let err = verify_client(&chain, &bundle[1..], UnixTime::now()).expect_err("expired");
    assert!(matches!(err, webpki::Error::CertExpired { .. }), "{err:?}");
}

#[test]
fn server_certificate_names_and_chain() {
    let (_dir, report) = generated();
    let ca = pem_chain(&report, "server-ca.pem");
    let anchors = [webpki::anchor_from_trusted_cert(&ca[0]).expect("anchor")];
    for name in ["server", "broker"] {
        let chain = pem_chain(&report, &format!("{name}.pem"));
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[1], ca[0]);
        let ee = webpki::EndEntityCert::try_from(&chain[0]).expect("ee");
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &chain[1..],
            UnixTime::now(),
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        for host in ["localhost", "127.0.0.1"] {
            let sn = rustls_pki_types::ServerName::try_from(host).expect("name");
            ee.verify_is_valid_for_subject_name(&sn)
                .unwrap_or_else(|e| panic!("{name} not valid for {host}: {e:?}"));
        }
    }
    let server = pem_chain(&report, "server.pem");
    let ee = webpki::EndEntityCert::try_from(&server[0]).expect("ee");
    for host in ["kafka.example.test", "10.1.2.3"] {
        let sn = rustls_pki_types::ServerName::try_from(host).expect("name");
        ee.verify_is_valid_for_subject_name(&sn)
            .unwrap_or_else(|e| panic!("--host {host} missing: {e:?}"));
    }

    let upstream = pem_chain(&report, "proxy-upstream-client.pem");
    verify_client(&upstream, &ca, UnixTime::now()).expect("upstream client cert verifies");
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("certs");
    let first = run(&args(&out)).expect("first run");
    let key_before = fs::read(out.join("server-ca.key")).expect("read");

    match run(&args(&out)) {
        Err(PkiError::AlreadyExists { path }) => {
            assert_eq!(path, first.out_dir.join("server-ca.pem"));
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        fs::read(out.join("server-ca.key")).expect("read"),
        key_before
    );

    // A single leftover file is enough to refuse, and it is the one named.
    fs::remove_dir_all(&out).expect("clean");
    fs::create_dir_all(&out).expect("mkdir");
    fs::write(out.join("outsider.p12"), b"keep me").expect("write");
    match run(&args(&out)) {
        Err(PkiError::AlreadyExists { path }) => assert!(path.ends_with("outsider.p12")),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(
        fs::read(out.join("outsider.p12")).expect("read"),
        b"keep me"
    );
    assert_eq!(
        fs::read_dir(&out).expect("ls").count(),
        1,
        "nothing else written"
    );

    let forced = run(&PkiArgs {
        no_jks: true,
        force: true,
        ..args(&out)
    })
    .expect("forced run");
    assert_eq!(forced.files.len(), EXPECTED_FILES.len());
    assert_ne!(
        fs::read(out.join("server-ca.key")).expect("read"),
        key_before
    );
}

#[test]
fn keystores_parse_back_with_the_password() {
    let (_dir, report) = generated();
    for spec in &CLIENTS {
        let data = fs::read(report.out_dir.join(format!("{}.p12", spec.name))).expect("read");
        let ks = KeyStore::from_pkcs12(&data, PASSWORD, Pkcs12ImportPolicy::Strict)
            .unwrap_or_else(|e| panic!("{}: {e}", spec.name));
        assert_eq!(ks.entries_len(), 1);
        let Some(KeyStoreEntry::PrivateKeyChain(chain)) = ks.entry(spec.name) else {
            panic!("{}: no private key entry under its alias", spec.name);
        };
        let pem = pem_chain(&report, &format!("{}.pem", spec.name));
        let ders: Vec<&[u8]> = chain.certs().iter().map(|c| c.as_der()).collect();
        let expected: Vec<&[u8]> = pem.iter().map(|c| c.as_ref()).collect();
        assert_eq!(ders, expected, "{}: chain = leaf then issuer", spec.name);
        let key_pem = fs::read_to_string(report.out_dir.join(format!("{}.key", spec.name)))
            .expect("read key");
        let key = KeyPair::from_pem(&key_pem).expect("key");
        assert_eq!(chain.key().as_der(), key.serialized_der());

        assert!(
            KeyStore::from_pkcs12(&data, "wrong", Pkcs12ImportPolicy::Strict).is_err(),
            "{}: wrong password accepted",
            spec.name
        );
    }

    let data = fs::read(report.out_dir.join("truststore.p12")).expect("read");
    let ks =
        KeyStore::from_pkcs12(&data, PASSWORD, Pkcs12ImportPolicy::Strict).expect("truststore");
    // Strict import keeps a certificate-only bag only when it carries the Java
    // trusted-certificate attribute, so this also proves the attribute is there.
    assert_eq!(ks.entries_len(), 1);
    let Some(KeyStoreEntry::Certificate(cert)) = ks.entry("server-ca") else {
        panic!("no trusted server-ca entry");
    };
    assert_eq!(
        cert.as_der(),
        pem_chain(&report, "server-ca.pem")[0].as_ref()
    );
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(&data, PASSWORD).expect("archive");
    assert!(archive.certs.iter().all(|c| c.trusted));
}

#[test]
fn properties_point_at_absolute_keystores() {
    let (_dir, report) = generated();
    let client = fs::read_to_string(report.out_dir.join("client.properties")).expect("read");
    let acme = fs::read_to_string(report.out_dir.join("acme-client.properties")).expect("read");
    assert_eq!(client, acme);
    for spec in &CLIENTS {
        let text = fs::read_to_string(report.out_dir.join(format!("{}.properties", spec.name)))
            .expect("read");
        let value = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .unwrap_or_else(|| panic!("{}: {key} missing", spec.name))
                .to_owned()
        };
        assert_eq!(value("security.protocol"), "SSL");
        assert_eq!(value("ssl.keystore.type"), "PKCS12");
        assert_eq!(value("ssl.truststore.type"), "PKCS12");
        for key in [
            "ssl.keystore.password",
            "ssl.key.password",
            "ssl.truststore.password",
        ] {
            assert_eq!(value(key), PASSWORD);
        }
        let keystore = PathBuf::from(value("ssl.keystore.location"));
        assert!(keystore.is_absolute() && keystore.is_file());
        assert!(keystore.ends_with(format!("{}.p12", spec.name)));
        let truststore = PathBuf::from(value("ssl.truststore.location"));
        assert!(truststore.is_absolute() && truststore.is_file());
        assert!(text.starts_with('#') && text.contains(spec.intent));
    }
}

#[test]
fn generated_password_and_argument_checks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = run(&PkiArgs {
        no_jks: true,
        out: dir.path().to_owned(),
        ..PkiArgs::default()
    })
    .expect("run");
    assert!(report.password_generated);
    assert_eq!(report.password.len(), GENERATED_PASSWORD_LEN);
    assert!(report.password.chars().all(|c| c.is_ascii_alphanumeric()));
    assert!(report.to_string().contains(&report.password));

    let bad = |args: PkiArgs| run(&args).expect_err("must be refused");
    let out = dir.path().join("other");
    assert!(matches!(
        bad(PkiArgs {
            no_jks: true,
            out: out.clone(),
            validity_days: 0,
            ..PkiArgs::default()
        }),
        PkiError::InvalidValidity(0)
    ));
    assert!(matches!(
        bad(PkiArgs {
            no_jks: true,
            out: out.clone(),
            password: Some(String::new()),
            ..PkiArgs::default()
        }),
        PkiError::EmptyPassword
    ));
    assert!(matches!(
        bad(PkiArgs {
            no_jks: true,
            out: out.clone(),
            hosts: vec!["bücher.example".into()],
            ..PkiArgs::default()
        }),
        PkiError::InvalidHost { .. }
    ));
    assert!(matches!(
        bad(PkiArgs {
            no_jks: true,
            out: out.clone(),
            hosts: vec!["two words".into()],
            ..PkiArgs::default()
        }),
        PkiError::InvalidHost { .. }
    ));
    for wildcard in ["broker-*.kafka.test", "*.*.kafka.test", "*"] {
        assert!(
            matches!(
                bad(PkiArgs {
                    no_jks: true,
                    out: out.clone(),
                    hosts: vec![wildcard.into()],
                    ..PkiArgs::default()
                }),
                PkiError::InvalidHost { .. }
            ),
            "{wildcard}"
        );
    }
    assert!(
        !out.exists(),
        "argument errors are reported before anything is created"
    );
}

/// Writes a PKI for inspection by hand:
/// `PKI_OUT=/tmp/pki cargo test --bin kafka-mtls-proxy tools::pki::tests::write_for_inspection -- --ignored --nocapture`
#[test]
#[ignore = "writes into $PKI_OUT for manual keytool/openssl checks"]
fn write_for_inspection() {
    let out =
        std::env::var_os("PKI_OUT").map_or_else(|| PathBuf::from("/tmp/pki-dev"), PathBuf::from);
    let report = run(&PkiArgs {
        no_jks: true,
        out,
        force: true,
        ..PkiArgs::default()
    })
    .expect("run");
    println!("{report}");
}
