//! `sluice group ...`: list, describe, reset offsets of and delete consumer
//! groups.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Context};
use clap::{ArgGroup, Args, Subcommand};
use serde_json::json;
use sluice_client::{Admin, GroupDescription, GroupOffset, OffsetSpec};

use crate::output::{print_json, print_line, print_table, table, OutputFormat};
use crate::Global;

const GROUP_ID_NOT_FOUND: i16 = 69;

#[derive(Debug, Subcommand)]
pub(crate) enum GroupCommand {
    /// List consumer groups.
    List {
        /// Only groups in this state (Empty, Stable, PreparingRebalance,
        /// CompletingRebalance, Dead), repeatable.
        #[arg(long = "state", value_name = "STATE")]
        states: Vec<String>,
    },
    /// Show a group's state, members and, per partition, the committed
    /// offset, log end offset, lag and the member consuming it.
    Describe {
        /// Group id.
        group: String,
    },
    /// Plan or apply new committed offsets for a group with no active
    /// members. Prints the plan (dry run) unless --execute is given.
    ResetOffsets(ResetArgs),
    /// Delete a group (which must have no active members), or with --topic
    /// only its committed offsets for that topic.
    Delete {
        /// Group id.
        group: String,
        /// Delete only the group's committed offsets of this topic.
        #[arg(long)]
        topic: Option<String>,
        /// With --topic: only these partitions (repeatable; default all
        /// partitions with a committed offset).
        #[arg(long = "partition", value_name = "P", requires = "topic")]
        partitions: Vec<i32>,
    },
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("mode").required(true).multiple(false)))]
pub(crate) struct ResetArgs {
    /// Group id.
    group: String,
    /// Topic whose offsets to reset.
    #[arg(long)]
    topic: String,
    /// Only these partitions (repeatable; default all partitions of the
    /// topic).
    #[arg(long = "partition", value_name = "P")]
    partitions: Vec<i32>,
    /// Reset to the log start offset.
    #[arg(long, group = "mode")]
    to_earliest: bool,
    /// Reset to the log end offset.
    #[arg(long, group = "mode")]
    to_latest: bool,
    /// Reset to this offset (clamped to [log start, log end]).
    #[arg(long, group = "mode", value_name = "N")]
    to_offset: Option<i64>,
    /// Reset to the first record with a timestamp at or after this time:
    /// RFC 3339 (2024-05-01T12:00:00Z, 2024-05-01T14:00:00.5+02:00) or
    /// milliseconds since the epoch. Partitions with no such record go to
    /// the log end.
    #[arg(long, group = "mode", value_name = "TIME", value_parser = parse_datetime)]
    to_datetime: Option<i64>,
    /// Move the committed offset by N (negative goes back), clamped to
    /// [log start, log end].
    #[arg(long, group = "mode", value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// Apply the new offsets (without it, only print them).
    #[arg(long)]
    execute: bool,
}

/// How to compute a partition's new offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ResetMode {
    Earliest,
    Latest,
    Offset(i64),
    Datetime(i64),
    ShiftBy(i64),
}

impl ResetArgs {
    fn mode(&self) -> ResetMode {
        if self.to_earliest {
            ResetMode::Earliest
        } else if self.to_latest {
            ResetMode::Latest
        } else if let Some(n) = self.to_offset {
            ResetMode::Offset(n)
        } else if let Some(t) = self.to_datetime {
            ResetMode::Datetime(t)
        } else if let Some(n) = self.shift_by {
            ResetMode::ShiftBy(n)
        } else {
            // clap requires exactly one of the mode flags.
            unreachable!("no reset mode")
        }
    }
}

/// What is known about one partition when planning a reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PartitionState {
    log_start: i64,
    log_end: i64,
    /// The group's committed offset, if any.
    committed: Option<i64>,
    /// For `--to-datetime`: the first offset with a timestamp at or after
    /// the time, `None` when there is no such record.
    by_time: Option<i64>,
}

/// The new offset of one partition, always within [log start, log end].
fn plan_offset(mode: ResetMode, st: &PartitionState) -> Result<i64, String> {
    let target = match mode {
        ResetMode::Earliest => st.log_start,
        ResetMode::Latest => st.log_end,
        ResetMode::Offset(n) => n,
        ResetMode::Datetime(_) => st.by_time.unwrap_or(st.log_end),
        ResetMode::ShiftBy(n) => match st.committed {
            Some(c) => c.saturating_add(n),
            None => return Err("no committed offset to shift; use another --to-* mode".to_string()),
        },
    };
    Ok(target.clamp(st.log_start, st.log_end.max(st.log_start)))
}

/// Parses `--to-datetime`: milliseconds since the epoch, or RFC 3339 with a
/// `Z` or `±HH:MM` offset and optional fractional seconds.
fn parse_datetime(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "invalid time '{s}': expected RFC 3339 (e.g. 2024-05-01T12:00:00Z or \
             2024-05-01T12:00:00.250+02:00) or milliseconds since the epoch"
        )
    };
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s.parse::<i64>().map_err(|_| bad());
    }
    let b = s.as_bytes();
    if b.len() < 19 {
        return Err(bad());
    }
    let num = |from: usize, len: usize| -> Result<i64, String> {
        let part = s.get(from..from + len).ok_or_else(bad)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        part.parse::<i64>().map_err(|_| bad())
    };
    if b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    if b[13] != b':' || b[16] != b':' {
        return Err(bad());
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(format!("invalid time '{s}': no such date"));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(format!("invalid time '{s}': no such time of day"));
    }
    let mut i = 19;
    let mut millis = 0i64;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(bad());
        }
        let frac = &s[start..i];
        let ms = format!("{:0<3}", &frac[..frac.len().min(3)]);
        millis = ms.parse::<i64>().map_err(|_| bad())?;
    }
    let offset_secs = match &s[i..] {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) => {
            if tz.as_bytes()[3] != b':' {
                return Err(bad());
            }
            let (h, m) = (num(i + 1, 2)?, num(i + 4, 2)?);
            if h > 23 || m > 59 {
                return Err(bad());
            }
            let secs = h * 3600 + m * 60;
            if tz.starts_with('-') {
                -secs
            } else {
                secs
            }
        }
        "" => {
            return Err(format!(
                "invalid time '{s}': add a UTC offset (Z or +HH:MM)"
            ))
        }
        _ => return Err(bad()),
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second.min(59) - offset_secs;
    let ms = secs * 1000 + millis;
    if ms < 0 {
        return Err(format!("invalid time '{s}': before 1970-01-01T00:00:00Z"));
    }
    Ok(ms)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

pub(crate) async fn run(global: &Global, cmd: GroupCommand) -> anyhow::Result<()> {
    let admin = Admin::connect(global.client_config()?)
        .await
        .context("connecting to the cluster")?;
    let json = global.output == OutputFormat::Json;
    match cmd {
        GroupCommand::List { states } => list(&admin, &states, json).await,
        GroupCommand::Describe { group } => describe(&admin, &group, json).await,
        GroupCommand::ResetOffsets(args) => reset_offsets(&admin, &args, json).await,
        GroupCommand::Delete {
            group,
            topic,
            partitions,
        } => delete(&admin, &group, topic, partitions, json).await,
    }
}

async fn list(admin: &Admin, states: &[String], json: bool) -> anyhow::Result<()> {
    let groups = admin.list_groups(states).await?;
    if json {
        return print_json(&json!(groups
            .iter()
            .map(|g| json!({
                "group": g.group_id,
                "state": g.state,
                "protocol_type": g.protocol_type,
                "type": g.group_type,
                "coordinator": g.coordinator,
            }))
            .collect::<Vec<_>>()));
    }
    if groups.is_empty() {
        return print_line("No groups.");
    }
    let mut t = table(&["Group", "State", "Protocol type", "Coordinator"]);
    for g in &groups {
        t.add_row(vec![
            g.group_id.clone(),
            g.state.clone().unwrap_or_else(|| "-".into()),
            if g.protocol_type.is_empty() {
                "-".into()
            } else {
                g.protocol_type.clone()
            },
            g.coordinator.to_string(),
        ]);
    }
    print_table(&t)
}

/// Describes one group; an unknown group (GROUP_ID_NOT_FOUND from
/// DescribeGroups v6+, state Dead before) comes back in state `Dead`.
async fn describe_one(admin: &Admin, group: &str) -> anyhow::Result<GroupDescription> {
    match admin.describe_groups(&[group.to_string()]).await {
        Ok(d) => d
            .into_iter()
            .next()
            .context("the broker described no group"),
        Err(e) if e.code() == Some(GROUP_ID_NOT_FOUND) => Ok(GroupDescription {
            group_id: group.to_string(),
            state: "Dead".into(),
            protocol_type: String::new(),
            protocol: String::new(),
            members: Vec::new(),
            coordinator: -1,
        }),
        Err(e) => Err(e.into()),
    }
}

/// One row of `group describe`.
struct PartitionRow {
    topic: String,
    partition: i32,
    committed: Option<i64>,
    log_end: Option<i64>,
    member: Option<usize>,
}

async fn describe(admin: &Admin, group: &str, json: bool) -> anyhow::Result<()> {
    let desc = describe_one(admin, group).await?;
    let offsets = admin.list_group_offsets(group).await?;
    if desc.state == "Dead" && offsets.is_empty() {
        bail!("group '{group}' does not exist");
    }
    let mut rows: BTreeMap<(String, i32), PartitionRow> = BTreeMap::new();
    for o in &offsets {
        rows.insert(
            (o.topic.clone(), o.partition),
            PartitionRow {
                topic: o.topic.clone(),
                partition: o.partition,
                committed: Some(o.offset),
                log_end: None,
                member: None,
            },
        );
    }
    for (i, m) in desc.members.iter().enumerate() {
        let Some(a) = &m.assignment else { continue };
        for (topic, parts) in &a.partitions {
            for &p in parts {
                rows.entry((topic.clone(), p))
                    .or_insert_with(|| PartitionRow {
                        topic: topic.clone(),
                        partition: p,
                        committed: None,
                        log_end: None,
                        member: None,
                    })
                    .member = Some(i);
            }
        }
    }
    // Log end offsets per topic, so one deleted topic does not hide the rest.
    let topics: BTreeSet<String> = rows.keys().map(|(t, _)| t.clone()).collect();
    for topic in topics {
        let keys: Vec<(String, i32)> = rows.keys().filter(|(t, _)| *t == topic).cloned().collect();
        let specs: Vec<_> = keys
            .iter()
            .map(|(t, p)| (t.clone(), *p, OffsetSpec::Latest))
            .collect();
        match admin.list_offsets(&specs).await {
            Ok(ends) => {
                for (k, e) in keys.iter().zip(ends) {
                    if let Some(r) = rows.get_mut(k) {
                        r.log_end = Some(e.offset);
                    }
                }
            }
            Err(e) => tracing_warn(&format!("log end offsets of topic '{topic}': {e}")),
        }
    }
    let lag = |r: &PartitionRow| match (r.committed, r.log_end) {
        (Some(c), Some(e)) => Some((e - c).max(0)),
        _ => None,
    };
    let assigned: BTreeSet<usize> = rows.values().filter_map(|r| r.member).collect();
    if json {
        let members: Vec<_> = desc
            .members
            .iter()
            .map(|m| {
                json!({
                    "member_id": m.member_id,
                    "group_instance_id": m.group_instance_id,
                    "client_id": m.client_id,
                    "host": m.client_host,
                    "assignment": m.assignment.as_ref().map(|a| a.partitions.iter()
                        .map(|(t, ps)| json!({"topic": t, "partitions": ps}))
                        .collect::<Vec<_>>()),
                })
            })
            .collect();
        let partitions: Vec<_> = rows
            .values()
            .map(|r| {
                let m = r.member.map(|i| &desc.members[i]);
                json!({
                    "topic": r.topic,
                    "partition": r.partition,
                    "committed_offset": r.committed,
                    "log_end_offset": r.log_end,
                    "lag": lag(r),
                    "member_id": m.map(|m| &m.member_id),
                    "host": m.map(|m| &m.client_host),
                    "client_id": m.map(|m| &m.client_id),
                })
            })
            .collect();
        return print_json(&json!({
            "group": desc.group_id,
            "state": desc.state,
            "protocol_type": desc.protocol_type,
            "protocol": desc.protocol,
            "coordinator": desc.coordinator,
            "members": members,
            "partitions": partitions,
        }));
    }
    let protocol = match (desc.protocol_type.as_str(), desc.protocol.as_str()) {
        ("", _) => "-".to_string(),
        (t, "") => t.to_string(),
        (t, p) => format!("{t}/{p}"),
    };
    print_line(&format!(
        "Group: {}  State: {}  Protocol: {}  Members: {}  Coordinator: {}",
        desc.group_id,
        desc.state,
        protocol,
        desc.members.len(),
        desc.coordinator
    ))?;
    let dash = || "-".to_string();
    let opt = |v: Option<i64>| v.map_or_else(dash, |v| v.to_string());
    let mut t = table(&[
        "Topic",
        "Partition",
        "Committed offset",
        "Log end offset",
        "Lag",
        "Member id",
        "Host",
        "Client id",
    ]);
    for r in rows.values() {
        let m = r.member.map(|i| &desc.members[i]);
        t.add_row(vec![
            r.topic.clone(),
            r.partition.to_string(),
            opt(r.committed),
            opt(r.log_end),
            opt(lag(r)),
            m.map_or_else(dash, |m| m.member_id.clone()),
            m.map_or_else(dash, |m| m.client_host.clone()),
            m.map_or_else(dash, |m| m.client_id.clone()),
        ]);
    }
    // Members with nothing assigned still show up, as in Kafka.
    for (i, m) in desc.members.iter().enumerate() {
        if !assigned.contains(&i) {
            t.add_row(vec![
                dash(),
                dash(),
                dash(),
                dash(),
                dash(),
                m.member_id.clone(),
                m.client_host.clone(),
                m.client_id.clone(),
            ]);
        }
    }
    if rows.is_empty() && desc.members.is_empty() {
        print_line("No committed offsets and no members.")
    } else {
        print_table(&t)
    }
}

fn tracing_warn(msg: &str) {
    eprintln!("warning: {msg}");
}

async fn reset_offsets(admin: &Admin, args: &ResetArgs, json: bool) -> anyhow::Result<()> {
    let group = &args.group;
    let mode = args.mode();
    let desc = describe_one(admin, group).await?;
    if !desc.is_inactive() {
        bail!(
            "cannot reset offsets of group '{group}': it has active members (state {}, {} \
             member(s)); offsets can only be reset while the group is Empty, so stop its \
             consumers first",
            desc.state,
            desc.members.len()
        );
    }
    let tm = admin.describe_topic(&args.topic).await?;
    let all: Vec<i32> = tm.partitions.iter().map(|p| p.partition).collect();
    let partitions: Vec<i32> = if args.partitions.is_empty() {
        all.clone()
    } else {
        for p in &args.partitions {
            if !all.contains(p) {
                bail!(
                    "topic '{}' has no partition {p} (it has {})",
                    args.topic,
                    all.len()
                );
            }
        }
        let set: BTreeSet<i32> = args.partitions.iter().copied().collect();
        set.into_iter().collect()
    };
    let mut specs = Vec::new();
    for &p in &partitions {
        specs.push((args.topic.clone(), p, OffsetSpec::Earliest));
        specs.push((args.topic.clone(), p, OffsetSpec::Latest));
        if let ResetMode::Datetime(ts) = mode {
            specs.push((args.topic.clone(), p, OffsetSpec::Timestamp(ts)));
        }
    }
    let listed = admin.list_offsets(&specs).await?;
    let stride = if matches!(mode, ResetMode::Datetime(_)) {
        3
    } else {
        2
    };
    let committed: BTreeMap<i32, i64> = admin
        .list_group_offsets(group)
        .await?
        .into_iter()
        .filter(|o| o.topic == args.topic)
        .map(|o| (o.partition, o.offset))
        .collect();
    let mut plan = Vec::new();
    for (i, &p) in partitions.iter().enumerate() {
        let st = PartitionState {
            log_start: listed[stride * i].offset,
            log_end: listed[stride * i + 1].offset,
            committed: committed.get(&p).copied(),
            by_time: (stride == 3)
                .then(|| listed[stride * i + 2].offset)
                .filter(|&o| o >= 0),
        };
        let new = plan_offset(mode, &st).map_err(|e| anyhow::anyhow!("{}-{p}: {e}", args.topic))?;
        plan.push((p, st, new));
    }
    if args.execute {
        let offsets: Vec<GroupOffset> = plan
            .iter()
            .map(|(p, _, new)| GroupOffset::new(args.topic.clone(), *p, *new))
            .collect();
        admin.alter_group_offsets(group, &offsets).await?;
    }
    if json {
        return print_json(&json!({
            "group": group,
            "executed": args.execute,
            "offsets": plan.iter().map(|(p, st, new)| json!({
                "topic": args.topic,
                "partition": p,
                "current_offset": st.committed,
                "new_offset": new,
                "log_start_offset": st.log_start,
                "log_end_offset": st.log_end,
            })).collect::<Vec<_>>(),
        }));
    }
    let mut t = table(&[
        "Topic",
        "Partition",
        "Current offset",
        "New offset",
        "Log start",
        "Log end",
    ]);
    for (p, st, new) in &plan {
        t.add_row(vec![
            args.topic.clone(),
            p.to_string(),
            st.committed.map_or_else(|| "-".into(), |c| c.to_string()),
            new.to_string(),
            st.log_start.to_string(),
            st.log_end.to_string(),
        ]);
    }
    print_table(&t)?;
    if args.execute {
        print_line(&format!("Committed the new offsets for group '{group}'."))
    } else {
        print_line("Dry run: nothing was changed. Add --execute to commit these offsets.")
    }
}

async fn delete(
    admin: &Admin,
    group: &str,
    topic: Option<String>,
    partitions: Vec<i32>,
    json: bool,
) -> anyhow::Result<()> {
    let Some(topic) = topic else {
        admin.delete_groups(&[group.to_string()]).await?;
        return if json {
            print_json(&json!({"group": group, "deleted": true}))
        } else {
            print_line(&format!("Deleted group '{group}'."))
        };
    };
    let parts: Vec<i32> = if partitions.is_empty() {
        admin
            .list_group_offsets(group)
            .await?
            .into_iter()
            .filter(|o| o.topic == topic)
            .map(|o| o.partition)
            .collect()
    } else {
        partitions
    };
    if parts.is_empty() {
        bail!("group '{group}' has no committed offsets for topic '{topic}'");
    }
    let tps: Vec<(String, i32)> = parts.iter().map(|&p| (topic.clone(), p)).collect();
    admin.delete_group_offsets(group, &tps).await?;
    if json {
        print_json(&json!({"group": group, "topic": topic, "deleted_partitions": parts}))
    } else {
        print_line(&format!(
            "Deleted the committed offsets of group '{group}' for topic '{topic}' (partitions {}).",
            crate::output::ids(&parts)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(log_start: i64, log_end: i64, committed: Option<i64>) -> PartitionState {
        PartitionState {
            log_start,
            log_end,
            committed,
            by_time: None,
        }
    }

    #[test]
    fn earliest_and_latest() {
        let s = st(10, 50, Some(30));
        assert_eq!(plan_offset(ResetMode::Earliest, &s), Ok(10));
        assert_eq!(plan_offset(ResetMode::Latest, &s), Ok(50));
        let empty = st(0, 0, None);
        assert_eq!(plan_offset(ResetMode::Earliest, &empty), Ok(0));
        assert_eq!(plan_offset(ResetMode::Latest, &empty), Ok(0));
    }

    #[test]
    fn to_offset_is_clamped() {
        let s = st(10, 50, None);
        assert_eq!(plan_offset(ResetMode::Offset(20), &s), Ok(20));
        assert_eq!(plan_offset(ResetMode::Offset(5), &s), Ok(10));
        assert_eq!(plan_offset(ResetMode::Offset(-3), &s), Ok(10));
        assert_eq!(plan_offset(ResetMode::Offset(99), &s), Ok(50));
        assert_eq!(plan_offset(ResetMode::Offset(50), &s), Ok(50));
    }

    #[test]
    fn shift_by_moves_the_committed_offset_within_the_log() {
        let s = st(10, 50, Some(30));
        assert_eq!(plan_offset(ResetMode::ShiftBy(5), &s), Ok(35));
        assert_eq!(plan_offset(ResetMode::ShiftBy(-5), &s), Ok(25));
        assert_eq!(plan_offset(ResetMode::ShiftBy(-100), &s), Ok(10));
        assert_eq!(plan_offset(ResetMode::ShiftBy(100), &s), Ok(50));
        assert_eq!(plan_offset(ResetMode::ShiftBy(i64::MAX), &s), Ok(50));
        assert!(plan_offset(ResetMode::ShiftBy(1), &st(0, 5, None)).is_err());
        // A committed offset below the log start (retention) moves up.
        assert_eq!(
            plan_offset(ResetMode::ShiftBy(0), &st(10, 50, Some(3))),
            Ok(10)
        );
    }

    #[test]
    fn datetime_uses_the_looked_up_offset_or_the_log_end() {
        let mut s = st(10, 50, Some(30));
        s.by_time = Some(42);
        assert_eq!(plan_offset(ResetMode::Datetime(0), &s), Ok(42));
        s.by_time = None;
        assert_eq!(plan_offset(ResetMode::Datetime(0), &s), Ok(50));
        s.by_time = Some(3);
        assert_eq!(plan_offset(ResetMode::Datetime(0), &s), Ok(10));
    }

    #[test]
    fn parses_datetimes() {
        assert_eq!(parse_datetime("0"), Ok(0));
        assert_eq!(parse_datetime("1714564800000"), Ok(1_714_564_800_000));
        assert_eq!(parse_datetime("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_datetime("2024-05-01T12:00:00Z"),
            Ok(1_714_564_800_000)
        );
        assert_eq!(
            parse_datetime("2024-05-01T14:00:00+02:00"),
            Ok(1_714_564_800_000)
        );
        assert_eq!(
            parse_datetime("2024-05-01T07:30:00-04:30"),
            Ok(1_714_564_800_000)
        );
        assert_eq!(
            parse_datetime("2024-05-01T12:00:00.5Z"),
            Ok(1_714_564_800_500)
        );
        assert_eq!(
            parse_datetime("2024-05-01t12:00:00.123456z"),
            Ok(1_714_564_800_123)
        );
        assert_eq!(
            parse_datetime("2024-05-01 12:00:00.07Z"),
            Ok(1_714_564_800_070)
        );
        // Leap day.
        assert_eq!(
            parse_datetime("2024-02-29T00:00:00Z"),
            Ok(1_709_164_800_000)
        );
        assert_eq!(parse_datetime("2000-03-01T00:00:00Z"), Ok(951_868_800_000));
    }

    #[test]
    fn rejects_bad_datetimes() {
        for bad in [
            "",
            "yesterday",
            "2024-05-01",
            "2024-05-01T12:00:00",
            "2024-05-01T12:00Z",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-05-01T24:00:00Z",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00+0200",
            "2024-05-01T12:00:00+02:00junk",
            "1969-12-31T23:59:59Z",
            "-5",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad:?} parsed");
        }
        assert!(parse_datetime("2024-05-01T12:00:00")
            .unwrap_err()
            .contains("UTC offset"));
    }
}
