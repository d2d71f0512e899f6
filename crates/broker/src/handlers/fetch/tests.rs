//! The response-wide byte budget (KIP-74) and its fairness across fetch
//! sessions.

use crate::state::BrokerState;
use crate::test_support::{call, create_topic, test_state};
use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use sluice_protocol::batch::BatchIter;
use std::sync::Arc;

/// Every batch here is one record with a value of this many bytes.
const VALUE_BYTES: usize = 10_000;

fn topic() -> TopicName {
    TopicName(StrBytes::from_static_str("t"))
}

/// Appends `batches` one-record batches to `partition` of topic "t".
async fn fill(state: &Arc<BrokerState>, partition: i32, batches: usize) {
    let value = vec![b'v'; VALUE_BYTES];
    for _ in 0..batches {
        let batch = sluice_protocol::batch::build_uncompressed_batch(
            crate::state::now_ms(),
            &[(Some(b"k".as_slice()), Some(value.as_slice()))],
        );
        let body = RequestKind::Produce(ProduceRequest::default().with_acks(1).with_topic_data(
            vec![produce_request::TopicProduceData::default()
                    .with_name(topic())
                    .with_partition_data(vec![produce_request::PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(batch))])],
        ));
        let Some(ResponseKind::Produce(r)) = call(state, ApiKey::Produce, 9, body).await else {
            panic!("no Produce response")
        };
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
}

/// One fetch: which partitions (in request order) with offsets, the
/// request's `max_bytes`, each partition's `partition_max_bytes`, and the
/// session (id, epoch).
struct Fetch<'a> {
    partitions: &'a [(i32, i64)],
    max_bytes: i32,
    partition_max_bytes: i32,
    session: (i32, i32),
}

/// What a response said: the session id and, per partition answered, the
/// number of batches and bytes returned.
struct Answer {
    session_id: i32,
    partitions: Vec<(i32, usize, usize)>,
}

impl Answer {
    fn total_bytes(&self) -> usize {
        self.partitions.iter().map(|p| p.2).sum()
    }

    /// Partitions that returned records, with their batch counts.
    fn served(&self) -> Vec<(i32, usize)> {
        self.partitions
            .iter()
            .filter(|p| p.1 > 0)
            .map(|p| (p.0, p.1))
            .collect()
    }
}

async fn fetch(state: &Arc<BrokerState>, fetch: Fetch<'_>) -> Answer {
    let partitions = fetch
        .partitions
        .iter()
        .map(|(p, offset)| {
            fetch_request::FetchPartition::default()
                .with_partition(*p)
                .with_fetch_offset(*offset)
                .with_partition_max_bytes(fetch.partition_max_bytes)
        })
        .collect();
    let body = RequestKind::Fetch(
        FetchRequest::default()
            .with_max_wait_ms(0)
            .with_max_bytes(fetch.max_bytes)
            .with_session_id(fetch.session.0)
            .with_session_epoch(fetch.session.1)
            .with_topics(vec![fetch_request::FetchTopic::default()
                .with_topic(topic())
                .with_partitions(partitions)]),
    );
    let Some(ResponseKind::Fetch(r)) = call(state, ApiKey::Fetch, 12, body).await else {
        panic!("no Fetch response")
    };
    assert_eq!(r.error_code, 0);
    let partitions = r
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            assert_eq!(p.error_code, 0, "partition {}", p.partition_index);
            let records = p.records.clone().unwrap_or_default();
            (p.partition_index, batches(&records), records.len())
        })
        .collect();
    Answer {
        session_id: r.session_id,
        partitions,
    }
}

fn batches(records: &Bytes) -> usize {
    let mut count = 0;
    for batch in BatchIter::new(records) {
        batch.expect("whole batches only");
        count += 1;
    }
    count
}

/// Three partitions of three ~10 KB batches each.
async fn three_full_partitions() -> (tempfile::TempDir, Arc<BrokerState>) {
    let (dir, state) = test_state();
    create_topic(&state, "t", 3).await;
    for p in 0..3 {
        fill(&state, p, 3).await;
    }
    (dir, state)
}

const ALL_FROM_START: &[(i32, i64)] = &[(0, 0), (1, 0), (2, 0)];

#[tokio::test]
async fn later_partitions_only_add_whole_batches_that_fit_the_budget() {
    let (_dir, state) = three_full_partitions().await;
    // Room for two and a half batches: two from partition 0, then nothing
    // from the others, whose next batch would overflow max_bytes.
    let answer = fetch(
        &state,
        Fetch {
            partitions: ALL_FROM_START,
            max_bytes: 25_000,
            partition_max_bytes: 1 << 20,
            session: (0, -1),
        },
    )
    .await;
    assert_eq!(answer.served(), vec![(0, 2)]);
    assert!(answer.total_bytes() <= 25_000, "{}", answer.total_bytes());
    assert_eq!(
        answer.partitions.len(),
        3,
        "skipped partitions still answer"
    );

    // Room for one batch per partition at the partition level: the response
    // shares 50 KB among them.
    let answer = fetch(
        &state,
        Fetch {
            partitions: ALL_FROM_START,
            max_bytes: 50_000,
            partition_max_bytes: 11_000,
            session: (0, -1),
        },
    )
    .await;
    assert_eq!(answer.served(), vec![(0, 1), (1, 1), (2, 1)]);
    assert!(answer.total_bytes() <= 50_000);
}

#[tokio::test]
async fn only_the_first_batch_of_the_response_may_exceed_the_limits() {
    let (_dir, state) = three_full_partitions().await;
    for (max_bytes, partition_max_bytes) in [(5_000, 1 << 20), (1 << 20, 5_000), (0, 0)] {
        let answer = fetch(
            &state,
            Fetch {
                partitions: ALL_FROM_START,
                max_bytes,
                partition_max_bytes,
                session: (0, -1),
            },
        )
        .await;
        assert_eq!(
            answer.served(),
            vec![(0, 1)],
            "max_bytes {max_bytes}, partition_max_bytes {partition_max_bytes}"
        );
    }
    // The first partition with data may be a later one.
    let answer = fetch(
        &state,
        Fetch {
            partitions: &[(0, 3), (1, 0), (2, 0)],
            max_bytes: 5_000,
            partition_max_bytes: 1 << 20,
            session: (0, -1),
        },
    )
    .await;
    assert_eq!(answer.served(), vec![(1, 1)]);
}

#[tokio::test]
async fn incremental_sessions_serve_the_partitions_skipped_last_time_first() {
    let (_dir, state) = three_full_partitions().await;
    // One batch fits per response.
    let one_batch = |session| Fetch {
        partitions: ALL_FROM_START,
        max_bytes: 15_000,
        partition_max_bytes: 1 << 20,
        session,
    };
    let opened = fetch(&state, one_batch((0, 0))).await;
    assert_ne!(opened.session_id, 0);
    assert_eq!(opened.served(), vec![(0, 1)]);
    let mut served = Vec::new();
    for epoch in 1..=5 {
        let next = Fetch {
            partitions: &[],
            ..one_batch((opened.session_id, epoch))
        };
        let answer = fetch(&state, next).await;
        assert!(answer.total_bytes() <= 15_000);
        served.extend(answer.served());
    }
    // Partition 0 had been served by the full fetch that opened the
    // session, but the session starts in the client's order; from then on
    // each served partition goes to the back.
    assert_eq!(served, vec![(0, 1), (1, 1), (2, 1), (0, 1), (1, 1)]);
}
