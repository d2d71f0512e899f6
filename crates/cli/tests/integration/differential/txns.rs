//! Idempotence and transactions: InitProducerId, AddPartitionsToTxn,
//! AddOffsetsToTxn, TxnOffsetCommit, EndTxn, transactional produce and
//! read_committed fetch, DescribeTransactions, ListTransactions,
//! DescribeProducers.

use sluice_protocol::kafka_protocol::messages::{
    add_partitions_to_txn_request::AddPartitionsToTxnTopic,
    describe_producers_request::TopicRequest,
    txn_offset_commit_request::{TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic},
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, ApiKey, DescribeProducersRequest,
    DescribeTransactionsRequest, EndTxnRequest, GroupId, InitProducerIdRequest,
    InitProducerIdResponse, ListTransactionsRequest, ProducerId, RequestKind, ResponseKind,
    TransactionalId, TxnOffsetCommitRequest,
};

use super::records::{
    batch, fetch_from, produce_to, record_fetch, record_produce, topic_id, FetchArgs,
};
use super::topics::{create_topic, s, topic_name};
use super::{error_name, Obs, Side};

fn txn_id(id: &str) -> TransactionalId {
    TransactionalId(s(id))
}

fn init(
    side: &mut Side,
    transactional_id: Option<&str>,
    timeout_ms: i32,
    current: Option<(i64, i16)>,
) -> InitProducerIdResponse {
    let (pid, epoch) = current.unwrap_or((-1, -1));
    let request = InitProducerIdRequest::default()
        .with_transactional_id(transactional_id.map(txn_id))
        .with_transaction_timeout_ms(timeout_ms)
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch);
    match side.wire.send(RequestKind::InitProducerId(request)) {
        ResponseKind::InitProducerId(r) => r,
        other => panic!("{other:?}"),
    }
}

pub(crate) fn init_producer_id(side: &mut Side, obs: &mut Obs) {
    let r = init(side, None, -1, None);
    obs.error("idempotent/error", r.error_code);
    obs.put("idempotent/epoch", r.producer_epoch);
    obs.put("idempotent/has_id", r.producer_id.0 >= 0);
    let first = init(side, Some("diff-init"), 60_000, None);
    obs.error("transactional/error", first.error_code);
    obs.put("transactional/epoch", first.producer_epoch);
    let again = init(side, Some("diff-init"), 60_000, None);
    obs.error("transactional_again/error", again.error_code);
    obs.put(
        "transactional_again/same_id",
        again.producer_id == first.producer_id,
    );
    obs.put("transactional_again/epoch", again.producer_epoch);
    let r = init(side, Some("diff-init-long"), 3_600_000, None);
    obs.error("timeout_too_long/error", r.error_code);
    let r = init(side, Some("diff-init-zero"), 0, None);
    obs.error("timeout_zero/error", r.error_code);
    let r = init(side, Some(""), 60_000, None);
    obs.error("empty_transactional_id/error", r.error_code);
    if side.wire.version_of(ApiKey::InitProducerId).unwrap_or(0) >= 3 {
        let r = init(
            side,
            Some("diff-init"),
            60_000,
            Some((again.producer_id.0, again.producer_epoch - 1)),
        );
        obs.error("stale_epoch/error", r.error_code);
        let r = init(
            side,
            Some("diff-init"),
            60_000,
            Some((again.producer_id.0 + 1000, 0)),
        );
        obs.error("wrong_producer_id/error", r.error_code);
        let r = init(
            side,
            Some("diff-init"),
            60_000,
            Some((again.producer_id.0, again.producer_epoch)),
        );
        obs.error("current_epoch/error", r.error_code);
        obs.put(
            "current_epoch/epoch_bumped",
            r.producer_epoch == again.producer_epoch + 1,
        );
    }
}

/// AddPartitionsToTxn as a client sends it (v3 and below).
fn add_partitions(
    side: &mut Side,
    id: &str,
    pid: i64,
    epoch: i16,
    topic: &str,
    partitions: &[i32],
) -> String {
    let version = side
        .wire
        .version_of(ApiKey::AddPartitionsToTxn)
        .unwrap_or(0)
        .min(3);
    let mut request = AddPartitionsToTxnRequest::default();
    request.v3_and_below_transactional_id = txn_id(id);
    request.v3_and_below_producer_id = ProducerId(pid);
    request.v3_and_below_producer_epoch = epoch;
    request.v3_and_below_topics = vec![AddPartitionsToTxnTopic::default()
        .with_name(topic_name(topic))
        .with_partitions(partitions.to_vec())];
    match side
        .wire
        .send_at(version, RequestKind::AddPartitionsToTxn(request))
    {
        ResponseKind::AddPartitionsToTxn(r) => r
            .results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| t.results_by_partition.iter())
            .map(|p| error_name(p.partition_error_code))
            .collect::<Vec<_>>()
            .join(","),
        other => panic!("{other:?}"),
    }
}

/// EndTxn at the last version before KIP-890's epoch bump (v4), so both
/// brokers run the same (classic) protocol.
/// Retried while the previous transaction's markers are still being written
/// (CONCURRENT_TRANSACTIONS), as clients do.
fn end_txn(side: &mut Side, id: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
    let version = side.wire.version_of(ApiKey::EndTxn).unwrap_or(0).min(4);
    let request = EndTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    for _ in 0..100 {
        match side
            .wire
            .send_at(version, RequestKind::EndTxn(request.clone()))
        {
            ResponseKind::EndTxn(r) if r.error_code == CONCURRENT_TRANSACTIONS => {
                std::thread::sleep(std::time::Duration::from_millis(50))
            }
            ResponseKind::EndTxn(r) => return r.error_code,
            other => panic!("{other:?}"),
        }
    }
    CONCURRENT_TRANSACTIONS
}

const CONCURRENT_TRANSACTIONS: i16 = 51;

/// Produce at v11 at most: the version before KIP-890 part 2 made the
/// broker add partitions implicitly.
fn produce_txn(
    side: &mut Side,
    obs: &mut Obs,
    case: &str,
    id: &str,
    pid: i64,
    epoch: i16,
    sequence: i32,
) {
    let saved = side.wire.version_of(ApiKey::Produce).unwrap_or(0);
    let mut versions = side.own_versions.clone();
    versions.insert(ApiKey::Produce as i16, (3, saved.min(11)));
    let mut wire = side.connection();
    wire.use_versions(versions);
    std::mem::swap(&mut side.wire, &mut wire);
    let r = produce_to(
        side,
        "diff-txn",
        0,
        batch(&[b"t1", b"t2"], &[], Some((pid, epoch, sequence, true))),
        -1,
        Some(id),
    );
    std::mem::swap(&mut side.wire, &mut wire);
    record_produce(obs, case, &r);
}

pub(crate) fn transactions(side: &mut Side, obs: &mut Obs) {
    create_topic(side, "diff-txn", 1);
    let id = "diff-txn-flow";
    let r = init(side, Some(id), 60_000, None);
    let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
    obs.error(
        "end_without_transaction",
        end_txn(side, id, pid, epoch, true),
    );
    produce_txn(side, obs, "produce_before_add", id, pid, epoch, 0);
    obs.put(
        "add/ok",
        add_partitions(side, id, pid, epoch, "diff-txn", &[0]),
    );
    obs.put(
        "add/unknown_partition",
        add_partitions(side, id, pid, epoch, "diff-txn", &[7]),
    );
    obs.put(
        "add/wrong_epoch",
        add_partitions(side, id, pid, epoch + 3, "diff-txn", &[0]),
    );
    obs.put(
        "add/unknown_transactional_id",
        add_partitions(side, "diff-txn-never", pid, epoch, "diff-txn", &[0]),
    );
    produce_txn(side, obs, "produce_after_add", id, pid, epoch, 0);
    let topic = topic_id(side, "diff-txn");
    let r = fetch_from(
        side,
        "diff-txn",
        topic,
        FetchArgs {
            isolation: 1,
            ..Default::default()
        },
    );
    record_fetch(obs, "open/read_committed", &r);
    let r = fetch_from(side, "diff-txn", topic, FetchArgs::default());
    record_fetch(obs, "open/read_uncommitted", &r);

    let request = AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn_id(id))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(GroupId(s("diff-txn-group")));
    if let ResponseKind::AddOffsetsToTxn(r) = side.wire.send(RequestKind::AddOffsetsToTxn(request))
    {
        obs.error("add_offsets", r.error_code);
    }
    let commit = TxnOffsetCommitRequest::default()
        .with_transactional_id(txn_id(id))
        .with_group_id(GroupId(s("diff-txn-group")))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(-1)
        .with_topics(vec![TxnOffsetCommitRequestTopic::default()
            .with_name(topic_name("diff-txn"))
            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(1)
                .with_committed_leader_epoch(-1)])]);
    if let ResponseKind::TxnOffsetCommit(r) = side.wire.send(RequestKind::TxnOffsetCommit(commit)) {
        let codes: Vec<String> = r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| error_name(p.error_code))
            .collect();
        obs.put("txn_offset_commit", codes.join(","));
    }
    obs.error("end/abort", end_txn(side, id, pid, epoch, false));
    obs.error(
        "end/commit_after_abort",
        end_txn(side, id, pid, epoch, true),
    );
    produce_txn(side, obs, "produce_after_abort", id, pid, epoch, 2);
    wait_until_stable(side, topic);
    let r = fetch_from(
        side,
        "diff-txn",
        topic,
        FetchArgs {
            isolation: 1,
            ..Default::default()
        },
    );
    record_fetch(obs, "aborted/read_committed", &r);

    // A second transaction, committed.
    obs.put(
        "second/add",
        add_partitions(side, id, pid, epoch, "diff-txn", &[0]),
    );
    produce_txn(side, obs, "second/produce", id, pid, epoch, 2);
    obs.error("second/commit", end_txn(side, id, pid, epoch, true));
    wait_until_stable(side, topic);
    let r = fetch_from(
        side,
        "diff-txn",
        topic,
        FetchArgs {
            isolation: 1,
            ..Default::default()
        },
    );
    record_fetch(obs, "committed/read_committed", &r);

    // A newer producer with the same transactional id fences this one.
    let newer = init(side, Some(id), 60_000, None);
    obs.put("fenced/new_epoch_is_higher", newer.producer_epoch > epoch);
    obs.put(
        "fenced/add",
        add_partitions(side, id, pid, epoch, "diff-txn", &[0]),
    );
    obs.error("fenced/end", end_txn(side, id, pid, epoch, true));
    produce_txn(side, obs, "fenced/produce", id, pid, epoch, 4);
}

/// Waits until the markers of ended transactions are written (the last
/// stable offset catches up with the high watermark).
fn wait_until_stable(side: &mut Side, topic: uuid::Uuid) {
    for _ in 0..100 {
        let r = fetch_from(
            side,
            "diff-txn",
            topic,
            FetchArgs {
                isolation: 1,
                ..Default::default()
            },
        );
        let p = &r.responses[0].partitions[0];
        if p.last_stable_offset == p.high_watermark {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

pub(crate) fn describe_transactions(side: &mut Side, obs: &mut Obs) {
    let request = DescribeTransactionsRequest::default().with_transactional_ids(vec![
        txn_id("diff-txn-flow"),
        txn_id("diff-init"),
        txn_id("diff-txn-unknown"),
    ]);
    if let ResponseKind::DescribeTransactions(r) =
        side.wire.send(RequestKind::DescribeTransactions(request))
    {
        for t in &r.transaction_states {
            let key = format!("describe/{}", t.transactional_id.0);
            obs.error(format!("{key}/error"), t.error_code);
            obs.put(format!("{key}/state"), &t.transaction_state);
            obs.put(format!("{key}/timeout_ms"), t.transaction_timeout_ms);
            obs.put(format!("{key}/topics"), t.topics.len());
            obs.put(
                format!("{key}/start_time_unset"),
                t.transaction_start_time_ms == -1,
            );
        }
    }
    let list = |side: &mut Side, states: &[&str], pattern: Option<&str>| {
        let request = ListTransactionsRequest::default()
            .with_state_filters(states.iter().map(|x| s(x)).collect())
            .with_duration_filter(-1)
            .with_transactional_id_pattern(pattern.map(s));
        match side.wire.send(RequestKind::ListTransactions(request)) {
            ResponseKind::ListTransactions(r) => {
                let mut ids: Vec<String> = r
                    .transaction_states
                    .iter()
                    .filter(|t| t.transactional_id.0.starts_with("diff-"))
                    .map(|t| format!("{}:{}", t.transactional_id.0, t.transaction_state))
                    .collect();
                ids.sort();
                let unknown: Vec<String> = r
                    .unknown_state_filters
                    .iter()
                    .map(|x| x.to_string())
                    .collect();
                format!(
                    "{} {} unknown={}",
                    error_name(r.error_code),
                    ids.join(" "),
                    unknown.join(",")
                )
            }
            other => panic!("{other:?}"),
        }
    };
    obs.put("list/all", list(side, &[], None));
    obs.put(
        "list/complete_commit",
        list(side, &["CompleteCommit"], None),
    );
    obs.put("list/bogus_state", list(side, &["Bogus"], None));
    if side.wire.version_of(ApiKey::ListTransactions) >= Some(2) {
        obs.put("list/pattern_whole", list(side, &[], Some("diff-txn-.*")));
        obs.put("list/pattern_part", list(side, &[], Some("txn-flow")));
        obs.put("list/pattern_empty", list(side, &[], Some("")));
        obs.put("list/pattern_invalid", list(side, &[], Some("diff-(")));
    }

    let describe = |side: &mut Side, topic: &str, partitions: &[i32]| {
        let request = DescribeProducersRequest::default()
            .with_topics(vec![TopicRequest::default()
                .with_name(topic_name(topic))
                .with_partition_indexes(partitions.to_vec())]);
        match side.wire.send(RequestKind::DescribeProducers(request)) {
            ResponseKind::DescribeProducers(r) => r,
            other => panic!("{other:?}"),
        }
    };
    let r = describe(side, "diff-txn", &[0, 5]);
    for p in r.topics.iter().flat_map(|t| t.partitions.iter()) {
        let key = format!("producers/diff-txn/{}", p.partition_index);
        obs.error(format!("{key}/error"), p.error_code);
        obs.put(format!("{key}/active"), p.active_producers.len());
        for a in &p.active_producers {
            obs.put(format!("{key}/last_sequence"), a.last_sequence);
            obs.put(
                format!("{key}/current_txn_start_offset"),
                a.current_txn_start_offset,
            );
            obs.put(
                format!("{key}/coordinator_epoch_set"),
                a.coordinator_epoch >= 0,
            );
        }
    }
    let r = describe(side, "diff-txn-missing", &[0]);
    for p in r.topics.iter().flat_map(|t| t.partitions.iter()) {
        obs.error("producers/missing/error", p.error_code);
    }
}
