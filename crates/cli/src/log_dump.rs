//! `sluice log dump PATH...`: prints what a partition's files hold, like
//! Kafka's kafka-dump-log, and verifies them: every batch's CRC32C and
//! length in a `.log` segment, the ordering of `.index` and `.timeindex`
//! entries, and the aborted-transaction entries of a `.txnindex` (whole
//! 34-byte entries of version 0, in marker order, markers in the segment).
//! A `metadata.log` is recognised by its name and every record printed
//! (see `metadata_cmd`). Reads files only; no broker is needed. Exits
//! nonzero when anything is damaged.

use crate::output::{print_json, print_line, OutputFormat};
use crate::Global;
use anyhow::{bail, Context};
use bytes::Bytes;
use clap::{Args, Subcommand};
use serde_json::json;
use sluice_protocol::batch::{BatchHeader, BatchIter};
use sluice_protocol::compression::decode_batches;
use sluice_protocol::control::marker_of;
use sluice_storage::{decode_txn_index, TXN_INDEX_ENTRY_LEN};
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub(crate) enum LogCommand {
    /// Print and verify segment files (.log, .index, .timeindex, .txnindex)
    /// and the metadata log (metadata.log).
    Dump(DumpArgs),
    /// Check every batch of a data dir, partition dir or segment files and
    /// list the damaged ranges (nonzero exit when there is one).
    Verify(crate::log_verify::VerifyArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DumpArgs {
    /// Files to dump, e.g. data/orders-0/00000000000000000000.log.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Also print every record of every batch (decompressed).
    #[arg(long)]
    print_data: bool,
}

pub(crate) fn run(global: &Global, cmd: LogCommand) -> anyhow::Result<()> {
    let args = match cmd {
        LogCommand::Dump(args) => args,
        LogCommand::Verify(args) => return crate::log_verify::run(global, args),
    };
    let json = global.output == OutputFormat::Json;
    let mut damaged = Vec::new();
    for path in &args.paths {
        let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let is_metadata_log = path.file_name().and_then(|n| n.to_str()) == Some("metadata.log");
        let report = match path.extension().and_then(|e| e.to_str()) {
            _ if is_metadata_log => crate::metadata_cmd::dump_metadata_log(&data),
            Some("log") => {
                base_offset(path)?;
                dump_log(&data, args.print_data)
            }
            Some("index") => dump_index(&data, base_offset(path)?, 8, "offset index"),
            Some("timeindex") => dump_index(&data, base_offset(path)?, 12, "time index"),
            Some("txnindex") => dump_txn_index(&data, base_offset(path)?),
            _ => bail!(
                "{}: not a segment file (.log, .index, .timeindex or .txnindex) or metadata.log",
                path.display()
            ),
        };
        if json {
            print_json(&json!({
                "file": path.display().to_string(),
                "entries": report.entries,
                "problems": report.problems,
            }))?;
        } else {
            print_line(&format!("Dumping {}", path.display()))?;
            for line in &report.lines {
                print_line(line)?;
            }
            for problem in &report.problems {
                print_line(&format!("PROBLEM: {problem}"))?;
            }
        }
        if !report.problems.is_empty() {
            damaged.push(path.display().to_string());
        }
    }
    if !damaged.is_empty() {
        bail!("damaged: {}", damaged.join(", "));
    }
    Ok(())
}

/// The segment's base offset, from its 20-digit file name.
fn base_offset(path: &Path) -> anyhow::Result<i64> {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    stem.parse().with_context(|| {
        format!(
            "{}: the file name is not a 20-digit base offset",
            path.display()
        )
    })
}

#[derive(Default)]
pub(crate) struct Report {
    pub(crate) lines: Vec<String>,
    pub(crate) entries: Vec<serde_json::Value>,
    pub(crate) problems: Vec<String>,
}

fn dump_log(data: &[u8], print_data: bool) -> Report {
    let mut report = Report::default();
    let mut position = 0usize;
    let mut previous_end = None;
    for batch in BatchIter::new(data) {
        let (header, bytes) = match batch {
            Ok(b) => b,
            Err(e) => {
                report.problems.push(format!("at position {position}: {e}"));
                break;
            }
        };
        let crc_valid = header.verify().is_ok();
        if let Err(e) = header.verify() {
            report
                .problems
                .push(format!("batch at position {position}: {e}"));
        }
        if let Some(end) = previous_end {
            if header.base_offset() < end {
                report.problems.push(format!(
                    "batch at position {position} starts at offset {} below the previous batch's end {end}",
                    header.base_offset()
                ));
            }
        }
        previous_end = Some(header.last_offset() + 1);
        let codec = header.codec().map_or("unknown", |c| c.name());
        let marker = marker_of(bytes).map(|m| format!("{m:?}").to_uppercase());
        report.lines.push(format!(
            "baseOffset: {} lastOffset: {} count: {} baseSequence: {} producerId: {} producerEpoch: {} \
             partitionLeaderEpoch: {} isTransactional: {} isControl: {}{} position: {position} \
             {}: {} size: {} magic: 2 compresscodec: {codec} crcValid: {crc_valid}",
            header.base_offset(),
            header.last_offset(),
            header.record_count(),
            header.base_sequence(),
            header.producer_id(),
            header.producer_epoch(),
            header.partition_leader_epoch(),
            header.is_transactional(),
            header.is_control(),
            marker.as_ref().map(|m| format!(" endTxnMarker: {m}")).unwrap_or_default(),
            if header.is_log_append_time() { "LogAppendTime" } else { "CreateTime" },
            header.max_timestamp(),
            bytes.len(),
        ));
        let mut entry = json!({
            "base_offset": header.base_offset(),
            "last_offset": header.last_offset(),
            "count": header.record_count(),
            "producer_id": header.producer_id(),
            "producer_epoch": header.producer_epoch(),
            "base_sequence": header.base_sequence(),
            "transactional": header.is_transactional(),
            "control": header.is_control(),
            "position": position,
            "max_timestamp": header.max_timestamp(),
            "size": bytes.len(),
            "codec": codec,
            "crc_valid": crc_valid,
        });
        if print_data && crc_valid {
            let records = records_of(&header, bytes, &mut report);
            entry["records"] = json!(records
                .iter()
                .map(|(offset, ts, key, value)| json!({"offset": offset, "timestamp": ts, "key": key, "value": value}))
                .collect::<Vec<_>>());
        }
        report.entries.push(entry);
        position += bytes.len();
    }
    report.lines.push(format!(
        "{} batches, {} bytes",
        report.entries.len(),
        position
    ));
    report
}

/// Decodes one batch's records, printing them as `| offset: ...` lines.
fn records_of(
    header: &BatchHeader<'_>,
    bytes: &[u8],
    report: &mut Report,
) -> Vec<(i64, i64, Option<String>, Option<String>)> {
    let text = |b: &Option<Bytes>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    match decode_batches(Bytes::copy_from_slice(bytes)) {
        Ok(records) => records
            .iter()
            .map(|r| {
                let (key, value) = (text(&r.key), text(&r.value));
                report.lines.push(format!(
                    "| offset: {} {}: {} keySize: {} valueSize: {} sequence: {} headerKeys: [{}] key: {} payload: {}",
                    r.offset,
                    if header.is_log_append_time() { "LogAppendTime" } else { "CreateTime" },
                    r.timestamp,
                    r.key.as_ref().map_or(-1, |k| k.len() as i64),
                    r.value.as_ref().map_or(-1, |v| v.len() as i64),
                    // Batches without a producer carry no sequences.
                    if header.base_sequence() < 0 { -1 } else { r.sequence },
                    r.headers.keys().map(|k| k.to_string()).collect::<Vec<_>>().join(","),
                    key.as_deref().unwrap_or("null"),
                    value.as_deref().unwrap_or("null"),
                ));
                (r.offset, r.timestamp, key, value)
            })
            .collect(),
        Err(e) => {
            report.problems.push(format!(
                "batch at offset {}: records do not decode: {e}",
                header.base_offset()
            ));
            Vec::new()
        }
    }
}

/// Dumps a sparse index: entries of `width` bytes, (relative offset u32,
/// position u32) for `.index` and (timestamp i64, relative offset u32) for
/// `.timeindex`, both increasing. Trailing zero entries are the
/// preallocated, unused part of an active segment's index.
fn dump_index(data: &[u8], base: i64, width: usize, what: &str) -> Report {
    let mut report = Report::default();
    if !data.len().is_multiple_of(width) {
        report.problems.push(format!(
            "{what} size {} is not a multiple of its {width}-byte entries",
            data.len()
        ));
    }
    let mut previous: Option<(i64, i64)> = None;
    for (i, entry) in data.chunks_exact(width).enumerate() {
        let (first, second) = if width == 8 {
            let rel = u32::from_be_bytes(entry[0..4].try_into().expect("4 bytes"));
            let pos = u32::from_be_bytes(entry[4..8].try_into().expect("4 bytes"));
            (base + i64::from(rel), i64::from(pos))
        } else {
            let ts = i64::from_be_bytes(entry[0..8].try_into().expect("8 bytes"));
            let rel = u32::from_be_bytes(entry[8..12].try_into().expect("4 bytes"));
            (ts, base + i64::from(rel))
        };
        if entry.iter().all(|b| *b == 0) && i > 0 {
            break;
        }
        if let Some((a, b)) = previous {
            if first < a || second < b {
                report
                    .problems
                    .push(format!("{what} entry {i} goes backwards"));
            }
        }
        previous = Some((first, second));
        if width == 8 {
            report
                .lines
                .push(format!("offset: {first} position: {second}"));
            report
                .entries
                .push(json!({"offset": first, "position": second}));
        } else {
            report
                .lines
                .push(format!("timestamp: {first} offset: {second}"));
            report
                .entries
                .push(json!({"timestamp": first, "offset": second}));
        }
    }
    report
}

/// Dumps an aborted-transaction index in Kafka's words. Every entry's
/// marker must lie in the segment (at or after its base offset).
fn dump_txn_index(data: &[u8], base: i64) -> Report {
    let mut report = Report::default();
    let contents = decode_txn_index(data);
    for (i, entry) in contents.entries.iter().enumerate() {
        if entry.last_offset < base {
            report.problems.push(format!(
                "entry at position {}: marker offset {} is below the segment's base offset {base}",
                i * TXN_INDEX_ENTRY_LEN,
                entry.last_offset
            ));
        }
        report.lines.push(format!(
            "version: 0 producerId: {} firstOffset: {} lastOffset: {} lastStableOffset: {}",
            entry.producer_id, entry.first_offset, entry.last_offset, entry.last_stable_offset
        ));
        report.entries.push(json!({
            "producer_id": entry.producer_id,
            "first_offset": entry.first_offset,
            "last_offset": entry.last_offset,
            "last_stable_offset": entry.last_stable_offset,
        }));
    }
    if let Some(damage) = contents.damage {
        report.problems.push(format!(
            "at position {}: {}",
            damage.position, damage.reason
        ));
    }
    report.lines.push(format!(
        "{} aborted transactions, {} bytes",
        contents.entries.len(),
        data.len()
    ));
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_storage::AbortedTxnEntry;

    fn entries(list: &[(i64, i64, i64, i64)]) -> Vec<u8> {
        list.iter()
            .flat_map(
                |&(producer_id, first_offset, last_offset, last_stable_offset)| {
                    AbortedTxnEntry {
                        producer_id,
                        first_offset,
                        last_offset,
                        last_stable_offset,
                    }
                    .encode()
                },
            )
            .collect()
    }

    #[test]
    fn txnindex_entries_are_printed_and_damage_is_located() {
        let intact = entries(&[(7, 0, 3, 2), (7, 6, 7, 8)]);
        let report = dump_txn_index(&intact, 3);
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        assert_eq!(
            report.lines,
            [
                "version: 0 producerId: 7 firstOffset: 0 lastOffset: 3 lastStableOffset: 2",
                "version: 0 producerId: 7 firstOffset: 6 lastOffset: 7 lastStableOffset: 8",
                "2 aborted transactions, 68 bytes",
            ]
        );

        let mut torn = intact.clone();
        torn.extend_from_slice(&[0; 5]);
        let report = dump_txn_index(&torn, 3);
        assert_eq!(report.entries.len(), 2);
        assert_eq!(
            report.problems,
            ["at position 68: a partial entry of 5 bytes (entries have 34)"]
        );

        let mut bad_version = intact.clone();
        bad_version[34 + 1] = 1;
        let report = dump_txn_index(&bad_version, 3);
        assert_eq!(report.entries.len(), 1);
        assert_eq!(report.problems, ["at position 34: unknown entry version 1"]);

        let report = dump_txn_index(&intact, 4);
        assert_eq!(
            report.problems,
            ["entry at position 0: marker offset 3 is below the segment's base offset 4"]
        );
    }
}
