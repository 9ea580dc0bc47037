//! The int8 kernels against hand-computed values and an independent integer / f64 reference,
//! on both instruction sets in one process.

use super::gemm::{qgemm_on, quantize_rows_on, QKernel, PAD};
use super::*;
use crate::act::Act;
use crate::conv::reference_conv;
use crate::{ConvGeometry, Isa};

fn lcg(seed: &mut u64) -> u32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*seed >> 33) as u32
}

fn isas() -> Vec<Isa> {
    let mut v = vec![Isa::Scalar];
    if Isa::detect() != Isa::Scalar {
        v.push(Isa::detect());
    }
    v
}

/// Every int8 microkernel this CPU runs (scalar, AVX2, and AVX-512 VNNI where present).
fn kernels() -> Vec<QKernel> {
    let mut v = vec![QKernel::Scalar];
    if Isa::detect() == Isa::Avx2 {
        v.push(QKernel::Avx2);
        if crate::avx512_vnni() {
            v.push(QKernel::Avx512Vnni);
        } else {
            eprintln!("no AVX-512 VNNI on this CPU: its int8 kernel is not checked here");
        }
    }
    v
}

#[test]
fn hand_computed_dot_with_zero_point_scale_bias() {
    // a = [1, 2, 3, 4] with zero point 1 is the real [0, 1, 2, 3] · a_scale;
    // column 0: w = [1, -1, 2, -2] → Σ (a − 1)·w = 0 − 1 + 4 − 6 = −3;
    // column 1: w = [127, 0, 0, −127] → 0 − 381 = −381.
    // scale (a_scale · w_scale) 0.5 and 0.25, bias 1 and −2:
    //   −3 · 0.5 + 1 = −0.5;  −381 · 0.25 − 2 = −97.25; ReLU → 0, 0.
    let w = [1i8, 127, -1, 0, 2, 0, -2, -127]; // [k][n]
    let b = QPackedB::from_kn(&w, 4, 2);
    let a = [1u8, 2, 3, 4];
    for isa in kernels() {
        for (act, want) in [(Act::Identity, [-0.5f32, -97.25]), (Act::Relu, [0.0, 0.0])] {
            let mut c = [f32::NAN; 2];
            let ep = QEpilogue::new(1, ACT_MAX, &[0.5, 0.25], Some(&[1.0, -2.0]), act);
            let rows = QRows::Dense {
                base: a.as_ptr(),
                ld: 4,
            };
            unsafe { qgemm_on(isa, 1, rows, &b, c.as_mut_ptr(), 2, &ep) };
            assert_eq!(c, want, "{isa:?} {act:?}");
        }
    }
}

#[test]
fn gemm_matches_integer_reference_on_every_kernel() {
    let mut s = 11u64;
    // Odd k (padding to groups of four), m not a multiple of MR, n not of NR, the extreme
    // activations (127 for 7-bit, 255 and 0 for 8-bit, which the AVX2 kernel recentres to
    // ±128) and weights ±127: the i16 pair sums that the AVX2 kernel must not saturate.
    for a_max in [ACT_MAX_7BIT, ACT_MAX] {
        for &(m, k, n) in &[
            (1, 1, 1),
            (5, 3, 17),
            (13, 40, 33),
            (4, 64, 16),
            (3, 20, 20),
            // Panels in pairs for the VNNI kernel, and a single one left over (80 = 2 + 2 + 1).
            (6, 37, 80),
            (5, 12, 96),
            (9, 301, 48),
        ] {
            let mut a: Vec<u8> = (0..m * k)
                .map(|_| (lcg(&mut s) % (a_max as u32 + 1)) as u8)
                .collect();
            a[0] = a_max;
            if a.len() > 1 {
                a[1] = a_max;
            }
            if m > 1 && k > 1 {
                // Row 1's first pair is 0, 0: recentred to -128, -128 against w[0][0] = w[1][0].
                a[k] = 0;
                a[k + 1] = 0;
            }
            let mut w: Vec<i8> = (0..k * n)
                .map(|_| (lcg(&mut s) % 255) as i32 - 127)
                .map(|v| v as i8)
                .collect();
            w[0] = 127;
            if n > 1 {
                w[n] = 127; // a[1] × w[1][0]: a saturating pair if the kernel had one
            }
            let kp = gemm::padded_depth(k);
            let mut a_pad = vec![0u8; m * kp];
            for i in 0..m {
                a_pad[i * kp..i * kp + k].copy_from_slice(&a[i * k..(i + 1) * k]);
                // Padding bytes are arbitrary: their weights are zero.
                a_pad[i * kp + k..(i + 1) * kp].fill(200);
            }
            let b = QPackedB::from_kn(&w, k, n);
            let a_zero = 7u8;
            let scale = vec![1.0f32; n];
            let res: Vec<f32> = (0..m * n).map(|i| (i % 5) as f32).collect();
            let mut outs = vec![];
            for isa in kernels() {
                let mut c = vec![f32::NAN; m * n];
                let ep = QEpilogue::new(a_zero, a_max, &scale, None, Act::Identity).with_residual(
                    res.as_ptr(),
                    n,
                    false,
                );
                let rows = QRows::Dense {
                    base: a_pad.as_ptr(),
                    ld: kp,
                };
                unsafe { qgemm_on(isa, m, rows, &b, c.as_mut_ptr(), n, &ep) };
                for i in 0..m {
                    for j in 0..n {
                        let dot: i64 = (0..k)
                            .map(|kk| (a[i * k + kk] as i64 - a_zero as i64) * w[kk * n + j] as i64)
                            .sum();
                        // Small integers: the f32 epilogue is exact.
                        let want = dot as f32 + res[i * n + j];
                        assert_eq!(
                            c[i * n + j],
                            want,
                            "{isa:?} max {a_max} m{m} k{k} n{n} [{i},{j}]"
                        );
                    }
                }
                outs.push(c);
            }
            assert!(outs.windows(2).all(|p| p[0] == p[1]));
        }
    }
}

/// 8-bit activations of 255 against weights of +127 in every position: each `vpmaddubsw` pair
/// would be 2 · 255 · 127 = 64 770, twice what an i16 holds, had the AVX2 kernel summed them
/// in one pass (hand-computed: 8 · 255 · 127 = 259 080).
#[test]
fn eight_bit_activations_do_not_saturate() {
    let (k, n) = (8, 16);
    let w = vec![127i8; k * n];
    let b = QPackedB::from_kn(&w, k, n);
    let a = vec![255u8; k];
    for isa in kernels() {
        let mut c = vec![0f32; n];
        let ep = QEpilogue::new(0, ACT_MAX, &[1.0; 16], None, Act::Identity);
        let rows = QRows::Dense {
            base: a.as_ptr(),
            ld: k,
        };
        unsafe { qgemm_on(isa, 1, rows, &b, c.as_mut_ptr(), n, &ep) };
        assert_eq!(c, vec![259_080.0; n], "{isa:?}");
    }
}

#[test]
fn indirect_rows_read_the_zero_row_for_padding() {
    // Two taps; row 0 reads pixels 1 and PAD, row 1 reads 0 and 1 (k = 2, padded to 4).
    let pixels = [10u8, 20, 0, 0, 30, 40, 0, 0];
    let zero = [5u8; 4];
    let offsets = [4u32, PAD, 0, 4];
    // Weights [t][k][n] with n = 1: tap 0 = [1, 2], tap 1 = [3, 4].
    let b = QPackedB::pack(2, 2, 1, |t, k, _| [[1i8, 2], [3, 4]][t][k]);
    for isa in kernels() {
        let mut c = [0f32; 2];
        let ep = QEpilogue::new(5, ACT_MAX, &[1.0], None, Act::Identity);
        let rows = QRows::Indirect {
            base: pixels.as_ptr(),
            offsets: &offsets,
            zero: zero.as_ptr(),
        };
        unsafe { qgemm_on(isa, 2, rows, &b, c.as_mut_ptr(), 1, &ep) };
        // row 0: (30−5)·1 + (40−5)·2 + 0 = 95; row 1: 5·1 + 15·2 + 25·3 + 35·4 = 250.
        assert_eq!(c, [95.0, 250.0], "{isa:?}");
    }
}

#[test]
fn quantize_rounds_half_to_even_clamps_and_pads() {
    // scale 0.5, zero 10: 0.25 → 0.5 → 0 (even) → 10, 0.75 → 1.5 → 2 → 12, −6 → −12 → 0,
    // 200 → 400 → the maximum (127 or 255), 60 → 130 → 127 in 7 bits, NaN → 0; 40 values so
    // the vector path and the tail both run.
    let mut x = vec![0.25f32, 0.75, -6.0, 200.0, 60.0, f32::NAN];
    x.extend((0..34).map(|i| i as f32 * 0.3 - 5.0));
    let cases = [
        (ACT_MAX_7BIT, [10u8, 12, 0, 127, 127, 0]),
        (ACT_MAX, [10, 12, 0, 255, 130, 0]),
    ];
    for (max, want_head) in cases {
        let mut outs = vec![];
        for isa in isas() {
            let mut q = vec![0u8; 2 * 44];
            let xx: Vec<f32> = x.iter().chain(&x).copied().collect();
            quantize_rows_on(isa, &xx, 2, 40, 0.5, 10, max, &mut q, 44);
            assert_eq!(&q[..6], &want_head, "{isa:?} max {max}");
            assert_eq!(&q[40..44], &[10; 4], "{isa:?} padding");
            for (i, &v) in x.iter().enumerate() {
                assert_eq!(q[44 + i], quantize_one(v, 0.5, 10, max), "{isa:?} [{i}]");
            }
            // Unpadded rows take the contiguous path.
            let mut flat = vec![0u8; 80];
            quantize_rows_on(isa, &xx, 2, 40, 0.5, 10, max, &mut flat, 40);
            for (i, &v) in xx.iter().enumerate() {
                assert_eq!(flat[i], quantize_one(v, 0.5, 10, max), "{isa:?} flat [{i}]");
            }
            outs.push(q);
        }
        assert!(outs.windows(2).all(|p| p[0] == p[1]));
    }
}

/// ONNX QuantizeLinear's order: round `x / scale`, then add the zero point. With an odd zero
/// point 11, 0.25 / 0.5 = 0.5 rounds to 0 (→ 11), where rounding 0.5 + 11 = 11.5 would give 12;
/// and 1.55 / 0.1 is 15.499999 in f32 (→ 15 + 11 = 26), where 1.55 · (1 / 0.1) is 15.5 (→ 16).
#[test]
fn quantize_divides_then_rounds_then_adds_the_zero_point() {
    assert_eq!(1.55f32 / 0.1f32, 15.499999);
    assert_eq!(1.55f32 * (1.0 / 0.1f32), 15.5);
    let xs: Vec<f32> = std::iter::repeat_n([0.25f32, 1.55], 16).flatten().collect();
    for isa in isas() {
        let mut out = vec![0u8; 32];
        quantize_rows_on(isa, &xs, 1, 32, 0.5, 11, ACT_MAX, &mut out, 32);
        assert_eq!(out[0], 11, "{isa:?}");
        quantize_rows_on(isa, &xs, 1, 32, 0.1, 11, ACT_MAX, &mut out, 32);
        assert_eq!(out[1], 26, "{isa:?}");
        for (i, &v) in xs.iter().enumerate() {
            assert_eq!(out[i], quantize_one(v, 0.1, 11, ACT_MAX), "{isa:?} [{i}]");
        }
    }
}

/// A quantized conv equals the f64 conv of its dequantized input and weights.
#[test]
fn qconv_matches_reference_on_dequantized_values() {
    let mut s = 3u64;
    for (i_case, &(n, h, w, cin, cout, k, stride, pad)) in [
        (1, 5, 5, 3, 8, 3, 1, 1),
        (2, 7, 6, 5, 17, 3, 2, 1),
        (1, 4, 4, 16, 20, 1, 1, 0),
        (1, 9, 9, 4, 6, 5, 2, 2),
        // 3×3 over many channels (several groups of four k per tap).
        (1, 6, 5, 20, 9, 3, 1, 1),
        (2, 7, 7, 16, 5, 3, 2, 1),
    ]
    .iter()
    .enumerate()
    {
        // 7-bit and 8-bit inputs in turn.
        let in_max = if i_case % 2 == 0 {
            ACT_MAX
        } else {
            ACT_MAX_7BIT
        };
        let geom = ConvGeometry {
            in_ch: cin,
            out_ch: cout,
            kernel: [k, k],
            stride: [stride, stride],
            dilation: [1, 1],
            pad: [pad; 4],
            groups: 1,
            tf_same: false,
        };
        let (in_scale, in_zero) = (0.05f32, 37u8);
        // Inputs exactly on the quantization grid, so quantizing them loses nothing.
        let x: Vec<f32> = (0..n * h * w * cin)
            .map(|_| ((lcg(&mut s) % (in_max as u32 + 1)) as f32 - in_zero as f32) * in_scale)
            .collect();
        let wq: Vec<i8> = (0..cout * cin * k * k)
            .map(|_| (lcg(&mut s) % 255) as i32 - 127)
            .map(|v| v as i8)
            .collect();
        let w_scale: Vec<f32> = (0..cout).map(|o| 0.001 * (o + 1) as f32).collect();
        let bias: Vec<f32> = (0..cout).map(|o| o as f32 * 0.1 - 0.5).collect();
        let w_real: Vec<f32> = wq
            .iter()
            .enumerate()
            .map(|(i, &q)| q as f32 * w_scale[i / (cin * k * k)])
            .collect();
        let want = reference_conv(&geom, &x, n, h, w, &w_real, &bias);
        let conv = QConv2d::new(
            geom,
            &wq,
            &w_scale,
            Some(&bias),
            Act::Relu,
            in_scale,
            in_zero,
            in_max,
        );
        let (oh, ow) = geom.output_hw(h, w).unwrap();
        let mut out = vec![f32::NAN; n * oh * ow * cout];
        conv.forward(&x, n, h, w, &mut out, None, false);
        let max = want.iter().fold(0f64, |m, v| m.max(v.abs()));
        for (i, (&got, &want)) in out.iter().zip(&want).enumerate() {
            let want = want.max(0.0);
            assert!(
                (got as f64 - want).abs() <= 1e-5 * max.max(1.0),
                "k{k} cin{cin} [{i}]: {got} vs {want}"
            );
        }
    }
}
