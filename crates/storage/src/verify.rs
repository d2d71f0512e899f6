//! Batch-by-batch verification of a segment file: where it is damaged and
//! which valid batches follow the damage. Crash recovery, `sluice log
//! verify` and the broker's scrubber share this one scan.
//!
//! A batch is valid when its header parses (magic 2, a sane length), it lies
//! wholly inside the file, its CRC32C matches, its offsets do not go back
//! and stay within the segment's 32-bit relative range. After a bad batch
//! the scan looks byte by byte for the next valid batch whose base offset
//! is past the last good one and whose leader epoch does not go back; what
//! lies between is a damaged range. Random bytes pass all of that only
//! with the odds of a CRC32C collision.

use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

use sluice_protocol::batch::{BatchHeader, BATCH_HEADER_LEN};

use crate::cleaner::Throttle;
use crate::error::{IoContext, StorageError};
use crate::segment::{BatchMeta, LOG_SUFFIX, MAX_RELATIVE_OFFSET};

/// Bytes read at a time while looking for the next valid batch.
const SEARCH_WINDOW: usize = 1024 * 1024;

/// A damaged stretch of a segment file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRange {
    /// The bytes `[start, end)` of the file that hold no valid batch.
    pub bytes: Range<u64>,
    /// The offset after the last valid batch before the damage (the
    /// segment's base offset when none).
    pub first_lost_offset: i64,
    /// Base offset of the first valid batch after the damage; `None` when
    /// the damage runs to the end of the file.
    pub resumes_at: Option<i64>,
}

impl DamagedRange {
    /// The offsets that no valid batch holds any more, when known: from
    /// `first_lost_offset` to where the log resumes.
    pub fn lost_offsets(&self) -> Option<Range<i64>> {
        self.resumes_at.map(|end| self.first_lost_offset..end)
    }
}

/// What a scan of one segment file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentCheck {
    /// Valid batches found.
    pub batches: u64,
    /// Size of the file.
    pub bytes: u64,
    /// The offset after the last valid batch (the base offset when none).
    pub next_offset: i64,
    /// In file order.
    pub damaged: Vec<DamagedRange>,
    /// Whether every batch after the first damaged range continues the one
    /// before it exactly (base offset = previous last offset + 1, leader
    /// epoch not lower): the proof that they belong to this log in this
    /// order rather than being stale or foreign bytes.
    pub continues_in_sequence: bool,
}

impl SegmentCheck {
    pub fn is_intact(&self) -> bool {
        self.damaged.is_empty()
    }

    /// Whether recovery may keep the batches after the damage: every
    /// damaged range is followed by valid batches, those continue in
    /// sequence to the end of the file, and no range claims to have held
    /// more offsets than it has bytes (every record takes several, so a
    /// larger jump means the batch after it is not the log's next one). A
    /// torn final write (the normal crash) never qualifies: its damage runs
    /// to the end.
    pub fn can_skip_damage(&self) -> bool {
        self.continues_in_sequence
            && self.damaged.iter().all(|d| {
                d.lost_offsets().is_some_and(|lost| {
                    u64::try_from(lost.end - lost.start)
                        .is_ok_and(|count| count <= d.bytes.end - d.bytes.start)
                })
            })
    }
}

/// Verifies the segment file at `path` (named `<20-digit base offset>.log`)
/// without changing it, reading at most as fast as `throttle` allows.
pub fn verify_segment(path: &Path, throttle: &Throttle) -> Result<SegmentCheck, StorageError> {
    let base_offset = segment_base_offset(path).ok_or_else(|| {
        StorageError::Corrupt(format!(
            "{}: not a segment file (<20-digit base offset>.log)",
            path.display()
        ))
    })?;
    let file = File::open(path).context(|| format!("opening {}", path.display()))?;
    let size = file
        .metadata()
        .context(|| format!("reading the size of {}", path.display()))?
        .len();
    SegmentScan {
        file: &file,
        path,
        size,
        base_offset,
        throttle,
    }
    .run(|_, _| {})
}

/// The base offset in a segment file's name.
pub fn segment_base_offset(path: &Path) -> Option<i64> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(LOG_SUFFIX)?.strip_suffix('.')?;
    let parsed = stem.parse::<i64>().ok()?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit())).then_some(parsed)
}

/// One pass over a segment file.
pub(crate) struct SegmentScan<'a> {
    pub(crate) file: &'a File,
    pub(crate) path: &'a Path,
    pub(crate) size: u64,
    pub(crate) base_offset: i64,
    pub(crate) throttle: &'a Throttle,
}

/// Where the next batch must fit: after this offset, at this epoch or later.
#[derive(Clone, Copy)]
struct Expect {
    next_offset: i64,
    min_epoch: Option<i32>,
}

impl SegmentScan<'_> {
    /// Scans the whole file, calling `visit(position, batch)` for every
    /// valid batch in order.
    pub(crate) fn run(
        &self,
        mut visit: impl FnMut(u64, BatchMeta),
    ) -> Result<SegmentCheck, StorageError> {
        let mut position = 0;
        let mut expect = Expect {
            next_offset: self.base_offset,
            min_epoch: None,
        };
        let mut check = SegmentCheck {
            batches: 0,
            bytes: self.size,
            next_offset: self.base_offset,
            damaged: Vec::new(),
            continues_in_sequence: true,
        };
        let mut buf = Vec::new();
        while position < self.size {
            let found = self
                .batch_at(position, &mut buf)?
                .filter(|meta| fits(meta, &expect));
            let Some(meta) = found else {
                let resume = self.find_next_batch(position + 1, &expect)?;
                check.damaged.push(DamagedRange {
                    bytes: position..resume.map_or(self.size, |(at, _)| at),
                    first_lost_offset: expect.next_offset,
                    resumes_at: resume.map(|(_, meta)| meta.base_offset),
                });
                match resume {
                    Some((at, _)) => position = at,
                    None => break,
                }
                continue;
            };
            let after_damage = !check.damaged.is_empty();
            let resumed_here = check
                .damaged
                .last()
                .is_some_and(|d| d.bytes.end == position);
            let epoch_went_back = expect
                .min_epoch
                .is_some_and(|epoch| meta.leader_epoch < epoch);
            let offsets_jumped = !resumed_here && meta.base_offset != expect.next_offset;
            if after_damage && (epoch_went_back || offsets_jumped) {
                check.continues_in_sequence = false;
            }
            visit(position, meta);
            check.batches += 1;
            position += meta.len;
            expect = Expect {
                next_offset: meta.last_offset + 1,
                min_epoch: Some(meta.leader_epoch),
            };
            check.next_offset = expect.next_offset;
        }
        Ok(check)
    }

    /// The first position from `from` on that holds a valid batch fitting
    /// `expect`, with that batch.
    fn find_next_batch(
        &self,
        from: u64,
        expect: &Expect,
    ) -> Result<Option<(u64, BatchMeta)>, StorageError> {
        let mut window = Vec::new();
        let mut batch = Vec::new();
        let mut start = from;
        while start + BATCH_HEADER_LEN as u64 <= self.size {
            let len = (self.size - start).min((SEARCH_WINDOW + BATCH_HEADER_LEN) as u64);
            window.resize(len as usize, 0);
            self.read_exact_at(&mut window, start)?;
            let last_candidate = window.len() - BATCH_HEADER_LEN;
            for i in 0..=last_candidate.min(SEARCH_WINDOW - 1) {
                let position = start + i as u64;
                if !self.plausible_header(&window[i..], position, expect) {
                    continue;
                }
                if let Some(meta) = self.batch_at(position, &mut batch)? {
                    if fits(&meta, expect) {
                        return Ok(Some((position, meta)));
                    }
                }
            }
            start += SEARCH_WINDOW as u64;
        }
        Ok(None)
    }

    /// The cheap tests a batch header at `position` must pass before its CRC
    /// is worth computing.
    fn plausible_header(&self, bytes: &[u8], position: u64, expect: &Expect) -> bool {
        let Ok(header) = BatchHeader::parse(bytes) else {
            return false;
        };
        let ends_in_file = position
            .checked_add(header.total_len() as u64)
            .is_some_and(|end| end <= self.size);
        ends_in_file
            && header.last_offset_delta() >= 0
            && header.base_offset() >= expect.next_offset
            && expect
                .min_epoch
                .is_none_or(|epoch| header.partition_leader_epoch() >= epoch)
    }

    /// The whole, CRC-valid batch at `position`, read into `buf`; `None`
    /// when there is none.
    pub(crate) fn batch_at(
        &self,
        position: u64,
        buf: &mut Vec<u8>,
    ) -> Result<Option<BatchMeta>, StorageError> {
        let available = self.size.saturating_sub(position);
        if available < BATCH_HEADER_LEN as u64 {
            return Ok(None);
        }
        buf.resize(BATCH_HEADER_LEN, 0);
        self.read_exact_at(buf, position)?;
        let Ok(header) = BatchHeader::parse(buf) else {
            return Ok(None);
        };
        let len = header.total_len();
        if len as u64 > available {
            return Ok(None);
        }
        buf.resize(len, 0);
        self.read_exact_at(
            &mut buf[BATCH_HEADER_LEN..],
            position + BATCH_HEADER_LEN as u64,
        )?;
        let Ok(header) = BatchHeader::parse(buf) else {
            return Ok(None);
        };
        let relative_ok = header.base_offset() >= self.base_offset
            && header.last_offset() - self.base_offset <= MAX_RELATIVE_OFFSET;
        Ok((relative_ok && header.verify().is_ok()).then(|| BatchMeta::of(&header)))
    }

    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> Result<(), StorageError> {
        self.throttle.acquire(buf.len() as u64);
        self.file
            .read_exact_at(buf, position)
            .context(|| format!("reading {} at {position}", self.path.display()))
    }
}

/// Whether a valid batch may come next: its offsets do not go back. (The
/// leader epoch is checked only for batches after damage: it must not go
/// back where the scan has to prove a continuation.)
fn fits(meta: &BatchMeta, expect: &Expect) -> bool {
    meta.base_offset >= expect.next_offset
}
