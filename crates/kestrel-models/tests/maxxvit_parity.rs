//! CoAtNet and MaxViT logits against timm on shrunk models (fixtures from
//! scripts/make_model_fixtures.py: 64 px, widths 8/16/16/32, 8-wide heads, 10 classes, norms
//! and biases perturbed), the fixed-input-size error, and params/MACs/preprocessing of the
//! registered names against timm.

use crate::common;

use common::{check_fixture, logit_errors};
use kestrel_models::burn::prelude::*;
use kestrel_models::layers::count_macs;
use kestrel_models::layers::pos_embed_rel::RelPosKind;
use kestrel_models::maxxvit::MaxxVitConfig;
use kestrel_models::Model;

/// The fixtures' timm kwargs (`_MAXX` in scripts/make_model_fixtures.py).
fn shrunk(cfg: MaxxVitConfig, depths: [usize; 4]) -> MaxxVitConfig {
    let mut cfg = MaxxVitConfig {
        embed_dim: vec![8, 16, 16, 32],
        depths: depths.to_vec(),
        stem_width: [8, 8],
        ..cfg.with_img_size(64)
    };
    cfg.transformer.dim_head = 8;
    cfg
}

fn model(cfg: MaxxVitConfig) -> Model {
    Model::MaxxVit(cfg.init(10, 3, &Device::flex()))
}

#[test]
fn coatnet_0_rw_matches_timm() {
    // Pooled stride, activated pre-norm, early ReLU SE, bias-free shortcuts; stage 2 has a
    // stride-2 and a stride-1 transformer block.
    let cfg = shrunk(MaxxVitConfig::coatnet_0_rw(), [1, 1, 2, 1]);
    check_fixture("coatnet_0_rw_224_tiny", model(cfg));
}

#[test]
fn coatnet_pico_rw_matches_timm() {
    // Depthwise stride, late SiLU SE, biased 1×1 outputs.
    let cfg = shrunk(MaxxVitConfig::coatnet_pico_rw(), [1, 1, 2, 1]);
    check_fixture("coatnet_pico_rw_224_tiny", model(cfg));
}

#[test]
fn coatnet_nano_rw_matches_timm() {
    // Pico's blocks with pooled strides.
    let cfg = shrunk(MaxxVitConfig::coatnet_nano_rw(), [1, 1, 2, 1]);
    check_fixture("coatnet_nano_rw_224_tiny", model(cfg));
}

#[test]
fn maxvit_pico_rw_matches_timm() {
    // Shrunk to the same widths as nano: checks pico's own block settings against timm's.
    let cfg = shrunk(MaxxVitConfig::maxvit_pico_rw(), [1, 1, 1, 1]);
    check_fixture("maxvit_pico_rw_256_tiny", model(cfg));
}

#[test]
fn maxvit_nano_rw_matches_timm() {
    let cfg = shrunk(MaxxVitConfig::maxvit_nano_rw(), [1, 1, 1, 1]);
    check_fixture("maxvit_nano_rw_256_tiny", model(cfg));
}

#[test]
fn maxvit_rmlp_pico_rw_matches_timm() {
    let mut cfg = shrunk(MaxxVitConfig::maxvit_rmlp_pico_rw(), [1, 1, 1, 1]);
    cfg.transformer.rel_pos = RelPosKind::Mlp(16);
    check_fixture("maxvit_rmlp_pico_rw_256_tiny", model(cfg));
}

#[test]
fn maxvit_tiny_tf_matches_timm() {
    // SAME padding, tanh GELU, BN eps 1e-3, TF bias table, interleaved qkv, norm + MLP head.
    let cfg = MaxxVitConfig {
        head_hidden_size: Some(32),
        ..shrunk(MaxxVitConfig::maxvit_tiny_tf(), [1, 1, 1, 1])
    };
    check_fixture("maxvit_tiny_tf_224_tiny", model(cfg));
}

#[test]
fn a_wrong_head_layout_fails_parity() {
    // The fixtures can tell timm's two qkv channel orders apart.
    let mut cfg = shrunk(MaxxVitConfig::maxvit_nano_rw(), [1, 1, 1, 1]);
    cfg.transformer.head_first = false;
    let dir = common::fixture("maxvit_nano_rw_256_tiny");
    let m = common::load_fixture_weights(model(cfg), &dir, "weights.safetensors");
    let (err, scale) = logit_errors(m.forward(common::input_tensor(&dir, &Device::flex())), &dir);
    assert!(err > 1e-2 * scale, "error {err} vs max|logit| {scale}");
}

#[test]
fn another_input_size_names_the_expected_size_and_img_size() {
    let device = Device::flex();
    let m = model(shrunk(MaxxVitConfig::maxvit_nano_rw(), [1, 1, 1, 1]));
    let err = m.check_input([3, 96, 96], &device).unwrap_err().to_string();
    assert!(err.contains("64×64") && err.contains("--img-size"), "{err}");
    m.check_input([3, 64, 64], &device).unwrap();
}

#[test]
fn maxxvit_params_and_preprocessing_match_timm() {
    // sum(p.numel()) and pretrained_cfg of the default tag, timm 1.0.31.
    let half = [0.5f32; 3];
    let inet = kestrel_models::registry::IMAGENET_MEAN;
    for (name, params, size, crop, mean) in [
        ("coatnet_0_rw_224", 27_435_562, 224, 0.95, half),
        ("coatnet_nano_rw_224", 15_141_244, 224, 0.9, half),
        ("coatnet_pico_rw_224", 10_851_364, 224, 0.95, half),
        ("maxvit_tiny_tf_224", 30_916_528, 224, 0.95, inet),
        ("maxvit_nano_rw_256", 15_451_148, 256, 0.95, half),
        ("maxvit_pico_rw_256", 7_457_996, 256, 0.95, half),
        ("maxvit_rmlp_pico_rw_256", 7_515_980, 256, 0.95, half),
    ] {
        let spec = kestrel_models::find(name).unwrap();
        let m = spec.build(&spec.default_options(), &Device::flex());
        assert_eq!(m.num_trainable_params(), params, "{name} params");
        let dc = spec.data_config();
        assert_eq!(dc.input_size, [3, size, size], "{name}");
        assert_eq!(dc.crop_pct, crop, "{name}");
        assert_eq!(dc.interpolation, "bicubic", "{name}");
        assert_eq!(dc.mean, mean.to_vec(), "{name}");
    }
}

#[test]
fn maxxvit_macs_match_timm() {
    // Reference: scripts/transformer_macs.py (conv and linear hooks plus the attention matmuls of
    // every Attention2d / AttentionCl), at timm's default input size; the smallest two names.
    for (name, macs_ref) in [
        ("coatnet_pico_rw_224", 2_028_459_520u64),
        ("maxvit_pico_rw_256", 1_802_452_992),
    ] {
        let spec = kestrel_models::find(name).unwrap();
        let m = spec.build(&spec.default_options(), &Device::flex());
        let [c, h, w] = spec.data_config().input_size;
        let (_, macs) = count_macs(|| m.forward(Tensor::zeros([1, c, h, w], &Device::flex())));
        assert_eq!(macs, macs_ref, "{name} MACs");
    }
}
