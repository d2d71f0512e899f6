//! Transactions through the handlers: commit and abort, what read_committed
//! sees, fencing, timeouts, and state surviving a restart.

use super::*;
use crate::test_support::{call, create_topic, open_test_state, test_state};
use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Record, TimestampType};
use sluice_protocol::batch::BatchIter;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn init(state: &Arc<BrokerState>, id: &str, timeout_ms: i32) -> (i16, i64, i16) {
    let body = RequestKind::InitProducerId(
        InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(s(id))))
            .with_transaction_timeout_ms(timeout_ms),
    );
    let Some(ResponseKind::InitProducerId(r)) = call(state, ApiKey::InitProducerId, 4, body).await
    else {
        panic!("no InitProducerId response")
    };
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

async fn add_partitions(
    state: &Arc<BrokerState>,
    id: &str,
    producer: (i64, i16),
    partitions: &[i32],
) -> Vec<i16> {
    let body = RequestKind::AddPartitionsToTxn(
        AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(s(id)))
            .with_v3_and_below_producer_id(ProducerId(producer.0))
            .with_v3_and_below_producer_epoch(producer.1)
            .with_v3_and_below_topics(vec![
                add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(s("t")))
                    .with_partitions(partitions.to_vec()),
            ]),
    );
    let Some(ResponseKind::AddPartitionsToTxn(r)) =
        call(state, ApiKey::AddPartitionsToTxn, 3, body).await
    else {
        panic!("no AddPartitionsToTxn response")
    };
    r.results_by_topic_v3_and_below[0]
        .results_by_partition
        .iter()
        .map(|p| p.partition_error_code)
        .collect()
}

async fn end(state: &Arc<BrokerState>, id: &str, producer: (i64, i16), commit: bool) -> i16 {
    let body = RequestKind::EndTxn(
        EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(id)))
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1)
            .with_committed(commit),
    );
    let Some(ResponseKind::EndTxn(r)) = call(state, ApiKey::EndTxn, 3, body).await else {
        panic!("no EndTxn response")
    };
    r.error_code
}

fn txn_batch(producer: (i64, i16), first_seq: i32, values: &[&str]) -> Bytes {
    keyed_batch(producer, first_seq, None, values)
}

/// A batch of `values`, all with `key`; transactional when `producer` is
/// a real producer id.
fn keyed_batch(producer: (i64, i16), first_seq: i32, key: Option<&str>, values: &[&str]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: producer.0 >= 0,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: producer.0,
            producer_epoch: producer.1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: first_seq + i as i32,
            timestamp: now_ms(),
            key: key.map(|k| Bytes::from(k.to_string())),
            value: Some(Bytes::from(v.to_string())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    encode_batch(&mut buf, &records, Compression::None).unwrap();
    buf.freeze()
}

async fn produce(state: &Arc<BrokerState>, partition: i32, batch: Bytes) -> i16 {
    let body = RequestKind::Produce(ProduceRequest::default().with_acks(-1).with_topic_data(
        vec![produce_request::TopicProduceData::default()
                .with_name(TopicName(s("t")))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch)),
                ])],
    ));
    let Some(ResponseKind::Produce(r)) = call(state, ApiKey::Produce, 9, body).await else {
        panic!("no Produce response")
    };
    r.responses[0].partition_responses[0].error_code
}

/// (high watermark, last stable offset, aborted (producer, first offset),
/// data record values) of a fetch from offset 0.
async fn fetch(
    state: &Arc<BrokerState>,
    partition: i32,
    read_committed: bool,
) -> (i64, i64, Vec<(i64, i64)>, Vec<String>) {
    let (hw, lso, aborted, values, _) = fetch_at(state, partition, 0, read_committed).await;
    (hw, lso, aborted, values)
}

/// `fetch` from `offset`, also returning the error code.
async fn fetch_at(
    state: &Arc<BrokerState>,
    partition: i32,
    offset: i64,
    read_committed: bool,
) -> (i64, i64, Vec<(i64, i64)>, Vec<String>, i16) {
    let body = RequestKind::Fetch(
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_isolation_level(i8::from(read_committed))
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(TopicName(s("t")))
                .with_partitions(vec![fetch_request::FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])]),
    );
    let Some(ResponseKind::Fetch(r)) = call(state, ApiKey::Fetch, 11, body).await else {
        panic!("no Fetch response")
    };
    let p = &r.responses[0].partitions[0];
    let records = p.records.clone().unwrap_or_default();
    let mut values = Vec::new();
    for record in sluice_protocol::compression::decode_batches(records).unwrap() {
        if !record.control {
            values.push(String::from_utf8(record.value.unwrap().to_vec()).unwrap());
        }
    }
    let aborted = p
        .aborted_transactions
        .clone()
        .unwrap_or_default()
        .iter()
        .map(|a| (a.producer_id.0, a.first_offset))
        .collect();
    (
        p.high_watermark,
        p.last_stable_offset,
        aborted,
        values,
        p.error_code,
    )
}

#[tokio::test]
async fn read_committed_sees_only_committed_data() {
    let (_dir, state) = test_state();
    create_topic(&state, "t", 2).await;
    let (code, pid, epoch) = init(&state, "tx", 60_000).await;
    assert_eq!(code, error::NONE);
    let producer = (pid, epoch);

    // An aborted transaction over both partitions.
    assert_eq!(
        add_partitions(&state, "tx", producer, &[0, 1]).await,
        [0, 0]
    );
    assert_eq!(
        produce(&state, 0, txn_batch(producer, 0, &["a0", "a1"])).await,
        0
    );
    assert_eq!(produce(&state, 1, txn_batch(producer, 0, &["a2"])).await, 0);
    let (hw, lso, _, open) = fetch(&state, 0, true).await;
    assert_eq!((hw, lso), (2, 0), "an open transaction holds the LSO back");
    assert!(
        open.is_empty(),
        "read_committed sees nothing of an open transaction"
    );
    let producers = state.partitions.get("t", 0).unwrap().active_producers();
    assert_eq!(
        (producers[0].producer_id, producers[0].txn_start_offset),
        (pid, Some(0)),
        "DescribeProducers shows where the open transaction starts"
    );
    assert_eq!(end(&state, "tx", producer, false).await, error::NONE);

    // A committed one.
    assert_eq!(add_partitions(&state, "tx", producer, &[0]).await, [0]);
    assert_eq!(produce(&state, 0, txn_batch(producer, 2, &["c0"])).await, 0);
    assert_eq!(end(&state, "tx", producer, true).await, error::NONE);
    // Retrying the same EndTxn succeeds; the opposite one does not.
    assert_eq!(end(&state, "tx", producer, true).await, error::NONE);
    assert_eq!(
        end(&state, "tx", producer, false).await,
        error::INVALID_TXN_STATE
    );

    let (hw, lso, aborted, committed) = fetch(&state, 0, true).await;
    assert_eq!(
        (hw, lso),
        (5, 5),
        "2 aborted + marker + 1 committed + marker"
    );
    assert_eq!(aborted, [(pid, 0)]);
    // The client drops aborted records using the list; the broker returns
    // all batches below the LSO.
    assert_eq!(committed, ["a0", "a1", "c0"]);
    let (_, _, aborted, _) = fetch(&state, 0, false).await;
    assert!(aborted.is_empty(), "read_uncommitted gets no aborted list");

    // A transactional write to a partition outside the transaction.
    assert_eq!(add_partitions(&state, "tx", producer, &[1]).await, [0]);
    assert_eq!(
        produce(&state, 0, txn_batch(producer, 3, &["late"])).await,
        error::INVALID_TXN_STATE
    );
}

#[tokio::test]
async fn a_new_producer_fences_the_old_and_aborts_its_transaction() {
    let (_dir, state) = test_state();
    create_topic(&state, "t", 1).await;
    let (_, pid, epoch) = init(&state, "tx", 60_000).await;
    let old = (pid, epoch);
    assert_eq!(add_partitions(&state, "tx", old, &[0]).await, [0]);
    assert_eq!(produce(&state, 0, txn_batch(old, 0, &["zombie"])).await, 0);

    let (code, new_pid, new_epoch) = init(&state, "tx", 60_000).await;
    assert_eq!(code, error::NONE);
    assert_eq!(new_pid, pid);
    assert!(new_epoch > epoch);
    assert_eq!(
        add_partitions(&state, "tx", old, &[0]).await,
        [error::PRODUCER_FENCED]
    );
    assert_eq!(end(&state, "tx", old, true).await, error::PRODUCER_FENCED);
    assert_eq!(
        produce(&state, 0, txn_batch(old, 1, &["late"])).await,
        error::INVALID_PRODUCER_EPOCH
    );
    let (hw, lso, aborted, _) = fetch(&state, 0, true).await;
    assert_eq!((hw, lso), (2, 2), "the zombie's transaction was aborted");
    assert_eq!(aborted, [(pid, 0)]);
}

#[tokio::test]
async fn expired_transactions_are_aborted_and_their_producer_fenced() {
    let (_dir, state) = test_state();
    create_topic(&state, "t", 1).await;
    let (_, pid, epoch) = init(&state, "tx", 1_000).await;
    assert_eq!(add_partitions(&state, "tx", (pid, epoch), &[0]).await, [0]);
    assert_eq!(
        produce(&state, 0, txn_batch((pid, epoch), 0, &["x"])).await,
        0
    );
    assert_eq!(TransactionCoordinator::abort_expired(&state, now_ms()), 0);
    assert_eq!(
        TransactionCoordinator::abort_expired(&state, now_ms() + 1_001),
        1
    );
    for _ in 0..100 {
        if state.txns.lock()["tx"].status == TxnStatus::CompleteAbort {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let txn = state.txns.lock()["tx"].clone();
    assert_eq!(txn.status, TxnStatus::CompleteAbort);
    assert_eq!(txn.producer_epoch, epoch + 1);
    assert_eq!(
        end(&state, "tx", (pid, epoch), true).await,
        error::PRODUCER_FENCED
    );
    let (hw, lso, aborted, _) = fetch(&state, 0, true).await;
    assert_eq!((hw, lso, aborted), (2, 2, vec![(pid, 0)]));
}

#[tokio::test]
async fn transactions_and_aborted_ranges_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (pid, epoch) = {
        let state = open_test_state(dir.path());
        create_topic(&state, "t", 1).await;
        let (_, pid, epoch) = init(&state, "tx", 60_000).await;
        assert_eq!(add_partitions(&state, "tx", (pid, epoch), &[0]).await, [0]);
        assert_eq!(
            produce(&state, 0, txn_batch((pid, epoch), 0, &["a"])).await,
            0
        );
        assert_eq!(end(&state, "tx", (pid, epoch), false).await, error::NONE);
        assert_eq!(add_partitions(&state, "tx", (pid, epoch), &[0]).await, [0]);
        assert_eq!(
            produce(&state, 0, txn_batch((pid, epoch), 1, &["open"])).await,
            0
        );
        // No clean shutdown: the next open rebuilds from the log.
        (pid, epoch)
    };
    let state = open_test_state(dir.path());
    let txn = state.txns.lock()["tx"].clone();
    assert_eq!(txn.status, TxnStatus::Ongoing);
    assert_eq!((txn.producer_id, txn.producer_epoch), (pid, epoch));
    let (hw, lso, aborted, _) = fetch(&state, 0, true).await;
    assert_eq!(
        (hw, lso),
        (3, 2),
        "the open transaction still holds the LSO"
    );
    assert_eq!(aborted, [(pid, 0)]);
    assert_eq!(end(&state, "tx", (pid, epoch), true).await, error::NONE);
    let (hw, lso, _, values) = fetch(&state, 0, true).await;
    assert_eq!((hw, lso), (4, 4));
    assert_eq!(values, ["a", "open"]);
    state.partitions.close_all().unwrap();
    drop(state);

    // After a clean shutdown the state comes from the snapshot.
    let state = open_test_state(dir.path());
    let (_, _, aborted, _) = fetch(&state, 0, true).await;
    assert_eq!(aborted, [(pid, 0)]);
}

#[tokio::test]
async fn transactional_offsets_apply_only_on_commit() {
    let (_dir, state) = test_state();
    create_topic(&state, "t", 1).await;
    let (_, pid, epoch) = init(&state, "tx", 60_000).await;
    let producer = (pid, epoch);
    let add_offsets = |group: &str| {
        RequestKind::AddOffsetsToTxn(
            AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_group_id(GroupId(s(group))),
        )
    };
    let commit_offset = |offset: i64| {
        RequestKind::TxnOffsetCommit(
            TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_group_id(GroupId(s("g")))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_generation_id(-1)
                .with_topics(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                        .with_name(TopicName(s("t")))
                        .with_partitions(vec![
                            txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(offset),
                        ]),
                ]),
        )
    };
    let committed = |state: &Arc<BrokerState>| {
        state
            .groups
            .lock()
            .offsets
            .get("g")
            .and_then(|t| t.get("t").and_then(|p| p.get(&0)).map(|c| c.offset))
    };
    let txn_commit = |response: Option<ResponseKind>| match response {
        Some(ResponseKind::TxnOffsetCommit(r)) => r.topics[0].partitions[0].error_code,
        _ => panic!("no TxnOffsetCommit response"),
    };

    // Without AddOffsetsToTxn the commit is refused.
    assert_eq!(
        txn_commit(call(&state, ApiKey::TxnOffsetCommit, 3, commit_offset(5)).await),
        error::INVALID_TXN_STATE
    );
    let Some(ResponseKind::AddOffsetsToTxn(r)) =
        call(&state, ApiKey::AddOffsetsToTxn, 3, add_offsets("g")).await
    else {
        panic!()
    };
    assert_eq!(r.error_code, 0);
    assert_eq!(
        txn_commit(call(&state, ApiKey::TxnOffsetCommit, 3, commit_offset(5)).await),
        0
    );
    assert_eq!(committed(&state), None, "pending until the commit");
    assert!(state.groups.lock().has_pending_txn_offset("g", "t", 0));
    assert_eq!(end(&state, "tx", producer, false).await, 0);
    assert_eq!(committed(&state), None, "an abort discards it");

    call(&state, ApiKey::AddOffsetsToTxn, 3, add_offsets("g")).await;
    assert_eq!(
        txn_commit(call(&state, ApiKey::TxnOffsetCommit, 3, commit_offset(7)).await),
        0
    );
    assert_eq!(end(&state, "tx", producer, true).await, 0);
    assert_eq!(committed(&state), Some(7));

    // Replaying __consumer_offsets gives the same answer.
    let reloaded = crate::group::GroupCoordinator::default();
    reloaded.load_all(&state);
    let offset = reloaded
        .lock()
        .offsets
        .get("g")
        .and_then(|t| t.get("t").and_then(|p| p.get(&0)).map(|c| c.offset));
    assert_eq!(offset, Some(7));
}

#[tokio::test]
async fn compaction_removes_aborted_records_without_losing_committed_values() {
    let (_dir, state) = test_state();
    crate::test_support::create_topic_with_configs(
        &state,
        "t",
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "1"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("min.compaction.lag.ms", "0"),
        ],
    )
    .await;
    let tick = || std::thread::sleep(std::time::Duration::from_millis(5));
    assert_eq!(
        produce(
            &state,
            0,
            keyed_batch((-1, -1), -1, Some("k"), &["committed"])
        )
        .await,
        0
    );
    let (_, pid, epoch) = init(&state, "tx", 60_000).await;
    assert_eq!(add_partitions(&state, "tx", (pid, epoch), &[0]).await, [0]);
    tick();
    assert_eq!(
        produce(
            &state,
            0,
            keyed_batch((pid, epoch), 0, Some("k"), &["aborted"])
        )
        .await,
        0
    );
    tick();
    assert_eq!(end(&state, "tx", (pid, epoch), false).await, 0);
    tick();
    // Closes the segments above.
    assert_eq!(
        produce(
            &state,
            0,
            keyed_batch((-1, -1), -1, Some("other"), &["roll"])
        )
        .await,
        0
    );

    let partition = state.partitions.get("t", 0).unwrap();
    let config = partition.settings().cleaner;
    let stats = partition
        .clean(&config, now_ms(), &sluice_storage::Throttle::unlimited())
        .unwrap()
        .expect("a pass ran");
    assert!(stats.records_removed >= 1);
    assert!(
        partition.aborted_transactions(0, i64::MAX).is_empty(),
        "the aborted range is forgotten once its records are cleaned away"
    );
    // Reads stop at segment ends: read every segment.
    let mut values = Vec::new();
    partition
        .replay_records(|r| {
            if !r.control {
                values.push(String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap());
            }
        })
        .unwrap();
    assert_eq!(
        values,
        ["committed", "roll"],
        "the aborted write neither survives nor shadows"
    );
}

// Transactions v2 (KIP-890 part 2): the client speaks EndTxn v5, Produce
// v12 and TxnOffsetCommit v5; the broker adds partitions itself and bumps
// the epoch on every commit and abort.

/// EndTxn v5: (error, producer id, epoch) of the response.
async fn end_v5(
    state: &Arc<BrokerState>,
    id: &str,
    producer: (i64, i16),
    commit: bool,
) -> (i16, i64, i16) {
    let body = RequestKind::EndTxn(
        EndTxnRequest::default()
            .with_transactional_id(TransactionalId(s(id)))
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1)
            .with_committed(commit),
    );
    let Some(ResponseKind::EndTxn(r)) = call(state, ApiKey::EndTxn, 5, body).await else {
        panic!("no EndTxn response")
    };
    (r.error_code, r.producer_id.0, r.producer_epoch)
}

/// Produce `version` with the transactional id set, to partition `partition` of "t".
async fn produce_txn(
    state: &Arc<BrokerState>,
    version: i16,
    id: &str,
    partition: i32,
    batch: Bytes,
) -> i16 {
    let body = RequestKind::Produce(
        ProduceRequest::default()
            .with_transactional_id(Some(TransactionalId(s(id))))
            .with_acks(-1)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(TopicName(s("t")))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch)),
                ])]),
    );
    let Some(ResponseKind::Produce(r)) = call(state, ApiKey::Produce, version, body).await else {
        panic!("no Produce response")
    };
    r.responses[0].partition_responses[0].error_code
}

fn markers_of(state: &Arc<BrokerState>, partition: i32) -> Vec<(i64, i16)> {
    let records = state.partitions.get("t", partition).unwrap();
    let data = records.read(0, 1 << 20).unwrap();
    sluice_protocol::batch::BatchIter::new(&data)
        .filter_map(Result::ok)
        .filter(|(h, _)| h.is_control())
        .map(|(h, _)| (h.producer_id(), h.producer_epoch()))
        .collect()
}

#[tokio::test]
async fn tv2_every_end_bumps_the_epoch_and_markers_carry_it() {
    let (_dir, state) = test_state();
    create_topic(&state, "t", 2).await;
    let (_, pid, epoch) = init(&state, "tx", 60_000).await;

    // Implicit add through Produce v12: no AddPartitionsToTxn.
    let p0 = (pid, epoch);
    assert_eq!(
        produce_txn(&state, 12, "tx", 0, txn_batch(p0, 0, &["a"])).await,
        0
    );
    assert_eq!(state.txns.lock()["tx"].status, TxnStatus::Ongoing);
    let (code, pid1, epoch1) = end_v5(&state, "tx", p0, true).await;
    assert_eq!((code, pid1, epoch1), (0, pid, epoch + 1));
    assert_eq!(markers_of(&state, 0), [(pid, epoch + 1)]);

    // The next transaction runs at the bumped epoch, sequences from 0.
    let p1 = (pid1, epoch1);
    assert_eq!(
        produce_txn(&state, 12, "tx", 0, txn_batch(p1, 0, &["b"])).await,
        0
    );
    assert_eq!(
        produce_txn(&state, 12, "tx", 1, txn_batch(p1, 0, &["c"])).await,
        0
    );
    let (code, pid2, epoch2) = end_v5(&state, "tx", p1, false).await;
    assert_eq!((code, pid2, epoch2), (0, pid, epoch + 2), "aborts bump too");
    assert_eq!(markers_of(&state, 0), [(pid, epoch + 1), (pid, epoch + 2)]);
    assert_eq!(markers_of(&state, 1), [(pid, epoch + 2)]);

    let (_, lso, aborted, values) = fetch(&state, 0, true).await;
    assert_eq!(lso, 4);
    assert_eq!(aborted, [(pid, 2)]);
    assert_eq!(values, ["a", "b"], "the client drops the aborted b");
    let txn = state.txns.lock()["tx"].clone();
    assert_eq!(txn.client_txn_version, TV2);
    assert_eq!(txn.previous_producer_id, pid);
}

#[tokio::test]
async fn tv2_a_late_write_of_the_previous_transaction_is_refused() {
    let (_dir, state) = test_state();
    create_topic(&state, "t", 2).await;
    let (_, pid, epoch) = init(&state, "tx", 60_000).await;
    let old = (pid, epoch);
    assert_eq!(
        produce_txn(&state, 12, "tx", 0, txn_batch(old, 0, &["a"])).await,
        0
    );
    let (_, _, bumped) = end_v5(&state, "tx", old, true).await;
    let new = (pid, bumped);
    // The next transaction is open on partition 1 only.
    assert_eq!(
        produce_txn(&state, 12, "tx", 1, txn_batch(new, 0, &["x"])).await,
        0
    );

    // A hanging write of the old transaction, to a partition that saw the
    // marker and to one that did not: neither lands in the new transaction.
    assert_eq!(
        produce_txn(&state, 12, "tx", 0, txn_batch(old, 1, &["late"])).await,
        error::INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        produce_txn(&state, 12, "tx", 1, txn_batch(old, 1, &["late"])).await,
        error::INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        produce_txn(&state, 11, "tx", 0, txn_batch(old, 1, &["late"])).await,
        error::INVALID_PRODUCER_EPOCH
    );
    // The partition refuses it even without the coordinator's check.
    let partition = state.partitions.get("t", 0).unwrap();
    let mut batch = BytesMut::from(&txn_batch(old, 1, &["late"])[..]);
    assert!(matches!(
        partition.append_from_producer(&mut batch, None, now_ms()),
        Err(crate::partition::AppendError::Rejected(
            error::INVALID_PRODUCER_EPOCH,
            _
        ))
    ));
    assert!(!state.txns.lock()["tx"]
        .partitions
        .contains(&("t".to_string(), 0)));

    // Produce v11 without the partition in the transaction:
    // TRANSACTION_ABORTABLE; v10: INVALID_TXN_STATE (KIP-890 part 1).
    assert_eq!(
        produce_txn(&state, 11, "tx", 0, txn_batch(new, 0, &["y"])).await,
        error::TRANSACTION_ABORTABLE
    );
    assert_eq!(
        produce_txn(&state, 10, "tx", 0, txn_batch(new, 0, &["y"])).await,
        error::INVALID_TXN_STATE
    );
    assert_eq!(end_v5(&state, "tx", new, true).await.0, 0);
    let (_, _, _, values) = fetch(&state, 0, true).await;
    assert_eq!(values, ["a"]);
}

#[tokio::test]
async fn tv2_retried_end_txn_is_answered_with_the_bumped_epoch() {
    let (_dir, state) = test_state();
    create_topic(&state, "t", 1).await;
    let (_, pid, epoch) = init(&state, "tx", 60_000).await;
    let p = (pid, epoch);
    assert_eq!(
        produce_txn(&state, 12, "tx", 0, txn_batch(p, 0, &["a"])).await,
        0
    );
    assert_eq!(end_v5(&state, "tx", p, true).await, (0, pid, epoch + 1));
    // A lost response: the retry (old epoch) succeeds without a new bump
    // or new markers; the opposite outcome is refused.
    assert_eq!(end_v5(&state, "tx", p, true).await, (0, pid, epoch + 1));
    assert_eq!(markers_of(&state, 0).len(), 1);
    assert_eq!(
        end_v5(&state, "tx", p, false).await,
        (error::INVALID_TXN_STATE, -1, -1)
    );
    // An epoch older than the retry's is fenced.
    assert_eq!(
        end_v5(&state, "tx", (pid, epoch - 1), true).await.0,
        error::PRODUCER_FENCED
    );
    // A commit at the new epoch with nothing in it is refused, as in Kafka;
    // an abort with nothing in it bumps the epoch.
    let next = (pid, epoch + 1);
    assert_eq!(
        end_v5(&state, "tx", next, true).await.0,
        error::INVALID_TXN_STATE
    );
    assert_eq!(end_v5(&state, "tx", next, false).await, (0, pid, epoch + 2));
    assert_eq!(markers_of(&state, 0).len(), 1, "no partition, no marker");
}

#[tokio::test]
async fn tv2_epoch_overflow_moves_to_a_new_producer_id() {
    let (_dir, state) = test_state();
    create_topic(&state, "t", 1).await;
    let (_, pid, _) = init(&state, "tx", 60_000).await;
    // Pretend the id has been used for 32766 transactions.
    let last = EPOCH_EXHAUSTED;
    state.txns.lock().get_mut("tx").unwrap().producer_epoch = last;
    let p = (pid, last);
    assert_eq!(
        produce_txn(&state, 12, "tx", 0, txn_batch(p, 0, &["a"])).await,
        0
    );
    let (code, new_pid, new_epoch) = end_v5(&state, "tx", p, true).await;
    assert_eq!(code, 0);
    assert_ne!(new_pid, pid);
    assert_eq!(new_epoch, 0);
    assert_eq!(
        markers_of(&state, 0),
        [(pid, i16::MAX)],
        "the marker fences the old id at Short.MAX"
    );
    let txn = state.txns.lock()["tx"].clone();
    assert_eq!(
        (
            txn.producer_id,
            txn.previous_producer_id,
            txn.next_producer_id
        ),
        (new_pid, pid, -1)
    );
    // A retry with the old id and epoch gets the new identity.
    assert_eq!(end_v5(&state, "tx", p, true).await, (0, new_pid, 0));
    // The new id works.
    let q = (new_pid, 0);
    assert_eq!(
        produce_txn(&state, 12, "tx", 0, txn_batch(q, 0, &["b"])).await,
        0
    );
    assert_eq!(end_v5(&state, "tx", q, true).await, (0, new_pid, 1));
    let (_, _, _, values) = fetch(&state, 0, true).await;
    assert_eq!(values, ["a", "b"]);
}

#[tokio::test]
async fn tv2_txn_offset_commit_adds_the_offsets_partition_itself() {
    let (_dir, state) = test_state();
    create_topic(&state, "t", 1).await;
    let (_, pid, epoch) = init(&state, "tx", 60_000).await;
    let commit_offset = |producer: (i64, i16), offset: i64| {
        RequestKind::TxnOffsetCommit(
            TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(s("tx")))
                .with_group_id(GroupId(s("g")))
                .with_producer_id(ProducerId(producer.0))
                .with_producer_epoch(producer.1)
                .with_generation_id(-1)
                .with_topics(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                        .with_name(TopicName(s("t")))
                        .with_partitions(vec![
                            txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(offset),
                        ]),
                ]),
        )
    };
    let code = |response: Option<ResponseKind>| match response {
        Some(ResponseKind::TxnOffsetCommit(r)) => r.topics[0].partitions[0].error_code,
        _ => panic!("no TxnOffsetCommit response"),
    };
    let committed = |state: &Arc<BrokerState>| {
        state
            .groups
            .lock()
            .offsets
            .get("g")
            .and_then(|t| t.get("t").and_then(|p| p.get(&0)).map(|c| c.offset))
    };
    // v4 still needs AddOffsetsToTxn.
    assert_eq!(
        code(
            call(
                &state,
                ApiKey::TxnOffsetCommit,
                4,
                commit_offset((pid, epoch), 3)
            )
            .await
        ),
        error::INVALID_TXN_STATE
    );
    let p = (pid, epoch);
    assert_eq!(
        produce_txn(&state, 12, "tx", 0, txn_batch(p, 0, &["a"])).await,
        0
    );
    assert_eq!(
        code(call(&state, ApiKey::TxnOffsetCommit, 5, commit_offset(p, 5)).await),
        0
    );
    assert_eq!(committed(&state), None, "pending until the commit");
    let (_, _, bumped) = end_v5(&state, "tx", p, true).await;
    assert_eq!(committed(&state), Some(5));

    // Offsets alone, then an abort: discarded.
    let q = (pid, bumped);
    assert_eq!(
        code(call(&state, ApiKey::TxnOffsetCommit, 5, commit_offset(q, 9)).await),
        0
    );
    assert_eq!(end_v5(&state, "tx", q, false).await.0, 0);
    assert_eq!(committed(&state), Some(5));
    // The old epoch is refused as Kafka's leader refuses it.
    assert_eq!(
        code(call(&state, ApiKey::TxnOffsetCommit, 5, commit_offset(q, 11)).await),
        error::INVALID_PRODUCER_EPOCH
    );
}

#[tokio::test]
async fn tv2_state_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (pid, bumped) = {
        let state = open_test_state(dir.path());
        create_topic(&state, "t", 1).await;
        let (_, pid, epoch) = init(&state, "tx", 60_000).await;
        state.txns.lock().get_mut("tx").unwrap().producer_epoch = EPOCH_EXHAUSTED - 1;
        let p = (pid, EPOCH_EXHAUSTED - 1);
        let _ = epoch;
        assert_eq!(
            produce_txn(&state, 12, "tx", 0, txn_batch(p, 0, &["a"])).await,
            0
        );
        let (code, _, bumped) = end_v5(&state, "tx", p, true).await;
        assert_eq!((code, bumped), (0, EPOCH_EXHAUSTED));
        let q = (pid, bumped);
        assert_eq!(
            produce_txn(&state, 12, "tx", 0, txn_batch(q, 0, &["b"])).await,
            0
        );
        // Prepare the commit (epoch exhausted: a next id is chosen) and
        // "crash" before the transaction completes.
        let mut txns = state.txns.lock();
        let _markers = prepare_end(&state, &mut txns, "tx", Marker::Commit, |txn| {
            bump_for_end(&state, txn)
        })
        .unwrap();
        (pid, bumped)
    };
    let state = open_test_state(dir.path());
    let txn = state.txns.lock()["tx"].clone();
    assert_eq!(txn.status, TxnStatus::PrepareCommit);
    assert_eq!(txn.client_txn_version, TV2);
    assert_eq!(txn.producer_epoch, i16::MAX);
    assert_eq!(txn.previous_producer_id, pid);
    let next = txn.next_producer_id;
    assert!(next >= 0 && next != pid, "NextProducerId survives");
    // Finishing at start moves the id on, as the completed EndTxn would.
    crate::coordination::resume_loaded(&state);
    for _ in 0..100 {
        if state.txns.lock()["tx"].status == TxnStatus::CompleteCommit {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let txn = state.txns.lock()["tx"].clone();
    assert_eq!(txn.status, TxnStatus::CompleteCommit);
    assert_eq!((txn.producer_id, txn.producer_epoch), (next, 0));
    // The client's retry of that EndTxn is recognised after the restart.
    assert_eq!(
        end_v5(&state, "tx", (pid, bumped), true).await,
        (0, next, 0)
    );
    let (_, _, _, values) = fetch(&state, 0, true).await;
    assert_eq!(values, ["a", "b"]);
    drop(state);
    let state = open_test_state(dir.path());
    let txn = state.txns.lock()["tx"].clone();
    assert_eq!(
        (
            txn.producer_id,
            txn.producer_epoch,
            txn.previous_producer_id
        ),
        (next, 0, pid)
    );
}

#[tokio::test]
async fn api_versions_finalizes_transaction_version_2() {
    let (_dir, state) = test_state();
    let features = |version: i16| {
        let state = state.clone();
        async move {
            let body = RequestKind::ApiVersions(
                ApiVersionsRequest::default()
                    .with_client_software_name(s("t"))
                    .with_client_software_version(s("1")),
            );
            let Some(ResponseKind::ApiVersions(r)) =
                call(&state, ApiKey::ApiVersions, version, body).await
            else {
                panic!("no ApiVersions response")
            };
            let supported: Vec<_> = r
                .supported_features
                .iter()
                .map(|f| (f.name.to_string(), f.min_version, f.max_version))
                .collect();
            let finalized: Vec<_> = r
                .finalized_features
                .iter()
                .map(|f| (f.name.to_string(), f.min_version_level, f.max_version_level))
                .collect();
            let max = |key: ApiKey| {
                r.api_keys
                    .iter()
                    .find(|k| k.api_key == key as i16)
                    .map(|k| k.max_version)
            };
            (
                supported,
                finalized,
                r.finalized_features_epoch,
                [
                    max(ApiKey::Produce),
                    max(ApiKey::EndTxn),
                    max(ApiKey::TxnOffsetCommit),
                    max(ApiKey::AddPartitionsToTxn),
                    max(ApiKey::InitProducerId),
                ],
            )
        }
    };
    let tv = || ("transaction.version".to_string(), 2, 2);
    let gv = || ("group.version".to_string(), 1, 1);
    let (supported, finalized, epoch, maxes) = features(4).await;
    assert_eq!(
        supported,
        [
            ("transaction.version".to_string(), 0, 2),
            ("group.version".to_string(), 0, 1)
        ]
    );
    assert_eq!(finalized, [tv(), gv()]);
    assert!(epoch >= 0, "Java clients ignore features at epoch -1");
    assert_eq!(maxes, [Some(13), Some(5), Some(5), Some(5), Some(5)]);
    // KAFKA-17492: below v4 a feature supported from level 0 is left out.
    let (supported, finalized, _, _) = features(3).await;
    assert!(supported.is_empty());
    assert_eq!(finalized, [tv(), gv()]);
    let (supported, finalized, _, _) = features(2).await;
    assert!(supported.is_empty() && finalized.is_empty());
}

/// A txnindex entry as (producer id, first offset, marker offset, last
/// stable offset).
type RawEntry = (i64, i64, i64, i64);

/// The `.txnindex` files of partition `t-0` under `dir`: (base offset,
/// entries), read byte by byte in Kafka's format.
fn txnindex_files(dir: &std::path::Path) -> Vec<(i64, Vec<RawEntry>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir.join("t-0"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "txnindex"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let bytes = std::fs::read(path).unwrap();
            assert_eq!(
                bytes.len() % 34,
                0,
                "{} holds whole entries",
                path.display()
            );
            let at = |e: &[u8], i: usize| i64::from_be_bytes(e[i..i + 8].try_into().unwrap());
            let entries = bytes
                .chunks(34)
                .map(|e| {
                    assert_eq!(&e[..2], &[0, 0], "version 0");
                    (at(e, 2), at(e, 10), at(e, 18), at(e, 26))
                })
                .collect();
            let base = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            (base, entries)
        })
        .collect()
}

/// What read_committed consumers get reading partition 0 front to back,
/// one fetch at a time (reads stop at segment ends): the values and every
/// aborted transaction reported, and the aborted list of each fetch by its
/// offset.
async fn read_committed_all(
    state: &Arc<BrokerState>,
    from: i64,
) -> (Vec<String>, Vec<(i64, i64)>, Vec<(i64, Vec<(i64, i64)>)>) {
    let mut offset = from;
    let (mut values, mut aborted, mut per_fetch) = (Vec::new(), Vec::new(), Vec::new());
    let partition = state.partitions.get("t", 0).unwrap();
    loop {
        let (_, lso, reported, read, code) = fetch_at(state, 0, offset, true).await;
        assert_eq!(code, error::NONE, "fetch at {offset}");
        if offset >= lso {
            return (values, aborted, per_fetch);
        }
        values.extend(read);
        for a in &reported {
            if !aborted.contains(a) {
                aborted.push(*a);
            }
        }
        per_fetch.push((offset, reported));
        // The next offset: after the last batch the fetch returned.
        let data = partition.read_committed(offset, 1 << 20).unwrap();
        offset = BatchIter::new(&data)
            .filter_map(Result::ok)
            .last()
            .map(|(h, _)| h.last_offset() + 1)
            .unwrap();
    }
}

/// One aborted and one committed transaction interleaved, then a second
/// abort (one batch per segment with `segment.bytes=100`):
/// 0 a1 (tx1) | 1 a2 (tx1) | 2 b1 (tx2) | 3 ABORT tx1 | 4 b2 (tx2) |
/// 5 COMMIT tx2 | 6 a3 (tx1) | 7 ABORT tx1.
/// Returns tx1's producer id.
async fn interleaved_transactions(state: &Arc<BrokerState>) -> i64 {
    crate::test_support::create_topic_with_configs(state, "t", 1, &[("segment.bytes", "100")])
        .await;
    let (_, pid1, epoch1) = init(state, "tx1", 60_000).await;
    let (_, pid2, epoch2) = init(state, "tx2", 60_000).await;
    let (tx1, tx2) = ((pid1, epoch1), (pid2, epoch2));
    assert_eq!(add_partitions(state, "tx1", tx1, &[0]).await, [0]);
    assert_eq!(produce(state, 0, txn_batch(tx1, 0, &["a1"])).await, 0);
    assert_eq!(produce(state, 0, txn_batch(tx1, 1, &["a2"])).await, 0);
    assert_eq!(add_partitions(state, "tx2", tx2, &[0]).await, [0]);
    assert_eq!(produce(state, 0, txn_batch(tx2, 0, &["b1"])).await, 0);
    assert_eq!(end(state, "tx1", tx1, false).await, error::NONE);
    assert_eq!(produce(state, 0, txn_batch(tx2, 1, &["b2"])).await, 0);
    assert_eq!(end(state, "tx2", tx2, true).await, error::NONE);
    assert_eq!(add_partitions(state, "tx1", tx1, &[0]).await, [0]);
    assert_eq!(produce(state, 0, txn_batch(tx1, 2, &["a3"])).await, 0);
    assert_eq!(end(state, "tx1", tx1, false).await, error::NONE);
    pid1
}

#[tokio::test]
async fn aborted_transactions_are_indexed_per_segment_and_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let state = open_test_state(dir.path());
    let pid = interleaved_transactions(&state).await;
    assert_eq!(state.partitions.get("t", 0).unwrap().log_end_offset(), 8);
    let segments = std::fs::read_dir(dir.path().join("t-0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count();
    assert!(segments >= 8, "one batch per segment: {segments}");
    let on_disk = vec![
        // tx1's first transaction began three segments before its abort;
        // tx2, open since 2, held the LSO after the marker back.
        (3, vec![(pid, 0, 3, 2)]),
        (7, vec![(pid, 6, 7, 8)]),
    ];
    assert_eq!(txnindex_files(dir.path()), on_disk);

    let check = |state: Arc<BrokerState>| async move {
        let (values, aborted, per_fetch) = read_committed_all(&state, 0).await;
        assert_eq!(values, ["a1", "a2", "b1", "b2", "a3"]);
        assert_eq!(aborted, [(pid, 0), (pid, 6)]);
        let reported = |offset: i64| {
            per_fetch
                .iter()
                .find(|(o, _)| *o == offset)
                .map(|(_, a)| a.clone())
                .unwrap()
        };
        // A fetch of the first segment learns of the abort three later.
        assert_eq!(reported(0), [(pid, 0)]);
        assert_eq!(reported(2), [(pid, 0)]);
        assert_eq!(reported(4), []);
        assert_eq!(reported(6), [(pid, 6)]);
        state
    };
    let state = check(state).await;
    // A crash (no clean shutdown): the next open replays from a snapshot.
    drop(state);
    let state = check(open_test_state(dir.path())).await;
    assert_eq!(txnindex_files(dir.path()), on_disk);
    state.partitions.close_all().unwrap();
    drop(state);
    let state = check(open_test_state(dir.path())).await;
    assert_eq!(txnindex_files(dir.path()), on_disk);
    drop(state);
}

/// An aborted transaction in the active segment, with no snapshot after
/// its marker: producer 1's a0 at 0, plain at 1, abort at 2. Returns its
/// producer id.
async fn one_abort(state: &Arc<BrokerState>) -> i64 {
    create_topic(state, "t", 1).await;
    let (_, pid, epoch) = init(state, "tx", 60_000).await;
    assert_eq!(add_partitions(state, "tx", (pid, epoch), &[0]).await, [0]);
    assert_eq!(
        produce(state, 0, txn_batch((pid, epoch), 0, &["a0"])).await,
        0
    );
    assert_eq!(
        produce(state, 0, keyed_batch((-1, -1), -1, None, &["plain"])).await,
        0
    );
    assert_eq!(end(state, "tx", (pid, epoch), false).await, error::NONE);
    pid
}

#[tokio::test]
async fn a_lost_or_torn_txnindex_write_is_rebuilt_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let state = open_test_state(dir.path());
    let pid = one_abort(&state).await;
    let index = dir.path().join("t-0/00000000000000000000.txnindex");
    let on_disk = vec![(0, vec![(pid, 0, 2, 3)])];
    assert_eq!(txnindex_files(dir.path()), on_disk);
    drop(state);

    // The marker reached the disk, its txnindex entry did not.
    std::fs::remove_file(&index).unwrap();
    let state = open_test_state(dir.path());
    assert_eq!(fetch(&state, 0, true).await.2, [(pid, 0)]);
    assert_eq!(txnindex_files(dir.path()), on_disk, "rebuilt by the replay");
    drop(state);

    // A torn entry.
    let bytes = std::fs::read(&index).unwrap();
    std::fs::write(&index, &bytes[..20]).unwrap();
    let state = open_test_state(dir.path());
    assert_eq!(fetch(&state, 0, true).await.2, [(pid, 0)]);
    assert_eq!(txnindex_files(dir.path()), on_disk);

    // A snapshot now covers the marker; a second abort comes after it.
    state.partitions.close_all().unwrap();
    drop(state);
    let state = open_test_state(dir.path());
    let (_, pid, epoch) = init(&state, "tx", 60_000).await;
    assert_eq!(add_partitions(&state, "tx", (pid, epoch), &[0]).await, [0]);
    assert_eq!(
        produce(&state, 0, txn_batch((pid, epoch), 0, &["b0"])).await,
        0
    );
    assert_eq!(end(&state, "tx", (pid, epoch), false).await, error::NONE);
    let on_disk = vec![(0, vec![(pid, 0, 2, 3), (pid, 3, 4, 5)])];
    assert_eq!(txnindex_files(dir.path()), on_disk);
    drop(state);
    // The second entry is lost: rebuilt from the snapshot on.
    std::fs::write(&index, &bytes[..34]).unwrap();
    let state = open_test_state(dir.path());
    assert_eq!(fetch(&state, 0, true).await.2, [(pid, 0), (pid, 3)]);
    assert_eq!(txnindex_files(dir.path()), on_disk);
    drop(state);
    // The first entry (below the snapshot) is damaged: the whole log is
    // replayed.
    let mut damaged = std::fs::read(&index).unwrap();
    damaged[1] = 9;
    std::fs::write(&index, &damaged).unwrap();
    let state = open_test_state(dir.path());
    assert_eq!(fetch(&state, 0, true).await.2, [(pid, 0), (pid, 3)]);
    assert_eq!(txnindex_files(dir.path()), on_disk);
    let (_, lso, _, values) = fetch(&state, 0, true).await;
    assert_eq!((lso, values.len()), (5, 3));
}

#[tokio::test]
async fn an_older_snapshot_format_makes_the_start_rebuild_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let state = open_test_state(dir.path());
    let pid = one_abort(&state).await;
    state.partitions.close_all().unwrap();
    drop(state);
    // What an earlier version left: a version 2 snapshot at the log end
    // holding the aborted list, and no txnindex files.
    let partition_dir = dir.path().join("t-0");
    for entry in std::fs::read_dir(&partition_dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.ends_with(".snapshot") || name.ends_with(".txnindex") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let mut v2 = BytesMut::new();
    v2.extend_from_slice(b"SLPS\x00\x02");
    v2.extend_from_slice(&3i64.to_be_bytes()); // covers the log end
    v2.extend_from_slice(&0u32.to_be_bytes()); // producers
    v2.extend_from_slice(&0u32.to_be_bytes()); // open transactions
    v2.extend_from_slice(&1u32.to_be_bytes()); // aborted
    for field in [pid, 0, 2] {
        v2.extend_from_slice(&field.to_be_bytes());
    }
    let crc = crc32c::crc32c(&v2);
    v2.extend_from_slice(&crc.to_be_bytes());
    std::fs::write(partition_dir.join("00000000000000000003.snapshot"), &v2).unwrap();
    // A clean start: without the fallback nothing would replay.
    let state = open_test_state(dir.path());
    assert_eq!(fetch(&state, 0, true).await.2, [(pid, 0)]);
    assert_eq!(txnindex_files(dir.path()), vec![(0, vec![(pid, 0, 2, 3)])]);
}

#[tokio::test]
async fn retention_takes_aborted_transactions_with_their_segments() {
    let dir = tempfile::tempdir().unwrap();
    let state = open_test_state(dir.path());
    crate::test_support::create_topic_with_configs(
        &state,
        "t",
        1,
        &[("segment.bytes", "100"), ("retention.ms", "1000")],
    )
    .await;
    let (_, pid1, epoch1) = init(&state, "tx1", 60_000).await;
    let (_, pid2, epoch2) = init(&state, "tx2", 60_000).await;
    let (tx1, tx2) = ((pid1, epoch1), (pid2, epoch2));
    // Old: tx1's a1 at 0 and its abort at 1, tx2's b1 at 2.
    assert_eq!(add_partitions(&state, "tx1", tx1, &[0]).await, [0]);
    assert_eq!(produce(&state, 0, txn_batch(tx1, 0, &["a1"])).await, 0);
    assert_eq!(end(&state, "tx1", tx1, false).await, error::NONE);
    assert_eq!(add_partitions(&state, "tx2", tx2, &[0]).await, [0]);
    assert_eq!(produce(&state, 0, txn_batch(tx2, 0, &["b1"])).await, 0);
    let old = now_ms();
    std::thread::sleep(std::time::Duration::from_millis(20));
    // New: tx2's abort at 3, plain at 4.
    assert_eq!(end(&state, "tx2", tx2, false).await, error::NONE);
    assert_eq!(
        produce(&state, 0, keyed_batch((-1, -1), -1, None, &["new"])).await,
        0
    );
    assert_eq!(
        txnindex_files(dir.path()),
        vec![(1, vec![(pid1, 0, 1, 2)]), (3, vec![(pid2, 2, 3, 4)])]
    );
    let partition = state.partitions.get("t", 0).unwrap();
    assert_eq!(partition.apply_retention(old + 1_001).unwrap(), 3);
    assert_eq!(partition.log_start_offset(), 3);
    drop(partition);
    // tx1's entry went with its segment; tx2's stays with its marker
    // (its records went, as in Kafka).
    let on_disk = vec![(3, vec![(pid2, 2, 3, 4)])];
    assert_eq!(txnindex_files(dir.path()), on_disk);
    let check = |state: Arc<BrokerState>| async move {
        let (values, aborted, _) = read_committed_all(&state, 3).await;
        assert_eq!(values, ["new"]);
        assert_eq!(aborted, [(pid2, 2)]);
        let (.., code) = fetch_at(&state, 0, 0, true).await;
        assert_eq!(code, error::OFFSET_OUT_OF_RANGE);
        state
    };
    let state = check(state).await;
    drop(state);
    let state = check(open_test_state(dir.path())).await;
    assert_eq!(txnindex_files(dir.path()), on_disk);
    state.partitions.close_all().unwrap();
    drop(state);
    check(open_test_state(dir.path())).await;
    assert_eq!(txnindex_files(dir.path()), on_disk);
}
