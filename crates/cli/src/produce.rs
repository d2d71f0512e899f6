//! `sluice produce`: one record per input line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use serde_json::json;
use sluice_client::{
    Acks, Cluster, CompressionType, Producer, ProducerConfig, ProducerRecord, RecordMetadata,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::Semaphore;

use crate::output::{parse_key_value, print_json, print_line, print_table, table, OutputFormat};
use crate::Global;

/// Records allowed to wait for acknowledgement at once.
const MAX_UNACKED: usize = 10_000;

#[derive(Debug, Args)]
pub(crate) struct ProduceArgs {
    /// Topic to write to.
    pub(crate) topic: String,
    /// Read records from this file instead of stdin.
    #[arg(long, value_name = "FILE")]
    pub(crate) file: Option<PathBuf>,
    /// Split each line at the first SEP into key and value.
    #[arg(long, value_name = "SEP")]
    pub(crate) key_separator: Option<String>,
    /// Header added to every record, repeatable.
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub(crate) headers: Vec<(String, String)>,
    /// Write every record to this partition.
    #[arg(long)]
    pub(crate) partition: Option<i32>,
    /// Produce all records as one transaction with this transactional id,
    /// committed after the last one; on any error the transaction is
    /// aborted (consumers with --isolation-level read_committed see none of
    /// it) and the command fails.
    #[arg(long, value_name = "ID")]
    pub(crate) transactional_id: Option<String>,
    /// Acknowledgements to wait for: 0, 1 or all (with all, the producer
    /// is idempotent, as in Kafka).
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    pub(crate) acks: Acks,
    /// Compression: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    pub(crate) compression: CompressionType,
    /// Wait up to this long to fill a batch.
    #[arg(long, default_value_t = 5)]
    pub(crate) linger_ms: u64,
    /// Maximum batch size in bytes.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) batch_size: usize,
}

pub(crate) fn parse_acks(s: &str) -> Result<Acks, String> {
    s.parse().map_err(|e: sluice_client::Error| e.to_string())
}

pub(crate) fn parse_compression(s: &str) -> Result<CompressionType, String> {
    s.parse().map_err(|e: sluice_client::Error| e.to_string())
}

/// Fails with a friendly message when the topic (or partition) is missing.
pub(crate) async fn check_topic(
    cluster: &Cluster,
    topic: &str,
    partition: Option<i32>,
) -> anyhow::Result<i32> {
    cluster
        .refresh_metadata(Some(&[topic.to_string()]))
        .await
        .context("fetching metadata")?;
    let Some(tm) = cluster.topic(topic) else {
        anyhow::bail!(
            "topic '{topic}' does not exist (create it with `sluice topic create {topic}`)"
        );
    };
    let n = tm.partitions.len() as i32;
    if let Some(p) = partition {
        if p < 0 || p >= n {
            anyhow::bail!("topic '{topic}' has no partition {p} (it has {n} partitions)");
        }
    }
    Ok(n)
}

#[derive(Default)]
struct Outcome {
    acked: u64,
    failed: u64,
    first_error: Option<String>,
    /// partition -> (records, first offset, last offset)
    partitions: BTreeMap<i32, (u64, i64, i64)>,
}

impl Outcome {
    fn record(&mut self, res: sluice_client::Result<RecordMetadata>) {
        match res {
            Ok(md) => {
                self.acked += 1;
                let e = self
                    .partitions
                    .entry(md.partition)
                    .or_insert((0, md.offset, md.offset));
                e.0 += 1;
                if md.offset >= 0 {
                    e.1 = if e.1 < 0 {
                        md.offset
                    } else {
                        e.1.min(md.offset)
                    };
                    e.2 = e.2.max(md.offset);
                }
            }
            Err(e) => {
                self.failed += 1;
                self.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

pub(crate) async fn run(global: &Global, args: ProduceArgs) -> anyhow::Result<()> {
    let mut client = global.client_config()?;
    client.client_id = "sluice-console-producer".into();
    let cluster = Cluster::connect(client)
        .await
        .context("connecting to the cluster")?;
    check_topic(&cluster, &args.topic, args.partition).await?;
    if args.transactional_id.is_some() && args.acks != Acks::All {
        anyhow::bail!("--transactional-id needs --acks all");
    }
    let config = ProducerConfig {
        acks: args.acks,
        // As in the Java client: idempotent unless acks says otherwise.
        enable_idempotence: args.acks == Acks::All,
        compression: args.compression,
        linger: Duration::from_millis(args.linger_ms),
        batch_size: args.batch_size,
        delivery_timeout: Duration::from_secs(30),
        transactional_id: args.transactional_id.clone(),
        ..Default::default()
    };
    let producer = Producer::new(cluster, config)?;
    if args.transactional_id.is_some() {
        producer
            .init_transactions()
            .await
            .context("initializing transactions")?;
        producer.begin_transaction()?;
    }
    let input: Box<dyn AsyncRead + Unpin + Send> = match &args.file {
        Some(path) => Box::new(
            tokio::fs::File::open(path)
                .await
                .with_context(|| format!("cannot open {}", path.display()))?,
        ),
        None => Box::new(tokio::io::stdin()),
    };
    let reader = BufReader::new(input);
    let headers: Vec<(String, Option<Bytes>)> = args
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Some(Bytes::from(v.clone()))))
        .collect();
    let outcome = Arc::new(Mutex::new(Outcome::default()));
    let start = Instant::now();
    let sent = send_lines(&producer, &args, reader, &headers, &outcome).await;
    let committed = match (&args.transactional_id, &sent) {
        (None, _) => {
            producer.close().await;
            false
        }
        (Some(_), Ok(_)) => {
            let failed = outcome.lock().unwrap_or_else(|e| e.into_inner()).failed > 0;
            // A failed record makes the commit fail too, and then we abort.
            match producer.commit_transaction().await {
                Ok(()) if !failed => true,
                result => {
                    let aborted = producer.abort_transaction().await;
                    producer.close().await;
                    let why = match result {
                        Err(sluice_client::Error::AbortableTransaction(cause)) => cause.to_string(),
                        Err(e) => e.to_string(),
                        Ok(()) => "a record failed".into(),
                    };
                    return Err(match aborted {
                        Ok(()) => anyhow::anyhow!("transaction aborted: {why}"),
                        Err(e) => anyhow::anyhow!(
                            "transaction not committed ({why}), and aborting it failed: {e}"
                        ),
                    });
                }
            }
        }
        (Some(_), Err(_)) => {
            if let Err(e) = producer.abort_transaction().await {
                eprintln!("error: aborting the transaction failed: {e}");
            }
            producer.close().await;
            false
        }
    };
    let (line_no, bytes) = sent.map_err(|e| match &args.transactional_id {
        Some(_) => e.context("transaction aborted"),
        None => e,
    })?;
    let elapsed = start.elapsed();
    let o = std::mem::take(&mut *outcome.lock().unwrap_or_else(|e| e.into_inner()));
    match global.output {
        OutputFormat::Json => print_json(&json!({
            "topic": args.topic,
            "records": line_no,
            "acknowledged": o.acked,
            "failed": o.failed,
            "bytes": bytes,
            "elapsed_ms": elapsed.as_millis() as u64,
            "partitions": o.partitions.iter().map(|(p, (n, first, last))| json!({
                "partition": p, "records": n, "first_offset": first, "last_offset": last,
            })).collect::<Vec<_>>(),
            "transactional_id": args.transactional_id,
            "committed": committed,
            "error": o.first_error,
        }))?,
        OutputFormat::Table => {
            print_line(&format!(
                "Produced {} of {} records ({} bytes) to '{}' in {:.2}s{}.",
                o.acked,
                line_no,
                bytes,
                args.topic,
                elapsed.as_secs_f64(),
                match &args.transactional_id {
                    Some(id) if committed => format!(", committed as transaction '{id}'"),
                    _ => String::new(),
                }
            ))?;
            if !o.partitions.is_empty() {
                let mut t = table(&["Partition", "Records", "First offset", "Last offset"]);
                for (p, (n, first, last)) in &o.partitions {
                    t.add_row(vec![
                        p.to_string(),
                        n.to_string(),
                        first.to_string(),
                        last.to_string(),
                    ]);
                }
                print_table(&t)?;
            }
        }
    }
    if o.failed > 0 {
        anyhow::bail!(
            "{} record(s) failed; first error: {}",
            o.failed,
            o.first_error.unwrap_or_default()
        );
    }
    Ok(())
}

/// Sends one record per input line; returns the number of lines and the
/// bytes of keys and values. Outcomes are recorded as they arrive.
async fn send_lines(
    producer: &Producer,
    args: &ProduceArgs,
    mut reader: BufReader<Box<dyn AsyncRead + Unpin + Send>>,
    headers: &[(String, Option<Bytes>)],
    outcome: &Arc<Mutex<Outcome>>,
) -> anyhow::Result<(u64, u64)> {
    let window = Arc::new(Semaphore::new(MAX_UNACKED));
    let mut line = Vec::new();
    let mut line_no = 0u64;
    let mut bytes = 0u64;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .await
            .context("reading input")?;
        if n == 0 {
            break;
        }
        line_no += 1;
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        let (key, value) = match &args.key_separator {
            Some(sep) => {
                let sep = sep.as_bytes();
                let Some(pos) = find(&line, sep) else {
                    anyhow::bail!(
                        "line {line_no} has no key separator '{}'",
                        String::from_utf8_lossy(sep)
                    );
                };
                (
                    Some(Bytes::copy_from_slice(&line[..pos])),
                    Bytes::copy_from_slice(&line[pos + sep.len()..]),
                )
            }
            None => (None, Bytes::copy_from_slice(&line)),
        };
        bytes += value.len() as u64 + key.as_ref().map_or(0, |k| k.len() as u64);
        let permit = window.clone().acquire_owned().await?;
        let outcome = outcome.clone();
        producer.send_with_callback(
            ProducerRecord {
                topic: args.topic.clone(),
                partition: args.partition,
                key,
                value: Some(value),
                headers: headers.to_vec(),
                timestamp: None,
            },
            move |res| {
                drop(permit);
                outcome
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .record(res);
            },
        );
    }
    Ok((line_no, bytes))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_separator() {
        assert_eq!(find(b"k:v", b":"), Some(1));
        assert_eq!(find(b"k::v", b"::"), Some(1));
        assert_eq!(find(b"kv", b":"), None);
        assert_eq!(find(b"kv", b""), None);
    }
}
