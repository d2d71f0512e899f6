//! `sluice consume`: print records of a topic.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use serde_json::json;
use sluice_client::{
    AssignmentStrategy, Cluster, Consumer, ConsumerConfig, ConsumerRecord, GroupConsumer,
    GroupConsumerConfig, GroupProtocol, IsolationLevel, OffsetReset, StartOffset,
};

use crate::output::OutputFormat;
use crate::produce::check_topic;
use crate::Global;

#[derive(Debug, Args)]
pub(crate) struct ConsumeArgs {
    /// Topic to read.
    pub(crate) topic: String,
    /// Consume as a member of this consumer group: partitions are shared
    /// with the group's other members, reading resumes at the group's
    /// committed offsets (--from-beginning picks earliest where there are
    /// none, otherwise latest), and offsets are committed on exit.
    #[arg(long, conflicts_with_all = ["partition", "offset", "timestamp"])]
    pub(crate) group: Option<String>,
    /// Group protocol with --group: classic (JoinGroup/SyncGroup, the
    /// members assign) or consumer (KIP-848: the broker assigns and
    /// rebalances incrementally).
    #[arg(long, value_name = "PROTOCOL", default_value = "classic", requires = "group", value_parser = parse_group_protocol)]
    pub(crate) group_protocol: GroupProtocol,
    /// Partition assignor with --group. Classic: range (default),
    /// roundrobin or cooperative-sticky (only partitions that move are
    /// revoked). Consumer protocol: a broker-side assignor, uniform or
    /// range (default: the broker's first of group.consumer.assignors).
    #[arg(long, value_name = "NAME", requires = "group")]
    pub(crate) assignor: Option<String>,
    /// Read only this partition (default: all partitions).
    #[arg(long)]
    pub(crate) partition: Option<i32>,
    /// Start at the earliest offset (default: only new records).
    #[arg(long, conflicts_with_all = ["offset", "timestamp"])]
    pub(crate) from_beginning: bool,
    /// Start at this offset.
    #[arg(long, conflicts_with = "timestamp")]
    pub(crate) offset: Option<i64>,
    /// Start at the first record with a timestamp >= MS (ms since the epoch).
    #[arg(long, value_name = "MS")]
    pub(crate) timestamp: Option<i64>,
    /// Stop after this many records.
    #[arg(long)]
    pub(crate) limit: Option<u64>,
    /// Stop after this long without new records.
    #[arg(long)]
    pub(crate) timeout_ms: Option<u64>,
    /// Which records to read: read_uncommitted (the default, as in Kafka's
    /// Java consumer) also returns records of open and aborted
    /// transactions; read_committed returns only committed ones and stops
    /// at the first open transaction (librdkafka's default). Transaction
    /// markers are never printed.
    #[arg(
        long,
        value_name = "LEVEL",
        default_value = "read_uncommitted",
        value_parser = parse_isolation_level
    )]
    pub(crate) isolation_level: IsolationLevel,
    /// Output format: %k key, %v value, %o offset, %p partition,
    /// %t timestamp, %h headers, %T topic; \t and \n are expanded.
    #[arg(long, default_value = "%v")]
    pub(crate) format: String,
}

fn parse_group_protocol(s: &str) -> Result<GroupProtocol, String> {
    s.parse().map_err(|e: sluice_client::Error| e.to_string())
}

fn parse_isolation_level(s: &str) -> Result<IsolationLevel, String> {
    s.parse().map_err(|e: sluice_client::Error| e.to_string())
}

pub(crate) async fn run(global: &Global, args: ConsumeArgs) -> anyhow::Result<()> {
    let mut client = global.client_config()?;
    client.client_id = "sluice-console-consumer".into();
    let cluster = Cluster::connect(client)
        .await
        .context("connecting to the cluster")?;
    let n = check_topic(&cluster, &args.topic, args.partition).await?;
    let start = if args.from_beginning {
        StartOffset::Earliest
    } else if let Some(o) = args.offset {
        StartOffset::Offset(o)
    } else if let Some(t) = args.timestamp {
        StartOffset::Timestamp(t)
    } else {
        StartOffset::Latest
    };
    let partitions: Vec<i32> = match args.partition {
        Some(p) => vec![p],
        None => (0..n).collect(),
    };
    let config = ConsumerConfig {
        auto_offset_reset: if args.from_beginning {
            OffsetReset::Earliest
        } else {
            OffsetReset::Latest
        },
        isolation_level: args.isolation_level,
        ..Default::default()
    };
    let mut consumer = match &args.group {
        Some(group) => {
            let mut gc = GroupConsumerConfig::new(group.clone());
            gc.consumer = config;
            gc.group_protocol = args.group_protocol;
            match (args.group_protocol, &args.assignor) {
                (_, None) => {}
                (GroupProtocol::Classic, Some(name)) => {
                    gc.assignment_strategy = name.parse::<AssignmentStrategy>()?;
                }
                (GroupProtocol::Consumer, Some(name)) => gc.server_assignor = Some(name.clone()),
            }
            let mut c = GroupConsumer::new(cluster, gc)?;
            c.subscribe(std::slice::from_ref(&args.topic));
            Source::Group(Box::new(c))
        }
        None => {
            let mut c = Consumer::new(cluster, config);
            c.assign(
                partitions
                    .iter()
                    .map(|p| (args.topic.clone(), *p, start))
                    .collect(),
            )
            .await?;
            Source::Assigned(c)
        }
    };
    let format = expand_escapes(&args.format);
    let json = global.output == OutputFormat::Json;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut count = 0u64;
    let mut last_record = Instant::now();
    let idle_limit = args.timeout_ms.map(Duration::from_millis);
    let mut unprinted = Vec::new();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    'outer: loop {
        if args.limit.is_some_and(|l| count >= l) {
            break;
        }
        let wait = match idle_limit {
            Some(limit) => limit
                .saturating_sub(last_record.elapsed())
                .min(Duration::from_millis(500)),
            None => Duration::from_millis(500),
        };
        let records = tokio::select! {
            r = consumer.poll(wait) => r?,
            _ = &mut ctrl_c => break,
        };
        if records.is_empty() {
            out.flush()?;
            if idle_limit.is_some_and(|l| last_record.elapsed() >= l) {
                break;
            }
            continue;
        }
        last_record = Instant::now();
        let mut records = records.into_iter();
        while let Some(r) = records.next() {
            if json {
                serde_json::to_writer(&mut out, &record_json(&r))?;
                writeln!(out)?;
            } else {
                out.write_all(&render(&format, &r))?;
                out.write_all(b"\n")?;
            }
            count += 1;
            if args.limit.is_some_and(|l| count >= l) {
                unprinted = records.collect();
                break 'outer;
            }
        }
        out.flush()?;
    }
    out.flush()?;
    drop(out);
    if let Source::Group(c) = consumer {
        finish_group(c, &unprinted).await?;
    }
    eprintln!("Processed a total of {count} messages");
    Ok(())
}

/// Where records come from: assigned partitions or a consumer group.
enum Source {
    Assigned(Consumer),
    Group(Box<GroupConsumer>),
}

impl Source {
    async fn poll(&mut self, wait: Duration) -> sluice_client::Result<Vec<ConsumerRecord>> {
        match self {
            Source::Assigned(c) => c.poll(wait).await,
            Source::Group(c) => c.poll(wait).await,
        }
    }
}

/// Rewinds to the first record that was returned but not printed, commits
/// and leaves the group.
async fn finish_group(
    mut c: Box<GroupConsumer>,
    unprinted: &[ConsumerRecord],
) -> anyhow::Result<()> {
    let mut first: std::collections::BTreeMap<(&str, i32), i64> = Default::default();
    for r in unprinted {
        first
            .entry((r.topic.as_str(), r.partition))
            .or_insert(r.offset);
    }
    for ((t, p), o) in first {
        c.seek(t, p, o).await?;
    }
    c.commit_sync().await.context("committing offsets")?;
    c.close().await.context("leaving the group")?;
    Ok(())
}

fn record_json(r: &ConsumerRecord) -> serde_json::Value {
    let s = |b: &Option<bytes::Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    json!({
        "topic": r.topic,
        "partition": r.partition,
        "offset": r.offset,
        "timestamp": r.timestamp,
        "timestamp_type": r.timestamp_type.name(),
        "key": s(&r.key),
        "value": s(&r.value),
        "headers": r.headers.iter().map(|(k, v)| json!({"key": k, "value": s(v)})).collect::<Vec<_>>(),
    })
}

pub(crate) fn expand_escapes(f: &str) -> String {
    f.replace("\\t", "\t").replace("\\n", "\n")
}

/// Renders a record with the `--format` placeholders.
pub(crate) fn render(format: &str, r: &ConsumerRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(format.len() + r.value.as_ref().map_or(0, |v| v.len()));
    let bytes_or_null = |out: &mut Vec<u8>, b: &Option<bytes::Bytes>| match b {
        Some(b) => out.extend_from_slice(b),
        None => out.extend_from_slice(b"null"),
    };
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        match chars.next() {
            Some('k') => bytes_or_null(&mut out, &r.key),
            Some('v') => bytes_or_null(&mut out, &r.value),
            Some('o') => out.extend_from_slice(r.offset.to_string().as_bytes()),
            Some('p') => out.extend_from_slice(r.partition.to_string().as_bytes()),
            Some('t') => out.extend_from_slice(r.timestamp.to_string().as_bytes()),
            Some('T') => out.extend_from_slice(r.topic.as_bytes()),
            Some('h') => {
                for (i, (k, v)) in r.headers.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(k.as_bytes());
                    out.push(b':');
                    bytes_or_null(&mut out, v);
                }
            }
            Some('%') => out.push(b'%'),
            Some(other) => {
                out.push(b'%');
                let mut buf = [0u8; 4];
                out.extend_from_slice(other.encode_utf8(&mut buf).as_bytes());
            }
            None => out.push(b'%'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_client::TimestampType;

    #[test]
    fn renders_placeholders() {
        let r = ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 42,
            timestamp: 1000,
            timestamp_type: TimestampType::CreateTime,
            key: None,
            value: Some(Bytes::from_static(b"hello")),
            headers: vec![
                ("a".into(), Some(Bytes::from_static(b"1"))),
                ("b".into(), None),
            ],
        };
        let f = expand_escapes("%k\\t%v %o %p %t %h %T 100%% %x");
        assert_eq!(
            String::from_utf8(render(&f, &r)).unwrap(),
            "null\thello 42 2 1000 a:1,b:null t 100% %x"
        );
        assert_eq!(render("%v", &r), b"hello");
    }
}
