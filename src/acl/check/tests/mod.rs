//! Every API of the dispatch, at a realistic version and a flexible one: all allowed is
//! forwarded untouched; a mix is narrowed and the broker's answer patched with the denied
//! entries; all denied is answered by the proxy with the request's correlation id. Then the
//! hostile-input property test: no client body may crash the check.
//!
//! One file per module of `check/`; this one holds what they share: permissions, and a
//! request's way through the check and back (built on `crate::test_support`'s wire frames).

#![allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]

mod admin;
mod dispatch;
mod groups;
mod hostile;
mod topics;
mod txn;

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};

use super::{Action, Checked, check_request};
use crate::acl::apis::{ADD_PARTITIONS_TO_TXN_MAX_CLIENT_VERSION, FETCH_MAX_WITH_ACLS};
use crate::acl::patch::apply_patch;
use crate::acl::permissions::Permissions;
use crate::acl::rules::{AclRule, Operation, Pattern, Permission, ResourceType};
use crate::kafka::codec::{decode_request_body, decode_response};
use crate::kafka::{ErrorCode, ProtocolError, parse_request_header};
use crate::test_support::{
    api_versions_response, decode_response_frame, request_frame, response_frame, sb,
};

const CORRELATION_ID: i32 = 4242;
const CLIENT_ID: &str = "acl-test";
const OPERATION_NOT_ATTEMPTED: i16 = ErrorCode::OPERATION_NOT_ATTEMPTED.0;
const TOPIC_AUTHORIZATION_FAILED: i16 = ErrorCode::TOPIC_AUTHORIZATION_FAILED.0;
const GROUP_AUTHORIZATION_FAILED: i16 = ErrorCode::GROUP_AUTHORIZATION_FAILED.0;
const CLUSTER_AUTHORIZATION_FAILED: i16 = ErrorCode::CLUSTER_AUTHORIZATION_FAILED.0;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 =
    ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.0;

// ---------------------------------------------------------------------------------------------
// Fixtures

fn topic(s: &str) -> TopicName {
    TopicName(sb(s))
}
fn group(s: &str) -> GroupId {
    GroupId(sb(s))
}
fn txn(s: &str) -> TransactionalId {
    TransactionalId(sb(s))
}

fn allow(ops: &[Operation], rt: ResourceType, p: Pattern) -> AclRule {
    AclRule::new(Permission::Allow, ops, rt, p)
}

fn prefix(s: &str) -> Pattern {
    Pattern::Prefixed(s.to_owned())
}

fn perms(rules: &[AclRule]) -> Arc<Permissions> {
    Arc::new(Permissions::from_rules(rules, vec!["pool".into()]))
}

/// Everything on topics, groups and transactional ids named `ok-…`; nothing on the cluster.
fn ok_prefix() -> Arc<Permissions> {
    perms(&[
        allow(&[Operation::All], ResourceType::Topic, prefix("ok-")),
        allow(&[Operation::All], ResourceType::Group, prefix("ok-")),
        allow(
            &[Operation::All],
            ResourceType::TransactionalId,
            prefix("ok-"),
        ),
    ])
}

/// Everything on every resource, the cluster included.
fn everything() -> Arc<Permissions> {
    perms(
        &ResourceType::ALL
            .iter()
            .map(|&rt| allow(&[Operation::All], rt, Pattern::Any))
            .collect::<Vec<_>>(),
    )
}

fn nothing() -> Arc<Permissions> {
    perms(&[])
}

/// A client frame: request header (of the version Kafka uses for this API and version), body.
fn frame<T: Encodable>(
    key: ApiKey,
    version: i16,
    body: &T,
) -> (crate::kafka::RequestHeader, Bytes) {
    request_frame(key, version, CORRELATION_ID, CLIENT_ID, body)
}

fn run<T: Encodable>(p: &Arc<Permissions>, key: ApiKey, version: i16, body: &T) -> Checked {
    let (header, frame) = frame(key, version, body);
    check_request(p, &header, &frame).unwrap()
}

fn is_untouched(c: &Checked) -> bool {
    matches!(
        c.action,
        Action::Forward {
            frame: None,
            patch: None
        }
    )
}

#[track_caller]
fn assert_untouched(c: &Checked) {
    assert!(is_untouched(c), "expected an untouched forward, got {c:?}");
    assert!(c.denials.is_empty(), "{:?}", c.denials);
}

/// The denials as (resource type, name, operation).
fn denials(c: &Checked) -> Vec<(ResourceType, String, Operation)> {
    c.denials
        .iter()
        .map(|d| (d.resource_type, d.resource.clone(), d.operation))
        .collect()
}

fn encode_answer<R: Encodable>(key: ApiKey, version: i16, body: &R) -> Bytes {
    response_frame(key, version, CORRELATION_ID, body)
}

fn decode_answer<R: Decodable>(key: ApiKey, version: i16, frame: &Bytes) -> R {
    let (header, body) = decode_response_frame(key, version, frame);
    assert_eq!(header.correlation_id, CORRELATION_ID);
    body
}

/// A narrowed forward: the request the broker gets, and the client's view of `broker`'s answer
/// once patched.
#[track_caller]
fn split<Req: Decodable, Resp: Decodable + Encodable>(
    c: Checked,
    key: ApiKey,
    version: i16,
    broker: &Resp,
) -> (Req, Resp) {
    let Action::Forward {
        frame: Some(narrowed),
        patch: Some(patch),
    } = c.action
    else {
        panic!("expected a narrowed, patched forward, got {:?}", c.action);
    };
    let header = parse_request_header(&narrowed).unwrap();
    assert_eq!(header.correlation_id, CORRELATION_ID);
    assert_eq!(header.client_id.as_deref(), Some(CLIENT_ID));
    let req = decode_request_body::<Req>(&narrowed, header.header_len, version).unwrap();
    let patched = apply_patch(
        patch,
        key.into(),
        version,
        encode_answer(key, version, broker),
    )
    .unwrap();
    (req, decode_answer(key, version, &patched))
}

/// A forward of the client's own frame with a patch: the client's view of `broker`'s answer.
#[track_caller]
fn patched<Resp: Decodable + Encodable>(
    c: Checked,
    key: ApiKey,
    version: i16,
    broker: &Resp,
) -> Resp {
    let Action::Forward {
        frame: None,
        patch: Some(patch),
    } = c.action
    else {
        panic!(
            "expected an unnarrowed, patched forward, got {:?}",
            c.action
        );
    };
    decode_answer(
        key,
        version,
        &apply_patch(
            patch,
            key.into(),
            version,
            encode_answer(key, version, broker),
        )
        .unwrap(),
    )
}

/// The proxy's own answer.
#[track_caller]
fn answered<Resp: Decodable>(c: Checked, key: ApiKey, version: i16) -> Resp {
    let Action::Answer(Some(frame)) = c.action else {
        panic!("expected a local answer, got {:?}", c.action);
    };
    decode_answer(key, version, &frame)
}

use ResourceType::{Cluster, Group as G, Topic as T, TransactionalId as X};
