//! Batch-1 latency of the fp32 and int8 fast engines on random-init registry models, in one
//! run (calibrated on random images: a speed check, not an accuracy one).
//! `cargo run --release --example int8_speed -- resnet50 mobilenetv2_100`
//! (`KESTREL_THREADS=1` adds each engine's CPU time, which a loaded machine does not inflate
//! the way it inflates wall time; `PROFILE=1` per op kind, `PROFILE=ops` per op;
//! `INT8_MIN_DEPTH=N` keeps convs with dot products shorter than N in fp32.)

use burn::prelude::*;
use kestrel_deploy::quant::{quantize_graph, Calibration, Method};
use kestrel_deploy::{lower_graph, Engine};

fn main() {
    let names: Vec<String> = std::env::args().skip(1).collect();
    for name in &names {
        let spec = kestrel_models::find(name).expect("registry name");
        let model = spec.build(&spec.default_options(), &Device::flex());
        let [c, h, w] = spec.data_config().input_size;
        let x: Vec<f32> = (0..c * h * w)
            .map(|i| ((i * 7919 % 997) as f32 / 498.0) - 1.0)
            .collect();
        let fp32 = Engine::new(&lower_graph(&model, c).unwrap());
        let mut calib = Calibration::default();
        calib.observe_batch(&fp32, &x, [1, c, h, w]).unwrap();
        let mut g = lower_graph(&model, c).unwrap();
        // INT8_MIN_DEPTH=N: convs whose dot product (in_ch · kh · kw) is shorter than N keep
        // fp32 compute (weights stored int8), to see whether int8 pays on short ones.
        let min_depth: usize = std::env::var("INT8_MIN_DEPTH")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if min_depth > 0 {
            let short: Vec<usize> = g
                .ops
                .iter()
                .enumerate()
                .filter_map(|(i, op)| match op {
                    kestrel_deploy::Op::Conv { conv, .. }
                        if conv.geom.groups == 1
                            && conv.geom.in_ch * conv.geom.kernel[0] * conv.geom.kernel[1]
                                < min_depth =>
                    {
                        Some(i)
                    }
                    _ => None,
                })
                .collect();
            let opts = kestrel_deploy::quant::QuantOptions {
                keep_fp32: short,
                ..Default::default()
            };
            kestrel_deploy::quant::quantize_graph_keeping(&mut g, &calib, &opts).unwrap();
        } else {
            quantize_graph(&mut g, &calib, Method::MinMax).unwrap();
        }
        let int8 = Engine::new(&g);
        let time = |e: &Engine| {
            for _ in 0..3 {
                e.run_nchw(&x, 1, c, h, w).unwrap();
            }
            let mut t: Vec<f64> = (0..15)
                .map(|_| {
                    let t0 = std::time::Instant::now();
                    e.run_nchw(&x, 1, c, h, w).unwrap();
                    t0.elapsed().as_secs_f64() * 1e3
                })
                .collect();
            t.sort_by(f64::total_cmp);
            t[t.len() / 2]
        };
        let (a, b) = (time(&fp32), time(&int8));
        println!(
            "{name}: fp32 {a:.2} ms, int8 {b:.2} ms ({:.2}x), int8 convs {:?}",
            a / b,
            int8.int8_convs()
        );
        if kestrel_kernels::threads::num_threads() == 1 {
            // One thread runs every kernel inline, so this thread's CPU time is the engine's
            // compute time, without the waits for the CPU that other processes cause.
            // The mean over 30 runs: schedstat advances in scheduler ticks (4 ms on this VM),
            // so a single run's reading is too coarse for a 12 ms model.
            let cpu = |e: &Engine| {
                let t0 = thread_cpu_ns();
                for _ in 0..30 {
                    e.run_nchw(&x, 1, c, h, w).unwrap();
                }
                (thread_cpu_ns() - t0) as f64 * 1e-6 / 30.0
            };
            let (a, b) = (cpu(&fp32), cpu(&int8));
            println!(
                "{name}: one thread, CPU time: fp32 {a:.2} ms, int8 {b:.2} ms ({:.2}x)",
                a / b
            );
        }
        if std::env::var("PROFILE").is_ok() {
            for (label, e) in [("fp32", &fp32), ("int8", &int8)] {
                let mut p = e.profile_nchw(&x, 1, c, h, w).unwrap().by_kind;
                for _ in 0..4 {
                    let q = e.profile_nchw(&x, 1, c, h, w).unwrap().by_kind;
                    p.iter_mut().zip(q).for_each(|(a, b)| a.1 = a.1.min(b.1));
                }
                for (k, t, _) in p {
                    println!("  {label} {k:<20} {:.2} ms", t * 1e3);
                }
            }
            if std::env::var("PROFILE").as_deref() == Ok("ops") {
                // Per op, fp32 beside int8 (minimum of five profiles each).
                let per_op = |e: &Engine| {
                    let mut best = e.profile_nchw(&x, 1, c, h, w).unwrap().by_op;
                    for _ in 0..4 {
                        let q = e.profile_nchw(&x, 1, c, h, w).unwrap().by_op;
                        best.iter_mut().zip(q).for_each(|(a, b)| a.2 = a.2.min(b.2));
                    }
                    best
                };
                let (f, q) = (per_op(&fp32), per_op(&int8));
                for (a, b) in f.iter().zip(&q) {
                    println!(
                        "  {:<18} {:<40} fp32 {:.3} ms int8 {:.3} ms",
                        a.0,
                        a.1,
                        a.2 * 1e3,
                        b.2 * 1e3
                    );
                }
            }
        }
    }
}

/// This thread's time on a CPU in ns (the first field of Linux's schedstat).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("/proc/thread-self/schedstat (Linux)")
}
