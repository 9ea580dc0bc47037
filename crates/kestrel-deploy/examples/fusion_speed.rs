//! Batch-1 latency of the fast engine with and without the expand → depthwise fusion,
//! interleaved in one process (random-init registry models; the logits must agree).
//! `cargo run --release --workspace --example fusion_speed -- mobilenetv2_100 efficientnet_b0`

use burn::prelude::*;
use kestrel_deploy::{lower_graph, Engine};

fn main() {
    let rounds = 30;
    for name in std::env::args().skip(1) {
        let spec = kestrel_models::find(&name).expect("registry name");
        let model = spec.build(&spec.default_options(), &Device::flex());
        let [c, h, w] = spec.data_config().input_size;
        let x: Vec<f32> = (0..c * h * w)
            .map(|i| ((i * 7919 % 997) as f32 / 498.0) - 1.0)
            .collect();
        let graph = lower_graph(&model, c).unwrap();
        let engines = [
            ("fused", Engine::new(&graph)),
            ("unfused", Engine::new(&graph).without_fusion()),
        ];
        let want = engines[1].1.run_nchw(&x, 1, c, h, w).unwrap();
        let mut times = vec![Vec::new(); engines.len()];
        for _ in 0..rounds {
            for (e, (_, engine)) in engines.iter().enumerate() {
                let t0 = std::time::Instant::now();
                let got = engine.run_nchw(&x, 1, c, h, w).unwrap();
                times[e].push(t0.elapsed().as_secs_f64() * 1e3);
                let diff = got
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(diff <= 1e-4, "{name}: fused and unfused differ by {diff}");
            }
        }
        let line: Vec<String> = engines
            .iter()
            .zip(&mut times)
            .map(|((label, _), t)| {
                t.sort_by(f64::total_cmp);
                format!("{label} {:.2} ms", t[t.len() / 2])
            })
            .collect();
        println!("{name} b1 (median of {rounds}): {}", line.join(", "));
    }
}
