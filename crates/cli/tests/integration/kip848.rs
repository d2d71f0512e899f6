//! KIP-848 consumer groups (`group.protocol=consumer`) driven by librdkafka:
//! server-side assignment converges, every record is read once, a leaving
//! member's partitions move to the others, and members keep their epochs
//! and partitions across a broker SIGKILL.

use std::collections::BTreeSet;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer};

use std::sync::atomic::Ordering;

use sluice_protocol::kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use sluice_protocol::kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, GroupId, RequestKind, ResponseKind,
};
use sluice_protocol::kafka_protocol::protocol::StrBytes;

use crate::common::{free_port, topic_name, BrokerProcess, InProcBroker, PATIENCE};
use crate::groups::{
    assert_no_duplicates, assigned, create_topic, payloads, poll_through_errors, poll_until,
    produce, raw_call, values, CountingContext, GroupConsumer,
};

/// Members heartbeat every 500 ms instead of 5 s, so reconciliation (which
/// advances on heartbeats) is quick.
const KIP848_SETTINGS: &[(&str, &str)] = &[("group.consumer.heartbeat.interval.ms", "500")];

/// A member of the consumer protocol: the broker assigns, so there is no
/// `partition.assignment.strategy`, session timeout or heartbeat interval
/// to set on the client.
pub(crate) fn kip848_consumer(bootstrap: &str, group: &str) -> GroupConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // Back quickly after a broker restart.
        .set("reconnect.backoff.max.ms", "500")
        .set("group.id", group)
        .set("group.protocol", "consumer")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create_with_context(CountingContext::default())
        .expect("consumer-protocol consumer")
}

/// The group as ConsumerGroupDescribe (KIP-848's own describe) shows it.
fn consumer_group_describe(addr: &str, group: &str) -> DescribedGroup {
    let body = RequestKind::ConsumerGroupDescribe(
        ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(StrBytes::from_string(group.to_string()))]),
    );
    let ResponseKind::ConsumerGroupDescribe(mut r) =
        raw_call(addr, ApiKey::ConsumerGroupDescribe, 1, body)
    else {
        panic!("not a ConsumerGroupDescribe response")
    };
    let g = r.groups.pop().expect("one group");
    assert_eq!(g.error_code, 0, "ConsumerGroupDescribe error");
    g
}

#[test]
fn three_members_split_six_partitions_then_two_take_over() {
    let broker = InProcBroker::start(KIP848_SETTINGS);
    let bs = broker.bootstrap();
    let topic = topic_name("kip848");
    create_topic(&bs, &topic, 6);
    let group = "kip848-group";
    let members: Vec<GroupConsumer> = (0..3).map(|_| kip848_consumer(&bs, group)).collect();
    for m in &members {
        m.subscribe(&[&topic]).unwrap();
    }
    let refs: Vec<&GroupConsumer> = members.iter().collect();
    let mut out = vec![Vec::new(); 3];
    poll_until("2 partitions each", &refs, &mut out, |_| {
        members.iter().all(|m| assigned(m, &topic).len() == 2)
    });
    let all: BTreeSet<i32> = members.iter().flat_map(|m| assigned(m, &topic)).collect();
    assert_eq!(all, (0..6).collect(), "disjoint and complete");
    let described = consumer_group_describe(&bs, group);
    assert_eq!(
        described.members.len(),
        3,
        "members of a consumer-protocol group"
    );
    assert_eq!(described.assignor_name.as_str(), "uniform");

    let first = values("first", 600);
    produce(&bs, &topic, 6, &first);
    poll_until("every first record", &refs, &mut out, |o| {
        o.iter().map(Vec::len).sum::<usize>() >= first.len()
    });
    let read: Vec<_> = out.concat();
    assert_no_duplicates(&read);
    assert_eq!(payloads(&read), first.iter().cloned().collect());
    for (member, records) in members.iter().zip(&out) {
        assert!(!records.is_empty(), "every member reads its share");
        member
            .commit_consumer_state(CommitMode::Sync)
            .expect("commit");
    }

    // The third member leaves (close sends member epoch -1): the other two
    // keep their partitions and get one more each.
    let mut members = members;
    let leaver = members.pop().expect("three members");
    let orphaned = assigned(&leaver, &topic);
    drop(leaver);
    let refs: Vec<&GroupConsumer> = members.iter().collect();
    let before: Vec<BTreeSet<i32>> = members.iter().map(|m| assigned(m, &topic)).collect();
    let mut out = vec![Vec::new(); 2];
    poll_until("3 partitions each", &refs, &mut out, |_| {
        members.iter().all(|m| assigned(m, &topic).len() == 3)
    });
    for (member, had) in members.iter().zip(&before) {
        let now = assigned(member, &topic);
        assert!(had.is_subset(&now), "sticky: {had:?} kept in {now:?}");
    }
    let taken: BTreeSet<i32> = members
        .iter()
        .flat_map(|m| assigned(m, &topic))
        .filter(|p| orphaned.contains(p))
        .collect();
    assert_eq!(taken, orphaned);

    let second = values("second", 300);
    produce(&bs, &topic, 6, &second);
    poll_until("every second record", &refs, &mut out, |o| {
        o.iter().map(Vec::len).sum::<usize>() >= second.len()
    });
    let read: Vec<_> = out.concat();
    assert_no_duplicates(&read);
    assert_eq!(
        payloads(&read),
        second.iter().cloned().collect(),
        "the committed first records are not read again"
    );
}

/// librdkafka subscribes with a regex (`^...`), which the consumer protocol
/// sends to the broker as SubscribedTopicRegex: the broker assigns the
/// matching topics, not others, and a matching topic created later.
#[test]
fn a_regex_subscription_is_resolved_by_the_broker() {
    let broker = InProcBroker::start(KIP848_SETTINGS);
    let bs = broker.bootstrap();
    let prefix = topic_name("rx");
    let (a, b, other) = (
        format!("{prefix}-a"),
        format!("{prefix}-b"),
        topic_name("other"),
    );
    create_topic(&bs, &a, 2);
    create_topic(&bs, &other, 2);
    let group = topic_name("rx-group");
    let member = kip848_consumer(&bs, &group);
    member.subscribe(&[&format!("^{prefix}-.*")]).unwrap();
    let refs = [&member];
    let mut out = vec![Vec::new()];
    poll_until("the matching topic assigned", &refs, &mut out, |_| {
        assigned(&member, &a).len() == 2
    });
    assert!(
        assigned(&member, &other).is_empty(),
        "a topic that does not match"
    );
    create_topic(&bs, &b, 3);
    poll_until("the new matching topic assigned", &refs, &mut out, |_| {
        assigned(&member, &b).len() == 3
    });
    let records = values("rx", 30);
    produce(&bs, &b, 3, &records);
    poll_until("records of the new topic", &refs, &mut out, |o| {
        o[0].len() >= records.len()
    });
    assert_eq!(payloads(&out[0]), records.iter().cloned().collect());
}

// ---------------------------------------------------------------------------
// Measurement (not a timed assertion): how long a 10-member group takes to
// settle after a member joins and after a member dies, classic vs KIP-848.
//
//   cargo test -p sluice --test integration \
//       -- --ignored --nocapture kip848::stabilisation_times

/// Heartbeat interval and session timeout used by both protocols, so the
/// comparison is of the protocols, not of their defaults.
const PERF_HEARTBEAT_MS: &str = "500";
const PERF_SESSION_MS: &str = "6000";
const PERF_PARTITIONS: i32 = 20;
const PERF_MEMBERS: usize = 10;
const VICTIM_ENV: &str = "SLUICE_PERF_VICTIM";

/// How members of one measured group are configured.
#[derive(Clone, Copy, Debug)]
enum Protocol {
    ClassicEager,
    ClassicCooperative,
    Consumer,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::ClassicEager => "classic (range, eager)",
            Protocol::ClassicCooperative => "classic (cooperative-sticky)",
            Protocol::Consumer => "consumer (KIP-848, uniform)",
        }
    }

    fn from_name(name: &str) -> Option<Protocol> {
        [
            Protocol::ClassicEager,
            Protocol::ClassicCooperative,
            Protocol::Consumer,
        ]
        .into_iter()
        .find(|p| p.name() == name)
    }

    fn consumer(self, bootstrap: &str, group: &str) -> GroupConsumer {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest");
        match self {
            Protocol::Consumer => cfg.set("group.protocol", "consumer"),
            Protocol::ClassicEager | Protocol::ClassicCooperative => cfg
                .set("session.timeout.ms", PERF_SESSION_MS)
                .set("heartbeat.interval.ms", PERF_HEARTBEAT_MS)
                .set(
                    "partition.assignment.strategy",
                    match self {
                        Protocol::ClassicCooperative => "cooperative-sticky",
                        _ => "range",
                    },
                ),
        };
        cfg.create_with_context(CountingContext::default())
            .expect("consumer")
    }
}

/// Polls `members` until their assignments are disjoint, balanced and
/// cover every partition, leaving a fair share to the member in another
/// process if it is `alive`; returns how long that took.
fn settle(members: &[GroupConsumer], topic: &str, victim_alive: bool) -> std::time::Duration {
    let start = std::time::Instant::now();
    let total = PERF_PARTITIONS as usize;
    let group_size = members.len() + usize::from(victim_alive);
    let fair = total / group_size..=total.div_ceil(group_size);
    loop {
        for m in members {
            let _ = m.poll(std::time::Duration::ZERO);
        }
        let sets: Vec<BTreeSet<i32>> = members.iter().map(|m| assigned(m, topic)).collect();
        let union: BTreeSet<i32> = sets.iter().flatten().copied().collect();
        let disjoint = union.len() == sets.iter().map(BTreeSet::len).sum::<usize>();
        let elsewhere = total - union.len();
        let victim_share = if victim_alive {
            fair.contains(&elsewhere)
        } else {
            elsewhere == 0
        };
        if disjoint && victim_share && sets.iter().all(|s| fair.contains(&s.len())) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < crate::common::PATIENCE,
            "group never settled"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// A member in a child process, SIGKILLed on drop (also when the
/// measurement panics).
struct Victim(std::process::Child);

impl Drop for Victim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The member that dies: run by [`stabilisation_times_classic_vs_kip848`]
/// as a child process (this test binary again), then SIGKILLed so it
/// leaves nothing behind but silence.
#[test]
#[ignore = "a helper process of the stabilisation measurement"]
fn perf_victim_member() {
    let Ok(spec) = std::env::var(VICTIM_ENV) else {
        return;
    };
    let mut parts = spec.splitn(4, '|');
    let (Some(bootstrap), Some(group), Some(topic), Some(protocol)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        panic!("{VICTIM_ENV} is bootstrap|group|topic|protocol");
    };
    let protocol = Protocol::from_name(protocol).expect("protocol name");
    let member = protocol.consumer(bootstrap, group);
    member.subscribe(&[topic]).unwrap();
    loop {
        let _ = member.poll(std::time::Duration::from_millis(100));
    }
}

#[test]
#[ignore = "a measurement; run with --ignored --nocapture"]
fn stabilisation_times_classic_vs_kip848() {
    let broker = InProcBroker::start(&[
        ("group.initial.rebalance.delay.ms", "0"),
        ("group.min.session.timeout.ms", PERF_SESSION_MS),
        ("group.consumer.heartbeat.interval.ms", PERF_HEARTBEAT_MS),
        ("group.consumer.session.timeout.ms", PERF_SESSION_MS),
    ]);
    let bs = broker.bootstrap();
    println!(
        "{PERF_MEMBERS} members, {PERF_PARTITIONS} partitions, heartbeat {PERF_HEARTBEAT_MS} ms, session timeout {PERF_SESSION_MS} ms"
    );
    println!(
        "{:<30} {:>14} {:>16} {:>14}",
        "protocol", "member joins", "members revoking", "member dies"
    );
    for protocol in [
        Protocol::ClassicEager,
        Protocol::ClassicCooperative,
        Protocol::Consumer,
    ] {
        let topic = topic_name("settle");
        create_topic(&bs, &topic, PERF_PARTITIONS);
        let group = topic_name("settle-group");
        // One member lives in a child process so that it can be killed.
        let victim = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "kip848::perf_victim_member"])
            .env(
                VICTIM_ENV,
                format!("{bs}|{group}|{topic}|{}", protocol.name()),
            )
            .stdout(std::process::Stdio::null())
            .spawn()
            .map(Victim)
            .expect("spawn the victim member");
        let mut members: Vec<GroupConsumer> = (0..PERF_MEMBERS - 2)
            .map(|_| protocol.consumer(&bs, &group))
            .collect();
        for m in &members {
            m.subscribe(&[&topic]).unwrap();
        }
        settle(&members, &topic, true);

        let revocations = |members: &[GroupConsumer]| -> usize {
            members
                .iter()
                .map(|m| m.context().revokes.load(Ordering::SeqCst))
                .sum()
        };
        let revoked_before = revocations(&members);
        let joiner = protocol.consumer(&bs, &group);
        joiner.subscribe(&[&topic]).unwrap();
        members.push(joiner);
        let joined = settle(&members, &topic, true);
        let stopped = revocations(&members) - revoked_before;

        drop(victim);
        let died = settle(&members, &topic, false);
        println!(
            "{:<30} {:>11} ms {:>16} {:>11} ms",
            protocol.name(),
            joined.as_millis(),
            stopped,
            died.as_millis()
        );
    }
}

#[test]
fn members_keep_epochs_and_partitions_across_a_broker_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("broker.log");
    let port = free_port();
    let settings = ["group.consumer.heartbeat.interval.ms=500"];
    let broker = BrokerProcess::spawn(port, &data, &log, &settings);
    let bs = broker.bootstrap();
    let topic = topic_name("kip848-durable");
    create_topic(&bs, &topic, 4);
    let group = "kip848-durable-group";
    let c1 = kip848_consumer(&bs, group);
    let c2 = kip848_consumer(&bs, group);
    c1.subscribe(&[&topic]).unwrap();
    c2.subscribe(&[&topic]).unwrap();
    let mut out = vec![Vec::new(), Vec::new()];
    poll_until("a converged 2/2 split", &[&c1, &c2], &mut out, |_| {
        assigned(&c1, &topic).len() == 2
            && assigned(&c2, &topic).len() == 2
            && consumer_group_describe(&bs, group).group_state.as_str() == "Stable"
    });
    let parts = [assigned(&c1, &topic), assigned(&c2, &topic)];
    let first = values("before", 200);
    produce(&bs, &topic, 4, &first);
    poll_until("every record before the kill", &[&c1, &c2], &mut out, |o| {
        o[0].len() + o[1].len() >= first.len()
    });
    let epochs = |g: &DescribedGroup| {
        let members: BTreeSet<(String, i32)> = g
            .members
            .iter()
            .map(|m| (m.member_id.to_string(), m.member_epoch))
            .collect();
        (g.group_epoch, members)
    };
    let before = epochs(&consumer_group_describe(&bs, group));
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
    let deadline = std::time::Instant::now() + PATIENCE;
    while out[0].len() + out[1].len() < first.len() + second.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out reading after restart"
        );
        poll_through_errors(&[&c1, &c2], &mut out);
    }
    c1.commit_consumer_state(CommitMode::Sync)
        .expect("c1 commits with its member epoch");
    // A few heartbeats more: a fenced member would give up its partitions.
    for _ in 0..40 {
        poll_through_errors(&[&c1, &c2], &mut out);
    }
    assert_eq!(
        [counts(&c1), counts(&c2)],
        counts_before,
        "partitions moved"
    );
    assert_eq!([assigned(&c1, &topic), assigned(&c2, &topic)], parts);
    assert_eq!(epochs(&consumer_group_describe(&bs, group)), before);
    let all = out.concat();
    assert_no_duplicates(&all);
    assert_eq!(
        payloads(&all),
        first.iter().chain(&second).cloned().collect()
    );
    drop((c1, c2));
    broker.terminate();
}
