//! `sluice cluster ...`

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use sluice_client::Admin;

use crate::output::{print_json, print_line, print_table, table, OutputFormat};
use crate::Global;

#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// Show the cluster id, the controller and the brokers.
    Describe,
}

pub(crate) async fn run(global: &Global, cmd: ClusterCommand) -> anyhow::Result<()> {
    match cmd {
        ClusterCommand::Describe => {
            let admin = Admin::connect(global.client_config())
                .await
                .context("connecting to the cluster")?;
            let d = admin.describe_cluster().await?;
            match global.output {
                OutputFormat::Json => print_json(&json!({
                    "cluster_id": d.cluster_id,
                    "controller_id": d.controller_id,
                    "brokers": d.brokers.iter().map(|b| json!({
                        "id": b.id, "host": b.host, "port": b.port, "rack": b.rack,
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
                    print_table(&t)
                }
            }
        }
    }
}
