//! The benchmark library on a model small enough for CI.

use kestrel_models::bench::{bench_model, BenchOptions};
use kestrel_models::burn::prelude::*;

#[test]
fn bench_reports_every_figure_for_lenet5() {
    let spec = kestrel_models::find("lenet5").unwrap();
    let device = Device::flex();
    let model = spec.build(&spec.default_options(), &device);
    let opts = BenchOptions {
        warmup: 1,
        latency_runs: 3,
        throughput_batch: 4,
        throughput_runs: 1,
        train_batch: 4,
        train_runs: 1,
    };
    let r = bench_model(&model, [1, 32, 32], &device, &opts);
    assert_eq!(r.params, 61_706);
    assert_eq!(r.macs, 416_520);
    assert!(r.latency_ms_b1 > 0.0 && r.latency_ms_b1 <= r.latency_ms_b1_p90);
    assert!(r.throughput > 0.0);
    assert!(r.train_step_ms.unwrap() > 0.0);
    if cfg!(target_os = "linux") {
        assert!(r.peak_rss_bytes.unwrap() > 1 << 20);
    }
    let json = serde_json::to_value(&r).unwrap();
    for key in [
        "latency_ms_b1",
        "latency_ms_b1_p90",
        "throughput",
        "throughput_batch",
        "train_step_ms",
        "peak_rss_bytes",
        "params",
        "macs",
    ] {
        assert!(json.get(key).is_some(), "{key}");
    }
}
