//! Speed and memory of one model on one device: batch-1 latency, batch-32 throughput, one
//! training step (forward + backward + AdamW), peak resident memory, parameters and MACs.
//! `kestrel bench` prints [`BenchResult`] as a table or JSON.
//!
//! Every timed call ends by reading the output back to the host, so lazy or asynchronous
//! backends are timed to completion. Repetitions are few by default (the numbers are for
//! comparison, not for a paper); raise them with [`BenchOptions`].

use std::time::Instant;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::{Distribution, Int, TensorData};
use serde::Serialize;

use crate::layers::count_macs;
use crate::model::Model;

#[derive(Clone, Debug, Serialize)]
pub struct BenchOptions {
    /// Untimed runs before each measurement.
    pub warmup: usize,
    /// Timed batch-1 forward passes (median and p90 reported).
    pub latency_runs: usize,
    /// Batch size and timed runs for the throughput measurement.
    pub throughput_batch: usize,
    pub throughput_runs: usize,
    /// Batch size and timed runs for the training step; 0 runs skips it.
    pub train_batch: usize,
    pub train_runs: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            warmup: 2,
            latency_runs: 10,
            throughput_batch: 32,
            throughput_runs: 3,
            train_batch: 32,
            train_runs: 3,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchResult {
    /// (channels, height, width) of one input image.
    pub input: [usize; 3],
    pub params: usize,
    /// Multiply-accumulates of one batch-1 forward pass (convs and linears).
    pub macs: u64,
    /// Batch-1 forward latency: median and 90th percentile, milliseconds.
    pub latency_ms_b1: f64,
    pub latency_ms_b1_p90: f64,
    /// Images per second at `throughput_batch` (median run).
    pub throughput: f64,
    pub throughput_batch: usize,
    /// One training step (forward, backward, AdamW update) at `train_batch` on the device's
    /// autodiff counterpart, milliseconds (median); `None` when skipped.
    pub train_step_ms: Option<f64>,
    pub train_batch: usize,
    /// Peak resident set size of the process (VmHWM) after the measurements, bytes. The peak is
    /// reset at the start of `bench_model` where the kernel allows it, so it covers this model;
    /// `peak_rss_reset` says whether it was.
    pub peak_rss_bytes: Option<u64>,
    pub peak_rss_reset: bool,
    pub options: BenchOptions,
}

/// Benchmarks `model` (on `device`, a plain inference device) with `input`-shaped images.
pub fn bench_model(
    model: &Model,
    input: [usize; 3],
    device: &Device,
    opts: &BenchOptions,
) -> BenchResult {
    let eval = model.valid();
    bench_model_with(model, input, device, opts, &|x: &Tensor<4>| {
        let _ = eval.forward(x.clone()).into_data();
    })
}

/// [`bench_model`] with the inference timed through `forward` (another engine); the training
/// step, the parameter and MAC counts still come from `model`.
pub fn bench_model_with(
    model: &Model,
    input: [usize; 3],
    device: &Device,
    opts: &BenchOptions,
    forward: &dyn Fn(&Tensor<4>),
) -> BenchResult {
    let peak_rss_reset = reset_peak_rss();
    let [c, h, w] = input;
    let model = model.valid();
    let images = |n: usize, device: &Device| {
        Tensor::<4>::random([n, c, h, w], Distribution::Normal(0.0, 1.0), device)
    };

    let x1 = images(1, device);
    let (_, macs) = count_macs(|| model.forward(x1.clone()));

    // Batch-1 latency.
    for _ in 0..opts.warmup {
        forward(&x1);
    }
    let mut lat: Vec<f64> = (0..opts.latency_runs.max(1))
        .map(|_| time_ms(|| forward(&x1)))
        .collect();
    lat.sort_by(f64::total_cmp);

    // Throughput.
    let tb = opts.throughput_batch.max(1);
    let xb = images(tb, device);
    forward(&xb);
    let mut thr: Vec<f64> = (0..opts.throughput_runs.max(1))
        .map(|_| time_ms(|| forward(&xb)))
        .collect();
    thr.sort_by(f64::total_cmp);
    let throughput = tb as f64 / (percentile(&thr, 0.5) / 1000.0);
    drop(xb);

    // Training step.
    let train_step_ms = (opts.train_runs > 0 && opts.train_batch > 0)
        .then(|| train_step(&model, input, device, opts));

    BenchResult {
        input,
        params: model.num_trainable_params(),
        macs,
        latency_ms_b1: percentile(&lat, 0.5),
        latency_ms_b1_p90: percentile(&lat, 0.9),
        throughput: throughput,
        throughput_batch: tb,
        train_step_ms,
        train_batch: opts.train_batch,
        peak_rss_bytes: peak_rss(),
        peak_rss_reset,
        options: opts.clone(),
    }
}

fn train_step(model: &Model, [c, h, w]: [usize; 3], device: &Device, opts: &BenchOptions) -> f64 {
    let num_classes = model.forward(Tensor::zeros([1, c, h, w], device)).dims()[1];
    let ad = device.clone().autodiff();
    let mut model = model.clone().fork(&ad).train();
    let n = opts.train_batch;
    let x = Tensor::<4>::random([n, c, h, w], Distribution::Normal(0.0, 1.0), &ad);
    let labels: Vec<i64> = (0..n as i64).map(|i| i % num_classes as i64).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &ad);
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let mut optim = AdamWConfig::new().init();
    let mut times = Vec::new();
    for i in 0..opts.warmup.min(1) + opts.train_runs {
        let start = Instant::now();
        let loss = loss_fn.forward(model.forward(x.clone()), y.clone());
        let _ = loss.clone().into_data();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(1e-4, model, grads);
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        if i >= opts.warmup.min(1) {
            times.push(ms);
        }
    }
    times.sort_by(f64::total_cmp);
    percentile(&times, 0.5)
}

fn time_ms(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64() * 1000.0
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let idx = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

/// Peak RSS of this process from /proc/self/status (`VmHWM`), bytes; `None` off Linux.
pub fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the kernel's peak-RSS mark (`echo 5 > /proc/self/clear_refs`, Linux ≥ 4.0).
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}
