//! `sluice topic reassign`: move partitions to other brokers
//! (AlterPartitionReassignments), follow the moves in progress
//! (ListPartitionReassignments), or cancel them: what
//! `kafka-reassign-partitions --execute/--verify/--cancel` does, for one
//! topic at a time and without a JSON plan file.

use anyhow::{bail, Context};
use serde_json::json;
use sluice_client::{Admin, OngoingReassignment, PartitionMove};
use std::time::{Duration, Instant};

use crate::output::{ids, print_json, print_line, print_table, table, OutputFormat};
use crate::Global;

/// What `sluice topic reassign` was asked to do.
#[derive(Debug, clap::Args)]
pub(crate) struct ReassignArgs {
    /// Topic name.
    name: String,
    /// The partition to move or cancel, repeatable (every partition of
    /// the topic when omitted).
    #[arg(long)]
    partition: Vec<i32>,
    /// The target replicas, broker ids separated by commas (the first is
    /// the preferred leader).
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["cancel", "verify"])]
    replicas: Vec<i32>,
    /// Cancel the moves in progress, back to the replicas they began with.
    #[arg(long, conflicts_with = "verify")]
    cancel: bool,
    /// Only show the moves in progress.
    #[arg(long)]
    verify: bool,
    /// After starting the moves, wait until they are complete (every target
    /// replica in sync), up to this many seconds.
    #[arg(long, value_name = "SECONDS", conflicts_with_all = ["cancel", "verify"])]
    wait: Option<u64>,
}

pub(crate) async fn run(global: &Global, admin: &Admin, args: ReassignArgs) -> anyhow::Result<()> {
    let json = global.output == OutputFormat::Json;
    let topic = args.name.clone();
    if args.verify {
        let ongoing = admin
            .list_partition_reassignments(Some(std::slice::from_ref(&topic)))
            .await?;
        return show(json, &topic, &ongoing);
    }
    if !args.cancel && args.replicas.is_empty() {
        bail!("say where to move the partitions (--replicas 2,3), or --cancel, or --verify");
    }
    let partitions = match args.partition.is_empty() {
        false => args.partition.clone(),
        true => admin
            .describe_topic(&topic)
            .await
            .with_context(|| format!("describing topic '{topic}'"))?
            .partitions
            .iter()
            .map(|p| p.partition)
            .collect(),
    };
    let target = (!args.cancel).then(|| args.replicas.clone());
    let moves: Vec<PartitionMove> = partitions
        .iter()
        .map(|partition| PartitionMove {
            topic: topic.clone(),
            partition: *partition,
            replicas: target.clone(),
        })
        .collect();
    let results = admin.alter_partition_reassignments(&moves).await?;
    let failures: Vec<String> = results
        .iter()
        .filter_map(|r| {
            let (name, message) = r.error.as_ref()?;
            Some(format!("{}-{}: {name} {message}", r.topic, r.partition))
        })
        .collect();
    if !failures.is_empty() {
        bail!("the broker refused:\n{}", failures.join("\n"));
    }
    let done = if args.cancel { "cancelled" } else { "started" };
    if let Some(seconds) = args.wait {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let ongoing = admin
                .list_partition_reassignments(Some(std::slice::from_ref(&topic)))
                .await?;
            let waiting: Vec<&OngoingReassignment> = ongoing
                .iter()
                .filter(|o| partitions.contains(&o.partition))
                .collect();
            if waiting.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                let names: Vec<String> = waiting
                    .iter()
                    .map(|o| format!("{}-{} (adding {})", o.topic, o.partition, ids(&o.adding)))
                    .collect();
                bail!("still moving after {seconds} s: {}", names.join(", "));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let state = if args.wait.is_some() {
        "complete"
    } else {
        done
    };
    if json {
        return print_json(&json!({
            "topic": topic, "partitions": partitions, "replicas": target, "state": state,
        }));
    }
    let what = match &target {
        Some(replicas) => format!("to brokers {}", ids(replicas)),
        None => "back to their replicas".to_string(),
    };
    print_line(&format!(
        "Reassignment of {topic} partitions {} {what} {state}.",
        ids(&partitions)
    ))
}

fn show(json: bool, topic: &str, ongoing: &[OngoingReassignment]) -> anyhow::Result<()> {
    if json {
        return print_json(&json!(ongoing
            .iter()
            .map(|o| json!({
                "topic": o.topic, "partition": o.partition, "replicas": o.replicas,
                "adding": o.adding, "removing": o.removing,
            }))
            .collect::<Vec<_>>()));
    }
    if ongoing.is_empty() {
        return print_line(&format!("No reassignment of {topic} is in progress."));
    }
    let mut t = table(&["Topic", "Partition", "Replicas", "Adding", "Removing"]);
    for o in ongoing {
        t.add_row(vec![
            o.topic.clone(),
            o.partition.to_string(),
            ids(&o.replicas),
            ids(&o.adding),
            ids(&o.removing),
        ]);
    }
    print_table(&t)
}
