//! Convolutions against a direct f64 reference: dense, grouped, depthwise, strided, dilated,
//! asymmetric padding, with bias, activation and residual in the epilogue.

use kestrel_kernels::conv::reference_conv;
use kestrel_kernels::{Act, Conv2d, ConvGeometry};

fn lcg(seed: &mut u64) -> f32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
}

#[allow(clippy::too_many_arguments)]
fn check(
    n: usize,
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    dil: usize,
    pad: [usize; 4],
    groups: usize,
    act: Act,
    residual: bool,
) {
    check_with(
        n, h, w, cin, cout, k, stride, dil, pad, groups, act, residual, false,
    )
}

#[allow(clippy::too_many_arguments)]
fn check_with(
    n: usize,
    h: usize,
    w: usize,
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    dil: usize,
    pad: [usize; 4],
    groups: usize,
    act: Act,
    residual: bool,
    tf_same: bool,
) {
    let mut s = (n * 131 + h * 17 + cin * 7 + cout + k) as u64;
    let g = ConvGeometry {
        in_ch: cin,
        out_ch: cout,
        kernel: [k, k],
        stride: [stride, stride],
        dilation: [dil, dil],
        pad,
        groups,
        tf_same,
    };
    let x: Vec<f32> = (0..n * h * w * cin).map(|_| lcg(&mut s)).collect();
    let wt: Vec<f32> = (0..cout * cin / groups * k * k)
        .map(|_| lcg(&mut s))
        .collect();
    let bias: Vec<f32> = (0..cout).map(|_| lcg(&mut s)).collect();
    let conv = Conv2d::new(g, &wt, Some(&bias), act);
    let (oh, ow) = g.output_hw(h, w).unwrap();
    let res: Vec<f32> = (0..n * oh * ow * cout).map(|_| lcg(&mut s)).collect();
    let mut out = vec![f32::NAN; n * oh * ow * cout];
    // Twice: the second run reuses the cached indirection.
    for _ in 0..2 {
        conv.forward(&x, n, h, w, &mut out, residual.then_some(&res[..]), false);
    }
    let want = reference_conv(&g, &x, n, h, w, &wt, &bias);
    for (i, (&got, &r)) in out.iter().zip(&want).enumerate() {
        let v = r as f32 + if residual { res[i] } else { 0.0 };
        let want = act.apply(v);
        assert!(
            (got - want).abs() <= 2e-5 * (1.0 + want.abs()),
            "{g:?} n{n} {h}x{w} at {i}: {got} vs {want}"
        );
    }
}

#[test]
fn dense_convolutions() {
    check(1, 7, 9, 3, 8, 3, 1, 1, [1, 1, 1, 1], 1, Act::Relu, false);
    check(
        2,
        16,
        16,
        3,
        32,
        7,
        2,
        1,
        [3, 3, 3, 3],
        1,
        Act::Identity,
        false,
    );
    check(
        1,
        11,
        10,
        20,
        40,
        3,
        2,
        1,
        [0, 1, 0, 1],
        1,
        Act::Silu,
        false,
    );
    check(2, 8, 8, 33, 17, 1, 1, 1, [0; 4], 1, Act::Relu, true);
    check(1, 9, 9, 16, 24, 1, 2, 1, [0; 4], 1, Act::Identity, false);
    check(1, 12, 12, 8, 8, 3, 1, 2, [2, 2, 2, 2], 1, Act::Relu6, true);
    // Depth split into K blocks: groups of whole taps (64 channels: 4 taps per block) and
    // slices of one tap (300 channels).
    check(1, 9, 9, 64, 24, 3, 1, 1, [1, 1, 1, 1], 1, Act::Relu, true);
    check(2, 5, 5, 300, 20, 1, 1, 1, [0; 4], 1, Act::Silu, true);
    check(
        1,
        6,
        6,
        300,
        17,
        3,
        2,
        1,
        [1, 1, 1, 1],
        1,
        Act::Identity,
        false,
    );
}

#[test]
fn grouped_convolutions() {
    check(2, 9, 9, 32, 32, 3, 1, 1, [1, 1, 1, 1], 8, Act::Relu, false);
    check(
        1,
        10,
        10,
        24,
        48,
        3,
        2,
        1,
        [1, 1, 1, 1],
        3,
        Act::HardSwish,
        true,
    );
    check(1, 7, 7, 640, 64, 1, 1, 1, [0; 4], 2, Act::Relu, true);
}

#[test]
fn depthwise_convolutions() {
    for (k, stride, pad) in [
        (3, 1, [1, 1, 1, 1]),
        (3, 2, [1, 1, 1, 1]),
        (3, 2, [0, 1, 0, 1]),
        (5, 2, [2, 2, 2, 2]),
        (7, 1, [3, 3, 3, 3]),
    ] {
        for c in [8, 16, 24, 37] {
            check(2, 11, 13, c, c, k, stride, 1, pad, c, Act::Relu6, false);
            check(1, 8, 8, c, c, k, stride, 1, pad, c, Act::Gelu, true);
        }
        // Rows wide enough for several four-pixel runs and a remainder, a row shorter than the
        // kernel's reach, and dilation.
        check(
            1,
            5,
            31,
            16,
            16,
            k,
            stride,
            1,
            pad,
            16,
            Act::HardSwish,
            true,
        );
        check(1, 9, 3, 8, 8, k, stride, 1, pad, 8, Act::Relu, false);
        check(1, 12, 27, 12, 12, k, stride, 2, pad, 12, Act::Silu, false);
    }
}

#[test]
fn tf_same_padding() {
    // Odd and even sizes, stride 1 and 2: the odd pixel of padding goes after.
    assert_eq!(
        ConvGeometry {
            in_ch: 1,
            out_ch: 1,
            kernel: [3, 3],
            stride: [2, 2],
            dilation: [1, 1],
            pad: [0; 4],
            groups: 1,
            tf_same: true
        }
        .pads(224, 225),
        [0, 1, 1, 1]
    );
    for (h, k, s) in [(10, 3, 2), (11, 3, 2), (9, 5, 2), (8, 3, 1)] {
        check_with(1, h, h, 8, 16, k, s, 1, [0; 4], 1, Act::Silu, false, true);
        check_with(1, h, h, 16, 16, k, s, 1, [0; 4], 16, Act::Silu, false, true);
        // A 3-channel stem: kernel rows merged into one tap over a padded copy.
        check_with(
            2,
            h,
            h + 1,
            3,
            16,
            k,
            s,
            1,
            [0; 4],
            1,
            Act::Relu6,
            true,
            true,
        );
    }
}

/// A 1×1 expand conv, a depthwise conv and optionally a 1×1 projection, fused band by band,
/// against the direct f64 convs one after the other. `h × w × ce` large enough for several
/// bands, strides 1 and 2, odd sizes, 5×5 and dilated kernels, TF "same" padding, a residual on
/// the last conv, and a batch of small maps (fewer rows than bands wanted: one-row bands).
#[test]
fn pointwise_depthwise_pointwise_fused_matches_the_convs() {
    #[allow(clippy::type_complexity)]
    let cases: &[(usize, usize, usize, usize, usize, usize, usize, bool, bool)] = &[
        // n, h, w, cin, ce, k, stride, tf_same, residual
        (1, 64, 64, 16, 96, 3, 1, false, false),
        (1, 65, 63, 16, 96, 3, 2, false, false),
        (2, 33, 40, 24, 144, 5, 2, true, false),
        (1, 48, 48, 8, 72, 3, 1, false, true),
        (3, 7, 7, 40, 240, 5, 1, false, true),
    ];
    for (ci, &(n, h, w, cin, ce, k, stride, tf_same, residual)) in cases.iter().enumerate() {
        for project in [false, true] {
            let dil = if ci == 3 { 2 } else { 1 };
            let mut s = 99 + ci as u64;
            let pointwise = |cin: usize, cout: usize| ConvGeometry {
                in_ch: cin,
                out_ch: cout,
                kernel: [1, 1],
                stride: [1, 1],
                dilation: [1, 1],
                pad: [0; 4],
                groups: 1,
                tf_same: false,
            };
            let pw_g = pointwise(cin, ce);
            let p = if tf_same { 0 } else { dil * (k - 1) / 2 };
            let dw_g = ConvGeometry {
                in_ch: ce,
                out_ch: ce,
                kernel: [k, k],
                stride: [stride, stride],
                dilation: [dil, dil],
                pad: [p; 4],
                groups: ce,
                tf_same,
            };
            let cout = if project { cin + 8 } else { ce };
            let pj_g = pointwise(ce, cout);
            let mut draw = |len: usize| -> Vec<f32> { (0..len).map(|_| lcg(&mut s)).collect() };
            let x = draw(n * h * w * cin);
            let (pw_w, pw_b) = (draw(ce * cin), draw(ce));
            let (dw_w, dw_b) = (draw(ce * k * k), draw(ce));
            let (pj_w, pj_b) = (draw(cout * ce), draw(cout));
            let (oh, ow) = dw_g.output_hw(h, w).unwrap();
            let res = draw(n * oh * ow * cout);
            let pw = Conv2d::new(pw_g, &pw_w, Some(&pw_b), Act::Relu6);
            let dw = Conv2d::new(dw_g, &dw_w, Some(&dw_b), Act::HardSwish);
            let pj = Conv2d::new(pj_g, &pj_w, Some(&pj_b), Act::Identity);
            assert!(pw.fuses_with_depthwise(&dw) && pj.is_dense_pointwise());
            let mut out = vec![f32::NAN; n * oh * ow * cout];
            let got_hw = pw.forward_then_depthwise(
                &dw,
                project.then_some(&pj),
                &x,
                n,
                h,
                w,
                &mut out,
                residual.then_some(&res[..]),
                false,
            );
            assert_eq!(got_hw, (oh, ow));
            let act = |v: Vec<f64>, a: Act| -> Vec<f32> {
                v.iter().map(|&v| a.apply(v as f32)).collect()
            };
            let mid = act(reference_conv(&pw_g, &x, n, h, w, &pw_w, &pw_b), Act::Relu6);
            let dwo = reference_conv(&dw_g, &mid, n, h, w, &dw_w, &dw_b);
            let (want, last_act) = if project {
                let dwo = act(dwo, Act::HardSwish);
                (
                    reference_conv(&pj_g, &dwo, n, oh, ow, &pj_w, &pj_b),
                    Act::Identity,
                )
            } else {
                (dwo, Act::HardSwish)
            };
            for (i, (&got, &r)) in out.iter().zip(&want).enumerate() {
                let v = r as f32 + if residual { res[i] } else { 0.0 };
                let want = last_act.apply(v);
                assert!(
                    (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                    "case {ci} (projection: {project}) at {i}: {got} vs {want}"
                );
            }
        }
    }
}

/// Winograd F(2×2, 3×3) (the inference engine's 3×3 stride-1 convs) and F(4×4, 3×3) against
/// the f64 direct reference: sizes that leave partial tiles, zero and asymmetric padding,
/// channel counts off the 8-lane vectors, a batch, and the residual before and after the
/// activation.
#[test]
fn winograd_convolutions_match_the_direct_reference() {
    use kestrel_kernels::winograd::Tiles;
    let cases: &[(
        usize,
        usize,
        usize,
        usize,
        usize,
        [usize; 4],
        Act,
        Option<bool>,
    )] = &[
        // n, h, w, cin, cout, pad, act, residual (Some(add_after_act))
        (1, 14, 14, 64, 64, [1, 1, 1, 1], Act::Relu, None),
        (2, 9, 11, 37, 45, [1, 1, 1, 1], Act::Identity, Some(false)),
        (1, 7, 7, 32, 40, [1, 1, 1, 1], Act::Relu6, Some(true)),
        (1, 10, 13, 48, 33, [0, 0, 0, 0], Act::Silu, None),
        (1, 6, 5, 40, 32, [2, 0, 1, 2], Act::Relu, Some(false)),
        (2, 5, 6, 256, 203, [0, 1, 1, 0], Act::Identity, Some(true)),
    ];
    // F(4×4) rounds more than the direct sum (its transforms scale by up to 8): 0.6–10e-5
    // measured on these cases (the most at 256 channels), F(2×2) ≤ 8e-6, direct ~1e-6. A
    // wrong tap or tile edge is off by O(1).
    for (tiles, bar) in [(Tiles::F2, 2e-5), (Tiles::F4, 2e-4)] {
        for &(n, h, w, cin, cout, pad, act, residual) in cases {
            let mut s = (n * 31 + h * 7 + w + cin * 3 + cout) as u64;
            let g = ConvGeometry {
                in_ch: cin,
                out_ch: cout,
                kernel: [3, 3],
                stride: [1, 1],
                dilation: [1, 1],
                pad,
                groups: 1,
                tf_same: false,
            };
            let x: Vec<f32> = (0..n * h * w * cin).map(|_| lcg(&mut s)).collect();
            let wt: Vec<f32> = (0..cout * cin * 9).map(|_| lcg(&mut s)).collect();
            let bias: Vec<f32> = (0..cout).map(|_| lcg(&mut s)).collect();
            let conv = Conv2d::winograd(g, &wt, Some(&bias), act, tiles);
            // What the engine builds for this shape is Winograd too.
            assert!(
                Conv2d::for_inference(g, &wt, Some(&bias), act).is_winograd(),
                "{g:?}"
            );
            let (oh, ow) = g.output_hw(h, w).unwrap();
            let res: Vec<f32> = (0..n * oh * ow * cout).map(|_| lcg(&mut s)).collect();
            let mut out = vec![f32::NAN; n * oh * ow * cout];
            let want = reference_conv(&g, &x, n, h, w, &wt, &bias);
            // Twice: the second call reuses the scratch buffers.
            for _ in 0..2 {
                conv.forward(
                    &x,
                    n,
                    h,
                    w,
                    &mut out,
                    residual.map(|_| &res[..]),
                    residual == Some(true),
                );
                let mut worst = 0f64;
                for (i, (&got, &r)) in out.iter().zip(&want).enumerate() {
                    let want = match residual {
                        None => act.apply(r as f32),
                        Some(false) => act.apply(r as f32 + res[i]),
                        Some(true) => act.apply(r as f32) + res[i],
                    };
                    worst = worst.max(((got - want).abs() / (1.0 + want.abs())) as f64);
                }
                assert!(
                    worst <= bar,
                    "{tiles:?} {g:?} n{n} {h}x{w}: relative error {worst}"
                );
            }
        }
    }
}
