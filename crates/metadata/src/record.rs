use crate::scram::{ScramCredential, ScramMechanism};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// One change to cluster metadata. Records are replayed in order; applying
/// the same sequence always yields the same image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MetadataRecord {
    /// The cluster got its id (first record of a new metadata log).
    ClusterCreated { cluster_id: String, node_id: i32 },
    /// A topic was created with `partitions` partitions, all led by `leader`.
    TopicCreated {
        name: String,
        id: Uuid,
        partitions: i32,
        replicas: Vec<i32>,
        configs: BTreeMap<String, String>,
    },
    /// A topic grew to `total` partitions.
    PartitionsCreated {
        topic_id: Uuid,
        total: i32,
        replicas: Vec<i32>,
    },
    /// Topic config overrides were set (`Some`) or removed (`None`).
    TopicConfigChanged {
        topic_id: Uuid,
        changes: BTreeMap<String, Option<String>>,
    },
    /// A topic was deleted.
    TopicDeleted { topic_id: Uuid },
    /// Producer ids below `next` are handed out (idempotent producers);
    /// ids are allocated in blocks so they never repeat across restarts.
    ProducerIdsAllocated { next: i64 },
    /// Dynamic broker config overrides were set or removed: one node's own
    /// (`node`, Kafka's broker resource "<id>") or, without a node, the
    /// cluster-wide defaults (the resource "", `--entity-default`).
    BrokerConfigChanged {
        changes: BTreeMap<String, Option<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<i32>,
    },
    /// A user's SCRAM credential for one mechanism was created or replaced
    /// (Kafka's UserScramCredentialRecord). Never the password.
    UserScramCredentialUpserted {
        name: String,
        mechanism: ScramMechanism,
        credential: ScramCredential,
    },
    /// A user's SCRAM credential for one mechanism was removed (Kafka's
    /// RemoveUserScramCredentialRecord).
    UserScramCredentialDeleted {
        name: String,
        mechanism: ScramMechanism,
    },
}

impl MetadataRecord {
    /// Decodes the payload of one metadata log entry.
    pub fn decode(payload: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(payload)
    }
}
