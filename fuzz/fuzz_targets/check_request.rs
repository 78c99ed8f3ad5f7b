//! Client bytes through the ACL request check: "no client-controlled body may crash or abort
//! the proxy".
//!
//! Input layout: byte 0 picks the permissions, byte 1 the API (among those offered under ACLs,
//! plus one the proxy refuses), byte 2 the version (every version kafka-protocol knows, and one
//! past it), byte 3 splits the rest into the request body and a broker answer that any returned
//! patch is applied to. A panic that the codec's `catch_unwind` turned into an error counts as a
//! crash too.

#![no_main]

use std::sync::{Arc, LazyLock};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_mtls_proxy::acl::apis::AUTHORIZED_APIS;
use kafka_mtls_proxy::acl::{
    AclRule, Action, Operation, Pattern, Permission, Permissions, ResourceType, check_request,
};
use kafka_mtls_proxy::kafka::{ApiKey, DecodedResponse, ProtocolError, parse_request_header};
use kafka_protocol::messages::RequestHeader;
use kafka_protocol::protocol::{Encodable, StrBytes};
use libfuzzer_sys::fuzz_target;

/// Three connections: one allowed nothing, one allowed some names (so requests get split and
/// patched), one allowed everything but a prefix (the deny path).
static PERMISSIONS: LazyLock<[Arc<Permissions>; 3]> = LazyLock::new(|| {
    let some: Vec<AclRule> = ResourceType::ALL
        .iter()
        .map(|&rt| {
            let pattern = if rt == ResourceType::Cluster {
                Pattern::Any
            } else {
                Pattern::Prefixed("a".into())
            };
            AclRule::new(Permission::Allow, &[Operation::All], rt, pattern)
        })
        .collect();
    let mut most: Vec<AclRule> = ResourceType::ALL
        .iter()
        .map(|&rt| AclRule::new(Permission::Allow, &[Operation::All], rt, Pattern::Any))
        .collect();
    most.extend(
        [
            ResourceType::Topic,
            ResourceType::Group,
            ResourceType::TransactionalId,
        ]
        .iter()
        .map(|&rt| {
            AclRule::new(
                Permission::Deny,
                &[Operation::All],
                rt,
                Pattern::Prefixed("b".into()),
            )
        }),
    );
    [
        Arc::new(Permissions::default()),
        Arc::new(Permissions::from_rules(&some, vec![])),
        Arc::new(Permissions::from_rules(&most, vec![])),
    ]
});

/// A panic caught by the codec's `catch_unwind` is a bug all the same.
fn assert_no_caught_panic(result: &Result<impl Sized, ProtocolError>) {
    if let Err(ProtocolError::Decode { reason, .. }) = result {
        assert!(!reason.starts_with("decoder panicked"), "{reason}");
    }
}

fuzz_target!(|data: &[u8]| {
    let [perm, api, version, split, rest @ ..] = data else {
        return;
    };
    let permissions = &PERMISSIONS[usize::from(*perm) % 3];
    // One slot past the table: an API the proxy refuses (DescribeAcls).
    let key = AUTHORIZED_APIS
        .get(usize::from(*api) % (AUTHORIZED_APIS.len() + 1))
        .copied()
        .unwrap_or(ApiKey::DESCRIBE_ACLS);
    let Some(known) = key.known() else {
        return;
    };
    let range = known.valid_versions();
    let span = i32::from(range.max) - i32::from(range.min) + 2;
    let Ok(version) = i16::try_from(i32::from(range.min) + i32::from(*version) % span) else {
        return;
    };
    let (body, answer) = rest.split_at(usize::from(*split).min(rest.len()));

    let header = RequestHeader::default()
        .with_request_api_key(key.0)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")));
    let mut frame = BytesMut::new();
    // The header version of an out-of-range version may not encode: nothing to test then.
    if header
        .encode(&mut frame, known.request_header_version(version))
        .is_err()
    {
        return;
    }
    frame.put_slice(body);
    let frame = frame.freeze();
    let Ok(parsed) = parse_request_header(&frame) else {
        return;
    };

    let checked = check_request(permissions, &parsed, &frame);
    assert_no_caught_panic(&checked);
    let Ok(checked) = checked else {
        return;
    };
    if let Action::Forward {
        patch: Some(patch), ..
    } = checked.action
    {
        // A broker answer is not client-controlled, but the patch must not crash on it either.
        let answer = Bytes::copy_from_slice(answer);
        let decoded = DecodedResponse::decode(key, version, &answer);
        assert_no_caught_panic(&decoded);
        let Ok(mut decoded) = decoded else {
            return;
        };
        let patched = patch(&mut decoded.body);
        assert_no_caught_panic(&patched);
        if patched.is_ok() {
            assert_no_caught_panic(&decoded.encode());
        }
    }
});
