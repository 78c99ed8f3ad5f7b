//! Behaviour of filters, resolution and the cache against real (rcgen) certificates.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::*;
use crate::identity::test_certs::{self, der};
use crate::identity::{CertIdentity, IdentityError};

/// CN=payments-svc, OU=payments (first) and OU=platform, O=Acme, Inc., C=US, DC=acme,DC=com,
/// emailAddress; SANs: URI, DNS, IP; serial 0ABC; issued by CN=Acme Issuing CA,O=Acme.
fn payments_der() -> Vec<u8> {
    let subject = der::name(&[
        &[(der::OID_DC, der::ia5("com"))],
        &[(der::OID_DC, der::ia5("acme"))],
        &[(der::OID_C, der::tlv(0x13, b"US"))],
        &[(der::OID_O, der::utf8("Acme, Inc."))],
        &[(der::OID_OU, der::utf8("platform"))],
        &[(der::OID_OU, der::utf8("payments"))],
        &[(der::OID_EMAIL, der::ia5("ops@acme.com"))],
        &[(der::OID_CN, der::utf8("payments-svc"))],
    ]);
    let san = der::tlv(
        0x30,
        &[
            der::tlv(0x86, b"spiffe://acme/payments"),
            der::tlv(0x82, b"payments.acme.com"),
            der::tlv(0x87, &[10, 0, 0, 7]),
        ]
        .concat(),
    );
    let issuer = der::name(&[
        &[(der::OID_O, der::utf8("Acme"))],
        &[(der::OID_CN, der::utf8("Acme Issuing CA"))],
    ]);
    let leaf = test_certs::with_subject_and_san(&subject, Some(&san), &[0x0a, 0xbc]);
    test_certs::replace_name(&leaf, test_certs::ISSUER_INDEX, &issuer)
}

fn payments() -> CertIdentity {
    CertIdentity::from_der(&payments_der()).unwrap()
}

/// A certificate with only a CN.
fn bare(cn: &str) -> CertIdentity {
    let subject = der::name(&[&[(der::OID_CN, der::utf8(cn))]]);
    CertIdentity::from_der(&test_certs::with_subject_and_san(&subject, None, &[1])).unwrap()
}

fn outcome(identity: &CertIdentity, source: &str) -> FilterOutcome {
    let filter = Filter::compile(source).unwrap_or_else(|e| panic!("{source}: {e}"));
    filter.evaluate(&Attributes::new(identity))
}

fn matches(source: &str) -> bool {
    match outcome(&payments(), source) {
        FilterOutcome::Match => true,
        FilterOutcome::NoMatch => false,
        other => panic!("{source}: unexpected {other:?}"),
    }
}

fn pool(id: &str, external_identifier: ExternalIdentifier, filter: &str) -> Pool {
    Pool {
        id: id.to_owned(),
        display_name: format!("{id} pool"),
        description: String::new(),
        external_identifier,
        filter: Filter::compile(filter).unwrap(),
        priority: 0,
        acls: Vec::new(),
    }
}

fn ca(ca_id: &str, pools: Vec<Pool>) -> CaPools {
    CaPools {
        ca_id: ca_id.to_owned(),
        pools,
    }
}

fn resolve(cas: &[&CaPools], identity: &CertIdentity) -> Evaluation {
    evaluate(cas, identity, &Attributes::new(identity))
}

// ---- operators ------------------------------------------------------------------------------

#[test]
fn each_operator_matches_and_does_not_match() {
    let table = [
        (r#"CN == "payments-svc""#, true),
        (r#"CN == "PAYMENTS-SVC""#, false),
        (r#"CN != "orders-svc""#, true),
        (r#"CN != "payments-svc""#, false),
        (r#"OU in ["billing", "payments"]"#, true),
        (r#"OU in ["platform"]"#, false),
        (r#"SAN.startsWith("spiffe://acme/")"#, true),
        (r#"SAN.startsWith("payments.acme.com")"#, false),
        (r#"DN.endsWith(",DC=acme,DC=com")"#, true),
        (r#"DN.endsWith(",DC=acme")"#, false),
        (r#"SAN.contains("payments.acme.com")"#, true),
        (r#"SAN.contains("orders")"#, false),
        (r#"!(CN == "orders-svc")"#, true),
        (r#"!(CN == "payments-svc")"#, false),
        (r#"CN == "payments-svc" && O == "Acme, Inc.""#, true),
        (r#"CN == "payments-svc" && O == "Acme""#, false),
        (r#"CN == "orders-svc" || C == "US""#, true),
        (r#"CN == "orders-svc" || C == "DE""#, false),
        ("true", true),
        ("false", false),
    ];
    for (source, expected) in table {
        assert_eq!(matches(source), expected, "{source}");
    }
}

#[test]
fn and_binds_tighter_than_or_and_parentheses_override_it() {
    assert!(matches(
        r#"CN == "payments-svc" || CN == "x" && O == "nope""#
    ));
    assert!(!matches(
        r#"(CN == "payments-svc" || CN == "x") && O == "nope""#
    ));
}

#[test]
fn not_binds_tighter_than_and() {
    // `!a && false` is `(!a) && false`, not `!(a && false)`.
    assert!(!matches(r#"!CN.startsWith("x") && false"#));
    assert!(matches(r#"!(CN.startsWith("x") && false)"#));
}

#[test]
fn identifiers_are_case_sensitive_strings() {
    assert!(matches(r#"emailAddress == "ops@acme.com""#));
    assert!(matches(r#"SERIAL == "0ABC""#));
    assert!(matches(r#"DC == "acme""#));
    assert!(matches(
        r#"DN == "CN=payments-svc,1.2.840.113549.1.9.1=#160c6f70734061636d652e636f6d,OU=payments,OU=platform,O=Acme\\, Inc.,C=US,DC=acme,DC=com""#
    ));
    assert!(matches(r#"ISSUER == "CN=Acme Issuing CA,O=Acme""#));
    assert!(matches(r#"SHA256 == cert.sha256 && SHA1 == cert.sha1"#));
}

#[test]
fn an_absent_attribute_is_the_empty_string_and_an_empty_list() {
    assert!(matches(r#"L == """#));
    assert!(!matches(r#"L == "Berlin""#));
    assert!(!matches(r#""Berlin" in cert.subject.L"#));
    assert!(matches(r#"size(cert.subject.L) == 0"#));
}

// ---- the interpreter path ---------------------------------------------------------------------

#[test]
fn multi_valued_attributes_are_reachable_through_cert() {
    assert!(matches(r#""platform" in cert.subject.OU"#));
    assert!(matches(r#""payments" in cert.subject.OU"#));
    assert!(!matches(r#""billing" in cert.subject.OU"#));
    assert!(matches(r#"cert.subject.DC == ["acme", "com"]"#));
    assert!(matches(
        r#"cert.san.uri.exists(u, u.startsWith("spiffe://acme/"))"#
    ));
    assert!(!matches(
        r#"cert.san.uri.exists(u, u.startsWith("spiffe://other/"))"#
    ));
    assert!(matches(r#""10.0.0.7" in cert.san.ip"#));
    assert!(matches(r#"cert.san.dns.all(d, d.endsWith(".acme.com"))"#));
    assert!(matches(r#"cert.issuer.CN == ["Acme Issuing CA"]"#));
    assert!(matches(r#"cert.issuer.OU == []"#));
    assert!(matches(r#"DN.matches("^CN=payments-[a-z]+,")"#));
    assert!(matches(r#"cert.not_before < cert.not_after"#));
    assert!(matches(r#"cert.serial == SERIAL && cert.dn == DN"#));
    assert!(matches(r#"cert["san"]["all"].size() == 3"#));
}

#[test]
fn the_interpreter_is_used_only_outside_the_confluent_subset() {
    assert!(
        !Filter::compile(r#"CN == "a" && OU in ["b"]"#)
            .unwrap()
            .uses_interpreter()
    );
    assert!(
        Filter::compile(r#""b" in cert.subject.OU"#)
            .unwrap()
            .uses_interpreter()
    );
}

#[test]
fn a_runtime_error_is_an_error_outcome_not_a_panic() {
    let result = outcome(&payments(), r#"DN.matches("[")"#);
    let FilterOutcome::Error(message) = result else {
        panic!("expected an error, got {result:?}");
    };
    assert!(message.contains("regex"), "{message}");

    // Indexing past the end of an (empty) attribute list.
    let result = outcome(&payments(), r#"cert.subject.L[0] == "x""#);
    assert!(matches!(result, FilterOutcome::Error(_)), "{result:?}");
    assert!(!result.is_match());
}

#[test]
fn a_non_bool_result_at_run_time_is_an_error_outcome() {
    // `dyn()` hides the type from the compile-time check.
    assert_eq!(
        outcome(&payments(), "dyn(CN)"),
        FilterOutcome::Error("the filter evaluated to string, not to true or false".to_owned())
    );
}

#[test]
fn a_runtime_error_is_logged_with_the_pool_and_other_pools_still_match() {
    let logs = Arc::new(Mutex::new(Vec::new()));
    let writer = CapturedLogs(Arc::clone(&logs));
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let cas = ca(
        "ca",
        vec![
            pool("broken", ExternalIdentifier::Cn, r#"DN.matches("(")"#),
            pool("good", ExternalIdentifier::Sha1, r#"CN == "payments-svc""#),
        ],
    );
    let evaluation =
        tracing::subscriber::with_default(subscriber, || resolve(&[&cas], &payments()));
    assert_eq!(evaluation.resolution.pool_ids(), ["good"]);
    assert!(matches!(
        evaluation.results[0].outcome,
        FilterOutcome::Error(_)
    ));
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("WARN"), "{logs}");
    assert!(logs.contains("pool=broken"), "{logs}");
    assert_eq!(logs.matches("WARN").count(), 1, "{logs}");
}

#[derive(Clone)]
struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn fast_only_evaluation_never_builds_the_interpreter_context() {
    let identity = payments();
    let attrs = Attributes::new(&identity);
    let cas = ca(
        "ca",
        vec![pool("a", ExternalIdentifier::Cn, r#"CN == "payments-svc""#)],
    );
    evaluate(&[&cas], &identity, &attrs);
    assert!(!attrs.cel_variables_built());
    let cas = ca(
        "ca",
        vec![pool(
            "b",
            ExternalIdentifier::Cn,
            r#""payments" in cert.subject.OU"#,
        )],
    );
    evaluate(&[&cas], &identity, &attrs);
    assert!(attrs.cel_variables_built());
}

// ---- compile errors --------------------------------------------------------------------------

#[test]
fn an_empty_filter_never_matches() {
    for source in ["", "   ", "\n\t "] {
        let filter = Filter::compile(source).unwrap();
        assert!(filter.is_empty());
        assert_eq!(
            filter.evaluate(&Attributes::new(&payments())),
            FilterOutcome::Empty
        );
    }
    let cas = ca("ca", vec![pool("empty", ExternalIdentifier::Cn, "")]);
    let evaluation = resolve(&[&cas], &payments());
    assert!(!evaluation.resolution.is_admitted());
    assert_eq!(evaluation.results[0].outcome, FilterOutcome::Empty);
}

#[test]
fn a_syntax_error_reports_line_and_column() {
    let error = Filter::compile("CN == \"a\" &&\n  (OU = \"b\")").unwrap_err();
    let FilterError::Syntax { line, column, .. } = &error else {
        panic!("expected a syntax error, got {error:?}");
    };
    assert_eq!((*line, *column), (2, 7));
    assert!(
        error
            .to_string()
            .starts_with("syntax error at line 2, column 7: token recognition error"),
        "{error}"
    );
    let error = Filter::compile(r#"CN == "#).unwrap_err();
    assert!(
        matches!(
            error,
            FilterError::Syntax {
                line: 1,
                column: 7,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let source = format!("{}CN == \"x\"{}", "(".repeat(500), ")".repeat(500));
    assert_eq!(
        Filter::compile(&source).unwrap_err(),
        FilterError::TooDeep { limit: 96 }
    );
    // The deepest filters that do compile evaluate on an ordinary (2 MiB test) thread stack,
    // on both paths.
    for inner in [r#"CN == "x""#, r#""x" in cert.subject.OU"#] {
        let source = format!("{}{inner}{}", "!(".repeat(45), ")".repeat(45));
        let filter = Filter::compile(&source).unwrap();
        assert_eq!(
            filter.evaluate(&Attributes::new(&payments())),
            FilterOutcome::Match,
            "{inner}"
        );
    }
}

#[test]
fn an_unknown_identifier_is_rejected_with_the_known_ones() {
    let error = Filter::compile(r#"O == "Acme" && XX == "x""#).unwrap_err();
    assert_eq!(
        error.to_string(),
        "unknown identifier `XX` at line 1, column 16; known: CN, OU, O, L, ST, C, DC, STREET, \
         UID, SERIALNUMBER, emailAddress, DN, ISSUER, SAN, SERIAL, SHA1, SHA256, cert"
    );
}

#[test]
fn a_wrongly_cased_identifier_gets_a_suggestion() {
    let error = Filter::compile(r#"cn == "x""#).unwrap_err();
    assert!(error.to_string().contains("did you mean `CN`?"), "{error}");
}

#[test]
fn comprehension_variables_are_known_only_inside_their_comprehension() {
    Filter::compile(r#"cert.san.uri.exists(u, u.startsWith("spiffe://"))"#).unwrap();
    let error =
        Filter::compile(r#"cert.san.uri.exists(u, u.startsWith("x")) && u == "y""#).unwrap_err();
    assert!(
        matches!(&error, FilterError::UnknownIdentifier { name, .. } if name == "u"),
        "{error:?}"
    );
}

#[test]
fn an_unknown_field_of_cert_is_rejected() {
    let error = Filter::compile(r#""x" in cert.subject.ou"#).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("unknown field `ou` of `cert.subject` at line 1, column"),
        "{error}"
    );
    let error = Filter::compile(r#"cert.sans.size() > 0"#).unwrap_err();
    assert!(
        matches!(error, FilterError::UnknownField { .. }),
        "{error:?}"
    );
    let error = Filter::compile(r#"cert.san.url.size() > 0"#).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("known: dns, uri, email, ip, all"),
        "{error}"
    );
}

#[test]
fn a_filter_that_is_not_a_condition_is_rejected() {
    for (source, found) in [("CN", "string"), ("size(CN)", "int"), (r#"["a"]"#, "list")] {
        assert_eq!(
            Filter::compile(source).unwrap_err(),
            FilterError::NotBool { found },
            "{source}"
        );
    }
}

#[test]
fn obvious_type_errors_are_rejected_with_a_position() {
    for (source, needle) in [
        (
            r#""x" in CN"#,
            "`in` needs a list or a map on its right, found a string",
        ),
        (
            r#"CN && true"#,
            "expected a condition (bool), but `CN` is a string",
        ),
        (
            r#"!CN"#,
            "expected a condition (bool), but `CN` is a string",
        ),
        (
            r#"cert.san.uri.startsWith("x")"#,
            "applies to strings, but `cert.san.uri` is a list",
        ),
        (r#"CN.startsWith(1)"#, "takes a string, found a int"),
        (r#"CN.startswith("a")"#, "did you mean `startsWith`?"),
        (
            r#"CN.foo == "x""#,
            "`CN` is a string and has no field `foo`",
        ),
    ] {
        let error = Filter::compile(source).unwrap_err();
        assert!(
            matches!(error, FilterError::Type { .. }),
            "{source}: {error:?}"
        );
        assert!(error.to_string().contains(needle), "{source}: {error}");
    }
}

// ---- the differential test --------------------------------------------------------------------

/// Every fast-path construct, on certificates that make it both true and false: the fast path
/// and the interpreter must agree on every one.
#[test]
fn fast_path_and_interpreter_agree() {
    let filters = [
        r#"CN == "payments-svc""#,
        r#"CN == "payments""#,
        r#"CN != "payments-svc""#,
        r#""payments-svc" == CN"#,
        r#"CN == OU"#,
        r#"cert.dn == DN"#,
        r#"cert.not_before != cert.not_after"#,
        r#"OU in ["payments", "billing"]"#,
        r#"OU in []"#,
        r#"L in [""]"#,
        r#"CN in ["payments-svc"] && !(OU in ["x"])"#,
        r#"SAN.startsWith("spiffe://")"#,
        r#"SAN.startsWith("")"#,
        r#"DN.endsWith("DC=com")"#,
        r#"SAN.contains("acme")"#,
        r#"SAN.contains("ä")"#,
        r#"CN.contains("ü")"#,
        r#""abc".contains("b")"#,
        r#"ISSUER.startsWith("CN=") || SERIAL == "01""#,
        r#"!(CN == "a") && (O == "Acme, Inc." || true) && !false"#,
        r#"CN == "a" || CN == "b" || CN == "payments-svc""#,
        r#"emailAddress.endsWith("@acme.com") && C == "US" && DC == "acme""#,
        r#"SHA1 != "" && SHA256 != SHA1 && SERIALNUMBER == """#,
        r#"true && !true"#,
        r#"(STREET == "" || UID == "x") && ST == """#,
    ];
    let identities = [payments(), bare("payments"), bare("Jürgen ü"), bare("")];
    for source in filters {
        let filter = Filter::compile(source).unwrap_or_else(|e| panic!("{source}: {e}"));
        assert!(
            !filter.uses_interpreter(),
            "{source} should be on the fast path"
        );
        for identity in &identities {
            let attrs = Attributes::new(identity);
            let fast = filter.evaluate(&attrs);
            let interpreted = filter.evaluate_interpreted(&attrs);
            assert_eq!(
                fast, interpreted,
                "{source} on {}",
                identity.subject.rfc4514
            );
            assert!(
                matches!(fast, FilterOutcome::Match | FilterOutcome::NoMatch),
                "{source}: {fast:?}"
            );
        }
    }
}

// ---- resolution -------------------------------------------------------------------------------

#[test]
fn all_matching_pools_are_united_and_the_highest_priority_identifier_wins() {
    let cas = ca(
        "corp",
        vec![
            pool("by-sha1", ExternalIdentifier::Sha1, r#"O == "Acme, Inc.""#),
            pool("no", ExternalIdentifier::Dn, r#"CN == "orders""#),
            pool("by-cn", ExternalIdentifier::Cn, r#"CN == "payments-svc""#),
        ],
    );
    let evaluation = resolve(&[&cas], &payments());
    let resolution = &evaluation.resolution;
    assert!(resolution.is_admitted());
    assert_eq!(resolution.pool_ids(), ["by-sha1", "by-cn"]);
    assert_eq!(resolution.principals, ["User:by-sha1", "User:by-cn"]);
    assert_eq!(
        resolution.identifier,
        Some(CertIdentifier {
            kind: ExternalIdentifier::Cn,
            value: "payments-svc".to_owned()
        })
    );
    assert_eq!(evaluation.results.len(), 3);
    assert_eq!(evaluation.results[1].outcome, FilterOutcome::NoMatch);
}

#[test]
fn identifier_priority_is_cn_dn_serial_san_sha1() {
    use ExternalIdentifier::*;
    let identity = payments();
    let cases = [
        (vec![Sha1, Dn, Serial], Dn, identity.subject.rfc4514.clone()),
        (vec![Sha1, Serial], Serial, "0ABC".to_owned()),
        (vec![Sha1, San], San, identity.san.joined()),
        (vec![Sha1], Sha1, identity.sha1.clone()),
        (vec![San, Cn, Dn], Cn, "payments-svc".to_owned()),
    ];
    for (kinds, expected, value) in cases {
        let pools = kinds
            .iter()
            .enumerate()
            .map(|(i, kind)| pool(&format!("p{i}"), *kind, "true"))
            .collect();
        let cas = ca("ca", pools);
        let resolution = resolve(&[&cas], &identity).resolution;
        assert_eq!(
            resolution.identifier,
            Some(CertIdentifier {
                kind: expected,
                value
            }),
            "{kinds:?}"
        );
    }
}

#[test]
fn only_matched_pools_take_part_in_identifier_priority() {
    let cas = ca(
        "ca",
        vec![
            pool("cn-but-no-match", ExternalIdentifier::Cn, "false"),
            pool("serial", ExternalIdentifier::Serial, "true"),
        ],
    );
    let identifier = resolve(&[&cas], &payments()).resolution.identifier.unwrap();
    assert_eq!(identifier.kind, ExternalIdentifier::Serial);
}

#[test]
fn identifiers_are_cut_to_255_characters_on_a_char_boundary() {
    let long_cn = "ü".repeat(300);
    let identity = bare(&long_cn);
    for kind in [ExternalIdentifier::Cn, ExternalIdentifier::Dn] {
        let cas = ca("ca", vec![pool("p", kind, "true")]);
        let value = resolve(&[&cas], &identity)
            .resolution
            .identifier
            .unwrap()
            .value;
        assert_eq!(value.chars().count(), 255, "{kind}");
        assert!(
            long_cn.starts_with(&value) || value.starts_with("CN="),
            "{kind}"
        );
    }
    // The DN in the certificate and in filters stays whole.
    assert_eq!(identity.subject.rfc4514.chars().count(), 303);
    assert!(matches!(
        outcome(&identity, &format!(r#"DN == "CN={long_cn}""#)),
        FilterOutcome::Match
    ));
}

#[test]
fn a_long_san_identifier_is_cut_too() {
    let long_uri = format!("spiffe://acme/{}", "x".repeat(400));
    let subject = der::name(&[&[(der::OID_CN, der::utf8("c"))]]);
    let san = der::tlv(0x30, &der::tlv(0x86, long_uri.as_bytes()));
    let identity = CertIdentity::from_der(&test_certs::with_subject_and_san(
        &subject,
        Some(&san),
        &[1],
    ))
    .unwrap();
    let cas = ca("ca", vec![pool("p", ExternalIdentifier::San, "true")]);
    let value = resolve(&[&cas], &identity)
        .resolution
        .identifier
        .unwrap()
        .value;
    assert_eq!(value, long_uri[..255]);
}

#[test]
fn pools_of_every_verifying_ca_are_evaluated() {
    let corp = ca(
        "corp",
        vec![pool(
            "corp-payments",
            ExternalIdentifier::Cn,
            r#"OU == "payments""#,
        )],
    );
    let partner = ca(
        "partner",
        vec![
            pool("partner-all", ExternalIdentifier::Dn, r#"C == "US""#),
            pool("partner-none", ExternalIdentifier::Dn, r#"C == "DE""#),
        ],
    );
    let evaluation = resolve(&[&corp, &partner], &payments());
    assert_eq!(
        evaluation.resolution.matched,
        [
            MatchedPool {
                ca_id: "corp".to_owned(),
                pool_id: "corp-payments".to_owned(),
                priority: 0,
            },
            MatchedPool {
                ca_id: "partner".to_owned(),
                pool_id: "partner-all".to_owned(),
                priority: 0,
            },
        ]
    );
    let cas: Vec<&str> = evaluation
        .results
        .iter()
        .map(|r| r.ca_id.as_str())
        .collect();
    assert_eq!(cas, ["corp", "partner", "partner"]);
}

#[test]
fn the_same_pool_id_under_two_cas_gives_one_principal() {
    let a = ca("a", vec![pool("shared", ExternalIdentifier::Cn, "true")]);
    let b = ca("b", vec![pool("shared", ExternalIdentifier::Cn, "true")]);
    let resolution = resolve(&[&a, &b], &payments()).resolution;
    assert_eq!(resolution.principals, ["User:shared"]);
    assert_eq!(resolution.pool_ids(), ["shared", "shared"]);
}

#[test]
fn no_match_means_no_principal_and_no_identifier() {
    let cas = ca(
        "ca",
        vec![pool("p", ExternalIdentifier::Cn, r#"CN == "x""#)],
    );
    let resolution = resolve(&[&cas], &payments()).resolution;
    assert!(!resolution.is_admitted());
    assert!(resolution.principals.is_empty());
    assert_eq!(resolution.identifier, None);
    assert!(!resolve(&[], &payments()).resolution.is_admitted());
}

#[test]
fn pool_results_serialize_outcomes_as_documented() {
    let cas = ca(
        "ca",
        vec![
            pool("m", ExternalIdentifier::Cn, "true"),
            pool("n", ExternalIdentifier::Cn, "false"),
            pool("e", ExternalIdentifier::Cn, ""),
            pool("x", ExternalIdentifier::Cn, r#"DN.matches("(")"#),
        ],
    );
    let json = serde_json::to_value(resolve(&[&cas], &payments())).unwrap();
    let outcomes = &json["results"];
    assert_eq!(outcomes[0]["outcome"], "match");
    assert_eq!(outcomes[1]["outcome"], "no_match");
    assert_eq!(outcomes[2]["outcome"], "empty");
    assert!(outcomes[3]["outcome"]["error"].is_string());
    assert_eq!(outcomes[0]["filter"], "true");
    assert_eq!(json["resolution"]["identifier"]["type"], "CN");
    assert_eq!(json["resolution"]["principals"][0], "User:m");
}

// ---- the cache --------------------------------------------------------------------------------

fn resolved(der: &[u8], cas: &[&CaPools]) -> Result<Arc<Resolved>, IdentityError> {
    let identity = CertIdentity::from_der(der)?;
    let attrs = Attributes::new(&identity);
    let evaluation = evaluate(cas, &identity, &attrs);
    Ok(Arc::new(Resolved {
        identity,
        evaluation,
        crl_urls: Vec::new(),
    }))
}

#[test]
fn a_cache_hit_returns_the_same_arc_without_resolving_again() {
    let cache = ResolutionCache::new(10);
    let der = payments_der();
    let cas = ca("ca", vec![pool("p", ExternalIdentifier::Cn, "true")]);
    let calls = AtomicUsize::new(0);
    let get = || {
        cache
            .get_or_resolve(&der, &[&cas], || {
                calls.fetch_add(1, Ordering::Relaxed);
                resolved(&der, &[&cas])
            })
            .unwrap()
    };
    let first = get();
    let second = get();
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    assert_eq!(cache.len(), 1);
}

#[test]
fn a_different_set_of_verifying_cas_is_a_different_entry() {
    let cache = ResolutionCache::new(10);
    let der = payments_der();
    let a = ca("a", vec![pool("p", ExternalIdentifier::Cn, "true")]);
    let b = ca("b", vec![pool("q", ExternalIdentifier::Cn, "true")]);
    let via_a = cache
        .get_or_resolve(&der, &[&a], || resolved(&der, &[&a]))
        .unwrap();
    let via_ab = cache
        .get_or_resolve(&der, &[&a, &b], || resolved(&der, &[&a, &b]))
        .unwrap();
    assert!(!Arc::ptr_eq(&via_a, &via_ab));
    assert_eq!(
        via_ab.evaluation.resolution.principals,
        ["User:p", "User:q"]
    );
    assert_eq!(cache.len(), 2);
}

#[test]
fn the_cache_never_grows_beyond_its_capacity() {
    let cache = ResolutionCache::new(3);
    let cas = ca("ca", vec![pool("p", ExternalIdentifier::Cn, "true")]);
    let ders: Vec<Vec<u8>> = (0..8).map(|i| bare_der(&format!("c{i}"))).collect();
    for der in &ders {
        cache
            .get_or_resolve(der, &[&cas], || resolved(der, &[&cas]))
            .unwrap();
        assert!(cache.len() <= 3);
    }
    assert_eq!(cache.len(), 3);
}

#[test]
fn recently_read_entries_survive_eviction() {
    let cache = ResolutionCache::new(2);
    let cas = ca("ca", vec![pool("p", ExternalIdentifier::Cn, "true")]);
    let [hot, cold, new] = ["hot", "cold", "new"].map(bare_der);
    let get = |der: &[u8]| {
        cache
            .get_or_resolve(der, &[&cas], || resolved(der, &[&cas]))
            .unwrap()
    };
    let hot_first = get(&hot);
    get(&cold);
    get(&hot); // a hit: `hot` gets its second chance
    get(&new); // evicts `cold`, not `hot`
    assert!(Arc::ptr_eq(&hot_first, &get(&hot)));
    assert_eq!(cache.len(), 2);
}

#[test]
fn errors_are_not_cached_and_capacity_zero_caches_nothing() {
    let cache = ResolutionCache::new(4);
    let error = cache
        .get_or_resolve(b"junk", &[], || resolved(b"junk", &[]))
        .unwrap_err();
    assert!(matches!(error, IdentityError::NotACertificate(_)));
    assert!(cache.is_empty());

    let disabled = ResolutionCache::new(0);
    let der = payments_der();
    disabled
        .get_or_resolve(&der, &[], || resolved(&der, &[]))
        .unwrap();
    assert!(disabled.is_empty());
    assert_eq!(
        ResolutionCache::default().capacity(),
        DEFAULT_CACHE_CAPACITY
    );
}

#[test]
fn clear_empties_the_cache() {
    let cache = ResolutionCache::new(4);
    let der = payments_der();
    cache
        .get_or_resolve(&der, &[], || resolved(&der, &[]))
        .unwrap();
    cache.clear();
    assert!(cache.is_empty());
}

fn bare_der(cn: &str) -> Vec<u8> {
    let subject = der::name(&[&[(der::OID_CN, der::utf8(cn))]]);
    test_certs::with_subject_and_san(&subject, None, &[1])
}

#[test]
fn shared_types_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Filter>();
    assert_send_sync::<Pool>();
    assert_send_sync::<ResolutionCache>();
    assert_send_sync::<Resolved>();
}

#[test]
fn the_primary_pool_is_the_highest_priority_then_the_smallest_id() {
    let mut low = pool("a-low", ExternalIdentifier::Cn, r#"C == "US""#);
    low.priority = -1;
    let zulu = pool("zulu", ExternalIdentifier::Cn, r#"C == "US""#);
    let bravo = pool("bravo", ExternalIdentifier::Cn, r#"C == "US""#);
    let corp = ca("corp", vec![low, zulu.clone(), bravo]);
    let evaluation = resolve(&[&corp], &payments());
    assert_eq!(evaluation.resolution.matched.len(), 3);
    // Equal priorities: the smallest id; a negative priority loses to the default 0.
    assert_eq!(evaluation.resolution.primary().unwrap().pool_id, "bravo");

    let mut high = zulu;
    high.priority = 10;
    let corp = ca(
        "corp",
        vec![pool("bravo", ExternalIdentifier::Cn, r#"C == "US""#), high],
    );
    let evaluation = resolve(&[&corp], &payments());
    assert_eq!(evaluation.resolution.primary().unwrap().pool_id, "zulu");
    // The one principal records name is the primary pool's, wherever it stands in match order.
    assert_eq!(
        evaluation.resolution.primary_principal().as_deref(),
        Some("User:zulu")
    );
    // Match order (and so the principals' order) is unchanged by priority.
    assert_eq!(evaluation.resolution.pool_ids(), ["bravo", "zulu"]);
    assert_eq!(
        evaluation.resolution.principals,
        ["User:bravo", "User:zulu"]
    );
}
