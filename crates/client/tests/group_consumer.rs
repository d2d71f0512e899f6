//! Group consumers against an in-process broker: sharing and resuming,
//! cooperative-sticky rebalances, the KIP-848 protocol, static membership,
//! pause/resume/seek, and `auto.offset.reset` none.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_client::{
    Admin, AssignmentStrategy, ClientConfig, Error, GroupConsumer, GroupConsumerConfig,
    GroupProtocol, NewTopic, OffsetReset, Producer, ProducerConfig, ProducerRecord,
    RebalanceListener,
};

fn config(group: &str) -> GroupConsumerConfig {
    let mut c = GroupConsumerConfig::new(group);
    c.heartbeat_interval = Duration::from_millis(100);
    c.session_timeout = Duration::from_secs(10);
    c.rebalance_timeout = Duration::from_secs(10);
    c.enable_auto_commit = false;
    c.consumer.auto_offset_reset = OffsetReset::Earliest;
    c.consumer.max_wait = Duration::from_millis(100);
    c
}

async fn produce(client: &ClientConfig, from: u32, to: u32) {
    let producer = Producer::connect(client.clone(), ProducerConfig::default())
        .await
        .unwrap();
    let pending: Vec<_> = (from..to)
        .map(|i| {
            producer
                .send(ProducerRecord::new("orders", format!("v{i}")).with_partition((i % 4) as i32))
        })
        .collect();
    for d in pending {
        d.await.unwrap();
    }
    producer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_members_split_rebalance_and_resume() {
    let dir = tempfile::tempdir().unwrap();
    let broker = sluice_broker::Broker::start(
        sluice_broker::BrokerConfig::from_settings([
            ("listeners", "127.0.0.1:0"),
            ("http.listeners", "http://127.0.0.1:0"),
            ("log.dirs", dir.path().to_str().unwrap()),
            ("group.initial.rebalance.delay.ms", "0"),
        ])
        .unwrap(),
    )
    .await
    .unwrap();
    let client = ClientConfig::new(&broker.local_addr().to_string());
    let admin = Admin::connect(client.clone()).await.unwrap();
    admin
        .create_topics(&[NewTopic::new("orders", 4, 1)], false)
        .await
        .unwrap();
    produce(&client, 0, 40).await;

    let mut a = GroupConsumer::connect(client.clone(), config("g"))
        .await
        .unwrap();
    let mut b = GroupConsumer::connect(client.clone(), config("g"))
        .await
        .unwrap();
    a.subscribe(&["orders"]);
    b.subscribe(&["orders"]);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (ra, rb) = tokio::join!(
            a.poll(Duration::from_millis(200)),
            b.poll(Duration::from_millis(200))
        );
        ra.unwrap();
        rb.unwrap();
        if a.assignment().len() == 2 && b.assignment().len() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no 2/2 split: {:?} {:?}",
            a.assignment(),
            b.assignment()
        );
    }
    let all: BTreeSet<_> = a.assignment().into_iter().chain(b.assignment()).collect();
    assert_eq!(all.len(), 4);

    a.close().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = BTreeSet::new();
    while b.assignment().len() != 4 || seen.len() < 40 {
        for r in b.poll(Duration::from_millis(200)).await.unwrap() {
            seen.insert(r.value.unwrap());
        }
        assert!(
            Instant::now() < deadline,
            "b has {:?}, saw {}",
            b.assignment(),
            seen.len()
        );
    }
    assert_eq!(seen.len(), 40);
    b.commit_sync().await.unwrap();
    b.close().await.unwrap();

    produce(&client, 40, 48).await;
    let mut c = GroupConsumer::connect(client.clone(), config("g"))
        .await
        .unwrap();
    c.subscribe(&["orders"]);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while got.len() < 8 {
        for r in c.poll(Duration::from_millis(200)).await.unwrap() {
            got.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
        assert!(Instant::now() < deadline, "resumed consumer got {got:?}");
    }
    got.sort();
    let want: Vec<String> = {
        let mut w: Vec<String> = (40..48).map(|i| format!("v{i}")).collect();
        w.sort();
        w
    };
    assert_eq!(got, want);
    c.close().await.unwrap();
    broker.shutdown().await.unwrap();
}

/// A broker with quick group timings; returns it, its directory and a
/// client config.
async fn start_broker(
    extra: &[(&str, &str)],
) -> (sluice_broker::Broker, tempfile::TempDir, ClientConfig) {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = vec![
        ("listeners", "127.0.0.1:0"),
        ("http.listeners", "http://127.0.0.1:0"),
        ("log.dirs", dir.path().to_str().unwrap()),
        ("group.initial.rebalance.delay.ms", "0"),
        ("group.consumer.heartbeat.interval.ms", "100"),
    ];
    settings.extend_from_slice(extra);
    let broker =
        sluice_broker::Broker::start(sluice_broker::BrokerConfig::from_settings(settings).unwrap())
            .await
            .unwrap();
    let client = ClientConfig::new(&broker.local_addr().to_string());
    (broker, dir, client)
}

async fn create_topic(client: &ClientConfig, topic: &str, partitions: i32) {
    let admin = Admin::connect(client.clone()).await.unwrap();
    admin
        .create_topics(&[NewTopic::new(topic, partitions, 1)], false)
        .await
        .unwrap();
}

/// Produces `{topic}-{i}` for i in `range` to partition i % `partitions`.
async fn produce_to(
    client: &ClientConfig,
    topic: &str,
    partitions: u32,
    range: std::ops::Range<u32>,
) {
    let producer = Producer::connect(client.clone(), ProducerConfig::default())
        .await
        .unwrap();
    let pending: Vec<_> = range
        .map(|i| {
            producer.send(
                ProducerRecord::new(topic, format!("{topic}-{i}"))
                    .with_partition((i % partitions) as i32),
            )
        })
        .collect();
    for d in pending {
        d.await.unwrap();
    }
    producer.close().await;
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Assigned(Vec<(String, i32)>),
    Revoked(Vec<(String, i32)>),
    Lost(Vec<(String, i32)>),
}

/// What a running member has seen, for the test to watch.
#[derive(Debug, Default)]
struct Snapshot {
    assignment: Vec<(String, i32)>,
    generation: i32,
    values: Vec<String>,
    events: Vec<Event>,
    error: Option<Error>,
}

struct Recorder(Arc<Mutex<Snapshot>>);

impl RebalanceListener for Recorder {
    fn on_revoked(&mut self, partitions: &[(String, i32)]) {
        let event = Event::Revoked(partitions.to_vec());
        self.0.lock().unwrap().events.push(event);
    }
    fn on_assigned(&mut self, partitions: &[(String, i32)]) {
        let event = Event::Assigned(partitions.to_vec());
        self.0.lock().unwrap().events.push(event);
    }
    fn on_lost(&mut self, partitions: &[(String, i32)]) {
        let event = Event::Lost(partitions.to_vec());
        self.0.lock().unwrap().events.push(event);
    }
}

/// A member polling in its own task until stopped or failed, as an
/// application would.
struct Running {
    stop: Arc<AtomicBool>,
    snapshot: Arc<Mutex<Snapshot>>,
    task: tokio::task::JoinHandle<GroupConsumer>,
}

impl Running {
    fn start(mut consumer: GroupConsumer, topic: &str) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        consumer.set_rebalance_listener(Box::new(Recorder(snapshot.clone())));
        consumer.subscribe(&[topic]);
        let (s, snap) = (stop.clone(), snapshot.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::SeqCst) {
                let polled = consumer.poll(Duration::from_millis(100)).await;
                let mut snap = snap.lock().unwrap();
                match polled {
                    Ok(records) => snap.values.extend(
                        records
                            .into_iter()
                            .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap()),
                    ),
                    Err(e) => {
                        snap.error = Some(e);
                        break;
                    }
                }
                snap.assignment = consumer.assignment();
                snap.generation = consumer.generation();
            }
            consumer
        });
        Running {
            stop,
            snapshot,
            task,
        }
    }

    fn snap<T>(&self, f: impl FnOnce(&Snapshot) -> T) -> T {
        f(&self.snapshot.lock().unwrap())
    }

    fn assigned(&self) -> BTreeSet<(String, i32)> {
        self.snap(|s| s.assignment.iter().cloned().collect())
    }

    async fn stop(self) -> GroupConsumer {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap()
    }
}

async fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn revoked(events: &[Event]) -> BTreeSet<(String, i32)> {
    events
        .iter()
        .flat_map(|e| match e {
            Event::Revoked(ps) | Event::Lost(ps) => ps.clone(),
            Event::Assigned(_) => Vec::new(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cooperative_sticky_revokes_only_what_moves() {
    let (broker, _dir, client) = start_broker(&[]).await;
    create_topic(&client, "coop", 6).await;
    let member = |client: &ClientConfig| {
        let mut c = config("coop-g");
        c.assignment_strategy = AssignmentStrategy::CooperativeSticky;
        GroupConsumer::connect(client.clone(), c)
    };
    let a = Running::start(member(&client).await.unwrap(), "coop");
    let b = Running::start(member(&client).await.unwrap(), "coop");
    wait_until("a 3/3 split", 60, || {
        a.assigned().len() == 3 && b.assigned().len() == 3
    })
    .await;
    let (a_before, b_before) = (a.assigned(), b.assigned());
    let events_before = (a.snap(|s| s.events.len()), b.snap(|s| s.events.len()));

    let c = Running::start(member(&client).await.unwrap(), "coop");
    wait_until("a 2/2/2 split", 60, || {
        [&a, &b, &c].iter().all(|m| m.assigned().len() == 2)
    })
    .await;
    let all: BTreeSet<_> = [&a, &b, &c].iter().flat_map(|m| m.assigned()).collect();
    assert_eq!(all.len(), 6);
    for (m, before, seen) in [
        (&a, &a_before, events_before.0),
        (&b, &b_before, events_before.1),
    ] {
        let after = m.assigned();
        let gone = m.snap(|s| revoked(&s.events[seen..]));
        assert!(
            after.is_subset(before),
            "kept partitions only: {before:?} -> {after:?}"
        );
        assert_eq!(
            gone.len(),
            1,
            "only the moving partition is revoked: {gone:?}"
        );
        assert!(
            gone.is_disjoint(&after),
            "kept partitions never revoked: {gone:?}"
        );
        assert!(m.snap(|s| !s.events.iter().any(|e| matches!(e, Event::Lost(_)))));
    }
    assert!(c.snap(|s| revoked(&s.events).is_empty()));
    for m in [a, b, c] {
        m.stop().await.close().await.unwrap();
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip848_members_converge_consume_once_and_take_over() {
    let (broker, _dir, client) = start_broker(&[]).await;
    create_topic(&client, "kip", 6).await;
    produce_to(&client, "kip", 6, 0..60).await;
    let member = |client: &ClientConfig| {
        let mut c = config("kip-g");
        c.group_protocol = GroupProtocol::Consumer;
        c.server_assignor = Some("uniform".into());
        c.enable_auto_commit = true;
        c.auto_commit_interval = Duration::from_millis(200);
        GroupConsumer::connect(client.clone(), c)
    };
    let members: Vec<Running> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(Running::start(member(&client).await.unwrap(), "kip"));
        }
        v
    };
    let consumed = |ms: &[Running]| -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for m in ms {
            for v in m.snap(|s| s.values.clone()) {
                *counts.entry(v).or_insert(0) += 1;
            }
        }
        counts
    };
    wait_until(
        "three members with 2 partitions each, all 60 read",
        60,
        || members.iter().all(|m| m.assigned().len() == 2) && consumed(&members).len() == 60,
    )
    .await;
    let all: BTreeSet<_> = members.iter().flat_map(|m| m.assigned()).collect();
    assert_eq!(all.len(), 6);
    assert!(members.iter().all(|m| m.snap(|s| s.generation > 0)));

    let mut members = members;
    let leaving = members.pop().unwrap();
    let leaving_snapshot = leaving.snapshot.clone();
    leaving.stop().await.close().await.unwrap();
    let leaving_values = leaving_snapshot.lock().unwrap().values.clone();
    assert!(leaving_snapshot.lock().unwrap().error.is_none());
    produce_to(&client, "kip", 6, 60..120).await;
    let everything = |ms: &[Running]| {
        let mut counts = consumed(ms);
        for v in &leaving_values {
            *counts.entry(v.clone()).or_insert(0) += 1;
        }
        counts
    };
    wait_until(
        "two members with 3 partitions each, all 120 read",
        60,
        || members.iter().all(|m| m.assigned().len() == 3) && everything(&members).len() == 120,
    )
    .await;
    // Every record was read exactly once across all members, the closed
    // one included: revoked partitions are committed before they move.
    let counts = everything(&members);
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "read more than once: {twice:?}");
    for m in members {
        assert!(m.snap(|s| s.error.is_none()));
        m.stop().await.close().await.unwrap();
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_member_restarts_without_rebalance_and_a_duplicate_is_fenced() {
    let (broker, _dir, client) = start_broker(&[]).await;
    create_topic(&client, "stat", 4).await;
    let member = |client: &ClientConfig, instance: &str| {
        let mut c = config("stat-g");
        c.group_instance_id = Some(instance.into());
        GroupConsumer::connect(client.clone(), c)
    };
    let a = Running::start(member(&client, "i-a").await.unwrap(), "stat");
    let b = Running::start(member(&client, "i-b").await.unwrap(), "stat");
    wait_until("a 2/2 split", 60, || {
        a.assigned().len() == 2 && b.assigned().len() == 2
    })
    .await;
    let a_parts = a.assigned();
    let generation = b.snap(|s| s.generation);
    let b_events = b.snap(|s| s.events.len());
    // A static member's close does not leave: its partitions wait for it.
    a.stop().await.close().await.unwrap();

    let a2 = Running::start(member(&client, "i-a").await.unwrap(), "stat");
    wait_until(
        "the restarted member to get its partitions back",
        30,
        || a2.assigned() == a_parts,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(a2.snap(|s| s.generation), generation, "no rebalance");
    assert_eq!(b.snap(|s| s.generation), generation, "no rebalance");
    assert_eq!(b.snap(|s| s.events.len()), b_events, "b was not disturbed");

    // A second process with the same instance id fences the first.
    let a3 = Running::start(member(&client, "i-a").await.unwrap(), "stat");
    wait_until("the duplicate to be fenced", 30, || {
        a2.snap(|s| s.error.is_some())
    })
    .await;
    let err = a2.snap(|s| s.error.clone()).unwrap();
    assert_eq!(err.code(), Some(82), "{err}");
    let mut fenced = a2.stop().await;
    assert_eq!(
        fenced
            .poll(Duration::from_millis(10))
            .await
            .unwrap_err()
            .code(),
        Some(82),
        "fenced for good"
    );
    wait_until("the newest instance to own the partitions", 30, || {
        a3.assigned() == a_parts
    })
    .await;
    for m in [a3, b] {
        m.stop().await.close().await.unwrap();
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_seek_and_commits() {
    let (broker, _dir, client) = start_broker(&[]).await;
    create_topic(&client, "pz", 2).await;
    produce_to(&client, "pz", 2, 0..10).await;
    let mut c = GroupConsumer::connect(client.clone(), config("pz-g"))
        .await
        .unwrap();
    c.subscribe(&["pz"]);
    let mut read: Vec<(i32, i64)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while read.len() < 10 {
        read.extend(
            c.poll(Duration::from_millis(200))
                .await
                .unwrap()
                .iter()
                .map(|r| (r.partition, r.offset)),
        );
        assert!(Instant::now() < deadline, "read {read:?}");
    }
    let p0 = ("pz".to_string(), 0);
    c.pause(std::slice::from_ref(&p0));
    assert_eq!(c.paused(), vec![p0.clone()]);
    produce_to(&client, "pz", 2, 10..16).await;
    let mut while_paused = Vec::new();
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        while_paused.extend(
            c.poll(Duration::from_millis(200))
                .await
                .unwrap()
                .iter()
                .map(|r| (r.partition, r.offset)),
        );
    }
    assert_eq!(
        while_paused,
        vec![(1, 5), (1, 6), (1, 7)],
        "only p1 while p0 is paused"
    );
    c.resume(std::slice::from_ref(&p0));
    let mut resumed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while resumed.len() < 3 {
        resumed.extend(
            c.poll(Duration::from_millis(200))
                .await
                .unwrap()
                .iter()
                .map(|r| (r.partition, r.offset)),
        );
        assert!(Instant::now() < deadline, "resumed {resumed:?}");
    }
    assert_eq!(resumed, vec![(0, 5), (0, 6), (0, 7)]);

    c.seek("pz", 1, 2).await.unwrap();
    assert_eq!(c.position("pz", 1), Some(2));
    let mut again = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while again.len() < 6 {
        again.extend(
            c.poll(Duration::from_millis(200))
                .await
                .unwrap()
                .iter()
                .map(|r| (r.partition, r.offset)),
        );
        assert!(Instant::now() < deadline, "after seek {again:?}");
    }
    assert_eq!(again, (2..8).map(|o| (1, o)).collect::<Vec<_>>());

    c.commit_async().await.unwrap().unwrap();
    let admin = Admin::connect(client.clone()).await.unwrap();
    let committed: Vec<(i32, i64)> = admin
        .list_group_offsets("pz-g")
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.partition, o.offset))
        .collect();
    assert_eq!(committed, vec![(0, 8), (1, 8)]);
    c.seek("pz", 0, 3).await.unwrap();
    c.commit_sync().await.unwrap();
    let committed = admin.list_group_offsets("pz-g").await.unwrap();
    assert_eq!(committed[0].offset, 3);
    c.close().await.unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_reset_none_fails_until_sought() {
    let (broker, _dir, client) = start_broker(&[]).await;
    create_topic(&client, "nr", 1).await;
    produce_to(&client, "nr", 1, 0..5).await;
    let mut cfg = config("nr-g");
    cfg.consumer.auto_offset_reset = OffsetReset::None;
    let mut c = GroupConsumer::connect(client.clone(), cfg).await.unwrap();
    c.subscribe(&["nr"]);
    let err = c.poll(Duration::from_millis(200)).await.unwrap_err();
    assert!(
        matches!(&err, Error::NoOffsetForPartition { topic, partition: 0, .. } if topic == "nr"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("auto.offset.reset is none"),
        "{err}"
    );
    assert_eq!(c.assignment(), vec![("nr".to_string(), 0)]);
    assert!(
        c.poll(Duration::from_millis(10)).await.is_err(),
        "still no position"
    );
    c.seek("nr", 0, 3).await.unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < 2 {
        got.extend(
            c.poll(Duration::from_millis(200))
                .await
                .unwrap()
                .iter()
                .map(|r| r.offset),
        );
        assert!(Instant::now() < deadline);
    }
    assert_eq!(got, vec![3, 4]);
    c.close().await.unwrap();
    broker.shutdown().await.unwrap();
}
