//! The durable metadata log: one file of length-prefixed, CRC32C-checked
//! JSON records, fsynced on every append (metadata changes are rare and must
//! survive a crash). Replay stops at a torn or corrupt tail and truncates it.

use crate::image::MetadataImage;
use crate::record::MetadataRecord;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const FILE_NAME: &str = "metadata.log";
const ENTRY_HEADER: usize = 8;

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
}

/// Appends records durably and keeps the image they produce.
pub struct MetadataLog {
    path: PathBuf,
    file: File,
    image: MetadataImage,
}

impl MetadataLog {
    /// Opens (or creates) the log in `dir` and replays it into an image.
    pub fn open(dir: &Path) -> Result<Self, MetadataError> {
        let io = |source| MetadataError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join(FILE_NAME);
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
        let mut image = MetadataImage::default();
        let valid = replay(&bytes, &mut image);
        if valid < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                dropped = bytes.len() - valid,
                "truncating torn or corrupt tail of the metadata log"
            );
            file.set_len(valid as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        Ok(MetadataLog { path, file, image })
    }

    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// Appends `records` as one durable write, then applies them.
    pub fn append(&mut self, records: &[MetadataRecord]) -> Result<&MetadataImage, MetadataError> {
        let mut buf = Vec::new();
        for record in records {
            let payload = serde_json::to_vec(record)?;
            buf.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            buf.extend_from_slice(&crc32c::crc32c(&payload).to_be_bytes());
            buf.extend_from_slice(&payload);
        }
        let io = |source| MetadataError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&buf).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        for record in records {
            self.image.apply(record);
        }
        Ok(&self.image)
    }
}

/// Applies every intact record; returns the byte length of the valid prefix.
fn replay(bytes: &[u8], image: &mut MetadataImage) -> usize {
    let mut pos = 0;
    while bytes.len() - pos >= ENTRY_HEADER {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_be_bytes(bytes[pos + 4..pos + 8].try_into().expect("4 bytes"));
        let start = pos + ENTRY_HEADER;
        let Some(payload) = bytes.get(start..start + len) else {
            break;
        };
        if crc32c::crc32c(payload) != crc {
            break;
        }
        let Ok(record) = serde_json::from_slice::<MetadataRecord>(payload) else {
            break;
        };
        image.apply(&record);
        pos = start + len;
    }
    pos
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use uuid::Uuid;

    fn topic(name: &str) -> MetadataRecord {
        MetadataRecord::TopicCreated {
            name: name.into(),
            id: Uuid::new_v4(),
            partitions: 3,
            replicas: vec![1],
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
    fn corrupt_record_stops_replay() {
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
}
