//! The durable metadata log: one file of length-prefixed, CRC32C-checked
//! JSON records, fsynced on every append (metadata changes are rare and must
//! survive a crash).
//!
//! Replay tells a torn tail from damage. A crash can only leave the last
//! entry incomplete, so a bad entry with nothing intact after it is
//! truncated; a bad entry followed by intact ones is damage, and the log
//! refuses to open rather than silently drop every record after it (the
//! broker would then forget those topics). A snapshot of the image is kept
//! beside the log as a second copy.

use crate::entry::{encode_entry, entry_at, next_intact_entry};
use crate::image::MetadataImage;
use crate::record::MetadataRecord;
use crate::snapshot::{read_snapshot, write_snapshot, Snapshot, SNAPSHOT_INTERVAL};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub(crate) const FILE_NAME: &str = "metadata.log";

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("metadata log {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("metadata record could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(
        "metadata log {path} is damaged at byte offset {offset}: {reason}; intact records \
         follow, so this is not a torn write from a crash. Refusing to start rather than \
         forget the topics recorded after it. {snapshot} Inspect it with `sluice log dump \
         {path}`, then repair it with `sluice metadata repair {dir}` (see \
         docs/OPERATIONS.md, \"The metadata log: damage and repair\").",
        dir = path.parent().unwrap_or(Path::new(".")).display(),
        path = path.display()
    )]
    Corrupt {
        path: PathBuf,
        offset: u64,
        reason: String,
        /// What the snapshot beside the log offers, in words.
        snapshot: String,
    },
}

/// Damage found while reading the log.
#[derive(Debug, Clone)]
pub(crate) struct Damage {
    /// Byte offset of the bad entry.
    pub(crate) at: usize,
    pub(crate) reason: String,
    /// Whether an intact entry follows (damage, not a torn tail).
    pub(crate) followed_by_data: bool,
}

/// The intact prefix of a log file.
pub(crate) struct Scan {
    /// Every record before the first bad entry, with the byte offset where
    /// it ends.
    pub(crate) records: Vec<(usize, MetadataRecord)>,
    pub(crate) damage: Option<Damage>,
}

impl Scan {
    /// Byte length of the intact prefix.
    pub(crate) fn valid_len(&self) -> usize {
        self.records.last().map_or(0, |(end, _)| *end)
    }
}

/// Reads entries from `from` until the end or the first bad one.
pub(crate) fn scan(bytes: &[u8], from: usize) -> Scan {
    let mut records = Vec::new();
    let mut position = from;
    while let Some(entry) = entry_at(bytes, position) {
        let decoded = match &entry.problem {
            Some(problem) => Err(problem.to_string()),
            None => serde_json::from_slice::<MetadataRecord>(entry.payload)
                .map_err(|e| format!("not a metadata record: {e}")),
        };
        match decoded {
            Ok(record) => {
                position = entry.end();
                records.push((position, record));
            }
            Err(reason) => {
                let damage = Damage {
                    at: position,
                    reason,
                    followed_by_data: next_intact_entry(bytes, position).is_some(),
                };
                return Scan {
                    records,
                    damage: Some(damage),
                };
            }
        }
    }
    Scan {
        records,
        damage: None,
    }
}

/// Appends records durably and keeps the image they produce.
pub struct MetadataLog {
    dir: PathBuf,
    path: PathBuf,
    file: File,
    /// Byte length of the log file.
    len: u64,
    image: MetadataImage,
    /// Records the newest snapshot covers.
    snapshot_records: u64,
}

impl MetadataLog {
    /// The log file in `dir`, whether or not it exists.
    pub fn file_in(dir: &Path) -> PathBuf {
        dir.join(FILE_NAME)
    }

    /// Opens (or creates) the log in `dir`: loads the snapshot if it
    /// matches the log, then replays the records after it. A torn final
    /// entry is truncated; damage before intact entries is
    /// [`MetadataError::Corrupt`].
    pub fn open(dir: &Path) -> Result<Self, MetadataError> {
        let io = |source| MetadataError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = Self::file_in(dir);
        let io = |source| MetadataError::Io {
            path: path.clone(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let scan = scan(&bytes, 0);
        let snapshot = read_snapshot(dir);
        if let Some(damage) = &scan.damage {
            if damage.followed_by_data {
                return Err(MetadataError::Corrupt {
                    path,
                    offset: damage.at as u64,
                    reason: damage.reason.clone(),
                    snapshot: describe_snapshot(&snapshot, damage.at),
                });
            }
            tracing::warn!(
                path = %path.display(),
                offset = damage.at,
                dropped = bytes.len() - damage.at,
                reason = %damage.reason,
                "truncating the torn final entry of the metadata log"
            );
            file.set_len(damage.at as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        let (mut image, replay_from) = match snapshot {
            Ok(Some(s)) if matches_log(&s, &scan) => (s.image, s.records),
            Ok(Some(s)) => {
                tracing::warn!(path = %path.display(), records = s.records, log_position = s.log_position, "ignoring a metadata snapshot that does not match the log");
                (MetadataImage::default(), 0)
            }
            Ok(None) => (MetadataImage::default(), 0),
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "ignoring an unreadable metadata snapshot");
                (MetadataImage::default(), 0)
            }
        };
        let snapshot_records = replay_from;
        let skip = usize::try_from(replay_from).unwrap_or(usize::MAX);
        for (_, record) in scan.records.iter().skip(skip) {
            image.apply(record);
        }
        Ok(MetadataLog {
            dir: dir.to_path_buf(),
            path,
            file,
            len: scan.valid_len() as u64,
            image,
            snapshot_records,
        })
    }

    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// Appends `records` as one durable write, then applies them. Every
    /// [`SNAPSHOT_INTERVAL`] records a snapshot is written too.
    pub fn append(&mut self, records: &[MetadataRecord]) -> Result<&MetadataImage, MetadataError> {
        if records.is_empty() {
            return Ok(&self.image);
        }
        let mut buf = Vec::new();
        for record in records {
            encode_entry(&serde_json::to_vec(record)?, &mut buf);
        }
        let io = |source| MetadataError::Io {
            path: self.path.clone(),
            source,
        };
        if let Err(e) = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data())
        {
            // Cut off whatever part reached the file, so that the next
            // append does not follow a torn entry.
            let _ignored = self.file.set_len(self.len);
            return Err(io(e));
        }
        self.len += buf.len() as u64;
        for record in records {
            self.image.apply(record);
        }
        if self.image.offset - self.snapshot_records >= SNAPSHOT_INTERVAL {
            if let Err(e) = self.write_snapshot() {
                tracing::warn!(error = %e, "cannot write the metadata snapshot; the log alone still holds everything");
            }
        }
        Ok(&self.image)
    }

    /// Writes a snapshot of the current image (also done at clean shutdown).
    pub fn write_snapshot(&mut self) -> Result<(), MetadataError> {
        let snapshot = Snapshot {
            records: self.image.offset,
            log_position: self.len,
            image: self.image.clone(),
        };
        write_snapshot(&self.dir, &snapshot).map_err(|source| MetadataError::Io {
            path: crate::snapshot::snapshot_path(&self.dir),
            source,
        })?;
        self.snapshot_records = snapshot.records;
        Ok(())
    }
}

/// Whether `snapshot` describes a prefix of the log as scanned.
fn matches_log(snapshot: &Snapshot, scan: &Scan) -> bool {
    match snapshot.records {
        0 => snapshot.log_position == 0,
        n => usize::try_from(n - 1)
            .ok()
            .and_then(|i| scan.records.get(i))
            .is_some_and(|(end, _)| *end as u64 == snapshot.log_position),
    }
}

/// For the damage message: what the snapshot offers the operator.
fn describe_snapshot(snapshot: &Result<Option<Snapshot>, String>, damage_at: usize) -> String {
    match snapshot {
        Ok(Some(s)) if s.log_position > damage_at as u64 => format!(
            "The snapshot beside it covers the first {} records (bytes 0..{}), past the damage: \
             repair can rebuild the log from it without losing anything before byte {}.",
            s.records, s.log_position, s.log_position
        ),
        Ok(Some(s)) => format!(
            "The snapshot beside it covers only the first {} records (bytes 0..{}), before \
             the damage.",
            s.records, s.log_position
        ),
        Ok(None) => "There is no metadata snapshot to recover from.".to_string(),
        Err(reason) => format!("The metadata snapshot beside it is unreadable ({reason})."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{read_snapshot, write_snapshot};
    use std::collections::BTreeMap;
    use uuid::Uuid;

    fn topic(name: &str) -> MetadataRecord {
        MetadataRecord::TopicCreated {
            name: name.into(),
            id: Uuid::new_v4(),
            partitions: 3,
            replicas: vec![1],
            assignments: Vec::new(),
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = MetadataLog::open(dir.path()).unwrap();
            log.append(&[topic("a"), topic("b")]).unwrap();
        }
        let log = MetadataLog::open(dir.path()).unwrap();
        assert!(log.image().topic("a").is_some());
        assert_eq!(log.image().topic("b").unwrap().partitions.len(), 3);
    }

    #[test]
    fn torn_tail_is_truncated_and_earlier_records_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = MetadataLog::open(dir.path()).unwrap();
            log.append(&[topic("a")]).unwrap();
            log.append(&[topic("b")]).unwrap();
        }
        let path = dir.path().join(FILE_NAME);
        let len = std::fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 5).unwrap();
        drop(f);
        let mut log = MetadataLog::open(dir.path()).unwrap();
        assert!(log.image().topic("a").is_some());
        assert!(log.image().topic("b").is_none());
        log.append(&[topic("c")]).unwrap();
        drop(log);
        let log = MetadataLog::open(dir.path()).unwrap();
        assert!(log.image().topic("c").is_some());
    }

    #[test]
    fn a_damaged_final_entry_is_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = MetadataLog::open(dir.path()).unwrap();
            log.append(&[topic("a"), topic("b")]).unwrap();
        }
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let log = MetadataLog::open(dir.path()).unwrap();
        assert!(log.image().topic("a").is_some());
        assert!(log.image().topic("b").is_none());
    }

    /// Three records a, b, c; returns the byte offset where b starts.
    fn three_records(dir: &Path) -> usize {
        let mut log = MetadataLog::open(dir).unwrap();
        log.append(&[topic("a")]).unwrap();
        let b_at = log.len as usize;
        log.append(&[topic("b")]).unwrap();
        log.append(&[topic("c")]).unwrap();
        b_at
    }

    fn open_err(dir: &Path) -> MetadataError {
        match MetadataLog::open(dir) {
            Ok(_) => panic!("a damaged metadata log opened"),
            Err(e) => e,
        }
    }

    #[test]
    fn damage_before_the_last_record_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let b_at = three_records(dir.path());
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        for byte in &mut bytes[b_at + 20..b_at + 24] {
            *byte ^= 0x5a;
        }
        std::fs::write(&path, &bytes).unwrap();
        let err = open_err(dir.path());
        assert!(
            matches!(&err, MetadataError::Corrupt { offset, .. } if *offset == b_at as u64),
            "{err}"
        );
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(
            message.contains(&format!("byte offset {b_at}")),
            "{message}"
        );
        assert!(message.contains("sluice log dump"), "{message}");
        assert_eq!(std::fs::read(&path).unwrap(), bytes, "nothing truncated");
    }

    #[test]
    fn a_damaged_length_field_in_the_first_record_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        three_records(dir.path());
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] = 0x7f;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            open_err(dir.path()),
            MetadataError::Corrupt { offset: 0, .. }
        ));
    }

    #[test]
    fn a_snapshot_is_written_every_interval_and_loaded_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MetadataLog::open(dir.path()).unwrap();
        let records: Vec<_> = (0..SNAPSHOT_INTERVAL)
            .map(|i| topic(&format!("t{i}")))
            .collect();
        log.append(&records).unwrap();
        let snapshot = read_snapshot(dir.path()).unwrap().expect("a snapshot");
        assert_eq!(snapshot.records, SNAPSHOT_INTERVAL);
        assert_eq!(snapshot.log_position, log.len);
        assert_eq!(snapshot.image, *log.image());
        log.append(&[topic("after")]).unwrap();
        drop(log);
        let log = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(log.image().topics().count() as u64, SNAPSHOT_INTERVAL + 1);
        assert!(log.image().topic("after").is_some());
    }

    #[test]
    fn open_starts_from_the_snapshot_and_replays_the_records_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MetadataLog::open(dir.path()).unwrap();
        log.append(&[topic("a")]).unwrap();
        log.write_snapshot().unwrap();
        log.append(&[topic("b")]).unwrap();
        drop(log);
        // A topic only the snapshot knows shows that open used it.
        let mut snapshot = read_snapshot(dir.path()).unwrap().unwrap();
        snapshot.image.apply(&topic("only-in-snapshot"));
        snapshot.image.offset = snapshot.records;
        write_snapshot(dir.path(), &snapshot).unwrap();
        let log = MetadataLog::open(dir.path()).unwrap();
        assert!(log.image().topic("only-in-snapshot").is_some());
        assert!(log.image().topic("b").is_some());
        assert_eq!(log.image().offset, 2);
    }

    #[test]
    fn a_snapshot_that_does_not_match_the_log_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = MetadataLog::open(dir.path()).unwrap();
        log.append(&[topic("a"), topic("b")]).unwrap();
        log.write_snapshot().unwrap();
        drop(log);
        let path = dir.path().join(FILE_NAME);
        let len = std::fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 2)
            .unwrap();
        let log = MetadataLog::open(dir.path()).unwrap();
        assert!(log.image().topic("a").is_some());
        assert!(log.image().topic("b").is_none(), "the torn b is gone");
    }

    #[test]
    fn the_damage_message_says_what_the_snapshot_covers() {
        let dir = tempfile::tempdir().unwrap();
        let b_at = three_records(dir.path());
        MetadataLog::open(dir.path())
            .unwrap()
            .write_snapshot()
            .unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[b_at + 12] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let message = open_err(dir.path()).to_string();
        assert!(message.contains("covers the first 3 records"), "{message}");
    }

    #[test]
    fn repair_rebuilds_from_a_snapshot_that_covers_the_damage() {
        let dir = tempfile::tempdir().unwrap();
        let b_at = three_records(dir.path());
        let before = {
            let mut log = MetadataLog::open(dir.path()).unwrap();
            log.write_snapshot().unwrap();
            log.append(&[topic("d")]).unwrap();
            log.image().clone()
        };
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[b_at + 12] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let repaired = crate::repair(dir.path()).unwrap();
        let crate::Repair::RebuiltFromSnapshot {
            kept_after,
            original,
            ..
        } = repaired
        else {
            panic!("expected a rebuild, got {repaired:?}");
        };
        assert_eq!(kept_after, 1);
        assert_eq!(std::fs::read(original).unwrap(), bytes, "original kept");
        let log = MetadataLog::open(dir.path()).unwrap();
        for name in ["a", "b", "c", "d"] {
            assert_eq!(log.image().topic(name), before.topic(name), "{name}");
        }
    }

    #[test]
    fn repair_without_a_snapshot_cuts_at_the_damage_and_reports_what_it_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let b_at = three_records(dir.path());
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[b_at + 12] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let repaired = crate::repair(dir.path()).unwrap();
        let crate::Repair::Truncated {
            damaged_at,
            dropped,
            ..
        } = repaired
        else {
            panic!("expected a truncation, got {repaired:?}");
        };
        assert_eq!(damaged_at, b_at as u64);
        assert_eq!(dropped, vec![topic_named(&bytes, "c")]);
        let log = MetadataLog::open(dir.path()).unwrap();
        assert!(log.image().topic("a").is_some());
        assert!(log.image().topic("c").is_none());
        assert!(matches!(
            crate::repair(dir.path()).unwrap(),
            crate::Repair::NothingToRepair
        ));
    }

    #[test]
    fn repair_restores_a_missing_log_from_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        three_records(dir.path());
        MetadataLog::open(dir.path())
            .unwrap()
            .write_snapshot()
            .unwrap();
        std::fs::remove_file(dir.path().join(FILE_NAME)).unwrap();
        assert!(matches!(
            crate::repair(dir.path()).unwrap(),
            crate::Repair::RestoredFromSnapshot {
                snapshot_records: 3
            }
        ));
        let log = MetadataLog::open(dir.path()).unwrap();
        assert_eq!(log.image().topics().count(), 3);
        drop(log);
        // So is an emptied one (a refused start leaves an empty file).
        MetadataLog::open(dir.path())
            .unwrap()
            .write_snapshot()
            .unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"").unwrap();
        assert!(matches!(
            crate::repair(dir.path()).unwrap(),
            crate::Repair::RestoredFromSnapshot { .. }
        ));
        assert_eq!(
            MetadataLog::open(dir.path())
                .unwrap()
                .image()
                .topics()
                .count(),
            3
        );
    }

    /// The record creating `name`, as it is stored in `bytes`.
    fn topic_named(bytes: &[u8], name: &str) -> MetadataRecord {
        let mut at = 0;
        while let Some(entry) = entry_at(bytes, at) {
            if let Ok(record @ MetadataRecord::TopicCreated { .. }) =
                serde_json::from_slice::<MetadataRecord>(entry.payload)
            {
                if matches!(&record, MetadataRecord::TopicCreated { name: n, .. } if n == name) {
                    return record;
                }
            }
            at = entry.end();
        }
        panic!("no record for {name}");
    }
}
