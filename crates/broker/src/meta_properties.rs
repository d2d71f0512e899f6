//! `meta.properties`: which node and which cluster a data directory
//! belongs to, in Kafka's KRaft format (`version=1`, `node.id`,
//! `cluster.id`, `directory.id`). Written once the node knows its cluster;
//! checked at every start, so a data directory copied to another node, or
//! left from another cluster, is refused instead of being served as if its
//! partitions were this cluster's. A directory with no `meta.properties`
//! yet (new, or from an older Sluice) gets one.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub(crate) const FILE: &str = "meta.properties";

/// What `meta.properties` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetaProperties {
    pub(crate) node_id: i32,
    pub(crate) cluster_id: String,
    pub(crate) directory_id: String,
}

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

/// `None` when the file does not exist; `Err` when it cannot be read or
/// is not a KRaft `meta.properties` (never guessed at or overwritten).
pub(crate) fn read(dir: &Path) -> Result<Option<MetaProperties>, String> {
    let file = path(dir);
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
    };
    parse(&text)
        .map(Some)
        .map_err(|e| format!("{}: {e}; fix or remove it", file.display()))
}

fn parse(text: &str) -> Result<MetaProperties, String> {
    let mut values = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let (key, value) = line
            .split_once(['=', ':'])
            .ok_or_else(|| format!("line {line:?} is not key=value"))?;
        values.insert(key.trim(), value.trim());
    }
    match values.get("version").copied() {
        Some("1") => {}
        Some("0") => return Err(
            "version=0 is a ZooKeeper-mode Kafka data directory; Sluice needs version=1 (KRaft)"
                .into(),
        ),
        Some(other) => return Err(format!("unknown version {other:?}")),
        None => return Err("no version".into()),
    }
    let node_id = values
        .get("node.id")
        .ok_or("no node.id")?
        .parse()
        .map_err(|_| "node.id is not a number")?;
    let cluster_id = values
        .get("cluster.id")
        .filter(|id| !id.is_empty())
        .ok_or("no cluster.id")?
        .to_string();
    Ok(MetaProperties {
        node_id,
        cluster_id,
        directory_id: values
            .get("directory.id")
            .map(|id| id.to_string())
            .unwrap_or_else(new_id),
    })
}

/// Writes `meta` atomically (a temporary file, synced, renamed, and the
/// directory synced).
pub(crate) fn write(dir: &Path, meta: &MetaProperties) -> io::Result<()> {
    let text = format!(
        "#\n#Written by Sluice: the node and cluster this data directory belongs to.\nnode.id={}\ndirectory.id={}\nversion=1\ncluster.id={}\n",
        meta.node_id, meta.directory_id, meta.cluster_id
    );
    let temporary = dir.join(format!("{FILE}.tmp"));
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temporary, path(dir))?;
    std::fs::File::open(dir)?.sync_all()
}

/// Refuses a data directory that belongs to another node.
pub(crate) fn check_node(dir: &Path, meta: &MetaProperties, node_id: i32) -> Result<(), String> {
    if meta.node_id != node_id {
        return Err(format!(
            "{} says this data directory belongs to node.id={}, but this node is node.id={node_id}: give each node its own data directory (or set node.id={})",
            path(dir).display(),
            meta.node_id,
            meta.node_id
        ));
    }
    Ok(())
}

/// Refuses a data directory of another cluster, and writes
/// `meta.properties` for one that has none.
pub(crate) fn check_cluster(
    dir: &Path,
    meta: Option<&MetaProperties>,
    node_id: i32,
    cluster_id: &str,
) -> Result<(), String> {
    match meta {
        Some(meta) if meta.cluster_id != cluster_id => Err(format!(
            "{} says this data directory belongs to cluster {}, but the metadata quorum's cluster is {cluster_id}: a data directory holds one cluster's data (start this node on a new, empty directory to join {cluster_id})",
            path(dir).display(),
            meta.cluster_id
        )),
        Some(_) => Ok(()),
        None => write(
            dir,
            &MetaProperties {
                node_id,
                cluster_id: cluster_id.to_string(),
                directory_id: new_id(),
            },
        )
        .map_err(|e| format!("cannot write {}: {e}", path(dir).display())),
    }
}

/// A Kafka id: 16 random bytes in URL-safe base64 without padding (cluster
/// ids, directory ids).
pub(crate) fn new_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = *sluice_metadata::Uuid::new_v4().as_bytes();
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = String::with_capacity(22);
    for b in bytes {
        bits = (bits << 8) | u32::from(b);
        nbits += 8;
        while nbits >= 6 {
            nbits -= 6;
            out.push(ALPHABET[((bits >> nbits) & 63) as usize] as char);
        }
    }
    if nbits > 0 {
        out.push(ALPHABET[((bits << (6 - nbits)) & 63) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_kafka_storage_format_writes() {
        let kafka = "#\n#Tue Dec 08 01:00:00 UTC 2026\nnode.id=3\ndirectory.id=mH2Hs7VQRZ2jXXq2Gkd1Ww\nversion=1\ncluster.id=MkU3OEVBNTcwNTJENDM2Qk\n";
        assert_eq!(
            parse(kafka).unwrap(),
            MetaProperties {
                node_id: 3,
                cluster_id: "MkU3OEVBNTcwNTJENDM2Qk".into(),
                directory_id: "mH2Hs7VQRZ2jXXq2Gkd1Ww".into(),
            }
        );
    }

    #[test]
    fn refuses_what_is_not_a_kraft_meta_properties() {
        for (text, why) in [
            ("version=0\nbroker.id=1\ncluster.id=x\n", "ZooKeeper"),
            ("version=2\nnode.id=1\ncluster.id=x\n", "unknown version"),
            ("node.id=1\ncluster.id=x\n", "no version"),
            ("version=1\ncluster.id=x\n", "no node.id"),
            ("version=1\nnode.id=one\ncluster.id=x\n", "not a number"),
            ("version=1\nnode.id=1\n", "no cluster.id"),
            (
                "version=1\nnode.id=1\ncluster.id=x\ngarbage\n",
                "not key=value",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_directory_is_claimed_once_and_then_guarded() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        check_cluster(dir.path(), None, 2, "cluster-a").unwrap();
        let meta = read(dir.path()).unwrap().expect("written");
        assert_eq!((meta.node_id, meta.cluster_id.as_str()), (2, "cluster-a"));
        assert_eq!(meta.directory_id.len(), 22);
        check_node(dir.path(), &meta, 2).unwrap();
        check_cluster(dir.path(), Some(&meta), 2, "cluster-a").unwrap();
        let err = check_node(dir.path(), &meta, 1).unwrap_err();
        assert!(
            err.contains("node.id=2, but this node is node.id=1"),
            "{err}"
        );
        let err = check_cluster(dir.path(), Some(&meta), 2, "cluster-b").unwrap_err();
        assert!(err.contains("belongs to cluster cluster-a"), "{err}");
        assert_eq!(read(dir.path()).unwrap(), Some(meta), "never rewritten");
        std::fs::write(dir.path().join(FILE), "version=1\n").unwrap();
        assert!(read(dir.path()).unwrap_err().contains("fix or remove it"));
    }
}
