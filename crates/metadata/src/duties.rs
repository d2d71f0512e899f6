//! The active controller's standing duties, run on every node and acted
//! on only by the leader of the quorum: fence brokers whose heartbeats
//! stopped for `broker.session.timeout.ms`, unfence those heard from again,
//! elect partition leaders whenever a leader is fenced or missing, and
//! finish reassignments whose target replicas are in sync.

use crate::cluster::{elect_leaders, preferred_leaders};
use crate::image::MetadataImage;
use crate::quorum::{Quorum, QuorumError};
use crate::reassignment::complete_reassignments;
use crate::record::MetadataRecord;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy)]
pub struct Duties {
    /// This node: as the controller it never fences itself (if it can run
    /// this, it is alive).
    pub node_id: i32,
    pub session_timeout: Duration,
    /// How often the duties are checked.
    pub tick: Duration,
    /// The broker's static `unclean.leader.election.enable`, for topics
    /// and clusters that do not set it.
    pub unclean_leader_election: bool,
    /// Preferred leader election (`auto.leader.rebalance.enable`), if on.
    pub leader_rebalance: Option<LeaderRebalance>,
}

/// How often leaders go back to their preferred replicas.
#[derive(Debug, Clone, Copy)]
pub struct LeaderRebalance {
    /// `leader.imbalance.check.interval.seconds`.
    pub every: Duration,
}

/// Runs the duties until `stop` turns true.
pub async fn run(quorum: Arc<dyn Quorum>, duties: Duties, mut stop: watch::Receiver<bool>) {
    let mut leading_since: Option<Instant> = None;
    let mut predecessor: Option<(i32, Instant)> = None;
    let mut last_rebalance: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(duties.tick) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        if quorum.status().leader != Some(duties.node_id) {
            leading_since = None;
            last_rebalance = None;
            continue;
        }
        let now = Instant::now();
        if leading_since.is_none() {
            predecessor = quorum.previous_leader_contact();
        }
        let since = *leading_since.get_or_insert(now);
        let Some(heard) = quorum.heard_from() else {
            continue;
        };
        let image = quorum.image();
        let mut records = decide_after(&image, &heard, &duties, (since, predecessor), now);
        if let Some(rebalance) = duties.leader_rebalance {
            let checked = *last_rebalance.get_or_insert(now);
            if records.is_empty() && now.duration_since(checked) >= rebalance.every {
                last_rebalance = Some(now);
                records = preferred_leaders(&image);
            }
        }
        if records.is_empty() {
            continue;
        }
        match quorum.append_after(image.offset, records.clone()).await {
            Ok(_) => {
                for record in &records {
                    tracing::info!(?record, "controller: cluster change");
                }
            }
            Err(QuorumError::Stale { .. }) => {}
            Err(e) => tracing::warn!(error = %e, "controller: cannot append a cluster change"),
        }
    }
}

/// The records the duties call for now. A broker not heard from since this
/// node began leading gets a whole session from then: a new leader does
/// not know when the others were last heard from.
pub fn decide(
    image: &MetadataImage,
    heard: &BTreeMap<i32, Instant>,
    duties: &Duties,
    leading_since: Instant,
    now: Instant,
) -> Vec<MetadataRecord> {
    decide_after(image, heard, duties, (leading_since, None), now)
}

/// [`decide`], knowing the previous leader and when this node last heard
/// from it: its broker (the same process on a combined node) is silent
/// since then, so its session runs from that moment rather than from the
/// takeover, and a dead controller's partitions move a whole election
/// sooner. It still gets a quarter of a session after the takeover, time
/// for a live predecessor's next heartbeat to arrive.
pub fn decide_after(
    image: &MetadataImage,
    heard: &BTreeMap<i32, Instant>,
    duties: &Duties,
    (leading_since, predecessor): (Instant, Option<(i32, Instant)>),
    now: Instant,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    let floor = leading_since
        .checked_sub(duties.session_timeout.mul_f64(0.75))
        .unwrap_or(leading_since);
    for (id, broker) in &image.brokers {
        let last = match (heard.get(id), predecessor) {
            (Some(t), _) => (*t).max(leading_since),
            (None, Some((leader, at))) if leader == *id => at.max(floor),
            (None, _) => leading_since,
        };
        let alive = *id == duties.node_id || now.duration_since(last) < duties.session_timeout;
        let heard_lately = *id == duties.node_id || heard.contains_key(id);
        if broker.fenced && alive && heard_lately {
            records.push(MetadataRecord::BrokerUnfenced { node_id: *id });
        } else if !broker.fenced && !alive {
            records.push(MetadataRecord::BrokerFenced { node_id: *id });
        }
    }
    let mut next = image.clone();
    for record in &records {
        next.apply(record);
    }
    let elections = elect_leaders(&next, duties.unclean_leader_election);
    for record in &elections {
        next.apply(record);
    }
    records.extend(elections);
    records.extend(complete_reassignments(&next));
    records
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::BrokerEndpoint;
    use uuid::Uuid;

    const DUTIES: Duties = Duties {
        node_id: 1,
        session_timeout: Duration::from_secs(9),
        tick: Duration::from_millis(250),
        unclean_leader_election: false,
        leader_rebalance: None,
    };

    fn cluster() -> (MetadataImage, Uuid) {
        let mut image = MetadataImage::default();
        for node_id in 1..=2 {
            image.apply(&MetadataRecord::BrokerRegistered {
                node_id,
                incarnation_id: Uuid::new_v4(),
                endpoints: vec![BrokerEndpoint {
                    name: "PLAINTEXT".into(),
                    host: "h".into(),
                    port: 1,
                }],
                rack: None,
            });
        }
        let id = Uuid::new_v4();
        image.apply(&MetadataRecord::TopicCreated {
            name: "t".into(),
            id,
            partitions: 1,
            replicas: vec![2],
            assignments: Vec::new(),
            configs: BTreeMap::new(),
        });
        (image, id)
    }

    #[test]
    fn a_silent_broker_is_fenced_after_a_session_and_its_partitions_lose_their_leader() {
        let (image, topic_id) = cluster();
        let start = Instant::now();
        let heard = BTreeMap::from([(2, start)]);
        assert!(decide(
            &image,
            &heard,
            &DUTIES,
            start,
            start + Duration::from_secs(8)
        )
        .is_empty());
        let records = decide(
            &image,
            &heard,
            &DUTIES,
            start,
            start + Duration::from_secs(9),
        );
        assert_eq!(
            records,
            vec![
                MetadataRecord::BrokerFenced { node_id: 2 },
                MetadataRecord::PartitionChanged {
                    topic_id,
                    partition: 0,
                    leader: -1,
                    leader_epoch: 1,
                    isr: vec![2],
                }
            ]
        );
    }

    #[test]
    fn a_new_leader_gives_everyone_a_session_and_never_fences_itself() {
        let (image, _) = cluster();
        let start = Instant::now();
        let later = start + Duration::from_secs(60);
        let none = BTreeMap::new();
        assert!(decide(
            &image,
            &none,
            &DUTIES,
            later,
            later + Duration::from_secs(5)
        )
        .is_empty());
        let fenced = decide(
            &image,
            &none,
            &DUTIES,
            later,
            later + Duration::from_secs(10),
        );
        assert_eq!(fenced[0], MetadataRecord::BrokerFenced { node_id: 2 });
        assert!(!fenced.contains(&MetadataRecord::BrokerFenced { node_id: 1 }));
    }

    #[test]
    fn a_silent_predecessor_is_fenced_a_session_after_it_was_last_heard() {
        let (image, _) = cluster();
        let start = Instant::now();
        let takeover = start + Duration::from_secs(4);
        // Broker 2 led the quorum and was last heard at `start`; broker 3
        // heartbeats to the new controller (broker 1).
        let heard = BTreeMap::from([(3, takeover)]);
        let predecessor = Some((2, start));
        let at = |after_takeover: Duration| {
            decide_after(
                &image,
                &heard,
                &DUTIES,
                (takeover, predecessor),
                takeover + after_takeover,
            )
        };
        // 9 s session, silent since 4 s before the takeover: fenced 5 s in,
        // not 9 s in.
        assert!(at(Duration::from_secs(4)).is_empty());
        let fenced = at(Duration::from_millis(5100));
        assert!(
            fenced.contains(&MetadataRecord::BrokerFenced { node_id: 2 }),
            "{fenced:?}"
        );
        assert!(!fenced.contains(&MetadataRecord::BrokerFenced { node_id: 3 }));
        // Silent for longer than a session before the takeover: still a
        // quarter of a session after it.
        let long_ago = Some((2, takeover - Duration::from_secs(20)));
        let early = decide_after(
            &image,
            &heard,
            &DUTIES,
            (takeover, long_ago),
            takeover + Duration::from_secs(2),
        );
        assert!(early.is_empty(), "{early:?}");
        let later = decide_after(
            &image,
            &heard,
            &DUTIES,
            (takeover, long_ago),
            takeover + Duration::from_millis(2300),
        );
        assert!(
            later.contains(&MetadataRecord::BrokerFenced { node_id: 2 }),
            "{later:?}"
        );
    }

    #[test]
    fn a_fenced_broker_heard_again_is_unfenced_and_leads_again() {
        let (mut image, _) = cluster();
        image.apply(&MetadataRecord::BrokerFenced { node_id: 2 });
        for record in elect_leaders(&image, false) {
            image.apply(&record);
        }
        let start = Instant::now();
        let none = BTreeMap::new();
        assert!(
            decide(&image, &none, &DUTIES, start, start).is_empty(),
            "not unfenced before it is heard from"
        );
        let heard = BTreeMap::from([(2, start)]);
        let records = decide(&image, &heard, &DUTIES, start, start);
        assert_eq!(records[0], MetadataRecord::BrokerUnfenced { node_id: 2 });
        assert!(matches!(
            records[1],
            MetadataRecord::PartitionChanged { leader: 2, .. }
        ));
    }
}
