//! Benchmarks a few registered models at their default input size on the CPU and prints one JSON
//! object per model (see `kestrel_models::bench`).
//!
//!   cargo run --release -p kestrel-models --example bench_zoo -- [NAME ...] [--quick]
//!
//! `--quick`: 1 warm-up, 5 latency runs, 2 throughput runs, 2 training steps at batch 8.

use kestrel_models::bench::{bench_model, BenchOptions};
use kestrel_models::burn::prelude::*;

fn main() {
    let mut names: Vec<String> = Vec::new();
    let mut opts = BenchOptions::default();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => {
                opts = BenchOptions {
                    warmup: 1,
                    latency_runs: 5,
                    throughput_runs: 2,
                    train_runs: 2,
                    train_batch: 8,
                    ..opts
                }
            }
            _ => names.push(arg),
        }
    }
    if names.is_empty() {
        names = ["resnet50", "resnet18", "convnext_tiny"]
            .map(String::from)
            .to_vec();
    }
    let device = Device::flex();
    for name in names {
        let spec = kestrel_models::find(&name).unwrap_or_else(|e| panic!("{e}"));
        let model = spec.build(&spec.default_options(), &device);
        let input = spec.data_config().input_size;
        let result = bench_model(&model, input, &device, &opts);
        let mut json = serde_json::to_value(&result).unwrap();
        json["model"] = serde_json::Value::String(spec.name.to_string());
        json["device"] = serde_json::Value::String(format!("{device:?}"));
        json["load_avg"] = serde_json::Value::String(
            std::fs::read_to_string("/proc/loadavg")
                .unwrap_or_default()
                .trim()
                .to_string(),
        );
        println!("{json}");
    }
}
