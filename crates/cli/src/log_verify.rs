//! `sluice log verify PATH...`: checks every batch of every segment of a
//! data directory, a partition directory or single `.log` files, offline:
//! CRC32C, whole batches, offsets that never go back. Prints each damaged
//! range (file, bytes, offsets lost) and exits nonzero when there is one.
//! The check is the storage engine's own (`sluice_storage::verify_segment`),
//! the one crash recovery and the broker's scrubber run.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use serde_json::json;
use sluice_storage::{segment_base_offset, verify_segment, DamagedRange, Throttle};

use crate::output::{print_json, print_line, print_table, table, OutputFormat};
use crate::Global;

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    /// Data directories (`log.dirs`), partition directories (e.g.
    /// data/orders-0) or segment files (.log).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// A damaged range found, with where it is.
struct Finding {
    file: PathBuf,
    damage: DamagedRange,
    /// Where the offsets lost by damage that runs to the end of its file
    /// end: the next segment's base offset; `None` for the last segment.
    next_segment: Option<i64>,
}

#[derive(Default)]
struct Totals {
    segments: u64,
    batches: u64,
    bytes: u64,
    findings: Vec<Finding>,
}

pub(crate) fn run(global: &Global, args: VerifyArgs) -> anyhow::Result<()> {
    let mut totals = Totals::default();
    for path in &args.paths {
        for segments in partitions_under(path)? {
            verify_partition(&segments, &mut totals)?;
        }
    }
    if totals.segments == 0 {
        bail!("no segment files (<20-digit base offset>.log) found");
    }
    report(global, &totals)?;
    if !totals.findings.is_empty() {
        bail!(
            "{} damaged range(s) in {} segment file(s)",
            totals.findings.len(),
            distinct_files(&totals.findings)
        );
    }
    Ok(())
}

/// The segment files under `path`, grouped by partition directory and
/// ordered by base offset.
fn partitions_under(path: &Path) -> anyhow::Result<Vec<Vec<PathBuf>>> {
    if !path.is_dir() {
        if segment_base_offset(path).is_none() {
            bail!(
                "{}: not a directory nor a segment file (<20-digit base offset>.log)",
                path.display()
            );
        }
        return Ok(vec![vec![path.to_path_buf()]]);
    }
    let segments = segments_in(path)?;
    if !segments.is_empty() {
        return Ok(vec![segments]);
    }
    let mut partitions = Vec::new();
    for dir in sorted_entries(path)? {
        if dir.is_dir() {
            let segments = segments_in(&dir)?;
            if !segments.is_empty() {
                partitions.push(segments);
            }
        }
    }
    Ok(partitions)
}

fn segments_in(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut segments: Vec<(i64, PathBuf)> = sorted_entries(dir)?
        .into_iter()
        .filter_map(|p| segment_base_offset(&p).map(|base| (base, p)))
        .collect();
    segments.sort();
    Ok(segments.into_iter().map(|(_, p)| p).collect())
}

fn sorted_entries(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let listing = || format!("listing {}", dir.display());
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(listing)? {
        entries.push(entry.with_context(listing)?.path());
    }
    entries.sort();
    Ok(entries)
}

fn verify_partition(segments: &[PathBuf], totals: &mut Totals) -> anyhow::Result<()> {
    let unthrottled = Throttle::unlimited();
    for (i, file) in segments.iter().enumerate() {
        let check = verify_segment(file, &unthrottled)?;
        totals.segments += 1;
        totals.batches += check.batches;
        totals.bytes += check.bytes;
        let next_segment = segments.get(i + 1).and_then(|p| segment_base_offset(p));
        totals
            .findings
            .extend(check.damaged.into_iter().map(|damage| Finding {
                file: file.clone(),
                damage,
                next_segment,
            }));
    }
    Ok(())
}

/// The lost offsets as text: `first..end` (end exclusive) when known.
fn lost_offsets(finding: &Finding) -> String {
    let first = finding.damage.first_lost_offset;
    match (finding.damage.resumes_at, finding.next_segment) {
        (Some(end), _) | (None, Some(end)) => format!("{first}..{end}"),
        (None, None) => format!("{first}.. (to the end of the log)"),
    }
}

fn report(global: &Global, totals: &Totals) -> anyhow::Result<()> {
    if global.output == OutputFormat::Json {
        let damaged: Vec<_> = totals
            .findings
            .iter()
            .map(|f| {
                json!({
                    "file": f.file.display().to_string(),
                    "bytes": [f.damage.bytes.start, f.damage.bytes.end],
                    "first_lost_offset": f.damage.first_lost_offset,
                    "resumes_at": f.damage.resumes_at.or(f.next_segment),
                })
            })
            .collect();
        return print_json(&json!({
            "segments": totals.segments,
            "batches": totals.batches,
            "bytes": totals.bytes,
            "damaged": damaged,
        }));
    }
    print_line(&format!(
        "verified {} segment(s): {} batches, {} bytes",
        totals.segments, totals.batches, totals.bytes
    ))?;
    if totals.findings.is_empty() {
        return print_line("no damage found");
    }
    let mut t = table(&["FILE", "DAMAGED BYTES", "OFFSETS LOST"]);
    for f in &totals.findings {
        t.add_row(vec![
            f.file.display().to_string(),
            format!("{}..{}", f.damage.bytes.start, f.damage.bytes.end),
            lost_offsets(f),
        ]);
    }
    print_table(&t)?;
    print_line(
        "A consumer cannot read past a damaged range in a closed segment: move the log \
         start past it with `sluice topic delete-records TOPIC --partition P --before-offset \
         <end of the lost offsets>` (see docs/OPERATIONS.md, \"Corrupt segment files\").",
    )
}

fn distinct_files(findings: &[Finding]) -> usize {
    let mut files: Vec<&Path> = findings.iter().map(|f| f.file.as_path()).collect();
    files.dedup();
    files.len()
}
