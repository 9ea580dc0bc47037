//! Batch throughput of the fast engine under each way of splitting a batch, interleaved in one
//! process so that the machine's drift hits every plan alike (random-init registry models).
//! `cargo run --release -p kestrel-deploy --example batch_plan_speed -- 32 resnet50 mobilenetv2_100`
//! (the first argument is the batch size).

use burn::prelude::*;
use kestrel_deploy::{lower_graph, BatchPlan, Engine};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .expect("usage: batch_plan_speed BATCH MODEL...");
    let rounds = 5;
    for name in args {
        let spec = kestrel_models::find(&name).expect("registry name");
        let model = spec.build(&spec.default_options(), &Device::flex());
        let [c, h, w] = spec.data_config().input_size;
        let x: Vec<f32> = (0..n * c * h * w)
            .map(|i| ((i * 7919 % 997) as f32 / 498.0) - 1.0)
            .collect();
        let engine = Engine::new(&lower_graph(&model, c).unwrap());
        let plans = [BatchPlan::Whole, BatchPlan::Chunked, BatchPlan::Streamed];
        let reference = engine
            .run_nchw_planned(&x, [n, c, h, w], BatchPlan::Whole)
            .unwrap();
        let mut times = vec![Vec::new(); plans.len()];
        for _ in 0..rounds {
            for (p, plan) in plans.iter().enumerate() {
                let t0 = std::time::Instant::now();
                let got = engine.run_nchw_planned(&x, [n, c, h, w], *plan).unwrap();
                times[p].push(t0.elapsed().as_secs_f64());
                let diff = got
                    .iter()
                    .zip(&reference)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(diff <= 1e-4, "{plan:?} differs from Whole by {diff}");
            }
        }
        let line: Vec<String> = plans
            .iter()
            .zip(&mut times)
            .map(|(plan, t)| {
                t.sort_by(f64::total_cmp);
                format!("{plan:?} {:.1} img/s", n as f64 / t[t.len() / 2])
            })
            .collect();
        println!("{name} b{n}: {}", line.join(", "));
    }
}
