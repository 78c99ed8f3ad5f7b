//! Which API versions the proxy lets through, in one table.
//!
//! The proxy must decode the responses of the APIs that carry broker addresses (and ApiVersions,
//! which it rewrites). A version kafka-protocol cannot decode must never be negotiated, so the
//! broker's ApiVersions answer is intersected with this table. APIs not in the table are
//! forwarded as opaque frames and keep the broker's range.

use super::api_key::ApiKey;

pub use super::api_versions::{rewrite_api_versions_response, unsupported_api_versions_response};
pub use super::sasl::{sasl_refusal_response, upstream_auth_failed_response};

/// THE table: (api, oldest, newest version the proxy lets clients negotiate). The newest is
/// always the newest version kafka-protocol 0.18 decodes and encodes; the unit test
/// `table_matches_the_kafka_protocol_crate` fails when a crate upgrade changes a range, so that
/// widening it is a conscious act (check the new versions for new address fields).
///
/// Produce and Fetch start at 0 although the crate decodes their responses only from v3/v4
/// (Kafka 4 removed the older ones): the proxy decodes Produce responses only from v10 and Fetch
/// responses only from v16 (the KIP-951 `node_endpoints`), so older versions pass as raw frames
/// and stay usable against brokers that still accept them.
#[rustfmt::skip]
const PROXIED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::PRODUCE,          0, 13),
    (ApiKey::FETCH,            0, 18),
    (ApiKey::METADATA,         0, 13),
    (ApiKey::FIND_COORDINATOR, 0, 6),
    (ApiKey::API_VERSIONS,     0, 4),
    (ApiKey::DESCRIBE_CLUSTER, 0, 2),
];

/// The newest Produce version the proxy advertises: all it decodes. Produce v10+ responses may
/// carry KIP-951 `node_endpoints`, so each one is decoded (they carry no records: about a
/// microsecond) and re-encoded only when the field is there. A lower cap breaks transactions on
/// Kafka 4 clusters: with the `transaction.version=2` feature (KIP-890, on by default) a Java
/// producer skips AddPartitionsToTxn and relies on Produce v12+ to add the partition, so a
/// Produce v9 in a transaction fails with INVALID_TXN_STATE (seen with Kafka 4.4).
pub const PRODUCE_MAX_ADVERTISED: i16 = 13;

/// The newest Fetch version the proxy advertises: Fetch v16+ responses may carry KIP-951
/// `node_endpoints` next to megabytes of records, and re-encoding copies them. Same fallback as
/// Produce.
pub const FETCH_MAX_ADVERTISED: i16 = 15;

/// APIs the proxy removes from ApiVersions and refuses: clients on the mTLS listener are
/// authenticated by their certificate, so SASL (17 SaslHandshake, 36 SaslAuthenticate) would be a
/// second, conflicting identity, and delegation tokens (38-41) are credentials for SASL/SCRAM
/// logins that bypass certificates.
pub const REFUSED_APIS: &[ApiKey] = &[
    ApiKey::SASL_HANDSHAKE,
    ApiKey::SASL_AUTHENTICATE,
    ApiKey::CREATE_DELEGATION_TOKEN,
    ApiKey::RENEW_DELEGATION_TOKEN,
    ApiKey::EXPIRE_DELEGATION_TOKEN,
    ApiKey::DESCRIBE_DELEGATION_TOKEN,
];

/// The versions the proxy can decode and encode for an API whose responses it rewrites
/// (Metadata, FindCoordinator, DescribeCluster, ApiVersions, Produce, Fetch); `None` for APIs that
/// pass through with the broker's range.
pub fn proxy_version_range(api_key: ApiKey) -> Option<(i16, i16)> {
    PROXIED_APIS
        .iter()
        .find(|(key, _, _)| *key == api_key)
        .map(|&(_, min, max)| (min, max))
}

/// Is this api refused on the mTLS listener (removed from ApiVersions)?
pub fn is_refused_api(api_key: ApiKey) -> bool {
    REFUSED_APIS.contains(&api_key)
}

/// The versions the proxy offers clients of an api, whatever the broker supports: `None` when
/// the api is refused; the table's range, capped for Produce and Fetch; any version for an api
/// outside the table.
pub fn offered_range(api_key: ApiKey) -> Option<(i16, i16)> {
    if is_refused_api(api_key) {
        return None;
    }
    let (min, max) = proxy_version_range(api_key).unwrap_or((i16::MIN, i16::MAX));
    let max = match api_key {
        ApiKey::PRODUCE => max.min(PRODUCE_MAX_ADVERTISED),
        ApiKey::FETCH => max.min(FETCH_MAX_ADVERTISED),
        _ => max,
    };
    Some((min, max))
}

/// The range the proxy advertises to clients for an api the broker supports in
/// `[broker_min, broker_max]`: `None` when the api is refused or the ranges do not overlap.
pub fn advertised_range(api_key: ApiKey, broker_min: i16, broker_max: i16) -> Option<(i16, i16)> {
    let (min, max) = offered_range(api_key)?;
    let (min, max) = (broker_min.max(min), broker_max.min(max));
    (min <= max).then_some((min, max))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]
mod tests {
    use super::*;
    use crate::kafka::rewrite::response_needs_rewrite;
    use kafka_protocol::messages::ApiKey as CrateApiKey;
    use kafka_protocol::protocol::VersionRange;

    /// The ranges kafka-protocol 0.18.0 reported when this table was last reviewed. If this test
    /// fails after an upgrade: read the new schema versions for new broker-address fields, extend
    /// the rewrite, then update both this list and `PROXIED_APIS`.
    const CRATE_RANGES_AT_LAST_REVIEW: &[(CrateApiKey, i16, i16)] = &[
        (CrateApiKey::Produce, 3, 13),
        (CrateApiKey::Fetch, 4, 18),
        (CrateApiKey::Metadata, 0, 13),
        (CrateApiKey::FindCoordinator, 0, 6),
        (CrateApiKey::ApiVersions, 0, 4),
        (CrateApiKey::DescribeCluster, 0, 2),
    ];

    #[test]
    fn table_matches_the_kafka_protocol_crate() {
        assert_eq!(PROXIED_APIS.len(), CRATE_RANGES_AT_LAST_REVIEW.len());
        for &(key, min, max) in CRATE_RANGES_AT_LAST_REVIEW {
            assert_eq!(
                key.valid_versions(),
                VersionRange { min, max },
                "kafka-protocol changed the range of {key:?}: review the table"
            );
            let (proxy_min, proxy_max) = proxy_version_range(key.into()).unwrap();
            assert_eq!(
                proxy_max, max,
                "{key:?}: the proxy must stop where the crate stops"
            );
            // Every version the proxy decodes must be one the crate decodes.
            for v in proxy_min..=proxy_max {
                if response_needs_rewrite(key.into(), v) {
                    assert!(
                        v >= min,
                        "{key:?} v{v} would be decoded but the crate cannot"
                    );
                }
            }
        }
    }

    #[test]
    fn apis_outside_the_table_have_no_proxy_range() {
        assert_eq!(proxy_version_range(ApiKey::JOIN_GROUP), None);
        assert_eq!(proxy_version_range(ApiKey(-1)), None);
        assert_eq!(proxy_version_range(ApiKey(9999)), None);
    }

    #[test]
    fn advertised_range_intersects_caps_and_refuses() {
        assert_eq!(advertised_range(ApiKey(3), 0, 20), Some((0, 13)));
        assert_eq!(advertised_range(ApiKey(3), 5, 9), Some((5, 9)));
        assert_eq!(
            advertised_range(ApiKey(0), 3, 13),
            Some((3, PRODUCE_MAX_ADVERTISED))
        );
        assert_eq!(
            advertised_range(ApiKey(1), 4, 18),
            Some((4, FETCH_MAX_ADVERTISED))
        );
        assert_eq!(advertised_range(ApiKey(60), 3, 5), None);
        assert_eq!(advertised_range(ApiKey(17), 0, 1), None);
        assert_eq!(advertised_range(ApiKey(36), 0, 2), None);
        assert_eq!(advertised_range(ApiKey(11), 0, 9), Some((0, 9)));
    }
}
