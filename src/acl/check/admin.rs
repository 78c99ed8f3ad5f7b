//! Administration APIs: the group listings and deletions (DescribeGroups, ListGroups,
//! DeleteGroups, OffsetDelete), the topic administration calls (DeleteRecords,
//! CreatePartitions, OffsetForLeaderEpoch) and the configuration calls (DescribeConfigs,
//! AlterConfigs, IncrementalAlterConfigs).
//!
//! Each follows Kafka's `KafkaApis` handler of the same name: which operation on which
//! resource, and the error a denied entry carries in the response.

use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, CreatePartitionsRequest, CreatePartitionsResponse,
    DeleteGroupsRequest, DeleteGroupsResponse, DeleteRecordsRequest, DeleteRecordsResponse,
    DescribeConfigsRequest, DescribeConfigsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, ListGroupsRequest,
    ListGroupsResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, alter_configs_response, incremental_alter_configs_response,
};
use kafka_protocol::protocol::StrBytes;

use super::error_code::{
    CLUSTER_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED,
};
use super::{Action, Request};
use crate::acl::rules::{Operation, ResourceType};
use crate::kafka::ProtocolError;

/// Kafka's `DeleteRecordsResponse.INVALID_LOW_WATERMARK`, the low watermark of a partition
/// that was not deleted from.
const INVALID_LOW_WATERMARK: i64 = -1;

/// DescribeGroups: describe on each group. A denied group is described as Kafka's
/// `DescribeGroupsResponse.groupError` does: GROUP_AUTHORIZATION_FAILED, empty state, protocol
/// and members, authorized operations omitted.
pub(super) fn describe_groups(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let mut body: DescribeGroupsRequest = req.decode()?;
    let mut denied = Vec::new();
    let mut allowed = Vec::new();
    for group in std::mem::take(&mut body.groups) {
        if req.allowed(Operation::Describe, ResourceType::Group, &group) {
            allowed.push(group);
        } else {
            denied.push(
                DescribedGroup::default()
                    .with_group_id(group)
                    .with_error_code(GROUP_AUTHORIZATION_FAILED),
            );
        }
    }
    let (any_denied, any_allowed) = (!denied.is_empty(), !allowed.is_empty());
    body.groups = allowed;
    req.split(
        any_denied,
        any_allowed,
        &body,
        move |r: &mut DescribeGroupsResponse| r.groups.extend(denied),
    )
}

/// ListGroups: describe on the cluster lists every group; otherwise the broker's listing is
/// filtered to the groups the connection may describe. Like Kafka (which checks with
/// `logIfDenied = false`), filtering is not a denial: the client named no group.
pub(super) fn list_groups(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    // Decoded only to refuse a malformed body before it reaches the broker.
    let _body: ListGroupsRequest = req.decode()?;
    if req.permissions.allows_cluster(Operation::Describe) {
        return Ok(forward_untouched());
    }
    let permissions = Arc::clone(req.permissions);
    Ok(Action::Forward {
        frame: None,
        patch: Some(req.patch(move |r: &mut ListGroupsResponse| {
            r.groups.retain(|g| {
                permissions.allows(Operation::Describe, ResourceType::Group, &g.group_id)
            })
        })),
    })
}

/// DeleteGroups: delete on each group; a denied group's result carries
/// GROUP_AUTHORIZATION_FAILED.
pub(super) fn delete_groups(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let mut body: DeleteGroupsRequest = req.decode()?;
    let mut denied = Vec::new();
    let mut allowed = Vec::new();
    for group in std::mem::take(&mut body.groups_names) {
        if req.allowed(Operation::Delete, ResourceType::Group, &group) {
            allowed.push(group);
        } else {
            denied.push(
                DeletableGroupResult::default()
                    .with_group_id(group)
                    .with_error_code(GROUP_AUTHORIZATION_FAILED),
            );
        }
    }
    let (any_denied, any_allowed) = (!denied.is_empty(), !allowed.is_empty());
    body.groups_names = allowed;
    req.split(
        any_denied,
        any_allowed,
        &body,
        move |r: &mut DeleteGroupsResponse| r.results.extend(denied),
    )
}

/// OffsetDelete: delete on the group (denied: the top-level error is
/// GROUP_AUTHORIZATION_FAILED and nothing else is answered, as Kafka's `getErrorResponse`),
/// then read on each topic (denied: every partition of it gets TOPIC_AUTHORIZATION_FAILED).
///
/// When every topic is denied the narrowed request (no topics) still goes to the broker, as
/// Kafka still asks its group coordinator: the client learns a group-level error
/// (GROUP_ID_NOT_FOUND, …) the same way.
pub(super) fn offset_delete(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let mut body: OffsetDeleteRequest = req.decode()?;
    if !req.allowed(Operation::Delete, ResourceType::Group, &body.group_id) {
        let r = OffsetDeleteResponse::default().with_error_code(GROUP_AUTHORIZATION_FAILED);
        return Ok(Action::Answer(Some(req.answer(&r)?)));
    }
    let mut denied = Vec::new();
    let mut allowed = Vec::new();
    for topic in std::mem::take(&mut body.topics) {
        if req.allowed(Operation::Read, ResourceType::Topic, &topic.name) {
            allowed.push(topic);
        } else {
            denied.push(
                OffsetDeleteResponseTopic::default()
                    .with_name(topic.name.clone())
                    .with_partitions(
                        topic
                            .partitions
                            .iter()
                            .map(|p| {
                                OffsetDeleteResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(TOPIC_AUTHORIZATION_FAILED)
                            })
                            .collect(),
                    ),
            );
        }
    }
    if denied.is_empty() {
        return Ok(forward_untouched());
    }
    body.topics = allowed;
    Ok(Action::Forward {
        frame: Some(req.narrowed(&body)?),
        patch: Some(req.patch(move |r: &mut OffsetDeleteResponse| r.topics.extend(denied))),
    })
}

/// DeleteRecords: delete on each topic; a denied topic's partitions get
/// TOPIC_AUTHORIZATION_FAILED and an invalid low watermark.
pub(super) fn delete_records(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let mut body: DeleteRecordsRequest = req.decode()?;
    let mut denied = Vec::new();
    let mut allowed = Vec::new();
    for topic in std::mem::take(&mut body.topics) {
        if req.allowed(Operation::Delete, ResourceType::Topic, &topic.name) {
            allowed.push(topic);
        } else {
            denied.push(
                DeleteRecordsTopicResult::default()
                    .with_name(topic.name.clone())
                    .with_partitions(
                        topic
                            .partitions
                            .iter()
                            .map(|p| {
                                DeleteRecordsPartitionResult::default()
                                    .with_partition_index(p.partition_index)
                                    .with_low_watermark(INVALID_LOW_WATERMARK)
                                    .with_error_code(TOPIC_AUTHORIZATION_FAILED)
                            })
                            .collect(),
                    ),
            );
        }
    }
    let (any_denied, any_allowed) = (!denied.is_empty(), !allowed.is_empty());
    body.topics = allowed;
    req.split(
        any_denied,
        any_allowed,
        &body,
        move |r: &mut DeleteRecordsResponse| r.topics.extend(denied),
    )
}

/// CreatePartitions: alter on each topic; a denied topic's result carries
/// TOPIC_AUTHORIZATION_FAILED (and a null message: the client falls back to the error's own).
pub(super) fn create_partitions(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let mut body: CreatePartitionsRequest = req.decode()?;
    let mut denied = Vec::new();
    let mut allowed = Vec::new();
    for topic in std::mem::take(&mut body.topics) {
        if req.allowed(Operation::Alter, ResourceType::Topic, &topic.name) {
            allowed.push(topic);
        } else {
            denied.push(
                CreatePartitionsTopicResult::default()
                    .with_name(topic.name.clone())
                    .with_error_code(TOPIC_AUTHORIZATION_FAILED)
                    .with_error_message(None),
            );
        }
    }
    let (any_denied, any_allowed) = (!denied.is_empty(), !allowed.is_empty());
    body.topics = allowed;
    req.split(
        any_denied,
        any_allowed,
        &body,
        move |r: &mut CreatePartitionsResponse| r.results.extend(denied),
    )
}

/// OffsetForLeaderEpoch: describe on each topic (KIP-320: consumers use it to detect log
/// truncation). A replica id of a broker (≥ 0) means a follower's request, which needs
/// cluster_action — an operation the proxy's rules cannot grant — so it is refused; clients
/// send -1 (consumer) or -2 (debugging, also the default of versions without the field).
pub(super) fn offset_for_leader_epoch(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let mut body: OffsetForLeaderEpochRequest = req.decode()?;
    let replica = body.replica_id.0;
    if replica >= 0 {
        return Ok(Action::Refuse(format!(
            "OffsetForLeaderEpoch as replica {replica}: follower requests come from brokers, not \
             clients"
        )));
    }
    let mut denied = Vec::new();
    let mut allowed = Vec::new();
    for topic in std::mem::take(&mut body.topics) {
        if req.allowed(Operation::Describe, ResourceType::Topic, &topic.topic) {
            allowed.push(topic);
        } else {
            denied.push(
                OffsetForLeaderTopicResult::default()
                    .with_topic(topic.topic.clone())
                    .with_partitions(
                        topic
                            .partitions
                            .iter()
                            .map(|p| {
                                // Leader epoch and end offset keep their defaults (-1), as in
                                // Kafka's answer for an unauthorized partition.
                                EpochEndOffset::default()
                                    .with_partition(p.partition)
                                    .with_error_code(TOPIC_AUTHORIZATION_FAILED)
                            })
                            .collect(),
                    ),
            );
        }
    }
    let (any_denied, any_allowed) = (!denied.is_empty(), !allowed.is_empty());
    body.topics = allowed;
    req.split(
        any_denied,
        any_allowed,
        &body,
        move |r: &mut OffsetForLeaderEpochResponse| r.topics.extend(denied),
    )
}

/// Kafka's `ConfigResource.Type` ids.
mod config_type {
    pub const TOPIC: i8 = 2;
    pub const BROKER: i8 = 4;
    pub const BROKER_LOGGER: i8 = 8;
    pub const CLIENT_METRICS: i8 = 16;
    pub const GROUP: i8 = 32;
}

/// The outcome of checking one config resource.
enum ConfigCheck {
    Allowed,
    /// Denied, with the error Kafka gives the resource.
    Denied(i16),
    /// A resource type Kafka itself rejects (InvalidRequestException): nothing to authorize it
    /// by.
    Unknown,
}

/// Kafka's config authorization: topic resources on the topic, group resources on the group,
/// broker, broker-logger and client-metrics resources on the cluster.
fn check_config(
    req: &mut Request<'_>,
    op: Operation,
    resource_type: i8,
    name: &str,
) -> ConfigCheck {
    let (ok, code) = match resource_type {
        config_type::TOPIC => (
            req.allowed(op, ResourceType::Topic, name),
            TOPIC_AUTHORIZATION_FAILED,
        ),
        config_type::GROUP => (
            req.allowed(op, ResourceType::Group, name),
            GROUP_AUTHORIZATION_FAILED,
        ),
        config_type::BROKER | config_type::BROKER_LOGGER | config_type::CLIENT_METRICS => {
            (req.allowed_cluster(op), CLUSTER_AUTHORIZATION_FAILED)
        }
        _ => return ConfigCheck::Unknown,
    };
    if ok {
        ConfigCheck::Allowed
    } else {
        ConfigCheck::Denied(code)
    }
}

/// Kafka's `Errors.message()` for the authorization errors, which DescribeConfigs puts in each
/// denied result.
fn error_message(code: i16) -> StrBytes {
    StrBytes::from_static_str(match code {
        TOPIC_AUTHORIZATION_FAILED => "Topic authorization failed.",
        GROUP_AUTHORIZATION_FAILED => "Group authorization failed.",
        _ => "Cluster authorization failed.",
    })
}

fn unknown_config_type(api: &str, resource_type: i8) -> Action {
    Action::Refuse(format!(
        "{api} names config resource type {resource_type}, which the proxy cannot authorize"
    ))
}

/// DescribeConfigs: describe_configs on each resource (see [`check_config`]); a denied
/// resource's result carries the authorization error and its message, and no configs.
pub(super) fn describe_configs(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let mut body: DescribeConfigsRequest = req.decode()?;
    let mut denied = Vec::new();
    let mut allowed = Vec::new();
    for resource in std::mem::take(&mut body.resources) {
        match check_config(
            req,
            Operation::DescribeConfigs,
            resource.resource_type,
            &resource.resource_name,
        ) {
            ConfigCheck::Allowed => allowed.push(resource),
            ConfigCheck::Denied(code) => denied.push(
                DescribeConfigsResult::default()
                    .with_error_code(code)
                    .with_error_message(Some(error_message(code)))
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name.clone()),
            ),
            ConfigCheck::Unknown => {
                return Ok(unknown_config_type(req.api(), resource.resource_type));
            }
        }
    }
    let (any_denied, any_allowed) = (!denied.is_empty(), !allowed.is_empty());
    body.resources = allowed;
    req.split(
        any_denied,
        any_allowed,
        &body,
        move |r: &mut DescribeConfigsResponse| r.results.extend(denied),
    )
}

/// AlterConfigs: alter_configs on each resource (see [`check_config`]); a denied resource's
/// response carries the authorization error and, as Kafka's `ApiError(error, null)`, no
/// message.
pub(super) fn alter_configs(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let mut body: AlterConfigsRequest = req.decode()?;
    let mut denied = Vec::new();
    let mut allowed = Vec::new();
    for resource in std::mem::take(&mut body.resources) {
        match check_config(
            req,
            Operation::AlterConfigs,
            resource.resource_type,
            &resource.resource_name,
        ) {
            ConfigCheck::Allowed => allowed.push(resource),
            ConfigCheck::Denied(code) => denied.push(
                alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_error_code(code)
                    .with_error_message(None)
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name.clone()),
            ),
            ConfigCheck::Unknown => {
                return Ok(unknown_config_type(req.api(), resource.resource_type));
            }
        }
    }
    let (any_denied, any_allowed) = (!denied.is_empty(), !allowed.is_empty());
    body.resources = allowed;
    req.split(
        any_denied,
        any_allowed,
        &body,
        move |r: &mut AlterConfigsResponse| r.responses.extend(denied),
    )
}

/// IncrementalAlterConfigs: as [`alter_configs`].
pub(super) fn incremental_alter_configs(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let mut body: IncrementalAlterConfigsRequest = req.decode()?;
    let mut denied = Vec::new();
    let mut allowed = Vec::new();
    for resource in std::mem::take(&mut body.resources) {
        match check_config(
            req,
            Operation::AlterConfigs,
            resource.resource_type,
            &resource.resource_name,
        ) {
            ConfigCheck::Allowed => allowed.push(resource),
            ConfigCheck::Denied(code) => denied.push(
                incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                    .with_error_code(code)
                    .with_error_message(None)
                    .with_resource_type(resource.resource_type)
                    .with_resource_name(resource.resource_name.clone()),
            ),
            ConfigCheck::Unknown => {
                return Ok(unknown_config_type(req.api(), resource.resource_type));
            }
        }
    }
    let (any_denied, any_allowed) = (!denied.is_empty(), !allowed.is_empty());
    body.resources = allowed;
    req.split(
        any_denied,
        any_allowed,
        &body,
        move |r: &mut IncrementalAlterConfigsResponse| r.responses.extend(denied),
    )
}

fn forward_untouched() -> Action {
    Action::Forward {
        frame: None,
        patch: None,
    }
}
