//! Repairing a damaged metadata log, offline (`sluice metadata repair`).
//!
//! When the snapshot covers the damage, the log is rewritten as the
//! snapshot's image expressed as records followed by the intact records
//! after the snapshot: nothing is lost. Otherwise the log is cut at the
//! damage and the records after it are reported, since the broker cannot
//! apply them without the damaged one. Either way the original file is
//! kept beside the log, and topics the repaired log no longer knows have
//! their directories moved aside (never deleted) at the next start.

use crate::entry::{encode_entry, next_intact_entry};
use crate::log::{scan, MetadataError, MetadataLog, FILE_NAME};
use crate::record::MetadataRecord;
use crate::snapshot::{read_snapshot, remove_snapshot};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

/// What [`repair`] did.
#[derive(Debug)]
pub enum Repair {
    /// No damage (a torn final entry is truncated by the next open).
    NothingToRepair,
    /// The log was missing or held fewer records than the snapshot
    /// covers; written anew from the snapshot.
    RestoredFromSnapshot { snapshot_records: u64 },
    /// Rewritten from the snapshot; `kept_after` records after it kept.
    RebuiltFromSnapshot {
        damaged_at: u64,
        snapshot_records: u64,
        kept_after: usize,
        /// Records after further damage past the snapshot, dropped.
        dropped: Vec<MetadataRecord>,
        original: PathBuf,
    },
    /// Cut at the damage; the intact records found after it are dropped.
    Truncated {
        damaged_at: u64,
        dropped: Vec<MetadataRecord>,
        original: PathBuf,
    },
}

/// Repairs the metadata log in `dir` (the broker must not be running).
pub fn repair(dir: &Path) -> Result<Repair, MetadataError> {
    let path = MetadataLog::file_in(dir);
    let io = |source| MetadataError::Io {
        path: path.clone(),
        source,
    };
    let bytes = match std::fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return restore_from_snapshot(dir, &path).map(|records| Repair::RestoredFromSnapshot {
                snapshot_records: records,
            });
        }
        read => read.map_err(io)?,
    };
    let found = scan(&bytes, 0);
    let snapshot = read_snapshot(dir).ok().flatten();
    let original = dir.join(format!("{FILE_NAME}.damaged-{}", now_ms()));
    let Some(damage) = found.damage.clone().filter(|d| d.followed_by_data) else {
        // Intact but shorter than the snapshot: the log lost records (it
        // was emptied, or cut); the snapshot has them.
        if snapshot
            .as_ref()
            .is_some_and(|s| s.log_position > found.valid_len() as u64)
        {
            std::fs::copy(&path, &original).map_err(io)?;
            return restore_from_snapshot(dir, &path).map(|records| Repair::RestoredFromSnapshot {
                snapshot_records: records,
            });
        }
        return Ok(Repair::NothingToRepair);
    };
    match snapshot.filter(|s| s.log_position > damage.at as u64) {
        Some(snapshot) => {
            let from = usize::try_from(snapshot.log_position).unwrap_or(usize::MAX);
            let after = scan(&bytes, from);
            let tail_end = after.records.last().map_or(from, |(end, _)| *end);
            let dropped = after
                .damage
                .map(|d| records_after_damage(&bytes, d.at))
                .unwrap_or_default();
            let mut rebuilt = Vec::new();
            for record in snapshot.image.to_records() {
                encode_entry(&serde_json::to_vec(&record)?, &mut rebuilt);
            }
            rebuilt.extend_from_slice(bytes.get(from..tail_end).unwrap_or_default());
            replace_log(&path, &original, &rebuilt).map_err(io)?;
            // Its record count no longer matches the rewritten log.
            remove_snapshot(dir).map_err(io)?;
            Ok(Repair::RebuiltFromSnapshot {
                damaged_at: damage.at as u64,
                snapshot_records: snapshot.records,
                kept_after: after.records.len(),
                dropped,
                original,
            })
        }
        None => {
            let dropped = records_after_damage(&bytes, damage.at);
            replace_log(&path, &original, &bytes[..damage.at]).map_err(io)?;
            Ok(Repair::Truncated {
                damaged_at: damage.at as u64,
                dropped,
                original,
            })
        }
    }
}

/// Writes the log anew from the snapshot; returns the records it covers.
fn restore_from_snapshot(dir: &Path, path: &Path) -> Result<u64, MetadataError> {
    let io = |source| MetadataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let snapshot = match read_snapshot(dir) {
        Ok(Some(snapshot)) => snapshot,
        Ok(None) => {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the metadata log is missing and there is no snapshot to restore it from",
            )))
        }
        Err(reason) => {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the metadata log is missing and its snapshot is unreadable: {reason}"),
            )))
        }
    };
    let mut rebuilt = Vec::new();
    for record in snapshot.image.to_records() {
        encode_entry(&serde_json::to_vec(&record)?, &mut rebuilt);
    }
    write_new(path, &rebuilt).map_err(io)?;
    remove_snapshot(dir).map_err(io)?;
    Ok(snapshot.records)
}

/// The intact records after damage at `at`, skipping every bad stretch.
fn records_after_damage(bytes: &[u8], mut at: usize) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    while let Some(next) = next_intact_entry(bytes, at) {
        let found = scan(bytes, next);
        records.extend(found.records.into_iter().map(|(_, r)| r));
        match found.damage {
            Some(d) => at = d.at,
            None => break,
        }
    }
    records
}

/// Keeps the damaged file as `original` and puts `contents` in its place.
fn replace_log(path: &Path, original: &Path, contents: &[u8]) -> std::io::Result<()> {
    std::fs::copy(path, original)?;
    write_new(path, contents)
}

/// Puts `contents` at `path` durably (temp file, fsync, rename, directory fsync).
fn write_new(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("log.repair");
    let mut file = File::create(&tmp)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}
