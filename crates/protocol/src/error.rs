//! Kafka error codes used across Sluice, by name.
//!
//! `kafka-protocol` has `ResponseError`, but it has no code for 0 and its
//! conversions are clumsy in match arms; these constants keep handler code
//! readable. Values are from Kafka's `Errors.java`.

pub type ErrorCode = i16;

pub const NONE: ErrorCode = 0;
pub const UNKNOWN_SERVER_ERROR: ErrorCode = -1;
pub const OFFSET_OUT_OF_RANGE: ErrorCode = 1;
pub const CORRUPT_MESSAGE: ErrorCode = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: ErrorCode = 3;
pub const INVALID_FETCH_SIZE: ErrorCode = 4;
pub const NOT_LEADER_OR_FOLLOWER: ErrorCode = 6;
pub const REQUEST_TIMED_OUT: ErrorCode = 7;
pub const MESSAGE_TOO_LARGE: ErrorCode = 10;
pub const INVALID_TOPIC_EXCEPTION: ErrorCode = 17;
pub const RECORD_LIST_TOO_LARGE: ErrorCode = 18;
pub const NOT_ENOUGH_REPLICAS: ErrorCode = 19;
pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: ErrorCode = 20;
/// A replica proposed for an ISR is fenced or not a replica (AlterPartition).
pub const INELIGIBLE_REPLICA: ErrorCode = 107;
pub const INVALID_REQUIRED_ACKS: ErrorCode = 21;
pub const UNSUPPORTED_VERSION: ErrorCode = 35;
pub const TOPIC_ALREADY_EXISTS: ErrorCode = 36;
pub const INVALID_PARTITIONS: ErrorCode = 37;
pub const INVALID_REPLICATION_FACTOR: ErrorCode = 38;
pub const INVALID_REQUEST: ErrorCode = 42;
pub const FENCED_LEADER_EPOCH: ErrorCode = 74;
pub const UNKNOWN_LEADER_EPOCH: ErrorCode = 75;
/// A broker spoke with a registration (broker epoch) that is not current.
pub const STALE_BROKER_EPOCH: ErrorCode = 77;
pub const INVALID_REPLICA_ASSIGNMENT: ErrorCode = 39;
pub const LEADER_NOT_AVAILABLE: ErrorCode = 5;
pub const MISMATCHED_ENDPOINT_TYPE: ErrorCode = 114;
pub const UNSUPPORTED_ENDPOINT_TYPE: ErrorCode = 115;
pub const INVALID_TIMESTAMP: ErrorCode = 32;
pub const POLICY_VIOLATION: ErrorCode = 44;
pub const INVALID_CONFIG: ErrorCode = 40;
pub const KAFKA_STORAGE_ERROR: ErrorCode = 56;
pub const UNSUPPORTED_COMPRESSION_TYPE: ErrorCode = 76;
pub const FETCH_SESSION_ID_NOT_FOUND: ErrorCode = 70;
pub const INVALID_FETCH_SESSION_EPOCH: ErrorCode = 71;
pub const UNKNOWN_TOPIC_ID: ErrorCode = 100;
pub const INVALID_RECORD: ErrorCode = 87;
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: ErrorCode = 43;
pub const TOPIC_DELETION_DISABLED: ErrorCode = 73;
pub const RESOURCE_NOT_FOUND: ErrorCode = 91;
pub const DUPLICATE_RESOURCE: ErrorCode = 92;
pub const UNACCEPTABLE_CREDENTIAL: ErrorCode = 93;
pub const UNSUPPORTED_SASL_MECHANISM: ErrorCode = 33;
pub const ILLEGAL_SASL_STATE: ErrorCode = 34;
pub const SASL_AUTHENTICATION_FAILED: ErrorCode = 58;
pub const FETCH_SESSION_TOPIC_ID_ERROR: ErrorCode = 106;
pub const INCONSISTENT_TOPIC_ID: ErrorCode = 103;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: ErrorCode = 45;
pub const DUPLICATE_SEQUENCE_NUMBER: ErrorCode = 46;
pub const INVALID_PRODUCER_EPOCH: ErrorCode = 47;
pub const INVALID_TXN_STATE: ErrorCode = 48;
pub const UNKNOWN_PRODUCER_ID: ErrorCode = 59;
pub const OFFSET_METADATA_TOO_LARGE: ErrorCode = 12;
pub const COORDINATOR_LOAD_IN_PROGRESS: ErrorCode = 14;
pub const COORDINATOR_NOT_AVAILABLE: ErrorCode = 15;
pub const NOT_COORDINATOR: ErrorCode = 16;
pub const ILLEGAL_GENERATION: ErrorCode = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: ErrorCode = 23;
pub const INVALID_GROUP_ID: ErrorCode = 24;
pub const UNKNOWN_MEMBER_ID: ErrorCode = 25;
pub const INVALID_SESSION_TIMEOUT: ErrorCode = 26;
pub const REBALANCE_IN_PROGRESS: ErrorCode = 27;
pub const NON_EMPTY_GROUP: ErrorCode = 68;
pub const GROUP_ID_NOT_FOUND: ErrorCode = 69;
pub const MEMBER_ID_REQUIRED: ErrorCode = 79;
pub const PREFERRED_LEADER_NOT_AVAILABLE: ErrorCode = 80;
pub const GROUP_MAX_SIZE_REACHED: ErrorCode = 81;
pub const FENCED_INSTANCE_ID: ErrorCode = 82;
pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: ErrorCode = 83;
pub const ELECTION_NOT_NEEDED: ErrorCode = 84;
pub const GROUP_SUBSCRIBED_TO_TOPIC: ErrorCode = 86;
pub const NOT_CONTROLLER: ErrorCode = 41;
pub const INVALID_PRODUCER_ID_MAPPING: ErrorCode = 49;
pub const INVALID_TRANSACTION_TIMEOUT: ErrorCode = 50;
pub const CONCURRENT_TRANSACTIONS: ErrorCode = 51;
pub const TRANSACTION_COORDINATOR_FENCED: ErrorCode = 52;
pub const OPERATION_NOT_ATTEMPTED: ErrorCode = 55;
pub const UNSTABLE_OFFSET_COMMIT: ErrorCode = 88;
pub const PRODUCER_FENCED: ErrorCode = 90;
pub const TRANSACTIONAL_ID_NOT_FOUND: ErrorCode = 105;
pub const FENCED_MEMBER_EPOCH: ErrorCode = 110;
pub const UNRELEASED_INSTANCE_ID: ErrorCode = 111;
pub const UNSUPPORTED_ASSIGNOR: ErrorCode = 112;
pub const STALE_MEMBER_EPOCH: ErrorCode = 113;
pub const TRANSACTION_ABORTABLE: ErrorCode = 120;
pub const INVALID_REGULAR_EXPRESSION: ErrorCode = 128;

/// Kafka's name for an error code, for messages and logs.
pub fn name(code: ErrorCode) -> &'static str {
    match code {
        NONE => "NONE",
        NOT_CONTROLLER => "NOT_CONTROLLER",
        STALE_BROKER_EPOCH => "STALE_BROKER_EPOCH",
        INVALID_PRODUCER_ID_MAPPING => "INVALID_PRODUCER_ID_MAPPING",
        INVALID_TRANSACTION_TIMEOUT => "INVALID_TRANSACTION_TIMEOUT",
        TRANSACTION_COORDINATOR_FENCED => "TRANSACTION_COORDINATOR_FENCED",
        CONCURRENT_TRANSACTIONS => "CONCURRENT_TRANSACTIONS",
        OPERATION_NOT_ATTEMPTED => "OPERATION_NOT_ATTEMPTED",
        UNSTABLE_OFFSET_COMMIT => "UNSTABLE_OFFSET_COMMIT",
        PRODUCER_FENCED => "PRODUCER_FENCED",
        TRANSACTIONAL_ID_NOT_FOUND => "TRANSACTIONAL_ID_NOT_FOUND",
        UNKNOWN_SERVER_ERROR => "UNKNOWN_SERVER_ERROR",
        OFFSET_OUT_OF_RANGE => "OFFSET_OUT_OF_RANGE",
        CORRUPT_MESSAGE => "CORRUPT_MESSAGE",
        UNKNOWN_TOPIC_OR_PARTITION => "UNKNOWN_TOPIC_OR_PARTITION",
        INVALID_FETCH_SIZE => "INVALID_FETCH_SIZE",
        NOT_LEADER_OR_FOLLOWER => "NOT_LEADER_OR_FOLLOWER",
        REQUEST_TIMED_OUT => "REQUEST_TIMED_OUT",
        MESSAGE_TOO_LARGE => "MESSAGE_TOO_LARGE",
        INVALID_TOPIC_EXCEPTION => "INVALID_TOPIC_EXCEPTION",
        RECORD_LIST_TOO_LARGE => "RECORD_LIST_TOO_LARGE",
        NOT_ENOUGH_REPLICAS => "NOT_ENOUGH_REPLICAS",
        NOT_ENOUGH_REPLICAS_AFTER_APPEND => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
        PREFERRED_LEADER_NOT_AVAILABLE => "PREFERRED_LEADER_NOT_AVAILABLE",
        ELIGIBLE_LEADERS_NOT_AVAILABLE => "ELIGIBLE_LEADERS_NOT_AVAILABLE",
        ELECTION_NOT_NEEDED => "ELECTION_NOT_NEEDED",
        INELIGIBLE_REPLICA => "INELIGIBLE_REPLICA",
        INVALID_REQUIRED_ACKS => "INVALID_REQUIRED_ACKS",
        TRANSACTION_ABORTABLE => "TRANSACTION_ABORTABLE",
        INVALID_TIMESTAMP => "INVALID_TIMESTAMP",
        UNSUPPORTED_VERSION => "UNSUPPORTED_VERSION",
        TOPIC_ALREADY_EXISTS => "TOPIC_ALREADY_EXISTS",
        INVALID_PARTITIONS => "INVALID_PARTITIONS",
        INVALID_REPLICATION_FACTOR => "INVALID_REPLICATION_FACTOR",
        INVALID_CONFIG => "INVALID_CONFIG",
        INVALID_REQUEST => "INVALID_REQUEST",
        FENCED_LEADER_EPOCH => "FENCED_LEADER_EPOCH",
        UNKNOWN_LEADER_EPOCH => "UNKNOWN_LEADER_EPOCH",
        INVALID_REPLICA_ASSIGNMENT => "INVALID_REPLICA_ASSIGNMENT",
        LEADER_NOT_AVAILABLE => "LEADER_NOT_AVAILABLE",
        MISMATCHED_ENDPOINT_TYPE => "MISMATCHED_ENDPOINT_TYPE",
        UNSUPPORTED_ENDPOINT_TYPE => "UNSUPPORTED_ENDPOINT_TYPE",
        UNSUPPORTED_FOR_MESSAGE_FORMAT => "UNSUPPORTED_FOR_MESSAGE_FORMAT",
        POLICY_VIOLATION => "POLICY_VIOLATION",
        KAFKA_STORAGE_ERROR => "KAFKA_STORAGE_ERROR",
        FETCH_SESSION_ID_NOT_FOUND => "FETCH_SESSION_ID_NOT_FOUND",
        INVALID_FETCH_SESSION_EPOCH => "INVALID_FETCH_SESSION_EPOCH",
        TOPIC_DELETION_DISABLED => "TOPIC_DELETION_DISABLED",
        UNSUPPORTED_COMPRESSION_TYPE => "UNSUPPORTED_COMPRESSION_TYPE",
        INVALID_RECORD => "INVALID_RECORD",
        RESOURCE_NOT_FOUND => "RESOURCE_NOT_FOUND",
        DUPLICATE_RESOURCE => "DUPLICATE_RESOURCE",
        UNACCEPTABLE_CREDENTIAL => "UNACCEPTABLE_CREDENTIAL",
        UNSUPPORTED_SASL_MECHANISM => "UNSUPPORTED_SASL_MECHANISM",
        ILLEGAL_SASL_STATE => "ILLEGAL_SASL_STATE",
        SASL_AUTHENTICATION_FAILED => "SASL_AUTHENTICATION_FAILED",
        UNKNOWN_TOPIC_ID => "UNKNOWN_TOPIC_ID",
        INCONSISTENT_TOPIC_ID => "INCONSISTENT_TOPIC_ID",
        FETCH_SESSION_TOPIC_ID_ERROR => "FETCH_SESSION_TOPIC_ID_ERROR",
        OFFSET_METADATA_TOO_LARGE => "OFFSET_METADATA_TOO_LARGE",
        COORDINATOR_LOAD_IN_PROGRESS => "COORDINATOR_LOAD_IN_PROGRESS",
        COORDINATOR_NOT_AVAILABLE => "COORDINATOR_NOT_AVAILABLE",
        NOT_COORDINATOR => "NOT_COORDINATOR",
        ILLEGAL_GENERATION => "ILLEGAL_GENERATION",
        INCONSISTENT_GROUP_PROTOCOL => "INCONSISTENT_GROUP_PROTOCOL",
        INVALID_GROUP_ID => "INVALID_GROUP_ID",
        UNKNOWN_MEMBER_ID => "UNKNOWN_MEMBER_ID",
        INVALID_SESSION_TIMEOUT => "INVALID_SESSION_TIMEOUT",
        REBALANCE_IN_PROGRESS => "REBALANCE_IN_PROGRESS",
        NON_EMPTY_GROUP => "NON_EMPTY_GROUP",
        GROUP_ID_NOT_FOUND => "GROUP_ID_NOT_FOUND",
        MEMBER_ID_REQUIRED => "MEMBER_ID_REQUIRED",
        GROUP_MAX_SIZE_REACHED => "GROUP_MAX_SIZE_REACHED",
        FENCED_INSTANCE_ID => "FENCED_INSTANCE_ID",
        GROUP_SUBSCRIBED_TO_TOPIC => "GROUP_SUBSCRIBED_TO_TOPIC",
        FENCED_MEMBER_EPOCH => "FENCED_MEMBER_EPOCH",
        UNRELEASED_INSTANCE_ID => "UNRELEASED_INSTANCE_ID",
        UNSUPPORTED_ASSIGNOR => "UNSUPPORTED_ASSIGNOR",
        STALE_MEMBER_EPOCH => "STALE_MEMBER_EPOCH",
        INVALID_REGULAR_EXPRESSION => "INVALID_REGULAR_EXPRESSION",
        OUT_OF_ORDER_SEQUENCE_NUMBER => "OUT_OF_ORDER_SEQUENCE_NUMBER",
        DUPLICATE_SEQUENCE_NUMBER => "DUPLICATE_SEQUENCE_NUMBER",
        INVALID_PRODUCER_EPOCH => "INVALID_PRODUCER_EPOCH",
        INVALID_TXN_STATE => "INVALID_TXN_STATE",
        UNKNOWN_PRODUCER_ID => "UNKNOWN_PRODUCER_ID",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::error::ResponseError;

    /// Every named code is the code Kafka's `Errors.java` gives that name
    /// (kafka-protocol's table is generated from it): a wrong number here
    /// reaches clients as a different error.
    #[test]
    fn codes_match_kafkas_table() {
        for code in -1..=200 {
            let ours = name(code);
            if ours == "UNKNOWN" || code == NONE {
                continue;
            }
            let theirs = ResponseError::try_from_code(code)
                .map(|e| format!("{e:?}"))
                .unwrap_or_default();
            let camel: String = ours
                .split('_')
                .map(|w| w[..1].to_string() + &w[1..].to_lowercase())
                .collect();
            assert_eq!(
                camel, theirs,
                "error code {code} is {theirs} in Kafka, not {ours}"
            );
        }
    }
}
