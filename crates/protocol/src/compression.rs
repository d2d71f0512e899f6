//! Compression codecs for record batches.
//!
//! `kafka-protocol` decompresses gzip, snappy and zstd itself and compresses
//! snappy; gzip and zstd are compressed here with `flate2` and `zstd`
//! directly, because its compressors have no level and a topic's
//! `compression.gzip.level` / `compression.zstd.level` must apply. LZ4 is
//! plugged in through the custom-compression hooks with the pure-Rust
//! `lz4_flex` (Kafka uses the LZ4 frame format). Use
//! `encode_batch`/`decode_batches` instead of calling the encoder directly so
//! every codec works.

use crate::batch::Codec;
use bytes::{Bytes, BytesMut};
use kafka_protocol::compression::{Compressor, Decompressor, Gzip, Snappy, Zstd};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};
use std::io::{Read, Write};

fn copy_into(tmp: &mut BytesMut, raw: &[u8]) -> anyhow::Result<()> {
    tmp.extend_from_slice(raw);
    Ok(())
}

fn take_all<B: bytes::Buf>(buf: &mut B) -> anyhow::Result<Bytes> {
    Ok(buf.copy_to_bytes(buf.remaining()))
}

/// The `index`-th record of a batch without a producer id. Its sequence is
/// `index - 1` so the batch's base sequence is -1: kafka-protocol's encoder
/// starts a new batch whenever `offset - sequence` changes between records.
pub fn plain_record(
    index: i64,
    timestamp: i64,
    key: Option<Bytes>,
    value: Option<Bytes>,
) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: kafka_protocol::records::TimestampType::Creation,
        offset: index,
        sequence: index as i32 - 1,
        timestamp,
        key,
        value,
        headers: Default::default(),
    }
}

/// Encodes `records` as one v2 batch with `compression` into `out`.
pub fn encode_batch(
    out: &mut BytesMut,
    records: &[Record],
    compression: Compression,
) -> anyhow::Result<()> {
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode_with_custom_compression(
        out,
        records,
        &options,
        Some(|raw: &mut BytesMut, dest: &mut BytesMut, c: Compression| {
            compress(raw, dest, CodecLevel::quick(codec_of(c)))
        }),
    )
}

/// Kafka's `compression.gzip.level` default: zlib's default, level 6.
pub const GZIP_DEFAULT_LEVEL: i32 = -1;
/// Kafka's `compression.lz4.level` default.
pub const LZ4_DEFAULT_LEVEL: i32 = 9;
/// Kafka's `compression.zstd.level` default.
pub const ZSTD_DEFAULT_LEVEL: i32 = 3;

/// A codec and the level to compress with, as a topic's `compression.type`
/// and `compression.<codec>.level` settings name them. Snappy and
/// uncompressed have no level. LZ4 level 1 is the fast compressor
/// (`lz4_flex`); 2 and up are LZ4 HC at that level (liblz4 caps it at 12),
/// as Kafka's lz4-java does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodecLevel {
    pub codec: Codec,
    pub level: i32,
}

impl CodecLevel {
    /// The codec at Kafka's default level.
    pub fn default_for(codec: Codec) -> Self {
        let level = match codec {
            Codec::Gzip => GZIP_DEFAULT_LEVEL,
            Codec::Lz4 => LZ4_DEFAULT_LEVEL,
            Codec::Zstd => ZSTD_DEFAULT_LEVEL,
            Codec::None | Codec::Snappy => 0,
        };
        CodecLevel { codec, level }
    }

    /// Kafka's default levels, except LZ4 at its fast level 1: for batches
    /// whose level nobody chose (our client's, the cleaner's rewrites), where
    /// LZ4 HC would cost ten times the CPU for a few percent.
    pub fn quick(codec: Codec) -> Self {
        match codec {
            Codec::Lz4 => CodecLevel { codec, level: 1 },
            other => CodecLevel::default_for(other),
        }
    }
}

fn codec_of(compression: Compression) -> Codec {
    match compression {
        Compression::None => Codec::None,
        Compression::Gzip => Codec::Gzip,
        Compression::Snappy => Codec::Snappy,
        Compression::Lz4 => Codec::Lz4,
        Compression::Zstd => Codec::Zstd,
    }
}

/// Compresses a raw records section (Kafka's framing of each codec).
pub fn compress_records(target: CodecLevel, section: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut out = BytesMut::new();
    compress(section, &mut out, target)?;
    Ok(out.into())
}

/// The most a batch's records may take once decompressed. A small batch of
/// repeated bytes can expand a thousandfold (gzip, zstd): without a bound one
/// produce request could claim any amount of broker memory.
pub const MAX_DECOMPRESSED_BYTES: u64 = 256 << 20;

/// Decompresses the records section of a batch compressed with `codec`,
/// refusing sections that expand past [`MAX_DECOMPRESSED_BYTES`].
pub fn decompress_records(codec: Codec, compressed: &[u8]) -> anyhow::Result<Vec<u8>> {
    let limit = MAX_DECOMPRESSED_BYTES;
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(2));
    match codec {
        Codec::None => out.extend_from_slice(compressed),
        Codec::Gzip => {
            flate2::read::MultiGzDecoder::new(compressed)
                .take(limit + 1)
                .read_to_end(&mut out)?;
        }
        Codec::Lz4 => {
            lz4_flex::frame::FrameDecoder::new(compressed)
                .take(limit + 1)
                .read_to_end(&mut out)?;
        }
        Codec::Zstd => {
            zstd::stream::read::Decoder::new(compressed)?
                .take(limit + 1)
                .read_to_end(&mut out)?;
        }
        // Snappy expands at most about 32 times: a batch within any sane
        // max.message.bytes stays far below the limit.
        Codec::Snappy => {
            let mut raw = Bytes::copy_from_slice(compressed);
            out = decompress(&mut raw, Compression::Snappy)?.to_vec();
        }
    }
    anyhow::ensure!(
        out.len() as u64 <= limit,
        "the records decompress to more than {limit} bytes"
    );
    Ok(out)
}

fn compress(raw: &[u8], dest: &mut BytesMut, target: CodecLevel) -> anyhow::Result<()> {
    match target.codec {
        Codec::None => dest.extend_from_slice(raw),
        Codec::Gzip => {
            // -1 is zlib's default; anything else was validated to 1..=9.
            let level = u32::try_from(target.level).map_or(flate2::Compression::default(), |l| {
                flate2::Compression::new(l.min(9))
            });
            let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(raw.len() / 2), level);
            enc.write_all(raw)?;
            dest.extend_from_slice(&enc.finish()?);
        }
        Codec::Snappy => Snappy::compress(dest, |tmp: &mut BytesMut| copy_into(tmp, raw))?,
        Codec::Lz4 if target.level <= 1 => {
            let mut enc = lz4_flex::frame::FrameEncoder::new(Vec::with_capacity(raw.len() / 2));
            enc.write_all(raw)?;
            dest.extend_from_slice(&enc.finish()?);
        }
        Codec::Lz4 => dest.extend_from_slice(&compress_lz4_hc(raw, target.level)?),
        Codec::Zstd => dest.extend_from_slice(&compress_zstd(raw, target.level)?),
    }
    Ok(())
}

/// An LZ4 frame compressed with LZ4 HC at `level`: independent 64 KiB blocks
/// and no content checksum, the frame shape every Kafka client reads.
fn compress_lz4_hc(raw: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    let mut enc = lz4::EncoderBuilder::new()
        .level(level.clamp(2, 12) as u32)
        .block_size(lz4::BlockSize::Max64KB)
        .block_mode(lz4::BlockMode::Independent)
        .checksum(lz4::ContentChecksum::NoChecksum)
        .build(Vec::with_capacity(raw.len() / 2))?;
    enc.write_all(raw)?;
    let (out, result) = enc.finish();
    result.map(|()| out)
}

thread_local! {
    /// A zstd context per thread, kept between batches: a new one per call
    /// allocates and clears its match tables every time.
    static ZSTD: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { std::cell::RefCell::new(None) };
}

fn compress_zstd(raw: &[u8], level: i32) -> std::io::Result<Vec<u8>> {
    ZSTD.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match slot.as_mut() {
            Some(c) => {
                c.set_compression_level(level)?;
                c
            }
            None => slot.insert(zstd::bulk::Compressor::new(level)?),
        };
        compressor.compress(raw)
    })
}

/// Decodes every batch in a record set into records (decompressing as
/// needed). For clients and tools; the broker never does this on its hot path.
pub fn decode_batches(mut records: Bytes) -> anyhow::Result<Vec<Record>> {
    let mut out = Vec::new();
    while !records.is_empty() {
        let set = RecordBatchDecoder::decode_with_custom_compression(
            &mut records,
            Some(|raw: &mut Bytes, c: Compression| decompress(raw, c)),
        )?;
        out.extend(set.records);
    }
    Ok(out)
}

fn decompress(raw: &mut Bytes, codec: Compression) -> anyhow::Result<Bytes> {
    match codec {
        Compression::Lz4 => {
            let mut out = Vec::with_capacity(raw.len() * 2);
            lz4_flex::frame::FrameDecoder::new(&raw[..]).read_to_end(&mut out)?;
            Ok(Bytes::from(out))
        }
        Compression::None => Ok(raw.split_off(0)),
        Compression::Gzip => Gzip::decompress(raw, take_all),
        Compression::Snappy => Snappy::decompress(raw, take_all),
        Compression::Zstd => Zstd::decompress(raw, take_all),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: i64) -> Record {
        plain_record(
            i,
            1000 + i,
            Some(Bytes::from(format!("key-{i}"))),
            Some(Bytes::from("lorem ipsum ".repeat(20))),
        )
    }

    #[test]
    fn every_codec_round_trips() {
        for codec in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let recs: Vec<Record> = (0..50).map(record).collect();
            let mut buf = BytesMut::new();
            encode_batch(&mut buf, &recs, codec).unwrap();
            let header = crate::batch::BatchHeader::parse(&buf).unwrap();
            header.verify().unwrap();
            assert_eq!(header.codec().unwrap().id(), codec as i16, "{codec:?}");
            let back = decode_batches(buf.freeze()).unwrap();
            assert_eq!(back.len(), 50);
            assert_eq!(back[7].key, recs[7].key);
            assert_eq!(back[7].value, recs[7].value);
        }
    }

    #[test]
    fn levels_apply_to_gzip_and_zstd() {
        let section: Vec<u8> = (0..20_000u32)
            .flat_map(|i| format!("record {} of {}; ", i % 97, i % 13).into_bytes())
            .collect();
        for (codec, fast, best) in [(Codec::Gzip, 1, 9), (Codec::Zstd, -5, 19)] {
            let size = |level| {
                let packed = compress_records(CodecLevel { codec, level }, &section).unwrap();
                assert_eq!(decompress_records(codec, &packed).unwrap(), section);
                packed.len()
            };
            assert!(size(best) < size(fast), "{codec:?}");
        }
    }

    #[test]
    fn decompression_is_bounded() {
        let zeros = vec![0u8; (MAX_DECOMPRESSED_BYTES + 1) as usize];
        for codec in [Codec::Gzip, Codec::Lz4, Codec::Zstd] {
            let packed = compress_records(CodecLevel::default_for(codec), &zeros).unwrap();
            assert!(packed.len() < 2 << 20, "{codec:?} packs zeros small");
            let err = decompress_records(codec, &packed).unwrap_err();
            assert!(
                err.to_string().contains("decompress to more than"),
                "{codec:?}: {err}"
            );
        }
    }

    #[test]
    fn lz4_levels_above_one_use_lz4_hc_and_read_back_with_lz4_flex() {
        let text: Vec<u8> = (0..20_000)
            .flat_map(|i| format!("record {} says hello to {}; ", i % 97, i % 13).into_bytes())
            .collect();
        let fast = compress_records(
            CodecLevel {
                codec: Codec::Lz4,
                level: 1,
            },
            &text,
        )
        .unwrap();
        let hc = compress_records(
            CodecLevel {
                codec: Codec::Lz4,
                level: 9,
            },
            &text,
        )
        .unwrap();
        assert!(
            hc.len() < fast.len(),
            "HC {} < fast {}",
            hc.len(),
            fast.len()
        );
        for packed in [fast, hc] {
            assert_eq!(decompress_records(Codec::Lz4, &packed).unwrap(), text);
        }
    }
}
