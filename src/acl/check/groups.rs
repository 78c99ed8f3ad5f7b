//! Consumer-group and producer-id APIs: OffsetCommit, OffsetFetch, FindCoordinator, the group
//! membership calls (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), and InitProducerId.

use std::sync::Arc;

use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopics;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    BrokerId, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatRequest,
    HeartbeatResponse, InitProducerIdRequest, InitProducerIdResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, ProducerId, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{Action, Request};
use crate::acl::permissions::Permissions;
use crate::acl::rules::{Operation, ResourceType};
use crate::kafka::{ErrorCode, ProtocolError};

/// OffsetCommit: read on the group (refused: every partition gets GROUP_AUTHORIZATION_FAILED),
/// then read on each topic.
pub(super) fn offset_commit(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let mut body: OffsetCommitRequest = req.decode()?;
    let group_ok = req.allowed(Operation::Read, ResourceType::Group, &body.group_id);
    let denied = req.take_denied(&mut body.topics, |req, topic| {
        group_ok && req.allowed(Operation::Read, ResourceType::Topic, &topic.name)
    });
    let code = if group_ok {
        ErrorCode::TOPIC_AUTHORIZATION_FAILED
    } else {
        ErrorCode::GROUP_AUTHORIZATION_FAILED
    };
    let denied: Vec<_> = denied
        .into_iter()
        .map(|topic| {
            OffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code.into())
                        })
                        .collect(),
                )
        })
        .collect();
    // A refused group is a denial even with no topic to answer for: the proxy answers alone.
    let any_denied = !denied.is_empty() || !group_ok;
    let any_allowed = group_ok && !body.topics.is_empty();
    req.split(
        any_denied,
        any_allowed,
        &body,
        move |r: &mut OffsetCommitResponse| r.topics.extend(denied),
    )
}

/// OffsetFetch: describe on the group, describe on each topic. Asking for every topic (null)
/// returns only the topics the connection may describe. v8+ batches groups.
pub(super) fn offset_fetch(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let mut body: OffsetFetchRequest = req.decode()?;
    if req.version() >= 8 {
        return offset_fetch_groups(req, body);
    }
    let v = req.version();
    if !req.allowed(Operation::Describe, ResourceType::Group, &body.group_id) {
        // v2+ carries a top-level error; v0-1 only per-partition ones.
        let topics = body
            .topics
            .iter()
            .flatten()
            .map(|t| {
                fetch_topic_v0(
                    t.name.clone(),
                    &t.partition_indexes,
                    ErrorCode::GROUP_AUTHORIZATION_FAILED,
                )
            })
            .collect();
        let mut r = OffsetFetchResponse::default().with_topics(topics);
        if v >= 2 {
            r.error_code = ErrorCode::GROUP_AUTHORIZATION_FAILED.into();
        }
        return Ok(Action::Answer(Some(req.answer(&r)?)));
    }
    let Some(topics) = body.topics.as_mut() else {
        let permissions = Arc::clone(req.permissions);
        return Ok(Action::Forward {
            frame: None,
            patch: Some(req.patch(move |r: &mut OffsetFetchResponse| {
                r.topics.retain(|t| may_describe(&permissions, &t.name))
            })),
        });
    };
    let denied = req.take_denied(topics, |req, topic| {
        req.allowed(Operation::Describe, ResourceType::Topic, &topic.name)
    });
    let any_allowed = !topics.is_empty();
    let denied = denied
        .into_iter()
        .map(|topic| {
            fetch_topic_v0(
                topic.name,
                &topic.partition_indexes,
                ErrorCode::TOPIC_AUTHORIZATION_FAILED,
            )
        })
        .collect();
    req.split_denied(&body, any_allowed, denied, |r: &mut OffsetFetchResponse| {
        &mut r.topics
    })
}

fn offset_fetch_groups(
    req: &mut Request<'_>,
    mut body: OffsetFetchRequest,
) -> Result<Action, ProtocolError> {
    let mut denied_groups = Vec::new();
    // Per allowed group: the denied topic entries to add, and whether to filter a listing.
    let mut additions: Vec<(GroupId, Vec<OffsetFetchResponseTopics>, bool)> = Vec::new();
    let mut allowed = Vec::new();
    for mut group in std::mem::take(&mut body.groups) {
        if !req.allowed(Operation::Describe, ResourceType::Group, &group.group_id) {
            denied_groups.push(
                OffsetFetchResponseGroup::default()
                    .with_group_id(group.group_id.clone())
                    .with_error_code(ErrorCode::GROUP_AUTHORIZATION_FAILED.into()),
            );
            continue;
        }
        match group.topics.take() {
            None => {
                additions.push((group.group_id.clone(), Vec::new(), true));
            }
            Some(mut topics) => {
                let denied = req.take_denied(&mut topics, |req, topic| {
                    req.allowed(Operation::Describe, ResourceType::Topic, &topic.name)
                });
                if !denied.is_empty() {
                    let denied = denied.into_iter().map(denied_fetch_topic).collect();
                    additions.push((group.group_id.clone(), denied, false));
                }
                group.topics = Some(topics);
            }
        }
        allowed.push(group);
    }
    let needs_patch = !denied_groups.is_empty() || !additions.is_empty();
    if !needs_patch {
        return Ok(Action::forward_untouched());
    }
    let permissions = Arc::clone(req.permissions);
    let patch_groups = move |r: &mut OffsetFetchResponse| {
        for group in r.groups.iter_mut() {
            for (id, denied, filter) in &additions {
                if *id == group.group_id {
                    if *filter {
                        group.topics.retain(|t| may_describe(&permissions, &t.name));
                    }
                    group.topics.extend(denied.iter().cloned());
                }
            }
        }
        r.groups.extend(denied_groups);
    };
    if allowed.is_empty() {
        let mut r = OffsetFetchResponse::default();
        patch_groups(&mut r);
        return Ok(Action::Answer(Some(req.answer(&r)?)));
    }
    body.groups = allowed;
    Ok(Action::Forward {
        frame: Some(req.narrowed(&body)?),
        patch: Some(req.patch(patch_groups)),
    })
}

/// A denied topic of an OffsetFetch v8+ group.
fn denied_fetch_topic(topic: OffsetFetchRequestTopics) -> OffsetFetchResponseTopics {
    OffsetFetchResponseTopics::default()
        .with_name(topic.name)
        .with_topic_id(topic.topic_id)
        .with_partitions(
            topic
                .partition_indexes
                .iter()
                .map(|&i| {
                    OffsetFetchResponsePartitions::default()
                        .with_partition_index(i)
                        .with_committed_offset(-1)
                        .with_committed_leader_epoch(-1)
                        .with_metadata(Some(StrBytes::default()))
                        .with_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.into())
                })
                .collect(),
        )
}

fn fetch_topic_v0(
    name: TopicName,
    partitions: &[i32],
    code: ErrorCode,
) -> OffsetFetchResponseTopic {
    OffsetFetchResponseTopic::default()
        .with_name(name)
        .with_partitions(
            partitions
                .iter()
                .map(|&i| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(i)
                        .with_committed_offset(-1)
                        .with_committed_leader_epoch(-1)
                        .with_metadata(Some(StrBytes::default()))
                        .with_error_code(code.into())
                })
                .collect(),
        )
}

fn may_describe(permissions: &Permissions, name: &TopicName) -> bool {
    permissions.allows(Operation::Describe, ResourceType::Topic, name)
}

/// The key types of FindCoordinator.
const KEY_GROUP: i8 = 0;
const KEY_TRANSACTION: i8 = 1;

/// FindCoordinator: describe on the group or transactional id it looks up.
pub(super) fn find_coordinator(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let body: FindCoordinatorRequest = req.decode()?;
    let (resource, code) = match body.key_type {
        KEY_GROUP => (ResourceType::Group, ErrorCode::GROUP_AUTHORIZATION_FAILED),
        KEY_TRANSACTION => (
            ResourceType::TransactionalId,
            ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        ),
        other => {
            return Ok(Action::Refuse(format!(
                "FindCoordinator key type {other} cannot be authorized by the proxy"
            )));
        }
    };
    if req.version() < 4 {
        if req.allowed(Operation::Describe, resource, &body.key) {
            return Ok(Action::forward_untouched());
        }
        let r = FindCoordinatorResponse::default()
            .with_error_code(code.into())
            .with_error_message(Some(StrBytes::from_static_str("Authorization failed.")))
            .with_node_id(BrokerId(-1))
            .with_port(-1);
        return Ok(Action::Answer(Some(req.answer(&r)?)));
    }
    req.check_each(
        body,
        |b| &mut b.coordinator_keys,
        |req, key| req.allowed(Operation::Describe, resource, key),
        |key| {
            Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(-1))
                .with_port(-1)
                .with_error_code(code.into())
                .with_error_message(Some(StrBytes::from_static_str("Authorization failed.")))
        },
        |r: &mut FindCoordinatorResponse| &mut r.coordinators,
    )
}

/// A membership call on one group: read on the group, or the whole request is answered with
/// GROUP_AUTHORIZATION_FAILED.
fn group_call<T: Default + kafka_protocol::protocol::Encodable>(
    req: &mut Request<'_>,
    group: &GroupId,
    refused: impl FnOnce(T) -> T,
) -> Result<Action, ProtocolError> {
    if req.allowed(Operation::Read, ResourceType::Group, group) {
        return Ok(Action::forward_untouched());
    }
    Ok(Action::Answer(Some(req.answer(&refused(T::default()))?)))
}

pub(super) fn join_group(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let body: JoinGroupRequest = req.decode()?;
    let member = body.member_id.clone();
    group_call(req, &body.group_id, |r: JoinGroupResponse| {
        r.with_error_code(ErrorCode::GROUP_AUTHORIZATION_FAILED.into())
            .with_generation_id(-1)
            .with_member_id(member)
    })
}

pub(super) fn sync_group(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let body: SyncGroupRequest = req.decode()?;
    group_call(req, &body.group_id, |r: SyncGroupResponse| {
        r.with_error_code(ErrorCode::GROUP_AUTHORIZATION_FAILED.into())
    })
}

pub(super) fn heartbeat(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let body: HeartbeatRequest = req.decode()?;
    group_call(req, &body.group_id, |r: HeartbeatResponse| {
        r.with_error_code(ErrorCode::GROUP_AUTHORIZATION_FAILED.into())
    })
}

pub(super) fn leave_group(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let body: LeaveGroupRequest = req.decode()?;
    group_call(req, &body.group_id, |r: LeaveGroupResponse| {
        r.with_error_code(ErrorCode::GROUP_AUTHORIZATION_FAILED.into())
    })
}

/// InitProducerId: write on the transactional id; without one (an idempotent producer),
/// idempotent_write on the cluster or write on some topic (KIP-679).
pub(super) fn init_producer_id(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let body: InitProducerIdRequest = req.decode()?;
    let refused_with = match &body.transactional_id {
        Some(txn) => (!req.allowed(Operation::Write, ResourceType::TransactionalId, txn))
            .then_some(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
        None => {
            let ok = req.permissions.allows_cluster(Operation::IdempotentWrite)
                || req
                    .permissions
                    .allows_some(Operation::Write, ResourceType::Topic);
            if !ok {
                req.deny(
                    Operation::IdempotentWrite,
                    ResourceType::Cluster,
                    crate::acl::rules::CLUSTER_RESOURCE_NAME,
                );
            }
            (!ok).then_some(ErrorCode::CLUSTER_AUTHORIZATION_FAILED)
        }
    };
    let Some(code) = refused_with else {
        return Ok(Action::forward_untouched());
    };
    let r = InitProducerIdResponse::default()
        .with_error_code(code.into())
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    Ok(Action::Answer(Some(req.answer(&r)?)))
}
