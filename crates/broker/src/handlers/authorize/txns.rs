//! Transaction APIs (Kafka's KafkaApis): a transactional id needs Write for
//! InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn and
//! TxnOffsetCommit, Describe for DescribeTransactions and ListTransactions;
//! an idempotent InitProducerId needs IdempotentWrite on the cluster or
//! Write on some topic; the partitions and offsets involved need Write on
//! their topics and Read on the group and the topics.

use super::{patch_if, refuse, take_refused, Access, Checked, Patch};
use crate::security::authorizer::{resource, Operation};
use kafka_protocol::messages::{
    add_partitions_to_txn_response, describe_transactions_response, txn_offset_commit_response,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeTransactionsRequest, EndTxnRequest, EndTxnResponse,
    InitProducerIdRequest, InitProducerIdResponse, ResponseKind, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};
use sluice_protocol::error::{
    CLUSTER_AUTHORIZATION_FAILED, GROUP_AUTHORIZATION_FAILED, OPERATION_NOT_ATTEMPTED,
    TOPIC_AUTHORIZATION_FAILED, TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
};

const DENIED: i16 = TRANSACTIONAL_ID_AUTHORIZATION_FAILED;
/// AddPartitionsToTxn from v4 on is sent by brokers (KIP-890 verification).
const BROKER_ADD_PARTITIONS_SINCE: i16 = 4;

pub(super) fn init_producer_id(access: &Access, request: &mut InitProducerIdRequest) -> Checked {
    let code = match request.transactional_id.as_ref() {
        Some(id) if !access.transactional_id(Operation::Write, id) => DENIED,
        Some(_) => return Ok(None),
        None if access.cluster(Operation::IdempotentWrite)
            || access.state.authorizer.authorize_any(
                &access.image,
                access.caller,
                Operation::Write,
                resource::TOPIC,
            ) =>
        {
            return Ok(None)
        }
        None => CLUSTER_AUTHORIZATION_FAILED,
    };
    refuse(ResponseKind::InitProducerId(
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1),
    ))
}

pub(super) fn add_partitions_to_txn(
    access: &Access,
    request: &mut AddPartitionsToTxnRequest,
    version: i16,
) -> Checked {
    if version >= BROKER_ADD_PARTITIONS_SINCE {
        if access.cluster(Operation::ClusterAction) {
            return Ok(None);
        }
        return refuse(ResponseKind::AddPartitionsToTxn(
            AddPartitionsToTxnResponse::default().with_error_code(CLUSTER_AUTHORIZATION_FAILED),
        ));
    }
    let id_denied =
        !access.transactional_id(Operation::Write, &request.v3_and_below_transactional_id);
    let topic_denied: Vec<bool> = request
        .v3_and_below_topics
        .iter()
        .map(|t| id_denied || !access.topic(Operation::Write, &t.name))
        .collect();
    if !topic_denied.contains(&true) {
        return Ok(None);
    }
    // Kafka adds nothing when anything is refused: the rest is not attempted.
    let results = request
        .v3_and_below_topics
        .iter()
        .zip(topic_denied)
        .map(|(t, denied)| {
            let code = match (id_denied, denied) {
                (true, _) => DENIED,
                (false, true) => TOPIC_AUTHORIZATION_FAILED,
                (false, false) => OPERATION_NOT_ATTEMPTED,
            };
            add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|p| {
                            add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    refuse(ResponseKind::AddPartitionsToTxn(
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results),
    ))
}

pub(super) fn add_offsets_to_txn(access: &Access, request: &mut AddOffsetsToTxnRequest) -> Checked {
    let code = if !access.transactional_id(Operation::Write, &request.transactional_id) {
        DENIED
    } else if !access.group(Operation::Read, &request.group_id) {
        GROUP_AUTHORIZATION_FAILED
    } else {
        return Ok(None);
    };
    refuse(ResponseKind::AddOffsetsToTxn(
        AddOffsetsToTxnResponse::default().with_error_code(code),
    ))
}

pub(super) fn end_txn(access: &Access, request: &mut EndTxnRequest) -> Checked {
    if access.transactional_id(Operation::Write, &request.transactional_id) {
        return Ok(None);
    }
    refuse(ResponseKind::EndTxn(
        EndTxnResponse::default()
            .with_error_code(DENIED)
            .with_producer_id((-1).into())
            .with_producer_epoch(-1),
    ))
}

pub(super) fn txn_offset_commit(access: &Access, request: &mut TxnOffsetCommitRequest) -> Checked {
    let whole = if !access.transactional_id(Operation::Write, &request.transactional_id) {
        Some(DENIED)
    } else if !access.group(Operation::Read, &request.group_id) {
        Some(GROUP_AUTHORIZATION_FAILED)
    } else {
        None
    };
    let refused = match whole {
        Some(_) => std::mem::take(&mut request.topics),
        None => take_refused(&mut request.topics, |t| {
            access.topic(Operation::Read, &t.name)
        }),
    };
    let code = whole.unwrap_or(TOPIC_AUTHORIZATION_FAILED);
    let answer = move |r: &mut TxnOffsetCommitResponse,
                       refused: Vec<
        kafka_protocol::messages::txn_offset_commit_request::TxnOffsetCommitRequestTopic,
    >| {
        for t in refused {
            r.topics.push(
                txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code)
                            })
                            .collect(),
                    ),
            );
        }
    };
    if whole.is_some() {
        let mut response = TxnOffsetCommitResponse::default();
        answer(&mut response, refused);
        return refuse(ResponseKind::TxnOffsetCommit(response));
    }
    Ok(patch_if(refused, move |response, refused| {
        if let ResponseKind::TxnOffsetCommit(r) = response {
            answer(r, refused);
        }
    }))
}

pub(super) fn describe_transactions(
    access: &Access,
    request: &mut DescribeTransactionsRequest,
) -> Option<Patch> {
    let refused = take_refused(&mut request.transactional_ids, |id| {
        access.transactional_id(Operation::Describe, id)
    });
    patch_if(refused, |response, refused| {
        if let ResponseKind::DescribeTransactions(r) = response {
            for id in refused {
                r.transaction_states.push(
                    describe_transactions_response::TransactionState::default()
                        .with_transactional_id(id)
                        .with_error_code(DENIED)
                        .with_transaction_timeout_ms(0)
                        .with_transaction_start_time_ms(-1)
                        .with_producer_id((-1).into())
                        .with_producer_epoch(-1),
                );
            }
        }
    })
}

pub(super) fn list_transactions(access: &Access) -> Option<Patch> {
    let allows = access.checker();
    Some(Box::new(move |response: &mut ResponseKind| {
        if let ResponseKind::ListTransactions(r) = response {
            r.transaction_states.retain(|t| {
                allows(
                    Operation::Describe,
                    resource::TRANSACTIONAL_ID,
                    &t.transactional_id,
                )
            });
        }
    }))
}
