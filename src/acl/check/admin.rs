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
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
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
    OffsetForLeaderEpochResponse, alter_configs_request, alter_configs_response,
    incremental_alter_configs_request, incremental_alter_configs_response,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::{Action, Request};
use crate::acl::rules::{Operation, ResourceType};
use crate::kafka::{ErrorCode, ProtocolError, ResponseBody};

/// Kafka's `DeleteRecordsResponse.INVALID_LOW_WATERMARK`, the low watermark of a partition
/// that was not deleted from.
const INVALID_LOW_WATERMARK: i64 = -1;

/// DescribeGroups: describe on each group. A denied group is described as Kafka's
/// `DescribeGroupsResponse.groupError` does: GROUP_AUTHORIZATION_FAILED, empty state, protocol
/// and members, authorized operations omitted.
pub(super) fn describe_groups(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let body: DescribeGroupsRequest = req.decode()?;
    req.check_each(
        body,
        |b| &mut b.groups,
        |req, group| req.allowed(Operation::Describe, ResourceType::Group, group),
        |group| {
            DescribedGroup::default()
                .with_group_id(group)
                .with_error_code(ErrorCode::GROUP_AUTHORIZATION_FAILED.into())
        },
        |r: &mut DescribeGroupsResponse| &mut r.groups,
    )
}

/// ListGroups: describe on the cluster lists every group; otherwise the broker's listing is
/// filtered to the groups the connection may describe. Like Kafka (which checks with
/// `logIfDenied = false`), filtering is not a denial: the client named no group.
pub(super) fn list_groups(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    // Decoded only to refuse a malformed body before it reaches the broker.
    let _body: ListGroupsRequest = req.decode()?;
    if req.permissions.allows_cluster(Operation::Describe) {
        return Ok(Action::forward_untouched());
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
    let body: DeleteGroupsRequest = req.decode()?;
    req.check_each(
        body,
        |b| &mut b.groups_names,
        |req, group| req.allowed(Operation::Delete, ResourceType::Group, group),
        |group| {
            DeletableGroupResult::default()
                .with_group_id(group)
                .with_error_code(ErrorCode::GROUP_AUTHORIZATION_FAILED.into())
        },
        |r: &mut DeleteGroupsResponse| &mut r.results,
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
        let r = OffsetDeleteResponse::default()
            .with_error_code(ErrorCode::GROUP_AUTHORIZATION_FAILED.into());
        return Ok(Action::Answer(Some(req.answer(&r)?)));
    }
    let denied = req.take_denied(&mut body.topics, |req, topic| {
        req.allowed(Operation::Read, ResourceType::Topic, &topic.name)
    });
    if denied.is_empty() {
        return Ok(Action::forward_untouched());
    }
    let denied: Vec<_> = denied
        .into_iter()
        .map(|topic| {
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .map(|p| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.into())
                        })
                        .collect(),
                )
        })
        .collect();
    Ok(Action::Forward {
        frame: Some(req.narrowed(&body)?),
        patch: Some(req.patch(move |r: &mut OffsetDeleteResponse| r.topics.extend(denied))),
    })
}

/// DeleteRecords: delete on each topic; a denied topic's partitions get
/// TOPIC_AUTHORIZATION_FAILED and an invalid low watermark.
pub(super) fn delete_records(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let body: DeleteRecordsRequest = req.decode()?;
    req.check_each(
        body,
        |b| &mut b.topics,
        |req, topic| req.allowed(Operation::Delete, ResourceType::Topic, &topic.name),
        |topic| {
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .map(|p| {
                            DeleteRecordsPartitionResult::default()
                                .with_partition_index(p.partition_index)
                                .with_low_watermark(INVALID_LOW_WATERMARK)
                                .with_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.into())
                        })
                        .collect(),
                )
        },
        |r: &mut DeleteRecordsResponse| &mut r.topics,
    )
}

/// CreatePartitions: alter on each topic; a denied topic's result carries
/// TOPIC_AUTHORIZATION_FAILED (and a null message: the client falls back to the error's own).
pub(super) fn create_partitions(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let body: CreatePartitionsRequest = req.decode()?;
    req.check_each(
        body,
        |b| &mut b.topics,
        |req, topic| req.allowed(Operation::Alter, ResourceType::Topic, &topic.name),
        |topic| {
            CreatePartitionsTopicResult::default()
                .with_name(topic.name)
                .with_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.into())
                .with_error_message(None)
        },
        |r: &mut CreatePartitionsResponse| &mut r.results,
    )
}

/// OffsetForLeaderEpoch: describe on each topic (KIP-320: consumers use it to detect log
/// truncation). A replica id of a broker (≥ 0) means a follower's request, which needs
/// cluster_action — an operation the proxy's rules cannot grant — so it is refused; clients
/// send -1 (consumer) or -2 (debugging, also the default of versions without the field).
pub(super) fn offset_for_leader_epoch(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let body: OffsetForLeaderEpochRequest = req.decode()?;
    let replica = body.replica_id.0;
    if replica >= 0 {
        return Ok(Action::Refuse(format!(
            "OffsetForLeaderEpoch as replica {replica}: follower requests come from brokers, not \
             clients"
        )));
    }
    req.check_each(
        body,
        |b| &mut b.topics,
        |req, topic| req.allowed(Operation::Describe, ResourceType::Topic, &topic.topic),
        |topic| {
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .map(|p| {
                            // Leader epoch and end offset keep their defaults (-1), as in
                            // Kafka's answer for an unauthorized partition.
                            EpochEndOffset::default()
                                .with_partition(p.partition)
                                .with_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.into())
                        })
                        .collect(),
                )
        },
        |r: &mut OffsetForLeaderEpochResponse| &mut r.topics,
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

/// A config resource type Kafka itself rejects (InvalidRequestException): there is nothing to
/// authorize it by, so the request is refused.
struct UnknownConfigType(i8);

/// What the config check reads of a resource entry, the same in the three config requests.
trait ConfigResource {
    fn resource_type(&self) -> i8;
    fn resource_name(&self) -> &str;
}

macro_rules! config_resource {
    ($($entry:ty),+) => {$(
        impl ConfigResource for $entry {
            fn resource_type(&self) -> i8 {
                self.resource_type
            }
            fn resource_name(&self) -> &str {
                &self.resource_name
            }
        }
    )+};
}

config_resource!(
    DescribeConfigsResource,
    alter_configs_request::AlterConfigsResource,
    incremental_alter_configs_request::AlterConfigsResource
);

/// Kafka's config authorization: topic resources on the topic, group resources on the group,
/// broker, broker-logger and client-metrics resources on the cluster.
fn config_allowed(
    req: &mut Request<'_>,
    op: Operation,
    resource: &impl ConfigResource,
) -> Result<bool, UnknownConfigType> {
    let name = resource.resource_name();
    Ok(match resource.resource_type() {
        config_type::TOPIC => req.allowed(op, ResourceType::Topic, name),
        config_type::GROUP => req.allowed(op, ResourceType::Group, name),
        config_type::BROKER | config_type::BROKER_LOGGER | config_type::CLIENT_METRICS => {
            req.allowed_cluster(op)
        }
        other => return Err(UnknownConfigType(other)),
    })
}

/// The error Kafka gives a denied config resource of this type (one [`config_allowed`] knows).
fn config_error_code(resource_type: i8) -> ErrorCode {
    match resource_type {
        config_type::TOPIC => ErrorCode::TOPIC_AUTHORIZATION_FAILED,
        config_type::GROUP => ErrorCode::GROUP_AUTHORIZATION_FAILED,
        _ => ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
    }
}

/// Kafka's `Errors.message()` for the authorization errors, which DescribeConfigs puts in each
/// denied result.
fn error_message(code: ErrorCode) -> StrBytes {
    StrBytes::from_static_str(match code {
        ErrorCode::TOPIC_AUTHORIZATION_FAILED => "Topic authorization failed.",
        ErrorCode::GROUP_AUTHORIZATION_FAILED => "Group authorization failed.",
        _ => "Cluster authorization failed.",
    })
}

/// The check of the three config APIs: `op` on each resource of the body's list `resources`
/// (see [`config_allowed`]); `denied_result` gives a denied resource's result from its name,
/// type and error code, which goes into the response's list `results`.
fn check_configs<Body, Resource, Denied, Resp>(
    req: &mut Request<'_>,
    op: Operation,
    mut body: Body,
    resources: impl FnOnce(&mut Body) -> &mut Vec<Resource>,
    denied_result: impl Fn(Resource, ErrorCode) -> Denied,
    results: fn(&mut Resp) -> &mut Vec<Denied>,
) -> Result<Action, ProtocolError>
where
    Body: Encodable,
    Resource: ConfigResource,
    Denied: Send + Sync + 'static,
    Resp: ResponseBody + Encodable + Default,
{
    let resources = resources(&mut body);
    let denied = match req
        .try_take_denied(resources, |req, resource| config_allowed(req, op, resource))
    {
        Ok(denied) => denied,
        Err(UnknownConfigType(resource_type)) => {
            return Ok(Action::Refuse(format!(
                "{:?} names config resource type {resource_type}, which the proxy cannot authorize",
                req.key
            )));
        }
    };
    let any_allowed = !resources.is_empty();
    let denied = denied
        .into_iter()
        .map(|resource| {
            let code = config_error_code(resource.resource_type());
            denied_result(resource, code)
        })
        .collect();
    req.split_denied(&body, any_allowed, denied, results)
}

/// DescribeConfigs: describe_configs on each resource (see [`config_allowed`]); a denied
/// resource's result carries the authorization error and its message, and no configs.
pub(super) fn describe_configs(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let body: DescribeConfigsRequest = req.decode()?;
    check_configs(
        req,
        Operation::DescribeConfigs,
        body,
        |b| &mut b.resources,
        |resource, code| {
            DescribeConfigsResult::default()
                .with_error_code(code.into())
                .with_error_message(Some(error_message(code)))
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name)
        },
        |r: &mut DescribeConfigsResponse| &mut r.results,
    )
}

/// AlterConfigs: alter_configs on each resource (see [`config_allowed`]); a denied resource's
/// response carries the authorization error and, as Kafka's `ApiError(error, null)`, no
/// message.
pub(super) fn alter_configs(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let body: AlterConfigsRequest = req.decode()?;
    check_configs(
        req,
        Operation::AlterConfigs,
        body,
        |b| &mut b.resources,
        |resource, code| {
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code.into())
                .with_error_message(None)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name)
        },
        |r: &mut AlterConfigsResponse| &mut r.responses,
    )
}

/// IncrementalAlterConfigs: as [`alter_configs`].
pub(super) fn incremental_alter_configs(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let body: IncrementalAlterConfigsRequest = req.decode()?;
    check_configs(
        req,
        Operation::AlterConfigs,
        body,
        |b| &mut b.resources,
        |resource, code| {
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code.into())
                .with_error_message(None)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name)
        },
        |r: &mut IncrementalAlterConfigsResponse| &mut r.responses,
    )
}
