//! Length-prefixed frames: a big-endian i32 size followed by that many bytes.
//!
//! The size is checked against the configured maximum before anything is
//! allocated, so a hostile or garbage prefix costs nothing.

use bytes::{Buf, Bytes, BytesMut};

/// Kafka's default for `socket.request.max.bytes` (100 MiB).
pub const DEFAULT_MAX_FRAME: usize = 100 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("negative frame length {0}")]
    Negative(i32),
    #[error("frame of {len} bytes exceeds the limit of {max} bytes (socket.request.max.bytes)")]
    TooLarge { len: usize, max: usize },
}

/// Takes one complete frame body off the front of `buf`, if it holds one.
/// Returns `Ok(None)` when more bytes are needed; `buf` is left untouched then,
/// apart from reserving room for the announced frame.
pub fn take_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, FrameError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    if len < 0 {
        return Err(FrameError::Negative(len));
    }
    let len = len as usize;
    if len > max {
        return Err(FrameError::TooLarge { len, max });
    }
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(len).freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_for_whole_frame() {
        let mut buf = BytesMut::from(&[0, 0, 0, 3, 1, 2][..]);
        assert_eq!(take_frame(&mut buf, 10).unwrap(), None);
        buf.extend_from_slice(&[3, 0, 0]);
        assert_eq!(take_frame(&mut buf, 10).unwrap().unwrap(), &[1, 2, 3][..]);
        assert_eq!(buf.len(), 2);
    }

    #[test]
    fn rejects_bad_lengths_before_allocating() {
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
        assert_eq!(take_frame(&mut buf, 10), Err(FrameError::Negative(-1)));
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        assert!(matches!(
            take_frame(&mut buf, 10),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(buf.capacity() < 1024);
    }
}
