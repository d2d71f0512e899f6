//! Server-side partition assignors of the KIP-848 consumer protocol
//! (`group.consumer.assignors`): `uniform` (the default) spreads partitions
//! evenly and keeps each member's partitions where it can, so a member
//! joining or leaving moves as few partitions as possible; `range` gives
//! each member contiguous ranges of every topic it subscribes to.
//!
//! Assignors are pure functions of the members' subscriptions, their
//! current target assignments and the topics' partition counts.

use std::collections::{BTreeMap, BTreeSet};
use uuid::Uuid;

/// One partition, named by topic id as KIP-848 assignments name it.
pub(crate) type TopicPartition = (Uuid, i32);

/// A set of partitions (a member's assignment, owned or target).
pub(crate) type Partitions = BTreeSet<TopicPartition>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Assignor {
    Uniform,
    Range,
}

/// What an assignor knows about one member.
pub(crate) struct MemberSpec<'a> {
    pub(crate) subscribed: BTreeSet<Uuid>,
    /// The member's previous target assignment, which `uniform` keeps.
    pub(crate) current: &'a Partitions,
}

impl Assignor {
    /// By the name `group.consumer.assignors` and `server_assignor` use.
    pub(crate) fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "uniform" => Some(Assignor::Uniform),
            "range" => Some(Assignor::Range),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    /// The target assignment of every member; `topics` maps topic id to
    /// partition count for every topic someone subscribes to.
    pub(crate) fn assign(
        self,
        members: &BTreeMap<String, MemberSpec<'_>>,
        topics: &BTreeMap<Uuid, i32>,
    ) -> BTreeMap<String, Partitions> {
        match self {
            Assignor::Uniform => uniform(members, topics),
            Assignor::Range => range(members, topics),
        }
    }
}

/// Per topic, the subscribed members in id order split the partitions into
/// contiguous ranges; the first `count % members` ranges are one larger.
fn range(
    members: &BTreeMap<String, MemberSpec<'_>>,
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Partitions> {
    let mut result: BTreeMap<String, Partitions> = members
        .keys()
        .map(|id| (id.clone(), Partitions::new()))
        .collect();
    for (&topic, &count) in topics {
        let subscribers: Vec<&String> = members
            .iter()
            .filter(|(_, m)| m.subscribed.contains(&topic))
            .map(|(id, _)| id)
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        let per_member = count / subscribers.len() as i32;
        let extra = count % subscribers.len() as i32;
        let mut next = 0;
        for (i, id) in subscribers.into_iter().enumerate() {
            let size = per_member + i32::from((i as i32) < extra);
            if let Some(assigned) = result.get_mut(id) {
                assigned.extend((next..next + size).map(|p| (topic, p)));
            }
            next += size;
        }
    }
    result
}

/// Sticky and balanced: members keep what they had (if still subscribed and
/// still existing), free partitions go to the least loaded eligible member,
/// then partitions move one at a time from the most to the least loaded
/// member until no eligible pair differs by more than one.
fn uniform(
    members: &BTreeMap<String, MemberSpec<'_>>,
    topics: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Partitions> {
    let exists = |(topic, partition): &TopicPartition| {
        topics
            .get(topic)
            .is_some_and(|&count| *partition >= 0 && *partition < count)
    };
    let mut result: BTreeMap<String, Partitions> = BTreeMap::new();
    let mut taken = Partitions::new();
    for (id, member) in members {
        let kept: Partitions = member
            .current
            .iter()
            .filter(|tp| exists(tp) && member.subscribed.contains(&tp.0) && !taken.contains(tp))
            .copied()
            .collect();
        taken.extend(kept.iter().copied());
        result.insert(id.clone(), kept);
    }
    let eligible = |id: &str, topic: &Uuid| {
        members
            .get(id)
            .is_some_and(|m| m.subscribed.contains(topic))
    };
    for (&topic, &count) in topics {
        for partition in 0..count {
            let tp = (topic, partition);
            if taken.contains(&tp) {
                continue;
            }
            let least_loaded = result
                .iter_mut()
                .filter(|(id, _)| eligible(id, &topic))
                .min_by_key(|(_, assigned)| assigned.len());
            if let Some((_, assigned)) = least_loaded {
                assigned.insert(tp);
            }
        }
    }
    while let Some((from, to, tp)) = next_move(&result, &eligible) {
        if let Some(assigned) = result.get_mut(&from) {
            assigned.remove(&tp);
        }
        if let Some(assigned) = result.get_mut(&to) {
            assigned.insert(tp);
        }
    }
    result
}

/// The move that best reduces imbalance: a partition of the most loaded
/// member that a member with at least two fewer partitions can take.
fn next_move(
    result: &BTreeMap<String, Partitions>,
    eligible: &impl Fn(&str, &Uuid) -> bool,
) -> Option<(String, String, TopicPartition)> {
    let mut by_load: Vec<(&String, &Partitions)> = result.iter().collect();
    by_load.sort_by_key(|(id, assigned)| (assigned.len(), *id));
    for (from, from_assigned) in by_load.iter().rev() {
        for (to, to_assigned) in &by_load {
            if to_assigned.len() + 1 >= from_assigned.len() {
                break;
            }
            // Take the highest partition: ranges stay contiguous-ish.
            if let Some(tp) = from_assigned.iter().rev().find(|tp| eligible(to, &tp.0)) {
                return Some(((*from).clone(), (*to).clone(), *tp));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn specs<'a>(members: &[(&str, &[u128], &'a Partitions)]) -> BTreeMap<String, MemberSpec<'a>> {
        members
            .iter()
            .map(|(id, topics, current)| {
                (
                    id.to_string(),
                    MemberSpec {
                        subscribed: topics.iter().map(|&t| topic(t)).collect(),
                        current,
                    },
                )
            })
            .collect()
    }

    fn sizes(result: &BTreeMap<String, Partitions>) -> Vec<usize> {
        result.values().map(BTreeSet::len).collect()
    }

    fn all_once(result: &BTreeMap<String, Partitions>, expected: usize) {
        let mut seen = Partitions::new();
        for assigned in result.values() {
            for tp in assigned {
                assert!(seen.insert(*tp), "{tp:?} assigned twice");
            }
        }
        assert_eq!(seen.len(), expected);
    }

    #[test]
    fn uniform_balances_a_fresh_group() {
        let none = Partitions::new();
        let members = specs(&[("a", &[1], &none), ("b", &[1], &none), ("c", &[1], &none)]);
        let result = Assignor::Uniform.assign(&members, &BTreeMap::from([(topic(1), 6)]));
        assert_eq!(sizes(&result), vec![2, 2, 2]);
        all_once(&result, 6);
    }

    #[test]
    fn uniform_moves_the_minimum_when_a_member_joins_or_leaves() {
        let topics = BTreeMap::from([(topic(1), 6), (topic(2), 3)]);
        let none = Partitions::new();
        let three = Assignor::Uniform.assign(
            &specs(&[
                ("a", &[1, 2], &none),
                ("b", &[1, 2], &none),
                ("c", &[1, 2], &none),
            ]),
            &topics,
        );
        assert_eq!(sizes(&three), vec![3, 3, 3]);
        // A fourth member: 9 partitions over 4 is 3,2,2,2; only two move.
        let four = Assignor::Uniform.assign(
            &specs(&[
                ("a", &[1, 2], &three["a"]),
                ("b", &[1, 2], &three["b"]),
                ("c", &[1, 2], &three["c"]),
                ("d", &[1, 2], &none),
            ]),
            &topics,
        );
        all_once(&four, 9);
        assert_eq!(four["d"].len(), 2);
        for id in ["a", "b", "c"] {
            assert!(four[id].is_subset(&three[id]), "{id} only loses partitions");
        }
        // b leaves: a, c and d keep everything and share b's partitions.
        let after = Assignor::Uniform.assign(
            &specs(&[
                ("a", &[1, 2], &four["a"]),
                ("c", &[1, 2], &four["c"]),
                ("d", &[1, 2], &four["d"]),
            ]),
            &topics,
        );
        all_once(&after, 9);
        assert_eq!(sizes(&after), vec![3, 3, 3]);
        for id in ["a", "c", "d"] {
            assert!(four[id].is_subset(&after[id]), "{id} keeps its partitions");
        }
    }

    #[test]
    fn uniform_respects_heterogeneous_subscriptions() {
        let none = Partitions::new();
        let members = specs(&[("a", &[1], &none), ("b", &[1, 2], &none)]);
        let result =
            Assignor::Uniform.assign(&members, &BTreeMap::from([(topic(1), 2), (topic(2), 2)]));
        all_once(&result, 4);
        assert!(result["a"].iter().all(|(t, _)| *t == topic(1)));
        assert_eq!(sizes(&result), vec![2, 2]);
    }

    #[test]
    fn uniform_drops_partitions_of_unsubscribed_or_deleted_topics() {
        let old: Partitions = [(topic(1), 0), (topic(1), 5), (topic(2), 0)].into();
        let members = specs(&[("a", &[1], &old)]);
        let result = Assignor::Uniform.assign(&members, &BTreeMap::from([(topic(1), 2)]));
        assert_eq!(result["a"], [(topic(1), 0), (topic(1), 1)].into());
    }

    #[test]
    fn range_gives_contiguous_ranges_per_topic() {
        let none = Partitions::new();
        let members = specs(&[("a", &[1, 2], &none), ("b", &[1, 2], &none)]);
        let result =
            Assignor::Range.assign(&members, &BTreeMap::from([(topic(1), 3), (topic(2), 2)]));
        assert_eq!(
            result["a"],
            [(topic(1), 0), (topic(1), 1), (topic(2), 0)].into()
        );
        assert_eq!(result["b"], [(topic(1), 2), (topic(2), 1)].into());
    }
}
