//! Group commit under concurrency.

mod common;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::thread;

use common::{batch, small_segments};
use sluice_storage::LogDir;

#[test]
fn concurrent_sync_requests_are_covered_and_monotonic() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = LogDir::open(tmp.path()).unwrap();
    let mut log = dir.open_log("t", 0, small_segments(), 0).unwrap();
    let durability = log.durability();
    let appended = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicI64::new(0));

    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let (durability, appended, done, requests) = (
                Arc::clone(&durability),
                Arc::clone(&appended),
                Arc::clone(&done),
                Arc::clone(&requests),
            );
            thread::spawn(move || {
                let mut last_seen = 0;
                while !done.load(Ordering::Acquire) {
                    let wanted = appended.load(Ordering::Acquire);
                    let synced = durability.sync_to(wanted).unwrap();
                    requests.fetch_add(1, Ordering::Relaxed);
                    assert!(synced >= wanted, "sync_to({wanted}) returned {synced}");
                    assert!(synced >= last_seen, "synced offset went back");
                    assert!(durability.synced_offset() >= synced);
                    last_seen = synced;
                }
            })
        })
        .collect();
    let observer = {
        let (durability, done) = (Arc::clone(&durability), Arc::clone(&done));
        thread::spawn(move || {
            let mut previous = durability.synced_offset();
            while !done.load(Ordering::Acquire) {
                let now = durability.synced_offset();
                assert!(
                    now >= previous,
                    "synced offset went from {previous} to {now}"
                );
                previous = now;
            }
        })
    };

    for i in 0..300 {
        log.append(&mut batch(i, 2, 20, 0), 0, None, 0).unwrap();
        appended.store(log.log_end_offset(), Ordering::Release);
    }
    done.store(true, Ordering::Release);
    for waiter in waiters {
        waiter.join().unwrap();
    }
    observer.join().unwrap();

    assert!(log.segment_count() > 1, "rolls happened while syncing");
    assert!(durability.synced_offset() <= log.log_end_offset());
    assert_eq!(
        durability.sync_to(log.log_end_offset()).unwrap(),
        log.log_end_offset()
    );
    assert_eq!(log.unflushed_messages(), 0);
    assert!(durability.sync_count() <= requests.load(Ordering::Relaxed) as u64 + 1);
}

#[test]
fn unflushed_messages_count_offsets_since_the_last_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = LogDir::open(tmp.path()).unwrap();
    let mut log = dir.open_log("t", 0, small_segments(), 0).unwrap();
    log.append(&mut batch(0, 3, 1, 0), 0, None, 0).unwrap();
    log.append(&mut batch(0, 2, 1, 0), 0, None, 0).unwrap();
    assert_eq!(log.unflushed_messages(), 5);
    assert_eq!(
        log.durability().sync_to(2).unwrap(),
        5,
        "one sync covers all appended"
    );
    assert_eq!(log.unflushed_messages(), 0);
    assert_eq!(log.durability().sync_count(), 1);
}
