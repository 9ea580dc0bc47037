//! GFLOP/s of the dense GEMM (one tap, as a 1×1 convolution or a linear layer runs it) at the
//! zoo's typical shapes, against the kernels' own ceiling:
//! `cargo run --release -p kestrel-kernels --example gemm_speed [threads] [shape filter]`.
use kestrel_kernels::gemm::{igemm, Epilogue, PackedB, Rows};
use kestrel_kernels::Act;
use std::time::Instant;

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    kestrel_kernels::set_num_threads(threads);
    let shapes: &[(&str, usize, usize, usize)] = &[
        // name, m (pixels), k (in channels), n (out channels)
        ("square 1024", 1024, 1024, 1024),
        ("1x1 16->96 @112", 12544, 16, 96),
        ("1x1 32->16 @112", 12544, 32, 16),
        ("1x1 24->144 @56", 3136, 24, 144),
        ("1x1 144->24 @56", 3136, 144, 24),
        ("1x1 96->576 @14", 196, 96, 576),
        ("1x1 320->1280 @7", 49, 320, 1280),
        ("1x1 960->320 @7", 49, 960, 320),
        ("linear 1280->1000 b1", 1, 1280, 1000),
        ("1x1 96->384 @56 (convnext)", 3136, 96, 384),
        ("1x1 384->96 @56 (convnext)", 3136, 384, 96),
        ("1x1 256->64 @56", 3136, 256, 64),
        ("1x1 64->256 @56", 3136, 64, 256),
        ("1x1 64->256 @56 +res", 3136, 64, 256),
        ("1x1 128->512 @28 +res", 784, 128, 512),
    ];
    let filter = std::env::args().nth(2).unwrap_or_default();
    for &(name, m, k, n) in shapes.iter().filter(|s| s.0.contains(filter.as_str())) {
        let a: Vec<f32> = (0..m * k).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
        let w: Vec<f32> = (0..k * n).map(|i| ((i % 5) as f32 - 2.0) * 0.01).collect();
        let b = PackedB::from_kn(&w, k, n);
        let bias = vec![0.1f32; n];
        let mut c = vec![0f32; m * n];
        let res = vec![0.5f32; m * n];
        let mut ep = Epilogue::new(Some(&bias), Act::Relu);
        if name.ends_with("+res") {
            ep = ep.with_residual(res.as_ptr(), n, false);
        }
        let run = |c: &mut Vec<f32>| unsafe {
            igemm(
                m,
                Rows::Dense {
                    base: a.as_ptr(),
                    ld: k,
                },
                0,
                &b,
                c.as_mut_ptr(),
                n,
                0,
                &ep,
            )
        };
        run(&mut c);
        let reps = (2e9 / (2.0 * (m * k * n) as f64)).clamp(3.0, 20000.0) as usize;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..reps {
                run(&mut c);
            }
            best = best.min(t.elapsed().as_secs_f64() / reps as f64);
        }
        println!(
            "{name:<28} {:>9.1} us {:>7.1} GFLOP/s",
            best * 1e6,
            2.0 * (m * k * n) as f64 / best / 1e9
        );
    }
}
