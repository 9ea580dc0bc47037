//! Full-size parity (developer-only, `#[ignore]`d): for every registered model with a fixture
//! under `<repo>/.parity/<name>/` or, for torchvision's models, `.parity/tv_<name>/` (written by
//! scripts/check_parity_full.py), the default variant's logits must match timm's/torchvision's
//! within 1e-4 × max|logit|. Models without a fixture are skipped, but a run that finds no
//! fixture at all fails: it would have checked nothing.
//!
//! Where check_parity_full.py wrote `reference_fp64.safetensors` (the same PyTorch model in
//! float64), that is the reference, and the bar widens to twice PyTorch's own float32 error
//! against it when that exceeds 1e-4 (the deepest ResNets).
//!
//!   python3 scripts/check_parity_full.py            # writes .parity/, then runs this test
//!   cargo test --release -p kestrel-models --test full_parity -- --ignored full_parity

use crate::common;

use common::{input_tensor, load_fixture_weights, read_tensor};
use kestrel_models::burn::prelude::*;

#[test]
#[ignore = "needs the full-size fixtures in .parity/ written by scripts/check_parity_full.py (downloads pretrained weights; fails when they are missing)"]
fn full_parity() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.parity");
    let device = Device::flex();
    let mut checked = 0;
    for spec in kestrel_models::REGISTRY.iter() {
        // make_parity.py writes `tv:NAME` to `tv_NAME/`: those folders belong to this model when
        // `tv:NAME` resolves to it (torchvision's resnet50, regnet_y_16gf, shufflenet, ...),
        // not to timm's efficientnet_b7 or convnext_large, whose `tv:` twins are other models.
        let mut folders = vec![spec.name.to_string()];
        let tv_spec = kestrel_models::find(&format!("tv:{}", spec.name)).ok();
        if tv_spec.is_some_and(|tv| tv.name == spec.name) {
            folders.push(format!("tv_{}", spec.name));
        }
        for folder in folders {
            let dir = root.join(&folder);
            if !dir.join("weights.safetensors").exists() {
                continue;
            }
            let model = load_fixture_weights(
                spec.build(&spec.default_options(), &device),
                &dir,
                "weights.safetensors",
            );
            let logits = model.forward(input_tensor(&dir, &device));
            let ours: Vec<f32> = logits.into_data().try_to_vec::<f32>().unwrap();
            let (_, torch_fp32) = read_tensor(&dir.join("io.safetensors"), "logits");
            let max_diff =
                |a: &[f32], b: &[f32]| a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
            let fp64_file = dir.join("reference_fp64.safetensors");
            let (reference, torch_drift) = if fp64_file.exists() {
                let (_, fp64) = read_tensor(&fp64_file, "logits");
                let drift = max_diff(&torch_fp32, &fp64);
                (fp64, drift)
            } else {
                (torch_fp32.clone(), 0.0)
            };
            let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
            let err = max_diff(&ours, &reference) / scale;
            let err32 = max_diff(&ours, &torch_fp32) / scale;
            let drift = torch_drift / scale;
            // The bar is 1e-4 x max|logit|. Deep nets (resnet152) are so ill-conditioned that
            // PyTorch's own float32 logits miss the float64 ones by more than that; there kestrel
            // must be within twice PyTorch's float32 drift of the float64 truth.
            let bar = 1e-4f32.max(2.0 * drift);
            eprintln!(
                "{folder:24} ({}) vs float64: {err:.2e}  vs torch float32: {err32:.2e}  torch \
                 float32 vs float64: {drift:.2e}  bar {bar:.1e}",
                spec.name
            );
            assert!(
                err <= bar,
                "{folder}: error ratio {err:.3e} exceeds {bar:.1e}"
            );
            // The fast engine, where it lowers the model, at the same bar.
            match kestrel_deploy::lower(&model, 3) {
                Ok(engine) => {
                    let (shape, x) = read_tensor(&dir.join("io.safetensors"), "input");
                    let fast = engine
                        .run_nchw(&x, shape[0], shape[1], shape[2], shape[3])
                        .unwrap_or_else(|e| panic!("{folder}: fast engine: {e}"));
                    let err_fast = max_diff(&fast, &reference) / scale;
                    eprintln!("{folder:24} fast engine vs float64: {err_fast:.2e}");
                    assert!(
                        err_fast <= bar,
                        "{folder}: fast engine error ratio {err_fast:.3e} exceeds {bar:.1e}"
                    );
                }
                Err(why) => eprintln!("{folder:24} fast engine skipped: {why}"),
            }
            checked += 1;
        }
    }
    assert!(
        checked > 0,
        "no fixture in {}: run python3 scripts/check_parity_full.py first",
        root.display()
    );
    eprintln!("{checked} full-size models checked");
}
