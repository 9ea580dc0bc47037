//! Convolution for training: the forward pass and both gradients of a dense (groups = 1)
//! convolution, all three on the inference engine's packed GEMM ([`igemm`]), so training and
//! inference share one kernel. The `_nhwc` entry points take and return NHWC activations (what
//! training keeps between kestrel's ops); the `_nchw` ones wrap them with transposes for
//! PyTorch's layout.
//!
//! - **Forward:** [`Conv2d`] on the NHWC input (indirect GEMM, no im2col buffer).
//! - **Input gradient:** a transposed convolution. Split by the stride's phases (sub-pixel
//!   decomposition), each phase of `dx` is an ordinary indirect GEMM over `dy` with the subset
//!   of kernel taps that reach it, so no multiplication is spent on the zeros a dilated `dy`
//!   would hold.
//! - **Weight gradient:** `dW[(tap, ci), co] = Σ_pixels col[(tap, ci), p] · dy[p, co]`, reduced
//!   over chunks of pixels that span image boundaries (so late stages with 7×7 maps still get a
//!   deep reduction), accumulating into `dW` across chunks.

use crate::act::Act;
use crate::conv::{shared_offsets, Conv2d, ConvGeometry};
use crate::gemm::{igemm, Epilogue, PackedB, Rows, PAD};
use crate::threads::parallel_for;
use crate::{written_vec, SendPtr};

/// `[n][c][hw]` → `[n][hw][c]`.
pub fn nchw_to_nhwc(x: &[f32], n: usize, c: usize, hw: usize) -> Vec<f32> {
    // SAFETY: the transpose writes every element.
    unsafe { written_vec(x.len(), |out| transpose_batched(x, out, n, c, hw)) }
}

/// `[n][hw][c]` → `[n][c][hw]`.
pub fn nhwc_to_nchw(x: &[f32], n: usize, hw: usize, c: usize) -> Vec<f32> {
    // SAFETY: the transpose writes every element.
    unsafe { written_vec(x.len(), |out| transpose_batched(x, out, n, hw, c)) }
}

/// Transposes each of `n` row-major `rows × cols` matrices, in cache blocks, across threads:
/// 8 × 8 tiles through AVX2 registers where the CPU has it, the ragged edges element by element.
/// `dst` (`src.len()` floats) is written, never read.
fn transpose_batched(src: &[f32], dst: *mut f32, n: usize, rows: usize, cols: usize) {
    assert_eq!(src.len(), n * rows * cols);
    if rows == 1 || cols == 1 {
        // A vector's transpose is itself (one-channel images: LeNet's input).
        // SAFETY: dst holds src.len() floats and does not overlap src.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
        return;
    }
    const B: usize = 32;
    let row_blocks = rows.div_ceil(B);
    let out = SendPtr(dst);
    let avx2 = crate::Isa::detect() == crate::Isa::Avx2;
    parallel_for(n * row_blocks, |task| {
        let (img, rb) = (task / row_blocks, task % row_blocks);
        let s = &src[img * rows * cols..(img + 1) * rows * cols];
        let out = out;
        // SAFETY: task (img, rb) writes only rows r0..r1 of its image's source, i.e. columns
        // r0..r1 of the destination; every index is inside the image.
        let d = unsafe { out.0.add(img * rows * cols) };
        let r0 = rb * B;
        let r1 = (r0 + B).min(rows);
        for c0 in (0..cols).step_by(B) {
            let c1 = (c0 + B).min(cols);
            let mut done_r = r0;
            #[cfg(target_arch = "x86_64")]
            if avx2 {
                let mut r = r0;
                let full_c = c0 + (c1 - c0) / 8 * 8;
                while r + 8 <= r1 {
                    for c in (c0..full_c).step_by(8) {
                        // SAFETY: rows r..r+8 and columns c..c+8 lie inside the matrix.
                        unsafe {
                            avx2_transpose_8x8(
                                s.as_ptr().add(r * cols + c),
                                cols,
                                d.add(c * rows + r),
                                rows,
                            )
                        };
                    }
                    for rr in r..r + 8 {
                        for c in full_c..c1 {
                            unsafe { *d.add(c * rows + rr) = s[rr * cols + c] };
                        }
                    }
                    r += 8;
                }
                done_r = r;
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = avx2;
            for r in done_r..r1 {
                for c in c0..c1 {
                    unsafe { *d.add(c * rows + r) = s[r * cols + c] };
                }
            }
        }
    });
}

/// `dst[j·ld_dst + i] = src[i·ld_src + j]` for an 8 × 8 tile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_transpose_8x8(src: *const f32, ld_src: usize, dst: *mut f32, ld_dst: usize) {
    use std::arch::x86_64::*;
    let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(src.add(i * ld_src)));
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let u0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let u1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let u2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let u3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let u4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let u5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let u6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let u7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    let o = [
        _mm256_permute2f128_ps::<0x20>(u0, u4),
        _mm256_permute2f128_ps::<0x20>(u1, u5),
        _mm256_permute2f128_ps::<0x20>(u2, u6),
        _mm256_permute2f128_ps::<0x20>(u3, u7),
        _mm256_permute2f128_ps::<0x31>(u0, u4),
        _mm256_permute2f128_ps::<0x31>(u1, u5),
        _mm256_permute2f128_ps::<0x31>(u2, u6),
        _mm256_permute2f128_ps::<0x31>(u3, u7),
    ];
    for (j, v) in o.iter().enumerate() {
        _mm256_storeu_ps(dst.add(j * ld_dst), *v);
    }
}

/// Checks that `geom` is a dense convolution this module handles.
fn check_dense(geom: &ConvGeometry) {
    assert_eq!(geom.groups, 1, "conv_train handles groups = 1 only");
    assert!(!geom.tf_same, "conv_train takes explicit padding");
}

/// A dense convolution's output size on an `h × w` input; panics when the kernel does not fit.
fn dense_output_hw(geom: &ConvGeometry, h: usize, w: usize) -> (usize, usize) {
    check_dense(geom);
    geom.output_hw(h, w)
        .unwrap_or_else(|| panic!("conv {:?} does not fit a {h}×{w} input", geom.kernel))
}

/// Forward: `x` NCHW `[n, in_ch, h, w]`, `weight` OIHW; returns NCHW `[n, out_ch, oh, ow]`
/// with `(oh, ow)`.
pub fn conv2d_forward_nchw(
    geom: &ConvGeometry,
    x: &[f32],
    n: usize,
    h: usize,
    w: usize,
    weight: &[f32],
) -> (Vec<f32>, usize, usize) {
    let (oh, ow) = dense_output_hw(geom, h, w);
    if forward_is_direct_nchw(geom) {
        return (
            direct_forward_nchw(geom, x, n, h, w, oh, ow, weight),
            oh,
            ow,
        );
    }
    let x_nhwc = nchw_to_nhwc(x, n, geom.in_ch, h * w);
    let (y, oh, ow) = conv2d_forward_nhwc(geom, &x_nhwc, n, h, w, weight);
    (nhwc_to_nchw(&y, n, oh * ow, geom.out_ch), oh, ow)
}

/// Whether [`conv2d_forward_nchw`] runs `geom` as a direct convolution on NCHW planes (1–3
/// input channels at stride 1), where an NHWC input would only be transposed back.
pub fn forward_is_direct_nchw(geom: &ConvGeometry) -> bool {
    geom.groups == 1
        && geom.in_ch <= DIRECT_MAX_IN
        && geom.stride == [1, 1]
        && geom.dilation == [1, 1]
}

/// Forward on NHWC activations: `x` `[n, h, w, in_ch]`, `weight` OIHW; returns NHWC
/// `[n, oh, ow, out_ch]` with `(oh, ow)`. Training keeps activations NHWC between kestrel's
/// ops, so the transposes of the NCHW entry points are not paid per call.
pub fn conv2d_forward_nhwc(
    geom: &ConvGeometry,
    x_nhwc: &[f32],
    n: usize,
    h: usize,
    w: usize,
    weight: &[f32],
) -> (Vec<f32>, usize, usize) {
    let (oh, ow) = dense_output_hw(geom, h, w);
    assert_eq!(x_nhwc.len(), n * h * w * geom.in_ch, "conv x size");
    let conv = Conv2d::new(*geom, weight, None, Act::Identity);
    // SAFETY: a dense conv's GEMM writes every output element.
    let y = unsafe {
        written_vec(n * oh * ow * geom.out_ch, |y| {
            conv.forward_raw(x_nhwc, n, h, w, y, None, false);
        })
    };
    (y, oh, ow)
}

/// Input channels up to which a stride-1 forward runs as a direct convolution on NCHW planes.
/// With 1–3 channels the indirect GEMM's rows hold 1–3 floats, so building row pointers and
/// transposing to NHWC and back cost far more than the multiplies (LeNet's first conv,
/// resnet20_cifar's stem).
const DIRECT_MAX_IN: usize = 3;

/// Direct convolution, stride 1, dilation 1, on NCHW: each output row of each (image, output
/// channel) plane accumulates `Σ_ci Σ_taps w · (shifted input row)`, eight columns at a time,
/// from a zero-padded copy of the image's planes. Returns NCHW `[n, out_ch, oh, ow]`.
#[allow(clippy::too_many_arguments)]
fn direct_forward_nchw(
    g: &ConvGeometry,
    x: &[f32],
    n: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    weight: &[f32],
) -> Vec<f32> {
    let (cin, cout) = (g.in_ch, g.out_ch);
    let [kh, kw] = g.kernel;
    let [pt, _, pl, _] = g.pad;
    // The padded plane covers every tap of every output pixel: (oh + kh − 1) × (ow + kw − 1).
    let (hp, wp) = (oh + kh - 1, ow + kw - 1);
    let avx2 = crate::Isa::detect() == crate::Isa::Avx2;
    // SAFETY: every (image, output channel) task writes all oh × ow outputs of its plane.
    unsafe {
        written_vec(n * cout * oh * ow, |y| {
            let y = SendPtr(y);
            parallel_for(n, |b| {
                let y = y;
                let mut xp = vec![0f32; cin * hp * wp];
                for ci in 0..cin {
                    let src = &x[(b * cin + ci) * h * w..][..h * w];
                    for r in 0..h {
                        let pr = r + pt;
                        if pr >= hp {
                            break;
                        }
                        let cols = w.min(wp - pl);
                        xp[(ci * hp + pr) * wp + pl..][..cols]
                            .copy_from_slice(&src[r * w..][..cols]);
                    }
                }
                for co in 0..cout {
                    let wt = &weight[co * cin * kh * kw..][..cin * kh * kw];
                    let plane = y.0.add((b * cout + co) * oh * ow);
                    for oy in 0..oh {
                        let out = plane.add(oy * ow);
                        let mut ox = 0;
                        #[cfg(target_arch = "x86_64")]
                        if avx2 {
                            ox = direct_row_avx2(&xp, hp, wp, cin, kh, kw, wt, oy, ow, out);
                        }
                        for ox in ox..ow {
                            let mut s = 0f32;
                            for ci in 0..cin {
                                for i in 0..kh {
                                    let row = &xp[(ci * hp + oy + i) * wp + ox..][..kw];
                                    let wr = &wt[(ci * kh + i) * kw..][..kw];
                                    s += row.iter().zip(wr).map(|(a, b)| a * b).sum::<f32>();
                                }
                            }
                            *out.add(ox) = s;
                        }
                    }
                }
            });
        })
    }
}

/// One output row's columns in blocks of eight; returns how many columns it wrote.
///
/// # Safety
/// `out` has `ow` floats; `xp` is the padded planes (`cin × hp × wp`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn direct_row_avx2(
    xp: &[f32],
    hp: usize,
    wp: usize,
    cin: usize,
    kh: usize,
    kw: usize,
    wt: &[f32],
    oy: usize,
    ow: usize,
    out: *mut f32,
) -> usize {
    use std::arch::x86_64::*;
    let full = ow / 8 * 8;
    for ox in (0..full).step_by(8) {
        let mut acc = _mm256_setzero_ps();
        for ci in 0..cin {
            for i in 0..kh {
                let row = xp.as_ptr().add((ci * hp + oy + i) * wp + ox);
                let wr = wt.as_ptr().add((ci * kh + i) * kw);
                for j in 0..kw {
                    acc = _mm256_fmadd_ps(
                        _mm256_loadu_ps(row.add(j)),
                        _mm256_broadcast_ss(&*wr.add(j)),
                        acc,
                    );
                }
            }
        }
        _mm256_storeu_ps(out.add(ox), acc);
    }
    full
}

/// Kernel taps along one axis that reach input positions of phase `a` (positions `a`, `a + s`,
/// …): those `k` with `(a + pad − k·d) mod s == 0`.
fn phase_taps(a: usize, pad: usize, k: usize, d: usize, s: usize) -> Vec<usize> {
    (0..k)
        .filter(|&kk| (a as isize + pad as isize - (kk * d) as isize).rem_euclid(s as isize) == 0)
        .collect()
}

/// Input gradient: `dy` NCHW `[n, out_ch, oh, ow]`, `weight` OIHW, for an input of `h × w`;
/// returns `dx` NCHW `[n, in_ch, h, w]`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_input_grad_nchw(
    geom: &ConvGeometry,
    dy: &[f32],
    n: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    weight: &[f32],
) -> Vec<f32> {
    assert_eq!(dy.len(), n * geom.out_ch * oh * ow, "conv dy size");
    let dy_nhwc = nchw_to_nhwc(dy, n, geom.out_ch, oh * ow);
    nhwc_to_nchw(
        &conv2d_input_grad_nhwc(geom, &dy_nhwc, n, h, w, oh, ow, weight),
        n,
        h * w,
        geom.in_ch,
    )
}

/// Both gradients of a dense convolution from one NHWC copy of `dy` (which the two share):
/// `(dx, dW)`, dx only when `want_dx` (an image input needs none). Shapes as in
/// [`conv2d_input_grad_nchw`] and [`conv2d_weight_grad_nchw`].
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_nchw(
    geom: &ConvGeometry,
    x: &[f32],
    n: usize,
    h: usize,
    w: usize,
    dy: &[f32],
    oh: usize,
    ow: usize,
    weight: &[f32],
    want_dx: bool,
) -> (Option<Vec<f32>>, Vec<f32>) {
    assert_eq!(dy.len(), n * geom.out_ch * oh * ow, "conv dy size");
    let dy_nhwc = nchw_to_nhwc(dy, n, geom.out_ch, oh * ow);
    let x_nhwc = nchw_to_nhwc(x, n, geom.in_ch, h * w);
    let (dx, dw) = conv2d_backward_nhwc(geom, &x_nhwc, n, h, w, &dy_nhwc, oh, ow, weight, want_dx);
    (dx.map(|dx| nhwc_to_nchw(&dx, n, h * w, geom.in_ch)), dw)
}

/// Both gradients on NHWC activations: `x` `[n, h, w, in_ch]`, `dy` `[n, oh, ow, out_ch]`;
/// `(dx [n, h, w, in_ch], dW OIHW)`, dx only when `want_dx`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_nhwc(
    geom: &ConvGeometry,
    x_nhwc: &[f32],
    n: usize,
    h: usize,
    w: usize,
    dy_nhwc: &[f32],
    oh: usize,
    ow: usize,
    weight: &[f32],
    want_dx: bool,
) -> (Option<Vec<f32>>, Vec<f32>) {
    let dx = want_dx.then(|| conv2d_input_grad_nhwc(geom, dy_nhwc, n, h, w, oh, ow, weight));
    (dx, weight_grad(geom, x_nhwc, n, h, w, dy_nhwc, oh, ow))
}

/// The input gradient alone on NHWC activations (also what a frozen weight needs: no dW):
/// `dy` `[n, oh, ow, out_ch]` in, `dx` `[n, h, w, in_ch]` out.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_input_grad_nhwc(
    geom: &ConvGeometry,
    dy_nhwc: &[f32],
    n: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    weight: &[f32],
) -> Vec<f32> {
    check_dense(geom);
    let (cin, cout) = (geom.in_ch, geom.out_ch);
    let [kh, kw] = geom.kernel;
    let [sy, sx] = geom.stride;
    let [dyl, dxl] = geom.dilation;
    let [pt, _, pl, _] = geom.pad;
    assert_eq!(dy_nhwc.len(), n * cout * oh * ow, "conv dy size");
    assert_eq!(weight.len(), cout * cin * kh * kw, "conv weight size");
    assert!(
        dy_nhwc.len() < PAD as usize,
        "dy too large for 32-bit indirection"
    );
    let zero = vec![0f32; cout];
    // At stride 1 the one phase's GEMM writes every element of dx; otherwise phases that
    // no tap reaches stay zero.
    let mut dx = if sy == 1 && sx == 1 {
        Vec::new()
    } else {
        vec![0f32; n * cin * h * w]
    };
    for ay in 0..sy.min(h) {
        let ty = phase_taps(ay, pt, kh, dyl, sy);
        for ax in 0..sx.min(w) {
            let tx = phase_taps(ax, pl, kw, dxl, sx);
            if ty.is_empty() || tx.is_empty() {
                continue; // no tap reaches this phase: its gradient stays zero
            }
            let taps: Vec<(usize, usize)> = ty
                .iter()
                .flat_map(|&i| tx.iter().map(move |&j| (i, j)))
                .collect();
            let iys: Vec<usize> = (ay..h).step_by(sy).collect();
            let ixs: Vec<usize> = (ax..w).step_by(sx).collect();
            let m = n * iys.len() * ixs.len();
            let key = [
                1,
                n,
                h,
                w,
                oh,
                ow,
                cout,
                kh,
                kw,
                sy,
                sx,
                dyl,
                dxl,
                pt,
                pl,
                ay * sx + ax,
            ];
            let offsets = shared_offsets(key, || {
                let mut offsets = Vec::with_capacity(m * taps.len());
                for b in 0..n {
                    for &iy in &iys {
                        for &ix in &ixs {
                            for &(i, j) in &taps {
                                let oy = (iy + pt) as isize - (i * dyl) as isize;
                                let ox = (ix + pl) as isize - (j * dxl) as isize;
                                let (oy, ox) = (oy / sy as isize, ox / sx as isize);
                                let inside = oy >= 0
                                    && ox >= 0
                                    && (oy as usize) < oh
                                    && (ox as usize) < ow
                                    && (iy + pt) >= i * dyl
                                    && (ix + pl) >= j * dxl;
                                offsets.push(if inside {
                                    (((b * oh + oy as usize) * ow + ox as usize) * cout) as u32
                                } else {
                                    PAD
                                });
                            }
                        }
                    }
                }
                offsets
            });
            // B[tap][co][ci] = W[co, ci, i, j]: the correlation of dy with the kernel's taps.
            let packed = PackedB::pack(taps.len(), cout, cin, |t, co, ci| {
                let (i, j) = taps[t];
                weight[((co * cin + ci) * kh + i) * kw + j]
            });
            let ep = Epilogue::new(None, Act::Identity);
            // SAFETY: every offset points at a full `cout` row of dy_nhwc (or the zero row); the
            // GEMM writes all m × cin elements of `part`.
            let part = unsafe {
                written_vec(m * cin, |part| {
                    igemm(
                        m,
                        Rows::Indirect {
                            base: dy_nhwc.as_ptr(),
                            offsets: &offsets,
                            zero: zero.as_ptr(),
                        },
                        0,
                        &packed,
                        part,
                        cin,
                        0,
                        &ep,
                    )
                })
            };
            if sy == 1 && sx == 1 {
                // One phase holding every pixel: `part` is dx.
                return part;
            }
            // Scatter the phase's pixels (rows of cin) into dx.
            let (ny, nx) = (iys.len(), ixs.len());
            let out = SendPtr(dx.as_mut_ptr());
            parallel_for(n * ny, |task| {
                let out = out;
                let (b, yi) = (task / ny, task % ny);
                for (xi, &ix) in ixs.iter().enumerate() {
                    let src = &part[((b * ny + yi) * nx + xi) * cin..][..cin];
                    // SAFETY (disjoint writes): task (b, yi) writes only row iys[yi] of image b.
                    let dst = unsafe {
                        std::slice::from_raw_parts_mut(
                            out.0.add(((b * h + iys[yi]) * w + ix) * cin),
                            cin,
                        )
                    };
                    dst.copy_from_slice(src);
                }
            });
        }
    }
    dx
}

/// The part of output row `oy` that tap `(i, j)` reaches inside the input:
/// `(iy, ox0, ox1, ix0)`, input column `ix0 + (ox − ox0)·stride` for `ox0 ≤ ox < ox1`.
#[inline]
fn tap_span(
    g: &ConvGeometry,
    oy: usize,
    i: usize,
    j: usize,
    h: usize,
    w: usize,
    ow: usize,
) -> Option<(usize, usize, usize, usize)> {
    let iy = (oy * g.stride[0] + i * g.dilation[0]) as isize - g.pad[0] as isize;
    if iy < 0 || iy as usize >= h {
        return None;
    }
    let (s, off) = (
        g.stride[1] as isize,
        (j * g.dilation[1]) as isize - g.pad[2] as isize,
    );
    // ox·s + off ∈ [0, w)
    let ox0 = if off >= 0 { 0 } else { (-off + s - 1) / s };
    let ox1 = ((w as isize - 1 - off).div_euclid(s) + 1).clamp(0, ow as isize);
    (ox0 < ox1).then(|| {
        (
            iy as usize,
            ox0 as usize,
            ox1 as usize,
            (ox0 * s + off) as usize,
        )
    })
}

/// Weight gradient: `x` NCHW `[n, in_ch, h, w]`, `dy` NCHW `[n, out_ch, oh, ow]`; returns dW
/// OIHW `[out_ch, in_ch, kh, kw]`.
///
/// `dW[(tap, ci), co] = Σ_p x_nhwc[off(p, tap) + ci] · dy_nhwc[p, co]`: a sum of outer products
/// over pixels, read straight from the NHWC input through the forward's offset table (no im2col
/// buffer, no packing). Each task reduces a contiguous range of pixels into its own partial dW,
/// in chunks whose `dy` rows stay in L1 across the taps; the partials are summed at the end.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_weight_grad_nchw(
    geom: &ConvGeometry,
    x: &[f32],
    n: usize,
    h: usize,
    w: usize,
    dy: &[f32],
    oh: usize,
    ow: usize,
) -> Vec<f32> {
    assert_eq!(dy.len(), n * geom.out_ch * oh * ow, "conv dy size");
    let dy_nhwc = nchw_to_nhwc(dy, n, geom.out_ch, oh * ow);
    let x_nhwc = nchw_to_nhwc(x, n, geom.in_ch, h * w);
    weight_grad(geom, &x_nhwc, n, h, w, &dy_nhwc, oh, ow)
}

/// [`conv2d_weight_grad_nchw`] with `x` and `dy` already NHWC.
#[allow(clippy::too_many_arguments)]
fn weight_grad(
    geom: &ConvGeometry,
    x_nhwc: &[f32],
    n: usize,
    h: usize,
    w: usize,
    dy_nhwc: &[f32],
    oh: usize,
    ow: usize,
) -> Vec<f32> {
    check_dense(geom);
    let (cin, cout) = (geom.in_ch, geom.out_ch);
    let [kh, kw] = geom.kernel;
    assert_eq!(x_nhwc.len(), n * cin * h * w, "conv x size");
    assert_eq!(dy_nhwc.len(), n * cout * oh * ow, "conv dy size");
    assert_eq!(geom.output_hw(h, w), Some((oh, ow)), "conv dy shape");
    let taps = kh * kw;
    let rows = taps * cin;
    let pixels = n * oh * ow;
    assert!(
        x_nhwc.len() < PAD as usize,
        "x too large for 32-bit indirection"
    );
    let offsets = crate::conv::conv_offsets(geom, n, h, w, cin);
    let zero = vec![0f32; cin];
    let avx2 = crate::Isa::detect() == crate::Isa::Avx2;
    // One partial dW per task; enough tasks to balance, few enough that the partials are cheap.
    let tasks = (crate::threads::num_threads() * 2)
        .min(pixels.div_ceil(CHUNK))
        .max(1);
    let per_task = pixels.div_ceil(tasks);
    let mut partial = vec![0f32; tasks * rows * cout];
    let parts = SendPtr(partial.as_mut_ptr());
    parallel_for(tasks, |task| {
        let parts = parts;
        // SAFETY (disjoint writes): task owns partial dW number `task`.
        let acc =
            unsafe { std::slice::from_raw_parts_mut(parts.0.add(task * rows * cout), rows * cout) };
        let (p_start, p_end) = (task * per_task, ((task + 1) * per_task).min(pixels));
        let mut xrows: Vec<*const f32> = Vec::with_capacity(CHUNK);
        // With fewer input channels than a tile has rows, one tap would fill only part of
        // a tile: gather the chunk's (tap, ci) values per pixel instead, so that tiles run over
        // the combined (tap, ci) rows, whose order is dW's.
        let gather = cin < OUTER_M;
        // AVX-512's 32 registers hold 16 rows' accumulators: each dy row is loaded once per
        // 16 input channels instead of per 6 (the same FMA chain per element, so the same bits).
        let outer_m = if avx2 && crate::avx512() {
            OUTER_M_AVX512
        } else {
            OUTER_M
        };
        let mut col = if gather {
            vec![0f32; CHUNK * rows]
        } else {
            Vec::new()
        };
        // dW rows acc_row0 .. acc_row0 + count from x values 0 .. count of each xrows row.
        let tile =
            |xrows: &[*const f32], count: usize, acc_row0: usize, dyc: &[f32], acc: &mut [f32]| {
                for i0 in (0..count).step_by(outer_m) {
                    let m = outer_m.min(count - i0);
                    for co0 in (0..cout).step_by(OUTER_N) {
                        let nr = OUTER_N.min(cout - co0);
                        // SAFETY: every xrows pointer has count floats; dyc holds the chunk's rows
                        // of cout; acc holds rows acc_row0 + i0 on, cout apiece.
                        unsafe {
                            outer_acc(
                                avx2,
                                xrows,
                                i0,
                                m,
                                dyc.as_ptr().add(co0),
                                cout,
                                nr,
                                &mut acc[(acc_row0 + i0) * cout + co0..],
                                cout,
                            )
                        };
                    }
                }
            };
        for p0 in (p_start..p_end).step_by(CHUNK) {
            let pc = CHUNK.min(p_end - p0);
            let dyc = &dy_nhwc[p0 * cout..(p0 + pc) * cout];
            if gather {
                for (q, row) in col.chunks_exact_mut(rows).take(pc).enumerate() {
                    let offs = &offsets[(p0 + q) * taps..(p0 + q + 1) * taps];
                    for (dst, &o) in row.chunks_exact_mut(cin).zip(offs) {
                        // Element loops: a memcpy call per 1–5 floats costs more than the copy.
                        if o == PAD {
                            dst.iter_mut().for_each(|d| *d = 0.0);
                        } else {
                            let src = &x_nhwc[o as usize..o as usize + cin];
                            for (d, v) in dst.iter_mut().zip(src) {
                                *d = *v;
                            }
                        }
                    }
                }
                xrows.clear();
                xrows.extend((0..pc).map(|q| col[q * rows..].as_ptr()));
                tile(&xrows, rows, 0, dyc, acc);
                continue;
            }
            for t in 0..taps {
                xrows.clear();
                xrows.extend((p0..p0 + pc).map(|p| {
                    let o = offsets[p * taps + t];
                    if o == PAD {
                        zero.as_ptr()
                    } else {
                        // SAFETY: a non-PAD offset starts a full cin row of x_nhwc.
                        unsafe { x_nhwc.as_ptr().add(o as usize) }
                    }
                }));
                tile(&xrows, cin, t * cin, dyc, acc);
            }
        }
    });
    let mut dw_t = partial[..rows * cout].to_vec();
    for part in partial[rows * cout..].chunks_exact(rows * cout) {
        dw_t.iter_mut().zip(part).for_each(|(d, p)| *d += p);
    }
    // [(tap, ci)][co] → OIHW.
    let mut dw = vec![0f32; cout * cin * taps];
    for t in 0..taps {
        for ci in 0..cin {
            for co in 0..cout {
                dw[(co * cin + ci) * taps + t] = dw_t[(t * cin + ci) * cout + co];
            }
        }
    }
    dw
}

/// Pixels per chunk of the weight gradient: 256 `dy` rows of up to 16 channels stay in L1.
const CHUNK: usize = 256;
/// Input channels × output channels per outer-product tile (12 AVX2 accumulators).
const OUTER_M: usize = 6;
/// Rows per outer-product tile on AVX-512 (16 of its 32 registers).
const OUTER_M_AVX512: usize = 16;
const OUTER_N: usize = 16;

/// `c[r·ldc + j] += Σ_q xrows[q][ci0 + r] · dy[q·ld + j]` for `r < m ≤ 6`, `j < nr ≤ 16`.
///
/// # Safety
/// Every `xrows[q]` points at ≥ ci0 + m floats; `dy` at `xrows.len()` rows of `ld` floats with
/// `nr` readable from each; `c` holds `m` rows of `ldc` with `nr` from each row's start.
#[allow(clippy::too_many_arguments)]
unsafe fn outer_acc(
    avx2: bool,
    xrows: &[*const f32],
    ci0: usize,
    m: usize,
    dy: *const f32,
    ld: usize,
    nr: usize,
    c: &mut [f32],
    ldc: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if avx2 {
        macro_rules! go {
            ($kernel:ident, $($m:literal)*) => {
                match m {
                    $($m => $kernel::<$m>(xrows, ci0, dy, ld, nr, c, ldc),)*
                    _ => unreachable!(),
                }
            };
        }
        if crate::avx512() {
            return go!(outer_acc_avx512, 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);
        }
        return go!(outer_acc_avx2, 1 2 3 4 5 6);
    }
    let _ = avx2;
    for (q, xr) in xrows.iter().enumerate() {
        let d = std::slice::from_raw_parts(dy.add(q * ld), nr);
        for r in 0..m {
            let a = *xr.add(ci0 + r);
            for (cj, dj) in c[r * ldc..r * ldc + nr].iter_mut().zip(d) {
                *cj += a * dj;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn outer_acc_avx2<const M: usize>(
    xrows: &[*const f32],
    ci0: usize,
    dy: *const f32,
    ld: usize,
    nr: usize,
    c: &mut [f32],
    ldc: usize,
) {
    use std::arch::x86_64::*;
    let lane = |j: i32| _mm256_setr_epi32(j, j + 1, j + 2, j + 3, j + 4, j + 5, j + 6, j + 7);
    let n = _mm256_set1_epi32(nr as i32);
    let (mask0, mask1) = (
        _mm256_cmpgt_epi32(n, lane(0)),
        _mm256_cmpgt_epi32(n, lane(8)),
    );
    let mut acc0 = [_mm256_setzero_ps(); M];
    let mut acc1 = [_mm256_setzero_ps(); M];
    for r in 0..M {
        acc0[r] = _mm256_maskload_ps(c.as_ptr().add(r * ldc), mask0);
        acc1[r] = _mm256_maskload_ps(c.as_ptr().wrapping_add(r * ldc + 8), mask1);
    }
    for (q, xr) in xrows.iter().enumerate() {
        let d = dy.add(q * ld);
        let (b0, b1) = if nr == 16 {
            (_mm256_loadu_ps(d), _mm256_loadu_ps(d.add(8)))
        } else {
            (
                _mm256_maskload_ps(d, mask0),
                _mm256_maskload_ps(d.wrapping_add(8), mask1),
            )
        };
        let a = xr.add(ci0);
        for r in 0..M {
            let x = _mm256_broadcast_ss(&*a.add(r));
            acc0[r] = _mm256_fmadd_ps(x, b0, acc0[r]);
            acc1[r] = _mm256_fmadd_ps(x, b1, acc1[r]);
        }
    }
    for r in 0..M {
        _mm256_maskstore_ps(c.as_mut_ptr().add(r * ldc), mask0, acc0[r]);
        // Masked lanes are never touched, so the address may lie past the slice.
        _mm256_maskstore_ps(c.as_mut_ptr().wrapping_add(r * ldc + 8), mask1, acc1[r]);
    }
}

/// [`outer_acc_avx2`] with one 16-lane register per row: the same FMA chain per element, so the
/// same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn outer_acc_avx512<const M: usize>(
    xrows: &[*const f32],
    ci0: usize,
    dy: *const f32,
    ld: usize,
    nr: usize,
    c: &mut [f32],
    ldc: usize,
) {
    use std::arch::x86_64::*;
    let mask: __mmask16 = if nr >= 16 { 0xffff } else { (1u16 << nr) - 1 };
    let mut acc = [_mm512_setzero_ps(); M];
    for (r, a) in acc.iter_mut().enumerate() {
        *a = _mm512_maskz_loadu_ps(mask, c.as_ptr().add(r * ldc));
    }
    for (q, xr) in xrows.iter().enumerate() {
        let b = _mm512_maskz_loadu_ps(mask, dy.add(q * ld));
        let x = xr.add(ci0);
        for (r, a) in acc.iter_mut().enumerate() {
            *a = _mm512_fmadd_ps(_mm512_set1_ps(*x.add(r)), b, *a);
        }
    }
    for (r, a) in acc.iter().enumerate() {
        // Masked lanes are never touched, so the row may end before 16 floats.
        _mm512_mask_storeu_ps(c.as_mut_ptr().add(r * ldc), mask, *a);
    }
}

/// Depthwise convolution (groups = in = out channels, one `kh × kw` filter per channel) on NCHW
/// planes: forward and both gradients, as direct loops over each tap's valid span of an output
/// row (contiguous, so they vectorise at stride 1), planes spread across threads.
pub mod depthwise {
    use super::*;

    fn check(g: &ConvGeometry, weight_len: usize) {
        assert!(
            g.is_depthwise(),
            "depthwise kernels need groups = in = out channels"
        );
        assert!(!g.tf_same, "conv_train takes explicit padding");
        assert_eq!(
            weight_len,
            g.out_ch * g.kernel[0] * g.kernel[1],
            "depthwise weight size"
        );
    }

    /// Forward: `x` `[n, c, h, w]`, `weight` `[c, 1, kh, kw]`; returns `[n, c, oh, ow]`.
    pub fn forward_nchw(
        g: &ConvGeometry,
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
        weight: &[f32],
    ) -> (Vec<f32>, usize, usize) {
        check(g, weight.len());
        let (oh, ow) = g
            .output_hw(h, w)
            .expect("depthwise kernel does not fit the input");
        let (c, [kh, kw], s) = (g.in_ch, g.kernel, g.stride[1]);
        assert_eq!(x.len(), n * c * h * w, "depthwise x size");
        let mut y = vec![0f32; n * c * oh * ow];
        let out = SendPtr(y.as_mut_ptr());
        parallel_for(n * c, |plane| {
            let out = out;
            let ch = plane % c;
            let xp = &x[plane * h * w..][..h * w];
            // SAFETY (disjoint writes): each task writes only its own output plane.
            let yp = unsafe { std::slice::from_raw_parts_mut(out.0.add(plane * oh * ow), oh * ow) };
            for i in 0..kh {
                for j in 0..kw {
                    let wv = weight[(ch * kh + i) * kw + j];
                    for oy in 0..oh {
                        if let Some((iy, ox0, ox1, ix0)) = tap_span(g, oy, i, j, h, w, ow) {
                            let src = &xp[iy * w + ix0..];
                            let dst = &mut yp[oy * ow + ox0..oy * ow + ox1];
                            for (k, d) in dst.iter_mut().enumerate() {
                                *d += wv * src[k * s];
                            }
                        }
                    }
                }
            }
        });
        (y, oh, ow)
    }

    /// Input gradient: `dy` `[n, c, oh, ow]`; returns `dx` `[n, c, h, w]`.
    #[allow(clippy::too_many_arguments)]
    pub fn input_grad_nchw(
        g: &ConvGeometry,
        dy: &[f32],
        n: usize,
        h: usize,
        w: usize,
        oh: usize,
        ow: usize,
        weight: &[f32],
    ) -> Vec<f32> {
        check(g, weight.len());
        let (c, [kh, kw], s) = (g.in_ch, g.kernel, g.stride[1]);
        assert_eq!(dy.len(), n * c * oh * ow, "depthwise dy size");
        let mut dx = vec![0f32; n * c * h * w];
        let out = SendPtr(dx.as_mut_ptr());
        parallel_for(n * c, |plane| {
            let out = out;
            let ch = plane % c;
            let gp = &dy[plane * oh * ow..][..oh * ow];
            // SAFETY (disjoint writes): each task writes only its own input-gradient plane.
            let dp = unsafe { std::slice::from_raw_parts_mut(out.0.add(plane * h * w), h * w) };
            for i in 0..kh {
                for j in 0..kw {
                    let wv = weight[(ch * kh + i) * kw + j];
                    for oy in 0..oh {
                        if let Some((iy, ox0, ox1, ix0)) = tap_span(g, oy, i, j, h, w, ow) {
                            let row = &mut dp[iy * w + ix0..];
                            for (k, gv) in gp[oy * ow + ox0..oy * ow + ox1].iter().enumerate() {
                                row[k * s] += wv * gv;
                            }
                        }
                    }
                }
            }
        });
        dx
    }

    /// Weight gradient: `x` `[n, c, h, w]`, `dy` `[n, c, oh, ow]`; returns `[c, 1, kh, kw]`.
    #[allow(clippy::too_many_arguments)]
    pub fn weight_grad_nchw(
        g: &ConvGeometry,
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
        dy: &[f32],
        oh: usize,
        ow: usize,
    ) -> Vec<f32> {
        let (c, [kh, kw], s) = (g.in_ch, g.kernel, g.stride[1]);
        check(g, c * kh * kw);
        assert_eq!(x.len(), n * c * h * w, "depthwise x size");
        assert_eq!(dy.len(), n * c * oh * ow, "depthwise dy size");
        let mut dw = vec![0f32; c * kh * kw];
        let out = SendPtr(dw.as_mut_ptr());
        parallel_for(c, |ch| {
            let out = out;
            for i in 0..kh {
                for j in 0..kw {
                    let mut acc = 0f32;
                    for b in 0..n {
                        let plane = b * c + ch;
                        let xp = &x[plane * h * w..][..h * w];
                        let gp = &dy[plane * oh * ow..][..oh * ow];
                        for oy in 0..oh {
                            if let Some((iy, ox0, ox1, ix0)) = tap_span(g, oy, i, j, h, w, ow) {
                                let src = &xp[iy * w + ix0..];
                                let mut part = 0f32;
                                for (k, gv) in gp[oy * ow + ox0..oy * ow + ox1].iter().enumerate() {
                                    part += gv * src[k * s];
                                }
                                acc += part;
                            }
                        }
                    }
                    // SAFETY (disjoint writes): each task writes only channel ch's filter.
                    unsafe { *out.0.add((ch * kh + i) * kw + j) = acc };
                }
            }
        });
        dw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The weight gradient's AVX-512 outer products give the AVX2 ones' bits, for every row
    /// count and ragged column counts.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_outer_products_match_avx2_bits() {
        if !crate::test_util::avx512_and_avx2() {
            return;
        }
        let mut seed = 11u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let (q, ld, ci0) = (37, 20, 2);
        let x: Vec<Vec<f32>> = (0..q)
            .map(|_| (0..ci0 + 6).map(|_| next()).collect())
            .collect();
        let rows: Vec<*const f32> = x.iter().map(|r| r.as_ptr()).collect();
        let dy: Vec<f32> = (0..q * ld).map(|_| next()).collect();
        let c0: Vec<f32> = (0..6 * 18).map(|_| next()).collect();
        for nr in [16, 13, 1] {
            macro_rules! check {
                ($($m:literal)*) => {$(
                    let (mut a, mut b) = (c0.clone(), c0.clone());
                    unsafe {
                        outer_acc_avx2::<$m>(&rows, ci0, dy.as_ptr(), ld, nr, &mut a, 18);
                        outer_acc_avx512::<$m>(&rows, ci0, dy.as_ptr(), ld, nr, &mut b, 18);
                    }
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&a), bits(&b), "m {} nr {nr}", $m);
                    assert_ne!(bits(&a), bits(&c0), "m {} nr {nr}: nothing accumulated", $m);
                )*};
            }
            check!(1 2 3 4 5 6);
        }
        // A 16-row AVX-512 tile gives the bits of the 6 + 6 + 4 AVX2 tiles over the same rows.
        let x16: Vec<Vec<f32>> = (0..q).map(|_| (0..16).map(|_| next()).collect()).collect();
        let rows16: Vec<*const f32> = x16.iter().map(|r| r.as_ptr()).collect();
        let c16: Vec<f32> = (0..16 * 18).map(|_| next()).collect();
        for nr in [16, 13] {
            let (mut a, mut b) = (c16.clone(), c16.clone());
            unsafe {
                outer_acc_avx2::<6>(&rows16, 0, dy.as_ptr(), ld, nr, &mut a, 18);
                outer_acc_avx2::<6>(&rows16, 6, dy.as_ptr(), ld, nr, &mut a[6 * 18..], 18);
                outer_acc_avx2::<4>(&rows16, 12, dy.as_ptr(), ld, nr, &mut a[12 * 18..], 18);
                outer_acc_avx512::<16>(&rows16, 0, dy.as_ptr(), ld, nr, &mut b, 18);
            }
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a), bits(&b), "16-row tile, nr {nr}");
        }
    }

    #[test]
    fn transposes_match_the_index_formula() {
        // Sizes around the 8 × 8 tiles and 32 × 32 blocks, batched.
        for (n, rows, cols) in [
            (1, 8, 8),
            (2, 3, 5),
            (1, 33, 70),
            (3, 16, 41),
            (1, 96, 24),
            (2, 49, 64),
        ] {
            let src: Vec<f32> = (0..n * rows * cols).map(|i| i as f32).collect();
            let mut dst = vec![f32::NAN; src.len()];
            transpose_batched(&src, dst.as_mut_ptr(), n, rows, cols);
            for b in 0..n {
                for r in 0..rows {
                    for c in 0..cols {
                        assert_eq!(
                            dst[b * rows * cols + c * rows + r],
                            src[b * rows * cols + r * cols + c],
                            "n{n} {rows}x{cols} at ({b}, {r}, {c})"
                        );
                    }
                }
            }
        }
    }

    fn geom(cin: usize, cout: usize, k: usize, s: usize, d: usize, p: usize) -> ConvGeometry {
        ConvGeometry {
            in_ch: cin,
            out_ch: cout,
            kernel: [k, k],
            stride: [s, s],
            dilation: [d, d],
            pad: [p, p, p, p],
            groups: 1,
            tf_same: false,
        }
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// Direct NCHW convolution in f64: y[b, co, oy, ox].
    fn naive_forward(
        g: &ConvGeometry,
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
        wt: &[f32],
    ) -> Vec<f64> {
        let (oh, ow) = g.output_hw(h, w).unwrap();
        let [kh, kw] = g.kernel;
        let mut y = vec![0f64; n * g.out_ch * oh * ow];
        for b in 0..n {
            for co in 0..g.out_ch {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut s = 0f64;
                        for ci in 0..g.in_ch {
                            for i in 0..kh {
                                for j in 0..kw {
                                    let iy = (oy * g.stride[0] + i * g.dilation[0]) as isize
                                        - g.pad[0] as isize;
                                    let ix = (ox * g.stride[1] + j * g.dilation[1]) as isize
                                        - g.pad[2] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                        continue;
                                    }
                                    s += x[((b * g.in_ch + ci) * h + iy as usize) * w + ix as usize]
                                        as f64
                                        * wt[((co * g.in_ch + ci) * kh + i) * kw + j] as f64;
                                }
                            }
                        }
                        y[((b * g.out_ch + co) * oh + oy) * ow + ox] = s;
                    }
                }
            }
        }
        y
    }

    /// The gradients by their definition: y is linear in x and in w, so
    /// dL/dx[e] = Σ dy · ∂y/∂x[e], computed by the adjoint loops of the direct convolution.
    fn naive_grads(
        g: &ConvGeometry,
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
        wt: &[f32],
        dy: &[f32],
    ) -> (Vec<f64>, Vec<f64>) {
        let (oh, ow) = g.output_hw(h, w).unwrap();
        let [kh, kw] = g.kernel;
        let mut dx = vec![0f64; x.len()];
        let mut dw = vec![0f64; wt.len()];
        for b in 0..n {
            for co in 0..g.out_ch {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let gy = dy[((b * g.out_ch + co) * oh + oy) * ow + ox] as f64;
                        for ci in 0..g.in_ch {
                            for i in 0..kh {
                                for j in 0..kw {
                                    let iy = (oy * g.stride[0] + i * g.dilation[0]) as isize
                                        - g.pad[0] as isize;
                                    let ix = (ox * g.stride[1] + j * g.dilation[1]) as isize
                                        - g.pad[2] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                        continue;
                                    }
                                    let xi =
                                        ((b * g.in_ch + ci) * h + iy as usize) * w + ix as usize;
                                    let wi = ((co * g.in_ch + ci) * kh + i) * kw + j;
                                    dx[xi] += gy * wt[wi] as f64;
                                    dw[wi] += gy * x[xi] as f64;
                                }
                            }
                        }
                    }
                }
            }
        }
        (dx, dw)
    }

    fn assert_close(got: &[f32], want: &[f64], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        let scale = want.iter().fold(1e-6f64, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                ((*g as f64) - w).abs() <= 2e-5 * scale,
                "{what}[{i}]: {g} vs {w} (scale {scale})"
            );
        }
    }

    #[test]
    fn forward_and_both_gradients_match_the_direct_convolution() {
        // (cin, cout, k, stride, dilation, pad, h, w): 1×1, 3×3 s1/s2, 7×7 s2 p3 (a stem),
        // dilation 2, an even kernel with stride 3, and output channels past one NR panel.
        let cases = [
            (5, 7, 1, 1, 1, 0, 6, 5),
            // LeNet-5's first conv: one input channel, 5×5, no padding; an RGB stem at
            // stride 1 whose width leaves a ragged tail; two channels with a wide padding.
            (1, 6, 5, 1, 1, 0, 12, 11),
            (3, 16, 3, 1, 1, 1, 10, 19),
            (2, 3, 3, 1, 1, 2, 5, 9),
            (4, 20, 3, 1, 1, 1, 7, 6),
            (6, 9, 3, 2, 1, 1, 9, 8),
            (3, 8, 7, 2, 1, 3, 13, 11),
            (4, 5, 3, 1, 2, 2, 8, 9),
            (3, 4, 2, 3, 1, 0, 10, 8),
            (8, 17, 1, 2, 1, 0, 7, 7),
            // A kernel wider than the input (CBAM's 7×7 spatial gate on a 2×1 map): whole
            // rows read only padding.
            (2, 3, 7, 1, 1, 3, 2, 1),
        ];
        for (ci, &(cin, cout, k, s, d, p, h, w)) in cases.iter().enumerate() {
            let g = geom(cin, cout, k, s, d, p);
            let n = 2;
            let x = values(n * cin * h * w, 1 + ci as u32);
            let wt = values(cout * cin * k * k, 100 + ci as u32);
            let (y, oh, ow) = conv2d_forward_nchw(&g, &x, n, h, w, &wt);
            assert_close(
                &y,
                &naive_forward(&g, &x, n, h, w, &wt),
                &format!("case {ci} y"),
            );
            let dy = values(n * cout * oh * ow, 200 + ci as u32);
            let (dx_want, dw_want) = naive_grads(&g, &x, n, h, w, &wt, &dy);
            let dx = conv2d_input_grad_nchw(&g, &dy, n, h, w, oh, ow, &wt);
            assert_close(&dx, &dx_want, &format!("case {ci} dx"));
            let dw = conv2d_weight_grad_nchw(&g, &x, n, h, w, &dy, oh, ow);
            assert_close(&dw, &dw_want, &format!("case {ci} dw"));
            // Both at once (one NHWC copy of dy), with and without dx.
            for want_dx in [true, false] {
                let (dx2, dw2) = conv2d_backward_nchw(&g, &x, n, h, w, &dy, oh, ow, &wt, want_dx);
                assert_close(&dw2, &dw_want, &format!("case {ci} joint dw"));
                match (want_dx, dx2) {
                    (true, Some(dx2)) => {
                        assert_close(&dx2, &dx_want, &format!("case {ci} joint dx"))
                    }
                    (false, None) => {}
                    (want, got) => {
                        panic!("case {ci}: dx wanted {want}, returned {}", got.is_some())
                    }
                }
            }
        }
    }

    #[test]
    fn weight_gradient_accumulates_across_pixel_chunks() {
        // 1×1 conv over 3 × 40 × 40 pixels with 600 input channels: 4,800 pixels make many
        // 256-pixel chunks (one crosses an image boundary) over several tasks' partial sums,
        // and 600 channels many 6-channel tiles.
        let g = geom(600, 3, 1, 1, 1, 0);
        let (n, h, w) = (3, 40, 40);
        let x = values(n * 600 * h * w, 7);
        let wt = values(3 * 600, 8);
        let dy = values(n * 3 * h * w, 9);
        let (_, dw_want) = naive_grads(&g, &x, n, h, w, &wt, &dy);
        let dw = conv2d_weight_grad_nchw(&g, &x, n, h, w, &dy, h, w);
        assert_close(&dw, &dw_want, "dw");
    }

    /// Depthwise: the dense reference with a block-diagonal weight (channel c's filter only
    /// on input c) is the independent check.
    #[test]
    fn depthwise_forward_and_gradients_match_the_dense_reference() {
        // (c, k, stride, dilation, pad, h, w): 3×3 s1/s2 (MobileNet), 5×5 s2 p2 (EfficientNet),
        // dilation 2, and a 7×7 s1 p3 (ConvNeXt).
        let cases = [
            (5, 3, 1, 1, 1, 7, 6),
            (4, 3, 2, 1, 1, 9, 8),
            (3, 5, 2, 1, 2, 11, 10),
            (2, 3, 1, 2, 2, 8, 9),
            (3, 7, 1, 1, 3, 9, 9),
        ];
        for (ci, &(c, k, s, d, p, h, w)) in cases.iter().enumerate() {
            let mut g = geom(c, c, k, s, d, p);
            g.groups = c;
            let dense = geom(c, c, k, s, d, p);
            let n = 2;
            let x = values(n * c * h * w, 300 + ci as u32);
            let wt = values(c * k * k, 400 + ci as u32);
            let mut wd = vec![0f32; c * c * k * k];
            for ch in 0..c {
                wd[(ch * c + ch) * k * k..][..k * k].copy_from_slice(&wt[ch * k * k..][..k * k]);
            }
            let (y, oh, ow) = depthwise::forward_nchw(&g, &x, n, h, w, &wt);
            assert_close(
                &y,
                &naive_forward(&dense, &x, n, h, w, &wd),
                &format!("dw case {ci} y"),
            );
            let dy = values(n * c * oh * ow, 500 + ci as u32);
            let (dx_want, dwd_want) = naive_grads(&dense, &x, n, h, w, &wd, &dy);
            let dx = depthwise::input_grad_nchw(&g, &dy, n, h, w, oh, ow, &wt);
            assert_close(&dx, &dx_want, &format!("dw case {ci} dx"));
            let dwt = depthwise::weight_grad_nchw(&g, &x, n, h, w, &dy, oh, ow);
            let dw_want: Vec<f64> = (0..c)
                .flat_map(|ch| dwd_want[(ch * c + ch) * k * k..][..k * k].to_vec())
                .collect();
            assert_close(&dwt, &dw_want, &format!("dw case {ci} dw"));
        }
    }
}
