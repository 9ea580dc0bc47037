use std::path::PathBuf;

use anyhow::Result;
use burn::module::Module;
use clap::Args;
use kestrel_deploy::Runner;
use kestrel_models::bench::{bench_model_with, BenchOptions};
use kestrel_models::Model;

use crate::device::{parse_device, DEVICE_HELP};

/// Forward latency at batch 1, throughput at batch N, one training step and peak memory.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  kestrel bench --model resnet50 --batch 32 --json resnet50.json\n\n\
Peers (PyTorch eager, onnxruntime) on the same machine: python3 scripts/bench_peers.py resnet50"
)]
pub struct BenchArgs {
    /// Registry model name(s) (random weights: speed does not depend on them).
    #[arg(long, num_args = 1.., required_unless_present = "checkpoint")]
    pub model: Vec<String>,
    /// Run folder(s) instead (or as well): `kestrel train` checkpoints, or `kestrel quantize`
    /// output, whose int8 model runs on the fast engine (its training step is skipped).
    #[arg(long, num_args = 1.., value_name = "DIR")]
    pub checkpoint: Vec<PathBuf>,
    /// Batch size for the throughput measurement.
    #[arg(long, default_value_t = 32, value_parser = crate::cmd::common::at_least_one)]
    pub batch: usize,
    /// Batch size for the training step (0 skips it).
    #[arg(long, default_value_t = 8)]
    pub train_batch: usize,
    /// Timed training steps (the median is reported; one untimed step comes first).
    #[arg(long, default_value_t = 3, value_name = "N",
          value_parser = crate::cmd::common::at_least_one)]
    pub train_runs: usize,
    /// Timed runs for batch-1 latency.
    #[arg(long, default_value_t = 10, value_parser = crate::cmd::common::at_least_one)]
    pub runs: usize,
    /// Input size H=W (default: the model's); a size the model cannot take is an error.
    #[arg(long, visible_alias = "img-size", value_name = "N",
          value_parser = crate::cmd::common::at_least_one)]
    pub size: Option<usize>,
    /// Also write the results as JSON here.
    #[arg(long, value_name = "FILE.json")]
    pub json: Option<PathBuf>,
    #[arg(long, default_value = "cpu", help = DEVICE_HELP)]
    pub device: String,
    #[command(flatten)]
    pub precision: crate::device::PrecisionArgs,
    /// `--engine` times inference only; the training step always runs on burn.
    #[command(flatten)]
    pub engine: crate::cmd::common::EngineArgs,
    /// Also profile the fast engine at batch 1: time and GFLOP/s per op kind, against this
    /// machine's fp32 GEMM ceiling measured with the same kernels.
    #[arg(long)]
    pub profile: bool,
    /// With `--profile`: also write every op's row (index, kind, shape, ms per run, GFLOP/s)
    /// to this CSV file.
    #[arg(long, value_name = "FILE.csv", requires = "profile")]
    pub profile_csv: Option<PathBuf>,
}

#[derive(serde::Serialize)]
struct Entry {
    model: String,
    device: String,
    /// The engine that ran the inference timings.
    engine: String,
    #[serde(flatten)]
    result: kestrel_models::bench::BenchResult,
}

pub fn run(a: BenchArgs) -> Result<()> {
    let mut device = parse_device(&a.device)?;
    a.precision.configure(&mut device, &a.device)?;
    a.engine.apply()?;
    let opts = BenchOptions {
        warmup: 2,
        latency_runs: a.runs,
        throughput_batch: a.batch,
        throughput_runs: 3,
        train_batch: a.train_batch,
        train_runs: if a.train_batch == 0 { 0 } else { a.train_runs },
    };
    let mut entries = Vec::new();
    println!(
        "{:<22} {:>10} {:>8} {:>12} {:>12} {:>14} {:>14} {:>10}",
        "model",
        "params",
        "GMACs",
        "b1 ms (p50)",
        "b1 ms (p90)",
        format!("img/s (b{})", a.batch),
        if a.train_batch == 0 {
            "train ms".to_string()
        } else {
            format!("train ms (b{})", a.train_batch)
        },
        "peak MiB"
    );
    let mut runs: Vec<(String, Model, Runner, [usize; 3], bool)> = Vec::new();
    for name in &a.model {
        let spec = kestrel_models::find(name)?;
        let model = spec.build(&spec.default_options(), &device);
        let (runner, notice) = Runner::new(
            model.valid(),
            spec.data_config().input_size[0],
            &device,
            a.engine.engine,
        );
        if let Some(n) = notice {
            eprintln!("note: {}: {n}", spec.name);
        }
        let input = spec.data_config().input_size;
        runs.push((spec.name.to_string(), model, runner, input, false));
    }
    for dir in &a.checkpoint {
        let loaded = kestrel_train::load_model(
            &kestrel_train::ModelSource::Checkpoint(dir.clone()),
            &device,
        )?;
        let (runner, notice) = loaded.runner(&device, a.engine.engine);
        let int8 = loaded.int8.is_some();
        let label = format!("{}{}", loaded.name, if int8 { " (int8)" } else { "" });
        if let Some(n) = notice {
            eprintln!("note: {label}: {n}");
        }
        runs.push((
            label,
            loaded.model,
            runner,
            loaded.data_config.input_size,
            int8,
        ));
    }
    for (name, model, runner, mut input, int8) in runs {
        if let Some(s) = a.size {
            input[1] = s;
            input[2] = s;
        }
        if a.size.is_some() {
            kestrel_train::check_img_size(&model, &name, input, &device)?;
        }
        // An int8 model has no fp32 weights to train.
        let opts = if int8 {
            BenchOptions {
                train_batch: 0,
                train_runs: 0,
                ..opts.clone()
            }
        } else {
            opts.clone()
        };
        let forward = |x: &burn::prelude::Tensor<4>| {
            let _ = runner
                .forward(x.clone())
                .expect("the engine ran this input shape at warm-up")
                .into_data();
        };
        let r = bench_model_with(&model, input, &device, &opts, &forward);
        if a.profile {
            match &runner {
                Runner::Fast(engine) => print_profile(
                    &name,
                    engine,
                    input,
                    opts.latency_runs,
                    a.profile_csv.as_deref(),
                )?,
                Runner::Burn(..) => eprintln!("note: --profile needs the fast engine"),
            }
        }
        println!(
            "{:<22} {:>10} {:>8.3} {:>12.1} {:>12.1} {:>14.2} {:>14} {:>10}",
            name,
            crate::cmd::models::human_count(r.params),
            r.macs as f64 / 1e9,
            r.latency_ms_b1,
            r.latency_ms_b1_p90,
            r.throughput,
            r.train_step_ms
                .map(|t| format!("{t:.0}"))
                .unwrap_or_else(|| "-".into()),
            r.peak_rss_bytes
                .map(|b| format!("{}", b / (1 << 20)))
                .unwrap_or_else(|| "-".into()),
        );
        entries.push(Entry {
            model: name.clone(),
            device: a.device.clone(),
            engine: runner.name().to_string(),
            result: r,
        });
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&entries)?)?;
        println!("results written to {}", path.display());
    }
    Ok(())
}

/// Per-op-kind time of the fast engine at batch 1 (sum over `runs` runs, reported per run).
fn print_profile(
    name: &str,
    engine: &kestrel_deploy::Engine,
    [c, h, w]: [usize; 3],
    runs: usize,
    csv: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let x: Vec<f32> = (0..c * h * w)
        .map(|i| ((i % 97) as f32 - 48.0) / 48.0)
        .collect();
    let runs = runs.max(1);
    let mut total: Vec<(&'static str, f64, u64)> = Vec::new();
    let mut ops: Vec<(&'static str, String, f64, u64)> = Vec::new();
    for _ in 0..runs {
        let p = match engine.profile_nchw(&x, 1, c, h, w) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("note: profile failed: {e}");
                return Ok(());
            }
        };
        if ops.is_empty() {
            ops = p.by_op;
        } else {
            for (e, o) in ops.iter_mut().zip(p.by_op) {
                e.2 += o.2;
            }
        }
        for (k, t, m) in p.by_kind {
            match total.iter_mut().find(|e| e.0 == k) {
                Some(e) => {
                    e.1 += t;
                    e.2 = m;
                }
                None => total.push((k, t, m)),
            }
        }
    }
    let sum: f64 = total.iter().map(|e| e.1).sum::<f64>() / runs as f64;
    let ceiling = kestrel_kernels::gemm::ceiling_gflops();
    println!(
        "\n{name}: fast engine profile at batch 1 ({runs} runs, {:.2} ms per run; fp32 GEMM ceiling of these kernels: {ceiling:.1} GFLOP/s)",
        sum * 1e3
    );
    println!(
        "{:<20} {:>10} {:>7} {:>10} {:>9}",
        "op kind", "ms/run", "share", "GFLOP/s", "of ceil"
    );
    total.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (k, t, m) in total {
        let t = t / runs as f64;
        let gflops = 2.0 * m as f64 / t / 1e9;
        println!(
            "{k:<20} {:>10.3} {:>6.1}% {:>10} {:>9}",
            t * 1e3,
            100.0 * t / sum,
            if m > 0 {
                format!("{gflops:.1}")
            } else {
                "-".into()
            },
            if m > 0 {
                format!("{:.0}%", 100.0 * gflops / ceiling)
            } else {
                "-".into()
            }
        );
    }
    let gflops = |t: f64, m: u64| {
        if m > 0 {
            format!("{:.1}", 2.0 * m as f64 / t / 1e9)
        } else {
            "-".into()
        }
    };
    if let Some(path) = csv {
        let mut out = String::from("op,kind,shape,ms_per_run,gflops\n");
        for (i, (k, d, t, m)) in ops.iter().enumerate() {
            let t = t / runs as f64;
            out += &format!("{i},{k},\"{d}\",{:.4},{}\n", t * 1e3, gflops(t, *m));
        }
        std::fs::write(path, out)
            .map_err(|e| anyhow::anyhow!("writing --profile-csv {}: {e}", path.display()))?;
        println!("per-op profile written to {}", path.display());
    }
    // The slowest single ops: where a kernel change would pay most.
    let mut slowest: Vec<(usize, &(&'static str, String, f64, u64))> =
        ops.iter().enumerate().collect();
    slowest.sort_by(|a, b| b.1 .2.total_cmp(&a.1 .2));
    println!("slowest ops:");
    println!(
        "{:>5} {:<20} {:<34} {:>8} {:>10}",
        "op", "kind", "shape", "ms/run", "GFLOP/s"
    );
    for (i, (k, d, t, m)) in slowest.into_iter().take(12) {
        let t = t / runs as f64;
        println!(
            "{i:>5} {k:<20} {d:<34} {:>8.3} {:>10}",
            t * 1e3,
            gflops(t, *m)
        );
    }
    Ok(())
}
