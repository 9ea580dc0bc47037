//! Batch-1 latency of the fp32 and int8 fast engines on random-init registry models, in one
//! run (calibrated on random images: a speed check, not an accuracy one).
//! `cargo run --release --example int8_speed -- resnet50 mobilenetv2_100`

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
        quantize_graph(&mut g, &calib, Method::MinMax).unwrap();
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
        }
    }
}
