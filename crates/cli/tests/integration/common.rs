//! Shared helpers: brokers in-process or as `sluice serve` child processes,
//! free ports, waiting with a bound.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::future::Future;

use sluice_broker::{Broker, BrokerConfig};
use tempfile::TempDir;

/// Generous bound for anything that should happen "soon"; hitting it is a
/// failure, never a measurement.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// A port that was free a moment ago (bind port 0, read it, release it).
pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().unwrap().port()
}

/// Starts an in-process broker on an ephemeral port with `dir` as its data
/// directory and extra Kafka settings.
pub(crate) async fn start_broker(dir: &Path, extra: &[(&str, &str)]) -> Broker {
    let mut settings: Vec<(String, String)> = vec![
        ("listeners".into(), "127.0.0.1:0".into()),
        ("log.dirs".into(), dir.display().to_string()),
        // Tests run brokers side by side: no two may want the default port.
        ("http.listeners".into(), "http://127.0.0.1:0".into()),
    ];
    settings.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let config = BrokerConfig::from_settings(settings).expect("valid broker settings");
    Broker::start(config).await.expect("broker starts")
}

/// A private copy of the `sluice` binary made once per test run, so that a
/// concurrent `cargo build` replacing target/debug/sluice cannot change the
/// broker between a test's restarts.
pub(crate) fn sluice_binary() -> &'static Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
        // Links left by earlier runs whose process is gone.
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pid) = name.strip_prefix("sluice-test-bin-") {
                    if !Path::new("/proc").join(pid).exists() {
                        let _ = std::fs::remove_file(e.path());
                    }
                }
            }
        }
        let link = dir.join(format!("sluice-test-bin-{}", std::process::id()));
        let _ = std::fs::remove_file(&link);
        // A hard link pins this build's inode (cargo replaces the file
        // rather than rewriting it); copy when linking is not possible.
        if std::fs::hard_link(env!("CARGO_BIN_EXE_sluice"), &link).is_err() {
            std::fs::copy(env!("CARGO_BIN_EXE_sluice"), &link).expect("copy the sluice binary");
        }
        link
    })
}

/// A `sluice serve` child process. Killed (SIGKILL) on drop if still running.
pub(crate) struct BrokerProcess {
    child: Child,
    addr: SocketAddr,
    log_path: PathBuf,
}

impl BrokerProcess {
    /// Spawns `sluice serve --listen 127.0.0.1:<port> --data-dir <dir>` and
    /// waits for its "listening" line. Its stderr goes to `log_path`.
    pub(crate) fn spawn(
        port: u16,
        data_dir: &Path,
        log_path: &Path,
        settings: &[&str],
    ) -> BrokerProcess {
        Self::start(serve_command(port, data_dir, settings), log_path)
    }

    /// As [`BrokerProcess::spawn`], with `RUST_LOG` set to `rust_log`.
    pub(crate) fn spawn_logging(
        port: u16,
        data_dir: &Path,
        log_path: &Path,
        settings: &[&str],
        rust_log: &str,
    ) -> BrokerProcess {
        let mut cmd = serve_command(port, data_dir, settings);
        cmd.env("RUST_LOG", rust_log);
        Self::start(cmd, log_path)
    }

    /// As [`BrokerProcess::spawn`], under `ulimit -n <fds>` (soft and hard).
    pub(crate) fn spawn_with_fd_limit(
        port: u16,
        data_dir: &Path,
        log_path: &Path,
        fds: u32,
    ) -> BrokerProcess {
        let serve = serve_command(port, data_dir, &[]);
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit -n {fds} && exec \"$0\" \"$@\""))
            .arg(serve.get_program())
            .args(serve.get_args());
        Self::start(cmd, log_path)
    }

    /// As [`BrokerProcess::spawn`], under `ulimit <ulimit>` (e.g. `-S -n 256`
    /// for a soft descriptor limit of 256).
    pub(crate) fn spawn_with_ulimit(
        ulimit: &str,
        port: u16,
        data_dir: &Path,
        log_path: &Path,
        settings: &[&str],
    ) -> BrokerProcess {
        let serve = serve_command(port, data_dir, settings);
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("ulimit {ulimit} && exec \"$0\" \"$@\""))
            .arg(serve.get_program())
            .args(serve.get_args());
        Self::start(cmd, log_path)
    }

    fn start(mut cmd: Command, log_path: &Path) -> BrokerProcess {
        let log = File::options()
            .create(true)
            .append(true)
            .open(log_path)
            .expect("open broker log");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn sluice serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // Keep draining stdout so the broker never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("Sluice broker listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(rest.trim().to_string());
                    }
                }
            }
        });
        let addr = match rx.recv_timeout(PATIENCE) {
            Ok(addr) => addr.parse().expect("listening address parses"),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "broker did not report listening; its log:\n{}",
                    read_log(log_path)
                );
            }
        };
        BrokerProcess {
            child,
            addr,
            log_path: log_path.to_path_buf(),
        }
    }

    pub(crate) fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL and reap.
    pub(crate) fn kill(mut self) {
        self.child.kill().expect("SIGKILL the broker");
        self.child.wait().expect("reap the broker");
    }

    /// SIGTERM, then wait for a clean exit (exit status 0).
    pub(crate) fn terminate(mut self) {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the broker") {
                assert!(
                    status.success(),
                    "broker exited with {status} after SIGTERM; its log:\n{}",
                    read_log(&self.log_path)
                );
                return;
            }
            if Instant::now() > deadline {
                panic!("broker did not stop after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let status = self.child.try_wait();
        if let Ok(None) = status {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            // The test failed: show what the broker had to say.
            eprintln!(
                "broker pid {} (exit status before drop: {status:?}); its log:\n{}",
                self.child.id(),
                read_log(&self.log_path)
            );
        }
    }
}

/// `sluice serve` on `data_dir`, listening on `port`.
fn serve_command(port: u16, data_dir: &Path, settings: &[&str]) -> Command {
    let mut cmd = Command::new(sluice_binary());
    cmd.arg("serve")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data_dir)
        // Tests run brokers side by side: no two may want the default port.
        .arg("--set")
        .arg("http.listeners=http://127.0.0.1:0");
    for s in settings {
        cmd.arg("--set").arg(s);
    }
    cmd
}

/// Runs `sluice serve` on `data_dir` expecting it to refuse to start:
/// (exit success, stdout and stderr). Panics if it is still running after
/// [`PATIENCE`].
pub(crate) fn serve_refusal(data_dir: &Path) -> (bool, String) {
    serve_refusal_with(data_dir, &[])
}

/// [`serve_refusal`] with `--set` settings.
pub(crate) fn serve_refusal_with(data_dir: &Path, settings: &[&str]) -> (bool, String) {
    let mut child = serve_command(free_port(), data_dir, settings)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice serve");
    let deadline = Instant::now() + PATIENCE;
    while child.try_wait().expect("wait for sluice serve").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("reap sluice serve");
            panic!(
                "sluice serve did not exit; it said:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child
        .wait_with_output()
        .expect("collect sluice serve output");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Runs the `sluice` binary with `args`: (exit success, stdout and stderr).
pub(crate) fn sluice(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let out = Command::new(sluice_binary())
        .args(args)
        .output()
        .expect("run sluice");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// The broker's stderr log (last 8 KiB), for failure messages.
pub(crate) fn read_log(path: &Path) -> String {
    let mut text = String::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_string(&mut text);
    }
    let start = text.len().saturating_sub(8192);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].to_string()
}

/// Polls `f` until it returns `Some`, panicking with `what` after
/// [`PATIENCE`].
pub(crate) fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A unique-enough topic name for this process.
pub(crate) fn topic_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// An in-process broker on its own runtime, so tests can block freely.
pub(crate) struct InProcBroker {
    rt: tokio::runtime::Runtime,
    broker: Option<Broker>,
    dir: TempDir,
}

impl InProcBroker {
    pub(crate) fn start(extra: &[(&str, &str)]) -> InProcBroker {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let broker = rt.block_on(start_broker(dir.path(), extra));
        InProcBroker {
            rt,
            broker: Some(broker),
            dir,
        }
    }

    pub(crate) fn bootstrap(&self) -> String {
        self.broker.as_ref().unwrap().local_addr().to_string()
    }

    pub(crate) fn broker(&self) -> &Broker {
        self.broker.as_ref().unwrap()
    }

    /// The broker's `log.dirs`, for tests that inspect what it stored.
    pub(crate) fn log_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for InProcBroker {
    fn drop(&mut self) {
        if let Some(broker) = self.broker.take() {
            let _ = self.rt.block_on(broker.shutdown());
        }
    }
}

/// Runs `sluice log dump` on a file: (exit success, stdout and stderr).
pub(crate) fn log_dump(path: &Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["log", "dump"])
        .arg(path)
        .output()
        .expect("run sluice log dump");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Runs a future on a small runtime of the test's own.
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}
