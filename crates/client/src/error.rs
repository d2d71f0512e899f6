//! The client's error type.

use std::fmt;
use std::time::Duration;

use sluice_protocol::error::{self as codes, ErrorCode};

/// Result alias used throughout the client.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error code returned by a broker, with Kafka's name for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaError {
    /// The numeric Kafka error code.
    pub code: ErrorCode,
    /// Kafka's name for the code (e.g. `TOPIC_ALREADY_EXISTS`).
    pub name: &'static str,
    /// The broker's error message, when it sent one.
    pub message: Option<String>,
    /// What the error is about (e.g. `topic 'orders'`), when known.
    pub resource: Option<String>,
}

impl KafkaError {
    /// Builds an error from a code and optional broker message.
    pub fn new(code: ErrorCode, message: Option<String>) -> Self {
        KafkaError {
            code,
            name: name(code),
            message: message.filter(|m| !m.is_empty()),
            resource: None,
        }
    }

    /// Attaches a description of the resource the error is about.
    pub fn on(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// True when Kafka classifies the error as retriable.
    pub fn is_retriable(&self) -> bool {
        is_retriable_code(self.code)
    }
}

impl fmt::Display for KafkaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(r) = &self.resource {
            write!(f, "{r}: ")?;
        }
        write!(f, "{} (error code {})", self.name, self.code)?;
        if let Some(m) = &self.message {
            write!(f, ": {m}")?;
        }
        Ok(())
    }
}

impl std::error::Error for KafkaError {}

/// Kafka's name for an error code, covering codes the protocol crate does not
/// name yet.
pub fn name(code: ErrorCode) -> &'static str {
    match code {
        5 => "LEADER_NOT_AVAILABLE",
        13 => "NETWORK_EXCEPTION",
        14 => "COORDINATOR_LOAD_IN_PROGRESS",
        15 => "COORDINATOR_NOT_AVAILABLE",
        16 => "NOT_COORDINATOR",
        19 => "NOT_ENOUGH_REPLICAS",
        20 => "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
        29 => "TOPIC_AUTHORIZATION_FAILED",
        41 => "NOT_CONTROLLER",
        53 => "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
        74 => "FENCED_LEADER_EPOCH",
        75 => "UNKNOWN_LEADER_EPOCH",
        other => codes::name(other),
    }
}

/// Whether an error code is retriable (as in Kafka's `RetriableException`).
pub fn is_retriable_code(code: ErrorCode) -> bool {
    matches!(
        code,
        codes::CORRUPT_MESSAGE
            | codes::UNKNOWN_TOPIC_OR_PARTITION
            | 5
            | codes::NOT_LEADER_OR_FOLLOWER
            | codes::REQUEST_TIMED_OUT
            | 13
            | 14
            | 15
            | 16
            | 19
            | 20
            | 41
            | codes::KAFKA_STORAGE_ERROR
            | 74
            | 75
            | codes::UNKNOWN_TOPIC_ID
            | codes::UNSTABLE_OFFSET_COMMIT
    )
}

/// Whether an error code means this producer has been replaced by a newer
/// one with the same transactional id (or may not use it at all): such a
/// producer can do nothing more.
pub fn is_fencing_code(code: ErrorCode) -> bool {
    matches!(
        code,
        codes::PRODUCER_FENCED
            | codes::INVALID_PRODUCER_EPOCH
            | 53 /* TRANSACTIONAL_ID_AUTHORIZATION_FAILED */
            | codes::INVALID_PRODUCER_ID_MAPPING
    )
}

/// Whether an error code means the client's metadata is stale.
pub fn needs_metadata_refresh(code: ErrorCode) -> bool {
    matches!(
        code,
        codes::UNKNOWN_TOPIC_OR_PARTITION
            | 5
            | codes::NOT_LEADER_OR_FOLLOWER
            | 41
            | codes::KAFKA_STORAGE_ERROR
            | 74
            | 75
            | codes::UNKNOWN_TOPIC_ID
    )
}

/// Everything that can go wrong in the client.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The broker answered with an error code.
    #[error("{0}")]
    Kafka(KafkaError),
    /// A socket error (connect, read or write).
    #[error("I/O error with {addr}: {message}")]
    Io {
        /// The broker address.
        addr: String,
        /// The underlying error, as text (so the error can be cloned).
        message: String,
    },
    /// The connection closed while a request was outstanding.
    #[error("connection to {0} closed")]
    Disconnected(String),
    /// A SASL login failed on the client's side (the broker's own refusal
    /// is a [`Error::Kafka`] with SASL_AUTHENTICATION_FAILED).
    #[error("SASL login with {addr} failed: {message}")]
    Authentication {
        /// The broker address.
        addr: String,
        /// What was wrong.
        message: String,
    },
    /// A request got no answer within the request timeout.
    #[error("request to {addr} timed out after {after:?}")]
    Timeout {
        /// The broker address.
        addr: String,
        /// How long the client waited.
        after: Duration,
    },
    /// Records could not be delivered within `delivery.timeout.ms`.
    #[error("delivery timed out after {0:?}")]
    DeliveryTimeout(Duration),
    /// The broker sent bytes the client could not decode.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The broker does not support a version of an API the client can speak.
    #[error("broker {addr} does not support {api} in a version this client implements")]
    UnsupportedVersion {
        /// The broker address.
        addr: String,
        /// The API name.
        api: String,
    },
    /// No broker could be reached or the needed one is unknown.
    #[error("no broker available: {0}")]
    NoBroker(String),
    /// Invalid client configuration or argument.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The producer (or client) was closed.
    #[error("client is closed")]
    Closed,
    /// Fatal: a newer producer with the same transactional id exists (or
    /// this one may not use the id). This producer cannot be used any more;
    /// close it and start a new one.
    #[error("producer fenced: {0}")]
    Fenced(KafkaError),
    /// The current transaction cannot commit (a record or a request of it
    /// failed); call `abort_transaction`, then start a new one.
    #[error("transaction must be aborted: {0}")]
    AbortableTransaction(Box<Error>),
    /// The record was dropped because its transaction was aborted.
    #[error("transaction aborted")]
    TransactionAborted,
    /// A transactional call made in the wrong state (e.g. `send` before
    /// `begin_transaction`).
    #[error("invalid transaction state: {0}")]
    TransactionState(String),
    /// A group member owns a partition the group has no committed offset
    /// for, and `auto.offset.reset` is none: seek it to a position.
    #[error("no committed offset for {topic}-{partition} in group '{group}' and auto.offset.reset is none; seek it to a position")]
    NoOffsetForPartition {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Group id.
        group: String,
    },
}

impl Error {
    /// The Kafka error code, when the broker returned one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Kafka(k) | Error::Fenced(k) => Some(k.code),
            Error::AbortableTransaction(cause) => cause.code(),
            _ => None,
        }
    }

    /// True when retrying the operation may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Kafka(k) => k.is_retriable(),
            Error::Io { .. } | Error::Disconnected(_) | Error::Timeout { .. } => true,
            Error::NoBroker(_) => true,
            _ => false,
        }
    }

    /// Shorthand for `Error::Kafka(KafkaError::new(code, message))`.
    pub fn kafka(code: ErrorCode, message: Option<String>) -> Self {
        Error::Kafka(KafkaError::new(code, message))
    }

    /// Returns `Ok(())` for error code 0, otherwise the typed error about
    /// `resource`.
    pub fn check(
        code: ErrorCode,
        message: Option<String>,
        resource: impl Into<String>,
    ) -> Result<()> {
        if code == codes::NONE {
            Ok(())
        } else {
            Err(Error::Kafka(KafkaError::new(code, message).on(resource)))
        }
    }
}

impl From<KafkaError> for Error {
    fn from(e: KafkaError) -> Self {
        Error::Kafka(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_name_code_message_and_resource() {
        let e = Error::Kafka(
            KafkaError::new(36, Some("Topic 'a' already exists.".into())).on("topic 'a'"),
        );
        assert_eq!(
            e.to_string(),
            "topic 'a': TOPIC_ALREADY_EXISTS (error code 36): Topic 'a' already exists."
        );
        assert!(!e.is_retriable());
        assert!(Error::kafka(6, None).is_retriable());
        assert!(Error::check(0, None, "x").is_ok());
    }
}
