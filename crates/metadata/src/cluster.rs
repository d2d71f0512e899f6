//! The controller's cluster decisions, as pure functions of the image:
//! where new partitions go, and who leads each partition once brokers are
//! fenced or come back. The controller duties task (`duties.rs`) runs them
//! on the active controller and appends what they return.

use crate::image::MetadataImage;
use crate::record::MetadataRecord;

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

/// Leader changes that bring every partition in line with which brokers
/// are usable: a partition whose leader is fenced or gone (or that has
/// none) is led by the first usable member of its ISR, with a new leader
/// epoch; with none usable it has no leader (-1) until one comes back.
/// Only in-sync replicas are elected (`unclean.leader.election.enable`
/// is false), so no acknowledged record is lost by an election.
pub fn elect_leaders(image: &MetadataImage) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics() {
        for (index, p) in topic.partitions.iter().enumerate() {
            if p.leader >= 0 && image.broker_usable(p.leader) {
                continue;
            }
            let leader = p
                .isr
                .iter()
                .copied()
                .find(|b| image.broker_usable(*b))
                .unwrap_or(-1);
            if leader == p.leader {
                continue;
            }
            records.push(MetadataRecord::PartitionChanged {
                topic_id: topic.id,
                partition: i32::try_from(index).unwrap_or(i32::MAX),
                leader,
                leader_epoch: p.leader_epoch.saturating_add(1),
                isr: p.isr.clone(),
            });
        }
    }
    records
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
        let records = elect_leaders(&image);
        assert_eq!(
            records,
            vec![MetadataRecord::PartitionChanged {
                topic_id: id,
                partition: 0,
                leader: 2,
                leader_epoch: 1,
                isr: vec![1, 2],
            }]
        );
        for r in &records {
            image.apply(r);
        }
        assert!(elect_leaders(&image).is_empty(), "settled");
    }

    #[test]
    fn a_partition_without_a_usable_replica_goes_leaderless_and_comes_back() {
        let mut image = three_brokers();
        create(&mut image, vec![vec![3]]);
        image.apply(&MetadataRecord::BrokerFenced { node_id: 3 });
        let records = elect_leaders(&image);
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
        assert!(elect_leaders(&image).is_empty(), "no leader to elect yet");
        image.apply(&MetadataRecord::BrokerUnfenced { node_id: 3 });
        let records = elect_leaders(&image);
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
    fn a_registration_gets_a_new_larger_epoch_each_time() {
        let mut image = three_brokers();
        let first = image.brokers[&2].epoch;
        register(&mut image, 2);
        assert!(image.brokers[&2].epoch > first);
    }
}
