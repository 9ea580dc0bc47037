//! Full-size parity (developer-only, `#[ignore]`d): for every registered model with a fixture
//! under `<repo>/.parity/<name>/` (written by scripts/check_parity_full.py), the default variant's
//! logits must match timm's within 1e-4 × max|logit|. Models without a fixture are skipped.
//!
//!   python3 scripts/check_parity_full.py            # writes .parity/, then runs this test
//!   cargo test --release -p kestrel-models --test full_parity -- --ignored full_parity

mod common;

use common::{assert_logits_match, input_tensor, load_fixture_weights, logit_errors};
use kestrel_models::burn::prelude::*;

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
        let model = load_fixture_weights(
            spec.build(&spec.default_options(), &device),
            &dir,
            "weights.safetensors",
        );
        let logits = model.forward(input_tensor(&dir, &device));
        let (err, scale) = logit_errors(logits.clone(), &dir);
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
