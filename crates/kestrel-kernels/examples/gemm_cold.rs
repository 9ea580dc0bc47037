//! Dense GEMM with cold weights: cycles through enough copies of B to overflow the L3, as a
//! batch-1 run of a large model does (every layer's weights come from memory):
//! `cargo run --release -p kestrel-kernels --example gemm_cold [threads]`.
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
        ("3x3 512->512 @7 as 1 tap", 49, 4608, 512),
        ("3x3 256->256 @14 as 1 tap", 196, 2304, 256),
        ("1x1 1024->2048 @7", 49, 1024, 2048),
        ("1x1 2048->512 @7", 49, 2048, 512),
        ("linear 768->3072 x197", 197, 768, 3072),
    ];
    for &(name, m, k, n) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| ((i % 7) as f32 - 3.0) * 0.1).collect();
        let w: Vec<f32> = (0..k * n).map(|i| ((i % 5) as f32 - 2.0) * 0.01).collect();
        let copies = (96usize << 20).div_ceil(k * n * 4).max(2);
        let bs: Vec<PackedB> = (0..copies).map(|_| PackedB::from_kn(&w, k, n)).collect();
        let bias = vec![0.1f32; n];
        let mut c = vec![0f32; m * n];
        let ep = Epilogue::new(Some(&bias), Act::Relu);
        let run = |b: &PackedB, c: &mut Vec<f32>| unsafe {
            igemm(
                m,
                Rows::Dense {
                    base: a.as_ptr(),
                    ld: k,
                },
                0,
                b,
                c.as_mut_ptr(),
                n,
                0,
                &ep,
            )
        };
        for (hot, label) in [(true, "hot"), (false, "cold")] {
            let mut times = Vec::new();
            for rep in 0..5 * copies {
                let b = if hot { &bs[0] } else { &bs[rep % copies] };
                let t = Instant::now();
                run(b, &mut c);
                times.push(t.elapsed().as_secs_f64());
            }
            times.sort_by(f64::total_cmp);
            let med = times[times.len() / 2];
            println!(
                "{name:<28} {label:<4} {:>9.1} us {:>7.1} GFLOP/s",
                med * 1e6,
                2.0 * (m * k * n) as f64 / med / 1e9
            );
        }
    }
}
