//! `sluice topic ...`

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use sluice_client::{Admin, AlterConfigOp, ConfigResource, NewTopic, OffsetSpec};
use sluice_protocol::error;

use crate::output::{
    ids, parse_key_value, print_json, print_line, print_table, table, OutputFormat,
};
use crate::Global;

#[derive(Debug, Subcommand)]
pub(crate) enum TopicCommand {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions (broker default when omitted).
        #[arg(long)]
        partitions: Option<i32>,
        /// Replication factor (broker default when omitted).
        #[arg(long)]
        replication_factor: Option<i16>,
        /// Topic config, repeatable (e.g. --config retention.ms=86400000).
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        /// Only check that the topic could be created.
        #[arg(long)]
        validate_only: bool,
    },
    /// List topics.
    List,
    /// Show partitions, leaders, replicas, ISR and offsets of a topic.
    Describe {
        /// Topic name.
        name: String,
        /// Also show the topic's configs and where each value comes from.
        #[arg(long)]
        configs: bool,
    },
    /// Delete a topic.
    Delete {
        /// Topic name.
        name: String,
    },
    /// Change topic configs.
    AlterConfig {
        /// Topic name.
        name: String,
        /// Set a config, repeatable.
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        /// Remove a config override (back to the default), repeatable.
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Delete the records of a partition below an offset (DeleteRecords):
    /// the partition's log start offset moves up to it.
    DeleteRecords {
        /// Topic name.
        name: String,
        /// Partition.
        #[arg(long)]
        partition: i32,
        /// Delete every record below this offset; -1 deletes up to the high
        /// watermark.
        #[arg(long, allow_negative_numbers = true)]
        before_offset: i64,
    },
    /// Move partitions to other brokers (the new replicas copy the data,
    /// then the old ones are dropped), show the moves in progress
    /// (--verify), or cancel them (--cancel).
    Reassign(crate::reassign::ReassignArgs),
    /// Increase the number of partitions of a topic.
    AddPartitions {
        /// Topic name.
        name: String,
        /// The new total number of partitions.
        #[arg(long)]
        partitions: i32,
    },
}

pub(crate) async fn run(global: &Global, cmd: TopicCommand) -> anyhow::Result<()> {
    let admin = Admin::connect(global.client_config()?)
        .await
        .context("connecting to the cluster")?;
    let json = global.output == OutputFormat::Json;
    match cmd {
        TopicCommand::Reassign(args) => crate::reassign::run(global, &admin, args).await,
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            configs,
            validate_only,
        } => {
            let topic = NewTopic {
                name: name.clone(),
                num_partitions: partitions.unwrap_or(-1),
                replication_factor: replication_factor.unwrap_or(-1),
                configs,
            };
            admin.create_topics(&[topic], validate_only).await?;
            if json {
                print_json(&json!({"topic": name, "created": !validate_only, "validated": true}))
            } else if validate_only {
                print_line(&format!("Topic '{name}' can be created (validate only)."))
            } else {
                print_line(&format!("Created topic '{name}'."))
            }
        }
        TopicCommand::List => {
            let topics = admin.list_topics().await?;
            if json {
                return print_json(&json!(topics
                    .iter()
                    .map(|t| json!({
                        "name": t.name,
                        "partitions": t.partitions.len(),
                        "replication_factor": t.partitions.first().map_or(0, |p| p.replicas.len()),
                        "internal": t.is_internal,
                    }))
                    .collect::<Vec<_>>()));
            }
            let mut t = table(&["Topic", "Partitions", "Replication factor"]);
            for tm in &topics {
                t.add_row(vec![
                    tm.name.clone(),
                    tm.partitions.len().to_string(),
                    tm.partitions
                        .first()
                        .map_or(0, |p| p.replicas.len())
                        .to_string(),
                ]);
            }
            if topics.is_empty() {
                print_line("No topics.")
            } else {
                print_table(&t)
            }
        }
        TopicCommand::Describe { name, configs } => {
            let tm = admin.describe_topic(&name).await?;
            let mut specs = Vec::new();
            for p in &tm.partitions {
                specs.push((name.clone(), p.partition, OffsetSpec::Earliest));
                specs.push((name.clone(), p.partition, OffsetSpec::Latest));
            }
            let offsets = admin.list_offsets(&specs).await?;
            let cfgs = if configs {
                admin
                    .describe_configs(&ConfigResource::Topic(name.clone()))
                    .await?
            } else {
                Vec::new()
            };
            if json {
                let parts: Vec<_> = tm
                    .partitions
                    .iter()
                    .enumerate()
                    .map(|(i, p)| {
                        json!({
                            "partition": p.partition,
                            "leader": p.leader,
                            "leader_epoch": p.leader_epoch,
                            "replicas": p.replicas,
                            "isr": p.isr,
                            "offline_replicas": p.offline_replicas,
                            "log_start_offset": offsets[2 * i].offset,
                            "log_end_offset": offsets[2 * i + 1].offset,
                        })
                    })
                    .collect();
                let mut doc = json!({
                    "name": tm.name,
                    "topic_id": uuid_string(&tm.topic_id),
                    "internal": tm.is_internal,
                    "partitions": parts,
                });
                if configs {
                    doc["configs"] = json!(cfgs
                        .iter()
                        .map(|c| json!({
                            "name": c.name,
                            "value": c.value,
                            "source": c.source.name(),
                            "read_only": c.read_only,
                            "sensitive": c.sensitive,
                        }))
                        .collect::<Vec<_>>());
                }
                return print_json(&doc);
            }
            print_line(&format!(
                "Topic: {}  Id: {}  Partitions: {}  Replication factor: {}",
                tm.name,
                uuid_string(&tm.topic_id),
                tm.partitions.len(),
                tm.partitions.first().map_or(0, |p| p.replicas.len())
            ))?;
            let mut t = table(&[
                "Partition",
                "Leader",
                "Replicas",
                "ISR",
                "Log start",
                "Log end",
            ]);
            for (i, p) in tm.partitions.iter().enumerate() {
                t.add_row(vec![
                    p.partition.to_string(),
                    if p.leader >= 0 {
                        p.leader.to_string()
                    } else {
                        "none".into()
                    },
                    ids(&p.replicas),
                    ids(&p.isr),
                    offsets[2 * i].offset.to_string(),
                    offsets[2 * i + 1].offset.to_string(),
                ]);
            }
            print_table(&t)?;
            if configs {
                let mut t = table(&["Config", "Value", "Source"]);
                for c in &cfgs {
                    t.add_row(vec![
                        c.name.clone(),
                        if c.sensitive {
                            "(sensitive)".to_string()
                        } else {
                            c.value.clone().unwrap_or_else(|| "null".into())
                        },
                        c.source.name().to_string(),
                    ]);
                }
                print_table(&t)?;
            }
            Ok(())
        }
        TopicCommand::Delete { name } => {
            admin.delete_topics(std::slice::from_ref(&name)).await?;
            if json {
                print_json(&json!({"topic": name, "deleted": true}))
            } else {
                print_line(&format!("Deleted topic '{name}'."))
            }
        }
        TopicCommand::AlterConfig { name, set, delete } => {
            if set.is_empty() && delete.is_empty() {
                anyhow::bail!("nothing to change: give --set KEY=VALUE and/or --delete KEY");
            }
            let mut ops: Vec<AlterConfigOp> = set
                .iter()
                .map(|(k, v)| AlterConfigOp::Set(k.clone(), v.clone()))
                .collect();
            ops.extend(delete.iter().map(|k| AlterConfigOp::Delete(k.clone())));
            admin
                .incremental_alter_configs(&ConfigResource::Topic(name.clone()), &ops, false)
                .await?;
            if json {
                print_json(&json!({
                    "topic": name,
                    "set": set.iter().map(|(k, v)| json!({"name": k, "value": v})).collect::<Vec<_>>(),
                    "deleted": delete,
                }))
            } else {
                print_line(&format!(
                    "Updated configs of topic '{name}' ({} set, {} deleted).",
                    set.len(),
                    delete.len()
                ))
            }
        }
        TopicCommand::DeleteRecords {
            name,
            partition,
            before_offset,
        } => {
            let low_watermark = delete_records(&admin, &name, partition, before_offset).await?;
            if json {
                print_json(&json!({
                    "topic": name,
                    "partition": partition,
                    "low_watermark": low_watermark,
                }))
            } else {
                print_line(&format!(
                    "Deleted records of '{name}' partition {partition} below offset \
                     {low_watermark}: the low watermark is now {low_watermark}."
                ))
            }
        }
        TopicCommand::AddPartitions { name, partitions } => {
            admin.create_partitions(&name, partitions, false).await?;
            if json {
                print_json(&json!({"topic": name, "partitions": partitions}))
            } else {
                print_line(&format!("Topic '{name}' now has {partitions} partitions."))
            }
        }
    }
}

/// DeleteRecords with the broker's two refusals explained: an offset past
/// the high watermark (named, so the user sees the limit) and a topic
/// without the `delete` cleanup policy.
async fn delete_records(
    admin: &Admin,
    topic: &str,
    partition: i32,
    before_offset: i64,
) -> anyhow::Result<i64> {
    match admin.delete_records(topic, partition, before_offset).await {
        Ok(low_watermark) => Ok(low_watermark),
        Err(e) if e.code() == Some(error::OFFSET_OUT_OF_RANGE) => {
            let spec = [(topic.to_string(), partition, OffsetSpec::Latest)];
            let high_watermark = admin
                .list_offsets(&spec)
                .await
                .ok()
                .and_then(|offsets| offsets.first().map(|o| o.offset.to_string()))
                .unwrap_or_else(|| "unknown".into());
            anyhow::bail!(
                "cannot delete records of '{topic}' partition {partition} below offset \
                 {before_offset}: the offset must be between 0 and the high watermark \
                 ({high_watermark}), or -1 for the high watermark (OFFSET_OUT_OF_RANGE)"
            )
        }
        Err(e) if e.code() == Some(error::POLICY_VIOLATION) => anyhow::bail!(
            "cannot delete records of '{topic}': its cleanup.policy does not include \
             'delete', and Kafka allows DeleteRecords only then (POLICY_VIOLATION); \
             set cleanup.policy=compact,delete to allow it"
        ),
        Err(e) => Err(e.into()),
    }
}

fn uuid_string(id: &[u8; 16]) -> String {
    let h: String = id.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
