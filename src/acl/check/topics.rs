//! Topic APIs: Produce, Fetch, ListOffsets, Metadata, CreateTopics, DeleteTopics.
//!
//! Each denied topic gets TOPIC_AUTHORIZATION_FAILED in its own entry of the response, next to
//! the broker's answers for the allowed ones — per topic, as a broker does.

use std::sync::Arc;

use bytes::Bytes;
use kafka_protocol::messages::ResponseKind;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{Action, Request};
use crate::acl::patch::{Patched, ResponsePatch};
use crate::acl::permissions::Permissions;
use crate::acl::rules::{Operation, ResourceType};
use crate::kafka::{ErrorCode, ProtocolError, ResponseBody};

const AUTHORIZATION_FAILED_MESSAGE: &str = "Authorization failed.";

fn message() -> Option<StrBytes> {
    Some(StrBytes::from_static_str(AUTHORIZATION_FAILED_MESSAGE))
}

/// Produce: write on each topic; with a transactional id, write on it first (a refusal then
/// fails every partition with TRANSACTIONAL_ID_AUTHORIZATION_FAILED). With `acks=0` nothing is
/// answered, allowed or not.
pub(super) fn produce(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let mut body: ProduceRequest = req.decode()?;
    let txn_allowed = match &body.transactional_id {
        Some(txn) => req.allowed(Operation::Write, ResourceType::TransactionalId, txn),
        None => true,
    };
    let denied = req.take_denied(&mut body.topic_data, |req, topic| {
        txn_allowed && topic_allowed(req, Operation::Write, &topic.name, topic.topic_id)
    });
    let any_allowed = !body.topic_data.is_empty();
    if body.acks == 0 && !denied.is_empty() {
        // No answer is due: drop what is denied, forward the rest.
        return Ok(if any_allowed {
            Action::Forward {
                frame: Some(req.narrowed(&body)?),
                patch: None,
            }
        } else {
            Action::Answer(None)
        });
    }
    let code = if txn_allowed {
        ErrorCode::TOPIC_AUTHORIZATION_FAILED
    } else {
        ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    };
    let denied = denied
        .into_iter()
        .map(|topic| {
            TopicProduceResponse::default()
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_partition_responses(
                    topic
                        .partition_data
                        .iter()
                        .map(|p| {
                            PartitionProduceResponse::default()
                                .with_index(p.index)
                                .with_error_code(code.into())
                                .with_base_offset(-1)
                                .with_log_append_time_ms(-1)
                                .with_log_start_offset(-1)
                        })
                        .collect(),
                )
        })
        .collect();
    req.split_denied(&body, any_allowed, denied, |r: &mut ProduceResponse| {
        &mut r.responses
    })
}

/// Fetch: read on each topic. Replica fetches (a broker's) are not accepted from clients.
pub(super) fn fetch(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let body: FetchRequest = req.decode()?;
    let replica = if req.version() >= 15 {
        body.replica_state.replica_id.0
    } else {
        body.replica_id.0
    };
    if replica >= 0 {
        return Ok(Action::Refuse(format!(
            "Fetch as replica {replica}: replica fetches come from brokers, not clients"
        )));
    }
    let incremental = body.session_epoch > 0;
    let action = req.check_each(
        body,
        |b| &mut b.topics,
        |req, topic| topic_allowed(req, Operation::Read, &topic.topic, topic.topic_id),
        |topic| {
            FetchableTopicResponse::default()
                .with_topic(topic.topic)
                .with_topic_id(topic.topic_id)
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .map(|p| denied_fetch_partition(p.partition))
                        .collect(),
                )
        },
        |r: &mut FetchResponse| &mut r.responses,
    )?;
    if !incremental
        || req
            .permissions
            .allows_every(Operation::Read, ResourceType::Topic)
    {
        return Ok(action);
    }
    Ok(with_session_check(req, action))
}

fn denied_fetch_partition(partition: i32) -> PartitionData {
    PartitionData::default()
        .with_partition_index(partition)
        .with_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.into())
        .with_high_watermark(-1)
        .with_last_stable_offset(-1)
        .with_log_start_offset(-1)
        .with_aborted_transactions(Some(Vec::new()))
        .with_records(Some(Bytes::new()))
}

/// An incremental fetch (session epoch > 0) names only what changed, but the broker also
/// answers for every partition already in the session — one the client may have set up on an
/// earlier connection, or before a reload took the right away. So its answer is checked as well:
/// a topic the connection may not read comes back as TOPIC_AUTHORIZATION_FAILED, without its
/// records. The answer is decoded (records stay slices of the frame) and re-encoded only when a
/// topic had to be withheld.
fn with_session_check(req: &Request<'_>, action: Action) -> Action {
    let Action::Forward { frame, patch } = action else {
        return action;
    };
    let permissions = Arc::clone(req.permissions);
    let check: ResponsePatch = Box::new(move |answer: &mut ResponseKind| {
        let body = FetchResponse::of(answer)?;
        let mut withheld = false;
        for topic in &mut body.responses {
            if !permissions.allows(Operation::Read, ResourceType::Topic, &topic.topic) {
                withheld = true;
                for partition in &mut topic.partitions {
                    *partition = denied_fetch_partition(partition.partition_index);
                }
            }
        }
        Ok(if withheld {
            Patched::Changed
        } else {
            Patched::Unchanged
        })
    });
    let patch: ResponsePatch = match patch {
        None => check,
        Some(add_denied) => Box::new(move |answer: &mut ResponseKind| {
            let checked = check(answer)?;
            Ok(checked.or(add_denied(answer)?))
        }),
    };
    Action::Forward {
        frame,
        patch: Some(patch),
    }
}

/// A topic a request names, by name or — from versions with topic ids — by id. A topic given
/// by id is allowed only when the operation is allowed on every topic name: the proxy does not
/// know which name an id stands for.
fn topic_allowed(
    req: &mut Request<'_>,
    op: Operation,
    name: &TopicName,
    topic_id: uuid::Uuid,
) -> bool {
    // A broker answers for the id whenever one is given, whatever the name says (Metadata
    // v10+): a name next to an id must not stand in for it.
    if topic_id.is_nil() {
        return req.allowed(op, ResourceType::Topic, name);
    }
    if req.permissions.allows_every(op, ResourceType::Topic) {
        return true;
    }
    req.deny(op, ResourceType::Topic, &format!("id:{topic_id}"));
    false
}

/// ListOffsets: describe on each topic.
pub(super) fn list_offsets(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let body: ListOffsetsRequest = req.decode()?;
    req.check_each(
        body,
        |b| &mut b.topics,
        |req, topic| req.allowed(Operation::Describe, ResourceType::Topic, &topic.name),
        |topic| {
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .map(|p| {
                            ListOffsetsPartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.into())
                                .with_timestamp(-1)
                                .with_offset(-1)
                                .with_leader_epoch(-1)
                        })
                        .collect(),
                )
        },
        |r: &mut ListOffsetsResponse| &mut r.topics,
    )
}

/// Metadata: a listing of every topic shows only the topics the connection may describe (as a
/// broker filters it); named topics it may not describe are answered with
/// TOPIC_AUTHORIZATION_FAILED and never auto-created. Metadata always reaches the broker — the
/// client needs its broker list even when every topic it asked for is denied.
///
/// Filtering a listing is not a denial (nothing the client asked for by name was refused), so
/// it writes no audit record.
pub(super) fn metadata(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    // Offered from v4 only (`apis::METADATA_MIN_WITH_ACLS`): null is the listing of every topic.
    let mut body: MetadataRequest = req.decode()?;
    let permissions = Arc::clone(req.permissions);
    let Some(mut allowed) = body.topics.take() else {
        if permissions.allows_every(Operation::Describe, ResourceType::Topic) {
            return Ok(Action::forward_untouched());
        }
        return Ok(Action::Forward {
            frame: None,
            patch: Some(req.patch(move |r: &mut MetadataResponse| {
                r.topics
                    .retain(|t| may_describe(&permissions, t.name.as_ref()))
            })),
        });
    };
    let denied = req.take_denied(&mut allowed, |req, topic| {
        let name = topic.name.clone().unwrap_or_default();
        topic_allowed(req, Operation::Describe, &name, topic.topic_id)
    });
    let may_create_all = allowed
        .iter()
        .filter_map(|topic| topic.name.as_ref())
        .all(|name| {
            permissions.allows_cluster(Operation::Create)
                || permissions.allows(Operation::Create, ResourceType::Topic, name)
        });
    let denied: Vec<MetadataResponseTopic> = denied
        .into_iter()
        .map(|topic| {
            MetadataResponseTopic::default()
                .with_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.into())
                .with_name(topic.name)
                .with_topic_id(topic.topic_id)
                .with_topic_authorized_operations(i32::MIN)
        })
        .collect();
    let narrowed = if denied.is_empty() && (may_create_all || !body.allow_auto_topic_creation) {
        None
    } else {
        // A topic the connection may not create is not auto-created on its behalf.
        body.allow_auto_topic_creation &= may_create_all;
        body.topics = Some(allowed);
        Some(req.narrowed(&body)?)
    };
    // The broker's answer is filtered too, whatever was asked: a topic the connection may not
    // describe never reaches it, however the request named it.
    let patch = req.patch(move |r: &mut MetadataResponse| {
        r.topics
            .retain(|t| may_describe(&permissions, t.name.as_ref()));
        r.topics.extend(denied);
    });
    Ok(Action::Forward {
        frame: narrowed,
        patch: Some(patch),
    })
}

fn may_describe(permissions: &Permissions, name: Option<&TopicName>) -> bool {
    match name {
        Some(name) => permissions.allows(Operation::Describe, ResourceType::Topic, name),
        None => permissions.allows_every(Operation::Describe, ResourceType::Topic),
    }
}

/// CreateTopics: create on the cluster, or create on the topic.
pub(super) fn create_topics(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let body: CreateTopicsRequest = req.decode()?;
    let cluster_create = req.permissions.allows_cluster(Operation::Create);
    req.check_each(
        body,
        |b| &mut b.topics,
        |req, topic| {
            cluster_create || req.allowed(Operation::Create, ResourceType::Topic, &topic.name)
        },
        |topic| {
            CreatableTopicResult::default()
                .with_name(topic.name)
                .with_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.into())
                .with_error_message(message())
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_configs(None)
        },
        |r: &mut CreateTopicsResponse| &mut r.topics,
    )
}

/// DeleteTopics: delete on each topic (by name before v6, by name or id from v6).
pub(super) fn delete_topics(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let body: DeleteTopicsRequest = req.decode()?;
    if req.version() < 6 {
        return req.check_each(
            body,
            |b| &mut b.topic_names,
            |req, name| req.allowed(Operation::Delete, ResourceType::Topic, name),
            |name| deletable(Some(name), Default::default()),
            deleted_topics,
        );
    }
    req.check_each(
        body,
        |b| &mut b.topics,
        |req, topic| {
            let name = topic.name.clone().unwrap_or_default();
            topic_allowed(req, Operation::Delete, &name, topic.topic_id)
        },
        |topic| deletable(topic.name, topic.topic_id),
        deleted_topics,
    )
}

fn deletable(name: Option<TopicName>, topic_id: uuid::Uuid) -> DeletableTopicResult {
    DeletableTopicResult::default()
        .with_name(name)
        .with_topic_id(topic_id)
        .with_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.into())
        .with_error_message(message())
}

fn deleted_topics(r: &mut DeleteTopicsResponse) -> &mut Vec<DeletableTopicResult> {
    &mut r.responses
}
