//! Client-side assignment for the classic protocol: the consumer protocol's
//! subscription and assignment encodings, and the `range`, `roundrobin` and
//! `cooperative-sticky` assignors the group leader runs.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};

/// Member id -> topic -> partitions.
pub(crate) type GroupAssignment = BTreeMap<String, BTreeMap<String, Vec<i32>>>;

/// The `ConsumerProtocolSubscription` version we write: v2 carries the
/// owned partitions (v1) and the generation they were owned in (v2), which
/// the cooperative-sticky assignor needs.
const SUBSCRIPTION_VERSION: i16 = 2;

/// A member's `ConsumerProtocolSubscription`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Subscription {
    pub(crate) topics: Vec<String>,
    pub(crate) user_data: Option<Bytes>,
    /// Partitions the member owns now (v1+).
    pub(crate) owned: BTreeSet<(String, i32)>,
    /// The generation `owned` comes from; -1 when unknown.
    pub(crate) generation: i32,
}

impl Subscription {
    /// Encodes it as version 2: i16 version, topics, nullable user data,
    /// owned partitions (topic, partitions), i32 generation.
    pub(crate) fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(SUBSCRIPTION_VERSION);
        b.put_i32(self.topics.len() as i32);
        for t in &self.topics {
            put_str(&mut b, t);
        }
        match &self.user_data {
            Some(u) => {
                b.put_i32(u.len() as i32);
                b.put_slice(u);
            }
            None => b.put_i32(-1),
        }
        put_partitions(&mut b, &group_by_topic(&self.owned));
        b.put_i32(self.generation);
        b.freeze()
    }

    /// Decodes any version. Fields a version lacks keep their defaults;
    /// before v2 the generation is read from cooperative-sticky user data
    /// (a lone i32), as the Java assignor writes it.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Subscription> {
        let err = |what: &str| Error::Protocol(format!("consumer subscription: truncated {what}"));
        let mut buf = bytes;
        let version = get_i16(&mut buf).ok_or_else(|| err("version"))?;
        let n = get_len(&mut buf).ok_or_else(|| err("topic count"))?;
        let mut topics = Vec::with_capacity(n.min(1024));
        for _ in 0..n {
            topics.push(get_str(&mut buf).ok_or_else(|| err("topic"))?);
        }
        let mut sub = Subscription {
            topics,
            generation: -1,
            ..Subscription::default()
        };
        if buf.remaining() < 4 {
            return Ok(sub);
        }
        let len = buf.get_i32();
        if len >= 0 {
            let len = len as usize;
            if buf.remaining() < len {
                return Err(err("user data"));
            }
            sub.user_data = Some(Bytes::copy_from_slice(&buf[..len]));
            buf.advance(len);
        }
        if version >= 1 {
            let n = get_len(&mut buf).ok_or_else(|| err("owned partitions"))?;
            for _ in 0..n {
                let topic = get_str(&mut buf).ok_or_else(|| err("owned topic"))?;
                let np = get_len(&mut buf).ok_or_else(|| err("owned partitions"))?;
                if buf.remaining() < np * 4 {
                    return Err(err("owned partitions"));
                }
                for _ in 0..np {
                    sub.owned.insert((topic.clone(), buf.get_i32()));
                }
            }
        }
        if version >= 2 && buf.remaining() >= 4 {
            sub.generation = buf.get_i32();
        } else if let Some(u) = sub.user_data.as_ref().filter(|u| u.len() == 4) {
            sub.generation = i32::from_be_bytes([u[0], u[1], u[2], u[3]]);
        }
        Ok(sub)
    }
}

/// Encodes a `ConsumerProtocolAssignment` v0: i16 version, array of (topic,
/// array of i32 partitions), null user data.
pub(crate) fn encode_assignment(parts: &[(String, Vec<i32>)]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    put_partitions(&mut b, parts);
    b.put_i32(-1);
    b.freeze()
}

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_partitions(b: &mut BytesMut, parts: &[(String, Vec<i32>)]) {
    b.put_i32(parts.len() as i32);
    for (t, ps) in parts {
        put_str(b, t);
        b.put_i32(ps.len() as i32);
        for p in ps {
            b.put_i32(*p);
        }
    }
}

fn get_i16(buf: &mut &[u8]) -> Option<i16> {
    (buf.remaining() >= 2).then(|| buf.get_i16())
}

/// An array length; -1 (null) reads as empty.
fn get_len(buf: &mut &[u8]) -> Option<usize> {
    (buf.remaining() >= 4).then(|| usize::try_from(buf.get_i32()).unwrap_or(0))
}

fn get_str(buf: &mut &[u8]) -> Option<String> {
    let len = usize::try_from(get_i16(buf)?).ok()?;
    if buf.remaining() < len {
        return None;
    }
    let s = String::from_utf8(buf[..len].to_vec()).ok()?;
    buf.advance(len);
    Some(s)
}

/// Topic-partitions grouped per topic, sorted.
pub(crate) fn group_by_topic(parts: &BTreeSet<(String, i32)>) -> Vec<(String, Vec<i32>)> {
    let mut out: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        out.entry(t).or_default().push(*p);
    }
    out.into_iter().map(|(t, ps)| (t.to_string(), ps)).collect()
}

fn empty_assignment<T>(subscriptions: &BTreeMap<String, T>) -> GroupAssignment {
    subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect()
}

/// The range assignor: for each topic, its subscribers sorted by member id
/// get contiguous ranges; the first `partitions % members` get one extra.
/// Every member appears in the result, possibly with nothing.
pub(crate) fn assign_range(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partition_counts: &BTreeMap<String, i32>,
) -> GroupAssignment {
    let mut out = empty_assignment(subscriptions);
    for (topic, &n) in partition_counts {
        let members: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, ts)| ts.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if members.is_empty() {
            continue;
        }
        let per = n / members.len() as i32;
        let extra = n % members.len() as i32;
        for (i, m) in members.into_iter().enumerate() {
            let i = i as i32;
            let start = i * per + i.min(extra);
            let len = per + i32::from(i < extra);
            if let (true, Some(a)) = (len > 0, out.get_mut(m)) {
                a.insert(topic.clone(), (start..start + len).collect());
            }
        }
    }
    out
}

/// The round-robin assignor: all subscribed topic-partitions, sorted, are
/// dealt over the members sorted by id, skipping members not subscribed to
/// the partition's topic.
pub(crate) fn assign_roundrobin(
    subscriptions: &BTreeMap<String, Vec<String>>,
    partition_counts: &BTreeMap<String, i32>,
) -> GroupAssignment {
    let mut out = empty_assignment(subscriptions);
    let members: Vec<&String> = subscriptions.keys().collect();
    let mut next = 0usize;
    for (topic, &n) in partition_counts {
        let subscribers = members
            .iter()
            .filter(|m| subscriptions[**m].contains(topic))
            .count();
        if subscribers == 0 {
            continue;
        }
        for p in 0..n {
            loop {
                let m = members[next % members.len()];
                next += 1;
                if subscriptions[m].contains(topic) {
                    if let Some(a) = out.get_mut(m) {
                        a.entry(topic.clone()).or_default().push(p);
                    }
                    break;
                }
            }
        }
    }
    out
}

/// The cooperative-sticky assignor (KIP-429): a balanced assignment that
/// keeps each member's owned partitions where balance allows, minus the
/// partitions that change owner. Those are given to nobody this round, so
/// their old owners revoke them and rejoin, and the follow-up rebalance
/// hands them to their new owners once nobody owns them: no partition is
/// ever owned twice, and members keep consuming what does not move.
pub(crate) fn assign_cooperative_sticky(
    subscriptions: &BTreeMap<String, Subscription>,
    partition_counts: &BTreeMap<String, i32>,
) -> GroupAssignment {
    let eligible = |m: &str, topic: &str| {
        subscriptions[m].topics.iter().any(|t| t == topic) && partition_counts.contains_key(topic)
    };
    let exists = |(t, p): &(String, i32)| partition_counts.get(t).is_some_and(|&n| *p < n);
    // Newer generations' claims win; a partition claimed twice stays with
    // the first claimant.
    let mut claimants: Vec<&String> = subscriptions.keys().collect();
    claimants.sort_by_key(|m| std::cmp::Reverse(subscriptions[*m].generation));
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    let mut plan: BTreeMap<String, BTreeSet<(String, i32)>> = subscriptions
        .keys()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    // A claim on a topic the member left still counts as ownership: that
    // partition must be revoked before anyone else gets it.
    for m in claimants {
        for tp in &subscriptions[m].owned {
            if exists(tp) && !owner.contains_key(tp) {
                owner.insert(tp.clone(), m.clone());
                if let (true, Some(mine)) = (eligible(m, &tp.0), plan.get_mut(m)) {
                    mine.insert(tp.clone());
                }
            }
        }
    }
    // Unowned partitions go to the least loaded eligible member.
    for (topic, &n) in partition_counts {
        for p in 0..n {
            let tp = (topic.clone(), p);
            if plan.values().any(|ps| ps.contains(&tp)) {
                continue;
            }
            let least = plan
                .iter_mut()
                .filter(|(m, _)| eligible(m, topic))
                .min_by_key(|(m, ps)| (ps.len(), (*m).clone()));
            if let Some((_, ps)) = least {
                ps.insert(tp);
            }
        }
    }
    // Move partitions from the most to the least loaded member while that
    // narrows the gap by two; each move lowers the sum of squared loads,
    // so this ends.
    loop {
        let mut members: Vec<(&String, usize)> = plan.iter().map(|(m, ps)| (m, ps.len())).collect();
        members.sort_by_key(|(m, n)| (std::cmp::Reverse(*n), (*m).clone()));
        let mut chosen = None;
        'search: for (from, from_n) in &members {
            for tp in plan[*from].iter().rev() {
                let to = members
                    .iter()
                    .filter(|(to, to_n)| to_n + 1 < *from_n && eligible(to, &tp.0))
                    .min_by_key(|(to, to_n)| (*to_n, (*to).clone()));
                if let Some((to, _)) = to {
                    chosen = Some(((*from).clone(), (*to).clone(), tp.clone()));
                    break 'search;
                }
            }
        }
        let Some((from, to, tp)) = chosen else {
            break;
        };
        if let Some(ps) = plan.get_mut(&from) {
            ps.remove(&tp);
        }
        if let Some(ps) = plan.get_mut(&to) {
            ps.insert(tp);
        }
    }
    plan.into_iter()
        .map(|(m, ps)| {
            let kept: BTreeSet<(String, i32)> = ps
                .into_iter()
                .filter(|tp| owner.get(tp).is_none_or(|o| *o == m))
                .collect();
            (m, group_by_topic(&kept).into_iter().collect())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::MemberAssignment;

    fn subs(v: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        v.iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn counts(v: &[(&str, i32)]) -> BTreeMap<String, i32> {
        v.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn parts(a: &GroupAssignment, m: &str, t: &str) -> Vec<i32> {
        a[m].get(t).cloned().unwrap_or_default()
    }

    fn sticky_member(topics: &[&str], owned: &[(&str, i32)], generation: i32) -> Subscription {
        Subscription {
            topics: topics.iter().map(|t| t.to_string()).collect(),
            user_data: None,
            owned: owned.iter().map(|(t, p)| (t.to_string(), *p)).collect(),
            generation,
        }
    }

    #[test]
    fn range_splits_each_topic_by_sorted_member() {
        let s = subs(&[("b", &["t1", "t2"]), ("a", &["t1", "t2"])]);
        let a = assign_range(&s, &counts(&[("t1", 3), ("t2", 4)]));
        assert_eq!(parts(&a, "a", "t1"), vec![0, 1]);
        assert_eq!(parts(&a, "b", "t1"), vec![2]);
        assert_eq!(parts(&a, "a", "t2"), vec![0, 1]);
        assert_eq!(parts(&a, "b", "t2"), vec![2, 3]);
    }

    #[test]
    fn range_with_more_members_than_partitions_and_partial_subscriptions() {
        let s = subs(&[("a", &["t"]), ("b", &["t"]), ("c", &["t", "u"])]);
        let a = assign_range(&s, &counts(&[("t", 2), ("u", 2)]));
        assert_eq!(parts(&a, "a", "t"), vec![0]);
        assert_eq!(parts(&a, "b", "t"), vec![1]);
        assert!(parts(&a, "c", "t").is_empty());
        assert_eq!(parts(&a, "c", "u"), vec![0, 1]);
        assert!(a.contains_key("c"));
    }

    #[test]
    fn roundrobin_deals_sorted_partitions() {
        let s = subs(&[("m2", &["t1", "t2"]), ("m1", &["t1", "t2"])]);
        let a = assign_roundrobin(&s, &counts(&[("t1", 3), ("t2", 2)]));
        // t1-0 m1, t1-1 m2, t1-2 m1, t2-0 m2, t2-1 m1
        assert_eq!(parts(&a, "m1", "t1"), vec![0, 2]);
        assert_eq!(parts(&a, "m2", "t1"), vec![1]);
        assert_eq!(parts(&a, "m1", "t2"), vec![1]);
        assert_eq!(parts(&a, "m2", "t2"), vec![0]);
    }

    #[test]
    fn roundrobin_skips_unsubscribed_members() {
        let s = subs(&[("a", &["t"]), ("b", &["u"])]);
        let a = assign_roundrobin(&s, &counts(&[("t", 2), ("u", 1), ("x", 5)]));
        assert_eq!(parts(&a, "a", "t"), vec![0, 1]);
        assert_eq!(parts(&a, "b", "u"), vec![0]);
        assert!(!a["a"].contains_key("x") && !a["b"].contains_key("x"));
    }

    #[test]
    fn sticky_first_assignment_is_balanced() {
        let s: BTreeMap<String, Subscription> = ["a", "b", "c"]
            .iter()
            .map(|m| (m.to_string(), sticky_member(&["t"], &[], -1)))
            .collect();
        let a = assign_cooperative_sticky(&s, &counts(&[("t", 7)]));
        let mut sizes: Vec<usize> = a
            .values()
            .map(|ts| ts.values().map(Vec::len).sum())
            .collect();
        sizes.sort();
        assert_eq!(sizes, vec![2, 2, 3]);
    }

    #[test]
    fn sticky_new_member_only_moves_what_it_must_and_gets_it_next_round() {
        let owned_a = [("t", 0), ("t", 1), ("t", 2)];
        let owned_b = [("t", 3), ("t", 4), ("t", 5)];
        let mut s = BTreeMap::from([
            ("a".to_string(), sticky_member(&["t"], &owned_a, 3)),
            ("b".to_string(), sticky_member(&["t"], &owned_b, 3)),
            ("c".to_string(), sticky_member(&["t"], &[], -1)),
        ]);
        let first = assign_cooperative_sticky(&s, &counts(&[("t", 6)]));
        assert_eq!(parts(&first, "a", "t").len(), 2);
        assert_eq!(parts(&first, "b", "t").len(), 2);
        assert!(
            parts(&first, "c", "t").is_empty(),
            "c waits until a and b revoked"
        );
        // a and b revoke and rejoin: the follow-up round gives c the rest.
        for m in ["a", "b"] {
            s.get_mut(m).unwrap().owned = parts(&first, m, "t")
                .into_iter()
                .map(|p| ("t".to_string(), p))
                .collect();
            s.get_mut(m).unwrap().generation = 4;
        }
        let second = assign_cooperative_sticky(&s, &counts(&[("t", 6)]));
        assert_eq!(parts(&second, "a", "t"), parts(&first, "a", "t"));
        assert_eq!(parts(&second, "b", "t"), parts(&first, "b", "t"));
        assert_eq!(parts(&second, "c", "t").len(), 2);
        let all: BTreeSet<i32> = ["a", "b", "c"]
            .iter()
            .flat_map(|m| parts(&second, m, "t"))
            .collect();
        assert_eq!(all.len(), 6);
    }

    #[test]
    fn sticky_conflicting_claims_go_to_the_newer_generation() {
        let s = BTreeMap::from([
            ("a".to_string(), sticky_member(&["t"], &[("t", 0)], 1)),
            ("b".to_string(), sticky_member(&["t"], &[("t", 0)], 2)),
        ]);
        let a = assign_cooperative_sticky(&s, &counts(&[("t", 2)]));
        assert_eq!(parts(&a, "b", "t"), vec![0]);
        assert_eq!(parts(&a, "a", "t"), vec![1]);
    }

    #[test]
    fn sticky_respects_subscriptions_and_drops_vanished_partitions() {
        let s = BTreeMap::from([
            (
                "a".to_string(),
                sticky_member(&["t"], &[("t", 5), ("u", 0)], 1),
            ),
            ("b".to_string(), sticky_member(&["u"], &[], 1)),
        ]);
        let a = assign_cooperative_sticky(&s, &counts(&[("t", 2), ("u", 1)]));
        assert_eq!(parts(&a, "a", "t"), vec![0, 1]);
        assert!(
            parts(&a, "a", "u").is_empty(),
            "a no longer subscribes to u"
        );
        assert!(
            parts(&a, "b", "u").is_empty(),
            "u-0 moves from a to b: nobody gets it this round"
        );
    }

    #[test]
    fn subscription_round_trips() {
        let sub = Subscription {
            topics: vec!["ab".into(), "c".into()],
            user_data: Some(Bytes::from_static(&[0, 0, 0, 7])),
            owned: [("ab".to_string(), 1), ("ab".to_string(), 3)].into(),
            generation: 7,
        };
        let b = sub.encode();
        assert_eq!(&b[..2], &[0, 2]);
        assert_eq!(Subscription::decode(&b).unwrap(), sub);
        assert!(Subscription::decode(&b[..7]).is_err());
    }

    #[test]
    fn decodes_v0_subscription_and_generation_from_user_data() {
        let v0 = [0, 0, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff];
        let sub = Subscription::decode(&v0).unwrap();
        assert_eq!(sub.topics, vec!["t".to_string()]);
        assert_eq!((sub.generation, sub.owned.len()), (-1, 0));
        let v1 = [
            0, 1, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 4, 0, 0, 0, 9, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0,
            1, 0, 0, 0, 2,
        ];
        let sub = Subscription::decode(&v1).unwrap();
        assert_eq!(sub.generation, 9);
        assert_eq!(sub.owned, [("t".to_string(), 2)].into());
    }

    #[test]
    fn assignment_encoding_decodes_with_member_assignment() {
        let parts = vec![
            ("orders".to_string(), vec![0, 2]),
            ("x".to_string(), vec![]),
        ];
        let b = encode_assignment(&parts);
        let a = MemberAssignment::decode(&b).unwrap();
        assert_eq!(a.version, 0);
        assert_eq!(a.partitions, parts);
        assert_eq!(a.user_data, None);
        assert_eq!(&b[b.len() - 4..], &[0xff; 4]);
    }
}
