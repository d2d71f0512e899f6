//! `sluice serve` on a full disk (issue 11, defect 9): SIGTERM exits 0 and
//! the broker starts again, after a clean stop and after a SIGKILL, with
//! every acknowledged record readable.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{free_port, BrokerProcess};
use crate::crash::{parse_id, produce_numbered, read_partitions};

/// A tmpfs of a few MiB mounted for one test, unmounted on drop.
struct SmallFilesystem {
    mount_point: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallFilesystem {
    /// `Err` says why it cannot be mounted (not root, no mount permission
    /// in this container, ...).
    fn mount(size: &str) -> Result<SmallFilesystem, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mount_point = dir.path().join("fs");
        fs::create_dir(&mount_point).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&mount_point)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(SmallFilesystem {
            mount_point,
            _dir: dir,
        })
    }

    /// Writes a file until the file system refuses another byte.
    fn fill(&self) {
        let mut filler = File::create(self.mount_point.join("filler")).expect("create filler");
        for chunk in [64 * 1024, 4096, 1] {
            let bytes = vec![0u8; chunk];
            while filler.write_all(&bytes).is_ok() {}
        }
        let probe = self.mount_point.join("probe");
        assert!(
            fs::write(&probe, b"x").is_err(),
            "the file system should be full"
        );
        let _ = fs::remove_file(probe);
    }
}

impl Drop for SmallFilesystem {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.mount_point)
            .status();
    }
}

fn ids_in(bootstrap: &str, topic: &str) -> Vec<u64> {
    read_partitions(bootstrap, topic, 1)[0]
        .iter()
        .map(|(_, payload)| parse_id(payload))
        .collect()
}

#[test]
fn full_disk_shutdown_and_restart_keep_acknowledged_data() {
    let filesystem = match SmallFilesystem::mount("16m") {
        Ok(fs) => fs,
        Err(reason) => {
            eprintln!("SKIPPED full_disk_shutdown_and_restart_keep_acknowledged_data: {reason}");
            return;
        }
    };
    let data: &Path = &filesystem.mount_point.join("data");
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("broker.log");
    let port = free_port();
    let topic = "full";

    let broker = BrokerProcess::spawn(port, data, &log_path, &[]);
    let bootstrap = broker.bootstrap();
    let acked = produce_numbered(&bootstrap, topic, 0, 300);
    assert_eq!(acked.last().map(|a| a.1), Some(299));
    filesystem.fill();
    // `terminate` asserts exit status 0.
    broker.terminate();

    let broker = BrokerProcess::spawn(port, data, &log_path, &[]);
    assert_eq!(ids_in(&bootstrap, topic), (0..300).collect::<Vec<_>>());
    // A crash on the full disk, then an unclean start that must recover
    // without writing a recovery point.
    broker.kill();
    let broker = BrokerProcess::spawn(port, data, &log_path, &[]);
    assert_eq!(ids_in(&bootstrap, topic), (0..300).collect::<Vec<_>>());
    broker.terminate();

    // Space again: the broker takes appends where the log ended.
    fs::remove_file(filesystem.mount_point.join("filler")).unwrap();
    let broker = BrokerProcess::spawn(port, data, &log_path, &[]);
    let acked = produce_numbered(&bootstrap, topic, 300, 310);
    assert_eq!(acked[0].1, 300);
    assert_eq!(ids_in(&bootstrap, topic), (0..310).collect::<Vec<_>>());
    broker.terminate();
}
