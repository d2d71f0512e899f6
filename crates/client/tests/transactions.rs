//! Transactions end to end against an in-process broker: the
//! transactional producer, read_committed and read_uncommitted consumers,
//! offsets committed through a transaction, and fencing.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use sluice_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, ConsumerGroupMetadata, ConsumerRecord, Error,
    GroupConsumer, GroupConsumerConfig, GroupOffset, IsolationLevel, NewTopic, OffsetReset,
    Producer, ProducerConfig, ProducerRecord, StartOffset, TransactionFilters,
};

const PATIENCE: Duration = Duration::from_secs(30);

async fn start_broker(dir: &std::path::Path) -> sluice_broker::Broker {
    sluice_broker::Broker::start(
        sluice_broker::BrokerConfig::from_settings([
            ("listeners", "127.0.0.1:0"),
            ("http.listeners", "http://127.0.0.1:0"),
            ("log.dirs", dir.to_str().unwrap()),
            ("group.initial.rebalance.delay.ms", "0"),
            ("transaction.state.log.num.partitions", "3"),
        ])
        .unwrap(),
    )
    .await
    .unwrap()
}

async fn setup(
    topic: &str,
    partitions: i32,
) -> (tempfile::TempDir, sluice_broker::Broker, ClientConfig) {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path()).await;
    let client = ClientConfig::new(&broker.local_addr().to_string());
    Admin::connect(client.clone())
        .await
        .unwrap()
        .create_topics(&[NewTopic::new(topic, partitions, 1)], false)
        .await
        .unwrap();
    (dir, broker, client)
}

async fn transactional(client: &ClientConfig, id: &str) -> Producer {
    let config = ProducerConfig {
        transactional_id: Some(id.to_string()),
        linger: Duration::from_millis(1),
        ..ProducerConfig::default()
    };
    let producer = Producer::connect(client.clone(), config).await.unwrap();
    producer.init_transactions().await.unwrap();
    producer
}

async fn consumer(
    client: &ClientConfig,
    isolation: IsolationLevel,
    topic: &str,
    partitions: i32,
) -> Consumer {
    let config = ConsumerConfig {
        isolation_level: isolation,
        max_wait: Duration::from_millis(100),
        ..ConsumerConfig::default()
    };
    let mut c = Consumer::connect(client.clone(), config).await.unwrap();
    c.assign(
        (0..partitions)
            .map(|p| (topic.to_string(), p, StartOffset::Earliest))
            .collect(),
    )
    .await
    .unwrap();
    c
}

/// Polls until `n` records arrived, then a little longer to catch extras.
async fn poll_n(consumer: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
    let deadline = Instant::now() + PATIENCE;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(Instant::now() < deadline, "got only {} of {n}", out.len());
        out.extend(consumer.poll(Duration::from_millis(200)).await.unwrap());
    }
    out.extend(consumer.poll(Duration::from_millis(300)).await.unwrap());
    assert_eq!(out.len(), n, "more records than expected: {out:?}");
    out
}

fn values(records: &[ConsumerRecord]) -> BTreeSet<String> {
    records
        .iter()
        .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap())
        .collect()
}

fn set(values: &[&str]) -> BTreeSet<String> {
    values.iter().map(|v| v.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_transaction_across_partitions_is_visible_to_read_committed() {
    let (_dir, _broker, client) = setup("orders", 3).await;
    let producer = transactional(&client, "tx-commit").await;
    producer.begin_transaction().unwrap();
    let mut expected = Vec::new();
    let mut pending = Vec::new();
    for p in 0..3 {
        for i in 0..3 {
            let v = format!("p{p}-{i}");
            pending.push(producer.send(ProducerRecord::new("orders", v.clone()).with_partition(p)));
            expected.push(v);
        }
    }
    for d in pending {
        d.await.unwrap();
    }
    // Written but not committed: only read_uncommitted sees the records.
    let mut committed_reader = consumer(&client, IsolationLevel::ReadCommitted, "orders", 3).await;
    assert!(committed_reader
        .poll(Duration::from_millis(500))
        .await
        .unwrap()
        .is_empty());
    let mut uncommitted_reader =
        consumer(&client, IsolationLevel::ReadUncommitted, "orders", 3).await;
    assert_eq!(poll_n(&mut uncommitted_reader, 9).await.len(), 9);

    let admin = Admin::connect(client.clone()).await.unwrap();
    let open = admin
        .describe_transactions(&["tx-commit".to_string()])
        .await
        .unwrap();
    assert_eq!(open[0].state, "Ongoing");
    assert_eq!(
        open[0].partitions,
        (0..3)
            .map(|p| ("orders".to_string(), p))
            .collect::<Vec<_>>()
    );

    producer.commit_transaction().await.unwrap();
    let records = poll_n(&mut committed_reader, 9).await;
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    assert_eq!(values(&records), set(&expected));

    let listed = admin
        .list_transactions(&TransactionFilters {
            states: vec!["CompleteCommit".into()],
            ..TransactionFilters::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].transactional_id, "tx-commit");
    assert_eq!(listed[0].producer_id, open[0].producer_id);
    producer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_records_are_only_visible_to_read_uncommitted() {
    let (_dir, _broker, client) = setup("events", 1).await;
    let producer = transactional(&client, "tx-abort").await;

    producer.begin_transaction().unwrap();
    for i in 0..3 {
        producer
            .send(ProducerRecord::new("events", format!("aborted-{i}")))
            .await
            .unwrap();
    }
    producer.abort_transaction().await.unwrap();

    // A record to a partition that does not exist fails the transaction:
    // it can only be aborted, then the producer carries on.
    producer.begin_transaction().unwrap();
    let queued = producer.send(ProducerRecord::new("events", "queued"));
    let failed = producer
        .send(ProducerRecord::new("events", "nowhere").with_partition(7))
        .await;
    assert!(matches!(failed, Err(Error::Kafka(_))), "{failed:?}");
    let commit = producer.commit_transaction().await;
    assert!(
        matches!(commit, Err(Error::AbortableTransaction(_))),
        "{commit:?}"
    );
    producer.abort_transaction().await.unwrap();
    assert!(queued.await.is_err());

    producer.begin_transaction().unwrap();
    for i in 0..2 {
        producer.send(ProducerRecord::new("events", format!("committed-{i}")));
    }
    producer.commit_transaction().await.unwrap();

    // Non-transactional records mix in as usual.
    let plain = Producer::connect(client.clone(), ProducerConfig::default())
        .await
        .unwrap();
    plain
        .send(ProducerRecord::new("events", "plain"))
        .await
        .unwrap();

    let mut committed_reader = consumer(&client, IsolationLevel::ReadCommitted, "events", 1).await;
    let records = poll_n(&mut committed_reader, 3).await;
    assert_eq!(
        values(&records),
        set(&["committed-0", "committed-1", "plain"])
    );

    let mut uncommitted_reader =
        consumer(&client, IsolationLevel::ReadUncommitted, "events", 1).await;
    let records = poll_n(&mut uncommitted_reader, 6).await;
    assert_eq!(
        values(&records),
        set(&[
            "aborted-0",
            "aborted-1",
            "aborted-2",
            "committed-0",
            "committed-1",
            "plain"
        ])
    );
    // Markers take offsets but are never records.
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert!(offsets.windows(2).any(|w| w[1] > w[0] + 1), "{offsets:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_sent_to_a_transaction_are_committed_only_with_it() {
    let (_dir, _broker, client) = setup("input", 1).await;
    let admin = Admin::connect(client.clone()).await.unwrap();
    let producer = transactional(&client, "tx-offsets").await;
    let group = ConsumerGroupMetadata::new("copier");
    let committed = || async {
        admin
            .list_group_offsets("copier")
            .await
            .unwrap()
            .into_iter()
            .map(|o| (o.topic, o.partition, o.offset))
            .collect::<Vec<_>>()
    };
    assert!(committed().await.is_empty());

    producer.begin_transaction().unwrap();
    producer
        .send_offsets_to_transaction(&[GroupOffset::new("input", 0, 5)], &group)
        .await
        .unwrap();
    producer.abort_transaction().await.unwrap();
    assert!(committed().await.is_empty());

    producer.begin_transaction().unwrap();
    producer
        .send_offsets_to_transaction(&[GroupOffset::new("input", 0, 7)], &group)
        .await
        .unwrap();
    assert!(committed().await.is_empty(), "visible before the commit");
    producer.commit_transaction().await.unwrap();
    assert_eq!(committed().await, vec![("input".to_string(), 0, 7)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_producer_with_the_same_transactional_id_fences_the_old_one() {
    let (_dir, _broker, client) = setup("payments", 1).await;
    let old = transactional(&client, "tx-fence").await;
    old.begin_transaction().unwrap();
    old.send(ProducerRecord::new("payments", "from the zombie"))
        .await
        .unwrap();

    let new = transactional(&client, "tx-fence").await;

    let commit = old.commit_transaction().await;
    assert!(matches!(commit, Err(Error::Fenced(_))), "{commit:?}");
    // Fenced is final.
    assert!(matches!(old.begin_transaction(), Err(Error::Fenced(_))));
    assert!(matches!(
        old.send(ProducerRecord::new("payments", "again")).await,
        Err(Error::Fenced(_))
    ));

    new.begin_transaction().unwrap();
    new.send(ProducerRecord::new("payments", "from the new producer"));
    new.commit_transaction().await.unwrap();

    let mut reader = consumer(&client, IsolationLevel::ReadCommitted, "payments", 1).await;
    let records = poll_n(&mut reader, 1).await;
    assert_eq!(values(&records), set(&["from the new producer"]));
}

/// Consume-transform-produce: a read_committed group member copies records
/// and commits its input offsets in the same transaction; the next member
/// of the group resumes after them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_transform_produce_commits_output_and_input_offsets_together() {
    let (_dir, _broker, client) = setup("raw", 1).await;
    Admin::connect(client.clone())
        .await
        .unwrap()
        .create_topics(&[NewTopic::new("upper", 1, 1)], false)
        .await
        .unwrap();
    let plain = Producer::connect(client.clone(), ProducerConfig::default())
        .await
        .unwrap();
    for v in ["a", "b", "c"] {
        plain.send(ProducerRecord::new("raw", v)).await.unwrap();
    }
    let member_config = || {
        let mut c = GroupConsumerConfig::new("uppercaser");
        c.enable_auto_commit = false;
        c.consumer.auto_offset_reset = OffsetReset::Earliest;
        c.consumer.isolation_level = IsolationLevel::ReadCommitted;
        c.consumer.max_wait = Duration::from_millis(100);
        c
    };
    let mut member = GroupConsumer::connect(client.clone(), member_config())
        .await
        .unwrap();
    member.subscribe(&["raw"]);
    let mut input = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while input.len() < 3 {
        assert!(Instant::now() < deadline);
        input.extend(member.poll(Duration::from_millis(200)).await.unwrap());
    }

    let producer = transactional(&client, "tx-uppercaser").await;
    producer.begin_transaction().unwrap();
    for r in &input {
        let v = String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap();
        producer.send(ProducerRecord::new("upper", v.to_uppercase()));
    }
    let next = input.last().unwrap().offset + 1;
    producer
        .send_offsets_to_transaction(
            &[GroupOffset::new("raw", 0, next)],
            &member.group_metadata(),
        )
        .await
        .unwrap();
    producer.commit_transaction().await.unwrap();
    member.close().await.unwrap();

    let mut reader = consumer(&client, IsolationLevel::ReadCommitted, "upper", 1).await;
    assert_eq!(values(&poll_n(&mut reader, 3).await), set(&["A", "B", "C"]));

    plain.send(ProducerRecord::new("raw", "d")).await.unwrap();
    let mut successor = GroupConsumer::connect(client.clone(), member_config())
        .await
        .unwrap();
    successor.subscribe(&["raw"]);
    let mut rest = Vec::new();
    while rest.is_empty() {
        assert!(Instant::now() < deadline);
        rest.extend(successor.poll(Duration::from_millis(200)).await.unwrap());
    }
    assert_eq!(values(&rest), set(&["d"]));
}
