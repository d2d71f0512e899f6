//! Any bytes as a record set: the record decoder (used by clients and the
//! broker's recompression) returns records or an error, never aborts.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sluice_protocol::compression::decode_batches(bytes::Bytes::copy_from_slice(data));
});
