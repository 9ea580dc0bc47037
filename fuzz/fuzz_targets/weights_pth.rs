//! PyTorch weights (`--weights x.pth`) through `load_weights`: zip (`torch.save` since 1.6) and
//! legacy pickle files, and safetensors content sniffed from a `.pth` name.
#![no_main]

#[path = "weights_common.rs"]
mod common;

libfuzzer_sys::fuzz_target!(|data: &[u8]| common::run(data, "fuzz.pth"));
