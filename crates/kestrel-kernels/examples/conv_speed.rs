//! GFLOP/s of single convolutions at typical shapes: `cargo run --release -p kestrel-kernels --example conv_speed`.
//! A 3×3 stride-1 dense conv is timed direct and as the inference engine builds it
//! (`Conv2d::for_inference`: Winograd F(2×2) where it pays), and as Winograd F(4×4); GFLOP/s
//! count the direct conv's MACs.
use kestrel_kernels::winograd::Tiles;
use kestrel_kernels::{Act, Conv2d, ConvGeometry};
use std::time::Instant;

fn main() {
    let shapes: &[(&str, usize, usize, usize, usize, usize, usize, usize)] = &[
        // name, h, cin, cout, k, stride, groups, batch
        ("3x3 64->64 @56", 56, 64, 64, 3, 1, 1, 1),
        ("1x1 256->64 @56", 56, 256, 64, 1, 1, 1, 1),
        ("1x1 64->256 @56", 56, 64, 256, 1, 1, 1, 1),
        ("3x3 256->256 @14", 14, 256, 256, 3, 1, 1, 1),
        ("1x1 1024->256 @14", 14, 1024, 256, 1, 1, 1, 1),
        ("3x3 512->512 @7", 7, 512, 512, 3, 1, 1, 1),
        ("3x3 128->128 @28", 28, 128, 128, 3, 1, 1, 1),
        ("3x3 256->256 @14 b8", 14, 256, 256, 3, 1, 1, 8),
        ("3x3 32->32 @56", 56, 32, 32, 3, 1, 1, 1),
        ("3x3 16->16 @56", 56, 16, 16, 3, 1, 1, 1),
        ("3x3 512->512 @7 b8", 7, 512, 512, 3, 1, 1, 8),
        ("3x3 512->512 @14", 14, 512, 512, 3, 1, 1, 1),
        ("dw3x3 144 @56", 56, 144, 144, 3, 1, 144, 1),
        ("dw3x3 96 @112 s2", 112, 96, 96, 3, 2, 96, 1),
        ("1x1 32->96 @112", 112, 32, 96, 1, 1, 1, 1),
        ("dw3x3 32 @112", 112, 32, 32, 3, 1, 32, 1),
        ("dw3x3 576 @14", 14, 576, 576, 3, 1, 576, 1),
        ("dw5x5 240 @28 s2", 28, 240, 240, 5, 2, 240, 1),
        ("dw3x3 960 @7", 7, 960, 960, 3, 1, 960, 1),
        ("1x1 16->96 @112", 112, 16, 96, 1, 1, 1, 1),
        ("3x3 3->32 @224 s2", 224, 3, 32, 3, 2, 1, 1),
    ];
    for &(name, h, cin, cout, k, s, groups, n) in shapes {
        let g = ConvGeometry {
            in_ch: cin,
            out_ch: cout,
            kernel: [k, k],
            stride: [s, s],
            dilation: [1, 1],
            pad: [k / 2; 4],
            groups,
            tf_same: false,
        };
        let w = vec![0.01f32; cout * cin / groups * k * k];
        let direct = Conv2d::new(g, &w, None, Act::Relu);
        let fast = Conv2d::for_inference(g, &w, None, Act::Relu);
        let x = vec![0.5f32; n * h * h * cin];
        let (oh, ow) = g.output_hw(h, h).unwrap();
        let mut out = vec![0f32; n * oh * ow * cout];
        let f4 = fast
            .is_winograd()
            .then(|| Conv2d::winograd(g, &w, None, Act::Relu, Tiles::F4));
        let convs: Vec<(&str, &Conv2d)> = match &f4 {
            Some(f4) => vec![("direct", &direct), ("wino F2", &fast), ("wino F4", f4)],
            None => vec![("", &direct)],
        };
        for (kind, conv) in convs {
            conv.forward(&x, n, h, h, &mut out, None, false);
            let reps = 20;
            let mut best = f64::MAX;
            for _ in 0..reps {
                let t = Instant::now();
                conv.forward(&x, n, h, h, &mut out, None, false);
                best = best.min(t.elapsed().as_secs_f64());
            }
            let flops = 2.0 * g.macs(h, h) as f64 * n as f64;
            println!(
                "{name:<22} {kind:<9} {:>8.3} ms {:>7.1} GFLOP/s",
                best * 1e3,
                flops / best / 1e9
            );
        }
    }
}
