//! Kafka's aborted-transaction index: `<base>.txnindex` beside a segment,
//! one entry per abort marker the segment holds, so that read_committed
//! fetches learn which producers' records to drop without scanning the log.
//!
//! The format is Kafka's: fixed 34-byte big-endian entries of version
//! (i16, 0), producer id (i64), first offset of the transaction (i64), last
//! offset (i64, the abort marker) and the last stable offset right after
//! the marker (i64), in marker order. The file exists only for segments
//! that hold an abort. The entries are also kept in memory (aborts are
//! rare), loaded when the segment is opened.
//!
//! What the entries mean is the caller's business (the broker computes them
//! from its producer state); this module only stores them.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{IoContext, StorageError};
use crate::fsutil::write_file_atomically;
use crate::segment::{remove_if_present, segment_path};

pub(crate) const TXN_INDEX_SUFFIX: &str = "txnindex";
/// Bytes per entry on disk.
pub const TXN_INDEX_ENTRY_LEN: usize = 34;
const VERSION: i16 = 0;

/// One aborted transaction, as Kafka's `AbortedTxn`: producer
/// `producer_id`'s records in `first_offset..last_offset` belong to a
/// transaction that its abort marker at `last_offset` ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxnEntry {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The offset of the abort marker.
    pub last_offset: i64,
    /// The last stable offset right after the marker was written: the
    /// first offset of the oldest transaction still open then, or the
    /// offset after the marker. No transaction aborted later started
    /// below it, which lets a scan stop early.
    pub last_stable_offset: i64,
}

impl AbortedTxnEntry {
    pub fn encode(&self) -> [u8; TXN_INDEX_ENTRY_LEN] {
        let mut out = [0u8; TXN_INDEX_ENTRY_LEN];
        out[0..2].copy_from_slice(&VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8; TXN_INDEX_ENTRY_LEN]) -> Result<AbortedTxnEntry, String> {
        let i64_at = |at: usize| i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        let version = i16::from_be_bytes([bytes[0], bytes[1]]);
        if version != VERSION {
            return Err(format!("unknown entry version {version}"));
        }
        let entry = AbortedTxnEntry {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        };
        if entry.first_offset > entry.last_offset {
            return Err(format!(
                "first offset {} is past the marker offset {}",
                entry.first_offset, entry.last_offset
            ));
        }
        Ok(entry)
    }

    /// Kafka's overlap test: the transaction ends at or after `from` and
    /// starts below `upper_bound`.
    fn overlaps(&self, from: i64, upper_bound: i64) -> bool {
        self.last_offset >= from && self.first_offset < upper_bound
    }
}

/// Where and why a txnindex file stops making sense.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnIndexDamage {
    /// Byte position of the first entry that is not whole and valid.
    pub position: u64,
    pub reason: String,
}

/// The whole, valid entries at the start of a txnindex file, and what is
/// wrong with the rest, if anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnIndexContents {
    pub entries: Vec<AbortedTxnEntry>,
    pub damage: Option<TxnIndexDamage>,
}

/// Parses a txnindex file (for the log and for tools such as `sluice log
/// dump`): entries must have version 0, a first offset not past their
/// marker, and strictly increasing marker offsets.
pub fn decode_txn_index(bytes: &[u8]) -> TxnIndexContents {
    let mut entries: Vec<AbortedTxnEntry> = Vec::with_capacity(bytes.len() / TXN_INDEX_ENTRY_LEN);
    let mut damage = None;
    for (i, chunk) in bytes.chunks(TXN_INDEX_ENTRY_LEN).enumerate() {
        let position = (i * TXN_INDEX_ENTRY_LEN) as u64;
        let Ok(chunk) = <&[u8; TXN_INDEX_ENTRY_LEN]>::try_from(chunk) else {
            damage = Some(TxnIndexDamage {
                position,
                reason: format!(
                    "a partial entry of {} bytes (entries have {TXN_INDEX_ENTRY_LEN})",
                    chunk.len()
                ),
            });
            break;
        };
        let entry = AbortedTxnEntry::decode(chunk).and_then(|entry| match entries.last() {
            Some(previous) if previous.last_offset >= entry.last_offset => Err(format!(
                "marker offset {} does not follow the previous entry's {}",
                entry.last_offset, previous.last_offset
            )),
            _ => Ok(entry),
        });
        match entry {
            Ok(entry) => entries.push(entry),
            Err(reason) => {
                damage = Some(TxnIndexDamage { position, reason });
                break;
            }
        }
    }
    TxnIndexContents { entries, damage }
}

/// The txnindex of one segment: its entries, and the file once it exists.
pub(crate) struct TxnIndex {
    path: PathBuf,
    entries: Vec<AbortedTxnEntry>,
    /// Open for appends; `None` until the first append after an open.
    file: Option<Arc<File>>,
    /// Appended to since the last sync.
    dirty: bool,
}

/// Reads a txnindex file; `None` when it does not exist.
fn read_if_present(path: &Path) -> Result<Option<Vec<u8>>, StorageError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).context(|| format!("reading {}", path.display())),
    }
}

impl TxnIndex {
    /// An index without entries (its file, if any, is not read).
    pub(crate) fn empty(dir: &Path, base_offset: i64) -> TxnIndex {
        TxnIndex::with_entries(dir, base_offset, Vec::new())
    }

    /// An index holding `entries`, which its file (if any) already holds.
    pub(crate) fn with_entries(
        dir: &Path,
        base_offset: i64,
        entries: Vec<AbortedTxnEntry>,
    ) -> TxnIndex {
        TxnIndex {
            path: segment_path(dir, base_offset, TXN_INDEX_SUFFIX),
            entries,
            file: None,
            dirty: false,
        }
    }

    /// Loads the segment's txnindex file, if it has one. A damaged file is
    /// cut back to its valid entries, with a warning; the second value is
    /// then the offset from which entries may be missing (the caller
    /// rebuilds them).
    pub(crate) fn load(
        dir: &Path,
        base_offset: i64,
    ) -> Result<(TxnIndex, Option<i64>), StorageError> {
        let mut index = TxnIndex::empty(dir, base_offset);
        let Some(bytes) = read_if_present(&index.path)? else {
            return Ok((index, None));
        };
        let contents = decode_txn_index(&bytes);
        index.entries = contents.entries;
        let Some(damage) = contents.damage else {
            return Ok((index, None));
        };
        tracing::warn!(
            path = %index.path.display(),
            position = damage.position,
            reason = %damage.reason,
            kept = index.entries.len(),
            "cutting a damaged aborted-transaction index back to its valid entries"
        );
        let missing_from = index
            .entries
            .last()
            .map_or(base_offset, |e| e.last_offset + 1);
        index.rewrite_file()?;
        Ok((index, Some(missing_from)))
    }

    pub(crate) fn entries(&self) -> &[AbortedTxnEntry] {
        &self.entries
    }

    /// Appends an entry to the file (created if needed; unsynced). Returns
    /// whether the file was created, so that the caller syncs the directory.
    pub(crate) fn append(&mut self, entry: AbortedTxnEntry) -> Result<bool, StorageError> {
        let created = self.file.is_none() && !self.path.exists();
        let file = match &self.file {
            Some(file) => Arc::clone(file),
            None => {
                let file = OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .open(&self.path)
                    .context(|| format!("opening {}", self.path.display()))?;
                let file = Arc::new(file);
                self.file = Some(Arc::clone(&file));
                file
            }
        };
        let position = (self.entries.len() * TXN_INDEX_ENTRY_LEN) as u64;
        if let Err(e) = file.write_all_at(&entry.encode(), position) {
            let _ = file.set_len(position);
            return Err(e).context(|| format!("appending to {}", self.path.display()));
        }
        self.entries.push(entry);
        self.dirty = true;
        Ok(created)
    }

    /// The open file, for the durability path of the active segment.
    pub(crate) fn file(&self) -> Option<Arc<File>> {
        self.file.clone()
    }

    /// Closes the file of a synced index whose segment is no longer
    /// appended to; a later append (a marker written late) opens it again.
    pub(crate) fn close_file(&mut self) {
        if !self.dirty {
            self.file = None;
        }
    }

    /// Syncs the file if it was appended to since the last sync.
    pub(crate) fn sync(&mut self) -> Result<(), StorageError> {
        if !self.dirty {
            return Ok(());
        }
        if let Some(file) = &self.file {
            file.sync_data()
                .context(|| format!("syncing {}", self.path.display()))?;
        }
        self.dirty = false;
        Ok(())
    }

    /// Drops the entries whose marker is at or after `offset`. Returns
    /// whether any went (the file then changed, synced).
    pub(crate) fn truncate_from(&mut self, offset: i64) -> Result<bool, StorageError> {
        let keep = self.entries.partition_point(|e| e.last_offset < offset);
        if keep == self.entries.len() {
            return Ok(false);
        }
        self.entries.truncate(keep);
        self.rewrite_file()?;
        Ok(true)
    }

    /// Replaces the entries (the cleaner's merge), rewriting the file
    /// atomically, or deleting it when none are left.
    pub(crate) fn replace(&mut self, entries: Vec<AbortedTxnEntry>) -> Result<(), StorageError> {
        if entries == self.entries {
            return Ok(());
        }
        self.entries = entries;
        self.file = None;
        self.dirty = false;
        if self.entries.is_empty() {
            return remove_if_present(&self.path);
        }
        write_file_atomically(&self.path, &encode_all(&self.entries))
    }

    /// Makes the file hold exactly the in-memory entries (synced), or
    /// removes it when there are none.
    fn rewrite_file(&mut self) -> Result<(), StorageError> {
        self.file = None;
        self.dirty = false;
        if self.entries.is_empty() {
            return remove_if_present(&self.path);
        }
        let len = (self.entries.len() * TXN_INDEX_ENTRY_LEN) as u64;
        let file = OpenOptions::new()
            .write(true)
            .open(&self.path)
            .context(|| format!("opening {}", self.path.display()))?;
        file.set_len(len)
            .and_then(|()| file.sync_data())
            .context(|| format!("truncating {}", self.path.display()))
    }
}

fn encode_all(entries: &[AbortedTxnEntry]) -> Vec<u8> {
    entries.iter().flat_map(|e| e.encode()).collect()
}

/// Entries of `entries` (in marker order) that overlap `from..upper_bound`,
/// and whether the scan is complete: an entry whose last stable offset
/// reaches `upper_bound` proves that no later abort overlaps.
pub(crate) fn collect(
    entries: &[AbortedTxnEntry],
    from: i64,
    upper_bound: i64,
    out: &mut Vec<AbortedTxnEntry>,
) -> bool {
    for entry in entries {
        if entry.overlaps(from, upper_bound) {
            out.push(*entry);
        }
        if entry.last_stable_offset >= upper_bound {
            return true;
        }
    }
    false
}

/// At the completion of a cleaner swap that replaces the segments at
/// `originals` by one at `base` (after a crash too): makes `base`'s
/// txnindex hold the entries of all of them (merged by marker offset, so
/// that a repeated merge changes nothing), before the originals go.
pub(crate) fn merge_into(dir: &Path, base: i64, originals: &[i64]) -> Result<(), StorageError> {
    let mut merged = Vec::new();
    let mut from_others = false;
    for (i, &segment) in std::iter::once(&base).chain(originals).enumerate() {
        let path = segment_path(dir, segment, TXN_INDEX_SUFFIX);
        let Some(bytes) = read_if_present(&path)? else {
            continue;
        };
        let contents = decode_txn_index(&bytes);
        if let Some(damage) = contents.damage {
            tracing::warn!(path = %path.display(), position = damage.position, reason = %damage.reason, "merging the valid part of a damaged aborted-transaction index");
        }
        from_others |= i > 0 && !contents.entries.is_empty();
        merged.extend(contents.entries);
    }
    if !from_others {
        return Ok(());
    }
    merged.sort_by_key(|e| e.last_offset);
    merged.dedup_by_key(|e| e.last_offset);
    write_file_atomically(
        &segment_path(dir, base, TXN_INDEX_SUFFIX),
        &encode_all(&merged),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(first: i64, last: i64, lso: i64) -> AbortedTxnEntry {
        AbortedTxnEntry {
            producer_id: 7,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn entries_have_kafkas_34_byte_layout() {
        let bytes = entry(1, 2, 3).encode();
        assert_eq!(
            bytes,
            [
                0, 0, // version
                0, 0, 0, 0, 0, 0, 0, 7, // producer id
                0, 0, 0, 0, 0, 0, 0, 1, // first offset
                0, 0, 0, 0, 0, 0, 0, 2, // last offset
                0, 0, 0, 0, 0, 0, 0, 3, // last stable offset
            ]
        );
    }

    #[test]
    fn decoding_stops_at_the_first_bad_entry() {
        let mut bytes = encode_all(&[entry(0, 2, 3), entry(4, 6, 7)]);
        assert_eq!(
            decode_txn_index(&bytes),
            TxnIndexContents {
                entries: vec![entry(0, 2, 3), entry(4, 6, 7)],
                damage: None
            }
        );
        bytes.extend_from_slice(&[0; 10]);
        let contents = decode_txn_index(&bytes);
        assert_eq!(contents.entries.len(), 2);
        assert_eq!(contents.damage.unwrap().position, 68);

        let mut bad_version = encode_all(&[entry(0, 2, 3), entry(4, 6, 7)]);
        bad_version[35] = 1;
        let contents = decode_txn_index(&bad_version);
        assert_eq!(contents.entries, vec![entry(0, 2, 3)]);
        let damage = contents.damage.unwrap();
        assert_eq!(damage.position, 34);
        assert!(damage.reason.contains("version 1"), "{}", damage.reason);

        let backwards = encode_all(&[entry(4, 6, 7), entry(0, 2, 3)]);
        assert_eq!(decode_txn_index(&backwards).damage.unwrap().position, 34);
        let inverted = encode_all(&[entry(5, 2, 3)]);
        assert_eq!(decode_txn_index(&inverted).damage.unwrap().position, 0);
    }

    #[test]
    fn collect_stops_once_an_entry_is_stable_past_the_bound() {
        let entries = [entry(0, 2, 3), entry(3, 5, 6), entry(8, 20, 21)];
        let mut out = Vec::new();
        assert!(collect(&entries, 0, 4, &mut out));
        assert_eq!(out, vec![entry(0, 2, 3), entry(3, 5, 6)]);
        out.clear();
        assert!(!collect(&entries, 3, 30, &mut out));
        assert_eq!(out, vec![entry(3, 5, 6), entry(8, 20, 21)]);
    }
}
