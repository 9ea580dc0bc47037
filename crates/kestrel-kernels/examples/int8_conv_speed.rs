//! fp32 vs int8 time of single convolutions at batch 1, best of 20, both in one process:
//! `cargo run --release -p kestrel-kernels --example int8_conv_speed` (no burn: builds fast;
//! `KESTREL_ISA=avx2` times the AVX2 kernels). int8 columns: 8-bit and 7-bit activations.
use kestrel_kernels::int8::{ACT_MAX, ACT_MAX_7BIT};
use kestrel_kernels::{Act, Conv2d, ConvGeometry, QConv2d};
use std::time::Instant;

fn best_ms(mut f: impl FnMut()) -> f64 {
    f();
    (0..20)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    let shapes: &[(&str, usize, usize, usize, usize, usize)] = &[
        // name, h, cin, cout, k, stride
        ("stem 7x7 3->64 @224 s2", 224, 3, 64, 7, 2),
        ("stem 3x3 3->32 @224 s2", 224, 3, 32, 3, 2),
        ("3x3 64->64 @56", 56, 64, 64, 3, 1),
        ("1x1 256->64 @56", 56, 256, 64, 1, 1),
        ("1x1 32->96 @112", 112, 32, 96, 1, 1),
        // mobilenetv2_100's costliest int8 convs (1x1 with few input channels).
        ("1x1 16->96 @112", 112, 16, 96, 1, 1),
        ("1x1 24->144 @56", 56, 24, 144, 1, 1),
    ];
    println!(
        "{:<24} {:>9} {:>9} {:>9} {:>8}",
        "conv", "fp32 ms", "int8 ms", "7-bit ms", "speed-up"
    );
    for &(name, h, cin, cout, k, s) in shapes {
        let g = ConvGeometry {
            in_ch: cin,
            out_ch: cout,
            kernel: [k, k],
            stride: [s, s],
            dilation: [1, 1],
            pad: [k / 2; 4],
            groups: 1,
            tf_same: false,
        };
        let taps = cin * k * k;
        let w: Vec<f32> = (0..cout * taps).map(|i| (i % 7) as f32 * 0.01).collect();
        let wq: Vec<i8> = (0..cout * taps).map(|i| (i % 255) as i8 - 127).collect();
        let x: Vec<f32> = (0..h * h * cin).map(|i| (i % 11) as f32 * 0.1).collect();
        let (oh, ow) = g.output_hw(h, h).unwrap();
        let mut out = vec![0f32; oh * ow * cout];
        let f32_conv = Conv2d::new(g, &w, None, Act::Relu);
        let q_conv = QConv2d::new(g, &wq, &vec![0.01; cout], None, Act::Relu, 0.01, 3, ACT_MAX);
        let q7_conv = QConv2d::new(
            g,
            &wq,
            &vec![0.01; cout],
            None,
            Act::Relu,
            0.01,
            3,
            ACT_MAX_7BIT,
        );
        let t32 = best_ms(|| {
            f32_conv.forward(&x, 1, h, h, &mut out, None, false);
        });
        let t8 = best_ms(|| {
            q_conv.forward(&x, 1, h, h, &mut out, None, false);
        });
        let t7 = best_ms(|| {
            q7_conv.forward(&x, 1, h, h, &mut out, None, false);
        });
        println!(
            "{name:<24} {t32:>9.3} {t8:>9.3} {t7:>9.3} {:>7.2}x",
            t32 / t8
        );
    }
}
