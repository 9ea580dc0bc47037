use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use kestrel_models::bench::{bench_model, BenchOptions};

use crate::device::{parse_device, DEVICE_HELP};

/// Forward latency at batch 1, throughput at batch N, one training step and peak memory.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  kestrel bench --model resnet50 --batch 32 --json resnet50.json\n\n\
Peers (PyTorch eager, onnxruntime) on the same machine: python3 scripts/bench_peers.py resnet50"
)]
pub struct BenchArgs {
    /// Registry model name(s).
    #[arg(long, required = true, num_args = 1..)]
    pub model: Vec<String>,
    /// Batch size for the throughput measurement.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Batch size for the training step (0 skips it).
    #[arg(long, default_value_t = 8)]
    pub train_batch: usize,
    /// Timed runs for batch-1 latency.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// Input size H=W (default: the model's).
    #[arg(long)]
    pub size: Option<usize>,
    /// Also write the results as JSON here.
    #[arg(long, value_name = "FILE.json")]
    pub json: Option<PathBuf>,
    #[arg(long, default_value = "cpu", help = DEVICE_HELP)]
    pub device: String,
}

#[derive(serde::Serialize)]
struct Entry {
    model: String,
    device: String,
    #[serde(flatten)]
    result: kestrel_models::bench::BenchResult,
}

pub fn run(a: BenchArgs) -> Result<()> {
    let device = parse_device(&a.device)?;
    let opts = BenchOptions {
        warmup: 2,
        latency_runs: a.runs.max(1),
        throughput_batch: a.batch.max(1),
        throughput_runs: 3,
        train_batch: a.train_batch,
        train_runs: if a.train_batch == 0 { 0 } else { 3 },
    };
    let mut entries = Vec::new();
    println!(
        "{:<22} {:>10} {:>8} {:>12} {:>12} {:>14} {:>14} {:>10}",
        "model",
        "params",
        "GMACs",
        "b1 ms (p50)",
        "b1 ms (p90)",
        "img/s (bN)",
        "train ms",
        "peak MiB"
    );
    for name in &a.model {
        let spec = kestrel_models::find(name)?;
        let mut input = spec.data_config().input_size;
        if let Some(s) = a.size {
            input[1] = s;
            input[2] = s;
        }
        let model = spec.build(&spec.default_options(), &device);
        let r = bench_model(&model, input, &device, &opts);
        println!(
            "{:<22} {:>10} {:>8.3} {:>12.1} {:>12.1} {:>14.2} {:>14} {:>10}",
            spec.name,
            r.params,
            r.macs as f64 / 1e9,
            r.latency_ms_b1,
            r.latency_ms_b1_p90,
            r.throughput_b32,
            r.train_step_ms
                .map(|t| format!("{t:.0}"))
                .unwrap_or_else(|| "-".into()),
            r.peak_rss_bytes
                .map(|b| format!("{}", b / (1 << 20)))
                .unwrap_or_else(|| "-".into()),
        );
        entries.push(Entry {
            model: spec.name.to_string(),
            device: a.device.clone(),
            result: r,
        });
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&entries)?)?;
        println!("results written to {}", path.display());
    }
    Ok(())
}
