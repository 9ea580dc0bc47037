//! `kestrel export`: a file onnx tools can read (structure checked here; numerics against
//! onnxruntime in kestrel-deploy's onnx_export test), and clear errors for bad input.

use crate::common;

use common::{kestrel, s, tempdir};

#[test]
fn export_writes_an_onnx_file_with_the_model_preprocessing() {
    let tmp = tempdir();
    let out = tmp.path().join("lenet5.onnx");
    kestrel(["export", "--model", "lenet5", "--output", s(&out)]).ok();
    let model = kestrel_deploy::onnx::decode(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(model.opset_import[0].version, 17);
    let g = model.graph.unwrap();
    assert_eq!(g.input[0].name, "input");
    assert_eq!(g.output[0].name, "logits");
    let keys: Vec<&str> = model
        .metadata_props
        .iter()
        .map(|e| e.key.as_str())
        .collect();
    for k in [
        "mean",
        "std",
        "crop_pct",
        "interpolation",
        "input_size",
        "num_classes",
    ] {
        assert!(keys.contains(&k), "metadata has no {k}: {keys:?}");
    }
}

#[test]
fn export_bad_input_fails_cleanly() {
    let tmp = tempdir();
    let out = tmp.path().join("m.onnx");
    kestrel(["export", "--model", "no_such_model", "--output", s(&out)])
        .fails_cleanly_naming(&["no_such_model"]);
    let missing = tmp.path().join("missing.safetensors");
    kestrel([
        "export",
        "--model",
        "lenet5",
        "--weights",
        s(&missing),
        "--output",
        s(&out),
    ])
    .fails_cleanly_naming(&[s(&missing)]);
    let unwritable = tmp.path().join("no-such-dir").join("m.onnx");
    kestrel(["export", "--model", "lenet5", "--output", s(&unwritable)])
        .fails_cleanly_naming(&["--output", s(&unwritable)]);
    // A family the lowering does not cover: an error naming it, and no file.
    kestrel([
        "export",
        "--model",
        "shufflenet_v2_x0_5",
        "--output",
        s(&out),
    ])
    .fails_cleanly_naming(&["ShuffleNetV2"]);
    assert!(!out.exists());
}
