//! Classic consumer groups and the idempotent producer, driven by librdkafka
//! (the `rdkafka` crate): partition splitting and takeover, committed
//! offsets and group membership (also across a SIGKILL of the broker),
//! several groups, static membership, the cooperative-sticky assignor's
//! incremental rebalances, and an idempotent producer's offsets.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use sluice_protocol::envelope::{decode_response, encode_request};
use sluice_protocol::kafka_protocol::messages::describe_groups_response::DescribedGroup;
use sluice_protocol::kafka_protocol::messages::{
    ApiKey, DescribeGroupsRequest, GroupId, RequestHeader, RequestKind, ResponseKind,
};
use sluice_protocol::kafka_protocol::protocol::StrBytes;

use crate::common::{
    block_on, free_port, topic_name, wait_for, BrokerProcess, InProcBroker, PATIENCE,
};

/// Broker settings for every test here: no initial rebalance delay.
const GROUP_SETTINGS: &[(&str, &str)] = &[("group.initial.rebalance.delay.ms", "0")];

fn start() -> InProcBroker {
    InProcBroker::start(GROUP_SETTINGS)
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

pub(crate) fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let nt = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let opts = AdminOptions::new()
        .request_timeout(Some(PATIENCE))
        .operation_timeout(Some(PATIENCE));
    let res = block_on(admin(bootstrap).create_topics([&nt], &opts)).expect("CreateTopics");
    assert_eq!(res, vec![Ok(name.to_string())]);
}

fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("producer")
}

/// Produces `values` to explicit partitions (round robin over
/// `partitions`) and waits for every acknowledgement.
pub(crate) fn produce(bootstrap: &str, topic: &str, partitions: i32, values: &[String]) {
    let p = producer(bootstrap, &[]);
    block_on(async {
        let futs: Vec<_> = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let rec = FutureRecord::<(), _>::to(topic)
                    .payload(v.as_str())
                    .partition(i as i32 % partitions);
                p.send(rec, PATIENCE)
            })
            .collect();
        for f in futs {
            f.await.expect("produce acknowledged");
        }
    });
}

pub(crate) fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Counts assignments handed to the consumer by rebalances, and keeps the
/// partitions each revocation took away.
#[derive(Clone, Default)]
pub(crate) struct CountingContext {
    pub(crate) assigns: Arc<AtomicUsize>,
    pub(crate) revokes: Arc<AtomicUsize>,
    pub(crate) revoked: Arc<Mutex<Vec<BTreeSet<i32>>>>,
}

impl ClientContext for CountingContext {}

impl ConsumerContext for CountingContext {
    fn post_rebalance(&self, _c: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(_) => {
                self.assigns.fetch_add(1, Ordering::SeqCst);
            }
            Rebalance::Revoke(tpl) => {
                self.revokes.fetch_add(1, Ordering::SeqCst);
                let partitions = tpl.elements().iter().map(|e| e.partition()).collect();
                self.revoked.lock().unwrap().push(partitions);
            }
            Rebalance::Error(_) => {}
        }
    }
}

pub(crate) type GroupConsumer = BaseConsumer<CountingContext>;

/// A subscribing group member: manual commits, range assignor, earliest
/// reset, broker-minimum session timeout.
fn group_consumer(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> GroupConsumer {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("partition.assignment.strategy", "range")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("check.crcs", "true");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create_with_context(CountingContext::default())
        .expect("group consumer")
}

/// The partitions of `topic` currently assigned to `c`.
pub(crate) fn assigned(c: &GroupConsumer, topic: &str) -> BTreeSet<i32> {
    c.assignment()
        .expect("assignment")
        .elements()
        .iter()
        .filter(|e| e.topic() == topic)
        .map(|e| e.partition())
        .collect()
}

/// One received record: partition, offset, payload.
pub(crate) type Rec = (i32, i64, String);

/// Polls every consumer once (briefly); records go to `out[i]`.
fn poll_all(consumers: &[&GroupConsumer], out: &mut [Vec<Rec>]) {
    for (c, sink) in consumers.iter().zip(out.iter_mut()) {
        match c.poll(Duration::from_millis(50)) {
            None => {}
            Some(Ok(m)) => {
                let v = String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap();
                sink.push((m.partition(), m.offset(), v));
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
        }
    }
}

/// Polls all consumers until `done` holds, panicking after [`PATIENCE`].
pub(crate) fn poll_until(
    what: &str,
    consumers: &[&GroupConsumer],
    out: &mut [Vec<Rec>],
    mut done: impl FnMut(&[Vec<Rec>]) -> bool,
) {
    let deadline = Instant::now() + PATIENCE;
    while !done(out) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        poll_all(consumers, out);
    }
}

/// Polls until consumer `i` has read `n` records.
fn read_n(c: &GroupConsumer, n: usize) -> Vec<Rec> {
    let mut out = vec![Vec::new()];
    poll_until(&format!("{n} records"), &[c], &mut out, |o| o[0].len() >= n);
    out.pop().unwrap()
}

/// Nothing more arrives while polling a little longer.
fn assert_quiet(c: &GroupConsumer) {
    let mut out = vec![Vec::new()];
    for _ in 0..10 {
        poll_all(&[c], &mut out);
    }
    assert!(out[0].is_empty(), "unexpected extra records: {:?}", out[0]);
}

pub(crate) fn payloads(recs: &[Rec]) -> BTreeSet<String> {
    recs.iter().map(|r| r.2.clone()).collect()
}

pub(crate) fn assert_no_duplicates(recs: &[Rec]) {
    let set = payloads(recs);
    assert_eq!(set.len(), recs.len(), "duplicate records: {recs:?}");
}

/// Commits `offsets` (partition → next offset to read) synchronously.
fn commit(c: &GroupConsumer, topic: &str, offsets: &[(i32, i64)]) {
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))
            .unwrap();
    }
    c.commit(&tpl, CommitMode::Sync).expect("sync commit");
}

/// The group's committed offsets for `partitions` of `topic`, as seen by a
/// fresh (non-subscribing) consumer of `group`.
fn committed(bootstrap: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, Offset> {
    let c = group_consumer(bootstrap, group, &[]);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    // The coordinator may still be loading offsets right after a start.
    let got = wait_for("committed offsets", || {
        c.committed_offsets(tpl.clone(), Duration::from_secs(5))
            .ok()
    });
    got.elements()
        .iter()
        .map(|e| (e.partition(), e.offset()))
        .collect()
}

// ---------------------------------------------------------------------------

#[test]
fn two_members_split_partitions_then_one_takes_over() {
    let b = start();
    let bs = b.bootstrap();
    let topic = topic_name("split");
    create_topic(&bs, &topic, 6);

    let group = "split-group";
    let c1 = group_consumer(&bs, group, &[]);
    let c2 = group_consumer(&bs, group, &[]);
    c1.subscribe(&[&topic]).unwrap();
    c2.subscribe(&[&topic]).unwrap();

    let mut out = vec![Vec::new(), Vec::new()];
    poll_until("a 3/3 range split", &[&c1, &c2], &mut out, |_| {
        assigned(&c1, &topic).len() == 3 && assigned(&c2, &topic).len() == 3
    });
    let a1 = assigned(&c1, &topic);
    let a2 = assigned(&c2, &topic);
    assert!(a1.is_disjoint(&a2), "overlapping assignments {a1:?} {a2:?}");
    let union: BTreeSet<i32> = a1.union(&a2).copied().collect();
    assert_eq!(union, (0..6).collect());
    // Range assignment hands out contiguous ranges.
    for a in [&a1, &a2] {
        let v: Vec<i32> = a.iter().copied().collect();
        assert_eq!(v[2] - v[0], 2, "not a contiguous range: {v:?}");
    }

    let first = values("first", 600);
    produce(&bs, &topic, 6, &first);
    poll_until("every first record", &[&c1, &c2], &mut out, |o| {
        o[0].len() + o[1].len() >= first.len()
    });
    for (recs, mine) in out.iter().zip([&a1, &a2]) {
        for r in recs {
            assert!(
                mine.contains(&r.0),
                "record {r:?} from an unassigned partition"
            );
        }
    }
    let all: Vec<Rec> = out.concat();
    assert_no_duplicates(&all);
    assert_eq!(payloads(&all), first.iter().cloned().collect());
    // Each member read 100 records from each of its 3 partitions.
    assert_eq!(out[0].len(), 300);
    assert_eq!(out[1].len(), 300);

    c1.commit_consumer_state(CommitMode::Sync)
        .expect("c1 commit");
    c2.commit_consumer_state(CommitMode::Sync)
        .expect("c2 commit");

    // c1 leaves the group (close sends LeaveGroup); c2 takes everything.
    drop(c1);
    let mut out2 = vec![Vec::new()];
    poll_until("c2 owns all 6 partitions", &[&c2], &mut out2, |_| {
        assigned(&c2, &topic).len() == 6
    });
    let second = values("second", 600);
    produce(&bs, &topic, 6, &second);
    poll_until("every second record", &[&c2], &mut out2, |o| {
        o[0].len() >= second.len()
    });
    assert_quiet(&c2);
    assert_no_duplicates(&out2[0]);
    // Nothing skipped, and nothing from before the leave read again (c1's
    // partitions resume at c1's committed offsets).
    assert_eq!(payloads(&out2[0]), second.iter().cloned().collect());
    let parts: BTreeSet<i32> = out2[0].iter().map(|r| r.0).collect();
    assert_eq!(parts, (0..6).collect());
    for r in &out2[0] {
        assert!(
            r.1 >= 100,
            "record re-read below the committed offset: {r:?}"
        );
    }
}

#[test]
fn consumer_resumes_after_committed_offset() {
    let b = start();
    let bs = b.bootstrap();
    let topic = topic_name("resume");
    create_topic(&bs, &topic, 2);
    let vals = values("v", 20);
    produce(&bs, &topic, 2, &vals); // 10 per partition
    let group = "resume-group";

    let c = group_consumer(&bs, group, &[]);
    c.subscribe(&[&topic]).unwrap();
    let got = read_n(&c, 20);
    assert_no_duplicates(&got);
    // Commit a position in the middle of each partition.
    commit(&c, &topic, &[(0, 6), (1, 3)]);
    drop(c);

    assert_eq!(
        committed(&bs, group, &topic, 2),
        BTreeMap::from([(0, Offset::Offset(6)), (1, Offset::Offset(3))])
    );

    let c = group_consumer(&bs, group, &[]);
    c.subscribe(&[&topic]).unwrap();
    let got = read_n(&c, 4 + 7);
    assert_quiet(&c);
    let positions: BTreeSet<(i32, i64)> = got.iter().map(|r| (r.0, r.1)).collect();
    let expected: BTreeSet<(i32, i64)> = (6..10)
        .map(|o| (0, o))
        .chain((3..10).map(|o| (1, o)))
        .collect();
    assert_eq!(positions, expected);
    assert_eq!(got.len(), expected.len());
}

#[test]
fn two_groups_each_read_everything() {
    let b = start();
    let bs = b.bootstrap();
    let topic = topic_name("fanout");
    create_topic(&bs, &topic, 3);
    let vals = values("f", 300);
    produce(&bs, &topic, 3, &vals);

    let ga = group_consumer(&bs, "fanout-a", &[]);
    let gb = group_consumer(&bs, "fanout-b", &[]);
    ga.subscribe(&[&topic]).unwrap();
    gb.subscribe(&[&topic]).unwrap();
    let mut out = vec![Vec::new(), Vec::new()];
    poll_until("both groups read everything", &[&ga, &gb], &mut out, |o| {
        o[0].len() >= vals.len() && o[1].len() >= vals.len()
    });
    assert_quiet(&ga);
    assert_quiet(&gb);
    let want: BTreeSet<String> = vals.iter().cloned().collect();
    for recs in &out {
        assert_no_duplicates(recs);
        assert_eq!(payloads(recs), want);
    }
    assert_eq!(assigned(&ga, &topic), (0..3).collect());
    assert_eq!(assigned(&gb, &topic), (0..3).collect());
}

#[test]
fn committed_offsets_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("broker.log");
    let port = free_port();
    let settings = ["group.initial.rebalance.delay.ms=0"];
    let broker = BrokerProcess::spawn(port, &data, &log, &settings);
    let bs = broker.bootstrap();
    let topic = topic_name("durable-offsets");
    create_topic(&bs, &topic, 2);
    produce(&bs, &topic, 2, &values("d", 40)); // 20 per partition
    let group = "durable-group";

    let c = group_consumer(&bs, group, &[]);
    c.subscribe(&[&topic]).unwrap();
    read_n(&c, 40);
    commit(&c, &topic, &[(0, 4), (1, 9)]);
    // A later commit supersedes the first.
    commit(&c, &topic, &[(0, 12), (1, 15)]);
    drop(c);
    let want = BTreeMap::from([(0, Offset::Offset(12)), (1, Offset::Offset(15))]);
    assert_eq!(committed(&bs, group, &topic, 2), want);

    broker.kill();
    let broker = BrokerProcess::spawn(port, &data, &log, &settings);
    let bs = broker.bootstrap();
    assert_eq!(committed(&bs, group, &topic, 2), want);

    let c = group_consumer(&bs, group, &[]);
    c.subscribe(&[&topic]).unwrap();
    let got = read_n(&c, 8 + 5);
    assert_quiet(&c);
    let positions: BTreeSet<(i32, i64)> = got.iter().map(|r| (r.0, r.1)).collect();
    let expected: BTreeSet<(i32, i64)> = (12..20)
        .map(|o| (0, o))
        .chain((15..20).map(|o| (1, o)))
        .collect();
    assert_eq!(positions, expected);
    drop(c);
    broker.terminate();
}

/// Polls every consumer once, keeping records and ignoring errors: while
/// the broker is down librdkafka reports transport errors, which are
/// expected.
pub(crate) fn poll_through_errors(consumers: &[&GroupConsumer], out: &mut [Vec<Rec>]) {
    for (c, sink) in consumers.iter().zip(out.iter_mut()) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
            let v = String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap();
            sink.push((m.partition(), m.offset(), v));
        }
    }
}

#[test]
fn group_membership_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("broker.log");
    let port = free_port();
    let settings = ["group.initial.rebalance.delay.ms=0"];
    let broker = BrokerProcess::spawn(port, &data, &log, &settings);
    let bs = broker.bootstrap();
    let topic = topic_name("durable-members");
    create_topic(&bs, &topic, 4);
    let group = "durable-members-group";
    // A session long enough to outlast the restart and librdkafka's
    // reconnect backoff.
    let extra = [
        ("session.timeout.ms", "20000"),
        ("reconnect.backoff.max.ms", "500"),
    ];
    let c1 = group_consumer(&bs, group, &extra);
    let c2 = group_consumer(&bs, group, &extra);
    c1.subscribe(&[&topic]).unwrap();
    c2.subscribe(&[&topic]).unwrap();
    let mut out = vec![Vec::new(), Vec::new()];
    poll_until("a 2/2 split", &[&c1, &c2], &mut out, |_| {
        assigned(&c1, &topic).len() == 2 && assigned(&c2, &topic).len() == 2
    });
    let parts = [assigned(&c1, &topic), assigned(&c2, &topic)];
    let first = values("before", 200);
    produce(&bs, &topic, 4, &first);
    poll_until("every record before the kill", &[&c1, &c2], &mut out, |o| {
        o[0].len() + o[1].len() >= first.len()
    });
    c1.commit_consumer_state(CommitMode::Sync)
        .expect("c1 commit");
    c2.commit_consumer_state(CommitMode::Sync)
        .expect("c2 commit");
    let members_before = describe_group(&bs, group);
    let counts = |c: &GroupConsumer| {
        (
            c.context().assigns.load(Ordering::SeqCst),
            c.context().revokes.load(Ordering::SeqCst),
        )
    };
    let counts_before = [counts(&c1), counts(&c2)];

    broker.kill();
    let broker = BrokerProcess::spawn(port, &data, &log, &settings);
    let second = values("after", 200);
    produce(&bs, &topic, 4, &second);
    let deadline = Instant::now() + PATIENCE;
    while out[0].len() + out[1].len() < first.len() + second.len() {
        assert!(Instant::now() < deadline, "timed out reading after restart");
        poll_through_errors(&[&c1, &c2], &mut out);
    }
    // Commits with the persisted generation are accepted.
    c1.commit_consumer_state(CommitMode::Sync)
        .expect("c1 commit after restart");
    c2.commit_consumer_state(CommitMode::Sync)
        .expect("c2 commit after restart");
    // Several heartbeat intervals more: a rebalance would show as a revoke.
    for _ in 0..40 {
        poll_through_errors(&[&c1, &c2], &mut out);
    }
    assert_eq!(
        [counts(&c1), counts(&c2)],
        counts_before,
        "a rebalance happened"
    );
    assert_eq!([assigned(&c1, &topic), assigned(&c2, &topic)], parts);
    let members_after = describe_group(&bs, group);
    assert_eq!(members_after.group_state.to_string(), "Stable");
    assert_eq!(members(&members_after), members(&members_before));
    // Each record exactly once: positions were kept, nothing re-read.
    let all: Vec<Rec> = out.concat();
    assert_no_duplicates(&all);
    assert_eq!(
        payloads(&all),
        first.iter().chain(&second).cloned().collect()
    );
    for (recs, mine) in out.iter().zip(&parts) {
        assert!(recs.iter().all(|r| mine.contains(&r.0)));
    }
    drop((c1, c2));
    let ends: BTreeMap<i32, Offset> = (0..4).map(|p| (p, Offset::Offset(100))).collect();
    assert_eq!(committed(&bs, group, &topic, 4), ends);
    broker.terminate();
}

#[test]
fn cooperative_sticky_rebalances_incrementally() {
    let b = start();
    let bs = b.bootstrap();
    let topic = topic_name("cooperative");
    create_topic(&bs, &topic, 6);
    let group = "cooperative-group";
    let extra = [("partition.assignment.strategy", "cooperative-sticky")];
    let c1 = group_consumer(&bs, group, &extra);
    let c2 = group_consumer(&bs, group, &extra);
    c1.subscribe(&[&topic]).unwrap();
    c2.subscribe(&[&topic]).unwrap();
    let mut out = vec![Vec::new(), Vec::new(), Vec::new()];
    poll_until("a 3/3 split", &[&c1, &c2], &mut out[..2], |_| {
        assigned(&c1, &topic).len() == 3 && assigned(&c2, &topic).len() == 3
    });
    let before = [assigned(&c1, &topic), assigned(&c2, &topic)];
    let revoked_before = [
        c1.context().revoked.lock().unwrap().len(),
        c2.context().revoked.lock().unwrap().len(),
    ];

    let c3 = group_consumer(&bs, group, &extra);
    c3.subscribe(&[&topic]).unwrap();
    poll_until("a 2/2/2 split", &[&c1, &c2, &c3], &mut out, |_| {
        [&c1, &c2, &c3]
            .iter()
            .all(|c| assigned(c, &topic).len() == 2)
    });
    let after = [
        assigned(&c1, &topic),
        assigned(&c2, &topic),
        assigned(&c3, &topic),
    ];
    let union: BTreeSet<i32> = after.iter().flatten().copied().collect();
    assert_eq!(union, (0..6).collect());
    for (i, c) in [&c1, &c2].iter().enumerate() {
        assert!(
            after[i].is_subset(&before[i]),
            "member {i} kept {:?} of {:?}",
            after[i],
            before[i]
        );
        // Only the partition that moved was revoked, never everything.
        let revoked: BTreeSet<i32> = c.context().revoked.lock().unwrap()[revoked_before[i]..]
            .iter()
            .flatten()
            .copied()
            .collect();
        let moved: BTreeSet<i32> = before[i].difference(&after[i]).copied().collect();
        assert_eq!(revoked, moved, "member {i} revoked more than it gave up");
    }
}

// --- DescribeGroups on a raw socket -----------------------------------------

/// Sends one request on a fresh connection and returns the response.
pub(crate) fn raw_call(addr: &str, api: ApiKey, version: i16, body: RequestKind) -> ResponseKind {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    let header = RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("groups-test")));
    s.write_all(&encode_request(&header, &body).unwrap())
        .unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("response length");
    let mut frame = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut frame).expect("response body");
    let (corr, resp) = decode_response(api, version, Bytes::from(frame)).expect("decodes");
    assert_eq!(corr, 7);
    resp
}

fn describe_group(addr: &str, group: &str) -> DescribedGroup {
    let body = RequestKind::DescribeGroups(
        DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_string(group.to_string()))]),
    );
    let ResponseKind::DescribeGroups(mut r) = raw_call(addr, ApiKey::DescribeGroups, 5, body)
    else {
        panic!("not a DescribeGroups response")
    };
    assert_eq!(r.groups.len(), 1);
    let g = r.groups.pop().unwrap();
    assert_eq!(g.error_code, 0, "DescribeGroups error");
    g
}

/// (member id, group instance id) of every member.
fn members(g: &DescribedGroup) -> BTreeMap<String, String> {
    g.members
        .iter()
        .map(|m| {
            (
                m.group_instance_id
                    .as_ref()
                    .map(|s| s.to_string())
                    .unwrap_or_default(),
                m.member_id.to_string(),
            )
        })
        .collect()
}

#[test]
fn static_member_restart_does_not_rebalance() {
    let b = start();
    let bs = b.bootstrap();
    let topic = topic_name("static");
    create_topic(&bs, &topic, 6);
    let group = "static-group";

    // "b" joins first and leads; "a" is a follower.
    let cb = group_consumer(&bs, group, &[("group.instance.id", "b")]);
    cb.subscribe(&[&topic]).unwrap();
    let mut out = vec![Vec::new(), Vec::new()];
    poll_until("b owns all 6", &[&cb], &mut out[..1], |_| {
        assigned(&cb, &topic).len() == 6
    });
    let ca = group_consumer(&bs, group, &[("group.instance.id", "a")]);
    ca.subscribe(&[&topic]).unwrap();
    poll_until("a 3/3 split", &[&cb, &ca], &mut out, |_| {
        assigned(&cb, &topic).len() == 3 && assigned(&ca, &topic).len() == 3
    });
    let a_parts = assigned(&ca, &topic);
    let b_parts = assigned(&cb, &topic);
    let before = describe_group(&bs, group);
    assert_eq!(before.group_state.to_string(), "Stable");
    let ids_before = members(&before);
    assert_eq!(
        ids_before.keys().cloned().collect::<Vec<_>>(),
        ["a".to_string(), "b".to_string()]
    );
    let b_assigns = cb.context().assigns.load(Ordering::SeqCst);
    let b_revokes = cb.context().revokes.load(Ordering::SeqCst);

    // Restart "a": a static member sends no LeaveGroup on close, and
    // rejoining within the session timeout takes over its old assignment.
    drop(ca);
    let ca = group_consumer(&bs, group, &[("group.instance.id", "a")]);
    ca.subscribe(&[&topic]).unwrap();
    poll_until(
        "restarted a gets its partitions",
        &[&cb, &ca],
        &mut out,
        |_| !assigned(&ca, &topic).is_empty(),
    );
    assert_eq!(assigned(&ca, &topic), a_parts);
    // Keep both polling for a number of heartbeat intervals: a rebalance
    // would reach "b" as a revoke.
    for _ in 0..40 {
        poll_all(&[&cb, &ca], &mut out);
    }
    assert_eq!(cb.context().revokes.load(Ordering::SeqCst), b_revokes);
    assert_eq!(cb.context().assigns.load(Ordering::SeqCst), b_assigns);
    assert_eq!(assigned(&cb, &topic), b_parts);
    assert_eq!(assigned(&ca, &topic), a_parts);

    let after = describe_group(&bs, group);
    assert_eq!(after.group_state.to_string(), "Stable");
    let ids_after = members(&after);
    assert_eq!(ids_after.len(), 2);
    assert_eq!(ids_after["b"], ids_before["b"], "b's member id changed");
    assert_ne!(ids_after["a"], ids_before["a"], "a got a new member id");
}

#[test]
fn idempotent_producer_dense_offsets_no_duplicates() {
    let b = start();
    let bs = b.bootstrap();
    let topic = topic_name("idempotent");
    create_topic(&bs, &topic, 3);
    let p = producer(
        &bs,
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("max.in.flight.requests.per.connection", "5"),
            ("batch.num.messages", "50"),
        ],
    );
    let n = 2000;
    let vals = values("idem", n);
    let acks: Vec<(i32, i64)> = block_on(async {
        let futs: Vec<_> = vals
            .iter()
            .map(|v| {
                p.send(
                    FutureRecord::<str, _>::to(&topic).key(v).payload(v),
                    PATIENCE,
                )
            })
            .collect();
        let mut acks = Vec::new();
        for f in futs {
            let d = f.await.expect("acknowledged");
            acks.push((d.partition, d.offset));
        }
        acks
    });
    let mut per_part: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (part, off) in &acks {
        per_part.entry(*part).or_default().push(*off);
    }
    for (part, offs) in &mut per_part {
        offs.sort_unstable();
        let dense: Vec<i64> = (0..offs.len() as i64).collect();
        assert_eq!(*offs, dense, "partition {part}: offsets not dense");
    }
    assert_eq!(acks.len(), n);

    // Read it all back through a group: every record exactly once.
    let c = group_consumer(&bs, "idempotent-readers", &[]);
    c.subscribe(&[&topic]).unwrap();
    let got = read_n(&c, n);
    assert_quiet(&c);
    assert_no_duplicates(&got);
    assert_eq!(payloads(&got), vals.iter().cloned().collect());
    for (part, offs) in &per_part {
        let end = c
            .fetch_watermarks(&topic, *part, PATIENCE)
            .expect("watermarks")
            .1;
        assert_eq!(end, offs.len() as i64, "partition {part} high watermark");
    }
}
