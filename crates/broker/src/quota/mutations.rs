//! The controller mutation quota (`controller_mutation_rate`, KIP-599):
//! partitions created by CreateTopics and CreatePartitions and deleted by
//! DeleteTopics, per second. From CreateTopics v6, CreatePartitions v3 and
//! DeleteTopics v5 the quota is strict, as in Kafka: once a client's bucket
//! is in debt, each further topic is refused with THROTTLING_QUOTA_EXCEEDED
//! (the one that goes into debt is still allowed); older versions are only
//! throttled. Topics that fail for another reason are not counted.

use super::{QuotaClient, QuotaKind, QuotaManager};
use crate::handlers::str_bytes;
use crate::state::BrokerState;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{RequestKind, ResponseKind, TopicName};
use sluice_metadata::{MetadataImage, Uuid};
use sluice_protocol::error;

const CREATE_TOPICS_STRICT_SINCE: i16 = 6;
const CREATE_PARTITIONS_STRICT_SINCE: i16 = 3;
const DELETE_TOPICS_STRICT_SINCE: i16 = 5;
const EXCEEDED: &str = "The throttling quota has been exceeded.";

/// What a mutation request was charged: each topic's partitions, and the
/// topics refused before the request was served.
#[derive(Default)]
pub(crate) struct Mutations {
    /// Each topic charged: its name, its id (DeleteTopics by id) and the
    /// partitions it was charged.
    charged: Vec<(String, Uuid, f64)>,
    refused: Vec<(String, Uuid)>,
}

/// Charges the topics of a CreateTopics, CreatePartitions or DeleteTopics
/// request to the client's controller mutation quota, taking the ones it
/// refuses out of the request. `None` for other requests, for clients
/// without the quota, and for validate-only requests, which change nothing.
pub(crate) fn charge(
    state: &BrokerState,
    image: &MetadataImage,
    client: QuotaClient,
    body: &mut RequestKind,
    version: i16,
) -> Option<Mutations> {
    let quotas = &state.quotas;
    quotas.limit(image, QuotaKind::Mutation, client)?;
    let mut mutations = Mutations::default();
    let mut admit = |name: &str, id: Uuid, partitions: i64, strict: bool| -> bool {
        if strict && quotas.in_debt(image, QuotaKind::Mutation, client) {
            mutations.refused.push((name.to_string(), id));
            return false;
        }
        let partitions = partitions.max(0) as f64;
        quotas.record(image, QuotaKind::Mutation, client, partitions);
        mutations.charged.push((name.to_string(), id, partitions));
        true
    };
    match body {
        RequestKind::CreateTopics(r) if !r.validate_only => {
            let strict = version >= CREATE_TOPICS_STRICT_SINCE;
            let default_partitions = state.broker_i64("num.partitions");
            r.topics.retain(|t| {
                let partitions = if !t.assignments.is_empty() {
                    t.assignments.len() as i64
                } else if t.num_partitions < 0 {
                    default_partitions
                } else {
                    i64::from(t.num_partitions)
                };
                admit(&t.name, Uuid::nil(), partitions, strict)
            });
        }
        RequestKind::CreatePartitions(r) if !r.validate_only => {
            let strict = version >= CREATE_PARTITIONS_STRICT_SINCE;
            r.topics.retain(|t| {
                let current = image
                    .topic(&t.name)
                    .map_or(0, |t| t.partitions.len() as i64);
                admit(&t.name, Uuid::nil(), i64::from(t.count) - current, strict)
            });
        }
        RequestKind::DeleteTopics(r) => {
            let strict = version >= DELETE_TOPICS_STRICT_SINCE;
            let partitions =
                |name: &str| image.topic(name).map_or(0, |t| t.partitions.len() as i64);
            r.topic_names
                .retain(|name| admit(name, Uuid::nil(), partitions(name), strict));
            r.topics.retain(|t| {
                let name = match &t.name {
                    Some(name) => name.to_string(),
                    None => image
                        .topic_by_id(&t.topic_id)
                        .map(|t| t.name.clone())
                        .unwrap_or_default(),
                };
                admit(&name, t.topic_id, partitions(&name), strict)
            });
        }
        _ => return None,
    }
    Some(mutations)
}

impl Mutations {
    /// Gives back what topics that failed were charged and answers the
    /// refused ones.
    pub(crate) fn settle(
        self,
        quotas: &QuotaManager,
        image: &MetadataImage,
        client: QuotaClient,
        response: &mut ResponseKind,
    ) {
        // The topics that failed, by name and (DeleteTopics) id.
        let failed: Vec<(String, Uuid)> = match &*response {
            ResponseKind::CreateTopics(r) => r
                .topics
                .iter()
                .filter(|t| t.error_code != error::NONE)
                .map(|t| (t.name.to_string(), Uuid::nil()))
                .collect(),
            ResponseKind::CreatePartitions(r) => r
                .results
                .iter()
                .filter(|t| t.error_code != error::NONE)
                .map(|t| (t.name.to_string(), Uuid::nil()))
                .collect(),
            ResponseKind::DeleteTopics(r) => r
                .responses
                .iter()
                .filter(|t| t.error_code != error::NONE)
                .map(|t| {
                    (
                        t.name.as_ref().map(|n| n.to_string()).unwrap_or_default(),
                        t.topic_id,
                    )
                })
                .collect(),
            // Refused as a whole (not authorized): nothing happened.
            _ => self
                .charged
                .iter()
                .map(|(n, id, _)| (n.clone(), *id))
                .collect(),
        };
        for (name, id, partitions) in &self.charged {
            let did_fail = failed
                .iter()
                .any(|(n, i)| (!name.is_empty() && n == name) || (!id.is_nil() && i == id));
            if did_fail {
                quotas.give_back(image, QuotaKind::Mutation, client, *partitions);
            }
        }
        let refused = |name: &str| {
            (
                TopicName(str_bytes(name.to_string())),
                error::THROTTLING_QUOTA_EXCEEDED,
                Some(str_bytes(EXCEEDED)),
            )
        };
        match response {
            ResponseKind::CreateTopics(r) => {
                for (name, _) in &self.refused {
                    let (name, code, message) = refused(name);
                    r.topics.push(
                        CreatableTopicResult::default()
                            .with_name(name)
                            .with_error_code(code)
                            .with_error_message(message),
                    );
                }
            }
            ResponseKind::CreatePartitions(r) => {
                for (name, _) in &self.refused {
                    let (name, code, message) = refused(name);
                    r.results.push(
                        CreatePartitionsTopicResult::default()
                            .with_name(name)
                            .with_error_code(code)
                            .with_error_message(message),
                    );
                }
            }
            ResponseKind::DeleteTopics(r) => {
                for (name, id) in &self.refused {
                    let (name, code, message) = refused(name);
                    r.responses.push(
                        DeletableTopicResult::default()
                            .with_name(Some(name))
                            .with_topic_id(*id)
                            .with_error_code(code)
                            .with_error_message(message),
                    );
                }
            }
            _ => {}
        }
    }
}
