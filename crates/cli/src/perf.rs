//! `sluice perf ...`: throughput and latency benchmarks modelled on
//! kafka-producer-perf-test and kafka-consumer-perf-test.

use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::Rng;
use serde_json::json;
use sluice_client::{
    Acks, Cluster, CompressionType, Consumer, ConsumerConfig, OffsetReset, Producer,
    ProducerConfig, ProducerRecord, StartOffset,
};
use tokio::sync::Semaphore;

use crate::output::{print_json, print_table, table, OutputFormat};
use crate::produce::{check_topic, parse_acks, parse_compression};
use crate::Global;

#[derive(Debug, Subcommand)]
pub(crate) enum PerfCommand {
    /// Measure producer throughput and send-to-ack latency.
    Produce(PerfProduceArgs),
    /// Measure consumer throughput (reads from the earliest offset).
    Consume(PerfConsumeArgs),
}

#[derive(Debug, Args)]
pub(crate) struct PerfProduceArgs {
    /// Topic to write to.
    #[arg(long)]
    topic: String,
    /// Number of records to send.
    #[arg(long)]
    num_records: u64,
    /// Size of each record's value in bytes.
    #[arg(long)]
    record_size: usize,
    /// Acknowledgements to wait for: 0, 1 or all.
    #[arg(long, default_value = "all", value_parser = parse_acks)]
    acks: Acks,
    /// Wait up to this long to fill a batch.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Maximum batch size in bytes.
    #[arg(long, default_value_t = 1_000_000)]
    batch_size: usize,
    /// Compression: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    compression: CompressionType,
    /// Cap on records per second (-1 = unlimited).
    #[arg(long, default_value_t = -1.0, allow_negative_numbers = true)]
    throughput: f64,
}

#[derive(Debug, Args)]
pub(crate) struct PerfConsumeArgs {
    /// Topic to read.
    #[arg(long)]
    topic: String,
    /// Number of records to read.
    #[arg(long)]
    messages: u64,
    /// Give up after this long without new records.
    #[arg(long, default_value_t = 10_000)]
    timeout_ms: u64,
}

pub(crate) async fn run(global: &Global, cmd: PerfCommand) -> anyhow::Result<()> {
    match cmd {
        PerfCommand::Produce(a) => produce(global, a).await,
        PerfCommand::Consume(a) => consume(global, a).await,
    }
}

fn progress(total: u64, unit: &str) -> ProgressBar {
    let pb = ProgressBar::new(total);
    if std::io::stderr().is_terminal() {
        pb.set_draw_target(ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(&format!(
            "{{spinner}} [{{elapsed_precise}}] {{wide_bar}} {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})"
        )) {
            pb.set_style(style);
        }
    } else {
        pb.set_draw_target(ProgressDrawTarget::hidden());
    }
    pb
}

/// Latency percentiles over microsecond samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Latency {
    pub(crate) avg_ms: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p95_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
    pub(crate) max_ms: f64,
}

pub(crate) fn latency(samples: &mut [u64]) -> Latency {
    if samples.is_empty() {
        return Latency {
            avg_ms: 0.0,
            p50_ms: 0.0,
            p95_ms: 0.0,
            p99_ms: 0.0,
            p999_ms: 0.0,
            max_ms: 0.0,
        };
    }
    samples.sort_unstable();
    let ms = |us: u64| us as f64 / 1000.0;
    let pct = |p: f64| {
        let idx = ((samples.len() as f64 * p).ceil() as usize).clamp(1, samples.len()) - 1;
        ms(samples[idx])
    };
    let sum: u128 = samples.iter().map(|&s| u128::from(s)).sum();
    Latency {
        avg_ms: sum as f64 / samples.len() as f64 / 1000.0,
        p50_ms: pct(0.50),
        p95_ms: pct(0.95),
        p99_ms: pct(0.99),
        p999_ms: pct(0.999),
        max_ms: ms(*samples.last().unwrap_or(&0)),
    }
}

#[derive(Default)]
struct ProduceStats {
    latencies_us: Vec<u64>,
    errors: u64,
    first_error: Option<String>,
}

async fn produce(global: &Global, a: PerfProduceArgs) -> anyhow::Result<()> {
    if a.record_size == 0 {
        anyhow::bail!("--record-size must be at least 1");
    }
    let mut client = global.client_config()?;
    client.client_id = "sluice-producer-perf".into();
    let cluster = Cluster::connect(client)
        .await
        .context("connecting to the cluster")?;
    check_topic(&cluster, &a.topic, None).await?;
    let producer = Producer::new(
        cluster,
        ProducerConfig {
            acks: a.acks,
            // As in the Java client: idempotent unless acks says otherwise.
            enable_idempotence: a.acks == Acks::All,
            linger: Duration::from_millis(a.linger_ms),
            batch_size: a.batch_size,
            compression: a.compression,
            ..Default::default()
        },
    )?;
    // Random uppercase letters, like kafka-producer-perf-test.
    let payload: Bytes = {
        let mut rng = rand::rng();
        (0..a.record_size)
            .map(|_| b'A' + rng.random_range(0..26u8))
            .collect::<Vec<u8>>()
            .into()
    };
    let stats = Arc::new(Mutex::new(ProduceStats {
        latencies_us: Vec::with_capacity(a.num_records.min(50_000_000) as usize),
        ..Default::default()
    }));
    // Bound memory like buffer.memory (32 MiB) does.
    let window = Arc::new(Semaphore::new(
        ((32 << 20) / a.record_size.max(1)).max(1_000),
    ));
    let pb = progress(a.num_records, "records");
    let start = Instant::now();
    for i in 0..a.num_records {
        if a.throughput > 0.0 {
            let due = Duration::from_secs_f64(i as f64 / a.throughput);
            let elapsed = start.elapsed();
            if due > elapsed + Duration::from_millis(1) {
                tokio::time::sleep(due - elapsed).await;
            }
        }
        let permit = window.clone().acquire_owned().await?;
        let stats = stats.clone();
        let pb = pb.clone();
        let sent = Instant::now();
        producer.send_with_callback(
            ProducerRecord {
                topic: a.topic.clone(),
                value: Some(payload.clone()),
                ..Default::default()
            },
            move |res| {
                let us = sent.elapsed().as_micros() as u64;
                drop(permit);
                pb.inc(1);
                let mut s = stats.lock().unwrap_or_else(|e| e.into_inner());
                match res {
                    Ok(_) => s.latencies_us.push(us),
                    Err(e) => {
                        s.errors += 1;
                        s.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            },
        );
    }
    producer.close().await;
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    pb.finish_and_clear();
    let mut s = std::mem::take(&mut *stats.lock().unwrap_or_else(|e| e.into_inner()));
    let ok = s.latencies_us.len() as u64;
    let lat = latency(&mut s.latencies_us);
    let mb = (ok as f64 * a.record_size as f64) / (1024.0 * 1024.0);
    let rps = ok as f64 / elapsed;
    match global.output {
        OutputFormat::Json => print_json(&json!({
            "records": ok,
            "errors": s.errors,
            "elapsed_s": elapsed,
            "records_per_sec": rps,
            "mb_per_sec": mb / elapsed,
            "latency_ms": {
                "avg": lat.avg_ms, "p50": lat.p50_ms, "p95": lat.p95_ms,
                "p99": lat.p99_ms, "p99.9": lat.p999_ms, "max": lat.max_ms,
            },
        }))?,
        OutputFormat::Table => {
            let mut t = table(&["Metric", "Value"]);
            for (k, v) in [
                ("Records sent", ok.to_string()),
                ("Errors", s.errors.to_string()),
                ("Elapsed", format!("{elapsed:.2} s")),
                ("Throughput", format!("{rps:.1} records/s")),
                ("Throughput", format!("{:.2} MB/s", mb / elapsed)),
                ("Latency avg", format!("{:.2} ms", lat.avg_ms)),
                ("Latency p50", format!("{:.2} ms", lat.p50_ms)),
                ("Latency p95", format!("{:.2} ms", lat.p95_ms)),
                ("Latency p99", format!("{:.2} ms", lat.p99_ms)),
                ("Latency p99.9", format!("{:.2} ms", lat.p999_ms)),
                ("Latency max", format!("{:.2} ms", lat.max_ms)),
            ] {
                t.add_row(vec![k.to_string(), v]);
            }
            print_table(&t)?;
        }
    }
    if let Some(e) = s.first_error {
        anyhow::bail!("{} record(s) failed; first error: {e}", s.errors);
    }
    Ok(())
}

async fn consume(global: &Global, a: PerfConsumeArgs) -> anyhow::Result<()> {
    let mut client = global.client_config()?;
    client.client_id = "sluice-consumer-perf".into();
    let cluster = Cluster::connect(client)
        .await
        .context("connecting to the cluster")?;
    let n = check_topic(&cluster, &a.topic, None).await?;
    let mut consumer = Consumer::new(
        cluster,
        ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            max_poll_records: 10_000,
            ..Default::default()
        },
    );
    consumer
        .assign(
            (0..n)
                .map(|p| (a.topic.clone(), p, StartOffset::Earliest))
                .collect(),
        )
        .await?;
    let pb = progress(a.messages, "records");
    let start = Instant::now();
    let mut last = Instant::now();
    let mut count = 0u64;
    let mut bytes = 0u64;
    let mut fetch_us = Vec::new();
    let idle = Duration::from_millis(a.timeout_ms);
    let mut timed_out = false;
    while count < a.messages {
        let t0 = Instant::now();
        let records = consumer.poll(Duration::from_millis(500)).await?;
        if records.is_empty() {
            if last.elapsed() >= idle {
                timed_out = true;
                break;
            }
            continue;
        }
        fetch_us.push(t0.elapsed().as_micros() as u64);
        last = Instant::now();
        for r in &records {
            if count >= a.messages {
                break;
            }
            count += 1;
            bytes += r.value.as_ref().map_or(0, |v| v.len() as u64)
                + r.key.as_ref().map_or(0, |k| k.len() as u64);
        }
        pb.set_position(count);
    }
    pb.finish_and_clear();
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    let mb = bytes as f64 / (1024.0 * 1024.0);
    let lat = latency(&mut fetch_us);
    match global.output {
        OutputFormat::Json => print_json(&json!({
            "records": count,
            "bytes": bytes,
            "elapsed_s": elapsed,
            "records_per_sec": count as f64 / elapsed,
            "mb_per_sec": mb / elapsed,
            "timed_out": timed_out,
            "poll_latency_ms": {
                "avg": lat.avg_ms, "p50": lat.p50_ms, "p95": lat.p95_ms,
                "p99": lat.p99_ms, "p99.9": lat.p999_ms, "max": lat.max_ms,
            },
        }))?,
        OutputFormat::Table => {
            let mut t = table(&["Metric", "Value"]);
            for (k, v) in [
                ("Records consumed", count.to_string()),
                ("Data consumed", format!("{mb:.2} MB")),
                ("Elapsed", format!("{elapsed:.2} s")),
                (
                    "Throughput",
                    format!("{:.1} records/s", count as f64 / elapsed),
                ),
                ("Throughput", format!("{:.2} MB/s", mb / elapsed)),
                ("Poll latency avg", format!("{:.2} ms", lat.avg_ms)),
                ("Poll latency p50", format!("{:.2} ms", lat.p50_ms)),
                ("Poll latency p95", format!("{:.2} ms", lat.p95_ms)),
                ("Poll latency p99", format!("{:.2} ms", lat.p99_ms)),
                ("Poll latency p99.9", format!("{:.2} ms", lat.p999_ms)),
                ("Poll latency max", format!("{:.2} ms", lat.max_ms)),
            ] {
                t.add_row(vec![k.to_string(), v]);
            }
            print_table(&t)?;
        }
    }
    if timed_out {
        anyhow::bail!(
            "only {count} of {} records arrived before {} ms without new records",
            a.messages,
            a.timeout_ms
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let mut s: Vec<u64> = (1..=1000).map(|i| i * 1000).collect();
        let l = latency(&mut s);
        assert_eq!(l.p50_ms, 500.0);
        assert_eq!(l.p95_ms, 950.0);
        assert_eq!(l.p99_ms, 990.0);
        assert_eq!(l.p999_ms, 999.0);
        assert_eq!(l.max_ms, 1000.0);
        assert!((l.avg_ms - 500.5).abs() < 1e-9);
        assert_eq!(latency(&mut []).max_ms, 0.0);
    }
}
