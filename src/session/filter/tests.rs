//! The response chain on wire frames (the harness the ACL tests use): which answers are
//! decoded, what each filter changes, and that an answer is decoded and encoded once.

#![allow(
    clippy::unwrap_used,
    reason = "in a test, a panic is the failure report"
)]

use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponseTopic};
use kafka_protocol::messages::{
    ApiKey as MessageKey, ApiVersionsResponse, BrokerId, JoinGroupResponse, MetadataResponse,
    TopicName,
};

use super::rewrite::AddressRewrite;
use super::{Response, ResponseChain};
use crate::acl::apis::api_versions_patch;
use crate::acl::patch::patch_body;
use crate::kafka::ApiKey;
use crate::kafka::rewrite::testing::{PROXY_HOST, TestMapper, proxy_port, upstream_host};
use crate::test_support::{api_versions_response, decode_response_frame, response_frame, sb};

fn chain() -> ResponseChain {
    ResponseChain::new(AddressRewrite::new(Arc::new(TestMapper::default())))
}

fn metadata(topics: &[&str]) -> MetadataResponse {
    MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(1))
                .with_host(sb(&upstream_host(1)))
                .with_port(9092),
        ])
        .with_topics(
            topics
                .iter()
                .map(|t| MetadataResponseTopic::default().with_name(Some(TopicName(sb(t)))))
                .collect(),
        )
}

#[test]
fn an_answer_no_filter_wants_is_not_decoded_and_leaves_as_the_same_bytes() {
    let chain = chain();
    assert!(!chain.wants(ApiKey::JOIN_GROUP, 9, false));
    assert!(!chain.wants(ApiKey::PRODUCE, 9, false));
    // A patch alone makes the chain want it.
    assert!(chain.wants(ApiKey::JOIN_GROUP, 9, true));
    let frame = response_frame(MessageKey::JoinGroup, 9, 4, &JoinGroupResponse::default());
    let mut response = Response::new(ApiKey::JOIN_GROUP, 9, frame.clone());
    chain.on_response(&mut response, None).unwrap();
    let out = response.into_frame().unwrap();
    assert_eq!(out.as_ptr(), frame.as_ptr(), "the very same buffer");
}

#[test]
fn metadata_under_acls_is_rewritten_and_filtered_from_one_decode() {
    let frame = response_frame(MessageKey::Metadata, 12, 7, &metadata(&["payments", "hr"]));
    let mut response = Response::new(ApiKey::METADATA, 12, frame);
    let acl = patch_body(|r: &mut MetadataResponse| {
        r.topics
            .retain(|t| t.name.as_ref().is_some_and(|n| n.0.as_str() != "hr"));
    });
    chain().on_response(&mut response, Some(acl)).unwrap();
    assert_eq!(response.brokers_named.len(), 1);
    assert_eq!(response.brokers_named[0].host, upstream_host(1));
    let out = response.into_frame().unwrap();
    let (header, body): (_, MetadataResponse) =
        decode_response_frame(MessageKey::Metadata, 12, &out);
    assert_eq!(header.correlation_id, 7);
    assert_eq!(body.brokers[0].host.as_str(), PROXY_HOST);
    assert_eq!(body.brokers[0].port, proxy_port(1));
    let topics: Vec<&str> = body
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.as_str()))
        .collect();
    assert_eq!(topics, ["payments"]);
}

#[test]
fn api_versions_is_narrowed_by_the_proxy_table_then_by_acls() {
    // Produce 0..13, SaslHandshake (never offered), DescribeAcls (no authorizer under ACLs).
    let apis = [(0, 0, 13), (17, 0, 1), (29, 0, 3)];
    let frame = api_versions_response(3, 2, 0, &apis).unwrap();
    let mut without = Response::new(ApiKey::API_VERSIONS, 3, frame.clone());
    chain().on_response(&mut without, None).unwrap();
    let mut with = Response::new(ApiKey::API_VERSIONS, 3, frame);
    chain()
        .on_response(&mut with, Some(api_versions_patch()))
        .unwrap();
    let keys = |response: Response| -> Vec<i16> {
        let out = response.into_frame().unwrap();
        let (_, body): (_, ApiVersionsResponse) =
            crate::kafka::codec::decode_response(&out, 0, 3).unwrap();
        body.api_keys.iter().map(|a| a.api_key).collect()
    };
    assert_eq!(keys(without), [0, 29]);
    assert_eq!(keys(with), [0]);
}

#[test]
fn a_broker_the_proxy_has_no_port_for_is_a_rewrite_failure() {
    let frame = response_frame(MessageKey::Metadata, 12, 1, &metadata(&[]));
    let mut response = Response::new(ApiKey::METADATA, 12, frame);
    let chain = ResponseChain::new(AddressRewrite::new(Arc::new(TestMapper {
        unmapped: vec![1],
    })));
    let end = chain.on_response(&mut response, None).err().unwrap();
    assert!(
        end.to_string()
            .starts_with("cannot rewrite the upstream response"),
        "{end}"
    );
}

#[test]
fn a_response_is_decoded_once_however_many_filters_ask() {
    let frame = response_frame(MessageKey::Metadata, 12, 1, &metadata(&["a"]));
    let mut response = Response::new(ApiKey::METADATA, 12, frame.clone());
    let first: *const _ = response.body().unwrap();
    let second: *const _ = response.body().unwrap();
    assert_eq!(first, second, "the same decoded body");
    // Nobody changed it: it leaves as it came.
    assert_eq!(response.into_frame().unwrap().as_ptr(), frame.as_ptr());
}
