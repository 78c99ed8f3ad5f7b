//! Tests of the dispatch in `check/mod.rs`: ApiVersions narrowed to what ACLs allow,
//! DescribeCluster forwarded, APIs and versions the proxy cannot authorize refused.

use super::topics::{fetch, produce};
use super::*;

// ---------------------------------------------------------------------------------------------
// ApiVersions, DescribeCluster, refused APIs

#[test]
fn api_versions_is_narrowed_to_the_authorized_apis() {
    let c = run(
        &nothing(),
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    );
    assert!(c.denials.is_empty());
    let broker = api_versions_response(
        3,
        CORRELATION_ID,
        0,
        &[(0, 3, 12), (1, 4, 17), (29, 0, 3), (24, 0, 5)],
    )
    .unwrap();
    // ApiVersions answers always use header v0: encode and decode by hand.
    let Action::Forward {
        frame: None,
        patch: Some(patch),
    } = c.action
    else {
        panic!("{c:?}");
    };
    let out = apply_patch(patch, ApiKey::ApiVersions.into(), 3, broker).unwrap();
    let (_, resp) = decode_response::<ApiVersionsResponse>(&out, 0, 3).unwrap();
    let got: Vec<_> = resp
        .api_keys
        .iter()
        .map(|a| (a.api_key, a.max_version))
        .collect();
    assert_eq!(
        got,
        vec![
            (0, 12),
            (1, FETCH_MAX_WITH_ACLS),
            (24, ADD_PARTITIONS_TO_TXN_MAX_CLIENT_VERSION)
        ]
    );
}

#[test]
fn describe_cluster_is_forwarded_untouched() {
    assert_untouched(&run(
        &nothing(),
        ApiKey::DescribeCluster,
        1,
        &DescribeClusterRequest::default(),
    ));
}

#[test]
fn an_api_without_an_authorizer_is_refused() {
    let c = run(
        &everything(),
        ApiKey::DescribeAcls,
        3,
        &DescribeAclsRequest::default(),
    );
    assert!(matches!(c.action, Action::Refuse(_)), "{c:?}");
    let header = crate::kafka::RequestHeader {
        api_key: crate::kafka::ApiKey(999),
        api_version: 0,
        correlation_id: 1,
        client_id: None,
        header_len: 8,
    };
    let c = check_request(&everything(), &header, &Bytes::from_static(&[0; 8])).unwrap();
    assert!(matches!(c.action, Action::Refuse(_)), "{c:?}");
}

#[test]
fn versions_not_offered_under_acls_are_refused_even_when_sent_anyway() {
    use produce_request::{PartitionProduceData, TopicProduceData};
    // Produce v13 names topics only by id: the id of a denied topic must not pass as "".
    let p = perms(&[
        allow(&[Operation::Write, Operation::Read], T, Pattern::Any),
        AclRule::new(
            Permission::Deny,
            &[Operation::Write, Operation::Read],
            T,
            Pattern::Literal("secret".into()),
        ),
    ]);
    let body = ProduceRequest::default()
        .with_acks(-1)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_topic_id(uuid::Uuid::from_u128(9))
                .with_partition_data(vec![
                    PartitionProduceData::default().with_records(Some(Bytes::new())),
                ]),
        ]);
    let c = run(&p, ApiKey::Produce, 13, &body);
    assert!(matches!(c.action, Action::Refuse(_)), "{c:?}");
    let c = run(
        &p,
        ApiKey::Fetch,
        FETCH_MAX_WITH_ACLS + 1,
        &fetch(&["secret"]),
    );
    assert!(matches!(c.action, Action::Refuse(_)), "{c:?}");
    // The newest offered versions still pass.
    assert!(!matches!(
        run(&p, ApiKey::Produce, 12, &produce(&["ok-a"], -1)).action,
        Action::Refuse(_)
    ));
}
