//! The quorum end to end on in-process nodes. One-voter tests run in
//! paused tokio time (timeouts pass instantly while fsyncs stay real);
//! tests with several voters run in real time with short timeouts: paused
//! time jumps ahead while a node's blocking file I/O runs, so on a loaded
//! machine every vote could time out before it is counted (elections that
//! never end).

use super::test_cluster::{eventually, topic, Cluster};
use super::{InProcessNetwork, QuorumConfig, RaftQuorum};
use crate::quorum::{Quorum, QuorumError};
use std::collections::BTreeMap;
use std::sync::Arc;

fn defaults(_: &mut QuorumConfig) {}

fn snapshot_every_3(config: &mut QuorumConfig) {
    config.snapshot_interval = 3;
}

#[tokio::test(start_paused = true)]
async fn one_voter_appends_and_restores_its_image_from_the_log() {
    let mut cluster = Cluster::start(1, defaults).await;
    let (first, image) = cluster.append(vec![topic("a"), topic("b")]).await;
    assert!(image.topic("a").is_some() && image.topic("b").is_some());
    let (second, image) = cluster.append(vec![topic("c")]).await;
    assert!(second > first);
    assert_eq!(image.offset, 3);
    let status = cluster.nodes[&1].status();
    assert_eq!(status.leader, Some(1));
    assert_eq!(status.high_watermark, second.index + 1);
    assert_eq!(status.voters.len(), 1);
    assert_eq!(status.voters[0].lag, Some(0));

    cluster.stop_node(1).await;
    cluster.start_node(1).await;
    // Callers hold the trait object, never the openraft-backed type.
    let node: &dyn Quorum = &cluster.nodes[&1];
    // Replayed up to the committed entry before any election.
    assert_eq!(node.image().offset, 3);
    assert!(node.image().topic("c").is_some());
    let mut images = node.watch();
    images.borrow_and_update();
    let (third, image) = node.append(vec![topic("d")]).await.expect("appended");
    assert!(third.index > second.index);
    assert_eq!(image.offset, 4);
    assert!(images.has_changed().expect("the quorum runs"));
    assert_eq!(images.borrow_and_update().offset, 4);
}

#[tokio::test(start_paused = true)]
async fn one_voter_restores_its_image_from_a_snapshot_after_the_log_is_purged() {
    let mut cluster = Cluster::start(1, snapshot_every_3).await;
    for i in 0..12 {
        cluster.append(vec![topic(&format!("t{i}"))]).await;
    }
    let dir = cluster.dir(1).to_path_buf();
    eventually("a snapshot is written", || {
        dir.join("quorum.snapshot").exists()
    })
    .await;
    cluster.stop_node(1).await;
    let log = super::log_store::LogStore::open(&dir).expect("the log opens");
    let kept = log.entries();
    assert!(
        kept.first().is_some_and(|e| e.log_id.index > 0),
        "the log was purged"
    );
    drop(log);
    cluster.start_node(1).await;
    cluster.converge(12).await;
    assert!(cluster.nodes[&1].image().topic("t0").is_some());
}

#[tokio::test]
async fn three_voters_replicate_forward_and_fail_over() {
    let mut cluster = Cluster::start(3, defaults).await;
    let leader = cluster.leader().await;
    let (before, _) = cluster.append(vec![topic("a")]).await;
    cluster.converge(1).await;

    let follower = *cluster.nodes.keys().find(|id| **id != leader).unwrap_or(&0);
    let (_, image) = cluster.nodes[&follower]
        .append(vec![topic("via-follower")])
        .await
        .expect("forwarded to the leader");
    assert!(
        image.topic("via-follower").is_some(),
        "the follower answers once it applied the entry"
    );
    let status = cluster.nodes[&leader].status();
    assert_eq!(status.voters.len(), 3);
    eventually("the leader sees every voter caught up", || {
        cluster.nodes[&leader]
            .status()
            .voters
            .iter()
            .all(|v| v.lag == Some(0))
    })
    .await;

    cluster.stop_node(leader).await;
    let next = cluster.leader().await;
    assert_ne!(next, leader);
    let (after, image) = cluster.append(vec![topic("b")]).await;
    assert!(after.term > before.term, "{after:?} after {before:?}");
    assert!(image.topic("a").is_some() && image.topic("b").is_some());

    cluster.start_node(leader).await;
    cluster.converge(3).await;
    assert!(cluster.nodes[&leader].image().topic("b").is_some());
}

#[tokio::test]
async fn a_node_that_missed_purged_entries_catches_up_from_a_snapshot() {
    let mut cluster = Cluster::start(3, snapshot_every_3).await;
    cluster.append(vec![topic("first")]).await;
    cluster.converge(1).await;
    cluster.stop_node(3).await;
    for i in 0..15 {
        cluster.append(vec![topic(&format!("t{i}"))]).await;
    }
    let leader = cluster.leader().await;
    let leader_dir = cluster.dir(leader).to_path_buf();
    eventually("the leader wrote a snapshot", || {
        leader_dir.join("quorum.snapshot").exists()
    })
    .await;
    cluster.start_node(3).await;
    cluster.converge(16).await;
    assert!(
        cluster.dir(3).join("quorum.snapshot").exists(),
        "installed from a snapshot"
    );
    assert_eq!(
        *cluster.nodes[&3].image(),
        *cluster.nodes[&leader].image(),
        "the same image everywhere"
    );
    // Its log now starts after the snapshot, with no hole to refuse.
    cluster.stop_node(3).await;
    cluster.start_node(3).await;
    cluster.append(vec![topic("last")]).await;
    cluster.converge(17).await;
}

#[tokio::test]
async fn a_node_outside_the_voters_or_with_a_negative_id_does_not_start() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let network = Arc::new(InProcessNetwork::new());
    let voters: BTreeMap<i32, String> = [(1, "a".to_string())].into();
    let outside = QuorumConfig::new(2, voters, dir.path().to_path_buf());
    assert!(matches!(
        RaftQuorum::start(outside, network.clone()).await,
        Err(QuorumError::Config(_))
    ));
    let negative = QuorumConfig::new(-1, [(-1, "a".to_string())].into(), dir.path().into());
    assert!(matches!(
        RaftQuorum::start(negative, network).await,
        Err(QuorumError::Config(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn a_damaged_log_refuses_to_start_and_a_torn_tail_is_cut() {
    let mut cluster = Cluster::start(1, defaults).await;
    for name in ["a", "b", "c"] {
        cluster.append(vec![topic(name)]).await;
    }
    cluster.stop_node(1).await;
    let path = cluster.dir(1).join("quorum.log");
    let bytes = std::fs::read(&path).expect("the log");

    let mut torn = bytes.clone();
    torn.truncate(bytes.len() - 3);
    std::fs::write(&path, &torn).expect("write");
    cluster.start_node(1).await;
    cluster.converge(2).await;
    cluster.stop_node(1).await;

    let mut damaged = std::fs::read(&path).expect("the log");
    damaged[20] ^= 0x55;
    std::fs::write(&path, &damaged).expect("write");
    let error = RaftQuorum::start(cluster.config(1), Arc::new(InProcessNetwork::new()))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(error.contains(&path.display().to_string()), "{error}");
    assert!(error.contains("damaged at byte offset 0"), "{error}");

    let state = cluster.dir(1).join("quorum.state");
    std::fs::write(&path, &bytes).expect("write");
    let mut vote = std::fs::read(&state).expect("the vote");
    let last = vote.len() - 2;
    vote[last] ^= 0x55;
    std::fs::write(&state, &vote).expect("write");
    let error = RaftQuorum::start(cluster.config(1), Arc::new(InProcessNetwork::new()))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error.contains("quorum.state is damaged at byte offset 0"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_damaged_snapshot_refuses_to_start() {
    let mut cluster = Cluster::start(1, snapshot_every_3).await;
    for i in 0..6 {
        cluster.append(vec![topic(&format!("t{i}"))]).await;
    }
    let path = cluster.dir(1).join("quorum.snapshot");
    eventually("a snapshot is written", || path.exists()).await;
    cluster.stop_node(1).await;
    let mut bytes = std::fs::read(&path).expect("the snapshot");
    let last = bytes.len() - 2;
    bytes[last] ^= 0x55;
    std::fs::write(&path, &bytes).expect("write");
    let error = RaftQuorum::start(cluster.config(1), Arc::new(InProcessNetwork::new()))
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error.contains("quorum.snapshot is damaged at byte offset"),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unreadable_request_gets_an_error_answer() {
    let cluster = Cluster::start(1, defaults).await;
    let answer = cluster.nodes[&1]
        .rpc_handler()
        .handle(b"not a request".to_vec())
        .await;
    let answer: Result<(), String> = serde_json::from_slice(&answer).expect("an answer");
    assert!(answer.is_err_and(|e| e.contains("unreadable request")));
}

#[tokio::test]
async fn a_voter_that_lost_its_disk_catches_up_from_a_snapshot() {
    let mut cluster = Cluster::start(3, snapshot_every_3).await;
    for i in 0..10 {
        cluster.append(vec![topic(&format!("t{i}"))]).await;
    }
    cluster.converge(10).await;
    cluster.stop_node(3).await;
    for file in std::fs::read_dir(cluster.dir(3)).expect("the dir") {
        std::fs::remove_file(file.expect("an entry").path()).expect("removed");
    }
    cluster.start_node(3).await;
    cluster.append(vec![topic("after")]).await;
    cluster.converge(11).await;
    assert!(cluster.nodes[&3].image().topic("t0").is_some());
}

#[tokio::test(start_paused = true)]
async fn a_changed_voter_set_refuses_to_start() {
    let mut cluster = Cluster::start(1, defaults).await;
    cluster.append(vec![topic("a")]).await;
    cluster.stop_node(1).await;
    let mut config = cluster.config(1);
    config.voters.insert(2, "node-2".to_string());
    let error = RaftQuorum::start(config, Arc::new(InProcessNetwork::new()))
        .await
        .err();
    assert!(
        matches!(&error, Some(QuorumError::Config(e)) if e.contains("voters [1, 2] are not the voters [1]")),
        "{error:?}"
    );
    // The refused start left the directory as it was.
    cluster.start_node(1).await;
    cluster.converge(1).await;
}
