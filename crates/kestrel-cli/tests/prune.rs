//! `kestrel prune`: the run folders it writes, their round trip through `--checkpoint DIR`
//! (forward, a second pruning, `train --init-from`), and clear errors. The pruning numerics
//! (pruned = unpruned with the channels zeroed, hand counts) are kestrel-deploy's prune test.

use crate::common;

use std::path::Path;

use burn::prelude::*;
use common::{kestrel, read_json, s, solid_color_folder, tempdir, Lcg};
use kestrel_deploy::prune::{self, Importance};
use kestrel_models::weights::load_safetensors_bytes;
use kestrel_models::{BuildOptions, Model};

fn resnet8(classes: usize) -> Model {
    let spec = kestrel_models::find("resnet8_cifar").unwrap();
    let opts = BuildOptions {
        num_classes: classes,
        ..spec.default_options()
    };
    spec.build(&opts, &Device::flex())
}

/// resnet8_cifar (3 classes) with seeded weights and BN statistics, written to `path`.
fn seeded_weights(path: &Path) -> Model {
    let mut state = prune::state_dict(&resnet8(3)).unwrap();
    let mut rng = Lcg::new(5);
    for (name, (_, v)) in state.iter_mut() {
        for x in v.iter_mut() {
            let r = (rng.next_u32() % 2001) as f32 / 1000.0 - 1.0;
            *x = if name.ends_with("running_var") {
                0.5 + r.abs()
            } else {
                0.3 * r
            };
        }
    }
    let bytes = prune::state_dict_bytes(&state, None);
    std::fs::write(path, &bytes).unwrap();
    let mut m = resnet8(3);
    load_safetensors_bytes(&mut m, bytes, path).unwrap();
    m
}

fn logits(model: &Model, x: &[f32]) -> Vec<f32> {
    use burn::module::Module;
    let x = Tensor::from_data(TensorData::new(x.to_vec(), [2, 3, 32, 32]), &Device::flex());
    model
        .clone()
        .valid()
        .forward(x)
        .into_data()
        .try_to_vec()
        .unwrap()
}

fn forward(dir: &Path, x: &Path, y: &Path) -> Vec<f32> {
    kestrel([
        "forward",
        "--checkpoint",
        s(dir),
        "--input",
        s(x),
        "--output",
        s(y),
    ])
    .ok();
    let (shape, v) = common::read_tensor(y, "logits");
    assert_eq!(shape, vec![2, 3]);
    v
}

fn assert_close(a: &[f32], b: &[f32], what: &str) {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    assert!(
        diff <= 1e-4 * scale,
        "{what}: max diff {diff}, max |logit| {scale}"
    );
}

#[test]
fn pruned_folders_round_trip_through_checkpoint_commands_and_fine_tune() {
    let tmp = tempdir();
    let w = tmp.path().join("w.safetensors");
    let model = seeded_weights(&w);
    let x = tmp.path().join("x.safetensors");
    common::write_tensor(&x, "input", &[2, 3, 32, 32]);
    let (_, xv) = common::read_tensor(&x, "input");
    let y = tmp.path().join("y.safetensors");

    // Channel pruning of a registry model + weights file.
    let chan = tmp.path().join("chan");
    kestrel([
        "prune",
        "--model",
        "resnet8_cifar",
        "--weights",
        s(&w),
        "--num-classes",
        "3",
        "--method",
        "channel",
        "--amount",
        "0.5",
        "--output",
        s(&chan),
    ])
    .ok();
    let report = read_json(&chan.join("prune_report.json"));
    // Hand counts (see kestrel-deploy's prune test), with a 3-class fc: 78,042 - 7·65 and
    // 19,954 - 7·33.
    assert_eq!(report["params_before"], 78_042 - 7 * 65);
    assert_eq!(report["params_after"], 19_954 - 7 * 33);
    assert_eq!(report["macs_before"], 12_501_632 - 7 * 64);
    assert_eq!(report["macs_after"], 3_236_160 - 7 * 32);
    assert!(chan.join("pruned_channels.json").is_file());
    // What the library prunes, run by `forward --checkpoint` from the files.
    let lib = prune::prune_channels(&model, "resnet8_cifar", 3, 0.5, Importance::L1).unwrap();
    let mut small =
        prune::apply_channel_counts(resnet8(3), "resnet8_cifar", 3, &lib.counts, &Device::flex())
            .unwrap();
    load_safetensors_bytes(&mut small, prune::state_dict_bytes(&lib.state, None), &w).unwrap();
    let want = logits(&small, &xv);
    assert_close(&forward(&chan, &x, &y), &want, "channel-pruned folder");

    // Magnitude pruning of that folder: sparse file, smaller, channel counts carried over.
    let l1 = tmp.path().join("l1");
    kestrel([
        "prune",
        "--checkpoint",
        s(&chan),
        "--method",
        "l1",
        "--amount",
        "0.6",
        "--output",
        s(&l1),
    ])
    .ok();
    let report = read_json(&l1.join("prune_report.json"));
    assert_eq!(report["weights_file"], "model.sparse.safetensors");
    let sparse = report["file_bytes"].as_u64().unwrap();
    let dense = std::fs::metadata(chan.join("model.safetensors"))
        .unwrap()
        .len();
    assert!((sparse as f64) < 0.6 * dense as f64, "{sparse} vs {dense}");
    assert!(report["weight_sparsity"].as_f64().unwrap() >= 0.59);
    assert_eq!(
        std::fs::read_to_string(l1.join("pruned_channels.json")).unwrap(),
        std::fs::read_to_string(chan.join("pruned_channels.json")).unwrap()
    );
    let sparse_lib = prune::prune_l1(&small, 0.6).unwrap();
    let mut zeroed = small.clone();
    load_safetensors_bytes(
        &mut zeroed,
        prune::state_dict_bytes(&sparse_lib.state, None),
        &w,
    )
    .unwrap();
    assert_close(
        &forward(&l1, &x, &y),
        &logits(&zeroed, &xv),
        "l1-pruned folder",
    );

    // Fine-tuning the channel-pruned folder keeps its architecture.
    let data = tmp.path().join("colors");
    solid_color_folder(&data, 4, 3);
    let tuned = tmp.path().join("tuned");
    kestrel([
        "train",
        "--init-from",
        s(&chan),
        "--data",
        s(&data),
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--quiet",
        "--out",
        s(&tuned),
    ])
    .ok();
    assert_eq!(
        std::fs::read_to_string(tuned.join("pruned_channels.json")).unwrap(),
        std::fs::read_to_string(chan.join("pruned_channels.json")).unwrap()
    );
    let v = forward(&tuned, &x, &y);
    assert!(v.iter().all(|x| x.is_finite()));
    // A run of another model cannot start from it.
    kestrel([
        "train",
        "--init-from",
        s(&chan),
        "--model",
        "resnet20_cifar",
        "--data",
        s(&data),
        "--epochs",
        "1",
        "--out",
        s(&tmp.path().join("other")),
    ])
    .fails_cleanly_naming(&["--init-from", "resnet8_cifar", "resnet20_cifar"]);
}

#[test]
fn prune_bad_input_is_a_clear_error() {
    let tmp = tempdir();
    let out = tmp.path().join("p");
    for amount in ["0", "1", "1.5", "-0.3"] {
        kestrel([
            "prune",
            "--model",
            "resnet8_cifar",
            "--method",
            "l1",
            "--amount",
            amount,
            "--output",
            s(&out),
        ])
        .fails_cleanly_naming(&["--amount", amount]);
    }
    kestrel([
        "prune",
        "--model",
        "lenet5",
        "--method",
        "channel",
        "--amount",
        "0.3",
        "--output",
        s(&out),
    ])
    .fails_cleanly_naming(&["lenet5", "--method l1"]);
}
