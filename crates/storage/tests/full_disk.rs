//! Shutdown and start-up when checkpoints cannot be written (issue 11,
//! defect 9). The recovery point, the segment indexes and the clean-shutdown
//! marker only make a restart faster; a failure to write them must cost a
//! longer recovery, never a failed close or open.
//!
//! The failure is injected by putting a directory where the checkpoint's
//! temporary file goes: that fails `File::create` for root too, which
//! permission bits would not.

mod common;

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use common::*;
use sluice_storage::{LogDir, PartitionLog};

const TOPIC: &str = "events";

/// A log of several segments in a fresh log directory, and its model.
fn filled_log(root: &Path) -> (PartitionLog, Model) {
    let dir = LogDir::open(root).unwrap();
    let mut log = dir.open_log(TOPIC, 0, small_segments(), 0).unwrap();
    let mut model = Model::default();
    for i in 0..20u8 {
        append(&mut log, &mut model, batch(i64::from(i), 2, 40, i), 0);
    }
    assert!(log.segment_count() >= 2);
    (log, model)
}

fn partition_dir(root: &Path) -> PathBuf {
    root.join(format!("{TOPIC}-0"))
}

/// Makes every later write of the checkpoint `name` in `dir` fail.
fn block_checkpoint(dir: &Path, name: &str) {
    fs::create_dir(dir.join(format!("{name}.tmp"))).unwrap();
}

fn reopen(root: &Path, expect_clean: bool) -> PartitionLog {
    let dir = LogDir::open(root).unwrap();
    assert_eq!(dir.was_clean_shutdown(), expect_clean);
    dir.open_log(TOPIC, 0, small_segments(), 0).unwrap()
}

#[test]
fn close_succeeds_when_no_checkpoint_can_be_written() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (log, model) = filled_log(root);
    let partition = partition_dir(root);
    assert!(partition.join("recovery-point").exists(), "written at roll");
    block_checkpoint(&partition, "recovery-point");
    block_checkpoint(root, ".sluice-clean-shutdown");

    log.close()
        .expect("a recovery point that cannot be written fails no close");
    LogDir::open(root).unwrap().mark_clean_shutdown();

    assert!(
        !partition.join("recovery-point").exists(),
        "the stale recovery point is removed rather than trusted"
    );
    // No marker: the next start recovers the log as after a crash, from
    // its first segment, and finds everything.
    let log = reopen(root, false);
    assert_log_matches(&log, &model);
}

#[test]
fn unclean_start_succeeds_when_the_recovery_point_cannot_be_written() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (log, mut model) = filled_log(root);
    drop(log); // a crash
    let partition = partition_dir(root);
    let active = segment_files(&partition, "log").pop().unwrap();
    let len = fs::metadata(&active).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&active)
        .unwrap()
        .set_len(len - 7)
        .unwrap();
    block_checkpoint(&partition, "recovery-point");

    let mut log = reopen(root, false);
    let last = model.batches.last().unwrap().base_offset;
    model.truncate_to(last);
    assert_log_matches(&log, &model);
    assert!(!partition.join("recovery-point").exists());

    // The log works on, and a second crash and start recover it again.
    append(&mut log, &mut model, batch(0, 3, 10, 0xee), 0);
    drop(log);
    let log = reopen(root, false);
    assert_log_matches(&log, &model);
}

#[test]
fn a_failed_checkpoint_leaves_no_temporary_file() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let dir = LogDir::open(root).unwrap();
    // A directory in place of the marker itself: the temporary is written,
    // the rename fails, and the temporary must not stay to fill the disk.
    fs::create_dir(root.join(".sluice-clean-shutdown")).unwrap();
    dir.mark_clean_shutdown();
    assert!(!root.join(".sluice-clean-shutdown.tmp").exists());
}
