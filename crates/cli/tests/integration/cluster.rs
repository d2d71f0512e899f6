//! A cluster of three `sluice serve` processes on loopback, each a
//! combined broker and controller voter, used through librdkafka: the Raft
//! quorum forms, every broker is in Metadata, partitions spread over the
//! brokers, admin requests work through any broker (forwarded to the
//! active controller), a SIGKILLed broker is fenced and its partitions
//! lose their leader, and it leads them again once restarted.

use crate::common::{block_on, free_port, read_log, sluice_binary, PATIENCE};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// One node's address, ports and files.
pub(crate) struct NodeSpec {
    pub(crate) id: i32,
    /// The address it listens on (loopback, or its own in a namespace).
    host: String,
    /// The network namespace it runs in, if any (`ip netns exec`).
    netns: Option<String>,
    client_port: u16,
    controller_port: u16,
    /// The INTERNAL listener's port, used when the cluster has one.
    internal_port: u16,
    dir: PathBuf,
    pub(crate) log: PathBuf,
}

pub(crate) struct Cluster {
    pub(crate) specs: Vec<NodeSpec>,
    voters: String,
    /// Settings every node gets besides the cluster's own.
    extra: Vec<String>,
    /// The security protocols of an INTERNAL listener the brokers speak
    /// to each other on (instead of PLAINTEXT) and of the CONTROLLER one.
    internal: Option<(String, String)>,
    /// Arguments of `sluice serve` besides the settings.
    args: Vec<String>,
    running: BTreeMap<i32, Child>,
    _root: tempfile::TempDir,
}

/// A port for a node that is stopped and started again: below the
/// kernel's ephemeral range, so no outgoing connection of a test running
/// alongside can take it while the node is down (one did take an
/// ephemeral one, and the restart failed with "address in use").
fn node_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let span = ephemeral_low.saturating_sub(10_000).min(12_000);
    if span < 1_000 {
        return free_port();
    }
    let base = ephemeral_low - span;
    loop {
        // Spread by process id: several test binaries may run at once.
        let n = NEXT.fetch_add(1, Ordering::Relaxed) + std::process::id().wrapping_mul(613);
        let port = (base + n % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Cluster {
    /// A cluster whose nodes also get `extra` (NAME=VALUE) settings.
    pub(crate) fn with_settings(size: i32, extra: &[&str]) -> Cluster {
        let mut cluster = Cluster::new(size);
        cluster.extra = extra.iter().map(|s| s.to_string()).collect();
        cluster
    }

    /// A cluster whose brokers replicate over an INTERNAL listener
    /// speaking `protocol` and whose voters speak `controller`; clients
    /// keep the PLAINTEXT one. Every node also gets `extra` settings and
    /// `args`.
    pub(crate) fn with_internal_listener(
        size: i32,
        (protocol, controller): (&str, &str),
        extra: &[String],
        args: &[String],
    ) -> Cluster {
        let mut cluster = Cluster::new(size);
        cluster.internal = Some((protocol.to_string(), controller.to_string()));
        cluster.extra = extra.to_vec();
        cluster.args = args.to_vec();
        cluster
    }

    pub(crate) fn new(size: i32) -> Cluster {
        let places = (1..=size)
            .map(|_| ("127.0.0.1".to_string(), None))
            .collect();
        Cluster::placed(places)
    }

    /// A cluster with node `i` (from 1) at `places[i - 1]`: its address
    /// and the network namespace it runs in. In a namespace of its own a
    /// node has the ports to itself: 9092 for clients, 9093 for the quorum.
    pub(crate) fn placed(places: Vec<(String, Option<String>)>) -> Cluster {
        let root = tempfile::tempdir().expect("a temp dir");
        let specs: Vec<NodeSpec> = places
            .into_iter()
            .enumerate()
            .map(|(i, (host, netns))| {
                let id = i as i32 + 1;
                let (client_port, controller_port, internal_port) = match netns {
                    Some(_) => (9092, 9093, 9094),
                    None => (node_port(), node_port(), node_port()),
                };
                NodeSpec {
                    id,
                    host,
                    netns,
                    client_port,
                    controller_port,
                    internal_port,
                    dir: root.path().join(format!("node-{id}")),
                    log: root.path().join(format!("node-{id}.log")),
                }
            })
            .collect();
        let voters = specs
            .iter()
            .map(|s| format!("{}@{}:{}", s.id, s.host, s.controller_port))
            .collect::<Vec<_>>()
            .join(",");
        Cluster {
            specs,
            voters,
            extra: Vec::new(),
            internal: None,
            args: Vec::new(),
            running: BTreeMap::new(),
            _root: root,
        }
    }

    fn spec(&self, id: i32) -> &NodeSpec {
        &self.specs[(id - 1) as usize]
    }

    pub(crate) fn logs(&self) -> Vec<PathBuf> {
        self.specs.iter().map(|s| s.log.clone()).collect()
    }

    pub(crate) fn bootstrap(&self, id: i32) -> String {
        let spec = self.spec(id);
        format!("{}:{}", spec.host, spec.client_port)
    }

    /// `sluice serve` for node `id` (in its namespace, if it has one), its
    /// stderr appended to its log.
    fn serve_command(&self, id: i32) -> Command {
        let spec = self.spec(id);
        let log = std::fs::File::options()
            .create(true)
            .append(true)
            .open(&spec.log)
            .expect("open node log");
        let mut command = match &spec.netns {
            None => Command::new(sluice_binary()),
            Some(netns) => {
                // `ip netns exec` execs the broker: the child is it.
                let mut command = Command::new("ip");
                command.args(["netns", "exec", netns]).arg(sluice_binary());
                command
            }
        };
        command
            .arg("serve")
            .arg("--data-dir")
            .arg(&spec.dir)
            .args(&self.args)
            .args(
                settings(spec, &self.voters, self.internal.as_ref())
                    .iter()
                    .chain(&self.extra)
                    .flat_map(|s| ["--set", s]),
            )
            .stdin(Stdio::null())
            .stderr(Stdio::from(log));
        command
    }

    /// Starts the nodes `ids` together (a node waits for a majority of
    /// voters before it serves) and waits until each says it listens.
    pub(crate) fn start(&mut self, ids: &[i32]) {
        let (tx, rx) = mpsc::channel();
        for id in ids {
            let mut child = self
                .serve_command(*id)
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn sluice serve");
            let stdout = child.stdout.take().expect("stdout");
            let (tx, id) = (tx.clone(), *id);
            std::thread::spawn(move || {
                let mut tx = Some(tx);
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if line.starts_with("Sluice broker listening on ") {
                        if let Some(tx) = tx.take() {
                            let _ = tx.send(id);
                        }
                    }
                }
            });
            self.running.insert(id, child);
        }
        let mut waiting: BTreeSet<i32> = ids.iter().copied().collect();
        let deadline = Instant::now() + PATIENCE * 2;
        while !waiting.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(id) => {
                    waiting.remove(&id);
                }
                Err(_) => panic!(
                    "nodes {waiting:?} did not start; their logs:\n{}",
                    waiting
                        .iter()
                        .map(|id| read_log(&self.spec(*id).log))
                        .collect::<Vec<_>>()
                        .join("\n---\n")
                ),
            }
        }
    }

    /// Starts node `id` expecting it to refuse: waits for it to exit
    /// unsuccessfully and returns its log.
    pub(crate) fn start_refused(&mut self, id: i32) -> String {
        let mut child = self
            .serve_command(id)
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn sluice serve");
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "node {id} did not refuse:\n{}",
                    read_log(&self.spec(id).log)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(!status.success(), "node {id} exited with {status}");
        read_log(&self.spec(id).log)
    }

    /// SIGTERM, and waits until the node has stopped.
    pub(crate) fn terminate(&mut self, id: i32) {
        if let Some(mut child) = self.running.remove(&id) {
            let status = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status()
                .expect("kill -TERM");
            assert!(status.success());
            assert!(
                child.wait().expect("reap").success(),
                "node {id} failed to stop"
            );
        }
    }

    /// Sends `signal` (e.g. "STOP", "CONT") to a running node.
    pub(crate) fn signal(&self, id: i32, signal: &str) {
        let child = &self.running[&id];
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// The data directory of node `id`.
    pub(crate) fn data_dir(&self, id: i32) -> &Path {
        &self.spec(id).dir
    }

    pub(crate) fn kill(&mut self, id: i32) {
        if let Some(mut child) = self.running.remove(&id) {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.running.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn settings(spec: &NodeSpec, voters: &str, internal: Option<&(String, String)>) -> Vec<String> {
    let mut listeners = format!(
        "listeners=PLAINTEXT://{host}:{},CONTROLLER://{host}:{}",
        spec.client_port,
        spec.controller_port,
        host = spec.host
    );
    let mut settings = Vec::new();
    if let Some((protocol, controller)) = internal {
        listeners.push_str(&format!(",INTERNAL://{}:{}", spec.host, spec.internal_port));
        settings.push(format!(
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:{controller},INTERNAL:{protocol}"
        ));
        settings.push("inter.broker.listener.name=INTERNAL".to_string());
    }
    settings.extend([
        format!("node.id={}", spec.id),
        listeners,
        "controller.listener.names=CONTROLLER".to_string(),
        format!("controller.quorum.voters={voters}"),
        "http.listeners=http://127.0.0.1:0".to_string(),
        "broker.heartbeat.interval.ms=300".to_string(),
        "broker.session.timeout.ms=2000".to_string(),
        format!("broker.rack=rack-{}", spec.id),
    ]);
    settings
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

fn create(bootstrap: &str, name: &str, partitions: i32) {
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(PATIENCE));
    let created =
        block_on(admin(bootstrap).create_topics([&topic], &options)).expect("CreateTopics");
    assert_eq!(created, vec![Ok(name.to_string())]);
}

/// (broker ids, leader of each partition of `topic`) as `bootstrap` says.
pub(crate) fn metadata(bootstrap: &str, topic: &str) -> (BTreeSet<i32>, Vec<i32>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("Metadata");
    let brokers = metadata.brokers().iter().map(|b| b.id()).collect();
    let leaders = metadata
        .topics()
        .first()
        .map(|t| t.partitions().iter().map(|p| p.leader()).collect())
        .unwrap_or_default();
    (brokers, leaders)
}

pub(crate) fn wait_until<T>(what: &str, logs: &[&Path], mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = logs.iter().map(|l| read_log(l)).collect();
            panic!(
                "timed out waiting until {what}; logs:\n{}",
                logs.join("\n---\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn produce(bootstrap: &str, topic: &str, partitions: i32, per_partition: usize) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    let deliveries: Vec<_> = (0..partitions)
        .flat_map(|p| (0..per_partition).map(move |i| (p, i)))
        .map(|(p, i)| {
            let value = format!("{p}-{i}");
            producer
                .send_result(
                    FutureRecord::<(), _>::to(topic)
                        .partition(p)
                        .payload(&value),
                )
                .expect("enqueue")
        })
        .collect();
    for delivery in deliveries {
        block_on(delivery)
            .expect("not cancelled")
            .expect("delivered");
    }
}

fn consume_all(bootstrap: &str, topic: &str, partitions: i32, expected: usize) -> usize {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("{topic}-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for p in 0..partitions {
        assignment
            .add_partition_offset(topic, p, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let mut seen = BTreeSet::new();
    let deadline = Instant::now() + PATIENCE;
    while seen.len() < expected && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            seen.insert((message.partition(), message.offset()));
        }
    }
    seen.len()
}

#[test]
fn three_nodes_form_a_quorum_spread_partitions_and_fence_a_killed_broker() {
    let mut cluster = Cluster::new(3);
    cluster.start(&[1, 2, 3]);
    let logs: Vec<PathBuf> = cluster.specs.iter().map(|s| s.log.clone()).collect();
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();

    // Every broker is known to every broker.
    for id in 1..=3 {
        wait_until("every node lists three brokers", &logs, || {
            (metadata(&cluster.bootstrap(id), "none").0 == BTreeSet::from([1, 2, 3])).then_some(())
        });
    }

    // Created through one broker, whichever leads the quorum; placed on all.
    const PARTITIONS: i32 = 6;
    create(&cluster.bootstrap(2), "spread", PARTITIONS);
    let leaders = wait_until("the topic is visible from node 3", &logs, || {
        let (_, leaders) = metadata(&cluster.bootstrap(3), "spread");
        (leaders.len() == PARTITIONS as usize).then_some(leaders)
    });
    assert_eq!(
        leaders.iter().copied().collect::<BTreeSet<_>>(),
        BTreeSet::from([1, 2, 3]),
        "partitions spread over every broker: {leaders:?}"
    );

    // librdkafka follows each partition to its leader.
    produce(&cluster.bootstrap(1), "spread", PARTITIONS, 10);
    assert_eq!(
        consume_all(&cluster.bootstrap(1), "spread", PARTITIONS, 60),
        60
    );

    // A killed broker is fenced: gone from Metadata, its partitions without
    // a leader; the others go on, and new topics avoid it.
    cluster.kill(3);
    let survivors = [logs[0], logs[1]];
    let leaders = wait_until("node 3 is fenced", &survivors, || {
        let (brokers, leaders) = metadata(&cluster.bootstrap(1), "spread");
        (brokers == BTreeSet::from([1, 2]) && !leaders.contains(&3)).then_some(leaders)
    });
    for (partition, leader) in leaders.iter().enumerate() {
        assert!(
            *leader == -1 || *leader == 1 || *leader == 2,
            "partition {partition} led by {leader}"
        );
    }
    create(&cluster.bootstrap(1), "after-kill", 4);
    let (_, leaders) = metadata(&cluster.bootstrap(2), "after-kill");
    assert!(
        leaders.iter().all(|l| *l == 1 || *l == 2),
        "a new topic is placed on live brokers only: {leaders:?}"
    );

    // Back from the dead, node 3 leads its partitions again, data intact.
    cluster.start(&[3]);
    wait_until("node 3 leads again", &logs, || {
        let (brokers, leaders) = metadata(&cluster.bootstrap(1), "spread");
        (brokers.len() == 3 && !leaders.contains(&-1)).then_some(())
    });
    assert_eq!(
        consume_all(&cluster.bootstrap(2), "spread", PARTITIONS, 60),
        60
    );
}

/// A node started on a data directory of another cluster (here, node 3's
/// directory of an earlier cluster) refuses to join: the voters exchange
/// cluster ids before any Raft message, so it neither votes in nor
/// replicates into the new cluster, and says why.
#[test]
fn a_node_on_another_clusters_data_directory_refuses_to_join() {
    let mut old = Cluster::new(3);
    old.start(&[1, 2, 3]);
    let old_logs = old.logs();
    let old_logs: Vec<&Path> = old_logs.iter().map(PathBuf::as_path).collect();
    wait_until("the old cluster forms", &old_logs, || {
        (metadata(&old.bootstrap(1), "none").0.len() == 3).then_some(())
    });
    create(&old.bootstrap(1), "old-topic", 1);
    for id in 1..=3 {
        old.terminate(id);
    }

    let mut new = Cluster::new(3);
    new.start(&[1, 2]);
    let status = Command::new("cp")
        .arg("-a")
        .arg(old.data_dir(3))
        .arg(new.data_dir(3))
        .status()
        .expect("cp");
    assert!(status.success());
    let log = new.start_refused(3);
    assert!(log.contains("belongs to cluster"), "{log}");
    assert!(log.contains("a node joins one cluster only"), "{log}");
    let (_, leaders) = metadata(&new.bootstrap(1), "old-topic");
    assert!(
        leaders.is_empty(),
        "the old cluster's topic leaked: {leaders:?}"
    );
}

#[test]
fn a_node_with_inconsistent_cluster_settings_refuses_to_start() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let output = Command::new(sluice_binary())
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "--set",
            "node.id=4",
            "--set",
            "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0",
            "--set",
            "controller.listener.names=CONTROLLER",
            "--set",
            "controller.quorum.voters=1@127.0.0.1:1,2@127.0.0.1:2,3@127.0.0.1:3",
            "--set",
            "http.listeners=http://127.0.0.1:0",
        ])
        .output()
        .expect("run sluice serve");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("node.id 4 is not among controller.quorum.voters"),
        "{stderr}"
    );
}

#[test]
fn sluice_dev_cluster_starts_three_nodes_and_stops_them() {
    let dir = tempfile::tempdir().expect("a temp dir");
    // Node N uses BASE+100*(N-1), the next port and +2552: pick a base
    // whose neighbourhood is free now.
    let base = (0..50)
        .map(|_| free_port())
        .find(|p| (20_000..40_000).contains(p))
        .expect("a port in range");
    let mut child = Command::new(sluice_binary())
        .args([
            "dev",
            "cluster",
            "--nodes",
            "3",
            "--base-port",
            &base.to_string(),
        ])
        .arg("--dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice dev cluster");
    let stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut printed = Vec::new();
    for line in stdout.lines() {
        let line = line.expect("a line");
        let done = line.starts_with("Stop with");
        printed.push(line);
        if done {
            break;
        }
    }
    assert!(
        printed
            .iter()
            .any(|l| l.contains("3-node Sluice cluster is running")),
        "{printed:?}"
    );
    let (brokers, _) = metadata(&format!("127.0.0.1:{base}"), "dev-cluster");
    assert_eq!(brokers, BTreeSet::from([1, 2, 3]));
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .expect("kill -TERM");
    assert!(status.success());
    assert!(child.wait().expect("reaped").success());
    for id in 1..=3 {
        let log = read_log(&dir.path().join(format!("node-{id}.log")));
        assert!(log.contains("stopped cleanly"), "node {id}:\n{log}");
    }
}

/// The active controller, as `sluice cluster describe` through `bootstrap`
/// reports it.
fn active_controller(bootstrap: &str) -> Option<i32> {
    let out = Command::new(sluice_binary())
        .args(["--bootstrap-server", bootstrap])
        .args(["--output", "json", "cluster", "describe"])
        .output()
        .ok()?;
    let described: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let id = described["controller_id"].as_i64()? as i32;
    (id > 0).then_some(id)
}

/// Fresh metadata for `admin`, which tells it the active controller.
fn refresh(admin: &AdminClient<DefaultClientContext>) {
    std::thread::sleep(Duration::from_millis(200));
    let _ = admin.inner().fetch_metadata(None, Duration::from_secs(5));
}

/// Topics are created through a broker while the active controller is
/// SIGKILLed: the others elect a new one and every topic ends up created
/// once, each attempt answered with success, an error a client retries
/// (and the retry then succeeds or finds the topic created), never lost.
#[test]
fn topics_created_while_the_active_controller_is_killed_are_all_created_once() {
    let mut cluster = Cluster::new(3);
    cluster.start(&[1, 2, 3]);
    let logs: Vec<PathBuf> = cluster.logs();
    let logs: Vec<&Path> = logs.iter().map(PathBuf::as_path).collect();
    for id in 1..=3 {
        wait_until("every node lists three brokers", &logs, || {
            (metadata(&cluster.bootstrap(id), "none").0 == BTreeSet::from([1, 2, 3])).then_some(())
        });
    }
    let controller = wait_until("a controller is known", &logs, || {
        active_controller(&cluster.bootstrap(1))
    });
    let through = (1..=3).find(|id| *id != controller).expect("another node");
    let bootstrap = cluster.bootstrap(through);
    const TOPICS: usize = 40;
    let creator = std::thread::spawn(move || {
        let admin = admin(&bootstrap);
        // A request queued for the dead controller gives up after 5 s
        // rather than librdkafka's default minute.
        let options = AdminOptions::new()
            .operation_timeout(Some(Duration::from_secs(5)))
            .request_timeout(Some(Duration::from_secs(5)));
        let mut outcomes = Vec::new();
        for i in 0..TOPICS {
            let name = format!("during-failover-{i}");
            let topic = NewTopic::new(&name, 2, TopicReplication::Fixed(1));
            let deadline = Instant::now() + PATIENCE;
            let mut retries = 0;
            loop {
                let answer = block_on(admin.create_topics([&topic], &options));
                let result = answer.map(|mut r| r.remove(0));
                match result {
                    Ok(Ok(_)) => {
                        outcomes.push((name, format!("created after {retries} retries")));
                        break;
                    }
                    Ok(Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))) => {
                        // An earlier attempt's record was committed.
                        outcomes.push((name, "already existed on retry".to_string()));
                        break;
                    }
                    Ok(Err((_, code))) if Instant::now() < deadline => {
                        assert!(
                            matches!(
                                code,
                                rdkafka::types::RDKafkaErrorCode::NotController
                                    | rdkafka::types::RDKafkaErrorCode::RequestTimedOut
                                    | rdkafka::types::RDKafkaErrorCode::OperationTimedOut
                            ),
                            "{name}: a non-retriable answer {code:?}"
                        );
                        retries += 1;
                        refresh(&admin);
                    }
                    // The request went to the dead controller: librdkafka
                    // learns the new one from fresh metadata (the Java
                    // admin client looks it up again by itself).
                    Err(_) if Instant::now() < deadline => {
                        retries += 1;
                        refresh(&admin);
                    }
                    other => panic!("{name}: still failing: {other:?}"),
                }
            }
        }
        outcomes
    });
    std::thread::sleep(Duration::from_millis(300));
    cluster.kill(controller);
    let outcomes = creator.join().expect("creator thread");
    println!("controller {controller} killed; through {through}: {outcomes:?}");
    let survivors: Vec<i32> = (1..=3).filter(|id| *id != controller).collect();
    let new_controller = wait_until("a new controller", &logs, || {
        active_controller(&cluster.bootstrap(survivors[0])).filter(|c| *c != controller)
    });
    assert!(survivors.contains(&new_controller));
    for (name, outcome) in &outcomes {
        for id in &survivors {
            wait_until(
                &format!("{name} ({outcome}) is visible from {id}"),
                &logs,
                || {
                    let (_, leaders) = metadata(&cluster.bootstrap(*id), name);
                    (leaders.len() == 2).then_some(())
                },
            );
        }
    }
    assert_eq!(outcomes.len(), TOPICS);
}
