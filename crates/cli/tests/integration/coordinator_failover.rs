//! The group coordinator moves with the leadership of its
//! `__consumer_offsets` partition: on three `sluice serve` processes a
//! librdkafka consumer group commits offsets, the broker coordinating it is
//! SIGKILLed, and the group carries on from its committed offsets on the
//! broker that took the partition over (and the offsets are still there
//! when the killed broker is back and the partition has moved again).

use crate::cluster::{wait_until, Cluster};
use crate::common::{block_on, PATIENCE};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TOPIC: &str = "orders";
const GROUP: &str = "billing";
const OFFSETS_TOPIC: &str = "__consumer_offsets";
const RECORDS: usize = 100;

/// The `__consumer_offsets` partition of `group` (Java's `String.hashCode`,
/// as Kafka computes it, over 50 partitions).
fn offsets_partition(group: &str) -> i32 {
    let hash = group
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    (hash.unsigned_abs() % 50) as i32
}

/// (leader, ISR) of `topic`-`partition` as `bootstrap` says.
fn leader_and_isr(bootstrap: &str, topic: &str, partition: i32) -> Option<(i32, Vec<i32>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .ok()?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .ok()?;
    let found = metadata
        .topics()
        .first()?
        .partitions()
        .iter()
        .find(|p| p.id() == partition)?;
    let mut isr = found.isr().to_vec();
    isr.sort_unstable();
    Some((found.leader(), isr))
}

fn group_consumer(bootstrap: &str) -> BaseConsumer {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        // Lost offsets would show: the group would start again at 0.
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer");
    consumer.subscribe(&[TOPIC]).expect("subscribe");
    consumer
}

/// Polls `count` records; returns their offsets.
fn consume(consumer: &BaseConsumer, count: usize, logs: &[&Path]) -> Vec<i64> {
    let mut offsets = Vec::new();
    wait_until(&format!("the group consumes {count} records"), logs, || {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            offsets.push(message.offset());
        }
        (offsets.len() >= count).then_some(())
    });
    offsets.truncate(count);
    offsets
}

/// Commits `offset` for the topic's partition 0, retrying while the
/// coordinator moves (the errors are retriable ones).
fn commit(consumer: &BaseConsumer, offset: i64, logs: &[&Path]) {
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(TOPIC, 0, Offset::Offset(offset))
        .expect("offset");
    wait_until(&format!("offset {offset} is committed"), logs, || {
        consumer.commit(&list, CommitMode::Sync).ok()
    });
}

/// The group's committed offset as a fresh client asks the coordinator.
fn committed(bootstrap: &str) -> Option<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", GROUP)
        .create()
        .ok()?;
    let mut list = TopicPartitionList::new();
    list.add_partition(TOPIC, 0);
    let offsets = consumer
        .committed_offsets(list, Duration::from_secs(5))
        .ok()?;
    match offsets.find_partition(TOPIC, 0)?.offset() {
        Offset::Offset(offset) => Some(offset),
        _ => None,
    }
}

#[test]
fn a_consumer_group_keeps_its_offsets_when_its_coordinator_is_killed() {
    let mut cluster = Cluster::with_settings(3, &["leader.imbalance.check.interval.seconds=1"]);
    cluster.start(&[1, 2, 3]);
    let logs: Vec<PathBuf> = cluster.logs();
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    let bootstrap_all = format!(
        "{},{},{}",
        cluster.bootstrap(1),
        cluster.bootstrap(2),
        cluster.bootstrap(3)
    );
    wait_until("every node lists three brokers", &logs, || {
        (crate::cluster::metadata(&cluster.bootstrap(1), "none")
            .0
            .len()
            == 3)
            .then_some(())
    });
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap(1))
        .create()
        .expect("admin client");
    let topic = NewTopic::new(TOPIC, 1, TopicReplication::Fixed(3));
    let options = AdminOptions::new().operation_timeout(Some(PATIENCE));
    let created = block_on(admin.create_topics([&topic], &options)).expect("CreateTopics");
    assert_eq!(created, vec![Ok(TOPIC.to_string())]);
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap_all)
        .set("acks", "all")
        .create()
        .expect("producer");
    for i in 0..RECORDS {
        let value = format!("order-{i}");
        block_on(producer.send(
            FutureRecord::<(), _>::to(TOPIC).payload(&value),
            Duration::from_secs(30),
        ))
        .expect("acknowledged");
    }

    // The group consumes 40 records and commits; the commit is on every
    // replica of its __consumer_offsets partition before it is answered.
    let consumer = group_consumer(&bootstrap_all);
    let first = consume(&consumer, 40, &logs);
    assert_eq!(first, (0..40).collect::<Vec<i64>>());
    commit(&consumer, 40, &logs);
    let partition = offsets_partition(GROUP);
    let (coordinator, _) = wait_until(
        "the offsets partition of the group is in sync on all three",
        &logs,
        || {
            leader_and_isr(&cluster.bootstrap(1), OFFSETS_TOPIC, partition)
                .filter(|(_, isr)| isr == &[1, 2, 3])
        },
    );
    drop(consumer);

    // SIGKILL the coordinator: another replica takes the partition over
    // and, with it, the group.
    cluster.kill(coordinator);
    let alive: Vec<i32> = (1..=3).filter(|id| *id != coordinator).collect();
    let survivors = format!(
        "{},{}",
        cluster.bootstrap(alive[0]),
        cluster.bootstrap(alive[1])
    );
    let killed_at = Instant::now();
    let (new_coordinator, _) = wait_until("a new leader of the offsets partition", &logs, || {
        leader_and_isr(&cluster.bootstrap(alive[0]), OFFSETS_TOPIC, partition)
            .filter(|(leader, _)| alive.contains(leader))
    });
    assert_eq!(
        wait_until(
            "the new coordinator answers the committed offset",
            &logs,
            || { committed(&survivors) }
        ),
        40,
        "the committed offset survives the kill of the coordinator"
    );
    eprintln!(
        "coordinator {coordinator} killed; {new_coordinator} serves the group after {:?}",
        killed_at.elapsed()
    );

    // The group resumes where it committed, and commits on the new one.
    let consumer = group_consumer(&survivors);
    let second = consume(&consumer, 30, &logs);
    assert_eq!(second, (40..70).collect::<Vec<i64>>());
    commit(&consumer, 70, &logs);
    drop(consumer);

    // The killed broker comes back, catches up and leads its preferred
    // partitions again: the coordinator moves back with the latest offset.
    cluster.start(&[coordinator]);
    wait_until(
        "the returning broker leads the offsets partition again",
        &logs,
        || {
            leader_and_isr(&cluster.bootstrap(coordinator), OFFSETS_TOPIC, partition)
                .filter(|(leader, isr)| *leader == coordinator && isr == &[1, 2, 3])
        },
    );
    assert_eq!(
        wait_until("the committed offset after the move back", &logs, || {
            committed(&bootstrap_all).filter(|o| *o == 70)
        }),
        70
    );
    let consumer = group_consumer(&bootstrap_all);
    let third = consume(&consumer, 30, &logs);
    assert_eq!(third, (70..100).collect::<Vec<i64>>());
}

/// A consumer that keeps polling while its coordinator is SIGKILLed: it
/// finds the new coordinator by itself, keeps its assignment or rejoins,
/// and goes on consuming and committing: nothing is skipped, nothing it
/// committed is read again, and its last commit is on the new coordinator.
/// (It found that a new coordinator loaded its partition only up to the
/// high watermark its old leader had last told it, losing the newest
/// acknowledged commit; it loads to the log end now.)
#[test]
fn a_running_consumer_carries_on_through_the_kill_of_its_coordinator() {
    const LIVE_TOPIC: &str = "ticks";
    const LIVE_GROUP: &str = "ticker";
    let mut cluster = Cluster::new(3);
    cluster.start(&[1, 2, 3]);
    let logs: Vec<PathBuf> = cluster.logs();
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    let bootstrap_all = format!(
        "{},{},{}",
        cluster.bootstrap(1),
        cluster.bootstrap(2),
        cluster.bootstrap(3)
    );
    wait_until("every node lists three brokers", &logs, || {
        (crate::cluster::metadata(&cluster.bootstrap(1), "none")
            .0
            .len()
            == 3)
            .then_some(())
    });
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap(1))
        .create()
        .expect("admin client");
    let topic = NewTopic::new(LIVE_TOPIC, 1, TopicReplication::Fixed(3));
    let options = AdminOptions::new().operation_timeout(Some(PATIENCE));
    block_on(admin.create_topics([&topic], &options)).expect("CreateTopics");
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap_all)
        .set("acks", "all")
        .create()
        .expect("producer");
    let send = |from: usize, to: usize| {
        for i in from..to {
            let value = format!("tick-{i}");
            block_on(producer.send(
                FutureRecord::<(), _>::to(LIVE_TOPIC).payload(&value),
                Duration::from_secs(30),
            ))
            .expect("acknowledged");
        }
    };
    send(0, 50);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap_all)
        .set("group.id", LIVE_GROUP)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer");
    consumer.subscribe(&[LIVE_TOPIC]).expect("subscribe");
    // Offsets read, in order; the position after the last commit that
    // succeeded.
    let mut seen: Vec<i64> = Vec::new();
    let mut committed = 0i64;
    let mut poll_until = |count: i64, seen: &mut Vec<i64>| {
        wait_until(&format!("{count} records consumed"), &logs, || {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(100)) {
                let offset = message.offset();
                // A consumer may be moved back after a rebalance, but never
                // before what it committed: committed offsets survive.
                assert!(
                    offset >= committed,
                    "read offset {offset} again after committing {committed}; read so far {seen:?}"
                );
                seen.push(offset);
                let mut list = TopicPartitionList::new();
                list.add_partition_offset(LIVE_TOPIC, 0, Offset::Offset(offset + 1))
                    .expect("offset");
                // Retriable failures while the coordinator moves are fine:
                // the next record's commit covers this one.
                if consumer.commit(&list, CommitMode::Sync).is_ok() {
                    committed = committed.max(offset + 1);
                }
            }
            (seen.last() == Some(&(count - 1))).then_some(())
        });
    };
    poll_until(50, &mut seen);
    let partition = offsets_partition(LIVE_GROUP);
    let (coordinator, _) = wait_until("the group's offsets are on all three", &logs, || {
        leader_and_isr(&cluster.bootstrap(1), OFFSETS_TOPIC, partition)
            .filter(|(_, isr)| isr == &[1, 2, 3])
    });
    cluster.kill(coordinator);
    send(50, 100);
    poll_until(100, &mut seen);
    // Nothing skipped: every record was read (one whose commit failed
    // while the coordinator moved may have been read twice).
    let distinct: std::collections::BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(distinct, (0..100).collect(), "read: {seen:?}");
    let alive: Vec<String> = (1..=3)
        .filter(|id| *id != coordinator)
        .map(|id| cluster.bootstrap(id))
        .collect();
    drop(consumer);
    let survivors = alive.join(",");
    assert_eq!(
        wait_until("the last commit is on the new coordinator", &logs, || {
            let reader: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &survivors)
                .set("group.id", LIVE_GROUP)
                .create()
                .ok()?;
            let mut list = TopicPartitionList::new();
            list.add_partition(LIVE_TOPIC, 0);
            let offsets = reader
                .committed_offsets(list, Duration::from_secs(5))
                .ok()?;
            match offsets.find_partition(LIVE_TOPIC, 0)?.offset() {
                Offset::Offset(100) => Some(100),
                _ => None,
            }
        }),
        100
    );
}
