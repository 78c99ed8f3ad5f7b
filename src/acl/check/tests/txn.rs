//! Tests of `check/txn.rs`: AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit.

use super::*;

// ---------------------------------------------------------------------------------------------
// Transactions

pub(super) fn add_partitions(t: &str, names: &[&str]) -> AddPartitionsToTxnRequest {
    use add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(txn(t))
        .with_v3_and_below_producer_id(ProducerId(1))
        .with_v3_and_below_topics(
            names
                .iter()
                .map(|n| {
                    AddPartitionsToTxnTopic::default()
                        .with_name(topic(n))
                        .with_partitions(vec![0, 1])
                })
                .collect(),
        )
}

fn add_partitions_codes(r: &AddPartitionsToTxnResponse) -> Vec<(String, i32, i16)> {
    r.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition.iter().map(|p| {
                (
                    t.name.to_string(),
                    p.partition_index,
                    p.partition_error_code,
                )
            })
        })
        .collect()
}

#[test]
fn add_partitions_to_txn_fails_whole_when_a_topic_is_denied() {
    for v in [2, ADD_PARTITIONS_TO_TXN_MAX_CLIENT_VERSION] {
        assert_untouched(&run(
            &ok_prefix(),
            ApiKey::AddPartitionsToTxn,
            v,
            &add_partitions("ok-t", &["ok-a"]),
        ));

        let c = run(
            &ok_prefix(),
            ApiKey::AddPartitionsToTxn,
            v,
            &add_partitions("ok-t", &["ok-a", "no-b"]),
        );
        assert_eq!(denials(&c), vec![(T, "no-b".into(), Operation::Write)]);
        let resp: AddPartitionsToTxnResponse = answered(c, ApiKey::AddPartitionsToTxn, v);
        assert_eq!(
            add_partitions_codes(&resp),
            vec![
                ("ok-a".into(), 0, OPERATION_NOT_ATTEMPTED),
                ("ok-a".into(), 1, OPERATION_NOT_ATTEMPTED),
                ("no-b".into(), 0, TOPIC_AUTHORIZATION_FAILED),
                ("no-b".into(), 1, TOPIC_AUTHORIZATION_FAILED),
            ]
        );

        let c = run(
            &ok_prefix(),
            ApiKey::AddPartitionsToTxn,
            v,
            &add_partitions("no-t", &["ok-a"]),
        );
        assert_eq!(denials(&c), vec![(X, "no-t".into(), Operation::Write)]);
        let resp: AddPartitionsToTxnResponse = answered(c, ApiKey::AddPartitionsToTxn, v);
        assert_eq!(
            add_partitions_codes(&resp),
            vec![
                ("ok-a".into(), 0, TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
                ("ok-a".into(), 1, TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
            ]
        );
    }
}

#[test]
fn add_partitions_to_txn_from_brokers_is_refused() {
    use add_partitions_to_txn_request::AddPartitionsToTxnTransaction;
    let body = AddPartitionsToTxnRequest::default().with_transactions(vec![
        AddPartitionsToTxnTransaction::default().with_transactional_id(txn("ok-t")),
    ]);
    let c = run(&everything(), ApiKey::AddPartitionsToTxn, 4, &body);
    assert!(matches!(c.action, Action::Refuse(_)), "{c:?}");
}

#[test]
fn add_offsets_to_txn_needs_write_on_the_transactional_id_then_read_on_the_group() {
    let body = |t: &str, g: &str| {
        AddOffsetsToTxnRequest::default()
            .with_transactional_id(txn(t))
            .with_group_id(group(g))
    };
    for v in [2, 3] {
        assert_untouched(&run(
            &ok_prefix(),
            ApiKey::AddOffsetsToTxn,
            v,
            &body("ok-t", "ok-g"),
        ));
        let c = run(
            &ok_prefix(),
            ApiKey::AddOffsetsToTxn,
            v,
            &body("no-t", "no-g"),
        );
        assert_eq!(denials(&c), vec![(X, "no-t".into(), Operation::Write)]);
        let resp: AddOffsetsToTxnResponse = answered(c, ApiKey::AddOffsetsToTxn, v);
        assert_eq!(resp.error_code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
        let c = run(
            &ok_prefix(),
            ApiKey::AddOffsetsToTxn,
            v,
            &body("ok-t", "no-g"),
        );
        assert_eq!(denials(&c), vec![(G, "no-g".into(), Operation::Read)]);
        let resp: AddOffsetsToTxnResponse = answered(c, ApiKey::AddOffsetsToTxn, v);
        assert_eq!(resp.error_code, GROUP_AUTHORIZATION_FAILED);
    }
}

#[test]
fn end_txn_needs_write_on_the_transactional_id() {
    let body = |t: &str| {
        EndTxnRequest::default()
            .with_transactional_id(txn(t))
            .with_committed(true)
    };
    for v in [2, 3, 5] {
        assert_untouched(&run(&ok_prefix(), ApiKey::EndTxn, v, &body("ok-t")));
        let c = run(&ok_prefix(), ApiKey::EndTxn, v, &body("no-t"));
        assert_eq!(denials(&c), vec![(X, "no-t".into(), Operation::Write)]);
        let resp: EndTxnResponse = answered(c, ApiKey::EndTxn, v);
        assert_eq!(resp.error_code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    }
}

pub(super) fn txn_commit(t: &str, g: &str, names: &[&str]) -> TxnOffsetCommitRequest {
    use txn_offset_commit_request::{TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic};
    TxnOffsetCommitRequest::default()
        .with_transactional_id(txn(t))
        .with_group_id(group(g))
        .with_topics(
            names
                .iter()
                .map(|n| {
                    TxnOffsetCommitRequestTopic::default()
                        .with_name(topic(n))
                        .with_partitions(vec![
                            TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(8),
                        ])
                })
                .collect(),
        )
}

fn txn_commit_codes(r: &TxnOffsetCommitResponse) -> Vec<(String, i16)> {
    r.topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.error_code))
        })
        .collect()
}

#[test]
fn txn_offset_commit_checks_transactional_id_group_then_topics() {
    use txn_offset_commit_response::{
        TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
    };
    for v in [2, 3] {
        assert_untouched(&run(
            &ok_prefix(),
            ApiKey::TxnOffsetCommit,
            v,
            &txn_commit("ok-t", "ok-g", &["ok-a"]),
        ));

        let c = run(
            &ok_prefix(),
            ApiKey::TxnOffsetCommit,
            v,
            &txn_commit("ok-t", "ok-g", &["ok-a", "no-b"]),
        );
        assert_eq!(denials(&c), vec![(T, "no-b".into(), Operation::Read)]);
        let broker = TxnOffsetCommitResponse::default().with_topics(vec![
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic("ok-a"))
                .with_partitions(vec![TxnOffsetCommitResponsePartition::default()]),
        ]);
        let (req, resp): (TxnOffsetCommitRequest, TxnOffsetCommitResponse) =
            split(c, ApiKey::TxnOffsetCommit, v, &broker);
        assert_eq!(req.topics.len(), 1);
        assert_eq!(
            txn_commit_codes(&resp),
            vec![
                ("ok-a".into(), 0),
                ("no-b".into(), TOPIC_AUTHORIZATION_FAILED)
            ]
        );

        let resp: TxnOffsetCommitResponse = answered(
            run(
                &ok_prefix(),
                ApiKey::TxnOffsetCommit,
                v,
                &txn_commit("ok-t", "ok-g", &["no-b"]),
            ),
            ApiKey::TxnOffsetCommit,
            v,
        );
        assert_eq!(
            txn_commit_codes(&resp),
            vec![("no-b".into(), TOPIC_AUTHORIZATION_FAILED)]
        );

        let c = run(
            &ok_prefix(),
            ApiKey::TxnOffsetCommit,
            v,
            &txn_commit("no-t", "no-g", &["ok-a", "no-b"]),
        );
        assert_eq!(denials(&c), vec![(X, "no-t".into(), Operation::Write)]);
        let resp: TxnOffsetCommitResponse = answered(c, ApiKey::TxnOffsetCommit, v);
        assert_eq!(
            txn_commit_codes(&resp),
            vec![
                ("ok-a".into(), TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
                ("no-b".into(), TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
            ]
        );

        let c = run(
            &ok_prefix(),
            ApiKey::TxnOffsetCommit,
            v,
            &txn_commit("ok-t", "no-g", &["ok-a"]),
        );
        assert_eq!(denials(&c), vec![(G, "no-g".into(), Operation::Read)]);
        let resp: TxnOffsetCommitResponse = answered(c, ApiKey::TxnOffsetCommit, v);
        assert_eq!(
            txn_commit_codes(&resp),
            vec![("ok-a".into(), GROUP_AUTHORIZATION_FAILED)]
        );
    }
}
