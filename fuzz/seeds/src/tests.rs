//! The seeds checked against the proxy's real entry points, the way their fuzz targets feed
//! them: each lands on the API, version, permissions and outcome it was written for, and the
//! files under `../corpus/` are the ones the generator writes now.

use std::collections::BTreeSet;
use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_mtls_proxy::acl::apis::{AUTHORIZED_APIS, range_with_acls};
use kafka_mtls_proxy::acl::{
    AclRule, Action, Operation, Pattern, Permission, Permissions, ResourceType, check_request,
};
use kafka_mtls_proxy::kafka::{ApiKey, DecodedResponse, parse_request_header};
use kafka_mtls_proxy::server::proxy_protocol::{
    HeaderVersion, ProxyHeader, ProxyHeaderError, parse_header, read_header,
};
use kafka_protocol::messages::RequestHeader;
use kafka_protocol::protocol::{Encodable, StrBytes};

use crate::{check_request as seeds_cr, proxy_header as seeds_ph};

/// The committed files of `target`, by name.
fn committed(target: &str) -> BTreeSet<String> {
    let dir = Path::new("../corpus").join(target);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect()
}

fn assert_committed(target: &str, name: &str, bytes: &[u8]) {
    let path = Path::new("../corpus").join(target).join(name);
    let on_disk = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        on_disk,
        bytes,
        "{} differs from the generator's",
        path.display()
    );
}

/// `fuzz_targets/check_request.rs`'s three permission sets, built the same way.
fn permissions() -> [Arc<Permissions>; 3] {
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
}

#[test]
fn the_copy_of_authorized_apis_is_the_proxys() {
    let proxy: Vec<i16> = AUTHORIZED_APIS.iter().map(|k| k.0).collect();
    let copy: Vec<i16> = seeds_cr::AUTHORIZED_APIS
        .iter()
        .map(|&k| k as i16)
        .collect();
    assert_eq!(copy, proxy);
}

#[test]
fn check_request_seeds_reach_the_api_version_and_outcome_they_encode() {
    let permissions = permissions();
    let seeds = seeds_cr::seeds().unwrap();
    let names: BTreeSet<String> = seeds.iter().map(|s| s.name.clone()).collect();
    assert_eq!(names.len(), seeds.len(), "two seeds share a name");
    assert_eq!(committed("check_request"), names);
    let mut patched = 0;
    let mut wrong = Vec::new();
    let mut apis = BTreeSet::new();
    for seed in &seeds {
        let name = &seed.name;
        assert_committed("check_request", name, &seed.bytes);
        // The target's selection, step by step.
        let [perm, api, version, split, rest @ ..] = &seed.bytes[..] else {
            panic!("{name}: shorter than the selector bytes");
        };
        assert_eq!(*perm, seed.permissions, "{name}");
        let key = AUTHORIZED_APIS
            .get(usize::from(*api) % (AUTHORIZED_APIS.len() + 1))
            .copied()
            .unwrap_or(ApiKey::DESCRIBE_ACLS);
        assert_eq!(key.0, seed.api as i16, "{name}: lands on another API");
        let known = key.known().unwrap();
        let range = known.valid_versions();
        let span = i32::from(range.max) - i32::from(range.min) + 2;
        let version = i16::try_from(i32::from(range.min) + i32::from(*version) % span).unwrap();
        assert_eq!(version, seed.version, "{name}: lands on another version");
        let (body, answer) = rest.split_at(usize::from(*split).min(rest.len()));
        assert_eq!(
            answer.is_empty(),
            seed.expect != seeds_cr::Expect::Patched,
            "{name}: a broker answer goes with a patch, and only then"
        );
        let in_range =
            range_with_acls(key).is_some_and(|(min, max)| (min..=max).contains(&version));
        assert_eq!(in_range, seed.expect != seeds_cr::Expect::Refused, "{name}");

        let mut frame = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key.0)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("fuzz")))
            .encode(&mut frame, known.request_header_version(version))
            .unwrap();
        frame.put_slice(body);
        let frame = frame.freeze();
        let header = parse_request_header(&frame).unwrap();
        let checked = check_request(&permissions[usize::from(*perm)], &header, &frame)
            .unwrap_or_else(|e| panic!("{name}: the body does not decode: {e}"));
        match (seed.expect, checked.action) {
            (seeds_cr::Expect::Refused, Action::Refuse(_)) => {}
            (seeds_cr::Expect::Refused, other) => {
                wrong.push(format!("{name}: {other:?}, not refused"))
            }
            (_, Action::Refuse(reason)) => wrong.push(format!("{name}: refused: {reason}")),
            (seeds_cr::Expect::Checked, _) => {}
            (
                seeds_cr::Expect::Patched,
                Action::Forward {
                    patch: Some(patch), ..
                },
            ) => {
                let answer = Bytes::copy_from_slice(answer);
                let mut decoded = DecodedResponse::decode(key, version, &answer)
                    .unwrap_or_else(|e| panic!("{name}: the answer does not decode: {e}"));
                let patched_body =
                    patch(&mut decoded.body).unwrap_or_else(|e| panic!("{name}: patch: {e}"));
                // Each answer holds something the patch must add to or take out of.
                assert!(
                    patched_body.is_changed(),
                    "{name}: the patch changed nothing"
                );
                decoded.encode().unwrap();
                patched += 1;
            }
            (seeds_cr::Expect::Patched, other) => {
                wrong.push(format!("{name}: {other:?}, no patch"))
            }
        }
        apis.insert(key.0);
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
    assert!(patched >= 20, "only {patched} seeds reach a patch");
    let uncovered: Vec<_> = AUTHORIZED_APIS
        .iter()
        .filter(|k| !apis.contains(&k.0))
        .collect();
    assert!(uncovered.is_empty(), "no seed for {uncovered:?}");
}

#[test]
fn proxy_header_seeds_parse_as_built() {
    let seeds = seeds_ph::seeds().unwrap();
    let names: BTreeSet<String> = seeds.iter().map(|s| s.name.to_owned()).collect();
    assert_eq!(committed("proxy_header"), names);
    for seed in &seeds {
        let name = seed.name;
        assert_committed("proxy_header", name, &seed.bytes);
        let version = match seed.version {
            1 => HeaderVersion::V1,
            _ => HeaderVersion::V2,
        };
        let parsed = parse_header(&seed.bytes);
        let expected = match (seed.expect, parsed) {
            (seeds_ph::Expect::UnixRefused, Err(ProxyHeaderError::UnixAddresses)) => continue,
            (expect, Err(e)) => panic!("{name}: refused ({e}), expected {expect:?}"),
            (
                seeds_ph::Expect::Proxied {
                    source,
                    destination,
                },
                Ok((header, len)),
            ) => {
                let want = ProxyHeader::Proxied {
                    version,
                    source,
                    destination,
                };
                assert_eq!(header, want, "{name}");
                assert_eq!(len, seed.header_len, "{name}");
                header
            }
            (seeds_ph::Expect::Local, Ok((header, len))) => {
                assert_eq!(header, ProxyHeader::Local { version }, "{name}");
                assert_eq!(len, seed.header_len, "{name}");
                header
            }
            (expect, Ok((header, _))) => panic!("{name}: {header:?}, expected {expect:?}"),
        };
        // The listeners' reader takes exactly the header and leaves the TLS bytes.
        let mut rest = &seed.bytes[..];
        let read = {
            let mut future = pin!(read_header(&mut rest));
            match future
                .as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
            {
                Poll::Ready(read) => read,
                Poll::Pending => panic!("{name}: read_header waited on a byte slice"),
            }
        };
        assert_eq!(read.unwrap(), expected, "{name}");
        assert_eq!(rest[0], 0x16, "{name}: the TLS record is not next");
        assert_eq!(seed.bytes.len() - rest.len(), seed.header_len, "{name}");
    }
}
