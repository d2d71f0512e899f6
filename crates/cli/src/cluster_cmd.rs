//! `sluice cluster ...`

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use serde_json::json;
use sluice_client::{Admin, ElectionType};

use crate::output::{print_json, print_line, print_table, table, OutputFormat};
use crate::Global;

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// Show the cluster id, the controller quorum (leader, epoch, each
    /// voter's lag), the brokers, and the partitions that are
    /// under-replicated (fewer in-sync replicas than replicas) or offline
    /// (no leader).
    Describe,
    /// Move partitions' leadership to their preferred (first) replica, or
    /// give partitions without a leader one (unclean: from outside the
    /// ISR, losing what only the lost in-sync replicas had). Without
    /// --topic, every partition that needs it.
    ElectLeaders {
        #[arg(long, value_enum, default_value = "preferred")]
        election_type: Election,
        /// Only this topic's partitions.
        #[arg(long)]
        topic: Option<String>,
        /// Only this partition of --topic.
        #[arg(long, requires = "topic")]
        partition: Option<i32>,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum Election {
    Preferred,
    Unclean,
}

pub(crate) async fn run(global: &Global, cmd: ClusterCommand) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::ElectLeaders {
            election_type,
            topic,
            partition,
        } => elect_leaders(global, election_type, topic, partition).await,
        ClusterCommand::Describe => {
            let admin = Admin::connect(global.client_config()?)
                .await
                .context("connecting to the cluster")?;
            let d = admin.describe_cluster().await?;
            let quorum = admin.describe_quorum().await?;
            let mut degraded = Vec::new();
            for topic in admin.list_topics().await? {
                for p in &topic.partitions {
                    let state = if p.leader < 0 {
                        "offline"
                    } else if p.isr.len() < p.replicas.len() {
                        "under-replicated"
                    } else {
                        continue;
                    };
                    degraded.push((topic.name.clone(), p.clone(), state));
                }
            }
            match global.output {
                OutputFormat::Json => print_json(&json!({
                    "cluster_id": d.cluster_id,
                    "controller_id": d.controller_id,
                    "quorum": {
                        "leader": quorum.leader_id,
                        "epoch": quorum.leader_epoch,
                        "high_watermark": quorum.high_watermark,
                        "voters": quorum.voters.iter().map(|v| json!({
                            "id": v.id, "log_end_offset": v.log_end_offset, "lag": v.lag,
                        })).collect::<Vec<_>>(),
                    },
                    "brokers": d.brokers.iter().map(|b| json!({
                        "id": b.id, "host": b.host, "port": b.port, "rack": b.rack,
                    })).collect::<Vec<_>>(),
                    "degraded_partitions": degraded.iter().map(|(topic, p, state)| json!({
                        "topic": topic, "partition": p.partition, "state": state,
                        "leader": p.leader, "replicas": p.replicas, "isr": p.isr,
                    })).collect::<Vec<_>>(),
                })),
                OutputFormat::Table => {
                    print_line(&format!("Cluster id: {}", d.cluster_id))?;
                    print_line(&format!("Controller: {}", d.controller_id))?;
                    print_line(&format!(
                        "Quorum: leader {}, epoch {}, high watermark {}",
                        quorum.leader_id, quorum.leader_epoch, quorum.high_watermark
                    ))?;
                    let mut voters = table(&["Voter", "Log end", "Lag"]);
                    for v in &quorum.voters {
                        voters.add_row(vec![
                            v.id.to_string(),
                            v.log_end_offset.to_string(),
                            v.lag.map_or_else(|| "-".to_string(), |l| l.to_string()),
                        ]);
                    }
                    print_table(&voters)?;
                    let mut t = table(&["Broker", "Host", "Port", "Rack", "Role"]);
                    for b in &d.brokers {
                        t.add_row(vec![
                            b.id.to_string(),
                            b.host.clone(),
                            b.port.to_string(),
                            b.rack.clone().unwrap_or_else(|| "-".into()),
                            if b.id == d.controller_id {
                                "controller"
                            } else {
                                ""
                            }
                            .to_string(),
                        ]);
                    }
                    print_table(&t)?;
                    if degraded.is_empty() {
                        return print_line("Every partition has all its replicas in sync.");
                    }
                    let ids =
                        |v: &[i32]| v.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
                    let mut t =
                        table(&["Topic", "Partition", "State", "Leader", "Replicas", "ISR"]);
                    for (topic, p, state) in &degraded {
                        t.add_row(vec![
                            topic.clone(),
                            p.partition.to_string(),
                            state.to_string(),
                            p.leader.to_string(),
                            ids(&p.replicas),
                            ids(&p.isr),
                        ]);
                    }
                    print_table(&t)
                }
            }
        }
    }
}

async fn elect_leaders(
    global: &Global,
    election: Election,
    topic: Option<String>,
    partition: Option<i32>,
) -> anyhow::Result<()> {
    let admin = Admin::connect(global.client_config()?)
        .await
        .context("connecting to the cluster")?;
    let asked: Option<Vec<(String, i32)>> = match (topic, partition) {
        (None, _) => None,
        (Some(topic), Some(partition)) => Some(vec![(topic, partition)]),
        (Some(topic), None) => {
            let described = admin.describe_topic(&topic).await?;
            Some(
                described
                    .partitions
                    .iter()
                    .map(|p| (topic.clone(), p.partition))
                    .collect(),
            )
        }
    };
    let kind = match election {
        Election::Preferred => ElectionType::Preferred,
        Election::Unclean => ElectionType::Unclean,
    };
    let results = admin.elect_leaders(kind, asked.as_deref()).await?;
    let failed = results.iter().filter(|r| {
        r.error
            .as_ref()
            .is_some_and(|(name, _)| name != "ELECTION_NOT_NEEDED")
    });
    let failures: Vec<String> = failed
        .map(|r| {
            let (name, message) = r.error.clone().unwrap_or_default();
            format!("{}-{}: {name} {message}", r.topic, r.partition)
        })
        .collect();
    match global.output {
        OutputFormat::Json => print_json(&json!(results
            .iter()
            .map(|r| json!({
                "topic": r.topic, "partition": r.partition,
                "error": r.error.as_ref().map(|(name, _)| name),
                "message": r.error.as_ref().map(|(_, message)| message),
            }))
            .collect::<Vec<_>>()))?,
        OutputFormat::Table => {
            if results.is_empty() {
                print_line("No partition needed an election.")?;
            } else {
                let mut t = table(&["Topic", "Partition", "Result"]);
                for r in &results {
                    t.add_row(vec![
                        r.topic.clone(),
                        r.partition.to_string(),
                        match &r.error {
                            None => "elected".to_string(),
                            Some((name, _)) => name.clone(),
                        },
                    ]);
                }
                print_table(&t)?;
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("no leader elected for {}", failures.join("; "))
    }
}
