//! `sluice dev ...`: local set-ups for trying Sluice out.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

#[derive(Debug, Subcommand)]
pub(crate) enum DevCommand {
    /// Start a local cluster of combined broker+controller nodes (one
    /// `sluice serve` process each) on loopback; Ctrl-C (or SIGTERM) stops
    /// them all. A node that dies leaves the others running (kill one to
    /// watch its partitions fail over).
    Cluster(ClusterArgs),
    /// Make a local CA, a broker certificate and a client certificate (PEM
    /// files) for trying SSL, mTLS and SASL_SSL listeners; prints the
    /// broker and client settings that use them.
    Certs(crate::dev_certs::CertsArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ClusterArgs {
    /// How many nodes (controller voters); 3 tolerates one failure.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=9))]
    nodes: u16,
    /// Where the nodes keep their data and logs (node-N and node-N.log).
    #[arg(long, default_value = "./sluice-dev-cluster")]
    dir: PathBuf,
    /// Node N serves clients on BASE+100*(N-1), its controller on the next
    /// port and HTTP (console, /metrics) on BASE+100*(N-1)+2552.
    #[arg(long, default_value_t = 9092)]
    base_port: u16,
}

struct Node {
    id: u16,
    client: u16,
    controller: u16,
    http: u16,
    log: PathBuf,
}

pub(crate) async fn run(cmd: DevCommand) -> anyhow::Result<()> {
    match cmd {
        DevCommand::Cluster(args) => cluster(args).await,
        DevCommand::Certs(args) => crate::dev_certs::run(args),
    }
}

async fn cluster(args: ClusterArgs) -> anyhow::Result<()> {
    let nodes: Vec<Node> = (1..=args.nodes)
        .map(|id| {
            let base = u32::from(args.base_port) + 100 * u32::from(id - 1);
            let port =
                |offset: u32| u16::try_from(base + offset).context("--base-port is too high");
            Ok(Node {
                id,
                client: port(0)?,
                controller: port(1)?,
                http: port(2552)?,
                log: args.dir.join(format!("node-{id}.log")),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let voters = nodes
        .iter()
        .map(|n| format!("{}@127.0.0.1:{}", n.id, n.controller))
        .collect::<Vec<_>>()
        .join(",");
    let sluice = std::env::current_exe().context("cannot find the sluice binary")?;
    let mut children = Vec::new();
    for node in &nodes {
        children.push((node.id, spawn(&sluice, node, &args.dir, &voters)?));
    }
    let started = wait_listening(&nodes, &mut children).await;
    if let Err(e) = started {
        stop(&mut children).await;
        return Err(e);
    }
    println!("A {}-node Sluice cluster is running:", nodes.len());
    for node in &nodes {
        println!(
            "  node {}: clients 127.0.0.1:{}  controller 127.0.0.1:{}  console http://127.0.0.1:{}  data {}  log {}",
            node.id,
            node.client,
            node.controller,
            node.http,
            args.dir.join(format!("node-{}", node.id)).display(),
            node.log.display()
        );
    }
    let bootstrap = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.client))
        .collect::<Vec<_>>()
        .join(",");
    println!("Try: kcat -b {bootstrap} -L");
    println!("Stop with Ctrl-C.");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot watch for SIGTERM")?;
    // A node that dies (say, killed to watch a failover) leaves the others
    // running; they stop on Ctrl-C, or when none is left.
    let mut exited = Vec::new();
    while exited.len() < children.len() {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            (id, status) = next_exit(&mut children, &exited) => {
                eprintln!("node {id} exited ({status}); the others go on (Ctrl-C stops them)");
                exited.push(id);
            }
        }
    }
    stop(&mut children).await;
    Ok(())
}

fn spawn(sluice: &Path, node: &Node, dir: &Path, voters: &str) -> anyhow::Result<Child> {
    let log = std::fs::File::options()
        .create(true)
        .append(true)
        .open(&node.log)
        .with_context(|| format!("cannot open {}", node.log.display()))?;
    let settings = [
        format!("node.id={}", node.id),
        format!(
            "listeners=PLAINTEXT://127.0.0.1:{},CONTROLLER://127.0.0.1:{}",
            node.client, node.controller
        ),
        "controller.listener.names=CONTROLLER".to_string(),
        format!("controller.quorum.voters={voters}"),
        format!("http.listeners=http://127.0.0.1:{}", node.http),
    ];
    Command::new(sluice)
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.join(format!("node-{}", node.id)))
        .args(settings.iter().flat_map(|s| ["--set", s.as_str()]))
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone()?))
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start node {}", node.id))
}

/// Waits until every node's log says it listens (a node serves once a
/// majority of the voters is up).
async fn wait_listening(nodes: &[Node], children: &mut [(u16, Child)]) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut waiting = Vec::new();
        for node in nodes {
            let log = std::fs::read_to_string(&node.log).unwrap_or_default();
            if !log.contains("Sluice broker listening on") {
                waiting.push(node.id);
            }
        }
        if waiting.is_empty() {
            return Ok(());
        }
        for (id, child) in children.iter_mut() {
            if let Some(status) = child.try_wait()? {
                let log = nodes
                    .iter()
                    .find(|n| n.id == *id)
                    .map(|n| n.log.display().to_string())
                    .unwrap_or_default();
                bail!("node {id} exited ({status}) before it served; see {log}");
            }
        }
        if Instant::now() > deadline {
            bail!("nodes {waiting:?} did not start within a minute; see their logs");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The next node, other than those in `exited`, to exit.
async fn next_exit(
    children: &mut [(u16, Child)],
    exited: &[u16],
) -> (u16, std::process::ExitStatus) {
    loop {
        for (id, child) in children.iter_mut() {
            if exited.contains(id) {
                continue;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return (*id, status);
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// SIGTERM to every node (a clean shutdown each), then wait for them.
async fn stop(children: &mut [(u16, Child)]) {
    for (_, child) in children.iter_mut() {
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
    }
    for (id, child) in children.iter_mut() {
        match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!("node {id} did not stop within 30 s; killing it");
                let _ = child.kill().await;
            }
        }
    }
}
