//! Full-size parity (developer-only): compares registered models against fixtures written by
//! `/work/shared/tools/make_parity.py NAME --out .parity` (git-ignored) at the repository root.
//! Fixtures that are absent are skipped.
//!
//!     python3 ../shared/tools/make_parity.py mobilenetv2_100 tv:shufflenet_v2_x1_0 --out .parity
//!     cargo test --release -p kestrel-models --test full_parity_mobilenet_shufflenet_vgg -- --ignored --nocapture

use crate::common;

use std::path::PathBuf;

use common::{input_tensor, load_fixture_weights, logit_errors};
use kestrel_models::burn::prelude::*;

/// (folder under .parity/, registry name)
const MODELS: &[(&str, &str)] = &[
    ("mobilenetv2_050", "mobilenetv2_050"),
    ("mobilenetv2_100", "mobilenetv2_100"),
    ("mobilenetv2_140", "mobilenetv2_140"),
    ("mobilenetv3_small_100", "mobilenetv3_small_100"),
    ("mobilenetv3_large_100", "mobilenetv3_large_100"),
    ("mobilenetv1_100", "mobilenetv1_100"),
    ("tv_shufflenet_v2_x0_5", "shufflenet_v2_x0_5"),
    ("tv_shufflenet_v2_x1_0", "shufflenet_v2_x1_0"),
    ("tv_shufflenet_v2_x1_5", "shufflenet_v2_x1_5"),
    ("tv_shufflenet_v2_x2_0", "shufflenet_v2_x2_0"),
    ("tv_alexnet", "alexnet"),
    ("tv_vgg11", "vgg11"),
    ("tv_vgg11_bn", "vgg11_bn"),
    ("tv_vgg16", "vgg16"),
    ("tv_vgg16_bn", "vgg16_bn"),
];

#[test]
#[ignore = "needs the full-size fixtures in .parity/ written by scripts/check_parity_full.py (downloads pretrained weights; fails when they are missing)"]
fn full_parity_mobilenet_shufflenet_vgg_alexnet() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.parity");
    let device = Device::flex();
    let mut failures = Vec::new();
    let mut missing = Vec::new();
    for &(folder, name) in MODELS {
        let dir = root.join(folder);
        if !dir.join("weights.safetensors").exists() {
            missing.push(folder);
            continue;
        }
        let spec = kestrel_models::find(name).unwrap();
        let model = load_fixture_weights(
            spec.build(&spec.default_options(), &device),
            &dir,
            "weights.safetensors",
        );
        let (err, scale) = logit_errors(model.forward(input_tensor(&dir, &device)), &dir);
        eprintln!(
            "{name:24} max abs err {err:.3e}  max|logit| {scale:.3e}  ratio {:.2e}",
            err / scale
        );
        if err > 1e-4 * scale {
            failures.push(name);
        }
    }
    assert!(failures.is_empty(), "over 1e-4 x max|logit|: {failures:?}");
    assert!(
        missing.is_empty(),
        "no fixture in {} for {missing:?}: run python3 scripts/check_parity_full.py",
        root.display()
    );
}
