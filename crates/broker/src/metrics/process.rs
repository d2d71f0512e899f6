//! The standard process metrics (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_open_fds`,
//! `process_start_time_seconds`), read from `/proc/self` at scrape time.

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::fmt;

/// Fields of `/proc/self/stat` after the command name: utime and stime
/// (clock ticks) and starttime (ticks after boot), 1-based as in proc(5).
const UTIME: usize = 14;
const STIME: usize = 15;
const STARTTIME: usize = 22;

struct ProcessSample {
    cpu_seconds: f64,
    resident_bytes: i64,
    open_fds: i64,
    start_time_seconds: f64,
}

fn sample() -> Option<ProcessSample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces; fields resume after its ')'.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `after_name` starts at field 3 (state).
    let field = |n: usize| -> Option<f64> { fields.get(n - 3)?.parse().ok() };
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident_pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let boot_time: f64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(ProcessSample {
        cpu_seconds: (field(UTIME)? + field(STIME)?) / ticks,
        resident_bytes: resident_pages * rustix::param::page_size() as i64,
        open_fds: std::fs::read_dir("/proc/self/fd").ok()?.count() as i64,
        start_time_seconds: boot_time + field(STARTTIME)? / ticks,
    })
}

pub(super) fn encode(encoder: &mut DescriptorEncoder) -> fmt::Result {
    let Some(s) = sample() else {
        return Ok(());
    };
    ConstCounter::new(s.cpu_seconds).encode(encoder.encode_descriptor(
        "process_cpu_seconds",
        "Total user and system CPU time spent in seconds.",
        None,
        MetricType::Counter,
    )?)?;
    ConstGauge::new(s.resident_bytes).encode(encoder.encode_descriptor(
        "process_resident_memory_bytes",
        "Resident memory size in bytes.",
        None,
        MetricType::Gauge,
    )?)?;
    ConstGauge::new(s.open_fds).encode(encoder.encode_descriptor(
        "process_open_fds",
        "Number of open file descriptors.",
        None,
        MetricType::Gauge,
    )?)?;
    ConstGauge::new(s.start_time_seconds).encode(encoder.encode_descriptor(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        None,
        MetricType::Gauge,
    )?)
}
