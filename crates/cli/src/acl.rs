//! `sluice acl ...`: ACLs (DescribeAcls, CreateAcls, DeleteAcls), as
//! `kafka-acls.sh` manages them, for brokers with
//! `authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer`.

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use serde_json::json;
use sluice_client::{AclBinding, Admin};

use crate::output::{print_json, print_line, print_table, table, OutputFormat};
use crate::Global;

#[derive(Debug, Subcommand)]
pub(crate) enum AclCommand {
    /// List ACLs (all, or those on one resource; --principal narrows them).
    List {
        #[command(flatten)]
        resource: Resource,
        /// Only ACLs of this principal (e.g. User:alice).
        #[arg(long)]
        principal: Option<String>,
    },
    /// Add ACLs: each --operation for the principal on the resource.
    Add {
        #[command(flatten)]
        resource: Resource,
        /// Who (User:alice; User:* for everyone).
        #[arg(long)]
        principal: String,
        /// read, write, create, delete, alter, describe, cluster-action,
        /// describe-configs, alter-configs, idempotent-write, all (repeatable).
        #[arg(long = "operation", required = true)]
        operations: Vec<String>,
        /// From which client address (default: any).
        #[arg(long, default_value = "*")]
        host: String,
        /// A DENY ACL instead of an ALLOW (DENY wins over ALLOW).
        #[arg(long)]
        deny: bool,
    },
    /// Remove the ACLs matching the resource, principal, operation and host
    /// given (what is not given matches anything).
    Remove {
        #[command(flatten)]
        resource: Resource,
        #[arg(long)]
        principal: Option<String>,
        #[arg(long = "operation")]
        operations: Vec<String>,
        #[arg(long)]
        host: Option<String>,
    },
}

/// The resource an ACL is on; at most one of these.
#[derive(Debug, Args)]
pub(crate) struct Resource {
    /// A topic (with --prefixed: every topic whose name starts so).
    #[arg(long)]
    topic: Option<String>,
    /// A consumer group.
    #[arg(long)]
    group: Option<String>,
    /// A transactional id.
    #[arg(long)]
    transactional_id: Option<String>,
    /// The cluster (creating topics, cluster-wide configs, ACLs, users).
    #[arg(long)]
    cluster: bool,
    /// The name is a prefix (PREFIXED ACLs) rather than a literal name.
    #[arg(long)]
    prefixed: bool,
}

impl Resource {
    /// (type, name); `None` for no resource given.
    fn selected(&self) -> anyhow::Result<Option<(&'static str, String)>> {
        let mut chosen = Vec::new();
        if let Some(t) = &self.topic {
            chosen.push(("topic", t.clone()));
        }
        if let Some(g) = &self.group {
            chosen.push(("group", g.clone()));
        }
        if let Some(id) = &self.transactional_id {
            chosen.push(("transactional-id", id.clone()));
        }
        if self.cluster {
            chosen.push(("cluster", "kafka-cluster".to_string()));
        }
        if chosen.len() > 1 {
            bail!("give one of --topic, --group, --transactional-id, --cluster");
        }
        Ok(chosen.pop())
    }

    fn pattern(&self, filtering: bool) -> &'static str {
        match (self.prefixed, filtering) {
            (true, _) => "prefixed",
            (false, true) => "any",
            (false, false) => "literal",
        }
    }
}

fn filter(
    resource: &Resource,
    principal: Option<String>,
    host: Option<String>,
    operation: &str,
) -> anyhow::Result<AclBinding> {
    let selected = resource.selected()?;
    Ok(AclBinding {
        resource_type: selected.as_ref().map_or("any", |(t, _)| t).to_string(),
        resource_name: selected.map(|(_, n)| n),
        pattern_type: resource.pattern(true).to_string(),
        principal,
        host,
        operation: operation.to_string(),
        permission: "any".to_string(),
    })
}

pub(crate) async fn run(global: &Global, cmd: AclCommand) -> anyhow::Result<()> {
    let admin = Admin::connect(global.client_config()?)
        .await
        .context("connecting to the cluster")?;
    match cmd {
        AclCommand::List {
            resource,
            principal,
        } => {
            let acls = admin
                .describe_acls(&filter(&resource, principal, None, "any")?)
                .await?;
            print_acls(global.output, &acls)
        }
        AclCommand::Add {
            resource,
            principal,
            operations,
            host,
            deny,
        } => {
            let Some((resource_type, name)) = resource.selected()? else {
                bail!("give the resource: --topic, --group, --transactional-id or --cluster");
            };
            let acls: Vec<AclBinding> = operations
                .iter()
                .map(|operation| AclBinding {
                    resource_type: resource_type.to_string(),
                    resource_name: Some(name.clone()),
                    pattern_type: resource.pattern(false).to_string(),
                    principal: Some(principal.clone()),
                    host: Some(host.clone()),
                    operation: operation.clone(),
                    permission: if deny { "deny" } else { "allow" }.to_string(),
                })
                .collect();
            admin.create_acls(&acls).await?;
            print_line(&format!("Added {} ACL(s).", acls.len()))
        }
        AclCommand::Remove {
            resource,
            principal,
            operations,
            host,
        } => {
            let operations = if operations.is_empty() {
                vec!["any".to_string()]
            } else {
                operations
            };
            let filters = operations
                .iter()
                .map(|op| filter(&resource, principal.clone(), host.clone(), op))
                .collect::<anyhow::Result<Vec<_>>>()?;
            let removed = admin.delete_acls(&filters).await?;
            print_acls(global.output, &removed)?;
            print_line(&format!("Removed {} ACL(s).", removed.len()))
        }
    }
}

fn print_acls(output: OutputFormat, acls: &[AclBinding]) -> anyhow::Result<()> {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    match output {
        OutputFormat::Json => print_json(&json!(acls
            .iter()
            .map(|a| json!({
                "resource_type": a.resource_type,
                "resource_name": a.resource_name,
                "pattern_type": a.pattern_type,
                "principal": a.principal,
                "host": a.host,
                "operation": a.operation,
                "permission": a.permission,
            }))
            .collect::<Vec<_>>())),
        OutputFormat::Table => {
            let mut t = table(&[
                "Resource",
                "Name",
                "Pattern",
                "Principal",
                "Host",
                "Operation",
                "Permission",
            ]);
            for a in acls {
                t.add_row(vec![
                    a.resource_type.clone(),
                    text(&a.resource_name),
                    a.pattern_type.clone(),
                    text(&a.principal),
                    text(&a.host),
                    a.operation.clone(),
                    a.permission.clone(),
                ]);
            }
            print_table(&t)
        }
    }
}
