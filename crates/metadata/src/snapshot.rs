//! The metadata snapshot: the serialized image and the log position it
//! covers, in one CRC-checked entry. It is the second copy of the metadata
//! an operator can repair a damaged log from (`sluice metadata repair`),
//! and what a cluster quorum will ship to a lagging voter.

use crate::entry::{encode_entry, entry_at};
use crate::image::MetadataImage;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

pub(crate) const SNAPSHOT_FILE_NAME: &str = "metadata.snapshot";

/// A snapshot is written after this many records since the last one.
pub(crate) const SNAPSHOT_INTERVAL: u64 = 1000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Snapshot {
    /// How many records of the log the image reflects.
    pub(crate) records: u64,
    /// The byte length of the log prefix holding those records.
    pub(crate) log_position: u64,
    pub(crate) image: MetadataImage,
}

pub(crate) fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join(SNAPSHOT_FILE_NAME)
}

/// Reads the snapshot in `dir`. `Ok(None)` when there is none; `Err`
/// names why an existing one cannot be used.
pub(crate) fn read_snapshot(dir: &Path) -> Result<Option<Snapshot>, String> {
    let path = snapshot_path(dir);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let entry = entry_at(&bytes, 0).ok_or("the file is empty")?;
    if let Some(problem) = entry.problem {
        return Err(problem.to_string());
    }
    let mut snapshot: Snapshot =
        serde_json::from_slice(entry.payload).map_err(|e| format!("not a snapshot: {e}"))?;
    snapshot.image.reindex();
    Ok(Some(snapshot))
}

/// Writes the snapshot durably: temp file, fsync, rename, fsync of the
/// directory, so a crash leaves the old snapshot or the new one.
pub(crate) fn write_snapshot(dir: &Path, snapshot: &Snapshot) -> std::io::Result<()> {
    let payload = serde_json::to_vec(snapshot)?;
    let mut bytes = Vec::with_capacity(payload.len() + 8);
    encode_entry(&payload, &mut bytes);
    let path = snapshot_path(dir);
    let tmp = path.with_extension("snapshot.tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()
}

/// Removes the snapshot (it no longer matches a rewritten log).
pub(crate) fn remove_snapshot(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(snapshot_path(dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => File::open(dir)?.sync_all(),
    }
}
