//! Topic APIs: each topic of a request needs its operation (Kafka's
//! KafkaApis): Metadata and ListOffsets Describe, Produce Write (and the
//! transactional id Write), Fetch Read (followers ClusterAction),
//! CreateTopics Create on the cluster or the topic, DeleteTopics and
//! DeleteRecords Delete, CreatePartitions Alter, DescribeProducers Read.
//! Refused topics answer TOPIC_AUTHORIZATION_FAILED.

use super::{patch_if, refuse, take_refused, Access, Checked, Patch};
use crate::security::authorizer::Operation;
use kafka_protocol::messages::{
    create_partitions_response, create_topics_response, delete_records_response,
    delete_topics_response, describe_producers_response, fetch_response, list_offsets_response,
    metadata_response, offset_for_leader_epoch_response, produce_response,
};
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    DescribeProducersRequest, FetchRequest, ListOffsetsRequest, MetadataRequest,
    OffsetForLeaderEpochRequest, ProduceRequest, ResponseKind, TopicName,
};
use sluice_protocol::error::{
    CLUSTER_AUTHORIZATION_FAILED, TOPIC_AUTHORIZATION_FAILED, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
};

const DENIED: i16 = TOPIC_AUTHORIZATION_FAILED;

pub(super) fn metadata(access: &Access, request: &mut MetadataRequest) -> Option<Patch> {
    let Some(topics) = request.topics.as_mut() else {
        // Every topic: those the caller may not describe are left out.
        let allowed: Vec<String> = access
            .image
            .topics()
            .filter(|t| access.topic(Operation::Describe, &t.name))
            .map(|t| t.name.clone())
            .collect();
        return Some(Box::new(move |response: &mut ResponseKind| {
            if let ResponseKind::Metadata(r) = response {
                r.topics.retain(|t| {
                    t.name
                        .as_ref()
                        .is_some_and(|n| allowed.iter().any(|a| a == n.as_str()))
                });
            }
        }));
    };
    let auto_create = request.allow_auto_topic_creation;
    let refused = take_refused(topics, |t| {
        let name = match (&t.name, access.topic_name(&t.topic_id)) {
            (Some(name), _) => name.to_string(),
            (None, Some(name)) => name,
            (None, None) => return true, // unknown id: the handler says so
        };
        let exists = access.image.topic(&name).is_some();
        access.topic(Operation::Describe, &name)
            && (exists || !auto_create || access.may_create_topic(&name))
    });
    patch_if(refused, |response, refused| {
        if let ResponseKind::Metadata(r) = response {
            for t in refused {
                r.topics.push(
                    metadata_response::MetadataResponseTopic::default()
                        .with_error_code(DENIED)
                        .with_name(t.name)
                        .with_topic_id(t.topic_id),
                );
            }
        }
    })
}

pub(super) fn produce(access: &Access, request: &mut ProduceRequest) -> Checked {
    let transactional_denied = request
        .transactional_id
        .as_ref()
        .is_some_and(|id| !access.transactional_id(Operation::Write, id));
    let refused = if transactional_denied {
        std::mem::take(&mut request.topic_data)
    } else {
        take_refused(&mut request.topic_data, |t| {
            let name = access
                .topic_name(&t.topic_id)
                .unwrap_or_else(|| t.name.to_string());
            access.topic(Operation::Write, &name)
        })
    };
    let code = if transactional_denied {
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    } else {
        DENIED
    };
    Ok(patch_if(refused, move |response, refused| {
        if let ResponseKind::Produce(r) = response {
            for t in refused {
                r.responses.push(
                    produce_response::TopicProduceResponse::default()
                        .with_name(t.name)
                        .with_topic_id(t.topic_id)
                        .with_partition_responses(
                            t.partition_data
                                .iter()
                                .map(|p| {
                                    produce_response::PartitionProduceResponse::default()
                                        .with_index(p.index)
                                        .with_error_code(code)
                                        .with_base_offset(-1)
                                        .with_log_append_time_ms(-1)
                                        .with_log_start_offset(-1)
                                })
                                .collect(),
                        ),
                );
            }
        }
    }))
}

pub(super) fn fetch(access: &Access, request: &mut FetchRequest) -> Checked {
    let follower = request.replica_id.0 >= 0 || request.replica_state.replica_id.0 >= 0;
    if follower {
        if access.cluster(Operation::ClusterAction) {
            return Ok(None);
        }
        let mut response = kafka_protocol::messages::FetchResponse::default();
        response.error_code = CLUSTER_AUTHORIZATION_FAILED;
        return refuse(ResponseKind::Fetch(response));
    }
    let refused = take_refused(&mut request.topics, |t| {
        let name = access
            .topic_name(&t.topic_id)
            .unwrap_or_else(|| t.topic.to_string());
        access.topic(Operation::Read, &name)
    });
    // An incremental fetch (KIP-227) also answers for the session's topics
    // not in this request: those the caller may no longer read are
    // answered as refused too.
    let allows = access.checker();
    let names = access.image.clone();
    Ok(Some(Box::new(move |response: &mut ResponseKind| {
        if let ResponseKind::Fetch(r) = response {
            for t in &mut r.responses {
                let name = names
                    .topic_by_id(&t.topic_id)
                    .map(|topic| topic.name.clone())
                    .unwrap_or_else(|| t.topic.to_string());
                if !allows(
                    Operation::Read,
                    crate::security::authorizer::resource::TOPIC,
                    &name,
                ) {
                    for p in &mut t.partitions {
                        p.error_code = DENIED;
                        p.records = None;
                    }
                }
            }
            for t in refused {
                r.responses.push(
                    fetch_response::FetchableTopicResponse::default()
                        .with_topic(t.topic)
                        .with_topic_id(t.topic_id)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    fetch_response::PartitionData::default()
                                        .with_partition_index(p.partition)
                                        .with_error_code(DENIED)
                                        .with_high_watermark(-1)
                                        .with_last_stable_offset(-1)
                                        .with_log_start_offset(-1)
                                })
                                .collect(),
                        ),
                );
            }
        }
    })))
}

pub(super) fn list_offsets(access: &Access, request: &mut ListOffsetsRequest) -> Option<Patch> {
    let refused = take_refused(&mut request.topics, |t| {
        access.topic(Operation::Describe, &t.name)
    });
    patch_if(refused, |response, refused| {
        if let ResponseKind::ListOffsets(r) = response {
            for t in refused {
                r.topics.push(
                    list_offsets_response::ListOffsetsTopicResponse::default()
                        .with_name(t.name)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    list_offsets_response::ListOffsetsPartitionResponse::default()
                                        .with_partition_index(p.partition_index)
                                        .with_error_code(DENIED)
                                        .with_timestamp(-1)
                                        .with_offset(-1)
                                        .with_leader_epoch(-1)
                                })
                                .collect(),
                        ),
                );
            }
        }
    })
}

pub(super) fn offset_for_leader_epoch(
    access: &Access,
    request: &mut OffsetForLeaderEpochRequest,
) -> Checked {
    if request.replica_id.0 >= 0 {
        if access.cluster(Operation::ClusterAction) {
            return Ok(None);
        }
        let mut topics = std::mem::take(&mut request.topics);
        let mut response = kafka_protocol::messages::OffsetForLeaderEpochResponse::default();
        response.topics = topics
            .drain(..)
            .map(|t| epoch_refused(t, CLUSTER_AUTHORIZATION_FAILED))
            .collect();
        return refuse(ResponseKind::OffsetForLeaderEpoch(response));
    }
    let refused = take_refused(&mut request.topics, |t| {
        access.topic(Operation::Describe, &t.topic)
    });
    Ok(patch_if(refused, |response, refused| {
        if let ResponseKind::OffsetForLeaderEpoch(r) = response {
            r.topics
                .extend(refused.into_iter().map(|t| epoch_refused(t, DENIED)));
        }
    }))
}

fn epoch_refused(
    t: kafka_protocol::messages::offset_for_leader_epoch_request::OffsetForLeaderTopic,
    code: i16,
) -> offset_for_leader_epoch_response::OffsetForLeaderTopicResult {
    offset_for_leader_epoch_response::OffsetForLeaderTopicResult::default()
        .with_topic(t.topic)
        .with_partitions(
            t.partitions
                .iter()
                .map(|p| {
                    offset_for_leader_epoch_response::EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_error_code(code)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1)
                })
                .collect(),
        )
}

pub(super) fn create_topics(access: &Access, request: &mut CreateTopicsRequest) -> Option<Patch> {
    let refused = take_refused(&mut request.topics, |t| access.may_create_topic(&t.name));
    patch_if(refused, |response, refused| {
        if let ResponseKind::CreateTopics(r) = response {
            for t in refused {
                r.topics.push(
                    create_topics_response::CreatableTopicResult::default()
                        .with_name(t.name)
                        .with_error_code(DENIED)
                        .with_error_message(Some(super::super::str_bytes("Authorization failed.")))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1),
                );
            }
        }
    })
}

pub(super) fn delete_topics(access: &Access, request: &mut DeleteTopicsRequest) -> Option<Patch> {
    let by_name = take_refused(&mut request.topic_names, |n| {
        access.topic(Operation::Delete, n)
    });
    let by_state = take_refused(&mut request.topics, |t| {
        match (&t.name, access.topic_name(&t.topic_id)) {
            (Some(n), _) => access.topic(Operation::Delete, n),
            (None, Some(n)) => access.topic(Operation::Delete, &n),
            (None, None) => true,
        }
    });
    let refused: Vec<(Option<TopicName>, sluice_metadata::Uuid)> = by_name
        .into_iter()
        .map(|n| (Some(n), sluice_metadata::Uuid::nil()))
        .chain(by_state.into_iter().map(|t| (t.name, t.topic_id)))
        .collect();
    patch_if(refused, |response, refused| {
        if let ResponseKind::DeleteTopics(r) = response {
            for (name, id) in refused {
                r.responses.push(
                    delete_topics_response::DeletableTopicResult::default()
                        .with_name(name)
                        .with_topic_id(id)
                        .with_error_code(DENIED),
                );
            }
        }
    })
}

pub(super) fn create_partitions(
    access: &Access,
    request: &mut CreatePartitionsRequest,
) -> Option<Patch> {
    let refused = take_refused(&mut request.topics, |t| {
        access.topic(Operation::Alter, &t.name)
    });
    patch_if(refused, |response, refused| {
        if let ResponseKind::CreatePartitions(r) = response {
            for t in refused {
                r.results.push(
                    create_partitions_response::CreatePartitionsTopicResult::default()
                        .with_name(t.name)
                        .with_error_code(DENIED),
                );
            }
        }
    })
}

pub(super) fn delete_records(access: &Access, request: &mut DeleteRecordsRequest) -> Option<Patch> {
    let refused = take_refused(&mut request.topics, |t| {
        access.topic(Operation::Delete, &t.name)
    });
    patch_if(refused, |response, refused| {
        if let ResponseKind::DeleteRecords(r) = response {
            for t in refused {
                r.topics.push(
                    delete_records_response::DeleteRecordsTopicResult::default()
                        .with_name(t.name)
                        .with_partitions(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    delete_records_response::DeleteRecordsPartitionResult::default()
                                        .with_partition_index(p.partition_index)
                                        .with_low_watermark(-1)
                                        .with_error_code(DENIED)
                                })
                                .collect(),
                        ),
                );
            }
        }
    })
}

pub(super) fn describe_producers(
    access: &Access,
    request: &mut DescribeProducersRequest,
) -> Option<Patch> {
    let refused = take_refused(&mut request.topics, |t| {
        access.topic(Operation::Read, &t.name)
    });
    patch_if(refused, |response, refused| {
        if let ResponseKind::DescribeProducers(r) = response {
            for t in refused {
                r.topics.push(
                    describe_producers_response::TopicResponse::default()
                        .with_name(t.name)
                        .with_partitions(
                            t.partition_indexes
                                .iter()
                                .map(|p| {
                                    describe_producers_response::PartitionResponse::default()
                                        .with_partition_index(*p)
                                        .with_error_code(DENIED)
                                })
                                .collect(),
                        ),
                );
            }
        }
    })
}
