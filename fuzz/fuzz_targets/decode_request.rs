//! Any bytes as a request frame body: decoding returns a request or an
//! error, never a panic or an abort (an allocation from an untrusted count).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sluice_protocol::envelope::decode_request(bytes::Bytes::copy_from_slice(data));
});
