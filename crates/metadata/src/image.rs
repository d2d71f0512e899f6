use crate::acl::AclEntry;
use crate::quota::{serde_quotas, QuotaEntity, QuotaValues};
use crate::record::MetadataRecord;
use crate::scram::{ScramCredential, ScramMechanism};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// The state of one partition as the cluster sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    pub leader: i32,
    pub leader_epoch: i32,
    /// During a reassignment, the target replicas and then those being
    /// removed (Kafka's order).
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    /// Replicas a reassignment adds (not yet in the ISR, or not yet
    /// finished); empty when none is in progress.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding: Vec<i32>,
    /// Replicas a reassignment removes once the added ones are in sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing: Vec<i32>,
}

impl PartitionImage {
    /// Whether a reassignment is in progress.
    pub fn reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The replicas before the reassignment in progress (all, with none).
    pub fn original_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.adding.contains(r))
            .collect()
    }

    /// The replicas the reassignment in progress leads to (all, with none).
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing.contains(r))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<PartitionImage>,
    /// Topic-level config overrides (only what was set explicitly).
    pub configs: BTreeMap<String, String>,
}

/// One listener a broker serves clients on, as it advertises it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    /// The listener name (`PLAINTEXT`, or a custom name).
    pub name: String,
    pub host: String,
    pub port: u16,
}

/// A registered broker as the controller sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerImage {
    /// Kafka's broker epoch: the offset of its latest registration.
    pub epoch: i64,
    pub incarnation_id: Uuid,
    pub endpoints: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
    /// Fenced brokers lead nothing and are left out of Metadata.
    pub fenced: bool,
}

impl BrokerImage {
    pub fn endpoint(&self, listener: &str) -> Option<&BrokerEndpoint> {
        self.endpoints.iter().find(|e| e.name == listener)
    }
}

/// An immutable snapshot of cluster metadata, rebuilt by replaying records.
/// It serializes (as the metadata snapshot) without its derived index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    pub cluster_id: Option<String>,
    pub node_id: i32,
    topics: BTreeMap<String, TopicImage>,
    #[serde(skip)]
    names_by_id: HashMap<Uuid, String>,
    /// Dynamic broker config overrides: the cluster-wide defaults.
    pub broker_configs: BTreeMap<String, String>,
    /// Dynamic broker config overrides of single nodes, by node id.
    #[serde(default)]
    pub node_configs: BTreeMap<i32, BTreeMap<String, String>>,
    /// The first producer id not yet handed out.
    pub next_producer_id: i64,
    /// Registered brokers by node id.
    #[serde(default)]
    pub brokers: BTreeMap<i32, BrokerImage>,
    /// SCRAM credentials by user name and mechanism.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    scram: BTreeMap<String, BTreeMap<ScramMechanism, ScramCredential>>,
    /// ACLs by id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    acls: BTreeMap<Uuid, AclEntry>,
    /// The `offset` of the last ACL change: an authorizer rebuilds its
    /// index only when this moves.
    #[serde(default)]
    pub acls_changed_at: u64,
    /// Client quotas by entity.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        with = "serde_quotas"
    )]
    client_quotas: BTreeMap<QuotaEntity, QuotaValues>,
    /// The `offset` of the last quota change: the quota manager re-reads
    /// quotas only when this moves.
    #[serde(default)]
    pub quotas_changed_at: u64,
    /// Number of records applied: the metadata offset this image reflects.
    pub offset: u64,
}

impl MetadataImage {
    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&TopicImage> {
        self.names_by_id.get(id).and_then(|n| self.topics.get(n))
    }

    pub fn topics(&self) -> impl Iterator<Item = &TopicImage> {
        self.topics.values()
    }

    /// Whether `node` is registered and not fenced: it may lead partitions.
    pub fn broker_usable(&self, node: i32) -> bool {
        self.brokers.get(&node).is_some_and(|b| !b.fenced)
    }

    /// A user's SCRAM credential for `mechanism`.
    pub fn scram_credential(
        &self,
        user: &str,
        mechanism: ScramMechanism,
    ) -> Option<&ScramCredential> {
        self.scram.get(user)?.get(&mechanism)
    }

    /// Every ACL, by id.
    pub fn acls(&self) -> &BTreeMap<Uuid, AclEntry> {
        &self.acls
    }

    /// Every entity's client quotas.
    pub fn client_quotas(&self) -> &BTreeMap<QuotaEntity, QuotaValues> {
        &self.client_quotas
    }

    /// Every user with a SCRAM credential and its credentials, by name.
    pub fn scram_users(
        &self,
    ) -> impl Iterator<Item = (&str, &BTreeMap<ScramMechanism, ScramCredential>)> {
        self.scram.iter().map(|(name, c)| (name.as_str(), c))
    }

    /// Applies one record. Records that refer to unknown topics are ignored:
    /// the controller validated them before appending, so this only happens
    /// when replaying a log written by a newer version.
    pub fn apply(&mut self, record: &MetadataRecord) {
        self.offset += 1;
        match record {
            MetadataRecord::ClusterCreated {
                cluster_id,
                node_id,
            } => {
                // The first one wins: two voters that each saw no cluster
                // yet may both append one.
                if self.cluster_id.is_none() {
                    self.cluster_id = Some(cluster_id.clone());
                    self.node_id = *node_id;
                }
            }
            MetadataRecord::TopicCreated {
                name,
                id,
                partitions,
                replicas,
                assignments,
                configs,
            } => {
                if self.topics.contains_key(name) {
                    return;
                }
                let parts = (0..*partitions)
                    .map(|p| new_partition(assignment(assignments, replicas, p as usize)))
                    .collect();
                self.names_by_id.insert(*id, name.clone());
                self.topics.insert(
                    name.clone(),
                    TopicImage {
                        name: name.clone(),
                        id: *id,
                        partitions: parts,
                        configs: configs.clone(),
                    },
                );
            }
            MetadataRecord::PartitionsCreated {
                topic_id,
                total,
                replicas,
                assignments,
            } => {
                if let Some(topic) = self.topic_mut(topic_id) {
                    let first = topic.partitions.len();
                    while (topic.partitions.len() as i32) < *total {
                        let new = topic.partitions.len() - first;
                        topic.partitions.push(new_partition(assignment(
                            assignments,
                            replicas,
                            new,
                        )));
                    }
                }
            }
            MetadataRecord::TopicConfigChanged { topic_id, changes } => {
                if let Some(topic) = self.topic_mut(topic_id) {
                    apply_changes(&mut topic.configs, changes);
                }
            }
            MetadataRecord::TopicDeleted { topic_id } => {
                if let Some(name) = self.names_by_id.remove(topic_id) {
                    self.topics.remove(&name);
                }
            }
            MetadataRecord::ProducerIdsAllocated { next } => {
                self.next_producer_id = self.next_producer_id.max(*next);
            }
            MetadataRecord::BrokerConfigChanged { changes, node } => {
                let configs = match node {
                    None => &mut self.broker_configs,
                    Some(id) => self.node_configs.entry(*id).or_default(),
                };
                apply_changes(configs, changes);
                self.node_configs.retain(|_, c| !c.is_empty());
            }
            MetadataRecord::BrokerRegistered {
                node_id,
                incarnation_id,
                endpoints,
                rack,
            } => {
                let epoch = i64::try_from(self.offset).unwrap_or(i64::MAX);
                self.brokers.insert(
                    *node_id,
                    BrokerImage {
                        epoch,
                        incarnation_id: *incarnation_id,
                        endpoints: endpoints.clone(),
                        rack: rack.clone(),
                        fenced: false,
                    },
                );
            }
            MetadataRecord::BrokerFenced { node_id } => {
                if let Some(broker) = self.brokers.get_mut(node_id) {
                    broker.fenced = true;
                }
            }
            MetadataRecord::BrokerUnfenced { node_id } => {
                if let Some(broker) = self.brokers.get_mut(node_id) {
                    broker.fenced = false;
                }
            }
            MetadataRecord::PartitionChanged {
                topic_id,
                partition,
                leader,
                leader_epoch,
                isr,
            } => {
                let part = self
                    .topic_mut(topic_id)
                    .and_then(|t| t.partitions.get_mut(usize::try_from(*partition).ok()?));
                if let Some(part) = part {
                    part.leader = *leader;
                    part.leader_epoch = *leader_epoch;
                    part.isr = isr.clone();
                }
            }
            MetadataRecord::PartitionReassigned {
                topic_id,
                partition,
                replicas,
                adding,
                removing,
            } => {
                let part = self
                    .topic_mut(topic_id)
                    .and_then(|t| t.partitions.get_mut(usize::try_from(*partition).ok()?));
                if let Some(part) = part {
                    part.replicas = replicas.clone();
                    part.adding = adding.clone();
                    part.removing = removing.clone();
                }
            }
            MetadataRecord::UserScramCredentialUpserted {
                name,
                mechanism,
                credential,
            } => {
                self.scram
                    .entry(name.clone())
                    .or_default()
                    .insert(*mechanism, credential.clone());
            }
            MetadataRecord::AclCreated { id, acl } => {
                self.acls.insert(*id, acl.clone());
                self.acls_changed_at = self.offset;
            }
            MetadataRecord::AclDeleted { id } => {
                if self.acls.remove(id).is_some() {
                    self.acls_changed_at = self.offset;
                }
            }
            MetadataRecord::ClientQuotaChanged { entity, key, value } => {
                match value {
                    Some(value) => {
                        self.client_quotas
                            .entry(entity.clone())
                            .or_default()
                            .insert(key.clone(), *value);
                    }
                    None => {
                        if let Some(values) = self.client_quotas.get_mut(entity) {
                            values.remove(key);
                            if values.is_empty() {
                                self.client_quotas.remove(entity);
                            }
                        }
                    }
                }
                self.quotas_changed_at = self.offset;
            }
            MetadataRecord::UserScramCredentialDeleted { name, mechanism } => {
                if let Some(credentials) = self.scram.get_mut(name) {
                    credentials.remove(mechanism);
                    if credentials.is_empty() {
                        self.scram.remove(name);
                    }
                }
            }
        }
    }

    /// Rebuilds the index that serialization leaves out.
    pub(crate) fn reindex(&mut self) {
        self.names_by_id = self
            .topics
            .values()
            .map(|t| (t.id, t.name.clone()))
            .collect();
    }

    /// Records that rebuild this image from nothing (all but `offset`,
    /// and broker epochs, which are the offsets of the registrations), for
    /// rewriting a damaged log from a snapshot: each topic with its
    /// per-partition replicas, then the leaders and ISRs that changed.
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut records = Vec::new();
        if let Some(cluster_id) = &self.cluster_id {
            records.push(MetadataRecord::ClusterCreated {
                cluster_id: cluster_id.clone(),
                node_id: self.node_id,
            });
        }
        let scopes = std::iter::once((None, &self.broker_configs))
            .chain(self.node_configs.iter().map(|(id, c)| (Some(*id), c)));
        for (node, configs) in scopes {
            if !configs.is_empty() {
                records.push(MetadataRecord::BrokerConfigChanged {
                    changes: configs
                        .iter()
                        .map(|(k, v)| (k.clone(), Some(v.clone())))
                        .collect(),
                    node,
                });
            }
        }
        if self.next_producer_id > 0 {
            records.push(MetadataRecord::ProducerIdsAllocated {
                next: self.next_producer_id,
            });
        }
        for (node_id, broker) in &self.brokers {
            records.push(MetadataRecord::BrokerRegistered {
                node_id: *node_id,
                incarnation_id: broker.incarnation_id,
                endpoints: broker.endpoints.clone(),
                rack: broker.rack.clone(),
            });
            if broker.fenced {
                records.push(MetadataRecord::BrokerFenced { node_id: *node_id });
            }
        }
        for (name, credentials) in &self.scram {
            for (mechanism, credential) in credentials {
                records.push(MetadataRecord::UserScramCredentialUpserted {
                    name: name.clone(),
                    mechanism: *mechanism,
                    credential: credential.clone(),
                });
            }
        }
        for (id, acl) in &self.acls {
            records.push(MetadataRecord::AclCreated {
                id: *id,
                acl: acl.clone(),
            });
        }
        for (entity, values) in &self.client_quotas {
            for (key, value) in values {
                records.push(MetadataRecord::ClientQuotaChanged {
                    entity: entity.clone(),
                    key: key.clone(),
                    value: Some(*value),
                });
            }
        }
        for topic in self.topics.values() {
            records.push(MetadataRecord::TopicCreated {
                name: topic.name.clone(),
                id: topic.id,
                partitions: i32::try_from(topic.partitions.len()).unwrap_or(i32::MAX),
                replicas: Vec::new(),
                assignments: topic
                    .partitions
                    .iter()
                    .map(|p| p.replicas.clone())
                    .collect(),
                configs: topic.configs.clone(),
            });
            for (index, p) in topic.partitions.iter().enumerate() {
                if p.reassigning() {
                    records.push(MetadataRecord::PartitionReassigned {
                        topic_id: topic.id,
                        partition: i32::try_from(index).unwrap_or(i32::MAX),
                        replicas: p.replicas.clone(),
                        adding: p.adding.clone(),
                        removing: p.removing.clone(),
                    });
                }
                if p.leader != p.replicas.first().copied().unwrap_or(-1)
                    || p.leader_epoch != 0
                    || p.isr != p.replicas
                {
                    records.push(MetadataRecord::PartitionChanged {
                        topic_id: topic.id,
                        partition: i32::try_from(index).unwrap_or(i32::MAX),
                        leader: p.leader,
                        leader_epoch: p.leader_epoch,
                        isr: p.isr.clone(),
                    });
                }
            }
        }
        records
    }

    fn topic_mut(&mut self, id: &Uuid) -> Option<&mut TopicImage> {
        let name = self.names_by_id.get(id)?;
        self.topics.get_mut(name)
    }
}

/// The replicas of the `index`th partition a record creates.
fn assignment<'a>(assignments: &'a [Vec<i32>], replicas: &'a [i32], index: usize) -> &'a [i32] {
    assignments.get(index).map_or(replicas, Vec::as_slice)
}

fn new_partition(replicas: &[i32]) -> PartitionImage {
    PartitionImage {
        leader: replicas.first().copied().unwrap_or(-1),
        leader_epoch: 0,
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        adding: Vec::new(),
        removing: Vec::new(),
    }
}

fn apply_changes(
    configs: &mut BTreeMap<String, String>,
    changes: &BTreeMap<String, Option<String>>,
) {
    for (key, value) in changes {
        match value {
            Some(v) => configs.insert(key.clone(), v.clone()),
            None => configs.remove(key),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_lifecycle() {
        let id = Uuid::new_v4();
        let mut image = MetadataImage::default();
        image.apply(&MetadataRecord::TopicCreated {
            name: "t".into(),
            id,
            partitions: 2,
            replicas: vec![1],
            assignments: Vec::new(),
            configs: BTreeMap::from([("retention.ms".into(), "10".into())]),
        });
        image.apply(&MetadataRecord::PartitionsCreated {
            topic_id: id,
            total: 4,
            replicas: vec![1],
            assignments: Vec::new(),
        });
        image.apply(&MetadataRecord::TopicConfigChanged {
            topic_id: id,
            changes: BTreeMap::from([
                ("retention.ms".into(), None),
                ("cleanup.policy".into(), Some("compact".into())),
            ]),
        });
        let t = image.topic("t").unwrap();
        assert_eq!(t.partitions.len(), 4);
        assert_eq!(t.partitions[3].leader, 1);
        assert_eq!(
            t.configs.get("cleanup.policy").map(String::as_str),
            Some("compact")
        );
        assert!(!t.configs.contains_key("retention.ms"));
        assert_eq!(image.topic_by_id(&id).unwrap().name, "t");
        image.apply(&MetadataRecord::TopicDeleted { topic_id: id });
        assert!(image.topic("t").is_none());
        assert!(image.topic_by_id(&id).is_none());
        assert_eq!(image.offset, 4);
    }

    fn scram_upsert(name: &str, mechanism: ScramMechanism, key: u8) -> MetadataRecord {
        MetadataRecord::UserScramCredentialUpserted {
            name: name.into(),
            mechanism,
            credential: ScramCredential {
                salt: vec![key; 16],
                stored_key: vec![key; 32],
                server_key: vec![key + 1; 32],
                iterations: 4096,
            },
        }
    }

    #[test]
    fn scram_credentials_are_set_replaced_and_removed() {
        let mut image = MetadataImage::default();
        image.apply(&scram_upsert("alice", ScramMechanism::Sha256, 1));
        image.apply(&scram_upsert("alice", ScramMechanism::Sha256, 7));
        image.apply(&scram_upsert("alice", ScramMechanism::Sha512, 2));
        let credential = image
            .scram_credential("alice", ScramMechanism::Sha256)
            .unwrap();
        assert_eq!(credential.stored_key, vec![7; 32]);
        assert!(image
            .scram_credential("bob", ScramMechanism::Sha256)
            .is_none());
        image.apply(&MetadataRecord::UserScramCredentialDeleted {
            name: "alice".into(),
            mechanism: ScramMechanism::Sha256,
        });
        assert!(image
            .scram_credential("alice", ScramMechanism::Sha256)
            .is_none());
        assert_eq!(image.scram_users().count(), 1);
        image.apply(&MetadataRecord::UserScramCredentialDeleted {
            name: "alice".into(),
            mechanism: ScramMechanism::Sha512,
        });
        assert_eq!(
            image.scram_users().count(),
            0,
            "no user without credentials"
        );
        // Removing what is not there changes nothing.
        image.apply(&MetadataRecord::UserScramCredentialDeleted {
            name: "carol".into(),
            mechanism: ScramMechanism::Sha512,
        });
        assert_eq!(image.scram_users().count(), 0);
    }

    #[test]
    fn scram_credentials_survive_the_snapshot() {
        let mut image = MetadataImage::default();
        image.apply(&scram_upsert("alice", ScramMechanism::Sha512, 4));
        let json = serde_json::to_vec(&image).unwrap();
        let mut restored: MetadataImage = serde_json::from_slice(&json).unwrap();
        restored.reindex();
        assert_eq!(restored, image);
        // A snapshot written before credentials existed still reads.
        let empty = serde_json::to_value(MetadataImage::default()).unwrap();
        assert!(empty.get("scram").is_none());
        let old: MetadataImage = serde_json::from_value(empty).unwrap();
        assert_eq!(old.scram_users().count(), 0);
    }

    fn quota(user: &str, key: &str, value: Option<f64>) -> MetadataRecord {
        MetadataRecord::ClientQuotaChanged {
            entity: QuotaEntity::new([("user".to_string(), Some(user.to_string()))]).unwrap(),
            key: key.to_string(),
            value: value.map(crate::quota::QuotaValue),
        }
    }

    #[test]
    fn client_quotas_are_set_removed_and_survive_the_snapshot() {
        let mut image = MetadataImage::default();
        image.apply(&quota("alice", "producer_byte_rate", Some(1024.0)));
        image.apply(&quota("alice", "consumer_byte_rate", Some(10.5)));
        image.apply(&quota("alice", "producer_byte_rate", None));
        assert_eq!(image.quotas_changed_at, 3);
        let values: Vec<_> = image
            .client_quotas()
            .values()
            .flat_map(|v| v.keys())
            .collect();
        assert_eq!(values, ["consumer_byte_rate"]);
        let json = serde_json::to_vec(&image).unwrap();
        let mut restored: MetadataImage = serde_json::from_slice(&json).unwrap();
        restored.reindex();
        assert_eq!(restored, image);
        image.apply(&quota("alice", "consumer_byte_rate", None));
        assert!(image.client_quotas().is_empty());
    }

    #[test]
    fn to_records_rebuilds_the_image() {
        let mut image = MetadataImage::default();
        let id = Uuid::new_v4();
        for record in [
            MetadataRecord::ClusterCreated {
                cluster_id: "c".into(),
                node_id: 1,
            },
            MetadataRecord::TopicCreated {
                name: "t".into(),
                id,
                partitions: 2,
                replicas: vec![1],
                assignments: Vec::new(),
                configs: BTreeMap::from([("retention.ms".into(), "10".into())]),
            },
            MetadataRecord::PartitionsCreated {
                topic_id: id,
                total: 5,
                replicas: vec![1],
                assignments: Vec::new(),
            },
            MetadataRecord::ProducerIdsAllocated { next: 2000 },
            MetadataRecord::BrokerConfigChanged {
                changes: BTreeMap::from([("log.retention.ms".into(), Some("5".into()))]),
                node: None,
            },
            MetadataRecord::BrokerConfigChanged {
                changes: BTreeMap::from([("log.segment.bytes".into(), Some("1048576".into()))]),
                node: Some(1),
            },
            scram_upsert("alice", ScramMechanism::Sha256, 1),
            scram_upsert("alice", ScramMechanism::Sha512, 2),
            scram_upsert("bob", ScramMechanism::Sha256, 3),
            quota("alice", "producer_byte_rate", Some(1024.0)),
            quota("alice", "consumer_byte_rate", Some(2048.0)),
            quota("alice", "producer_byte_rate", None),
        ] {
            image.apply(&record);
        }
        let mut rebuilt = MetadataImage::default();
        for record in image.to_records() {
            rebuilt.apply(&record);
        }
        rebuilt.offset = image.offset;
        // When quotas last changed is an offset of the log it replayed.
        rebuilt.quotas_changed_at = image.quotas_changed_at;
        assert_eq!(rebuilt, image);
    }
}
