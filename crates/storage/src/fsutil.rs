//! Small helpers for crash-safe file system updates.

use std::fs::{self, File};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{IoContext, StorageError};

/// Makes creations, renames and deletions inside `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .context(|| format!("syncing directory {}", dir.display()))
}

/// Replaces `path` with `contents` so that a crash leaves either the old or
/// the new file, never a torn one.
pub(crate) fn write_file_atomically(path: &Path, contents: &[u8]) -> Result<(), StorageError> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = Path::new(&tmp_name);
    let file = File::create(tmp).context(|| format!("creating {}", tmp.display()))?;
    let written = file
        .write_all_at(contents, 0)
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::rename(tmp, path));
    if let Err(e) = written {
        // On a full disk the half-written temporary would hold space and
        // an inode that the next attempt needs.
        let _ = fs::remove_file(tmp);
        return Err(e).context(|| format!("writing {} into place", tmp.display()));
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}
