//! `sluice serve` with a damaged disk (issue 11): on a full disk SIGTERM
//! exits 0 and the broker starts again, after a clean stop and after a
//! SIGKILL, with every acknowledged record readable (defect 9); a corrupt
//! batch is found by `sluice log verify` and the scrubber and, after a
//! crash, costs only itself (defect 10).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::common::{free_port, read_log, wait_for, BrokerProcess, InProcBroker, PATIENCE};
use crate::crash::{batch_positions, last_segment, parse_id, produce_numbered, read_partitions};
use crate::rdkafka_client::consumer;

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

    // Space again, without a restart: the broker takes appends where the
    // log ended.
    fs::remove_file(filesystem.mount_point.join("filler")).unwrap();
    let acked = produce_numbered(&bootstrap, topic, 300, 310);
    assert_eq!(acked[0].1, 300);
    assert_eq!(ids_in(&bootstrap, topic), (0..310).collect::<Vec<_>>());
    broker.terminate();
}

/// Partition 0 of `topic` from the beginning to the high watermark, as
/// (offset, payload); unlike `read_partitions` it allows offset gaps.
fn read_to_the_end(bootstrap: &str, topic: &str) -> Vec<(i64, Vec<u8>)> {
    let consumer = consumer(bootstrap);
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(30))
        .expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut out: Vec<(i64, Vec<u8>)> = Vec::new();
    while out.last().is_none_or(|(offset, _)| offset + 1 < high) {
        assert!(
            Instant::now() < deadline,
            "read {} records below {high}",
            out.len()
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) => out.push((m.offset(), m.payload().unwrap_or_default().to_vec())),
            Some(Err(e)) => panic!("consumer error: {e}"),
        }
    }
    out
}

/// Runs `sluice log verify` on `path`: (exit success, stdout and stderr).
fn log_verify(path: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["log", "verify"])
        .arg(path)
        .output()
        .expect("run sluice log verify");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// After a SIGKILL, a flipped byte in a batch in the middle of the active
/// segment costs that batch only (issue 11, defect 10): `sluice log verify`
/// names the damaged range, the restarted broker serves every other
/// acknowledged record at the offset it was acknowledged with, and the
/// repaired log verifies clean.
#[test]
fn corrupt_batch_after_sigkill_costs_only_that_batch() {
    let data = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("broker.log");
    let port = free_port();
    let topic = "flipped";

    let broker = BrokerProcess::spawn(port, data.path(), &log_path, &[]);
    let bootstrap = broker.bootstrap();
    let acked = produce_numbered(&bootstrap, topic, 0, 500);
    broker.kill();
    let (ok, report) = log_verify(data.path());
    assert!(ok, "an intact data dir verifies: {report}");
    assert!(report.contains("no damage found"), "{report}");

    let partition = data.path().join(format!("{topic}-0"));
    let segment = last_segment(&partition);
    let mut bytes = fs::read(&segment).unwrap();
    let batches = batch_positions(&bytes);
    assert!(batches.len() >= 10, "{} batches", batches.len());
    let k = batches.len() / 2;
    let (bad_pos, bad_base, bad_len) = batches[k];
    let next_base = batches[k + 1].1;
    bytes[bad_pos + 61 + (bad_len - 61) / 2] ^= 0x5a;
    fs::write(&segment, &bytes).unwrap();

    for path in [data.path(), partition.as_path(), segment.as_path()] {
        let (ok, report) = log_verify(path);
        assert!(!ok, "verify fails on damage: {report}");
        assert!(
            report.contains(&format!("{}..{}", bad_pos, bad_pos + bad_len))
                && report.contains(&format!("{bad_base}..{next_base}"))
                && report.contains("00000000000000000000.log"),
            "the damaged bytes and the offsets lost are named: {report}"
        );
    }

    let broker = BrokerProcess::spawn(port, data.path(), &log_path, &[]);
    let read = read_to_the_end(&bootstrap, topic);
    let want: Vec<(u64, i64)> = acked
        .iter()
        .copied()
        .filter(|&(_, offset)| offset < bad_base || offset >= next_base)
        .collect();
    let got: Vec<(u64, i64)> = read
        .iter()
        .map(|(offset, payload)| (parse_id(payload), *offset))
        .collect();
    assert_eq!(
        got, want,
        "every record but those of the damaged batch, at its acknowledged offset"
    );
    assert!(
        read_log(&log_path).contains("cutting a damaged range out of a segment"),
        "the gap is reported"
    );
    let more = produce_numbered(&bootstrap, topic, 1000, 1005);
    assert_eq!(more[0].1, 500, "appends continue at the log end");
    broker.terminate();
    let (ok, report) = log_verify(data.path());
    assert!(ok, "the repaired log verifies: {report}");
}

/// With `log.scrub.interval.ms` set, damage in a closed segment is found
/// while the broker runs, before any consumer reads it.
#[test]
fn scrubber_finds_damage_in_a_closed_segment() {
    let broker = InProcBroker::start(&[
        ("log.scrub.interval.ms", "50"),
        ("log.segment.bytes", "4096"),
    ]);
    let topic = "scrubbed";
    produce_numbered(&broker.bootstrap(), topic, 0, 200);
    let probe = broker.broker().scrub_probe();
    let passes = probe.passes();
    wait_for("a scrub pass after the produce", || {
        (probe.passes() > passes + 1).then_some(())
    });
    assert_eq!(probe.damaged_ranges(), 0, "an intact log");
    assert!(probe.bytes_verified() > 0);

    let partition = broker.log_dir().join(format!("{topic}-0"));
    let first = partition.join("00000000000000000000.log");
    assert_ne!(last_segment(&partition), first, "several segments");
    let mut bytes = fs::read(&first).unwrap();
    let (position, _, len) = batch_positions(&bytes)[1];
    bytes[position + 61 + (len - 61) / 2] ^= 0x5a;
    fs::write(&first, &bytes).unwrap();
    wait_for("the scrubber to find the damaged range", || {
        (probe.damaged_ranges() == 1).then_some(())
    });
}
