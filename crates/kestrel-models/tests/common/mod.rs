//! Helpers for the parity tests: read the fixtures written by scripts/make_model_fixtures.py.
// Each test binary uses a subset of these helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use kestrel_models::burn::prelude::*;
use kestrel_models::burn::tensor::TensorData;
use kestrel_models::weights::{load_weights, LoadOptions};
use kestrel_models::Model;

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Reads a float32 tensor by name from a safetensors file: (shape, values).
pub fn read_tensor(path: &Path, name: &str) -> (Vec<usize>, Vec<f32>) {
    kestrel_models::tensor_file::read_f32(path, name).unwrap_or_else(|e| panic!("{e}"))
}

pub fn input_tensor(fixture_dir: &Path, device: &Device) -> Tensor<4> {
    let (shape, data) = read_tensor(&fixture_dir.join("io.safetensors"), "input");
    Tensor::from_data(
        TensorData::new(data, [shape[0], shape[1], shape[2], shape[3]]),
        device,
    )
}

/// The reference logits: the float64 evaluation of the model when the fixture has one
/// (`reference_fp64.safetensors`, written for full-size models by scripts/check_parity_full.py,
/// because PyTorch's own float32 logits of the deepest nets drift from it by more than the bar),
/// else the fixture's float32 `logits`.
pub fn reference_logits(fixture_dir: &Path) -> Vec<f32> {
    let fp64 = fixture_dir.join("reference_fp64.safetensors");
    let file = if fp64.exists() {
        fp64
    } else {
        fixture_dir.join("io.safetensors")
    };
    read_tensor(&file, "logits").1
}

/// (max |ours − reference|, max |reference|) against [`reference_logits`].
pub fn logit_errors(ours: Tensor<2>, fixture_dir: &Path) -> (f32, f32) {
    let reference = reference_logits(fixture_dir);
    let ours: Vec<f32> = ours.into_data().try_to_vec::<f32>().unwrap();
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = ours
        .iter()
        .zip(&reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    (err, scale)
}

/// Asserts max |ours − reference| ≤ 1e-4 · max |reference|, the parity bar.
pub fn assert_logits_match(ours: Tensor<2>, fixture_dir: &Path) {
    let (shape, _) = read_tensor(&fixture_dir.join("io.safetensors"), "logits");
    assert_eq!(ours.dims().to_vec(), shape, "logit shape");
    let (err, scale) = logit_errors(ours, fixture_dir);
    assert!(
        err <= 1e-4 * scale,
        "max abs error {err} exceeds 1e-4 x max|logit| = {}",
        1e-4 * scale
    );
}

/// Loads `dir/file` into `model` with the default options.
pub fn load_fixture_weights(mut model: Model, dir: &Path, file: &str) -> Model {
    let path = dir.join(file);
    load_weights(&mut model, &path, &LoadOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    model
}

/// Loads fixture `name`'s `weights.safetensors` into `model` and asserts that its logits on the
/// fixture's input match the reference, through burn and through the fast engine. Returns the
/// loaded model.
pub fn check_fixture(name: &str, model: Model) -> Model {
    let dir = fixture(name);
    let model = load_fixture_weights(model, &dir, "weights.safetensors");
    assert_logits_match(model.forward(input_tensor(&dir, &Device::flex())), &dir);
    assert_fast_engine_matches(&model, &dir);
    model
}

/// Families the fast engine lowers; for these a lowering failure is a test failure, except for
/// the fixtures in [`FAST_NOT_YET`].
const FAST_FAMILIES: &[&str] = &[
    "ResNet",
    "MobileNet",
    "EfficientNet",
    "ConvNeXt",
    "RegNet",
    "Vgg",
    "AlexNet",
    "LeNet5",
    "Vit",
    "Swin",
    "MaxxVit",
    "T2tVit",
];
/// The fixtures of blocks the fast engine does not lower yet (none now: every fixture of a
/// family in [`FAST_FAMILIES`] runs on the engine too).
const FAST_NOT_YET: &[&str] = &[];

/// Runs the fixture's input through kestrel-deploy's fast engine and asserts the same parity
/// bar as burn's path. Families the engine does not lower yet are skipped with a note.
pub fn assert_fast_engine_matches(model: &Model, dir: &Path) {
    let engine = match kestrel_deploy::lower(model, 3) {
        Ok(e) => e,
        Err(why) => {
            let fixture_name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
            assert!(
                !FAST_FAMILIES.contains(&model.kind()) || FAST_NOT_YET.contains(&fixture_name),
                "{}: {why}",
                dir.display()
            );
            eprintln!("{}: fast engine skipped: {why}", dir.display());
            return;
        }
    };
    let (shape, x) = read_tensor(&dir.join("io.safetensors"), "input");
    let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3]);
    let logits = engine
        .run_nchw(&x, n, c, h, w)
        .unwrap_or_else(|e| panic!("{}: fast engine: {e}", dir.display()));
    let reference = reference_logits(dir);
    assert_eq!(logits.len(), reference.len(), "fast engine logit count");
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = logits
        .iter()
        .zip(&reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        err <= 1e-4 * scale,
        "{}: fast engine max abs error {err} exceeds 1e-4 x max|logit| = {}",
        dir.display(),
        1e-4 * scale
    );
}

/// The tensor names of a safetensors file, sorted, without `num_batches_tracked` (a PyTorch
/// buffer kestrel does not keep): what "saved with timm's names" is checked against.
pub fn weight_names(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let mut names: Vec<String> = safetensors::SafeTensors::deserialize(&bytes)
        .unwrap()
        .names()
        .into_iter()
        .filter(|n| !n.ends_with("num_batches_tracked"))
        .map(|n| n.to_string())
        .collect();
    names.sort();
    names
}

/// The ViT/DeiT fixtures' timm kwargs (scripts/make_model_fixtures.py `_VIT`): img_size 32,
/// patch 8, width 32, depth 2, 4 heads.
pub fn vit_fixture_config() -> kestrel_models::vit::VitConfig {
    kestrel_models::vit::VitConfig::new(8, 32, 2, 4).with_img_size(32)
}

/// The Swin fixture's timm kwargs: img 32, patch 2, window 4, width 8, depths 2/2/2, heads
/// 2/2/4 (shifted, masked windows at 16 and 8 px; at 4 px the window covers the map).
pub fn swin_fixture_config() -> kestrel_models::swin::SwinConfig {
    kestrel_models::swin::SwinConfig {
        img_size: 32,
        patch_size: 2,
        window_size: 4,
        embed_dim: 8,
        depths: vec![2, 2, 2],
        num_heads: vec![2, 2, 4],
        ..kestrel_models::swin::SwinConfig::tiny()
    }
}

/// The ResNet-D / Wide ResNet fixtures' timm kwargs (scripts/make_model_fixtures.py `_RD`):
/// stages 4..32 wide, one block each, timm's `stem_width` (deep stems: the inner width; the 7×7
/// stem stays 64 wide in timm). 40 px inputs leave odd maps before the last two stages, so the
/// ceil-mode shortcut pools overhang.
pub fn resnet_d_fixture_config(
    base: kestrel_models::resnet::ResNetConfig,
    stem_width: usize,
) -> kestrel_models::resnet::ResNetConfig {
    kestrel_models::resnet::ResNetConfig {
        layers: vec![1, 1, 1, 1],
        widths: vec![4, 8, 16, 32],
        stem_width,
        ..base
    }
}

/// The four ResNet-D / Wide ResNet fixtures and their configurations.
pub fn resnet_d_fixtures() -> Vec<(&'static str, kestrel_models::resnet::ResNetConfig)> {
    use kestrel_models::resnet::ResNetConfig;
    vec![
        (
            "resnet18d_tiny",
            resnet_d_fixture_config(ResNetConfig::resnet18().resnet_d(), 8),
        ),
        (
            "resnet50d_tiny",
            resnet_d_fixture_config(ResNetConfig::resnet50().resnet_d(), 8),
        ),
        (
            "seresnext26t_32x4d_tiny",
            ResNetConfig {
                groups: 4,
                base_width: 16,
                attn: Some(kestrel_models::layers::channel_attention::AttnKind::Se),
                ..resnet_d_fixture_config(ResNetConfig::resnet26().resnet_t(), 8)
            },
        ),
        (
            "wide_resnet50_2_tiny",
            resnet_d_fixture_config(ResNetConfig::wide_resnet50_2(), 64),
        ),
    ]
}

/// The vit-pytorch T2T-ViT fixture (scripts/make_t2t_fixtures.py): `T2TViT(image_size=32,
/// dim=32, depth=2, heads=4, dim_head=8, mlp_dim=96, t2t_layers=((7, 4),))`, one 7×7/4 soft
/// split (padding 2) and no token transformer.
pub fn t2t_vit_pytorch_config() -> kestrel_models::t2t::T2tConfig {
    kestrel_models::t2t::T2tConfig {
        img_size: 32,
        soft_splits: vec![[7, 4, 2]],
        ..kestrel_models::t2t::T2tConfig::new(32, 2, 4, 3.0)
    }
}

/// The official T2T-ViT fixture `t2t_vit_t_official_tiny`: `T2T_ViT(img_size=64,
/// tokens_type='transformer', embed_dim=32, depth=2, num_heads=4, mlp_ratio=3, token_dim=8,
/// qk_scale=32^-0.5)`; [`kestrel_models::t2t::T2tConfig::performer`] of it is
/// `t2t_vit_official_tiny` (`tokens_type='performer'`).
pub fn t2t_official_config() -> kestrel_models::t2t::T2tConfig {
    kestrel_models::t2t::T2tConfig {
        img_size: 64,
        token_dim: 8,
        ..kestrel_models::t2t::T2tConfig::new(32, 2, 4, 3.0)
    }
    .pretrained_scale()
}
