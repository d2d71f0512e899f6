//! KIP-848 consumer groups (`group.protocol=consumer`) driven by librdkafka:
//! server-side assignment converges, every record is read once, and a
//! leaving member's partitions move to the others.

use std::collections::BTreeSet;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer};

use crate::common::{topic_name, InProcBroker};
use crate::groups::{
    assert_no_duplicates, assigned, create_topic, payloads, poll_until, produce, values,
    CountingContext, GroupConsumer,
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
        .set("group.id", group)
        .set("group.protocol", "consumer")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create_with_context(CountingContext::default())
        .expect("consumer-protocol consumer")
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
