//! `kestrel quantize`: the run folder it writes, the commands that run it through
//! `--checkpoint DIR`, and clear errors for bad input (numerics are kestrel-deploy's quant test).

use crate::common;

use common::{kestrel, read_json, s, solid_color_folder, tempdir};

#[test]
fn quantize_writes_a_run_folder_that_predict_and_forward_run() {
    let tmp = tempdir();
    let calib = tmp.path().join("calib");
    solid_color_folder(&calib, 3, 1);
    let out = tmp.path().join("q");
    kestrel([
        "quantize",
        "--model",
        "resnet20_cifar",
        "--calib",
        s(&calib),
        "--calib-images",
        "5",
        "--method",
        "percentile",
        "--output",
        s(&out),
    ])
    .ok();
    let report = read_json(&out.join("quantize_report.json"));
    assert_eq!(report["calib_images"], 5);
    assert_eq!(report["calib_files"].as_array().unwrap().len(), 5);
    assert_eq!(report["method"], "percentile");
    assert_eq!(report["bias_correction"], true);
    assert_eq!(report["rounding"], "gptq");
    // Every conv of resnet20_cifar is ungrouped; all but those with dot products under
    // --int8-min-depth's 32 run in int8: the RGB stem (3x3 over 3 channels: 27) and the first
    // downsampling shortcut (1x1 over 16 channels).
    assert_eq!(report["int8_min_depth"], 32);
    let short = report["fp32_convs"].as_array().unwrap();
    let names: Vec<&str> = short.iter().map(|c| c["conv"].as_str().unwrap()).collect();
    assert_eq!(names, ["3x3 3->16 /1", "1x1 16->32 /2"], "{short:?}");
    assert!(short
        .iter()
        .all(|c| c["reason"] == "short" && c["logit_error"].is_null()));
    assert_eq!(
        report["int8_convs"].as_u64().unwrap() + 2,
        report["convs"].as_u64().unwrap()
    );
    let int8 = report["int8_bytes"].as_u64().unwrap();
    let fp32 = report["fp32_graph_bytes"].as_u64().unwrap();
    assert!(fp32 as f64 / int8 as f64 > 3.5, "{fp32} / {int8}");
    assert_eq!(
        std::fs::metadata(out.join("model.int8.safetensors"))
            .unwrap()
            .len(),
        int8
    );

    let img = calib.join("red").join("000.png");
    let pred = kestrel(["predict", "--checkpoint", s(&out), s(&img), "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&pred.stdout).unwrap();
    assert_eq!(v[0]["top"].as_array().unwrap().len(), 5);

    let x = tmp.path().join("x.safetensors");
    common::write_tensor(&x, "input", &[2, 3, 32, 32]);
    let y = tmp.path().join("y.safetensors");
    kestrel([
        "forward",
        "--checkpoint",
        s(&out),
        "--input",
        s(&x),
        "--output",
        s(&y),
    ])
    .ok();
    let (shape, logits) = common::read_tensor(&y, "logits");
    assert_eq!(shape, vec![2, 10]);
    assert!(logits.iter().all(|v| v.is_finite()));

    // export writes QDQ ONNX: one QuantizeLinear per int8 conv (numerics: kestrel-deploy's
    // onnx_export tests against onnxruntime).
    let onnx = tmp.path().join("q.onnx");
    kestrel(["export", "--checkpoint", s(&out), "--output", s(&onnx)]).ok();
    let model = kestrel_deploy::onnx::decode(&std::fs::read(&onnx).unwrap()).unwrap();
    let quantize_nodes = model
        .graph
        .unwrap()
        .node
        .iter()
        .filter(|n| n.op_type == "QuantizeLinear")
        .count();
    assert_eq!(
        quantize_nodes as u64,
        report["int8_convs"].as_u64().unwrap()
    );

    // A run folder whose int8 file was made for another model names both.
    let meta_path = out.join("checkpoint.json");
    let meta = std::fs::read_to_string(&meta_path).unwrap();
    std::fs::write(
        &meta_path,
        meta.replace("\"resnet20_cifar\"", "\"resnet32_cifar\""),
    )
    .unwrap();
    kestrel(["predict", "--checkpoint", s(&out), s(&img)])
        .fails_cleanly_naming(&["resnet20_cifar", "resnet32_cifar"]);
}

#[test]
fn quantize_keep_fp32_lists_the_kept_convs_and_exports_them_unquantized() {
    let tmp = tempdir();
    let calib = tmp.path().join("calib");
    solid_color_folder(&calib, 3, 1);
    let out = tmp.path().join("q");
    kestrel([
        "quantize",
        "--model",
        "resnet20_cifar",
        "--calib",
        s(&calib),
        "--keep-fp32",
        "2",
        "--no-bias-correction",
        "--rounding",
        "nearest",
        "--int8-min-depth",
        "0",
        "--output",
        s(&out),
    ])
    .ok();
    let report = read_json(&out.join("quantize_report.json"));
    assert_eq!(report["bias_correction"], false);
    assert_eq!(report["rounding"], "nearest");
    let kept = report["fp32_convs"].as_array().unwrap();
    assert_eq!(kept.len(), 2);
    assert_eq!(
        report["int8_convs"].as_u64().unwrap() + 2,
        report["convs"].as_u64().unwrap()
    );
    // Most sensitive first; each names its op and geometry.
    assert!(kept.iter().all(|k| k["reason"] == "sensitive"), "{kept:?}");
    let err = |i: usize| kept[i]["logit_error"].as_f64().unwrap();
    assert!(err(0) >= err(1) && err(1) > 0.0, "{kept:?}");
    assert!(kept[0]["conv"].as_str().unwrap().contains("->"));
    assert_ne!(kept[0]["op"], kept[1]["op"]);
    // The kept convs get no QuantizeLinear in the QDQ export.
    let onnx = tmp.path().join("q.onnx");
    kestrel(["export", "--checkpoint", s(&out), "--output", s(&onnx)]).ok();
    let model = kestrel_deploy::onnx::decode(&std::fs::read(&onnx).unwrap()).unwrap();
    let quantize_nodes = model
        .graph
        .unwrap()
        .node
        .iter()
        .filter(|n| n.op_type == "QuantizeLinear")
        .count();
    assert_eq!(
        quantize_nodes as u64,
        report["int8_convs"].as_u64().unwrap()
    );
}

#[test]
fn quantize_bad_calibration_folder_is_named() {
    let tmp = tempdir();
    let empty = tmp.path().join("empty_calib");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), "not an image").unwrap();
    let out = tmp.path().join("q");
    kestrel([
        "quantize",
        "--model",
        "lenet5",
        "--calib",
        s(&empty),
        "--output",
        s(&out),
    ])
    .fails_cleanly_naming(&["empty_calib"]);
    let missing = tmp.path().join("no_such_calib");
    kestrel([
        "quantize",
        "--model",
        "lenet5",
        "--calib",
        s(&missing),
        "--output",
        s(&out),
    ])
    .fails_cleanly_naming(&["no_such_calib"]);
    // A usage error (clap's exit code 2) naming the value.
    let run = kestrel([
        "quantize",
        "--model",
        "lenet5",
        "--calib",
        s(&empty),
        "--method",
        "kmeans",
        "--output",
        s(&out),
    ]);
    assert!(!run.success() && run.transcript().contains("kmeans"));
}

/// The safetensors header of `path`: tensor name -> dtype.
fn safetensors_dtypes(path: &std::path::Path) -> std::collections::HashMap<String, String> {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    header
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(k, v)| (k.clone(), v["dtype"].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn quantize_keep_fp32_depthwise_keeps_the_most_sensitive_depthwise_weights_in_fp32() {
    let tmp = tempdir();
    let calib = tmp.path().join("calib");
    solid_color_folder(&calib, 2, 1);
    let out = tmp.path().join("q");
    kestrel([
        "quantize",
        "--model",
        "mobilenetv2_050",
        "--calib",
        s(&calib),
        "--keep-fp32",
        "1",
        "--keep-fp32-depthwise",
        "2",
        "--rounding",
        "nearest",
        "--output",
        s(&out),
    ])
    .ok();
    let report = read_json(&out.join("quantize_report.json"));
    assert_eq!(report["keep_fp32"], 1);
    assert_eq!(report["keep_fp32_depthwise"], 2);
    let sensitive: Vec<&serde_json::Value> = report["fp32_convs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["reason"] == "sensitive")
        .collect();
    // The dense one first, then the two depthwise ones (` gGROUPS`), most sensitive first.
    assert_eq!(sensitive.len(), 3, "{sensitive:?}");
    let conv = |i: usize| sensitive[i]["conv"].as_str().unwrap();
    assert!(!conv(0).contains(" g"), "{sensitive:?}");
    assert!(
        conv(1).contains(" g") && conv(2).contains(" g"),
        "{sensitive:?}"
    );
    let err = |i: usize| sensitive[i]["logit_error"].as_f64().unwrap();
    assert!(err(1) >= err(2) && err(2) > 0.0, "{sensitive:?}");
    // In the file: the kept depthwise convs' weights are F32, every other depthwise conv's
    // I8, and the kept dense conv's I8 (fp32 compute on int8-stored weights).
    let dtypes = safetensors_dtypes(&out.join("model.int8.safetensors"));
    let weight = |i: usize| dtypes[&format!("ops.{}.weight", sensitive[i]["op"])].clone();
    assert_eq!(
        (weight(0).as_str(), weight(1).as_str(), weight(2).as_str()),
        ("I8", "F32", "F32")
    );
    let f32_weights = dtypes
        .iter()
        .filter(|(k, v)| k.ends_with(".weight") && v.as_str() == "F32" && k.starts_with("ops."))
        .count();
    let i8_weights = dtypes
        .iter()
        .filter(|(k, v)| k.ends_with(".weight") && v.as_str() == "I8")
        .count();
    assert!(i8_weights > 30, "{i8_weights}");
    // Other fp32 `.weight`s are not convs' (none in this model besides the two).
    assert_eq!(f32_weights, 2, "{dtypes:?}");
}
