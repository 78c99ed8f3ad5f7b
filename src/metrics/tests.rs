//! The exposition as Prometheus scrapes it: names, labels and values.

use super::*;
use crate::kafka::ApiKey;

/// The value of the sample `series` (name and label set exactly as encoded), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.split(' ').next()?.parse().ok()
    })
}

#[test]
fn metrics_are_send_and_sync() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Metrics>();
    shareable::<OpenConnection>();
}

#[test]
fn a_fresh_registry_lists_both_byte_directions_at_zero_and_ends_with_eof() {
    let text = Metrics::new().encode();
    for direction in ["client_to_upstream", "upstream_to_client"] {
        let series = format!("kafka_mtls_proxy_bytes_total{{direction=\"{direction}\"}}");
        assert_eq!(sample(&text, &series), Some(0.0), "{text}");
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn connections_count_up_and_the_guard_closes_them() {
    let m = Metrics::new();
    let a = m.connection_opened(Target::Bootstrap);
    let b = m.connection_opened(Target::Node(2));
    let _c = m.connection_opened(Target::Node(2));
    drop(a);
    drop(b);
    let text = m.encode();
    let total = |l: &str| {
        sample(
            &text,
            &format!("kafka_mtls_proxy_connections_total{{listener=\"{l}\"}}"),
        )
    };
    let active = |l: &str| {
        sample(
            &text,
            &format!("kafka_mtls_proxy_connections_active{{listener=\"{l}\"}}"),
        )
    };
    assert_eq!(total("bootstrap"), Some(1.0), "{text}");
    assert_eq!(total("broker-2"), Some(2.0), "{text}");
    assert_eq!(active("bootstrap"), Some(0.0), "{text}");
    assert_eq!(active("broker-2"), Some(1.0), "{text}");
}

#[test]
fn handshakes_carry_result_and_reason() {
    let m = Metrics::new();
    m.handshake_admitted();
    m.handshake_admitted();
    m.handshake_refused(RefusalReason::NoPoolMatched);
    let text = m.encode();
    assert_eq!(
        sample(
            &text,
            "kafka_mtls_proxy_handshakes_total{result=\"success\",reason=\"\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "kafka_mtls_proxy_handshakes_total{result=\"refused\",reason=\"no_pool_matched\"}"
        ),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn label_values_are_escaped() {
    let m = Metrics::new();
    m.pool_matched("odd\"pool\\with\nnewline");
    let text = m.encode();
    assert_eq!(
        sample(
            &text,
            r#"kafka_mtls_proxy_pool_matches_total{pool="odd\"pool\\with\nnewline"}"#
        ),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn requests_are_labelled_by_api_name_and_observed_in_every_bucket() {
    let m = Metrics::new();
    m.request(ApiKey(0), Duration::from_millis(3));
    m.request(ApiKey(0), Duration::from_secs(60));
    m.request(ApiKey(1), Duration::from_millis(600));
    let text = m.encode();
    assert_eq!(
        sample(
            &text,
            "kafka_mtls_proxy_requests_total{api_key=\"Produce\"}"
        ),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "kafka_mtls_proxy_requests_total{api_key=\"Fetch\"}"),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains("# TYPE kafka_mtls_proxy_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains("# UNIT kafka_mtls_proxy_request_duration_seconds seconds"),
        "{text}"
    );
    let produce_buckets: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with("kafka_mtls_proxy_request_duration_seconds_bucket{")
                && l.contains("api_key=\"Produce\"")
        })
        .collect();
    // Every configured bound, plus +Inf.
    assert_eq!(
        produce_buckets.len(),
        REQUEST_DURATION_BUCKETS.len() + 1,
        "{text}"
    );
    let bucket = |le: &str| {
        produce_buckets
            .iter()
            .find(|l| l.contains(&format!("le=\"{le}\"")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert_eq!(bucket("0.0025"), Some(0.0), "{text}");
    assert_eq!(bucket("0.005"), Some(1.0), "{text}");
    assert_eq!(bucket("30.0"), Some(1.0), "{text}");
    assert_eq!(bucket("+Inf"), Some(2.0), "{text}");
    assert_eq!(
        sample(
            &text,
            "kafka_mtls_proxy_request_duration_seconds_count{api_key=\"Produce\"}"
        ),
        Some(2.0),
        "{text}"
    );
    let sum = sample(
        &text,
        "kafka_mtls_proxy_request_duration_seconds_sum{api_key=\"Produce\"}",
    );
    assert!(sum.is_some_and(|s| (s - 60.003).abs() < 1e-9), "{text}");
}

#[test]
fn client_controlled_api_keys_cannot_grow_the_series_without_bound() {
    let m = Metrics::new();
    // Unassigned but plausible: a key a newer Kafka may use keeps its number.
    m.request(ApiKey(120), Duration::from_millis(1));
    // Garbage shares one series, whatever the value.
    for key in [-1, 128, 5_000, i16::MAX, i16::MIN] {
        m.request(ApiKey(key), Duration::from_millis(1));
    }
    let text = m.encode();
    assert_eq!(
        sample(&text, "kafka_mtls_proxy_requests_total{api_key=\"120\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "kafka_mtls_proxy_requests_total{api_key=\"invalid\"}"
        ),
        Some(5.0),
        "{text}"
    );
    let series = text
        .lines()
        .filter(|l| l.starts_with("kafka_mtls_proxy_requests_total{"))
        .count();
    assert_eq!(series, 2, "{text}");
}

#[test]
fn crl_fetch_time_is_exported_per_ca() {
    let m = Metrics::new();
    m.crl_fetched("ca-acme", 1_790_000_000);
    let text = m.encode();
    assert!(
        text.contains(
            "kafka_mtls_proxy_crl_last_fetch_timestamp_seconds{ca=\"ca-acme\"} 1790000000"
        ),
        "{text}"
    );
}

#[test]
fn certificate_expiries_replace_the_previous_set() {
    let m = Metrics::new();
    m.set_certificate_expiries([
        (CertificateKind::Server, "", "CN=localhost", 1_800_000_000),
        (
            CertificateKind::Authority,
            "ca-acme",
            "CN=Acme CA",
            1_900_000_000,
        ),
    ]);
    m.set_client_certificate_expiries([("pool-a", 1_795_000_000)]);
    let text = m.encode();
    for line in [
        "kafka_mtls_proxy_certificate_expiry_timestamp_seconds{kind=\"server\",ca=\"\",subject=\"CN=localhost\"} 1800000000",
        "kafka_mtls_proxy_certificate_expiry_timestamp_seconds{kind=\"ca\",ca=\"ca-acme\",subject=\"CN=Acme CA\"} 1900000000",
        "kafka_mtls_proxy_client_certificate_earliest_expiry_timestamp_seconds{pool=\"pool-a\"} 1795000000",
    ] {
        assert!(text.contains(line), "{line}\n{text}");
    }
    // A CA removed by a reload, a pool whose last connection closed: their series go.
    m.set_certificate_expiries([(CertificateKind::Server, "", "CN=localhost", 1_800_000_000)]);
    m.set_client_certificate_expiries([]);
    let text = m.encode();
    assert!(!text.contains("ca-acme"), "{text}");
    assert!(!text.contains("pool-a"), "{text}");
}

#[test]
fn the_other_counters_move() {
    let m = Metrics::new();
    m.bytes(Direction::ClientToUpstream, 100);
    m.bytes(Direction::UpstreamToClient, 7);
    m.bytes(Direction::UpstreamToClient, 3);
    m.upstream_connect_error();
    m.reload_succeeded();
    m.reload_failed();
    m.reload_failed();
    m.audit_dropped(4);
    m.upstream_reauthentication(true);
    m.upstream_reauthentication(true);
    m.upstream_reauthentication(false);
    let text = m.encode();
    for (series, value) in [
        (
            "kafka_mtls_proxy_bytes_total{direction=\"client_to_upstream\"}",
            100.0,
        ),
        (
            "kafka_mtls_proxy_bytes_total{direction=\"upstream_to_client\"}",
            10.0,
        ),
        ("kafka_mtls_proxy_upstream_connect_errors_total", 1.0),
        ("kafka_mtls_proxy_reloads_total{result=\"success\"}", 1.0),
        ("kafka_mtls_proxy_reloads_total{result=\"failure\"}", 2.0),
        ("kafka_mtls_proxy_audit_records_dropped_total", 4.0),
        (
            "kafka_mtls_proxy_upstream_reauthentications_total{result=\"success\"}",
            2.0,
        ),
        (
            "kafka_mtls_proxy_upstream_reauthentications_total{result=\"failure\"}",
            1.0,
        ),
    ] {
        assert_eq!(sample(&text, series), Some(value), "{series}\n{text}");
    }
}
