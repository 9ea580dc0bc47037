//! Full-size parity (developer-only, `#[ignore]`d): for every registered model with a fixture
//! under `<repo>/.parity/<name>/` or, for torchvision's models, `.parity/tv_<name>/` (written by
//! scripts/check_parity_full.py), the default variant's logits must match timm's/torchvision's
//! within 1e-4 × max|logit|. Models without a fixture are skipped.
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
            let (err, scale) = logit_errors(logits.clone(), &dir);
            eprintln!(
                "{folder:24} ({}) max|err| {err:.3e}  max|logit| {scale:.3e}  ratio {:.3e}",
                spec.name,
                err / scale
            );
            assert_logits_match(logits, &dir);
            checked += 1;
        }
    }
    eprintln!("{checked} full-size models checked");
}
