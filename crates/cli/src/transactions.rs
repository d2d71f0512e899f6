//! `sluice transactions`: list and describe transactional ids, like Kafka's
//! `kafka-transactions.sh`.

use anyhow::Context;
use clap::Subcommand;
use serde_json::json;
use sluice_client::{Admin, TransactionFilters};

use crate::output::{print_json, print_line, print_table, table, OutputFormat};
use crate::Global;

#[derive(Debug, Subcommand)]
pub(crate) enum TransactionsCommand {
    /// List the transactional ids every broker coordinates.
    List {
        /// Only transactions in this state (Empty, Ongoing, PrepareCommit,
        /// PrepareAbort, CompleteCommit, CompleteAbort, Dead,
        /// PrepareEpochFence), repeatable.
        #[arg(long = "state", value_name = "STATE")]
        states: Vec<String>,
        /// Only transactional ids with this producer id, repeatable.
        #[arg(long = "producer-id", value_name = "N")]
        producer_ids: Vec<i64>,
    },
    /// Show transactional ids as their coordinator sees them: producer id
    /// and epoch, state, timeout, start time of the open transaction and
    /// its partitions.
    Describe {
        /// Transactional ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

pub(crate) async fn run(global: &Global, cmd: TransactionsCommand) -> anyhow::Result<()> {
    let admin = Admin::connect(global.client_config()?)
        .await
        .context("connecting to the cluster")?;
    let json = global.output == OutputFormat::Json;
    match cmd {
        TransactionsCommand::List {
            states,
            producer_ids,
        } => {
            let filters = TransactionFilters {
                states,
                producer_ids,
            };
            list(&admin, &filters, json).await
        }
        TransactionsCommand::Describe { ids } => describe(&admin, &ids, json).await,
    }
}

async fn list(admin: &Admin, filters: &TransactionFilters, json: bool) -> anyhow::Result<()> {
    let listed = admin.list_transactions(filters).await?;
    if json {
        return print_json(&json!(listed
            .iter()
            .map(|t| json!({
                "transactional_id": t.transactional_id,
                "producer_id": t.producer_id,
                "state": t.state,
                "coordinator": t.coordinator,
            }))
            .collect::<Vec<_>>()));
    }
    if listed.is_empty() {
        return print_line("No transactional ids.");
    }
    let mut t = table(&["Transactional id", "Producer id", "State", "Coordinator"]);
    for l in &listed {
        t.add_row(vec![
            l.transactional_id.clone(),
            l.producer_id.to_string(),
            l.state.clone(),
            l.coordinator.to_string(),
        ]);
    }
    print_table(&t)
}

async fn describe(admin: &Admin, ids: &[String], json: bool) -> anyhow::Result<()> {
    let described = admin.describe_transactions(ids).await?;
    if json {
        return print_json(&json!(described
            .iter()
            .map(|d| json!({
                "transactional_id": d.transactional_id,
                "coordinator": d.coordinator,
                "state": d.state,
                "producer_id": d.producer_id,
                "producer_epoch": d.producer_epoch,
                "timeout_ms": d.timeout_ms,
                "start_time_ms": (d.start_time_ms >= 0).then_some(d.start_time_ms),
                "partitions": d.partitions.iter()
                    .map(|(t, p)| json!({"topic": t, "partition": p}))
                    .collect::<Vec<_>>(),
            }))
            .collect::<Vec<_>>()));
    }
    let mut t = table(&[
        "Transactional id",
        "Producer id",
        "Epoch",
        "State",
        "Timeout",
        "Start time",
        "Partitions",
    ]);
    for d in &described {
        let partitions = d
            .partitions
            .iter()
            .map(|(topic, p)| format!("{topic}-{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        t.add_row(vec![
            d.transactional_id.clone(),
            d.producer_id.to_string(),
            d.producer_epoch.to_string(),
            d.state.clone(),
            format!("{} ms", d.timeout_ms),
            if d.start_time_ms >= 0 {
                utc_time(d.start_time_ms)
            } else {
                "-".into()
            },
            if partitions.is_empty() {
                "-".into()
            } else {
                partitions
            },
        ]);
    }
    print_table(&t)
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for ms since the epoch.
fn utc_time(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01
/// (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_times() {
        assert_eq!(utc_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_time(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(utc_time(1_795_325_494_007), "2026-11-22T05:31:34.007Z");
    }
}
