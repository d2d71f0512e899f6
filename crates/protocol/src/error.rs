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
pub const INVALID_REQUIRED_ACKS: ErrorCode = 21;
pub const UNSUPPORTED_VERSION: ErrorCode = 35;
pub const TOPIC_ALREADY_EXISTS: ErrorCode = 36;
pub const INVALID_PARTITIONS: ErrorCode = 37;
pub const INVALID_REPLICATION_FACTOR: ErrorCode = 38;
pub const INVALID_REQUEST: ErrorCode = 42;
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
pub const FETCH_SESSION_TOPIC_ID_ERROR: ErrorCode = 106;
pub const INCONSISTENT_TOPIC_ID: ErrorCode = 103;

/// Kafka's name for an error code, for messages and logs.
pub fn name(code: ErrorCode) -> &'static str {
    match code {
        NONE => "NONE",
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
        INVALID_REQUIRED_ACKS => "INVALID_REQUIRED_ACKS",
        INVALID_TIMESTAMP => "INVALID_TIMESTAMP",
        UNSUPPORTED_VERSION => "UNSUPPORTED_VERSION",
        TOPIC_ALREADY_EXISTS => "TOPIC_ALREADY_EXISTS",
        INVALID_PARTITIONS => "INVALID_PARTITIONS",
        INVALID_REPLICATION_FACTOR => "INVALID_REPLICATION_FACTOR",
        INVALID_CONFIG => "INVALID_CONFIG",
        INVALID_REQUEST => "INVALID_REQUEST",
        UNSUPPORTED_FOR_MESSAGE_FORMAT => "UNSUPPORTED_FOR_MESSAGE_FORMAT",
        POLICY_VIOLATION => "POLICY_VIOLATION",
        KAFKA_STORAGE_ERROR => "KAFKA_STORAGE_ERROR",
        FETCH_SESSION_ID_NOT_FOUND => "FETCH_SESSION_ID_NOT_FOUND",
        INVALID_FETCH_SESSION_EPOCH => "INVALID_FETCH_SESSION_EPOCH",
        TOPIC_DELETION_DISABLED => "TOPIC_DELETION_DISABLED",
        UNSUPPORTED_COMPRESSION_TYPE => "UNSUPPORTED_COMPRESSION_TYPE",
        INVALID_RECORD => "INVALID_RECORD",
        RESOURCE_NOT_FOUND => "RESOURCE_NOT_FOUND",
        UNKNOWN_TOPIC_ID => "UNKNOWN_TOPIC_ID",
        INCONSISTENT_TOPIC_ID => "INCONSISTENT_TOPIC_ID",
        FETCH_SESSION_TOPIC_ID_ERROR => "FETCH_SESSION_TOPIC_ID_ERROR",
        _ => "UNKNOWN",
    }
}
