//! Connection limits and timeouts on raw sockets: `connections.max.idle.ms`,
//! `socket.request.read.timeout.ms`, `max.connections`,
//! `max.connections.per.ip`, and the accept loop out of descriptors.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::{free_port, read_log, wait_for, BrokerProcess, InProcBroker, PATIENCE};
use crate::protocol::{api_versions_request, assert_serving, connect, expect_closed, read_frame};

/// Sends ApiVersions and waits for its answer.
fn round_trip(s: &mut TcpStream) {
    s.write_all(&api_versions_request(1)).unwrap();
    assert!(read_frame(s).is_some(), "an ApiVersions response");
}

/// True when a new connection gets an ApiVersions answer.
fn serves(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(&api_versions_request(1)).is_ok() && read_frame_or_none(&mut s).is_some()
}

/// Like `read_frame`, but a reset or timeout is `None` too.
fn read_frame_or_none(s: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).ok()?;
    let mut body = vec![0u8; i32::from_be_bytes(len).max(0) as usize];
    s.read_exact(&mut body).ok()?;
    Some(body)
}

#[test]
fn an_idle_connection_is_closed_after_connections_max_idle_ms() {
    let b = InProcBroker::start(&[("connections.max.idle.ms", "300")]);
    let mut s = connect(&b.bootstrap());
    round_trip(&mut s);
    expect_closed(&mut s, "a connection idle past connections.max.idle.ms");
    // A connection that never sent anything is idle too.
    let mut silent = connect(&b.bootstrap());
    expect_closed(&mut silent, "a silent connection");
}

#[test]
fn a_half_sent_request_is_closed_after_the_read_timeout() {
    let b = InProcBroker::start(&[("socket.request.read.timeout.ms", "300")]);
    let mut s = connect(&b.bootstrap());
    round_trip(&mut s);
    // A length prefix announcing 100 bytes, then 10 of them, then nothing.
    s.write_all(&100i32.to_be_bytes()).unwrap();
    s.write_all(&[0u8; 10]).unwrap();
    expect_closed(&mut s, "a request stalled half-way");
    assert_serving(&b.bootstrap());
}

#[test]
fn connections_over_max_connections_per_ip_are_closed_at_once() {
    let b = InProcBroker::start(&[("max.connections.per.ip", "2")]);
    let addr = b.bootstrap();
    let mut first = connect(&addr);
    let mut second = connect(&addr);
    round_trip(&mut first);
    round_trip(&mut second);
    let mut third = connect(&addr);
    let _ = third.write_all(&api_versions_request(1));
    expect_closed(&mut third, "the third connection from 127.0.0.1");
    round_trip(&mut first);
    drop(second);
    // The closed connection's place is given back once the broker sees it go.
    wait_for("a connection after one closed", || {
        serves(&addr).then_some(())
    });
}

#[test]
fn max_connections_holds_new_connections_until_one_closes() {
    let b = InProcBroker::start(&[("max.connections", "1")]);
    let addr = b.bootstrap();
    let mut first = connect(&addr);
    round_trip(&mut first);
    // The kernel completes the handshake; the broker does not accept it.
    let mut waiting = connect(&addr);
    waiting.write_all(&api_versions_request(1)).unwrap();
    waiting
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    match waiting.read(&mut byte) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("a connection beyond max.connections was served: {other:?}"),
    }
    drop(first);
    waiting.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut rest = [0u8; 3];
    waiting
        .read_exact(&mut rest)
        .expect("served once a slot is free");
}

/// Out of descriptors, accept fails at once again and again: the broker
/// backs off and logs one line per interval, not one per failure, and
/// serves again once descriptors are free.
#[test]
fn accept_failures_back_off_and_log_once_per_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let log = tmp.path().join("broker.log");
    let broker =
        BrokerProcess::spawn_with_ulimit("-n 40", free_port(), &tmp.path().join("data"), &log, &[]);
    assert!(
        read_log(&log).contains("open file limit 40 is too low"),
        "start-up warns about the descriptor limit:\n{}",
        read_log(&log)
    );
    let flood: Vec<TcpStream> = (0..60)
        .filter_map(|_| TcpStream::connect(broker.bootstrap()).ok())
        .collect();
    assert_eq!(
        flood.len(),
        60,
        "the kernel queues connections the broker cannot accept"
    );
    std::thread::sleep(Duration::from_secs(3));
    let text = read_log(&log);
    let failures = text.matches("accepting connections fails").count();
    assert!(
        (1..=2).contains(&failures),
        "{failures} accept-failure lines in 3 s:\n{text}"
    );
    drop(flood);
    wait_for("the broker to serve again", || {
        serves(&broker.bootstrap()).then_some(())
    });
    broker.terminate();
}
