//! Replication across three `sluice serve` processes, through librdkafka:
//! a partition of replication factor 3 keeps every record an acks=all
//! idempotent producer saw acknowledged when its leader is SIGKILLed, once
//! and in order; the killed broker leaves the ISR, and after a restart it
//! catches up, rejoins and leads again (preferred leader election); a
//! SIGTERMed leader hands the partition over first (controlled shutdown). A leader cut off from its followers acknowledges no acks=all
//! write, and its divergent tail is truncated when it comes back.

use crate::cluster::{metadata, wait_until, Cluster};
use crate::common::{block_on, PATIENCE};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TOPIC: &str = "replicated";
const DIVERGED: &str = "diverged";

/// (leader, replicas, ISR) of partition 0 of `topic`, as `bootstrap` says.
pub(crate) fn partition_state(bootstrap: &str, topic: &str) -> Option<(i32, Vec<i32>, Vec<i32>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .ok()?;
    let partition = metadata.topics().first()?.partitions().first()?;
    let mut isr = partition.isr().to_vec();
    isr.sort_unstable();
    Some((partition.leader(), partition.replicas().to_vec(), isr))
}

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "60000")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// Sends `values` and waits for every acknowledgement; returns when the
/// first one arrived.
fn send_all(producer: &FutureProducer, values: impl Iterator<Item = String>) -> Instant {
    send_all_to(producer, TOPIC, values)
}

fn send_all_to(
    producer: &FutureProducer,
    topic: &str,
    values: impl Iterator<Item = String>,
) -> Instant {
    let deliveries: Vec<_> = values
        .map(|value| {
            producer
                .send_result(
                    FutureRecord::<(), _>::to(topic)
                        .partition(0)
                        .payload(&value),
                )
                .expect("enqueue")
        })
        .collect();
    let mut first = None;
    for delivery in deliveries {
        block_on(delivery)
            .expect("not cancelled")
            .expect("acknowledged with acks=all");
        first.get_or_insert_with(Instant::now);
    }
    first.expect("something was sent")
}

/// Every value in partition 0, in offset order, read through `bootstrap`.
fn read_all(bootstrap: &str, expected: usize) -> Vec<String> {
    read_topic(bootstrap, TOPIC, expected)
}

fn read_topic(bootstrap: &str, topic: &str, expected: usize) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "replication-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .expect("assign");
    consumer.assign(&assignment).expect("assign");
    let mut values = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while values.len() < expected && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let payload = message
                .payload()
                .map(|p| String::from_utf8_lossy(p).into_owned());
            values.push(payload.unwrap_or_default());
        }
    }
    // Anything past what was acknowledged would be a duplicate.
    if let Some(Ok(message)) = consumer.poll(Duration::from_millis(500)) {
        values.push(format!("unexpected record at offset {}", message.offset()));
    }
    values
}

#[test]
fn acknowledged_records_survive_the_kill_of_their_leader() {
    let mut cluster = Cluster::with_settings(
        3,
        &[
            "replica.lag.time.max.ms=5000",
            "leader.imbalance.check.interval.seconds=1",
        ],
    );
    cluster.start(&[1, 2, 3]);
    let logs: Vec<PathBuf> = cluster.logs();
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    wait_until("every node lists three brokers", &logs, || {
        (metadata(&cluster.bootstrap(1), "none").0.len() == 3).then_some(())
    });

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap(1))
        .create()
        .expect("admin client");
    let topic = NewTopic::new(TOPIC, 1, TopicReplication::Fixed(3)).set("min.insync.replicas", "2");
    let options = AdminOptions::new().operation_timeout(Some(PATIENCE));
    let created = block_on(admin.create_topics([&topic], &options)).expect("CreateTopics");
    assert_eq!(created, vec![Ok(TOPIC.to_string())]);
    let (leader, replicas, _) = wait_until("all three replicas are in sync", &logs, || {
        partition_state(&cluster.bootstrap(1), TOPIC).filter(|(_, _, isr)| isr == &[1, 2, 3])
    });
    assert_eq!(replicas.len(), 3);

    let expected: Vec<String> = (0..600).map(|i| format!("value-{i}")).collect();
    let producer = producer(&cluster.bootstrap(1));
    send_all(&producer, expected[..300].iter().cloned());

    // The leader dies with the records acknowledged: they are on the
    // other ISR members, one of which takes over.
    cluster.kill(leader);
    let killed = Instant::now();
    let survivors: Vec<i32> = (1..=3).filter(|id| *id != leader).collect();
    let first_ack = send_all(&producer, expected[300..].iter().cloned());
    println!(
        "produce resumed {:?} after SIGKILL of leader {leader}",
        first_ack.duration_since(killed)
    );
    let survivor_logs: Vec<&Path> = survivors
        .iter()
        .map(|id| logs[(*id - 1) as usize])
        .collect();
    let (new_leader, _, isr) =
        wait_until("the killed leader leaves the ISR", &survivor_logs, || {
            partition_state(&cluster.bootstrap(survivors[0]), TOPIC)
                .filter(|(l, _, isr)| *l != leader && *l >= 0 && !isr.contains(&leader))
        });
    assert!(survivors.contains(&new_leader), "led by {new_leader}");
    assert_eq!(isr, survivors);
    let described = std::process::Command::new(crate::common::sluice_binary())
        .args(["--bootstrap-server", &cluster.bootstrap(survivors[0])])
        .args(["--output", "json", "cluster", "describe"])
        .output()
        .expect("sluice cluster describe");
    let described = String::from_utf8_lossy(&described.stdout);
    assert!(
        described.contains("\"under-replicated\"") && described.contains(TOPIC),
        "{described}"
    );
    assert_eq!(read_all(&cluster.bootstrap(survivors[0]), 600), expected);

    // Back, the old leader follows, catches up and rejoins the ISR.
    cluster.start(&[leader]);
    wait_until("the restarted broker is in sync again", &logs, || {
        partition_state(&cluster.bootstrap(leader), TOPIC).filter(|(_, _, isr)| isr == &[1, 2, 3])
    });
    // In sync again, it gets its leadership back: it is the preferred
    // replica (auto.leader.rebalance.enable, checked every second here).
    wait_until("the preferred replica leads again", &logs, || {
        partition_state(&cluster.bootstrap(leader), TOPIC).filter(|(l, _, _)| *l == leader)
    });
    // A controlled shutdown (SIGTERM) of the leader hands the partition to
    // another in-sync replica before the broker stops.
    cluster.terminate(leader);
    let stopped = Instant::now();
    let more: Vec<String> = (600..700).map(|i| format!("value-{i}")).collect();
    let first_ack = send_all(&producer, more.iter().cloned());
    println!(
        "produce resumed {:?} after SIGTERM of leader {leader}",
        first_ack.duration_since(stopped)
    );
    let remaining: Vec<i32> = (1..=3).filter(|id| *id != leader).collect();
    let remaining_logs: Vec<&Path> = remaining
        .iter()
        .map(|id| logs[(*id - 1) as usize])
        .collect();
    wait_until("a remaining broker leads", &remaining_logs, || {
        partition_state(&cluster.bootstrap(remaining[0]), TOPIC)
            .filter(|(l, _, _)| remaining.contains(l))
    });
    // Everything, once and in order.
    let all: Vec<String> = expected.into_iter().chain(more).collect();
    assert_eq!(read_all(&cluster.bootstrap(remaining[0]), 700), all);
    let log = std::fs::read_to_string(logs[(leader - 1) as usize]).expect("node log");
    assert!(
        log.contains("controlled shutdown: leaderships handed"),
        "{log}"
    );
}

fn create_replicated(bootstrap: &str, name: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(name, 1, TopicReplication::Fixed(3)).set("min.insync.replicas", "2");
    let options = AdminOptions::new().operation_timeout(Some(PATIENCE));
    let created = block_on(admin.create_topics([&topic], &options)).expect("CreateTopics");
    assert_eq!(created, vec![Ok(name.to_string())]);
}

/// The partition's first segment file on node `id`.
fn segment(cluster: &Cluster, id: i32) -> Vec<u8> {
    let path = cluster
        .data_dir(id)
        .join(format!("{DIVERGED}-0"))
        .join("00000000000000000000.log");
    std::fs::read(path).unwrap_or_default()
}

/// A leader whose followers are unreachable (stopped with SIGSTOP: they
/// neither fetch nor vote) acknowledges no acks=all write, though with
/// acks=1 it appends. Its followers then elect a new leader without it,
/// and when it comes back its divergent tail is cut: its copy of the log
/// ends up byte for byte the new leader's.
#[test]
fn a_cut_off_leader_acknowledges_no_acks_all_write_and_its_divergent_tail_is_truncated() {
    let mut cluster = Cluster::with_settings(3, &[]);
    cluster.start(&[1, 2, 3]);
    let logs: Vec<PathBuf> = cluster.logs();
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    wait_until("every node lists three brokers", &logs, || {
        (metadata(&cluster.bootstrap(1), "none").0.len() == 3).then_some(())
    });
    create_replicated(&cluster.bootstrap(1), DIVERGED);
    let (leader, _, _) = wait_until("all three replicas are in sync", &logs, || {
        partition_state(&cluster.bootstrap(1), DIVERGED).filter(|(_, _, isr)| isr == &[1, 2, 3])
    });
    let followers: Vec<i32> = (1..=3).filter(|id| *id != leader).collect();
    let committed: Vec<String> = (0..100).map(|i| format!("committed-{i}")).collect();
    send_all_to(
        &producer(&cluster.bootstrap(leader)),
        DIVERGED,
        committed.iter().cloned(),
    );

    for id in &followers {
        cluster.signal(*id, "STOP");
    }
    let impatient: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap(leader))
        .set("acks", "all")
        .set("message.timeout.ms", "3000")
        .set("request.timeout.ms", "2000")
        .create()
        .expect("producer");
    let refused = block_on(
        impatient
            .send_result(
                FutureRecord::<(), _>::to(DIVERGED)
                    .partition(0)
                    .payload("unacknowledged"),
            )
            .expect("enqueue"),
    )
    .expect("not cancelled");
    assert!(
        refused.is_err(),
        "acks=all acknowledged in the minority: {refused:?}"
    );
    let leader_only: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap(leader))
        .set("acks", "1")
        .create()
        .expect("producer");
    send_all_to(
        &leader_only,
        DIVERGED,
        (0..10).map(|i| format!("leader-only-{i}")),
    );

    // The followers come back without the leader and elect one of them.
    cluster.signal(leader, "STOP");
    for id in &followers {
        cluster.signal(*id, "CONT");
    }
    let follower_logs: Vec<&Path> = followers
        .iter()
        .map(|id| logs[(*id - 1) as usize])
        .collect();
    let (new_leader, _, _) = wait_until(
        "a follower leads without the old leader",
        &follower_logs,
        || {
            partition_state(&cluster.bootstrap(followers[0]), DIVERGED)
                .filter(|(l, _, isr)| followers.contains(l) && !isr.contains(&leader))
        },
    );
    let later: Vec<String> = (0..50).map(|i| format!("later-{i}")).collect();
    send_all_to(
        &producer(&cluster.bootstrap(new_leader)),
        DIVERGED,
        later.iter().cloned(),
    );

    // Back, the old leader truncates what only it had and copies the rest.
    cluster.signal(leader, "CONT");
    wait_until("the old leader is in sync again", &logs, || {
        partition_state(&cluster.bootstrap(new_leader), DIVERGED)
            .filter(|(_, _, isr)| isr == &[1, 2, 3])
    });
    wait_until("the old leader's copy is the new leader's", &logs, || {
        let (theirs, ours) = (segment(&cluster, new_leader), segment(&cluster, leader));
        (!ours.is_empty() && ours == theirs).then_some(())
    });
    // The refused record may have reached a follower (a fetch the leader
    // answered just before the follower stopped): a record never
    // acknowledged may or may not be committed, as in Kafka. The acks=1
    // records after it reached no follower and are gone.
    let mut read = read_topic(&cluster.bootstrap(new_leader), DIVERGED, 151);
    read.retain(|v| v != "unacknowledged");
    let expected: Vec<String> = committed.into_iter().chain(later).collect();
    assert_eq!(read, expected);
    let log = std::fs::read_to_string(logs[(leader - 1) as usize]).expect("node log");
    assert!(log.contains("truncated the replica"), "{log}");
}

const ROLLED: &str = "rolled";

/// Every value of `topic`-`partition` from the beginning, until `expected`
/// are read (and a little longer, so a duplicate would show).
fn read_partition(bootstrap: &str, topic: &str, partition: i32, expected: usize) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "rolling-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Beginning)
        .expect("assign");
    consumer.assign(&assignment).expect("assign");
    let mut values = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while values.len() < expected && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            values
                .push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned());
        }
    }
    if let Some(Ok(message)) = consumer.poll(Duration::from_millis(500)) {
        values.push(format!("unexpected record at offset {}", message.offset()));
    }
    values
}

/// A rolling restart (SIGTERM, start again, wait until in sync; each node
/// in turn) under a steady acks=all idempotent produce stream: the
/// producer sees no error it has to handle (librdkafka retries the
/// retriable ones itself), and every acknowledged record is there once and
/// in order.
#[test]
fn a_rolling_restart_under_load_loses_and_duplicates_nothing() {
    let mut cluster = Cluster::with_settings(3, &["leader.imbalance.check.interval.seconds=1"]);
    cluster.start(&[1, 2, 3]);
    let logs: Vec<PathBuf> = cluster.logs();
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    wait_until("every node lists three brokers", &logs, || {
        (metadata(&cluster.bootstrap(1), "none").0.len() == 3).then_some(())
    });
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap(1))
        .create()
        .expect("admin client");
    let topic =
        NewTopic::new(ROLLED, 3, TopicReplication::Fixed(3)).set("min.insync.replicas", "2");
    let options = AdminOptions::new().operation_timeout(Some(PATIENCE));
    let created = block_on(admin.create_topics([&topic], &options)).expect("CreateTopics");
    assert_eq!(created, vec![Ok(ROLLED.to_string())]);
    let all_in_sync = |bootstrap: &str| {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()
            .ok()?;
        let metadata = consumer
            .fetch_metadata(Some(ROLLED), Duration::from_secs(5))
            .ok()?;
        let partitions = metadata.topics().first()?.partitions();
        (partitions.len() == 3 && partitions.iter().all(|p| p.isr().len() == 3)).then_some(())
    };
    wait_until("every partition is in sync on all three", &logs, || {
        all_in_sync(&cluster.bootstrap(1))
    });

    let bootstrap_all = format!(
        "{},{},{}",
        cluster.bootstrap(1),
        cluster.bootstrap(2),
        cluster.bootstrap(3)
    );
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let producer = producer(&bootstrap_all);
        std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut errors = Vec::new();
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Ten in flight at a time.
                let batch: Vec<(u64, _)> = (i..i + 10)
                    .map(|n| {
                        let value = format!("r-{n}");
                        let record = FutureRecord::<(), _>::to(ROLLED)
                            .partition((n % 3) as i32)
                            .payload(&value);
                        (n, producer.send_result(record).expect("queued"))
                    })
                    .collect();
                for (n, delivery) in batch {
                    match block_on(delivery) {
                        Ok(Ok(_)) => acked.push(n),
                        Ok(Err((e, _))) => errors.push(format!("r-{n}: {e}")),
                        Err(_) => errors.push(format!("r-{n}: delivery canceled")),
                    }
                }
                i += 10;
            }
            (acked, errors)
        })
    };

    std::thread::sleep(Duration::from_secs(2));
    for id in 1..=3 {
        cluster.terminate(id);
        std::thread::sleep(Duration::from_secs(1));
        cluster.start(&[id]);
        wait_until(&format!("node {id} is back in sync"), &logs, || {
            all_in_sync(&cluster.bootstrap(id))
        });
    }
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acked, errors) = writer.join().expect("producer thread");
    assert!(errors.is_empty(), "the producer saw errors: {errors:?}");
    assert!(
        acked.len() > 100,
        "only {} records acknowledged",
        acked.len()
    );
    println!(
        "{} records acknowledged through a rolling restart",
        acked.len()
    );
    for partition in 0..3 {
        let expected: Vec<String> = acked
            .iter()
            .filter(|n| *n % 3 == partition as u64)
            .map(|n| format!("r-{n}"))
            .collect();
        let read = read_partition(&cluster.bootstrap(1), ROLLED, partition, expected.len());
        assert_eq!(read, expected, "partition {partition}: once and in order");
    }
}

/// `sluice cluster elect-leaders` moves leadership back to the preferred
/// replica when the automatic rebalance is off, and `sluice cluster
/// describe` shows the quorum's three voters.
#[test]
fn elect_leaders_moves_a_partition_back_to_its_preferred_replica() {
    const ELECTED: &str = "elected";
    let mut cluster = Cluster::with_settings(3, &["auto.leader.rebalance.enable=false"]);
    cluster.start(&[1, 2, 3]);
    let logs: Vec<PathBuf> = cluster.logs();
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    wait_until("every node lists three brokers", &logs, || {
        (metadata(&cluster.bootstrap(1), "none").0.len() == 3).then_some(())
    });
    create_replicated(&cluster.bootstrap(1), ELECTED);
    let (preferred, replicas, _) = wait_until("all three replicas are in sync", &logs, || {
        partition_state(&cluster.bootstrap(1), ELECTED).filter(|(_, _, isr)| isr == &[1, 2, 3])
    });
    assert_eq!(replicas[0], preferred);
    cluster.terminate(preferred);
    cluster.start(&[preferred]);
    let (leader, _, _) = wait_until("the preferred replica is back in sync", &logs, || {
        partition_state(&cluster.bootstrap(preferred), ELECTED)
            .filter(|(_, _, isr)| isr == &[1, 2, 3])
    });
    assert_ne!(leader, preferred, "no automatic rebalance");
    let sluice = |args: &[&str]| {
        std::process::Command::new(crate::common::sluice_binary())
            .args(["--bootstrap-server", &cluster.bootstrap(1)])
            .args(args)
            .output()
            .expect("run sluice")
    };
    let out = sluice(&["cluster", "elect-leaders", "--topic", ELECTED]);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("elected"));
    wait_until("the preferred replica leads again", &logs, || {
        partition_state(&cluster.bootstrap(1), ELECTED).filter(|(l, _, _)| *l == preferred)
    });
    // Nothing left to do: every partition is led by its preferred replica.
    let out = sluice(&["cluster", "elect-leaders", "--topic", ELECTED]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("ELECTION_NOT_NEEDED"));
    let out = sluice(&["--output", "json", "cluster", "describe"]);
    let described: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        described["quorum"]["voters"].as_array().map(Vec::len),
        Some(3)
    );
    assert!(described["quorum"]["leader"]
        .as_i64()
        .is_some_and(|l| l > 0));
}

/// KIP-392 with the rack-aware selector: a librdkafka consumer whose
/// `client.rack` is a follower's rack is sent to that follower and reads
/// from it, so it keeps reading everything committed while the leader is
/// stopped (SIGSTOP).
#[test]
fn a_consumer_reads_from_the_follower_in_its_rack() {
    const NEARBY: &str = "nearby";
    let mut cluster = Cluster::with_settings(
        3,
        &["replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector"],
    );
    cluster.start(&[1, 2, 3]);
    let logs: Vec<PathBuf> = cluster.logs();
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    wait_until("every node lists three brokers", &logs, || {
        (metadata(&cluster.bootstrap(1), "none").0.len() == 3).then_some(())
    });
    create_replicated(&cluster.bootstrap(1), NEARBY);
    let (leader, replicas, _) = wait_until("all three replicas are in sync", &logs, || {
        partition_state(&cluster.bootstrap(1), NEARBY).filter(|(_, _, isr)| isr == &[1, 2, 3])
    });
    let follower = *replicas.iter().find(|r| **r != leader).expect("a follower");
    let expected: Vec<String> = (0..100).map(|i| format!("near-{i}")).collect();
    // One record per batch, so that small fetches take many rounds.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap(1))
        .set("acks", "all")
        .set("linger.ms", "0")
        .set("batch.num.messages", "1")
        .create()
        .expect("producer");
    send_all_to(&producer, NEARBY, expected.iter().cloned());
    // The followers learn the high watermark on their next fetch.
    std::thread::sleep(Duration::from_secs(2));

    let bootstrap: String = replicas
        .iter()
        .map(|id| cluster.bootstrap(*id))
        .collect::<Vec<_>>()
        .join(",");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "nearby-reader")
        .set("enable.auto.commit", "false")
        .set("client.rack", format!("rack-{follower}"))
        .set("message.max.bytes", "1000")
        .set("fetch.max.bytes", "1024")
        .set("max.partition.fetch.bytes", "1024")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(NEARBY, 0, Offset::Beginning)
        .expect("assign");
    consumer.assign(&assignment).expect("assign");
    let mut values = Vec::new();
    let poll = |until: usize, values: &mut Vec<String>| {
        let deadline = Instant::now() + PATIENCE;
        while values.len() < until && Instant::now() < deadline {
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
                values.push(
                    String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
                );
            }
        }
    };
    poll(10, &mut values);
    // Small fetches: most records are still to come. Stop the leader; only
    // the follower can serve them now.
    cluster.signal(leader, "STOP");
    poll(100, &mut values);
    cluster.signal(leader, "CONT");
    assert_eq!(
        values, expected,
        "read from follower {follower} while leader {leader} was stopped"
    );
}
