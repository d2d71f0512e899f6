//! `/metrics`: the broker's measurements in the OpenMetrics text format,
//! encoded by `prometheus-client` from a collector that reads the atomics
//! at scrape time.

use super::{slot_error, BrokerMetrics};
use crate::scrubber::ScrubProbe;
use crate::state::BrokerState;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use sluice_protocol::error;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The one listener the broker has today.
const LISTENER: &str = "PLAINTEXT";

/// Renders every metric; `partition_series_max` bounds the series with
/// a partition label (`metrics.partition.labels.max`).
pub(crate) fn render(state: Arc<BrokerState>, scrub: Arc<ScrubProbe>) -> String {
    let partition_series_max = state.broker_i64("metrics.partition.labels.max").max(0) as usize;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(BrokerCollector {
        state,
        scrub,
        partition_series_max,
    }));
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)
        .expect("writing to a String cannot fail");
    text
}

struct BrokerCollector {
    state: Arc<BrokerState>,
    scrub: Arc<ScrubProbe>,
    partition_series_max: usize,
}

impl fmt::Debug for BrokerCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BrokerCollector")
    }
}

fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    series: impl IntoIterator<Item = (Vec<(&'static str, String)>, M)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, metric) in series {
        metric.encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    metric: &impl EncodeMetric,
) -> fmt::Result {
    metric.encode(encoder.encode_descriptor(name, help, None, metric_type)?)
}

/// Kafka's name of an error code (`UNKNOWN_TOPIC_OR_PARTITION`), also for
/// codes Sluice never names itself.
fn error_label(code: error::ErrorCode) -> String {
    match error::name(code) {
        "UNKNOWN" => kafka_protocol::error::ResponseError::try_from_code(code).map_or_else(
            || format!("CODE_{code}"),
            |e| {
                let camel = format!("{e:?}");
                let mut snake = String::new();
                for (i, c) in camel.chars().enumerate() {
                    if c.is_ascii_uppercase() && i > 0 {
                        snake.push('_');
                    }
                    snake.push(c.to_ascii_uppercase());
                }
                snake
            },
        ),
        known => known.to_string(),
    }
}

fn counter(value: u64) -> ConstCounter<u64> {
    ConstCounter::new(value)
}

fn gauge(value: i64) -> ConstGauge<i64> {
    ConstGauge::new(value)
}

impl BrokerCollector {
    fn encode_requests(
        &self,
        encoder: &mut DescriptorEncoder,
        metrics: &BrokerMetrics,
    ) -> fmt::Result {
        let mut counts = Vec::new();
        for stats in metrics.requests.iter() {
            for (slot, n) in stats.by_error.iter().enumerate() {
                let n = n.load(Ordering::Relaxed);
                if n > 0 {
                    let labels = vec![
                        ("api", format!("{:?}", stats.key)),
                        ("listener", LISTENER.to_string()),
                        ("error", error_label(slot_error(slot))),
                    ];
                    counts.push((labels, counter(n)));
                }
            }
        }
        family(
            encoder,
            "sluice_requests",
            "Requests answered, by API, listener and the error the response reports (the first part that failed; NONE when all succeeded).",
            MetricType::Counter,
            counts,
        )?;
        let mut family = encoder.encode_descriptor(
            "sluice_request_duration_seconds",
            "Time from a request arriving whole to its response being encoded (long polls included).",
            None,
            MetricType::Histogram,
        )?;
        for stats in metrics.requests.iter().filter(|s| s.seconds.count() > 0) {
            let labels = [("api", format!("{:?}", stats.key))];
            stats.seconds.encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }

    fn encode_partitions(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let mut partitions = self.state.partitions.all();
        partitions.sort_by(|a, b| (&a.topic, a.index).cmp(&(&b.topic, b.index)));
        let mut by_topic: BTreeMap<&str, [u64; 3]> = BTreeMap::new();
        for p in &partitions {
            let sums = by_topic.entry(&p.topic).or_default();
            sums[0] += p.stats.bytes_in.load(Ordering::Relaxed);
            sums[1] += p.stats.bytes_out.load(Ordering::Relaxed);
            sums[2] += p.stats.records_in.load(Ordering::Relaxed);
        }
        let topic_series = |i: usize| {
            by_topic
                .iter()
                .map(move |(topic, sums)| (vec![("topic", topic.to_string())], counter(sums[i])))
        };
        family(
            encoder,
            "sluice_topic_bytes_in",
            "Record batch bytes appended to the topic by producers (as received, before any recompression).",
            MetricType::Counter,
            topic_series(0),
        )?;
        family(
            encoder,
            "sluice_topic_bytes_out",
            "Record batch bytes sent to consumers in fetch responses.",
            MetricType::Counter,
            topic_series(1),
        )?;
        family(
            encoder,
            "sluice_topic_records_in",
            "Records appended to the topic.",
            MetricType::Counter,
            topic_series(2),
        )?;
        let labelled = &partitions[..partitions.len().min(self.partition_series_max)];
        let partition_labels = |p: &crate::partition::Partition| {
            vec![
                ("topic", p.topic.clone()),
                ("partition", p.index.to_string()),
            ]
        };
        family(
            encoder,
            "sluice_partition_log_end_offset",
            "The offset after the partition's last record.",
            MetricType::Gauge,
            labelled.iter().map(|p| {
                (
                    partition_labels(p),
                    gauge(p.stats.log_end_offset.load(Ordering::Relaxed)),
                )
            }),
        )?;
        family(
            encoder,
            "sluice_partition_log_size_bytes",
            "Bytes of the partition's segments on disk.",
            MetricType::Gauge,
            labelled.iter().map(|p| {
                let size = p.stats.log_size_bytes.load(Ordering::Relaxed);
                (
                    partition_labels(p),
                    gauge(i64::try_from(size).unwrap_or(i64::MAX)),
                )
            }),
        )?;
        single(
            encoder,
            "sluice_partition_series_omitted",
            "Partitions left out of the per-partition series by metrics.partition.labels.max.",
            MetricType::Gauge,
            &gauge((partitions.len() - labelled.len()) as i64),
        )?;
        self.encode_group_lag(encoder, &partitions)
    }

    fn encode_group_lag(
        &self,
        encoder: &mut DescriptorEncoder,
        partitions: &[Arc<crate::partition::Partition>],
    ) -> fmt::Result {
        let high_watermarks: BTreeMap<(&str, i32), i64> = partitions
            .iter()
            .map(|p| ((p.topic.as_str(), p.index), p.high_watermark()))
            .collect();
        let committed = self.state.groups.lock().committed_offsets();
        let lag = committed
            .into_iter()
            .filter_map(|(group, topic, partition, offset)| {
                let end = *high_watermarks.get(&(topic.as_str(), partition))?;
                let labels = vec![
                    ("group", group),
                    ("topic", topic),
                    ("partition", partition.to_string()),
                ];
                Some((labels, gauge((end - offset).max(0))))
            })
            .take(self.partition_series_max);
        family(
            encoder,
            "sluice_consumer_group_lag",
            "Records between a group's committed offset and the partition's high watermark.",
            MetricType::Gauge,
            lag,
        )
    }

    fn encode_cluster(&self, encoder: &mut DescriptorEncoder) -> fmt::Result {
        let image = self.state.image();
        let under_replicated = image
            .topics()
            .flat_map(|t| t.partitions.iter())
            .filter(|p| p.isr.len() < p.replicas.len())
            .count();
        single(
            encoder,
            "sluice_under_replicated_partitions",
            "Partitions whose in-sync replicas are fewer than their replicas.",
            MetricType::Gauge,
            &gauge(under_replicated as i64),
        )?;
        single(
            encoder,
            "sluice_offline_partitions",
            "Partitions whose log cannot be opened on this broker (see its ERROR log).",
            MetricType::Gauge,
            &gauge(self.state.partitions.offline_count() as i64),
        )
    }

    fn encode_broker(
        &self,
        encoder: &mut DescriptorEncoder,
        metrics: &BrokerMetrics,
    ) -> fmt::Result {
        family(
            encoder,
            "sluice_connections",
            "Open client connections, by listener.",
            MetricType::Gauge,
            [(
                vec![("listener", LISTENER.to_string())],
                gauge(metrics.connections.load(Ordering::Relaxed)),
            )],
        )?;
        single(
            encoder,
            "sluice_fsync_duration_seconds",
            "Time of each group-commit fdatasync of a partition's log.",
            MetricType::Histogram,
            self.state.partitions.fsync_seconds(),
        )?;
        single(
            encoder,
            "sluice_produce_batch_bytes",
            "Size of each record batch a producer sent.",
            MetricType::Histogram,
            &metrics.produce_batch_bytes,
        )?;
        single(
            encoder,
            "sluice_scrub_passes",
            "Completed scrubber passes over the closed segments (log.scrub.interval.ms).",
            MetricType::Counter,
            &counter(self.scrub.passes()),
        )?;
        single(
            encoder,
            "sluice_scrub_verified_bytes",
            "Bytes of closed segments the scrubber has verified.",
            MetricType::Counter,
            &counter(self.scrub.bytes_verified()),
        )?;
        single(
            encoder,
            "sluice_scrub_damaged_ranges",
            "Damaged ranges the scrubber's last pass found (each is also logged with ERROR).",
            MetricType::Gauge,
            &gauge(i64::try_from(self.scrub.damaged_ranges()).unwrap_or(i64::MAX)),
        )
    }
}

impl Collector for BrokerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let metrics = &self.state.metrics;
        self.encode_requests(&mut encoder, metrics)?;
        self.encode_partitions(&mut encoder)?;
        self.encode_cluster(&mut encoder)?;
        self.encode_broker(&mut encoder, metrics)?;
        super::process::encode(&mut encoder)
    }
}
