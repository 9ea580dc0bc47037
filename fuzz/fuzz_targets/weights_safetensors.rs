//! safetensors weights (`--weights x.safetensors`) through `load_weights`: the 8-byte header
//! length, the JSON header and the tensor data, then applying them to a model.
#![no_main]

#[path = "weights_common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::run(data, "fuzz.safetensors"));
