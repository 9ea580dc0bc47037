//! `checkpoint.json` of every format kestrel has written still reads, or fails naming the file.

use kestrel_train::{Checkpoint, CheckpointMeta};

fn v1(extra: &str) -> String {
    format!(
        r#"{{"format": "kestrel-checkpoint-v1", "model": "lenet5", "num_classes": 3,
            "in_chans": 1, "class_names": ["a", "b", "c"], {extra}
            "train_config": {{}}, "epoch": 2, "val_accuracy": 0.5, "kestrel_version": "0.1.0"}}"#
    )
}

#[test]
fn v1_padded_preprocess_becomes_a_pad_data_config() {
    let json = v1(
        r#""preprocess": {"channels": 1, "resize": [28, 28], "pad": 2,
                   "mean": [0.1307], "std": [0.3081]},"#,
    );
    let meta: CheckpointMeta = serde_json::from_str(&json).unwrap();
    let dc = &meta.data_config;
    assert_eq!(dc.input_size, [1, 32, 32]);
    assert_eq!((dc.crop_mode.as_str(), dc.crop_pct), ("pad", 0.875));
    // A 28×28 digit is padded, as v1 did.
    let tf = meta.eval_transform().unwrap();
    let img = kestrel_data::Image::new(28, 28, 1, vec![255; 28 * 28]);
    let out = tf.apply_image(img).unwrap();
    assert_eq!((out.height, out.width), (32, 32));
    assert_eq!((out.data[33], out.data[2 * 32 + 2]), (0, 255));
}

#[test]
fn v1_unpadded_preprocess_squashes_and_broadcasts_mean() {
    let json = v1(r#""preprocess": {"channels": 3, "resize": [8, 8], "pad": 0,
                   "mean": [0.5], "std": [0.25]},"#);
    let meta: CheckpointMeta = serde_json::from_str(&json).unwrap();
    let dc = &meta.data_config;
    assert_eq!(dc.input_size, [3, 8, 8]);
    assert_eq!(dc.crop_mode, "squash");
    assert_eq!(
        (dc.mean.clone(), dc.std.clone()),
        (vec![0.5; 3], vec![0.25; 3])
    );
    let out = meta
        .eval_transform()
        .unwrap()
        .apply_image(kestrel_data::Image::zeros(20, 10, 3))
        .unwrap();
    assert_eq!((out.height, out.width), (8, 8));
}

#[test]
fn v1_recipe_run_keeps_the_recipe_eval_settings() {
    let json = v1(
        r#""preprocess": {"channels": 3, "resize": [16, 16], "pad": 0,
                   "mean": [0.5], "std": [0.5]},
                   "recipe": {"input_size": [3, 64, 64], "eval_crop_pct": 0.8,
                              "eval_interpolation": "bicubic"},"#,
    );
    let meta: CheckpointMeta = serde_json::from_str(&json).unwrap();
    let dc = &meta.data_config;
    assert_eq!(dc.input_size, [3, 64, 64]);
    assert_eq!((dc.crop_pct, dc.interpolation.as_str()), (0.8, "bicubic"));
}

#[test]
fn metadata_without_any_preprocessing_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkpoint.json");
    std::fs::write(&path, v1("")).unwrap();
    let err = Checkpoint::open(dir.path()).err().unwrap().to_string();
    assert!(
        err.contains("checkpoint.json") && err.contains("data_config"),
        "{err}"
    );
}
