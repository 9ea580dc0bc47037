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

fn by_model<'a>(report: &'a serde_json::Value, model: &str) -> &'a serde_json::Value {
    report["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["model"] == model)
        .unwrap_or_else(|| panic!("no {model} in {report}"))
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

    // No published figure: said, not invented; off the front.
    assert!(by_model(&r, "lenet5")["imagenet"].is_null());
    assert!(by_model(&r, "resnet8_cifar")["imagenet"].is_null());
    assert_eq!(
        r["pareto_front"],
        serde_json::json!(["mobilenetv3_small_100"])
    );
    assert_eq!(r["pick"], "mobilenetv3_small_100");
    assert!(
        r["reason"].as_str().unwrap().contains("67.6%"),
        "{}",
        r["reason"]
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
