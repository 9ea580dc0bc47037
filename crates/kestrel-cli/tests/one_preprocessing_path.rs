//! One preprocessing path: a checkpoint trained without a recipe is evaluated with its model's
//! data config, exactly as timm's eval transform, and `--checkpoint DIR` and `--model NAME`
//! give the model the same tensor.

use crate::common;

use std::path::{Path, PathBuf};

use common::{kestrel, read_tensor, s, solid_color_folder, tempdir};

/// timm's output for `in_china_large.png` under `transforms_imagenet_eval(224, crop_pct=0.95,
/// bicubic)`, before `ToTensor` (scripts/make_transform_fixtures.py, EVAL_CONFIGS[0]): the data
/// config of timm's `seresnet50` (default tag `a1_in1k`).
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../kestrel-data/tests/fixtures/tv")
        .join(name)
}

/// A committed timm `transforms_imagenet_eval` output (before `ToTensor`), normalised with
/// ImageNet's mean/std: out_275 is 224 px crop 0.95 bicubic, out_276 224 px crop 0.875 bilinear.
fn timm_eval_tensor(file: &str) -> Vec<f32> {
    let img = image::open(fixture(file)).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), (224, 224));
    let (mean, std) = ([0.485f32, 0.456, 0.406], [0.229f32, 0.224, 0.225]);
    let mut out = vec![0f32; 3 * 224 * 224];
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * 224 * 224 + i] = (f32::from(px[c]) / 255.0 - mean[c]) / std[c];
        }
    }
    out
}

fn preprocess(source: &[&str], image: &Path, out: &Path) -> (Vec<usize>, Vec<f32>) {
    let mut args = vec!["preprocess"];
    args.extend_from_slice(source);
    args.extend_from_slice(&[s(image), "--output", s(out)]);
    kestrel(args).ok();
    read_tensor(out, "input")
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

#[test]
fn checkpoint_without_recipe_preprocesses_as_timm_and_as_model_weights() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    // 16x16 images: the eval transform comes from the model's data config, not the run's images.
    solid_color_folder(&data, 2, 3);
    let run = tmp.path().join("run");
    kestrel([
        "train",
        "--data",
        s(&data),
        "--val-dir",
        s(&data),
        "--model",
        "seresnet50",
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--workers",
        "1",
        "--quiet",
        "--out",
        s(&run),
    ])
    .ok();

    let photo = fixture("in_china_large.png");
    let (shape, from_ckpt) = preprocess(
        &["--checkpoint", s(&run)],
        &photo,
        &tmp.path().join("ckpt.safetensors"),
    );
    assert_eq!(shape, [1, 3, 224, 224]);
    let timm = timm_eval_tensor("out_275_eval_image.png");
    let worst = max_diff(&from_ckpt, &timm);
    // The u8 images are equal (transforms_parity checks them pixel for pixel); what is left is
    // float rounding of ToTensor/Normalize.
    assert!(worst < 1e-5, "checkpoint vs timm eval: max |diff| {worst}");

    let (shape2, from_model) = preprocess(
        &["--model", "seresnet50"],
        &photo,
        &tmp.path().join("model.safetensors"),
    );
    assert_eq!(shape2, shape);
    assert!(
        from_ckpt == from_model,
        "--checkpoint and --model must give the same tensor"
    );
}

/// A bare timm name uses timm's default tag (resnet50.a1_in1k: crop 0.95, bicubic);
/// `NAME.TAG` and `tv:NAME` select torchvision's weights' config (crop 0.875, bilinear).
#[test]
fn pretrained_tags_select_timm_data_configs() {
    let tmp = tempdir();
    let photo = fixture("in_china_large.png");
    for (model, timm) in [
        ("resnet50", "out_275_eval_image.png"),
        ("resnet50.a1_in1k", "out_275_eval_image.png"),
        ("resnet50.tv_in1k", "out_276_eval_image.png"),
        ("tv:resnet50", "out_276_eval_image.png"),
    ] {
        let (shape, x) = preprocess(
            &["--model", model],
            &photo,
            &tmp.path().join("x.safetensors"),
        );
        assert_eq!(shape, [1, 3, 224, 224], "{model}");
        let worst = max_diff(&x, &timm_eval_tensor(timm));
        assert!(worst < 1e-5, "{model} vs timm ({timm}): max |diff| {worst}");
    }
    let out = tmp.path().join("bad.safetensors");
    kestrel([
        "preprocess",
        "--model",
        "resnet50.nosuchtag",
        s(&photo),
        "--output",
        s(&out),
    ])
    .fails_cleanly_naming(&["nosuchtag", "a1_in1k", "tv_in1k"]);
}

/// `kestrel preprocess --model vit_small_patch16_224` equals timm's eval transform for it
/// (224 px, crop 0.9, bicubic, mean = std = 0.5; scripts/make_vit_preprocess_fixture.py), and
/// `--img-size N` builds the model for N and preprocesses to N.
#[test]
fn vit_preprocess_equals_timm_eval_transform() {
    let tmp = tempdir();
    let photo = fixture("in_china_large.png");
    let out = tmp.path().join("x.safetensors");
    let (shape, x) = preprocess(&["--model", "vit_small_patch16_224"], &photo, &out);
    assert_eq!(shape, [1, 3, 224, 224]);
    let timm = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vit_small_eval.png");
    let img = image::open(timm).unwrap().to_rgb8();
    let mut reference = vec![0f32; 3 * 224 * 224];
    for (i, px) in img.pixels().enumerate() {
        for c in 0..3 {
            reference[c * 224 * 224 + i] = (f32::from(px[c]) / 255.0 - 0.5) / 0.5;
        }
    }
    let worst = max_diff(&x, &reference);
    assert!(
        worst < 1e-5,
        "vit_small_patch16_224 vs timm: max |diff| {worst}"
    );
    let (shape, _) = preprocess(
        &["--model", "vit_small_patch16_224", "--img-size", "96"],
        &photo,
        &out,
    );
    assert_eq!(shape, [1, 3, 96, 96]);
}
