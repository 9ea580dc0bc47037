//! Times the training convolutions (forward, input gradient, weight gradient) on the small-image
//! models' layer shapes: LeNet-5 at batch 64 and resnet20_cifar at batch 128.
//!
//! `cargo run --release -p kestrel-kernels --example conv_train_speed [NAME-FILTER]`
use std::time::Instant;

use kestrel_kernels::conv_train::{
    conv2d_forward_nchw, conv2d_input_grad_nchw, conv2d_weight_grad_nchw,
};
use kestrel_kernels::ConvGeometry;

fn geom(cin: usize, cout: usize, k: usize, s: usize, p: usize) -> ConvGeometry {
    ConvGeometry {
        in_ch: cin,
        out_ch: cout,
        kernel: [k, k],
        stride: [s, s],
        dilation: [1, 1],
        pad: [p; 4],
        groups: 1,
        tf_same: false,
    }
}

fn min_ms(mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..9)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[0] // the minimum: the least disturbed run on a shared machine
}

fn main() {
    let layers = [
        ("lenet conv1 1→6 5×5 @32", 64, 32, geom(1, 6, 5, 1, 0)),
        ("lenet conv2 6→16 5×5 @14", 64, 14, geom(6, 16, 5, 1, 0)),
        ("lenet conv3 16→120 5×5 @5", 64, 5, geom(16, 120, 5, 1, 0)),
        ("r20 stem 3→16 3×3 @32", 128, 32, geom(3, 16, 3, 1, 1)),
        ("r20 16→16 3×3 @32", 128, 32, geom(16, 16, 3, 1, 1)),
        ("r20 16→32 3×3/2 @32", 128, 32, geom(16, 32, 3, 2, 1)),
        ("r20 32→32 3×3 @16", 128, 16, geom(32, 32, 3, 1, 1)),
        ("r20 64→64 3×3 @8", 128, 8, geom(64, 64, 3, 1, 1)),
        // fashion-fast: resnet20_cifar at Fashion-MNIST's own 28 px.
        ("r20 16→16 3×3 @28", 128, 28, geom(16, 16, 3, 1, 1)),
        ("r20 32→32 3×3 @14", 128, 14, geom(32, 32, 3, 1, 1)),
        ("r20 64→64 3×3 @7", 128, 7, geom(64, 64, 3, 1, 1)),
        ("r20 16→32 1×1/2 @28", 128, 28, geom(16, 32, 1, 2, 0)),
    ];
    println!(
        "{:<28} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "layer", "fwd ms", "dx ms", "dw ms", "GFLOP/s", "fwd", "dx", "dw"
    );
    let filter = std::env::args().nth(1).unwrap_or_default();
    for (name, n, hw, g) in layers {
        if !name.contains(&filter) {
            continue;
        }
        let x: Vec<f32> = (0..n * g.in_ch * hw * hw)
            .map(|i| (i % 13) as f32 * 0.1)
            .collect();
        let w: Vec<f32> = (0..g.out_ch * g.in_ch * 9.max(g.kernel[0] * g.kernel[1]))
            .take(g.out_ch * g.in_ch * g.kernel[0] * g.kernel[1])
            .map(|i| (i % 7) as f32 * 0.1)
            .collect();
        let (y, oh, ow) = conv2d_forward_nchw(&g, &x, n, hw, hw, &w);
        let f = min_ms(|| {
            conv2d_forward_nchw(&g, &x, n, hw, hw, &w);
        });
        let dx = min_ms(|| {
            conv2d_input_grad_nchw(&g, &y, n, hw, hw, oh, ow, &w);
        });
        let dw = min_ms(|| {
            conv2d_weight_grad_nchw(&g, &x, n, hw, hw, &y, oh, ow);
        });
        let flops = 2.0 * (n * oh * ow * g.out_ch * g.in_ch * g.kernel[0] * g.kernel[1]) as f64;
        println!(
            "{name:<28} {f:>9.3} {dx:>9.3} {dw:>9.3} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            3.0 * flops / ((f + dx + dw) * 1e6),
            flops / (f * 1e6),
            flops / (dx * 1e6),
            flops / (dw * 1e6),
        );
    }
}
