//! Kafka's `replication-offset-checkpoint`: the high watermark of every
//! replica in the data directory, written every
//! `replica.high.watermark.checkpoint.interval.ms` and at shutdown. A
//! restarted broker starts each replica's high watermark there (never past
//! its log end) instead of at its log end, so that a replica which becomes
//! leader right after a restart does not show consumers records that were
//! never committed. A leader then moves it up as its ISR allows.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

pub(crate) const FILE: &str = "replication-offset-checkpoint";
/// The format version Kafka writes first.
const VERSION: &str = "0";

/// The checkpointed high watermarks by (topic, partition); empty when there
/// is no checkpoint, and when it is damaged (logged): the replicas then
/// start at their log ends, as before the checkpoint existed.
pub(crate) fn read(dir: &Path) -> HashMap<(String, i32), i64> {
    let path = dir.join(FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return HashMap::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the high-watermark checkpoint; replicas start at their log ends");
            return HashMap::new();
        }
    };
    parse(&text).unwrap_or_else(|| {
        tracing::warn!(path = %path.display(), "damaged high-watermark checkpoint; replicas start at their log ends");
        HashMap::new()
    })
}

fn parse(text: &str) -> Option<HashMap<(String, i32), i64>> {
    let mut lines = text.lines();
    if lines.next()? != VERSION {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let mut entries = HashMap::with_capacity(count);
    for line in lines.by_ref().take(count) {
        let mut fields = line.split(' ');
        let (topic, partition, offset) = (fields.next()?, fields.next()?, fields.next()?);
        if fields.next().is_some() {
            return None;
        }
        entries.insert(
            (topic.to_string(), partition.parse().ok()?),
            offset.parse().ok()?,
        );
    }
    (entries.len() == count && lines.next().is_none()).then_some(entries)
}

/// Replaces the checkpoint with `entries`, atomically (a temporary file,
/// synced, renamed over it).
pub(crate) fn write(dir: &Path, entries: &[(String, i32, i64)]) -> std::io::Result<()> {
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for (topic, partition, offset) in entries {
        text.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    let tmp = dir.join(format!("{FILE}.tmp"));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, dir.join(FILE))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_in_kafkas_format() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[("orders".into(), 0, 42), ("orders".into(), 3, 7)],
        )
        .unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(text.starts_with("0\n2\n"), "{text}");
        let read = read(dir.path());
        assert_eq!(read.get(&("orders".to_string(), 0)), Some(&42));
        assert_eq!(read.get(&("orders".to_string(), 3)), Some(&7));
    }

    #[test]
    fn a_damaged_checkpoint_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).is_empty());
        for damaged in [
            "1\n0\n",
            "0\n2\nt 0 5\n",
            "0\n1\nt zero 5\n",
            "0\n1\nt 0 5\nextra\n",
        ] {
            std::fs::write(dir.path().join(FILE), damaged).unwrap();
            assert!(read(dir.path()).is_empty(), "{damaged:?}");
        }
    }
}
