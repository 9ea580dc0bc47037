//! T2T-ViT against two references (fixtures from scripts/make_t2t_fixtures.py): vit-pytorch's
//! `T2TViT` (pip-installable, independent) on the configuration both can express (one soft
//! split, no token transformer), and the official repository's `T2T_ViT` with its three soft
//! splits and two token transformers. Also: the official key names on save, the fixed
//! sinusoidal position embedding, parameter counts against the paper and the official code, the
//! eval preprocessing, and the fixed-input-size error.

use crate::common;

use common::{check_fixture, fixture, read_tensor};
use kestrel_models::burn::prelude::*;
use kestrel_models::t2t::T2tConfig;
use kestrel_models::weights::save_safetensors;
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
fn t2t_vit_saves_with_the_official_names() {
    for (name, cfg) in [
        ("t2t_vit_vitpytorch_tiny", vit_pytorch_config()),
        ("t2t_vit_t_official_tiny", official_config()),
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
    // official T2T_ViT(tokens_type='transformer') (make_t2t_fixtures.py --t2t-repo), which counts
    // the frozen sinusoidal pos_embed as the paper does.
    for (name, paper_m, official) in [
        ("t2t_vit_14", 21.5, 21_541_070),
        ("t2t_vit_19", 39.2, 39_172_942),
        ("t2t_vit_24", 64.1, 64_101_454),
    ] {
        let spec = kestrel_models::find(name).unwrap();
        let params = spec
            .build(&spec.default_options(), &Device::flex())
            .num_trainable_params();
        assert_eq!(params, official, "{name}");
        assert_eq!(
            (params as f64 / 1e5).round() / 10.0,
            paper_m,
            "{name} rounds to the paper's count"
        );
    }
    // The official repository's name of the transformer-token variant finds the same model.
    assert_eq!(
        kestrel_models::find("t2t_vit_t_14").unwrap().name,
        "t2t_vit_14"
    );
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
