//! Full-size parity (developer-only, `#[ignore]`d): for every registered model with a fixture
//! under `<repo>/.parity/<name>/` (written by scripts/check_parity_full.py), the default variant's
//! logits must match timm's within 1e-4 × max|logit|. Models without a fixture are skipped.
//!
//!   python3 scripts/check_parity_full.py            # writes .parity/, then runs this test
//!   cargo test --release -p kestrel-models --test full_parity -- --ignored full_parity

mod common;

use common::{assert_logits_match, input_tensor, read_tensor};
use kestrel_models::burn::prelude::*;
use kestrel_models::weights::{load_weights, LoadOptions};

#[test]
#[ignore]
fn full_parity() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.parity");
    let device = Device::flex();
    let mut checked = 0;
    for spec in kestrel_models::REGISTRY {
        let dir = root.join(spec.name);
        if !dir.join("weights.safetensors").exists() {
            continue;
        }
        let mut model = spec.build(&spec.default_options(), &device);
        load_weights(
            &mut model,
            &dir.join("weights.safetensors"),
            &LoadOptions::default(),
        )
        .unwrap_or_else(|e| panic!("{}: {e}", spec.name));
        let logits = model.forward(input_tensor(&dir, &device));
        let ours: Vec<f32> = logits.clone().into_data().try_to_vec::<f32>().unwrap();
        let (_, reference) = read_tensor(&dir.join("io.safetensors"), "logits");
        let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
        let err = ours
            .iter()
            .zip(&reference)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        eprintln!(
            "{:24} max|err| {err:.3e}  max|logit| {scale:.3e}  ratio {:.3e}",
            spec.name,
            err / scale
        );
        assert_logits_match(logits, &dir);
        checked += 1;
    }
    eprintln!("{checked} full-size models checked");
}
