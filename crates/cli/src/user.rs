//! `sluice user ...`: SCRAM users (KIP-554), as `kafka-configs.sh
//! --entity-type users` manages them. Passwords are read from standard
//! input, never from the command line, and salted before they are sent.

use std::io::BufRead;

use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::json;
use sluice_client::{Admin, ScramAlteration, ScramMechanism};

use crate::output::{print_json, print_line, print_table, table, OutputFormat};
use crate::Global;

#[derive(Debug, Subcommand)]
pub(crate) enum UserCommand {
    /// List users and their SCRAM mechanisms and iterations (all users, or those named).
    List {
        /// Users to show (default: every user with a credential).
        users: Vec<String>,
    },
    /// Create or change a user's SCRAM credentials; the password is the first line of stdin.
    Add {
        /// The user name.
        user: String,
        /// SCRAM-SHA-256 or SCRAM-SHA-512 (repeatable) [default: both]
        #[arg(long = "mechanism", value_name = "MECHANISM", value_parser = parse_mechanism)]
        mechanisms: Vec<ScramMechanism>,
        /// PBKDF2 iterations, 4096 to 16384.
        #[arg(long, default_value_t = 4096)]
        iterations: u32,
    },
    /// Remove a user's SCRAM credentials.
    Remove {
        /// The user name.
        user: String,
        /// Only this mechanism (repeatable) [default: every mechanism the user has]
        #[arg(long = "mechanism", value_name = "MECHANISM", value_parser = parse_mechanism)]
        mechanisms: Vec<ScramMechanism>,
    },
}

fn parse_mechanism(name: &str) -> Result<ScramMechanism, String> {
    ScramMechanism::from_name(name)
        .ok_or_else(|| format!("unknown SCRAM mechanism '{name}' (SCRAM-SHA-256 or SCRAM-SHA-512)"))
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("no password: give it as the first line of standard input");
    }
    Ok(password)
}

pub(crate) async fn run(global: &Global, cmd: UserCommand) -> anyhow::Result<()> {
    let admin = Admin::connect(global.client_config()?)
        .await
        .context("connecting to the cluster")?;
    match cmd {
        UserCommand::List { users } => {
            let mut found = admin.describe_user_scram_credentials(&users).await?;
            found.sort_by(|a, b| a.user.cmp(&b.user));
            let name = |m: Option<ScramMechanism>| m.map_or("UNKNOWN", ScramMechanism::name);
            match global.output {
                OutputFormat::Json => print_json(&json!(found
                    .iter()
                    .map(|u| json!({
                        "user": u.user,
                        "credentials": u.credentials.iter().map(|(m, i)| json!({
                            "mechanism": name(*m), "iterations": i,
                        })).collect::<Vec<_>>(),
                    }))
                    .collect::<Vec<_>>())),
                OutputFormat::Table => {
                    let mut t = table(&["User", "Mechanism", "Iterations"]);
                    for u in &found {
                        for (m, iterations) in &u.credentials {
                            t.add_row(vec![
                                u.user.clone(),
                                name(*m).to_string(),
                                iterations.to_string(),
                            ]);
                        }
                    }
                    print_table(&t)
                }
            }
        }
        UserCommand::Add {
            user,
            mechanisms,
            iterations,
        } => {
            let mechanisms = if mechanisms.is_empty() {
                vec![ScramMechanism::Sha256, ScramMechanism::Sha512]
            } else {
                mechanisms
            };
            let password = read_password()?;
            let alterations: Vec<_> = mechanisms
                .iter()
                .map(|&mechanism| ScramAlteration::Upsert {
                    user: user.clone(),
                    mechanism,
                    iterations,
                    password: password.clone(),
                })
                .collect();
            admin.alter_user_scram_credentials(&alterations).await?;
            let names: Vec<_> = mechanisms.iter().map(|m| m.name()).collect();
            print_line(&format!(
                "Set {} credentials of user '{user}'.",
                names.join(" and ")
            ))
        }
        UserCommand::Remove { user, mechanisms } => {
            let mechanisms = if mechanisms.is_empty() {
                admin
                    .describe_user_scram_credentials(std::slice::from_ref(&user))
                    .await?
                    .into_iter()
                    .flat_map(|u| u.credentials)
                    .filter_map(|(m, _)| m)
                    .collect()
            } else {
                mechanisms
            };
            let alterations: Vec<_> = mechanisms
                .iter()
                .map(|&mechanism| ScramAlteration::Delete {
                    user: user.clone(),
                    mechanism,
                })
                .collect();
            admin.alter_user_scram_credentials(&alterations).await?;
            let names: Vec<_> = mechanisms.iter().map(|m| m.name()).collect();
            print_line(&format!(
                "Removed {} credentials of user '{user}'.",
                names.join(" and ")
            ))
        }
    }
}
