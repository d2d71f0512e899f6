//! `sluice quota ...`: client quotas (DescribeClientQuotas,
//! AlterClientQuotas), as `kafka-configs.sh --entity-type
//! users|clients|ips` manages them: byte rates and request time per user
//! and client id, connection creation rates per IP address.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::json;
use sluice_client::{Admin, QuotaEntity, QuotaMatch};

use crate::output::{print_json, print_line, print_table, table, OutputFormat};
use crate::Global;

#[derive(Debug, Subcommand)]
pub(crate) enum QuotaCommand {
    /// Show quotas: of exactly the entity given, or of every entity.
    Describe {
        #[command(flatten)]
        entity: EntityArgs,
    },
    /// Set and remove quotas of one entity.
    Alter {
        #[command(flatten)]
        entity: EntityArgs,
        /// KEY=VALUE to set (repeatable): producer_byte_rate,
        /// consumer_byte_rate, request_percentage, controller_mutation_rate
        /// for users and client ids; connection_creation_rate for IPs.
        #[arg(long = "add", value_name = "KEY=VALUE", value_parser = parse_setting)]
        add: Vec<(String, f64)>,
        /// A key to remove (repeatable).
        #[arg(long = "remove", value_name = "KEY")]
        remove: Vec<String>,
        /// Only check the change; apply nothing.
        #[arg(long)]
        validate_only: bool,
    },
}

/// The entity a quota is for: a user and/or client id, or an IP address;
/// each by name or as the default for all without their own.
#[derive(Debug, Args)]
pub(crate) struct EntityArgs {
    /// A user (the principal's name, without User:).
    #[arg(long, conflicts_with = "user_default")]
    user: Option<String>,
    /// The default of every user without a quota of their own.
    #[arg(long)]
    user_default: bool,
    /// A client id.
    #[arg(long, conflicts_with = "client_id_default")]
    client_id: Option<String>,
    /// The default of every client id without a quota of its own.
    #[arg(long)]
    client_id_default: bool,
    /// A client IP address.
    #[arg(long, conflicts_with = "ip_default")]
    ip: Option<String>,
    /// The default of every IP address without a quota of its own.
    #[arg(long)]
    ip_default: bool,
}

impl EntityArgs {
    fn entity(&self) -> QuotaEntity {
        let mut entity = Vec::new();
        let mut add = |t: &str, name: &Option<String>, default: bool| {
            if name.is_some() || default {
                entity.push((t.to_string(), name.clone()));
            }
        };
        add("user", &self.user, self.user_default);
        add("client-id", &self.client_id, self.client_id_default);
        add("ip", &self.ip, self.ip_default);
        entity
    }
}

fn parse_setting(s: &str) -> Result<(String, f64), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not KEY=VALUE"))?;
    let value = value
        .trim()
        .parse::<f64>()
        .map_err(|_| format!("'{value}' is not a number"))?;
    Ok((key.trim().to_string(), value))
}

/// `user=alice, client-id=<default>`, as `kafka-configs.sh` names them.
fn describe_entity(entity: &QuotaEntity) -> String {
    entity
        .iter()
        .map(|(t, name)| format!("{t}={}", name.as_deref().unwrap_or("<default>")))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) async fn run(global: &Global, cmd: QuotaCommand) -> anyhow::Result<()> {
    let admin = Admin::connect(global.client_config()?)
        .await
        .context("connecting to the cluster")?;
    match cmd {
        QuotaCommand::Describe { entity } => {
            let entity = entity.entity();
            let filter: Vec<_> = entity
                .iter()
                .map(|(t, name)| {
                    let matching = name.clone().map_or(QuotaMatch::Default, QuotaMatch::Exact);
                    (t.clone(), matching)
                })
                .collect();
            let strict = !filter.is_empty();
            let mut found = admin.describe_client_quotas(&filter, strict).await?;
            found.sort_by(|a, b| a.entity.cmp(&b.entity));
            match global.output {
                OutputFormat::Json => print_json(&json!(found
                    .iter()
                    .map(|q| json!({
                        "entity": q.entity.iter().map(|(t, n)| json!({"type": t, "name": n})).collect::<Vec<_>>(),
                        "quotas": q.values.iter().map(|(k, v)| (k.clone(), json!(v))).collect::<serde_json::Map<_, _>>(),
                    }))
                    .collect::<Vec<_>>())),
                OutputFormat::Table => {
                    let mut t = table(&["Entity", "Quota", "Value"]);
                    for q in &found {
                        for (key, value) in &q.values {
                            t.add_row(vec![describe_entity(&q.entity), key.clone(), value.to_string()]);
                        }
                    }
                    print_table(&t)
                }
            }
        }
        QuotaCommand::Alter {
            entity,
            add,
            remove,
            validate_only,
        } => {
            let entity = entity.entity();
            if entity.is_empty() {
                bail!("name the entity: --user, --client-id or --ip (or their --*-default)");
            }
            if add.is_empty() && remove.is_empty() {
                bail!("nothing to change: give --add KEY=VALUE or --remove KEY");
            }
            let ops: Vec<_> = add
                .into_iter()
                .map(|(k, v)| (k, Some(v)))
                .chain(remove.into_iter().map(|k| (k, None)))
                .collect();
            admin
                .alter_client_quotas(&entity, &ops, validate_only)
                .await?;
            let verb = if validate_only {
                "Validated"
            } else {
                "Altered"
            };
            print_line(&format!("{verb} quotas of {}.", describe_entity(&entity)))
        }
    }
}
