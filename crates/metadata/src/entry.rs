//! The framing of the metadata log and its snapshot: each entry is a 4-byte
//! big-endian payload length, the payload's CRC32C (4 bytes, big-endian) and
//! the payload, a JSON [`MetadataRecord`](crate::MetadataRecord).

/// Bytes before an entry's payload: length and CRC32C.
pub(crate) const ENTRY_HEADER: usize = 8;

/// Frames `payload` as one entry.
pub(crate) fn encode_entry(payload: &[u8], out: &mut Vec<u8>) {
    // Records are small JSON objects; a payload over 4 GiB cannot be built.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_be_bytes());
    out.extend_from_slice(payload);
}

/// What is wrong with one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryProblem {
    /// The entry runs past the end of the file (a torn write leaves this).
    PastEnd { needed: usize, available: usize },
    /// The payload does not match its CRC32C.
    CrcMismatch { stored: u32, computed: u32 },
}

impl std::fmt::Display for EntryProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EntryProblem::PastEnd { needed, available } => write!(
                f,
                "the entry needs {needed} bytes but only {available} remain in the file"
            ),
            EntryProblem::CrcMismatch { stored, computed } => write!(
                f,
                "CRC32C mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
        }
    }
}

/// One framed entry found in a file.
#[derive(Debug)]
pub struct Entry<'a> {
    /// Byte offset of the entry's header in the file.
    pub position: usize,
    /// The payload as far as the file holds it.
    pub payload: &'a [u8],
    /// Length of the whole entry as its header declares it.
    pub declared_len: usize,
    pub problem: Option<EntryProblem>,
}

impl Entry<'_> {
    /// Where the next entry starts, if this one fits in the file.
    pub fn end(&self) -> usize {
        self.position + self.declared_len
    }
}

/// Reads the entry at `position`; `None` at the end of `bytes`.
pub fn entry_at(bytes: &[u8], position: usize) -> Option<Entry<'_>> {
    let rest = bytes.get(position..).filter(|r| !r.is_empty())?;
    let Some((header, body)) = rest.split_first_chunk::<ENTRY_HEADER>() else {
        return Some(Entry {
            position,
            payload: &[],
            declared_len: ENTRY_HEADER,
            problem: Some(EntryProblem::PastEnd {
                needed: ENTRY_HEADER,
                available: rest.len(),
            }),
        });
    };
    let [l0, l1, l2, l3, c0, c1, c2, c3] = *header;
    let len = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
    let stored = u32::from_be_bytes([c0, c1, c2, c3]);
    let declared_len = ENTRY_HEADER.saturating_add(len);
    let Some(payload) = body.get(..len) else {
        return Some(Entry {
            position,
            payload: body,
            declared_len,
            problem: Some(EntryProblem::PastEnd {
                needed: declared_len,
                available: rest.len(),
            }),
        });
    };
    let computed = crc32c::crc32c(payload);
    Some(Entry {
        position,
        payload,
        declared_len,
        problem: (computed != stored).then_some(EntryProblem::CrcMismatch { stored, computed }),
    })
}

/// The first position after `from` where an intact entry (whole, CRC
/// valid) starts. Finding one means the damage at `from` is followed by
/// data, so it is not a torn tail that a crash left.
pub fn next_intact_entry(bytes: &[u8], from: usize) -> Option<usize> {
    (from + 1..bytes.len().saturating_sub(ENTRY_HEADER)).find(|&position| {
        entry_at(bytes, position).is_some_and(|e| e.problem.is_none() && !e.payload.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_entries() -> Vec<u8> {
        let mut bytes = Vec::new();
        encode_entry(b"{\"a\":1}", &mut bytes);
        encode_entry(b"{\"b\":2}", &mut bytes);
        bytes
    }

    #[test]
    fn reads_entries_and_finds_the_next_intact_one_after_damage() {
        let mut bytes = two_entries();
        let first = entry_at(&bytes, 0).unwrap();
        assert!(first.problem.is_none());
        let second_at = first.end();
        assert_eq!(entry_at(&bytes, second_at).unwrap().payload, b"{\"b\":2}");
        assert!(entry_at(&bytes, bytes.len()).is_none());
        bytes[ENTRY_HEADER + 1] ^= 0xff;
        assert!(matches!(
            entry_at(&bytes, 0).unwrap().problem,
            Some(EntryProblem::CrcMismatch { .. })
        ));
        assert_eq!(next_intact_entry(&bytes, 0), Some(second_at));
        assert_eq!(next_intact_entry(&bytes, second_at), None);
    }

    #[test]
    fn a_length_past_the_end_is_reported() {
        let bytes = two_entries();
        let cut = &bytes[..bytes.len() - 3];
        let second_at = entry_at(cut, 0).unwrap().end();
        assert!(matches!(
            entry_at(cut, second_at).unwrap().problem,
            Some(EntryProblem::PastEnd { .. })
        ));
        assert!(matches!(
            entry_at(cut, cut.len() - 2).unwrap().problem,
            Some(EntryProblem::PastEnd { .. })
        ));
    }
}
