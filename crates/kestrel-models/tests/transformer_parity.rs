//! ViT, DeiT and Swin logits against timm on shrunk models (fixtures from
//! scripts/make_model_fixtures.py: 32 px inputs, 10 classes, norms, layer scales and biases
//! perturbed so that every branch reaches the logits). Also: position-embedding resampling at
//! load time, Swin checkpoints that carry the rebuilt buffers, the fixed-input-size error, and
//! that the fast engine runs them (checked in every fixture) and rejects another input size.

use crate::common;

use common::{assert_logits_match, check_fixture, fixture, input_tensor, read_tensor};
use kestrel_models::burn::prelude::*;
use kestrel_models::burn::tensor::{Distribution, TensorData};
use kestrel_models::vit::VitConfig;
use kestrel_models::weights::save_safetensors;
use kestrel_models::Model;

fn vit_tiny() -> VitConfig {
    common::vit_fixture_config()
}

fn vit(cfg: VitConfig) -> Model {
    Model::Vit(cfg.init(10, 3, &Device::flex()))
}

fn swin() -> Model {
    Model::Swin(common::swin_fixture_config().init(10, 3, &Device::flex()))
}

#[test]
fn vit_matches_timm() {
    check_fixture("vit_tiny_patch16_224_tiny", vit(vit_tiny()));
}

#[test]
fn vit_with_layer_scale_matches_timm() {
    let cfg = VitConfig {
        init_values: Some(0.1),
        ..vit_tiny()
    };
    check_fixture("vit_tiny_patch16_224_ls_tiny", vit(cfg));
}

#[test]
fn distilled_deit_averages_its_heads_as_timm() {
    let model = check_fixture(
        "deit_tiny_distilled_patch16_224_tiny",
        vit(vit_tiny().distilled()),
    );
    // Training sees both heads; their mean is the eval logits.
    let dir = fixture("deit_tiny_distilled_patch16_224_tiny");
    let (cls, dist) = model.forward_heads(input_tensor(&dir, &Device::flex()));
    let dist = dist.expect("a distilled DeiT has a distillation head");
    assert_logits_match((cls.clone() + dist.clone()) / 2.0, &dir);
    let gap: f32 = (cls - dist).abs().max().into_scalar();
    assert!(gap > 1e-3, "the two heads should differ (gap {gap})");
}

#[test]
fn swin_matches_timm() {
    check_fixture("swin_tiny_patch4_window7_224_tiny", swin());
}

#[test]
fn swin_checkpoint_with_index_and_mask_buffers_loads() {
    let dir = fixture("swin_tiny_patch4_window7_224_tiny");
    let file = dir.join("weights_with_buffers.safetensors");
    let names = common::weight_names(&file);
    assert!(names.iter().any(|n| n.ends_with("attn_mask")));
    assert!(names.iter().any(|n| n.ends_with("relative_position_index")));
    let model = common::load_fixture_weights(swin(), &dir, "weights_with_buffers.safetensors");
    assert_logits_match(model.forward(input_tensor(&dir, &Device::flex())), &dir);
}

#[test]
fn transformers_save_with_timm_names() {
    for (name, model) in [
        (
            "vit_tiny_patch16_224_ls_tiny",
            vit(VitConfig {
                init_values: Some(0.1),
                ..vit_tiny()
            }),
        ),
        (
            "deit_tiny_distilled_patch16_224_tiny",
            vit(vit_tiny().distilled()),
        ),
        ("swin_tiny_patch4_window7_224_tiny", swin()),
    ] {
        let dir = fixture(name);
        let model = common::load_fixture_weights(model, &dir, "weights.safetensors");
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
fn vit_resamples_pos_embed_of_another_grid_at_load_as_timm() {
    // The 32 px (4×4 grid) weights into a model built for 48 px (6×6): timm's
    // checkpoint_filter_fn resamples pos_embed bicubically, keeping the class token.
    let dir = fixture("vit_tiny_patch16_224_tiny");
    let model = common::load_fixture_weights(
        vit(vit_tiny().with_img_size(48)),
        &dir,
        "weights.safetensors",
    );
    let io = dir.join("io_48.safetensors");
    let (shape, x) = read_tensor(&io, "input");
    assert_eq!(shape, [2, 3, 48, 48]);
    let x = Tensor::<4>::from_data(TensorData::new(x, [2, 3, 48, 48]), &Device::flex());
    let (_, reference) = read_tensor(&io, "logits");
    let ours: Vec<f32> = model.forward(x).into_data().try_to_vec().unwrap();
    let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = ours
        .iter()
        .zip(&reference)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(err <= 1e-4 * scale, "error {err} vs bar {}", 1e-4 * scale);
}

#[test]
fn fixed_size_models_name_the_expected_size_and_img_size_flag() {
    let device = Device::flex();
    for model in [vit(vit_tiny()), swin()] {
        let err = model
            .check_input([3, 40, 40], &device)
            .expect_err("40 px into a 32 px model")
            .to_string();
        assert!(err.contains("32×32") && err.contains("--img-size"), "{err}");
        model.check_input([3, 32, 32], &device).unwrap();
    }
}

#[test]
fn fast_engine_rejects_another_input_size() {
    // ViT and Swin are lowered (their parity runs through the engine in check_fixture); an
    // input of another size is an error naming the size, not a wrong answer.
    let x = vec![0.1f32; 3 * 48 * 48];
    let engine = kestrel_deploy::lower(&vit(vit_tiny()), 3).expect("ViT lowers");
    let err = engine
        .run_nchw(&x, 1, 3, 48, 48)
        .expect_err("48 px into a 32 px ViT");
    assert!(
        err.contains("36 patches") && err.contains("has 16") && err.contains("image size"),
        "{err}"
    );
    assert!(engine.run_nchw(&x[..3 * 32 * 32], 1, 3, 32, 32).is_ok());
    let engine = kestrel_deploy::lower(&swin(), 3).expect("Swin lowers");
    let err = engine
        .run_nchw(&x, 1, 3, 48, 48)
        .expect_err("48 px into a 32 px Swin");
    assert!(
        err.contains("24×24 map") && err.contains("fit 16×16") && err.contains("image size"),
        "{err}"
    );
    assert!(engine.run_nchw(&x[..3 * 32 * 32], 1, 3, 32, 32).is_ok());
}

#[test]
fn pos_embed_resampling_keeps_prefix_and_is_identity_on_same_grid() {
    use kestrel_models::layers::pos_embed::resample_abs_pos_embed;
    let dim = 2;
    // A prefix token and a 2×2 grid with a constant channel 0 and a ramp in channel 1.
    let pe = vec![7.0, -7.0, 1.0, 0.0, 1.0, 1.0, 1.0, 2.0, 1.0, 3.0];
    assert_eq!(resample_abs_pos_embed(&pe, dim, [2, 2], [2, 2], 1), pe);
    let up = resample_abs_pos_embed(&pe, dim, [2, 2], [4, 4], 1);
    assert_eq!(up.len(), (1 + 16) * dim);
    assert_eq!(&up[..2], &[7.0, -7.0]);
    // Normalised weights keep a constant constant.
    for t in 1..17 {
        assert!((up[t * dim] - 1.0).abs() < 1e-6);
    }
}

#[test]
fn attention_dropout_and_drop_path_act_only_in_training() {
    let train = Device::flex().autodiff();
    let x = Tensor::<4>::random([2, 3, 32, 32], Distribution::Normal(0.0, 1.0), &train);
    for (what, cfg) in [
        (
            "attention dropout",
            VitConfig {
                attn_drop_rate: 0.5,
                ..vit_tiny()
            },
        ),
        (
            "drop-path",
            VitConfig {
                drop_path_rate: 0.5,
                ..vit_tiny()
            },
        ),
    ] {
        train.seed(3);
        let model = Model::Vit(cfg.init(10, 3, &train));
        let a = model.forward(x.clone());
        let b = model.forward(x.clone());
        let diff: f32 = (a - b).abs().max().into_scalar();
        assert!(diff > 1e-6, "{what} is not active in training");
        let eval = model.valid();
        let xe = x.clone().inner();
        let diff: f32 = (eval.forward(xe.clone()) - eval.forward(xe))
            .abs()
            .max()
            .into_scalar();
        assert_eq!(diff, 0.0, "{what} is active in eval");
    }
    let swin = Model::Swin(
        kestrel_models::swin::SwinConfig {
            attn_drop_rate: 0.5,
            drop_path_rate: 0.0,
            ..common::swin_fixture_config()
        }
        .init(10, 3, &train),
    );
    let diff: f32 = (swin.forward(x.clone()) - swin.forward(x))
        .abs()
        .max()
        .into_scalar();
    assert!(
        diff > 1e-6,
        "Swin attention dropout is not active in training"
    );
}
