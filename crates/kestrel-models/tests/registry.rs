//! Parameter and MAC counts against independent references.

use kestrel_models::burn::prelude::*;
use kestrel_models::layers::count_macs;

fn build(name: &str) -> (kestrel_models::Model, [usize; 3]) {
    let spec = kestrel_models::find(name).unwrap();
    (
        spec.build(&spec.default_options(), &Device::flex()),
        spec.data_config().input_size,
    )
}

#[test]
fn lenet5_macs_and_params_match_the_hand_count() {
    let (model, [c, h, w]) = build("lenet5");
    // conv1 6·28·28·(1·5·5) + conv2 16·10·10·(6·25) + conv3 120·(16·25) + fc 120·84 + 84·10
    let expected_macs = 117_600 + 240_000 + 48_000 + 10_080 + 840;
    let (_, macs) = count_macs(|| model.forward(Tensor::zeros([1, c, h, w], &Device::flex())));
    assert_eq!(macs, expected_macs);
    // weights + biases: 156 + 2,416 + 48,120 + 10,164 + 850
    assert_eq!(model.num_trainable_params(), 61_706);
}

#[test]
fn resnet18_macs_and_params_match_timm() {
    // Reference: timm resnet18, forward hooks summing conv and linear MACs at 1×3×224×224, and
    // sum(p.numel() for p in model.parameters()).
    let (model, [c, h, w]) = build("resnet18");
    let (_, macs) = count_macs(|| model.forward(Tensor::zeros([1, c, h, w], &Device::flex())));
    assert_eq!(macs, 1_814_073_344);
    assert_eq!(model.num_trainable_params(), 11_689_512);
}

#[test]
fn unknown_model_error_suggests_names() {
    let err = kestrel_models::find("resnet19").err().unwrap().to_string();
    assert!(
        err.contains("resnet19") && err.contains("resnet18"),
        "{err}"
    );
}

/// The registry is merged from several family files: no name or alias may be claimed twice,
/// and every entry must be found under its own name.
#[test]
fn registry_names_and_aliases_are_unique() {
    let mut seen = std::collections::HashSet::new();
    for spec in kestrel_models::REGISTRY {
        for name in std::iter::once(&spec.name).chain(spec.aliases) {
            assert!(seen.insert(*name), "{name} registered twice");
            assert_eq!(
                *name,
                name.to_ascii_lowercase(),
                "find() lower-cases its input"
            );
        }
        assert_eq!(kestrel_models::find(spec.name).unwrap().name, spec.name);
    }
}
