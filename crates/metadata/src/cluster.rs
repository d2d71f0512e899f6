//! The controller's cluster decisions, as pure functions of the image:
//! where new partitions go, and who leads each partition once brokers are
//! fenced or come back. The controller duties task (`duties.rs`) runs them
//! on the active controller and appends what they return.

use crate::image::MetadataImage;
use crate::record::MetadataRecord;

/// The topic setting that allows electing a replica outside the ISR.
const UNCLEAN: &str = "unclean.leader.election.enable";

/// Brokers that may be given new replicas: registered and not fenced, by
/// node id.
pub fn usable_brokers(image: &MetadataImage) -> Vec<i32> {
    image
        .brokers
        .iter()
        .filter(|(_, b)| !b.fenced)
        .map(|(id, _)| *id)
        .collect()
}

/// Places `partitions` new partitions of `replication_factor` replicas on
/// `brokers` (the usable ones, sorted), round robin from `start` (Kafka starts at a random
/// broker so that topics do not all lead on the first one). Each
/// partition's first replica is its preferred leader. Err names how many
/// brokers there are when there are too few.
pub fn place_replicas(
    brokers: &[i32],
    partitions: i32,
    replication_factor: i16,
    start: usize,
) -> Result<Vec<Vec<i32>>, usize> {
    let factor = usize::try_from(replication_factor).unwrap_or(0);
    if brokers.is_empty() || factor > brokers.len() {
        return Err(brokers.len());
    }
    Ok((0..usize::try_from(partitions).unwrap_or(0))
        .map(|p| {
            (0..factor)
                .map(|r| brokers[(start + p + r) % brokers.len()])
                .collect()
        })
        .collect())
}

/// Leader and ISR changes that bring every partition in line with which
/// brokers are usable (Kafka's fencing updates): a fenced or gone broker
/// leaves every ISR it is in, unless it is the last member (then the ISR
/// keeps it, so that it can lead again when it comes back with the
/// acknowledged data); a partition whose leader is fenced or gone (or that
/// has none) is led by the first usable member of its ISR, with a new
/// leader epoch; with none usable it has no leader (-1) until one comes
/// back. Only in-sync replicas are elected (`unclean.leader.election.enable`
/// is false), so no acknowledged record is lost by an election.
///
/// A topic with `unclean.leader.election.enable=true` (its own setting, else
/// the cluster's dynamic default, else `unclean_default`, the broker's
/// static one) whose ISR has no usable member is led by its first usable
/// replica instead, alone in the ISR: available again, at the cost of the
/// records only the lost ISR had.
pub fn elect_leaders(image: &MetadataImage, unclean_default: bool) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics() {
        let unclean = topic
            .configs
            .get(UNCLEAN)
            .or_else(|| image.broker_configs.get(UNCLEAN))
            .map_or(unclean_default, |v| v.trim().eq_ignore_ascii_case("true"));
        for (index, p) in topic.partitions.iter().enumerate() {
            let usable: Vec<i32> = p
                .isr
                .iter()
                .copied()
                .filter(|b| image.broker_usable(*b))
                .collect();
            let isr = if usable.is_empty() {
                p.isr.clone()
            } else {
                usable
            };
            let mut isr = isr;
            let leader = if p.leader >= 0 && image.broker_usable(p.leader) {
                p.leader
            } else {
                let clean = isr.iter().copied().find(|b| image.broker_usable(*b));
                let last_resort = || {
                    p.replicas
                        .iter()
                        .copied()
                        .find(|b| unclean && image.broker_usable(*b))
                };
                match clean {
                    Some(leader) => leader,
                    None => match last_resort() {
                        Some(leader) => {
                            isr = vec![leader];
                            leader
                        }
                        None => -1,
                    },
                }
            };
            if leader == p.leader && isr == p.isr {
                continue;
            }
            let leader_epoch = if leader == p.leader {
                p.leader_epoch
            } else {
                p.leader_epoch.saturating_add(1)
            };
            records.push(MetadataRecord::PartitionChanged {
                topic_id: topic.id,
                partition: i32::try_from(index).unwrap_or(i32::MAX),
                leader,
                leader_epoch,
                isr,
            });
        }
    }
    records
}

/// Kafka's automatic preferred leader election
/// (`auto.leader.rebalance.enable`): every partition not led by its
/// preferred replica (the first) goes back to it, with a new leader epoch,
/// where that replica is usable and in the ISR. So a broker that restarted
/// leads its partitions again once it has caught up.
pub fn preferred_leaders(image: &MetadataImage) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics() {
        for (index, p) in topic.partitions.iter().enumerate() {
            let Some(&first) = p.replicas.first() else {
                continue;
            };
            if p.leader != first && p.isr.contains(&first) && image.broker_usable(first) {
                records.push(MetadataRecord::PartitionChanged {
                    topic_id: topic.id,
                    partition: i32::try_from(index).unwrap_or(i32::MAX),
                    leader: first,
                    leader_epoch: p.leader_epoch.saturating_add(1),
                    isr: p.isr.clone(),
                });
            }
        }
    }
    records
}

/// What an ElectLeaders request asks for (Kafka's `ElectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// Move leadership to the first replica, if it is in sync.
    Preferred,
    /// Give a partition without a leader one, from outside the ISR if
    /// need be (losing what only the lost ISR had).
    Unclean,
}

/// Why ElectLeaders elects nobody for a partition (Kafka's errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElectionRefusal {
    #[error("the partition does not exist")]
    UnknownPartition,
    /// The preferred replica leads already, or (unclean) a leader exists.
    #[error("the partition needs no election")]
    NotNeeded,
    #[error("the preferred leader {0} is not an in-sync, live replica")]
    PreferredNotAvailable(i32),
    #[error("no replica of the partition is live")]
    EligibleNotAvailable,
}

/// ElectLeaders for `partition` of the topic with `topic_id`: the record
/// that moves its leadership (a new leader epoch), or why there is none.
pub fn elect_leader(
    image: &MetadataImage,
    topic_id: uuid::Uuid,
    partition: i32,
    kind: ElectionType,
) -> Result<MetadataRecord, ElectionRefusal> {
    let current = image
        .topic_by_id(&topic_id)
        .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
        .ok_or(ElectionRefusal::UnknownPartition)?;
    let changed = |leader: i32, isr: Vec<i32>| MetadataRecord::PartitionChanged {
        topic_id,
        partition,
        leader,
        leader_epoch: current.leader_epoch.saturating_add(1),
        isr,
    };
    match kind {
        ElectionType::Preferred => {
            let preferred = *current
                .replicas
                .first()
                .ok_or(ElectionRefusal::EligibleNotAvailable)?;
            if current.leader == preferred {
                Err(ElectionRefusal::NotNeeded)
            } else if current.isr.contains(&preferred) && image.broker_usable(preferred) {
                Ok(changed(preferred, current.isr.clone()))
            } else {
                Err(ElectionRefusal::PreferredNotAvailable(preferred))
            }
        }
        ElectionType::Unclean => {
            if current.leader >= 0 && image.broker_usable(current.leader) {
                return Err(ElectionRefusal::NotNeeded);
            }
            let live = |b: &i32| image.broker_usable(*b);
            if let Some(clean) = current.isr.iter().copied().find(live) {
                let isr = current.isr.iter().copied().filter(live).collect();
                return Ok(changed(clean, isr));
            }
            let unclean = current
                .replicas
                .iter()
                .copied()
                .find(live)
                .ok_or(ElectionRefusal::EligibleNotAvailable)?;
            Ok(changed(unclean, vec![unclean]))
        }
    }
}

/// Why a leader's ISR change is refused (Kafka's AlterPartition errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsrChangeError {
    #[error("the partition does not exist")]
    UnknownPartition,
    /// The partition has another leader or a newer leader epoch now: the
    /// requester learns it from the metadata and stops acting as leader.
    #[error("broker {requester} at leader epoch {epoch} no longer leads this partition (leader {leader}, epoch {current})")]
    FencedLeaderEpoch {
        requester: i32,
        epoch: i32,
        leader: i32,
        current: i32,
    },
    /// A proposed member is not a replica, or is fenced or unregistered.
    #[error("broker {0} cannot join the ISR: it is not a usable replica of the partition")]
    IneligibleReplica(i32),
    /// The ISR must hold its leader.
    #[error("the new ISR does not contain its leader")]
    LeaderNotInIsr,
}

/// Validates an ISR change a partition leader asks for (AlterPartition,
/// KIP-497) against the latest image: the record to append, or none when
/// the ISR already is `isr`.
pub fn change_isr(
    image: &MetadataImage,
    topic_id: uuid::Uuid,
    partition: i32,
    leader: i32,
    leader_epoch: i32,
    isr: &[i32],
) -> Result<Option<MetadataRecord>, IsrChangeError> {
    let current = image
        .topic_by_id(&topic_id)
        .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
        .ok_or(IsrChangeError::UnknownPartition)?;
    if current.leader != leader || current.leader_epoch != leader_epoch {
        return Err(IsrChangeError::FencedLeaderEpoch {
            requester: leader,
            epoch: leader_epoch,
            leader: current.leader,
            current: current.leader_epoch,
        });
    }
    if !isr.contains(&leader) {
        return Err(IsrChangeError::LeaderNotInIsr);
    }
    let added = isr.iter().filter(|b| !current.isr.contains(b));
    if let Some(bad) = added
        .copied()
        .find(|b| !current.replicas.contains(b) || !image.broker_usable(*b))
    {
        return Err(IsrChangeError::IneligibleReplica(bad));
    }
    let mut sorted_new = isr.to_vec();
    sorted_new.sort_unstable();
    sorted_new.dedup();
    let mut sorted_old = current.isr.clone();
    sorted_old.sort_unstable();
    if sorted_new == sorted_old {
        return Ok(None);
    }
    // In replica order, as Kafka lists an ISR.
    let ordered = current
        .replicas
        .iter()
        .copied()
        .filter(|r| sorted_new.contains(r))
        .collect();
    Ok(Some(MetadataRecord::PartitionChanged {
        topic_id,
        partition,
        leader,
        leader_epoch,
        isr: ordered,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::BrokerEndpoint;
    use std::collections::BTreeMap;
    use uuid::Uuid;

    fn register(image: &mut MetadataImage, node_id: i32) {
        image.apply(&MetadataRecord::BrokerRegistered {
            node_id,
            incarnation_id: Uuid::new_v4(),
            endpoints: vec![BrokerEndpoint {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9000 + node_id as u16,
            }],
            rack: None,
        });
    }

    fn three_brokers() -> MetadataImage {
        let mut image = MetadataImage::default();
        for id in 1..=3 {
            register(&mut image, id);
        }
        image
    }

    fn create(image: &mut MetadataImage, assignments: Vec<Vec<i32>>) -> Uuid {
        let id = Uuid::new_v4();
        image.apply(&MetadataRecord::TopicCreated {
            name: "t".into(),
            id,
            partitions: assignments.len() as i32,
            replicas: Vec::new(),
            assignments,
            configs: BTreeMap::new(),
        });
        id
    }

    #[test]
    fn elect_leaders_moves_to_the_preferred_replica_only_when_it_is_in_sync() {
        let mut image = three_brokers();
        let id = create(&mut image, vec![vec![1, 2, 3]]);
        let preferred = |image: &MetadataImage| elect_leader(image, id, 0, ElectionType::Preferred);
        assert_eq!(preferred(&image), Err(ElectionRefusal::NotNeeded));
        // Leadership moved to 2 (1 was fenced and came back, out of sync).
        image.apply(&MetadataRecord::PartitionChanged {
            topic_id: id,
            partition: 0,
            leader: 2,
            leader_epoch: 1,
            isr: vec![2, 3],
        });
        assert_eq!(
            preferred(&image),
            Err(ElectionRefusal::PreferredNotAvailable(1))
        );
        image.apply(&MetadataRecord::PartitionChanged {
            topic_id: id,
            partition: 0,
            leader: 2,
            leader_epoch: 1,
            isr: vec![1, 2, 3],
        });
        assert_eq!(
            preferred(&image),
            Ok(MetadataRecord::PartitionChanged {
                topic_id: id,
                partition: 0,
                leader: 1,
                leader_epoch: 2,
                isr: vec![1, 2, 3],
            })
        );
        assert_eq!(
            elect_leader(&image, id, 7, ElectionType::Preferred),
            Err(ElectionRefusal::UnknownPartition)
        );
    }

    #[test]
    fn an_unclean_election_needs_a_leaderless_partition_and_prefers_the_isr() {
        let mut image = three_brokers();
        let id = create(&mut image, vec![vec![1, 2, 3]]);
        let unclean = |image: &MetadataImage| elect_leader(image, id, 0, ElectionType::Unclean);
        assert_eq!(unclean(&image), Err(ElectionRefusal::NotNeeded));
        // The only in-sync replica is gone: no leader.
        image.apply(&MetadataRecord::PartitionChanged {
            topic_id: id,
            partition: 0,
            leader: -1,
            leader_epoch: 4,
            isr: vec![1],
        });
        image.apply(&MetadataRecord::BrokerFenced { node_id: 1 });
        assert_eq!(
            unclean(&image),
            Ok(MetadataRecord::PartitionChanged {
                topic_id: id,
                partition: 0,
                leader: 2,
                leader_epoch: 5,
                isr: vec![2],
            })
        );
        image.apply(&MetadataRecord::BrokerFenced { node_id: 2 });
        image.apply(&MetadataRecord::BrokerFenced { node_id: 3 });
        assert_eq!(unclean(&image), Err(ElectionRefusal::EligibleNotAvailable));
    }

    #[test]
    fn placement_spreads_partitions_and_replicas_round_robin() {
        let image = three_brokers();
        assert_eq!(
            place_replicas(&usable_brokers(&image), 4, 2, 1),
            Ok(vec![vec![2, 3], vec![3, 1], vec![1, 2], vec![2, 3]])
        );
        assert_eq!(place_replicas(&usable_brokers(&image), 1, 4, 0), Err(3));
    }

    #[test]
    fn fenced_brokers_get_no_new_replicas() {
        let mut image = three_brokers();
        image.apply(&MetadataRecord::BrokerFenced { node_id: 2 });
        assert_eq!(
            place_replicas(&usable_brokers(&image), 2, 1, 0),
            Ok(vec![vec![1], vec![3]])
        );
    }

    #[test]
    fn a_fenced_leader_is_replaced_by_a_usable_isr_member() {
        let mut image = three_brokers();
        let id = create(&mut image, vec![vec![1, 2], vec![2, 3]]);
        image.apply(&MetadataRecord::BrokerFenced { node_id: 1 });
        let records = elect_leaders(&image, false);
        assert_eq!(
            records,
            vec![MetadataRecord::PartitionChanged {
                topic_id: id,
                partition: 0,
                leader: 2,
                leader_epoch: 1,
                isr: vec![2],
            }]
        );
        for r in &records {
            image.apply(r);
        }
        assert!(elect_leaders(&image, false).is_empty(), "settled");
    }

    #[test]
    fn a_partition_without_a_usable_replica_goes_leaderless_and_comes_back() {
        let mut image = three_brokers();
        create(&mut image, vec![vec![3]]);
        image.apply(&MetadataRecord::BrokerFenced { node_id: 3 });
        let records = elect_leaders(&image, false);
        assert!(
            matches!(
                &records[..],
                [MetadataRecord::PartitionChanged {
                    leader: -1,
                    leader_epoch: 1,
                    ..
                }]
            ),
            "{records:?}"
        );
        image.apply(&records[0]);
        assert!(
            elect_leaders(&image, false).is_empty(),
            "no leader to elect yet"
        );
        image.apply(&MetadataRecord::BrokerUnfenced { node_id: 3 });
        let records = elect_leaders(&image, false);
        assert!(
            matches!(
                &records[..],
                [MetadataRecord::PartitionChanged {
                    leader: 3,
                    leader_epoch: 2,
                    ..
                }]
            ),
            "{records:?}"
        );
    }

    #[test]
    fn a_fenced_follower_leaves_the_isr_and_the_leader_keeps_its_epoch() {
        let mut image = three_brokers();
        let id = create(&mut image, vec![vec![1, 2, 3]]);
        image.apply(&MetadataRecord::BrokerFenced { node_id: 3 });
        assert_eq!(
            elect_leaders(&image, false),
            vec![MetadataRecord::PartitionChanged {
                topic_id: id,
                partition: 0,
                leader: 1,
                leader_epoch: 0,
                isr: vec![1, 2],
            }]
        );
    }

    #[test]
    fn isr_changes_are_checked_against_the_leader_and_its_epoch() {
        let mut image = three_brokers();
        let id = create(&mut image, vec![vec![1, 2, 3]]);
        assert_eq!(
            change_isr(&image, id, 0, 1, 0, &[1, 3]),
            Ok(Some(MetadataRecord::PartitionChanged {
                topic_id: id,
                partition: 0,
                leader: 1,
                leader_epoch: 0,
                isr: vec![1, 3],
            }))
        );
        assert_eq!(change_isr(&image, id, 0, 1, 0, &[3, 2, 1]), Ok(None));
        assert!(matches!(
            change_isr(&image, id, 0, 2, 0, &[2]),
            Err(IsrChangeError::FencedLeaderEpoch { .. })
        ));
        assert!(matches!(
            change_isr(&image, id, 0, 1, 1, &[1]),
            Err(IsrChangeError::FencedLeaderEpoch { .. })
        ));
        assert_eq!(
            change_isr(&image, id, 0, 1, 0, &[2, 3]),
            Err(IsrChangeError::LeaderNotInIsr)
        );
        assert_eq!(
            change_isr(&image, id, 1, 1, 0, &[1]),
            Err(IsrChangeError::UnknownPartition)
        );
        image.apply(&MetadataRecord::PartitionChanged {
            topic_id: id,
            partition: 0,
            leader: 1,
            leader_epoch: 0,
            isr: vec![1],
        });
        image.apply(&MetadataRecord::BrokerFenced { node_id: 2 });
        assert_eq!(
            change_isr(&image, id, 0, 1, 0, &[1, 2]),
            Err(IsrChangeError::IneligibleReplica(2))
        );
    }

    #[test]
    fn unclean_election_takes_a_live_replica_outside_the_isr_only_when_enabled() {
        let mut image = three_brokers();
        let id = create(&mut image, vec![vec![1, 2]]);
        image.apply(&MetadataRecord::PartitionChanged {
            topic_id: id,
            partition: 0,
            leader: 1,
            leader_epoch: 0,
            isr: vec![1],
        });
        image.apply(&MetadataRecord::BrokerFenced { node_id: 1 });
        let clean = elect_leaders(&image, false);
        assert!(
            matches!(
                &clean[..],
                [MetadataRecord::PartitionChanged { leader: -1, .. }]
            ),
            "{clean:?}"
        );
        image.apply(&MetadataRecord::TopicConfigChanged {
            topic_id: id,
            changes: BTreeMap::from([(UNCLEAN.to_string(), Some("true".to_string()))]),
        });
        assert_eq!(
            elect_leaders(&image, false),
            vec![MetadataRecord::PartitionChanged {
                topic_id: id,
                partition: 0,
                leader: 2,
                leader_epoch: 1,
                isr: vec![2],
            }]
        );
    }

    #[test]
    fn leadership_goes_back_to_preferred_replicas_beyond_the_imbalance() {
        let mut image = three_brokers();
        let id = create(&mut image, vec![vec![1, 2], vec![1, 3], vec![2, 1]]);
        for partition in 0..2 {
            image.apply(&MetadataRecord::PartitionChanged {
                topic_id: id,
                partition,
                leader: if partition == 0 { 2 } else { 3 },
                leader_epoch: 4,
                isr: if partition == 0 { vec![2, 1] } else { vec![3] },
            });
        }
        // Broker 1 prefers two partitions and leads neither; only
        // partition 0 has it in its ISR.
        assert_eq!(
            preferred_leaders(&image),
            vec![MetadataRecord::PartitionChanged {
                topic_id: id,
                partition: 0,
                leader: 1,
                leader_epoch: 5,
                isr: vec![2, 1],
            }]
        );
    }

    #[test]
    fn a_registration_gets_a_new_larger_epoch_each_time() {
        let mut image = three_brokers();
        let first = image.brokers[&2].epoch;
        register(&mut image, 2);
        assert!(image.brokers[&2].epoch > first);
    }
}
