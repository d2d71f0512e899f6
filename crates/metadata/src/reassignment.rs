//! Partition reassignment (KIP-455), as pure functions of the image: a
//! reassignment adds its target replicas to the partition (they fetch
//! from the leader like any follower) and, once every target replica is
//! in the ISR, the controller drops the replicas it removes, moving the
//! leadership first if the leader is one of them. Until then it can be
//! replaced by another target or cancelled, back to the replicas it began
//! with. Records are appended by the controller (AlterPartitionReassignments)
//! and by its duties (completion).

use crate::image::{MetadataImage, PartitionImage};
use crate::record::MetadataRecord;
use uuid::Uuid;

/// Why a reassignment is refused (Kafka's errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReassignError {
    #[error("the partition does not exist")]
    UnknownPartition,
    #[error("no reassignment is in progress for this partition")]
    NoReassignmentInProgress,
    #[error("{0}")]
    InvalidAssignment(String),
    #[error("the replication factor would change from {from} to {to}, but allowReplicationFactorChange is false")]
    ReplicationFactorChange { from: usize, to: usize },
}

/// Starts (or replaces) the reassignment of `partition` to `target`, or
/// cancels the one in progress (`target` `None`): the records to append,
/// including its completion when the target is in sync already.
pub fn reassign(
    image: &MetadataImage,
    topic_id: Uuid,
    partition: i32,
    target: Option<&[i32]>,
    allow_replication_factor_change: bool,
) -> Result<Vec<MetadataRecord>, ReassignError> {
    let current =
        partition_of(image, topic_id, partition).ok_or(ReassignError::UnknownPartition)?;
    let original = current.original_replicas();
    let (replicas, adding, removing) = match target {
        None => {
            if !current.reassigning() {
                return Err(ReassignError::NoReassignmentInProgress);
            }
            (original, Vec::new(), Vec::new())
        }
        Some(target) => {
            check_target(image, target)?;
            if !allow_replication_factor_change && target.len() != original.len() {
                return Err(ReassignError::ReplicationFactorChange {
                    from: original.len(),
                    to: target.len(),
                });
            }
            let adding: Vec<i32> = without(target, &original);
            let removing: Vec<i32> = without(&original, target);
            let mut replicas = target.to_vec();
            replicas.extend(&removing);
            (replicas, adding, removing)
        }
    };
    if replicas == current.replicas && adding == current.adding && removing == current.removing {
        return Ok(Vec::new());
    }
    let mut records = vec![MetadataRecord::PartitionReassigned {
        topic_id,
        partition,
        replicas,
        adding,
        removing,
    }];
    let mut next = image.clone();
    next.apply(&records[0]);
    let aligned = align(&next, topic_id, partition).ok_or_else(|| {
        ReassignError::InvalidAssignment(
            "no in-sync replica would be left: the acknowledged records are only on replicas this change drops"
                .to_string(),
        )
    })?;
    if let Some(change) = aligned {
        next.apply(&change);
        records.push(change);
    }
    records.extend(complete(&next, topic_id, partition));
    Ok(records)
}

/// Completes every reassignment whose target replicas are all in sync.
pub fn complete_reassignments(image: &MetadataImage) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics() {
        for (index, _) in topic.partitions.iter().enumerate() {
            let index = i32::try_from(index).unwrap_or(i32::MAX);
            records.extend(complete(image, topic.id, index));
        }
    }
    records
}

/// The records that finish `partition`'s reassignment, if its target is
/// in sync: the replica set becomes the target, the removed replicas
/// leave the ISR, and a removed leader hands over to a target replica.
fn complete(image: &MetadataImage, topic_id: Uuid, partition: i32) -> Vec<MetadataRecord> {
    let Some(p) = partition_of(image, topic_id, partition) else {
        return Vec::new();
    };
    let target = p.target_replicas();
    if !p.reassigning() || !target.iter().all(|r| p.isr.contains(r)) {
        return Vec::new();
    }
    let finished = MetadataRecord::PartitionReassigned {
        topic_id,
        partition,
        replicas: target,
        adding: Vec::new(),
        removing: Vec::new(),
    };
    let mut next = image.clone();
    next.apply(&finished);
    let mut records = vec![finished];
    // The target is in the ISR, so an in-sync replica remains.
    if let Some(Some(change)) = align(&next, topic_id, partition) {
        records.push(change);
    }
    records
}

/// Keeps the ISR within the replicas and the leader within the ISR: the
/// change that does (a new leader epoch when the leader moves), `Some(None)`
/// when none is needed, `None` when no in-sync replica would remain.
fn align(image: &MetadataImage, topic_id: Uuid, partition: i32) -> Option<Option<MetadataRecord>> {
    let p = partition_of(image, topic_id, partition)?;
    let isr: Vec<i32> = p
        .replicas
        .iter()
        .copied()
        .filter(|r| p.isr.contains(r))
        .collect();
    if isr.is_empty() {
        return None;
    }
    let (leader, leader_epoch) = if isr.contains(&p.leader) {
        (p.leader, p.leader_epoch)
    } else {
        let usable = isr.iter().copied().find(|r| image.broker_usable(*r));
        (usable.unwrap_or(-1), p.leader_epoch + 1)
    };
    let mut sorted_isr = isr.clone();
    sorted_isr.sort_unstable();
    let mut sorted_current = p.isr.clone();
    sorted_current.sort_unstable();
    if leader == p.leader && sorted_isr == sorted_current {
        return Some(None);
    }
    Some(Some(MetadataRecord::PartitionChanged {
        topic_id,
        partition,
        leader,
        leader_epoch,
        isr,
    }))
}

fn check_target(image: &MetadataImage, target: &[i32]) -> Result<(), ReassignError> {
    let invalid = |why: String| Err(ReassignError::InvalidAssignment(why));
    if target.is_empty() {
        return invalid("the target replica list is empty".to_string());
    }
    for (i, replica) in target.iter().enumerate() {
        if target[..i].contains(replica) {
            return invalid(format!("broker {replica} is listed twice"));
        }
        if !image.brokers.contains_key(replica) {
            return invalid(format!("broker {replica} is not registered"));
        }
    }
    Ok(())
}

fn partition_of(image: &MetadataImage, topic_id: Uuid, partition: i32) -> Option<&PartitionImage> {
    image
        .topic_by_id(&topic_id)?
        .partitions
        .get(usize::try_from(partition).ok()?)
}

/// `of` without the members of `minus`, in order.
fn without(of: &[i32], minus: &[i32]) -> Vec<i32> {
    of.iter().copied().filter(|r| !minus.contains(r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::BrokerEndpoint;
    use std::collections::BTreeMap;

    fn image_with(brokers: i32, assignment: Vec<i32>) -> (MetadataImage, Uuid) {
        let mut image = MetadataImage::default();
        for node_id in 1..=brokers {
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
        let id = Uuid::new_v4();
        image.apply(&MetadataRecord::TopicCreated {
            name: "t".into(),
            id,
            partitions: 1,
            replicas: Vec::new(),
            assignments: vec![assignment],
            configs: BTreeMap::new(),
        });
        (image, id)
    }

    /// Reassigns and applies what that appends.
    fn moved(image: &mut MetadataImage, id: Uuid, target: Option<&[i32]>) {
        let records = reassign(image, id, 0, target, true).unwrap();
        apply(image, &records);
    }

    fn apply(image: &mut MetadataImage, records: &[MetadataRecord]) {
        for record in records {
            image.apply(record);
        }
    }

    fn part(image: &MetadataImage, id: Uuid) -> PartitionImage {
        image.topic_by_id(&id).unwrap().partitions[0].clone()
    }

    /// The leader admits a caught-up follower (what AlterPartition does).
    fn join_isr(image: &mut MetadataImage, id: Uuid, replica: i32) {
        let p = part(image, id);
        let mut isr = p.isr.clone();
        isr.push(replica);
        image.apply(&MetadataRecord::PartitionChanged {
            topic_id: id,
            partition: 0,
            leader: p.leader,
            leader_epoch: p.leader_epoch,
            isr,
        });
    }

    #[test]
    fn a_move_adds_first_and_removes_once_the_target_is_in_sync() {
        let (mut image, id) = image_with(3, vec![1]);
        let records = reassign(&image, id, 0, Some(&[2, 3]), true).unwrap();
        apply(&mut image, &records);
        let p = part(&image, id);
        assert_eq!(
            (p.replicas.clone(), p.adding.clone(), p.removing.clone()),
            (vec![2, 3, 1], vec![2, 3], vec![1])
        );
        assert_eq!(
            (p.leader, p.isr.clone()),
            (1, vec![1]),
            "the leader stays meanwhile"
        );
        assert!(
            complete_reassignments(&image).is_empty(),
            "nothing in sync yet"
        );
        join_isr(&mut image, id, 2);
        assert!(
            complete_reassignments(&image).is_empty(),
            "3 is not in sync yet"
        );
        join_isr(&mut image, id, 3);
        let records = complete_reassignments(&image);
        apply(&mut image, &records);
        let p = part(&image, id);
        assert_eq!(p.replicas, vec![2, 3]);
        assert!(!p.reassigning());
        assert_eq!(
            (p.leader, p.leader_epoch),
            (2, 1),
            "the removed leader handed over"
        );
        assert_eq!(p.isr, vec![2, 3]);
        assert!(complete_reassignments(&image).is_empty());
    }

    #[test]
    fn a_cancel_goes_back_to_the_original_replicas() {
        let (mut image, id) = image_with(3, vec![1, 2]);
        moved(&mut image, id, Some(&[1, 3]));
        join_isr(&mut image, id, 3);
        let p = part(&image, id);
        assert_eq!(p.replicas, vec![1, 3, 2]);
        assert!(p.reassigning(), "completing is the duties' job");
        moved(&mut image, id, None);
        let p = part(&image, id);
        assert_eq!(
            (p.replicas.clone(), p.isr.clone()),
            (vec![1, 2], vec![1, 2])
        );
        assert!(!p.reassigning());
        assert_eq!(
            reassign(&image, id, 0, None, true),
            Err(ReassignError::NoReassignmentInProgress)
        );
    }

    #[test]
    fn a_shrink_of_in_sync_replicas_completes_at_once() {
        let (mut image, id) = image_with(3, vec![1, 2, 3]);
        moved(&mut image, id, Some(&[3, 2]));
        let p = part(&image, id);
        assert_eq!(p.replicas, vec![3, 2]);
        assert!(!p.reassigning());
        assert_eq!(
            (p.leader, p.leader_epoch, p.isr.clone()),
            (3, 1, vec![3, 2])
        );
    }

    #[test]
    fn bad_targets_are_refused() {
        let (image, id) = image_with(3, vec![1]);
        let invalid = |target: &[i32]| {
            matches!(
                reassign(&image, id, 0, Some(target), true),
                Err(ReassignError::InvalidAssignment(_))
            )
        };
        assert!(invalid(&[]));
        assert!(invalid(&[2, 2]));
        assert!(invalid(&[2, 9]));
        assert_eq!(
            reassign(&image, id, 0, Some(&[2, 3]), false),
            Err(ReassignError::ReplicationFactorChange { from: 1, to: 2 })
        );
        assert_eq!(
            reassign(&image, id, 7, Some(&[2]), true),
            Err(ReassignError::UnknownPartition)
        );
        assert_eq!(
            reassign(&image, Uuid::new_v4(), 0, Some(&[2]), true),
            Err(ReassignError::UnknownPartition)
        );
    }

    #[test]
    fn a_replaced_reassignment_drops_replicas_only_it_added() {
        let (mut image, id) = image_with(4, vec![1]);
        moved(&mut image, id, Some(&[2]));
        join_isr(&mut image, id, 2);
        // Replaced before the duties completed it: 2 goes, 3 comes.
        moved(&mut image, id, Some(&[3]));
        let p = part(&image, id);
        assert_eq!(
            (p.replicas.clone(), p.adding.clone()),
            (vec![3, 1], vec![3])
        );
        assert_eq!(p.isr, vec![1], "2 left the ISR with the replica set");
    }
}
