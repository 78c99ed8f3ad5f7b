//! The hostile-input property test: no client body, and no broker answer to a patched
//! request, may crash the check.

use bytes::{BufMut, BytesMut};

use super::admin::{offset_delete, offset_for_leader_epoch};
use super::groups::{offset_commit, offset_fetch_v7};
use super::topics::{create_topics, fetch, list_offsets, metadata, produce};
use super::txn::{add_partitions, txn_commit};
use super::*;
use crate::acl::apis::AUTHORIZED_APIS;
use crate::test_support::Prng;

// ---------------------------------------------------------------------------------------------
// Hostile input

/// A small valid body of each API at `version` to mutate (a default body when no fixture fits
/// the version).
fn seed_body(key: ApiKey, version: i16) -> Vec<u8> {
    fn enc<T: Encodable>(body: &T, version: i16) -> Option<Vec<u8>> {
        let mut buf = BytesMut::new();
        body.encode(&mut buf, version).ok()?;
        Some(buf.to_vec())
    }
    let seeded = match key {
        ApiKey::Produce => enc(&produce(&["ok-a", "no-b"], -1), version),
        ApiKey::Fetch => enc(&fetch(&["ok-a", "no-b"]), version),
        ApiKey::ListOffsets => enc(&list_offsets(&["ok-a", "no-b"]), version),
        ApiKey::Metadata => enc(&metadata(Some(&["ok-a", "no-b"])), version),
        ApiKey::CreateTopics => enc(&create_topics(&["ok-a", "no-b"]), version),
        ApiKey::OffsetCommit => enc(&offset_commit("ok-g", &["ok-a", "no-b"]), version),
        ApiKey::OffsetFetch => enc(&offset_fetch_v7("ok-g", Some(&["ok-a", "no-b"])), version),
        ApiKey::OffsetDelete => enc(&offset_delete("ok-g", &["ok-a", "no-b"]), version),
        ApiKey::OffsetForLeaderEpoch => {
            enc(&offset_for_leader_epoch(-1, &["ok-a", "no-b"]), version)
        }
        ApiKey::AddPartitionsToTxn => enc(&add_partitions("ok-t", &["ok-a", "no-b"]), version),
        ApiKey::TxnOffsetCommit => enc(&txn_commit("ok-t", "ok-g", &["ok-a", "no-b"]), version),
        _ => None,
    };
    seeded.unwrap_or_else(|| {
        // Any valid body: a run of zero bytes decodes as empty arrays and strings for most.
        vec![0; 16]
    })
}

/// Feeds truncated, mutated and random bodies for every authorized API and version through
/// `check_request` (and random answers through any patch), under three sets of permissions.
/// It must return every time; a panic that the codec's `catch_unwind` stopped is a failure too.
#[test]
fn hostile_bodies_never_panic_the_check() {
    let permission_sets = [nothing(), ok_prefix(), everything()];
    let mut rng = Prng::new(0x5eed_0ac1_0000_0001);
    let mut runs = 0u64;
    let mut check =
        |key: ApiKey, version: i16, body: &[u8], answer: &[u8], p: &Arc<Permissions>| {
            let header = RequestHeader::default()
                .with_request_api_key(key as i16)
                .with_request_api_version(version)
                .with_correlation_id(CORRELATION_ID)
                .with_client_id(Some(sb("hostile")));
            let mut buf = BytesMut::new();
            header
                .encode(&mut buf, key.request_header_version(version))
                .unwrap();
            buf.put_slice(body);
            let frame = buf.freeze();
            let parsed = parse_request_header(&frame).unwrap();
            runs += 1;
            match check_request(p, &parsed, &frame) {
                Err(ProtocolError::Decode { reason, .. }) => {
                    assert!(
                        !reason.starts_with("decoder panicked"),
                        "{key:?} v{version}: {reason} on {body:02x?}"
                    )
                }
                Err(_) => {}
                Ok(checked) => {
                    if let Action::Forward {
                        patch: Some(patch), ..
                    } = checked.action
                        && let Err(ProtocolError::Decode { reason, .. }) =
                            apply_patch(patch, key.into(), version, Bytes::copy_from_slice(answer))
                    {
                        assert!(
                            !reason.starts_with("decoder panicked"),
                            "{key:?} v{version} patch: {reason}"
                        );
                    }
                }
            }
        };
    for key in AUTHORIZED_APIS {
        let key = key.known().unwrap();
        let range = key.valid_versions();
        for version in range.min..=range.max {
            let seed = seed_body(key, version);
            for p in &permission_sets {
                for len in 0..seed.len() {
                    check(key, version, &seed[..len], &[], p);
                }
                for _ in 0..400 {
                    let mut bytes = seed.clone();
                    rng.mutate(&mut bytes);
                    let answer: Vec<u8> =
                        (0..rng.below(48)).map(|_| rng.next_u64() as u8).collect();
                    check(key, version, &bytes, &answer, p);
                }
                for _ in 0..100 {
                    let body: Vec<u8> = (0..rng.below(64)).map(|_| rng.next_u64() as u8).collect();
                    check(key, version, &body, &body, p);
                }
            }
        }
    }
    eprintln!("{runs} hostile requests checked");
    assert!(runs > 100_000, "{runs} runs");
}
