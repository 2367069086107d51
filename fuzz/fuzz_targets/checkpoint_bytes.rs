//! Whole checkpoint files (zip, legacy stream, safetensors) through format detection and the
//! container readers. Any panic or runaway allocation is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = iplap::checkpoint::load_checkpoint_bytes(data, "fuzz-input");
});
