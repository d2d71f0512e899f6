//! Seeded randomized runs of three voters: appends through random nodes,
//! lost and delayed messages, cut links, nodes stopped and restarted. After
//! each run the Raft invariants are checked: at most one leader per term,
//! terms never go back on a node, committed entries are the same on every
//! node that has them, and every acknowledged append is in every final
//! image, in the order it was acknowledged.
//!
//! A failing run prints its seed; `SLUICE_QUORUM_SEED=<seed>` replays only
//! it. The seed drives the faults and the actions; openraft draws its own
//! election timeouts, so a replay is close to, not exactly, the same run.

use super::in_process::SplitMix64;
use super::log_store::LogStore;
use super::test_cluster::{topic, Cluster};
use super::{QuorumConfig, RaftQuorum};
use crate::quorum::{LogPosition, Quorum, QuorumError};
use openraft::ServerState;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SEEDS: u64 = 20;
const STEPS: u64 = 100;

/// What observers saw of every node's metrics while the run went on.
#[derive(Default)]
struct Seen {
    leaders_by_term: BTreeMap<u64, BTreeSet<i32>>,
    last_term: BTreeMap<i32, u64>,
    problems: Vec<String>,
}

/// Records every metrics change of `node` until it stops.
fn observe(id: i32, node: &RaftQuorum, seen: &Arc<Mutex<Seen>>) {
    let mut metrics = node.shared.raft.metrics();
    let seen = seen.clone();
    tokio::spawn(async move {
        loop {
            {
                let m = metrics.borrow_and_update();
                let mut seen = super::lock(&seen);
                // Term 0 is only the placeholder before a node has loaded its
                // vote or ever voted.
                let term = m.current_term;
                let last = match term {
                    0 => 0,
                    _ => seen.last_term.insert(id, term).unwrap_or(0),
                };
                if term < last {
                    let problem = format!("node {id}: term went from {last} to {}", m.current_term);
                    seen.problems.push(problem);
                }
                if m.state == ServerState::Leader {
                    seen.leaders_by_term
                        .entry(m.current_term)
                        .or_default()
                        .insert(id);
                }
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    });
}

/// Half the time the node that leads (if one does), else any node.
fn leader_or_any(cluster: &Cluster, rng: &mut SplitMix64) -> i32 {
    let leader = cluster
        .nodes
        .iter()
        .find(|(id, node)| node.status().leader == Some(**id))
        .map(|(id, _)| *id);
    match leader {
        Some(id) if rng.below(2) == 0 => id,
        _ => 1 + rng.below(3) as i32,
    }
}

fn tune(config: &mut QuorumConfig) {
    config.snapshot_interval = 10;
}

async fn run(seed: u64) {
    let mut rng = SplitMix64::new(seed);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut cluster = Cluster::start(3, tune).await;
    for (id, node) in &cluster.nodes {
        observe(*id, node, &seen);
    }
    cluster
        .network
        .set_faults(seed, 50, Duration::from_millis(40));
    let mut acked: Vec<(LogPosition, String)> = Vec::new();
    let mut stopped: Option<i32> = None;
    for step in 0..STEPS {
        match rng.below(10) {
            0..=5 => {
                let running: Vec<i32> = cluster.nodes.keys().copied().collect();
                let mut via = running[rng.below(running.len() as u64) as usize];
                let name = format!("s{seed}-{step}");
                for _ in 0..2 {
                    match cluster.nodes[&via].append(vec![topic(&name)]).await {
                        Ok((position, _)) => {
                            acked.push((position, name.clone()));
                            break;
                        }
                        Err(QuorumError::NotLeader {
                            leader: Some(leader),
                        }) if cluster.nodes.contains_key(&leader) => via = leader,
                        Err(QuorumError::NotLeader { .. } | QuorumError::Timeout) => break,
                        Err(e) => panic!("seed {seed}: append failed: {e}"),
                    }
                }
            }
            6 => {
                let a = 1 + rng.below(3) as i32;
                let b = 1 + (a as u64 + rng.below(2)) as i32 % 3;
                cluster.network.cut(a, b);
            }
            7 => match rng.below(2) {
                0 => cluster.network.heal(),
                // Isolates a node, often the leader.
                _ => {
                    let a = leader_or_any(&cluster, &mut rng);
                    for b in (1..=3).filter(|b| *b != a) {
                        cluster.network.cut(a, b);
                    }
                }
            },
            8 if stopped.is_none() => {
                let id = leader_or_any(&cluster, &mut rng);
                cluster.stop_node(id).await;
                stopped = Some(id);
            }
            9 => {
                if let Some(id) = stopped.take() {
                    cluster.start_node(id).await;
                    observe(id, &cluster.nodes[&id], &seen);
                }
            }
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(rng.below(300))).await;
    }

    // Calm the network, bring everyone back and let the logs converge.
    cluster.network.heal();
    cluster.network.set_faults(seed, 0, Duration::ZERO);
    if let Some(id) = stopped.take() {
        cluster.start_node(id).await;
        observe(id, &cluster.nodes[&id], &seen);
    }
    let (last, image) = cluster.append(vec![topic("final")]).await;
    cluster.converge(image.offset).await;

    {
        // Not held across an await: observers take it on every change.
        let seen = super::lock(&seen);
        assert!(seen.problems.is_empty(), "seed {seed}: {:?}", seen.problems);
        for (term, leaders) in &seen.leaders_by_term {
            assert!(
                leaders.len() <= 1,
                "seed {seed}: term {term} had leaders {leaders:?}"
            );
        }
    }
    for pair in acked.windows(2) {
        assert!(
            pair[0].0 < pair[1].0,
            "seed {seed}: acknowledged out of order: {pair:?}"
        );
    }
    for node in cluster.nodes.values() {
        assert_eq!(*node.image(), *image, "seed {seed}: images differ");
        for (_, name) in &acked {
            assert!(
                image.topic(name).is_some(),
                "seed {seed}: acknowledged {name} is lost"
            );
        }
    }

    // The logs themselves: one entry per index up to the last commit,
    // wherever it is still kept, and the acknowledged ones where acked.
    let ids: Vec<i32> = cluster.nodes.keys().copied().collect();
    for id in &ids {
        cluster.stop_node(*id).await;
    }
    let mut by_index: BTreeMap<u64, (i32, Vec<u8>)> = BTreeMap::new();
    for id in ids {
        let log = LogStore::open(cluster.dir(id)).expect("the log opens");
        for entry in log.entries() {
            if entry.log_id.index > last.index {
                continue;
            }
            let bytes = serde_json::to_vec(&entry).expect("entries serialize");
            match by_index.get(&entry.log_id.index) {
                Some((other, theirs)) => assert_eq!(
                    theirs, &bytes,
                    "seed {seed}: nodes {other} and {id} differ at index {}",
                    entry.log_id.index
                ),
                None => {
                    by_index.insert(entry.log_id.index, (id, bytes));
                }
            }
        }
    }
    for (position, name) in &acked {
        if let Some((_, bytes)) = by_index.get(&position.index) {
            let text = String::from_utf8_lossy(bytes);
            assert!(
                text.contains(&format!("\"name\":\"{name}\"")),
                "seed {seed}: index {} does not hold {name}",
                position.index
            );
        }
    }
}

#[test]
fn seeded_runs_keep_the_raft_invariants() {
    let seeds: Vec<u64> = match std::env::var("SLUICE_QUORUM_SEED") {
        Ok(seed) => vec![seed.parse().expect("SLUICE_QUORUM_SEED is a number")],
        Err(_) => (1..=SEEDS).collect(),
    };
    for seed in seeds {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.block_on(run(seed));
        }));
        if let Err(panic) = outcome {
            eprintln!("quorum simulation failed with seed {seed}; replay it with SLUICE_QUORUM_SEED={seed}");
            std::panic::resume_unwind(panic);
        }
    }
}
