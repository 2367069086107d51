//! The restricted pickle VM plus state-dict extraction and view materialisation, fed raw
//! `data.pkl` bytes. Any panic, overflow or runaway allocation is a bug: hostile input must
//! come back as an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = iplap::checkpoint::fuzz_parse(data);
});
