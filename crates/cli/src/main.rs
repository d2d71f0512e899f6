//! `sluice`: run a broker, manage topics, consumer groups, transactions
//! and SCRAM users, produce, consume, benchmark.

mod acl;
mod cluster_cmd;
mod consume;
mod dev;
mod dev_certs;
mod group;
mod log_dump;
mod log_verify;
mod metadata_cmd;
mod output;
mod perf;
mod produce;
mod quota;
mod reassign;
mod serve;
mod topic;
mod transactions;
mod user;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::output::OutputFormat;

/// Sluice: a Kafka-compatible broker and the tools to use it.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, propagate_version = true)]
struct Cli {
    /// Broker to bootstrap from (comma-separated list allowed).
    #[arg(
        long,
        global = true,
        env = "SLUICE_BOOTSTRAP_SERVER",
        default_value = "127.0.0.1:9092",
        value_name = "HOST:PORT"
    )]
    bootstrap_server: String,

    /// Client properties (librdkafka's names, one NAME=VALUE per line, # for
    /// comments) for connecting to secured listeners: security.protocol,
    /// sasl.mechanism, sasl.username, sasl.password, ssl.ca.location,
    /// ssl.certificate.location, ssl.key.location,
    /// ssl.endpoint.identification.algorithm.
    #[arg(
        long,
        global = true,
        env = "SLUICE_COMMAND_CONFIG",
        value_name = "FILE"
    )]
    command_config: Option<std::path::PathBuf>,

    /// One client property, as in --command-config (repeatable; wins over
    /// the file), e.g. -X security.protocol=SSL.
    #[arg(
        short = 'X',
        long = "client-property",
        global = true,
        value_name = "NAME=VALUE"
    )]
    client_properties: Vec<String>,

    /// Output format: tables for humans, JSON for scripts.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    output: OutputFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker.
    ///
    /// It serves Kafka clients on --listen and, on http.listeners (default
    /// http://127.0.0.1:9644; --set http.listeners= turns it off), the web
    /// console, its JSON API (/api/v1), Prometheus metrics (/metrics) and
    /// health probes (/healthz, /readyz).
    Serve(serve::ServeArgs),
    /// Create, list, describe, delete and configure topics.
    Topic {
        #[command(subcommand)]
        command: topic::TopicCommand,
    },
    /// Produce one record per input line (stdin or --file), optionally as
    /// one transaction.
    Produce(produce::ProduceArgs),
    /// Print records of a topic.
    Consume(consume::ConsumeArgs),
    /// List, describe, reset offsets of and delete consumer groups.
    Group {
        #[command(subcommand)]
        command: group::GroupCommand,
    },
    /// List and describe transactional ids.
    Transactions {
        #[command(subcommand)]
        command: transactions::TransactionsCommand,
    },
    /// List, add and remove SCRAM users (SASL credentials).
    User {
        #[command(subcommand)]
        command: user::UserCommand,
    },
    /// List, add and remove ACLs (brokers with authorizer.class.name set).
    Acl {
        #[command(subcommand)]
        command: acl::AclCommand,
    },
    /// Describe and alter client quotas (byte rates, request time, connection rates).
    Quota {
        #[command(subcommand)]
        command: quota::QuotaCommand,
    },
    /// Inspect the cluster.
    Cluster {
        #[command(subcommand)]
        command: cluster_cmd::ClusterCommand,
    },
    /// Inspect and verify partition files on disk (no broker needed).
    Log {
        #[command(subcommand)]
        command: log_dump::LogCommand,
    },
    /// Repair the metadata log on disk (no broker running).
    Metadata {
        #[command(subcommand)]
        command: metadata_cmd::MetadataCommand,
    },
    /// Local set-ups for trying Sluice out, e.g. `sluice dev cluster`.
    Dev {
        #[command(subcommand)]
        command: dev::DevCommand,
    },
    /// Benchmark producing and consuming.
    Perf {
        #[command(subcommand)]
        command: perf::PerfCommand,
    },
}

/// Settings every client command needs.
#[derive(Debug, Clone)]
pub(crate) struct Global {
    pub(crate) bootstrap_server: String,
    pub(crate) output: OutputFormat,
    pub(crate) command_config: Option<std::path::PathBuf>,
    pub(crate) client_properties: Vec<String>,
}

impl Global {
    pub(crate) fn client_config(&self) -> anyhow::Result<sluice_client::ClientConfig> {
        let mut c = sluice_client::ClientConfig::new(&self.bootstrap_server);
        c.client_id = "sluice-cli".to_string();
        let properties = self.properties()?;
        c.security = sluice_client::Security::from_properties(
            properties.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        )?;
        Ok(c)
    }

    /// The client properties: the --command-config file, then each -X.
    fn properties(&self) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
        let mut properties = std::collections::BTreeMap::new();
        if let Some(path) = &self.command_config {
            let text = std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("cannot read --command-config {}: {e}", path.display())
            })?;
            for (number, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                    continue;
                }
                let (key, value) = line.split_once('=').ok_or_else(|| {
                    anyhow::anyhow!(
                        "{} line {}: expected NAME=VALUE",
                        path.display(),
                        number + 1
                    )
                })?;
                properties.insert(key.trim().to_string(), value.trim().to_string());
            }
        }
        for pair in &self.client_properties {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("-X expects NAME=VALUE, got '{pair}'"))?;
            properties.insert(key.trim().to_string(), value.trim().to_string());
        }
        Ok(properties)
    }
}

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal error: {info}");
    }));
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let global = Global {
        bootstrap_server: cli.bootstrap_server,
        output: cli.output,
        command_config: cli.command_config,
        client_properties: cli.client_properties,
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Topic { command } => topic::run(&global, command).await,
            Command::Produce(args) => produce::run(&global, args).await,
            Command::Consume(args) => consume::run(&global, args).await,
            Command::Group { command } => group::run(&global, command).await,
            Command::Transactions { command } => transactions::run(&global, command).await,
            Command::User { command } => user::run(&global, command).await,
            Command::Acl { command } => acl::run(&global, command).await,
            Command::Quota { command } => quota::run(&global, command).await,
            Command::Cluster { command } => cluster_cmd::run(&global, command).await,
            Command::Log { command } => log_dump::run(&global, command),
            Command::Metadata { command } => metadata_cmd::run(&global, command),
            Command::Dev { command } => dev::run(command).await,
            Command::Perf { command } => perf::run(&global, command).await,
        }
    });
    // Do not wait for lingering background tasks (e.g. blocked stdin reads).
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
