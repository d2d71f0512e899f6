//! The metadata log on disk: `sluice log dump .../metadata.log` prints
//! every record, and `sluice metadata repair DIR` repairs a damaged log
//! from its snapshot or by cutting it at the damage. Both read files only;
//! the broker must not be running during a repair.

use crate::log_dump::Report;
use crate::output::{print_json, print_line, OutputFormat};
use crate::Global;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::json;
use sluice_metadata::{entry_at, next_intact_entry, EntryProblem, MetadataRecord, Repair};
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub(crate) enum MetadataCommand {
    /// Repair a damaged metadata log (stop the broker first). Rebuilds it
    /// from metadata.snapshot when the snapshot covers the damage, otherwise
    /// cuts it at the damage; the damaged file is kept beside it.
    Repair(RepairArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RepairArgs {
    /// The data directory, its __cluster_metadata-0 directory, or the
    /// metadata.log file.
    path: PathBuf,
}

pub(crate) fn run(global: &Global, cmd: MetadataCommand) -> anyhow::Result<()> {
    let MetadataCommand::Repair(args) = cmd;
    let dir = metadata_dir(&args.path)?;
    // The broker's own lock on the data directory: a repair under a running
    // broker is refused, naming its pid.
    let data_dir = dir.parent().unwrap_or(&dir);
    let _lock = sluice_storage::DirLock::acquire(data_dir)
        .context("stop the broker before repairing its metadata log")?;
    let repaired = sluice_metadata::repair(&dir)
        .with_context(|| format!("repairing the metadata log in {}", dir.display()))?;
    let (summary, dropped, original) = match &repaired {
        Repair::NothingToRepair => (
            "The metadata log has no damage to repair (a torn final entry is truncated when the broker starts).".to_string(),
            &[][..],
            None,
        ),
        Repair::RestoredFromSnapshot { snapshot_records } => (
            format!("The metadata log was missing or held fewer records than its snapshot: wrote it anew from the snapshot of its first {snapshot_records} records."),
            &[][..],
            None,
        ),
        Repair::RebuiltFromSnapshot {
            damaged_at,
            snapshot_records,
            kept_after,
            dropped,
            original,
        } => (
            format!(
                "Rebuilt the metadata log from the snapshot of its first {snapshot_records} records (the damage at byte {damaged_at} lies inside them), then the {kept_after} records after it."
            ),
            &dropped[..],
            Some(original),
        ),
        Repair::Truncated {
            damaged_at,
            dropped,
            original,
        } => (
            format!(
                "Cut the metadata log at the damage at byte {damaged_at}; no snapshot covers it."
            ),
            &dropped[..],
            Some(original),
        ),
    };
    let dropped_topics: Vec<&str> = dropped
        .iter()
        .filter_map(|r| match r {
            MetadataRecord::TopicCreated { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    if global.output == OutputFormat::Json {
        return print_json(&json!({
            "summary": summary,
            "dropped_records": dropped.len(),
            "dropped_topics": dropped_topics,
            "original": original.map(|p| p.display().to_string()),
        }));
    }
    print_line(&summary)?;
    if let Some(original) = original {
        print_line(&format!(
            "The damaged file is kept as {}.",
            original.display()
        ))?;
    }
    if !dropped.is_empty() {
        print_line(&format!(
            "Dropped {} intact records after the damage; the broker cannot apply them without the damaged one.",
            dropped.len()
        ))?;
        if !dropped_topics.is_empty() {
            print_line(&format!(
                "Topics created by them, whose directories the broker will move aside (as <topic>-<partition>.<time>-orphaned, not deleted): {}",
                dropped_topics.join(", ")
            ))?;
        }
    }
    Ok(())
}

/// The directory holding metadata.log, from any of the accepted paths.
fn metadata_dir(path: &Path) -> anyhow::Result<PathBuf> {
    for candidate in [
        path.to_path_buf(),
        path.join("__cluster_metadata-0"),
        path.parent().map(Path::to_path_buf).unwrap_or_default(),
    ] {
        let has = |name: &str| candidate.join(name).is_file();
        if has("metadata.log") || has("metadata.snapshot") {
            return Ok(candidate);
        }
    }
    bail!(
        "{}: no metadata.log or metadata.snapshot there (give the data directory, its __cluster_metadata-0 directory or the file)",
        path.display()
    )
}

/// Prints every entry of a metadata log: its index, byte position, length,
/// CRC and the record. Damage is a problem naming the byte position; the
/// dump goes on at the next intact entry. A torn final entry, which a crash
/// leaves and the broker truncates, is a note, not a problem.
pub(crate) fn dump_metadata_log(data: &[u8]) -> Report {
    let mut report = Report::default();
    let mut position = 0;
    let mut index = 0u64;
    while let Some(entry) = entry_at(data, position) {
        let length = entry.declared_len;
        let decoded = match &entry.problem {
            None => MetadataRecord::decode(entry.payload)
                .map_err(|e| format!("not a metadata record: {e}")),
            Some(problem) => Err(problem.to_string()),
        };
        let crc_valid = !matches!(entry.problem, Some(EntryProblem::CrcMismatch { .. }));
        let redacted = decoded.as_ref().ok().and_then(redact_secrets);
        let text = match &redacted {
            Some(record) => record.to_string(),
            None => String::from_utf8_lossy(entry.payload).into_owned(),
        };
        report.lines.push(format!(
            "offset: {index} position: {position} length: {length} crcValid: {crc_valid} record: {text}"
        ));
        let record = decoded.as_ref().ok().map(|_| {
            redacted.clone().unwrap_or_else(|| {
                serde_json::from_slice::<serde_json::Value>(entry.payload).unwrap_or_default()
            })
        });
        report.entries.push(json!({
            "offset": index,
            "position": position,
            "length": length,
            "crc_valid": crc_valid,
            "record": record,
        }));
        index += 1;
        match decoded {
            Ok(_) => position = entry.end(),
            Err(reason) => match next_intact_entry(data, position) {
                Some(next) => {
                    report.problems.push(format!(
                        "entry at byte position {position}: {reason}; intact entries follow from byte {next}"
                    ));
                    position = next;
                }
                None => {
                    report.lines.push(format!(
                        "NOTE: the final entry at byte position {position} is torn ({reason}); a crash leaves this and the broker truncates it at start"
                    ));
                    break;
                }
            },
        }
    }
    report
}

/// A SCRAM credential record with its salt and keys replaced by
/// "(redacted)", as Kafka's metadata tools print them; `None` for records
/// that hold no secret.
fn redact_secrets(record: &MetadataRecord) -> Option<serde_json::Value> {
    let MetadataRecord::UserScramCredentialUpserted {
        name,
        mechanism,
        credential,
    } = record
    else {
        return None;
    };
    Some(json!({
        "type": "user_scram_credential_upserted",
        "name": name,
        "mechanism": mechanism,
        "credential": {
            "salt": "(redacted)",
            "stored_key": "(redacted)",
            "server_key": "(redacted)",
            "iterations": credential.iterations,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_metadata::MetadataLog;

    #[test]
    fn scram_salts_and_keys_are_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MetadataLog::open(dir.path()).unwrap();
        log.append(&[MetadataRecord::UserScramCredentialUpserted {
            name: "alice".into(),
            mechanism: sluice_metadata::ScramMechanism::Sha512,
            credential: sluice_metadata::ScramCredential {
                salt: vec![0xab; 4],
                stored_key: vec![0xcd; 4],
                server_key: vec![0xef; 4],
                iterations: 8192,
            },
        }])
        .unwrap();
        let bytes = std::fs::read(MetadataLog::file_in(dir.path())).unwrap();
        let report = dump_metadata_log(&bytes);
        let text = report.lines.join("\n") + &report.entries[0].to_string();
        assert!(
            text.contains("(redacted)") && text.contains("alice") && text.contains("8192"),
            "{text}"
        );
        for secret in ["abab", "cdcd", "efef"] {
            assert!(!text.contains(secret), "{text}");
        }
    }

    /// A metadata log of three records, and where the second one starts.
    fn log_of_three() -> (Vec<u8>, usize) {
        let dir = tempfile::tempdir().unwrap();
        let path = MetadataLog::file_in(dir.path());
        let mut log = MetadataLog::open(dir.path()).unwrap();
        let mut second = 0;
        for next in [1000, 2000, 3000] {
            log.append(&[MetadataRecord::ProducerIdsAllocated { next }])
                .unwrap();
            if next == 1000 {
                second = std::fs::metadata(&path).unwrap().len() as usize;
            }
        }
        (std::fs::read(&path).unwrap(), second)
    }

    #[test]
    fn prints_every_record_and_names_damage_by_position() {
        let (mut bytes, second) = log_of_three();
        let clean = dump_metadata_log(&bytes);
        assert_eq!(clean.entries.len(), 3);
        assert!(clean.problems.is_empty());
        assert!(clean.lines[1].contains("2000"), "{:?}", clean.lines);
        bytes[second + 10] ^= 0xff;
        let damaged = dump_metadata_log(&bytes);
        assert_eq!(
            damaged.entries.len(),
            3,
            "the dump goes on after the damage"
        );
        assert_eq!(damaged.problems.len(), 1);
        assert!(
            damaged.problems[0].contains(&format!("byte position {second}")),
            "{:?}",
            damaged.problems
        );
        assert!(damaged.lines[1].contains("crcValid: false"));
        assert!(damaged.lines[2].contains("3000"));
    }

    #[test]
    fn a_torn_final_entry_is_a_note() {
        let (bytes, _) = log_of_three();
        let torn = dump_metadata_log(&bytes[..bytes.len() - 4]);
        assert!(torn.problems.is_empty());
        assert!(torn.lines.last().unwrap().contains("torn"));
    }
}
