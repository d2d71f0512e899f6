use crate::acl::AclEntry;
use crate::image::BrokerEndpoint;
use crate::quota::{QuotaEntity, QuotaValue};
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
    /// A topic was created with `partitions` partitions. Each partition's
    /// replicas are its entry in `assignments`; logs written before
    /// per-partition placement have none, and every partition has
    /// `replicas`. The first replica leads.
    TopicCreated {
        name: String,
        id: Uuid,
        partitions: i32,
        replicas: Vec<i32>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        assignments: Vec<Vec<i32>>,
        configs: BTreeMap<String, String>,
    },
    /// A topic grew to `total` partitions, placed as in `TopicCreated`.
    PartitionsCreated {
        topic_id: Uuid,
        total: i32,
        replicas: Vec<i32>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        assignments: Vec<Vec<i32>>,
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
    /// A broker joined or, after a restart, rejoined the cluster (Kafka's
    /// RegisterBrokerRecord). Its broker epoch is the image offset this
    /// record gets, so every registration has a new, larger epoch.
    BrokerRegistered {
        node_id: i32,
        /// New on every start of the process, so a restart is told apart
        /// from a second registration of the same run.
        incarnation_id: Uuid,
        endpoints: Vec<BrokerEndpoint>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rack: Option<String>,
    },
    /// The controller stopped counting on a broker (missed heartbeats or a
    /// controlled shutdown): it leads nothing until unfenced.
    BrokerFenced { node_id: i32 },
    /// A fenced broker is heard from again.
    BrokerUnfenced { node_id: i32 },
    /// A partition's leader, leader epoch or in-sync replicas changed
    /// (Kafka's PartitionChangeRecord). `leader` is -1 when no replica can
    /// lead.
    PartitionChanged {
        topic_id: Uuid,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        isr: Vec<i32>,
    },
    /// A partition's replica set changed: a reassignment began (`adding`
    /// and `removing` say what it changes), was replaced, cancelled or
    /// completed (both empty). Kafka carries these in PartitionRecord and
    /// PartitionChangeRecord.
    PartitionReassigned {
        topic_id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        adding: Vec<i32>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        removing: Vec<i32>,
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
    /// An ACL was created (Kafka's AccessControlEntryRecord).
    AclCreated { id: Uuid, acl: AclEntry },
    /// An ACL was removed (Kafka's RemoveAccessControlEntryRecord).
    AclDeleted { id: Uuid },
    /// One client quota of an entity was set (`Some`) or removed (`None`)
    /// (Kafka's ClientQuotaRecord).
    ClientQuotaChanged {
        entity: QuotaEntity,
        key: String,
        value: Option<QuotaValue>,
    },
}

impl MetadataRecord {
    /// Decodes the payload of one metadata log entry.
    pub fn decode(payload: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(payload)
    }
}
