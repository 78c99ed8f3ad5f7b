//! Transaction APIs: AddPartitionsToTxn (client versions), AddOffsetsToTxn, EndTxn and
//! TxnOffsetCommit.
//!
//! Every one needs write on the transactional id first; Kafka answers a refusal with
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED before looking at anything else, so the other
//! resources are then not checked (and not reported as denied).

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestTopic;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, GroupId, TransactionalId,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};

use super::{Action, Request};
use crate::acl::rules::{Operation, ResourceType};
use crate::kafka::{ErrorCode, ProtocolError};

/// AddPartitionsToTxn v0–3 (v4+, the brokers' batched form, is refused before it gets here: see
/// `apis::range_with_acls`): write on the transactional id (refused: every partition gets
/// TRANSACTIONAL_ID_AUTHORIZATION_FAILED), then write on each topic. As in Kafka, one refused
/// topic fails the whole request: its partitions get TOPIC_AUTHORIZATION_FAILED, the others
/// OPERATION_NOT_ATTEMPTED, and nothing is added — so the proxy answers alone and the broker
/// never sees it.
pub(super) fn add_partitions_to_txn(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let body: AddPartitionsToTxnRequest = req.decode()?;
    let txn_allowed = req.allowed(
        Operation::Write,
        ResourceType::TransactionalId,
        &body.v3_and_below_transactional_id,
    );
    // Checked for every topic (not stopping at the first refusal) so that every denied topic is
    // reported, as Kafka's `filterByAuthorized` does.
    let topic_allowed: Vec<bool> = body
        .v3_and_below_topics
        .iter()
        .map(|t| txn_allowed && req.allowed(Operation::Write, ResourceType::Topic, &t.name))
        .collect();
    if txn_allowed && topic_allowed.iter().all(|ok| *ok) {
        return Ok(Action::forward_untouched());
    }
    let results = body
        .v3_and_below_topics
        .iter()
        .zip(&topic_allowed)
        .map(|(topic, &ok)| {
            let code = match (txn_allowed, ok) {
                (false, _) => ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                (true, false) => ErrorCode::TOPIC_AUTHORIZATION_FAILED,
                (true, true) => ErrorCode::OPERATION_NOT_ATTEMPTED,
            };
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name.clone())
                .with_results_by_partition(
                    topic
                        .partitions
                        .iter()
                        .map(|&p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(p)
                                .with_partition_error_code(code.into())
                        })
                        .collect(),
                )
        })
        .collect();
    let r = AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    Ok(Action::Answer(Some(req.answer(&r)?)))
}

/// AddOffsetsToTxn: write on the transactional id, then read on the group; the single error
/// code says which was refused.
pub(super) fn add_offsets_to_txn(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let body: AddOffsetsToTxnRequest = req.decode()?;
    let Some(code) = txn_then_group_refused(req, &body.transactional_id, &body.group_id) else {
        return Ok(Action::forward_untouched());
    };
    let r = AddOffsetsToTxnResponse::default().with_error_code(code.into());
    Ok(Action::Answer(Some(req.answer(&r)?)))
}

/// EndTxn: write on the transactional id. The refusal keeps the producer id and epoch at -1
/// (their defaults), as Kafka's.
pub(super) fn end_txn(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let body: EndTxnRequest = req.decode()?;
    if req.allowed(
        Operation::Write,
        ResourceType::TransactionalId,
        &body.transactional_id,
    ) {
        return Ok(Action::forward_untouched());
    }
    let r = EndTxnResponse::default()
        .with_error_code(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.into());
    Ok(Action::Answer(Some(req.answer(&r)?)))
}

/// TxnOffsetCommit: write on the transactional id, then read on the group (either refused:
/// every partition of the request gets that error, Kafka's `getErrorResponse`), then read on
/// each topic (refused: its partitions get TOPIC_AUTHORIZATION_FAILED, the rest is committed).
/// With no topic left Kafka answers without its coordinator, as the proxy then does.
pub(super) fn txn_offset_commit(req: &mut Request<'_>) -> Result<Action, ProtocolError> {
    let body: TxnOffsetCommitRequest = req.decode()?;
    if let Some(code) = txn_then_group_refused(req, &body.transactional_id, &body.group_id) {
        let topics = body.topics.iter().map(|t| commit_error(t, code)).collect();
        let r = TxnOffsetCommitResponse::default().with_topics(topics);
        return Ok(Action::Answer(Some(req.answer(&r)?)));
    }
    req.check_each(
        body,
        |b| &mut b.topics,
        |req, topic| req.allowed(Operation::Read, ResourceType::Topic, &topic.name),
        |topic| commit_error(&topic, ErrorCode::TOPIC_AUTHORIZATION_FAILED),
        |r: &mut TxnOffsetCommitResponse| &mut r.topics,
    )
}

/// Write on the transactional id, then read on the group, in Kafka's order: the error of the
/// first one refused (the group is not checked, nor reported, when the transactional id is
/// refused), or `None` when both are allowed.
fn txn_then_group_refused(
    req: &mut Request<'_>,
    transactional_id: &TransactionalId,
    group_id: &GroupId,
) -> Option<ErrorCode> {
    if !req.allowed(
        Operation::Write,
        ResourceType::TransactionalId,
        transactional_id,
    ) {
        Some(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    } else if !req.allowed(Operation::Read, ResourceType::Group, group_id) {
        Some(ErrorCode::GROUP_AUTHORIZATION_FAILED)
    } else {
        None
    }
}

fn commit_error(
    topic: &TxnOffsetCommitRequestTopic,
    code: ErrorCode,
) -> TxnOffsetCommitResponseTopic {
    TxnOffsetCommitResponseTopic::default()
        .with_name(topic.name.clone())
        .with_partitions(
            topic
                .partitions
                .iter()
                .map(|p| {
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code.into())
                })
                .collect(),
        )
}
