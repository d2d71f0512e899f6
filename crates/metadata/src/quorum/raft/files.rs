//! Reading and writing the quorum's files in the framing of `entry.rs`
//! (length, CRC32C, payload), with the same rule as the metadata log: a
//! crash can only tear the last entry of an appended file, so damage with
//! intact entries after it, or anywhere in a file that is only ever
//! replaced whole, refuses to open instead of losing data silently.

use crate::entry::{encode_entry, entry_at, next_intact_entry};
use crate::quorum::QuorumError;
use std::fs::File;
use std::io::Write;
use std::path::Path;

pub(super) fn io_error(path: &Path, e: impl std::fmt::Display) -> QuorumError {
    QuorumError::Storage(format!("{}: {e}", path.display()))
}

/// The decoded entries of a file and where its intact prefix ends.
pub(super) struct Frames<T> {
    /// Each entry with the byte offset where its frame starts.
    pub(super) items: Vec<(u64, T)>,
    pub(super) valid_len: u64,
    /// A torn final entry: its offset and what is wrong with it.
    pub(super) torn: Option<(u64, String)>,
}

/// Decodes every entry of `bytes` (the contents of `path`). With
/// `allow_torn_tail`, a bad last entry is reported in `torn`; any other
/// damage is an error naming the file and the byte offset.
pub(super) fn decode_frames<T>(
    path: &Path,
    bytes: &[u8],
    allow_torn_tail: bool,
    decode: impl Fn(&[u8]) -> Result<T, String>,
) -> Result<Frames<T>, QuorumError> {
    let mut items = Vec::new();
    let mut position = 0;
    while let Some(entry) = entry_at(bytes, position) {
        let decoded = match &entry.problem {
            Some(problem) => Err(problem.to_string()),
            None => decode(entry.payload),
        };
        match decoded {
            Ok(item) => {
                items.push((position as u64, item));
                position = entry.end();
            }
            Err(reason) => {
                let followed_by_data = next_intact_entry(bytes, position).is_some();
                if allow_torn_tail && !followed_by_data {
                    return Ok(Frames {
                        items,
                        valid_len: position as u64,
                        torn: Some((position as u64, reason)),
                    });
                }
                let why = if allow_torn_tail {
                    "intact entries follow, so this is not a torn write from a crash"
                } else {
                    "this file is only ever replaced whole, so no crash leaves it torn"
                };
                return Err(QuorumError::Storage(format!(
                    "{} is damaged at byte offset {position}: {reason}; {why}. Refusing to \
                     open the metadata quorum rather than lose what it holds.",
                    path.display()
                )));
            }
        }
    }
    Ok(Frames {
        items,
        valid_len: position as u64,
        torn: None,
    })
}

/// The whole file, or `None` if it does not exist.
pub(super) fn read_file(path: &Path) -> Result<Option<Vec<u8>>, QuorumError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, e)),
    }
}

/// Frames each payload, one after the other.
pub(super) fn frame_all(payloads: &[&[u8]]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(payloads.iter().map(|p| p.len() + 8).sum());
    for payload in payloads {
        encode_entry(payload, &mut bytes);
    }
    bytes
}

/// Replaces `path` with `bytes`: temp file, rename. With `durable`, the
/// temp file and the directory are fsynced, so a crash leaves the old
/// contents or the new ones.
pub(super) fn replace_file(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    let mut file = File::create(tmp)?;
    file.write_all(bytes)?;
    if durable {
        file.sync_all()?;
    }
    drop(file);
    std::fs::rename(tmp, path)?;
    if durable {
        sync_dir(path)?;
    }
    Ok(())
}

/// Fsyncs the directory holding `path`, so a rename or create in it lasts.
pub(super) fn sync_dir(path: &Path) -> std::io::Result<()> {
    File::open(path.parent().unwrap_or(Path::new(".")))?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(p: &[u8]) -> Result<u32, String> {
        serde_json::from_slice(p).map_err(|e| e.to_string())
    }

    #[test]
    fn a_torn_tail_is_reported_and_damage_before_data_is_refused() {
        let path = Path::new("/nowhere/quorum.log");
        let mut bytes = frame_all(&[b"1", b"22", b"333"]);
        let whole = decode_frames(path, &bytes, true, json).unwrap();
        assert_eq!(
            whole.items.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            [1, 22, 333]
        );
        bytes.truncate(bytes.len() - 1);
        let torn = decode_frames(path, &bytes, true, json).unwrap();
        assert_eq!(torn.items.len(), 2);
        assert_eq!(torn.torn.as_ref().map(|t| t.0), Some(torn.valid_len));
        let err = decode_frames(path, &bytes, false, json).err().unwrap();
        assert!(err.to_string().contains("replaced whole"), "{err}");
        let mut damaged = frame_all(&[b"1", b"22", b"333"]);
        damaged[8] = b'x';
        let err = decode_frames(path, &damaged, true, json)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("/nowhere/quorum.log is damaged at byte offset 0"),
            "{err}"
        );
    }
}
