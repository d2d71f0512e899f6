//! Start-up safeguards of `sluice serve`: the data directory lock and the
//! open-file limit.

use std::process::{Command, Stdio};
use std::time::Instant;

use crate::common::{free_port, read_log, serve_refusal, sluice_binary, BrokerProcess, PATIENCE};
use crate::protocol::assert_serving;

/// A second broker on a data directory that a running broker holds exits
/// at once, naming the directory and the holder's pid; the first goes on
/// serving. Two brokers on one directory overwrite each other's records.
#[test]
fn a_second_broker_on_the_same_data_dir_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let first = BrokerProcess::spawn(free_port(), &data_dir, &tmp.path().join("first.log"), &[]);

    let mut second = Command::new(sluice_binary())
        .arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{}", free_port()))
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--set")
        .arg("http.listeners=")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the second sluice serve");
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = second.try_wait().expect("wait for the second broker") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            let _ = second.wait();
            panic!("a second broker on {} kept running", data_dir.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let output = second.wait_with_output().expect("collect its stderr");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!status.success(), "the second broker exited with {status}");
    assert!(
        stderr.contains(&format!("pid {}", first.pid())),
        "the refusal names the holder's pid {}: {stderr}",
        first.pid()
    );
    assert!(
        stderr.contains(&data_dir.display().to_string()),
        "the refusal names the directory: {stderr}"
    );
    assert_serving(&first.bootstrap());
    first.terminate();
}

/// A broker killed with SIGKILL leaves its `.lock` file behind, but the
/// kernel released its lock: the next start takes the directory over and
/// records its own pid.
#[test]
fn a_lock_file_left_by_a_killed_broker_does_not_block_the_next_start() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let log = tmp.path().join("broker.log");
    let killed = BrokerProcess::spawn(free_port(), &data_dir, &log, &[]);
    killed.kill();
    assert!(
        data_dir.join(".lock").exists(),
        "the lock file stays behind"
    );

    let next = BrokerProcess::spawn(free_port(), &data_dir, &log, &[]);
    let recorded = std::fs::read_to_string(data_dir.join(".lock")).expect("read .lock");
    assert_eq!(
        recorded.trim(),
        next.pid().to_string(),
        "the lock file names its holder; broker log:\n{}",
        read_log(&log)
    );
    assert_serving(&next.bootstrap());
    next.terminate();
}

/// The soft open-file limit (often 1024) is far below what a broker with
/// many partitions needs: start-up raises it to the hard limit and says so.
#[test]
fn start_up_raises_the_soft_open_file_limit_to_the_hard_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("broker.log");
    let broker = BrokerProcess::spawn_with_ulimit(
        "-S -n 256",
        free_port(),
        &tmp.path().join("data"),
        &log,
        &[],
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", broker.pid()))
        .expect("read the broker's limits");
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let fields: Vec<&str> = open_files.split_whitespace().collect();
    let (soft, hard) = (fields[3], fields[4]);
    assert_eq!(
        soft, hard,
        "soft limit raised to the hard one: {open_files}"
    );
    let text = read_log(&log);
    if hard != "256" {
        assert!(
            text.contains(&format!(
                "raised the open file limit (RLIMIT_NOFILE) from 256 to the hard limit {hard}"
            )),
            "start-up says it raised the limit:\n{text}"
        );
    }
    assert!(
        text.contains("the logs need about"),
        "start-up says how many descriptors the logs need:\n{text}"
    );
    broker.terminate();
}

/// SIGTERM sent the moment the broker says it is listening stops it
/// cleanly: its signal handlers are in place before it says so.
#[test]
fn a_broker_terminated_as_soon_as_it_listens_stops_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let log = tmp.path().join("broker.log");
    for _ in 0..100 {
        BrokerProcess::spawn(free_port(), &data_dir, &log, &[]).terminate();
    }
}

/// `meta.properties` ties a data directory to its node and cluster, in
/// Kafka's format: written at the first start, it refuses the directory
/// to a node with another node.id, and to a cluster with another id.
#[test]
fn a_data_directory_belongs_to_one_node_and_one_cluster() {
    use crate::common::serve_refusal_with;
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let log = tmp.path().join("broker.log");
    let first = BrokerProcess::spawn(free_port(), &data_dir, &log, &[]);
    first.terminate();
    let meta_file = data_dir.join("meta.properties");
    let meta = std::fs::read_to_string(&meta_file).expect("meta.properties written");
    assert!(meta.contains("version=1"), "{meta}");
    assert!(meta.contains("node.id=1"), "{meta}");
    let cluster_line = meta
        .lines()
        .find(|l| l.starts_with("cluster.id="))
        .expect("a cluster.id")
        .to_string();

    let (ok, out) = serve_refusal_with(&data_dir, &["node.id=2"]);
    assert!(!ok, "started as another node: {out}");
    assert!(
        out.contains("belongs to node.id=1, but this node is node.id=2"),
        "{out}"
    );

    std::fs::write(
        &meta_file,
        meta.replace(&cluster_line, "cluster.id=AnotherClusterIdxxxxxx"),
    )
    .unwrap();
    let (ok, out) = serve_refusal(&data_dir);
    assert!(!ok, "started on another cluster's directory: {out}");
    assert!(
        out.contains("belongs to cluster AnotherClusterIdxxxxxx"),
        "{out}"
    );

    std::fs::write(&meta_file, "version=0\nbroker.id=1\n").unwrap();
    let (ok, out) = serve_refusal(&data_dir);
    assert!(!ok && out.contains("ZooKeeper"), "{out}");

    // Restored, the directory serves again, its file unchanged.
    std::fs::write(&meta_file, &meta).unwrap();
    let again = BrokerProcess::spawn(free_port(), &data_dir, &log, &[]);
    assert_serving(&again.bootstrap());
    again.terminate();
    assert_eq!(std::fs::read_to_string(&meta_file).unwrap(), meta);
}
