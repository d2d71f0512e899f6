//! `sluice serve`: run a broker with zero configuration, or with Kafka's
//! setting names from a TOML file, SLUICE_* environment variables and `--set`.

use anyhow::{bail, Context};
use sluice_broker::config::{self as broker_config, BrokerConfig};
use sluice_broker::descriptors;
use sluice_broker::Broker;
use std::collections::BTreeMap;
use std::path::PathBuf;
use tokio::signal::unix::{signal, Signal, SignalKind};

/// Options of `sluice serve`. Later sources win: defaults, `--config` file,
/// SLUICE_<SETTING> environment variables, `--set`, then the dedicated flags.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:9092]
    #[arg(long, value_name = "HOST:PORT", env = "SLUICE_LISTEN")]
    listen: Option<String>,
    /// Address published to clients in Metadata [default: the listen address]
    #[arg(long, value_name = "HOST:PORT", env = "SLUICE_ADVERTISE")]
    advertise: Option<String>,
    /// Where logs and metadata are kept [default: ./sluice-data]
    #[arg(long, value_name = "DIR", env = "SLUICE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// TOML file of broker settings under Kafka's names, e.g. `"log.retention.ms" = 60000`
    #[arg(long, value_name = "FILE", env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// A broker setting under its Kafka name, e.g. --set auto.create.topics.enable=false (repeatable).
    /// Each setting can also come from the environment as SLUICE_<NAME> with dots as underscores,
    /// e.g. SLUICE_LOG_RETENTION_CHECK_INTERVAL_MS=1000.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
    /// Create a SCRAM user at start unless it has a credential for that mechanism already, in
    /// kafka-storage's syntax: 'SCRAM-SHA-256=[name=admin,password=admin-secret]' (also
    /// SCRAM-SHA-512; iterations=4096..16384 optional; repeatable). The password is never stored.
    #[arg(long = "add-scram", value_name = "SPEC")]
    add_scram: Vec<sluice_broker::ScramBootstrap>,
}

/// Collects settings from every source, in increasing precedence.
fn collect_settings(args: &ServeArgs) -> anyhow::Result<BTreeMap<String, String>> {
    let mut settings = BTreeMap::new();
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let table: toml::Table = text
            .parse()
            .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
        flatten("", &table, &mut settings)
            .with_context(|| format!("in config file {}", path.display()))?;
    }
    for def in broker_config::BROKER_CONFIGS {
        let var = format!("SLUICE_{}", def.name.to_ascii_uppercase().replace('.', "_"));
        if let Ok(value) = std::env::var(&var) {
            settings.insert(def.name.to_string(), value);
        }
    }
    for pair in &args.set {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("--set expects NAME=VALUE, got '{pair}'");
        };
        settings.insert(key.trim().to_string(), value.trim().to_string());
    }
    if let Some(listen) = &args.listen {
        settings.insert("listeners".into(), listen.clone());
    }
    if let Some(advertise) = &args.advertise {
        settings.insert("advertised.listeners".into(), advertise.clone());
    }
    if let Some(dir) = &args.data_dir {
        settings.insert("log.dirs".into(), dir.display().to_string());
    }
    Ok(settings)
}

/// Turns nested TOML tables into dotted Kafka names.
fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut BTreeMap<String, String>,
) -> anyhow::Result<()> {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => flatten(&name, inner, out)?,
            toml::Value::String(s) => {
                out.insert(name, s.clone());
            }
            toml::Value::Integer(i) => {
                out.insert(name, i.to_string());
            }
            toml::Value::Float(f) => {
                out.insert(name, f.to_string());
            }
            toml::Value::Boolean(b) => {
                out.insert(name, b.to_string());
            }
            toml::Value::Array(items) => {
                let items: Vec<String> = items
                    .iter()
                    .map(|v| match v {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                out.insert(name, items.join(","));
            }
            toml::Value::Datetime(d) => {
                bail!("setting '{name}' has a date value '{d}', which no broker setting takes")
            }
        }
    }
    Ok(())
}

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = collect_settings(&args)?;
    let config = BrokerConfig::from_settings(settings)
        .map_err(|e| anyhow::anyhow!("invalid setting: {e}"))?;
    init_logging(config.get("log.format") == Some("json"));
    let mut stop_signals = StopSignals::install()?;
    // Before any log is opened; the broker then logs what its logs need.
    descriptors::raise_open_file_limit();
    let broker = Broker::start(config).await?;
    match broker.add_scram_if_absent(&args.add_scram).await {
        Ok(created) => {
            for user in created {
                println!("created SCRAM user {user}");
            }
        }
        Err(e) => {
            broker.shutdown().await?;
            bail!(e);
        }
    }
    let data_dir = std::fs::canonicalize(broker.data_dir())
        .unwrap_or_else(|_| broker.data_dir().to_path_buf());
    // Scripts read the first line's address: keep it the bare address.
    println!("Sluice broker listening on {}", broker.local_addr());
    for (name, addr) in broker.listener_addrs().iter().skip(1) {
        println!("  also listening on {addr} ({name})");
    }
    println!(
        "  advertised as {}",
        broker.advertised_listeners().join(", ")
    );
    println!("  data in       {}", data_dir.display());
    println!("  cluster id    {}", broker.cluster_id());
    for addr in broker.http_addrs() {
        println!("  metrics at    http://{addr}/metrics");
    }
    println!("Stop with Ctrl-C (SIGINT) or SIGTERM.");
    stop_signals.wait().await;
    println!("shutting down: syncing and closing logs");
    broker.shutdown().await?;
    println!("stopped cleanly");
    Ok(())
}

/// SIGINT and SIGTERM, installed before the broker says it is listening:
/// a signal sent as soon as it does must stop it cleanly, not meet the
/// default action (death by signal, exit status 143).
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<StopSignals> {
        Ok(StopSignals {
            interrupt: signal(SignalKind::interrupt()).context("cannot install SIGINT handler")?,
            terminate: signal(SignalKind::terminate()).context("cannot install SIGTERM handler")?,
        })
    }

    async fn wait(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Logs to stderr; `RUST_LOG` overrides the default `info` level. Colours
/// only on a terminal, so log files stay plain text.
/// Logs to stderr at `RUST_LOG`'s levels (default `info`; per module as in
/// `RUST_LOG=info,sluice::request=debug`), as text or one JSON object per
/// line (`log.format=json`).
fn init_logging(json: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}
