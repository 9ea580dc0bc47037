//! `kestrel recommend` end to end on tiny candidates (two timed runs each): the published
//! top-1 joined from timm's table, the Pareto front, the scenario's pick, the plot and the
//! measurement cache.

use std::path::Path;
use std::process::Command;

fn recommend(home: &Path, args: &[&str]) -> (serde_json::Value, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kestrel"))
        .arg("recommend")
        .args(args)
        .env("HOME", home)
        .output()
        .expect("run kestrel");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "kestrel recommend {args:?} failed:\n{stderr}"
    );
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout)));
    (json, stderr)
}

/// The fp32 row of `model`.
fn by_model<'a>(report: &'a serde_json::Value, model: &str) -> &'a serde_json::Value {
    twin(report, model, "fp32")
}

fn twin<'a>(report: &'a serde_json::Value, model: &str, precision: &str) -> &'a serde_json::Value {
    report["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["model"] == model && c["precision"] == precision)
        .unwrap_or_else(|| panic!("no {precision} {model} in {report}"))
}

#[test]
fn recommend_joins_timm_top1_picks_from_the_front_plots_and_caches() {
    let home = tempfile::tempdir().unwrap();
    let plot = home.path().join("front.png");
    let plot_s = plot.to_str().unwrap();
    let args = [
        "--scenario",
        "mobile",
        "--candidates",
        "lenet5,mobilenetv3_small_100,resnet8_cifar",
        "--runs",
        "2",
        "--threads",
        "1",
        "--json",
        "--plot",
        plot_s,
    ];
    let (r, stderr) = recommend(home.path(), &args);
    assert_eq!(stderr.matches("measuring").count(), 3, "{stderr}");
    assert_eq!(r["scenario"], "mobile");
    assert_eq!(r["constraints"]["max_macs"], 600_000_000u64);
    assert_eq!(r["constraints"]["max_params"], 10_000_000u64);

    let mnv3 = by_model(&r, "mobilenetv3_small_100");
    // timm's results-imagenet.csv row `mobilenetv3_small_100.lamb_in1k,224,67.636,...,2.54,...`.
    assert_eq!(mnv3["imagenet"]["tag"], "mobilenetv3_small_100.lamb_in1k");
    assert_eq!(mnv3["imagenet"]["top1"], 67.636);
    assert!(mnv3["imagenet"]["source"]
        .as_str()
        .unwrap()
        .contains("results-imagenet.csv"));
    let params = mnv3["params"].as_f64().unwrap() / 1e6;
    assert!(
        (params - 2.54).abs() < 0.01,
        "params {params}M vs timm's 2.54M"
    );
    for k in ["latency_ms_p50", "latency_ms_p90", "fps"] {
        assert!(mnv3[k].as_f64().unwrap() > 0.0, "{k}: {mnv3}");
    }
    assert!(mnv3["latency_ms_p90"].as_f64() >= mnv3["latency_ms_p50"].as_f64());
    assert_eq!(mnv3["batch"], 1);
    assert_eq!(mnv3["threads"], 1);
    assert_eq!(mnv3["engine"], "fast");
    // FPS is batch / median latency.
    let fps = 1e3 / mnv3["latency_ms_p50"].as_f64().unwrap();
    assert!((mnv3["fps"].as_f64().unwrap() - fps).abs() < 1e-6 * fps);

    // The int8 twin (measured by default): timed on the fast engine, its file about 4x smaller
    // (int8 weights), its top-1 unknown rather than the fp32 figure.
    let mnv3_int8 = twin(&r, "mobilenetv3_small_100", "int8");
    assert_eq!(mnv3_int8["engine"], "fast");
    assert!(mnv3_int8["latency_ms_p50"].as_f64().unwrap() > 0.0);
    assert_eq!(mnv3_int8["params"], mnv3["params"]);
    let (b32, b8) = (
        mnv3["file_bytes"].as_f64().unwrap(),
        mnv3_int8["file_bytes"].as_f64().unwrap(),
    );
    assert!(
        b8 * 2.5 < b32 && b8 * 4.0 > b32,
        "int8 {b8} vs fp32 {b32} bytes"
    );
    assert!(mnv3_int8["imagenet"].is_null());
    let note = mnv3_int8["accuracy_note"].as_str().unwrap();
    assert!(
        note.contains("unknown") && note.contains("67.64%"),
        "{note}"
    );
    assert_eq!(r["candidates"].as_array().unwrap().len(), 6);
    // The scenario's row of the design document's table.
    assert_eq!(
        r["design_table"]["recommended"],
        serde_json::json!(["MobileNetV3", "EfficientNet"])
    );
    assert_eq!(mnv3["doc_recommended"], true);
    assert_eq!(by_model(&r, "lenet5")["doc_recommended"], false);

    // No published figure: said, not invented; off the front.
    assert!(by_model(&r, "lenet5")["imagenet"].is_null());
    assert!(by_model(&r, "resnet8_cifar")["imagenet"].is_null());
    assert_eq!(
        r["pareto_front"],
        serde_json::json!(["mobilenetv3_small_100"])
    );
    assert_eq!(r["pick"], "mobilenetv3_small_100");
    assert_eq!(r["pick_precision"], "fp32");
    let reason = r["reason"].as_str().unwrap();
    assert!(reason.contains("67.6%"), "{reason}");
    assert!(
        reason.contains("the design table recommends MobileNetV3, EfficientNet"),
        "{reason}"
    );

    // The plot: the front in red, the pick ringed in green.
    let img = image::open(&plot).expect("the plot").to_rgb8();
    assert_eq!(img.dimensions(), (800, 600));
    assert!(
        img.pixels().any(|p| p.0 == [255, 0, 0]),
        "no red (front) pixels"
    );
    assert!(
        img.pixels().any(|p| p.0 == [0, 255, 0]),
        "no green (pick) ring"
    );

    // Cached: nothing measured again, the same numbers.
    let (again, stderr) = recommend(home.path(), &args);
    assert!(!stderr.contains("measuring"), "{stderr}");
    assert_eq!(
        by_model(&again, "lenet5")["latency_ms_p50"],
        by_model(&r, "lenet5")["latency_ms_p50"]
    );
    // --remeasure measures again; a limit on MACs leaves only figureless models: the fastest,
    // saying so.
    let mut remeasure = args.to_vec();
    remeasure.extend(["--remeasure", "--max-macs", "10M"]);
    let (tight, stderr) = recommend(home.path(), &remeasure);
    assert_eq!(stderr.matches("measuring").count(), 3, "{stderr}");
    assert!(by_model(&tight, "mobilenetv3_small_100")["misses"][0]
        .as_str()
        .unwrap()
        .contains("MACs"));
    let pick = tight["pick"].as_str().unwrap();
    assert!(pick == "lenet5" || pick == "resnet8_cifar", "{tight}");
    assert!(tight["reason"]
        .as_str()
        .unwrap()
        .contains("no fitting candidate has a published top-1"));
}

#[test]
fn recommend_rejects_unknown_scenarios_and_models() {
    let home = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (vec!["--scenario", "space"], "unknown scenario 'space'"),
        (
            vec!["--scenario", "mobile", "--candidates", "lenet5,nosuchnet"],
            "nosuchnet",
        ),
        (vec!["--scenario", "mobile", "--max-macs", "lots"], "'lots'"),
        (
            vec!["--scenario", "mobile", "--precision", "fp16"],
            "unknown precision 'fp16'",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_kestrel"))
            .arg("recommend")
            .args(&args)
            .env("HOME", home.path())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn recommend_help_cites_the_design_table_and_states_the_defaults() {
    let out = Command::new(env!("CARGO_BIN_EXE_kestrel"))
        .args(["recommend", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    // The table's four rows (design document, section 3.1), and kestrel's numbers.
    for needle in [
        "section 3.1",
        "MobileNetV3, EfficientNet; key factors: FLOPs, parameters, latency",
        "ShuffleNetV2, RegNet; key factors: FPS, hardware fit",
        "ResNeXt, Swin Transformer; key factors: training data scale, compute resources",
        "DeiT, ConvNeXt",
        "--max-macs 600M, --max-params 10M",
        "--min-fps 30",
        "--max-latency-ms 100",
        "--precision",
    ] {
        assert!(help.contains(needle), "{needle} not in:\n{help}");
    }
}
