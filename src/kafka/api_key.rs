//! Kafka api keys as an open newtype: every key this build knows has a named constant, and a key
//! it does not know (a newer client, a hostile one) still round-trips and prints readably.
//!
//! The one source of api names for logs, metrics and audit records.

use std::borrow::Cow;
use std::fmt;

use kafka_protocol::messages;

/// The api key of a request (`ApiKey::PRODUCE`), or any other 16-bit value a peer sent.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiKey(pub i16);

/// One line per key: constant = number => the protocol's name (kafka-protocol's variant). The
/// compile-time checks below tie every number to the protocol crate.
macro_rules! api_keys {
    ($($constant:ident = $value:literal => $name:ident,)+) => {
        impl ApiKey {
            $(
                pub const $constant: ApiKey = ApiKey($value);
            )+

            /// The protocol's name (`Produce`), `None` for a key this build does not know.
            pub fn name(self) -> Option<&'static str> {
                match self {
                    $(Self::$constant => Some(stringify!($name)),)+
                    _ => None,
                }
            }

            /// kafka-protocol's enum for this key, `None` for a key it does not know.
            pub fn known(self) -> Option<messages::ApiKey> {
                match self {
                    $(Self::$constant => Some(messages::ApiKey::$name),)+
                    _ => None,
                }
            }
        }

        $(
            const _: () = assert!(messages::ApiKey::$name as i16 == $value);
        )+
    };
}

api_keys! {
    PRODUCE = 0 => Produce,
    FETCH = 1 => Fetch,
    LIST_OFFSETS = 2 => ListOffsets,
    METADATA = 3 => Metadata,
    OFFSET_COMMIT = 8 => OffsetCommit,
    OFFSET_FETCH = 9 => OffsetFetch,
    FIND_COORDINATOR = 10 => FindCoordinator,
    JOIN_GROUP = 11 => JoinGroup,
    HEARTBEAT = 12 => Heartbeat,
    LEAVE_GROUP = 13 => LeaveGroup,
    SYNC_GROUP = 14 => SyncGroup,
    DESCRIBE_GROUPS = 15 => DescribeGroups,
    LIST_GROUPS = 16 => ListGroups,
    SASL_HANDSHAKE = 17 => SaslHandshake,
    API_VERSIONS = 18 => ApiVersions,
    CREATE_TOPICS = 19 => CreateTopics,
    DELETE_TOPICS = 20 => DeleteTopics,
    DELETE_RECORDS = 21 => DeleteRecords,
    INIT_PRODUCER_ID = 22 => InitProducerId,
    OFFSET_FOR_LEADER_EPOCH = 23 => OffsetForLeaderEpoch,
    ADD_PARTITIONS_TO_TXN = 24 => AddPartitionsToTxn,
    ADD_OFFSETS_TO_TXN = 25 => AddOffsetsToTxn,
    END_TXN = 26 => EndTxn,
    WRITE_TXN_MARKERS = 27 => WriteTxnMarkers,
    TXN_OFFSET_COMMIT = 28 => TxnOffsetCommit,
    DESCRIBE_ACLS = 29 => DescribeAcls,
    CREATE_ACLS = 30 => CreateAcls,
    DELETE_ACLS = 31 => DeleteAcls,
    DESCRIBE_CONFIGS = 32 => DescribeConfigs,
    ALTER_CONFIGS = 33 => AlterConfigs,
    ALTER_REPLICA_LOG_DIRS = 34 => AlterReplicaLogDirs,
    DESCRIBE_LOG_DIRS = 35 => DescribeLogDirs,
    SASL_AUTHENTICATE = 36 => SaslAuthenticate,
    CREATE_PARTITIONS = 37 => CreatePartitions,
    CREATE_DELEGATION_TOKEN = 38 => CreateDelegationToken,
    RENEW_DELEGATION_TOKEN = 39 => RenewDelegationToken,
    EXPIRE_DELEGATION_TOKEN = 40 => ExpireDelegationToken,
    DESCRIBE_DELEGATION_TOKEN = 41 => DescribeDelegationToken,
    DELETE_GROUPS = 42 => DeleteGroups,
    ELECT_LEADERS = 43 => ElectLeaders,
    INCREMENTAL_ALTER_CONFIGS = 44 => IncrementalAlterConfigs,
    ALTER_PARTITION_REASSIGNMENTS = 45 => AlterPartitionReassignments,
    LIST_PARTITION_REASSIGNMENTS = 46 => ListPartitionReassignments,
    OFFSET_DELETE = 47 => OffsetDelete,
    DESCRIBE_CLIENT_QUOTAS = 48 => DescribeClientQuotas,
    ALTER_CLIENT_QUOTAS = 49 => AlterClientQuotas,
    DESCRIBE_USER_SCRAM_CREDENTIALS = 50 => DescribeUserScramCredentials,
    ALTER_USER_SCRAM_CREDENTIALS = 51 => AlterUserScramCredentials,
    VOTE = 52 => Vote,
    BEGIN_QUORUM_EPOCH = 53 => BeginQuorumEpoch,
    END_QUORUM_EPOCH = 54 => EndQuorumEpoch,
    DESCRIBE_QUORUM = 55 => DescribeQuorum,
    ALTER_PARTITION = 56 => AlterPartition,
    UPDATE_FEATURES = 57 => UpdateFeatures,
    ENVELOPE = 58 => Envelope,
    FETCH_SNAPSHOT = 59 => FetchSnapshot,
    DESCRIBE_CLUSTER = 60 => DescribeCluster,
    DESCRIBE_PRODUCERS = 61 => DescribeProducers,
    BROKER_REGISTRATION = 62 => BrokerRegistration,
    BROKER_HEARTBEAT = 63 => BrokerHeartbeat,
    UNREGISTER_BROKER = 64 => UnregisterBroker,
    DESCRIBE_TRANSACTIONS = 65 => DescribeTransactions,
    LIST_TRANSACTIONS = 66 => ListTransactions,
    ALLOCATE_PRODUCER_IDS = 67 => AllocateProducerIds,
    CONSUMER_GROUP_HEARTBEAT = 68 => ConsumerGroupHeartbeat,
    CONSUMER_GROUP_DESCRIBE = 69 => ConsumerGroupDescribe,
    CONTROLLER_REGISTRATION = 70 => ControllerRegistration,
    GET_TELEMETRY_SUBSCRIPTIONS = 71 => GetTelemetrySubscriptions,
    PUSH_TELEMETRY = 72 => PushTelemetry,
    ASSIGN_REPLICAS_TO_DIRS = 73 => AssignReplicasToDirs,
    LIST_CONFIG_RESOURCES = 74 => ListConfigResources,
    DESCRIBE_TOPIC_PARTITIONS = 75 => DescribeTopicPartitions,
    SHARE_GROUP_HEARTBEAT = 76 => ShareGroupHeartbeat,
    SHARE_GROUP_DESCRIBE = 77 => ShareGroupDescribe,
    SHARE_FETCH = 78 => ShareFetch,
    SHARE_ACKNOWLEDGE = 79 => ShareAcknowledge,
    ADD_RAFT_VOTER = 80 => AddRaftVoter,
    REMOVE_RAFT_VOTER = 81 => RemoveRaftVoter,
    UPDATE_RAFT_VOTER = 82 => UpdateRaftVoter,
    INITIALIZE_SHARE_GROUP_STATE = 83 => InitializeShareGroupState,
    READ_SHARE_GROUP_STATE = 84 => ReadShareGroupState,
    WRITE_SHARE_GROUP_STATE = 85 => WriteShareGroupState,
    DELETE_SHARE_GROUP_STATE = 86 => DeleteShareGroupState,
    READ_SHARE_GROUP_STATE_SUMMARY = 87 => ReadShareGroupStateSummary,
    DESCRIBE_SHARE_GROUP_OFFSETS = 90 => DescribeShareGroupOffsets,
    ALTER_SHARE_GROUP_OFFSETS = 91 => AlterShareGroupOffsets,
    DELETE_SHARE_GROUP_OFFSETS = 92 => DeleteShareGroupOffsets,
}

impl ApiKey {
    /// The name, or the bare number for a key this build does not know (`"120"`): the form of
    /// metric labels, audit records and log fields.
    pub fn label(self) -> Cow<'static, str> {
        match self.name() {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(self.0.to_string()),
        }
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "api key {}", self.0),
        }
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<messages::ApiKey> for ApiKey {
    fn from(key: messages::ApiKey) -> Self {
        ApiKey(key as i16)
    }
}

impl From<i16> for ApiKey {
    fn from(value: i16) -> Self {
        ApiKey(value)
    }
}

impl From<ApiKey> for i16 {
    fn from(key: ApiKey) -> Self {
        key.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_the_protocol_crate_knows_is_named_the_same() {
        for value in i16::MIN..=i16::MAX {
            let key = ApiKey(value);
            match messages::ApiKey::try_from(value) {
                Ok(theirs) => {
                    assert_eq!(key.known(), Some(theirs));
                    assert_eq!(key.name(), Some(format!("{theirs:?}").as_str()));
                    assert_eq!(ApiKey::from(theirs), key);
                }
                Err(()) => {
                    assert_eq!(key.known(), None, "{value}");
                    assert_eq!(key.name(), None, "{value}");
                }
            }
        }
    }

    #[test]
    fn unknown_keys_round_trip_and_print_their_number() {
        let key = ApiKey::from(99);
        assert_eq!(i16::from(key), 99);
        assert_eq!(key.to_string(), "api key 99");
        assert_eq!(format!("{key:?}"), "api key 99");
        assert_eq!(key.label(), "99");
        assert_eq!(ApiKey(-1).label(), "-1");
    }

    #[test]
    fn known_keys_print_the_protocol_name() {
        assert_eq!(ApiKey::PRODUCE.to_string(), "Produce");
        assert_eq!(format!("{:?}", ApiKey::API_VERSIONS), "ApiVersions");
        assert_eq!(ApiKey::DESCRIBE_CLUSTER.label(), "DescribeCluster");
        assert_eq!(ApiKey::METADATA, ApiKey(3));
    }
}
