//! T2T-ViT against two references (fixtures from scripts/make_t2t_fixtures.py): vit-pytorch's
//! `T2TViT` (pip-installable, independent) on the configuration both can express (one soft
//! split, no token transformer), and the official repository's `T2T_ViT` with its three soft
//! splits and two token layers of either kind (transformer: `t2t_vit_t_*`; Performer:
//! `t2t_vit_*`). Also: the official key names on save, the fixed sinusoidal position embedding
//! and random-feature projection, parameter counts against the paper and the official code,
//! the fast engine on the Performer without a fallback, the eval preprocessing, and the
//! fixed-input-size error.

use crate::common;

use common::{check_fixture, fixture, read_tensor};
use kestrel_models::burn::prelude::*;
use kestrel_models::t2t::{T2tConfig, TokenLayer};
use kestrel_models::weights::{load_weights, save_safetensors, LoadOptions};
use kestrel_models::Model;

use common::{
    t2t_official_config as official_config, t2t_vit_pytorch_config as vit_pytorch_config,
};

fn build(cfg: T2tConfig) -> Model {
    Model::T2tVit(cfg.init(10, 3, &Device::flex()))
}

#[test]
fn t2t_vit_matches_vit_pytorch() {
    check_fixture("t2t_vit_vitpytorch_tiny", build(vit_pytorch_config()));
}

#[test]
fn t2t_vit_token_transformers_match_the_official_code() {
    check_fixture("t2t_vit_t_official_tiny", build(official_config()));
}

#[test]
fn t2t_vit_performer_token_layers_match_the_official_code() {
    check_fixture(
        "t2t_vit_official_tiny",
        build(official_config().performer()),
    );
}

#[test]
fn t2t_vit_performer_takes_the_fast_engine_without_a_fallback() {
    // The Performer's random-feature attention is an engine op: a fast request runs on the
    // engine, with no fallback notice, and gives the official logits.
    let dir = fixture("t2t_vit_official_tiny");
    let model = common::load_fixture_weights(
        build(official_config().performer()),
        &dir,
        "weights.safetensors",
    );
    let (runner, notice) =
        kestrel_deploy::Runner::new(model, 3, &Device::flex(), kestrel_deploy::EngineKind::Fast);
    assert_eq!(notice, None);
    assert_eq!(runner.name(), "fast");
    let logits = runner
        .forward(common::input_tensor(&dir, &Device::flex()))
        .unwrap();
    common::assert_logits_match(logits, &dir);
}

#[test]
fn t2t_vit_performer_projection_is_orthogonal_with_rows_of_norm_sqrt_m() {
    // The official init: nn.init.orthogonal_(randn(m, d)) * sqrt(m), so w·wᵀ = m·I. The default
    // token_dim 64 gives m = 32 random features of 64 dimensions.
    let Model::T2tVit(m) = build(T2tConfig::t2t_vit_14()) else {
        unreachable!()
    };
    for layer in [&m.tokens_to_token.attention1, &m.tokens_to_token.attention2] {
        let Some(TokenLayer::Performer(p)) = layer else {
            panic!("t2t_vit_14 has Performer token layers")
        };
        assert_eq!(p.w.dims(), [32, 64]);
        let w: Vec<f32> = p.w.val().into_data().try_to_vec().unwrap();
        for i in 0..32 {
            for j in 0..32 {
                let dot: f32 = (0..64).map(|c| w[i * 64 + c] * w[j * 64 + c]).sum();
                let want = if i == j { 32.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-3, "row {i}·row {j} = {dot}");
            }
        }
    }
}

#[test]
fn t2t_vit_checkpoint_of_the_other_token_layers_is_a_clear_error() {
    // A t2t_vit_t_* (transformer) file into a Performer model names both layouts' keys.
    let dir = fixture("t2t_vit_t_official_tiny");
    let mut model = build(official_config().performer());
    let err = load_weights(
        &mut model,
        &dir.join("weights.safetensors"),
        &LoadOptions::default(),
    )
    .expect_err("transformer token layers into a Performer model")
    .to_string();
    assert!(
        err.contains("tokens_to_token.attention1.kqv.weight")
            && err.contains("tokens_to_token.attention1.attn.qkv.weight"),
        "{err}"
    );
}

#[test]
fn t2t_vit_saves_with_the_official_names() {
    for (name, cfg) in [
        ("t2t_vit_vitpytorch_tiny", vit_pytorch_config()),
        ("t2t_vit_t_official_tiny", official_config()),
        ("t2t_vit_official_tiny", official_config().performer()),
    ] {
        let dir = fixture(name);
        let model = common::load_fixture_weights(build(cfg), &dir, "weights.safetensors");
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("w.safetensors");
        save_safetensors(&model, &out).unwrap();
        assert_eq!(
            common::weight_names(&out),
            common::weight_names(&dir.join("weights.safetensors")),
            "{name}"
        );
    }
}

#[test]
fn sinusoidal_pos_embed_is_the_official_one() {
    // The official model's pos_embed (get_sinusoid_encoding, a frozen parameter) as saved in
    // its state_dict, against a freshly built model's.
    let (shape, reference) = read_tensor(
        &fixture("t2t_vit_t_official_tiny").join("weights.safetensors"),
        "pos_embed",
    );
    assert_eq!(shape, [1, 17, 32]);
    let Model::T2tVit(m) = build(official_config()) else {
        unreachable!()
    };
    let ours: Vec<f32> = m.pos_embed.val().into_data().try_to_vec().unwrap();
    let err = ours
        .iter()
        .zip(&reference)
        .fold(0f32, |e, (a, b)| e.max((a - b).abs()));
    assert!(err < 1e-6, "max abs difference {err}");
}

#[test]
fn t2t_vit_params_equal_the_paper_and_the_official_code() {
    // Yuan et al. 2021, Table 2: 21.5 M, 39.2 M, 64.1 M; exactly, sum(p.numel()) of the
    // official T2T_ViT(tokens_type='performer' / 'transformer') (make_t2t_fixtures.py
    // --t2t-repo), which counts the frozen sinusoidal pos_embed (and the Performer's frozen `w`)
    // as the paper does.
    for (name, paper_m, official, performer) in [
        ("t2t_vit_14", 21.5, 21_545_550, true),
        ("t2t_vit_19", 39.2, 39_177_422, true),
        ("t2t_vit_24", 64.1, 64_105_934, true),
        ("t2t_vit_t_14", 21.5, 21_541_070, false),
        ("t2t_vit_t_19", 39.2, 39_172_942, false),
        ("t2t_vit_t_24", 64.1, 64_101_454, false),
    ] {
        let spec = kestrel_models::find(name).unwrap();
        assert_eq!(spec.name, name, "{name} is its own model, not an alias");
        let model = spec.build(&spec.default_options(), &Device::flex());
        let params = model.num_trainable_params();
        assert_eq!(params, official, "{name}");
        assert_eq!(
            (params as f64 / 1e5).round() / 10.0,
            paper_m,
            "{name} rounds to the paper's count"
        );
        let Model::T2tVit(m) = model else {
            unreachable!()
        };
        assert_eq!(
            matches!(m.tokens_to_token.attention1, Some(TokenLayer::Performer(_))),
            performer,
            "{name}'s token layers"
        );
    }
}

#[test]
fn t2t_vit_eval_preprocessing_is_the_official_cfg() {
    // models/t2t_vit.py `_cfg`: 224 px, crop 0.9, bicubic, ImageNet mean/std.
    let dc = kestrel_models::find("t2t_vit_19").unwrap().data_config();
    assert_eq!(dc.input_size, [3, 224, 224]);
    assert_eq!(dc.crop_pct, 0.9);
    assert_eq!(dc.interpolation, "bicubic");
    assert_eq!(dc.mean, kestrel_models::registry::IMAGENET_MEAN.to_vec());
    assert_eq!(dc.std, kestrel_models::registry::IMAGENET_STD.to_vec());
}

#[test]
fn t2t_vit_names_its_input_size_and_the_img_size_flag() {
    let model = build(official_config());
    let err = model
        .check_input([3, 48, 48], &Device::flex())
        .expect_err("48 px into a 64 px model")
        .to_string();
    assert!(err.contains("64×64") && err.contains("--img-size"), "{err}");
    model.check_input([3, 64, 64], &Device::flex()).unwrap();
}
