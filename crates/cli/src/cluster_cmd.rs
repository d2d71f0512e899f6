//! `sluice cluster ...`

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use sluice_client::Admin;

use crate::output::{print_json, print_line, print_table, table, OutputFormat};
use crate::Global;

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// Show the cluster id, the controller, the brokers, and the partitions
    /// that are under-replicated (fewer in-sync replicas than replicas) or
    /// offline (no leader).
    Describe,
}

pub(crate) async fn run(global: &Global, cmd: ClusterCommand) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::Describe => {
            let admin = Admin::connect(global.client_config())
                .await
                .context("connecting to the cluster")?;
            let d = admin.describe_cluster().await?;
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
