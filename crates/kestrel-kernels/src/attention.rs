//! Multi-head self-attention on token rows, from a fused qkv projection.
//!
//! `qkv` holds, per token, `[q | k | v]`, each `heads × d` wide (timm's `Attention.qkv` output
//! before its reshape), with the `1/√d` scale already folded into q. For each image and head:
//! `S = q kᵀ` through the packed GEMM, a row softmax in place, then `S v` written straight into
//! the head's columns of the output, a block of query rows at a time: no more than one block's
//! scores per thread exist at once, never the whole `tokens × tokens` matrix of any head.

use crate::act::Act;
use crate::gemm::{igemm, Epilogue, PackedB, Rows};
use crate::{Isa, SendPtr};

/// One head over a block of query rows: `out[r, col0 + e] = Σ_j softmax_j(q_r · k_j + add[r, j]) v_j[e]`.
/// `q` rows are `ld_q` apart; `kt` is kᵀ (`[d][tokens]`) and `v` is `[tokens][d]`, both packed;
/// `scores` is scratch of `rows × tokens`. Called inside a pool task, so its GEMMs run here.
///
/// # Safety
/// `q` must hold `rows` rows of `kt.k` values at stride `ld_q`, and `out` `rows` rows of
/// `col0 + v.n` values at stride `ldc`, not aliasing `q` or `scores`.
#[allow(clippy::too_many_arguments)]
unsafe fn attend_block(
    q: *const f32,
    ld_q: usize,
    rows: usize,
    kt: &PackedB,
    v: &PackedB,
    add: impl Fn(&mut [f32]),
    scores: &mut [f32],
    out: *mut f32,
    ldc: usize,
    col0: usize,
) {
    let tokens = kt.n;
    let none = Epilogue::new(None, Act::Identity);
    igemm(
        rows,
        Rows::Dense { base: q, ld: ld_q },
        0,
        kt,
        scores.as_mut_ptr(),
        tokens,
        0,
        &none,
    );
    add(scores);
    softmax_rows(scores, tokens);
    igemm(
        rows,
        Rows::Dense {
            base: scores.as_ptr(),
            ld: tokens,
        },
        0,
        v,
        out,
        ldc,
        col0,
        &none,
    );
}

/// Query rows per task: one task's scores are `ROW_BLOCK × tokens`.
const ROW_BLOCK: usize = 48;

/// `out[b, t, h·d + e] = Σ_j softmax_j(q_bt · k_bj) v_bj[e]` for `n` images of `tokens` rows.
///
/// Tasks are (image, head, block of query rows): each computes its block's scores against every
/// key, their softmax and the product with v, so the largest temporary is one block's
/// `ROW_BLOCK × tokens` scores per thread.
pub fn self_attention(
    qkv: &[f32],
    n: usize,
    tokens: usize,
    heads: usize,
    d: usize,
    out: &mut [f32],
) {
    let width = heads * d;
    assert_eq!(qkv.len(), n * tokens * 3 * width, "attention qkv size");
    assert_eq!(out.len(), n * tokens * width, "attention output size");
    // kᵀ and v of every (image, head), packed as the GEMMs' B operands.
    let packed: Vec<std::sync::OnceLock<(PackedB, PackedB)>> =
        (0..n * heads).map(|_| std::sync::OnceLock::new()).collect();
    crate::threads::parallel_for(n * heads, |bh| {
        let (b, h) = (bh / heads, bh % heads);
        let img = &qkv[b * tokens * 3 * width..][..tokens * 3 * width];
        let (k0, v0) = (width + h * d, 2 * width + h * d);
        let kt = PackedB::pack(1, d, tokens, |_, e, j| img[j * 3 * width + k0 + e]);
        let v = PackedB::pack(1, tokens, d, |_, j, e| img[j * 3 * width + v0 + e]);
        let _ = packed[bh].set((kt, v));
    });
    let blocks = tokens.div_ceil(ROW_BLOCK);
    let op = SendPtr(out.as_mut_ptr());
    crate::threads::parallel_for(n * heads * blocks, |task| {
        let op = op;
        let (bh, blk) = (task / blocks, task % blocks);
        let (b, h) = (bh / heads, bh % heads);
        let (kt, v) = packed[bh].get().expect("packed above");
        let r0 = blk * ROW_BLOCK;
        let rows = ROW_BLOCK.min(tokens - r0);
        let mut scores = vec![0f32; rows * tokens];
        let q = &qkv[(b * tokens + r0) * 3 * width + h * d..];
        // SAFETY: q rows are `3·width` apart with `d` values each from the head's column; the
        // output rows r0.. of image b, columns h·d.., belong to this task alone.
        unsafe {
            attend_block(
                q.as_ptr(),
                3 * width,
                rows,
                kt,
                v,
                |_| {},
                &mut scores,
                op.0.add((b * tokens + r0) * width),
                width,
                h * d,
            )
        };
    });
}

/// Swin's shifted-window attention on an NHWC map of fused qkv (`[n, h, w, 3·c]`, q scaled),
/// into `out` (`[n, h, w, c]`).
pub struct WindowAttention<'a> {
    pub heads: usize,
    pub window: [usize; 2],
    /// The cyclic shift (timm rolls the map by −shift before partitioning, +shift after).
    pub shift: [usize; 2],
    /// `[heads][N][N]` relative-position bias, N = window area.
    pub bias: &'a [f32],
    /// `[windows][N][N]`: 0 or −100 (shifted windows mixing regions), or none.
    pub mask: Option<&'a [f32]>,
    /// The qkv of a padding token (the map padded to whole windows: zeros through the qkv
    /// projection, i.e. its bias).
    pub pad_qkv: &'a [f32],
}

impl WindowAttention<'_> {
    pub fn run(&self, qkv: &[f32], n: usize, h: usize, w: usize, out: &mut [f32]) {
        let c3 = self.pad_qkv.len();
        let c = c3 / 3;
        let d = c / self.heads;
        let [wh, ww] = self.window;
        let [sh, sw] = self.shift;
        let tn = wh * ww;
        let (nh, nw) = (h.div_ceil(wh), w.div_ceil(ww));
        assert_eq!(qkv.len(), n * h * w * c3, "window attention qkv size");
        assert_eq!(out.len(), n * h * w * c, "window attention output size");
        assert_eq!(
            self.bias.len(),
            self.heads * tn * tn,
            "relative position bias size"
        );
        if let Some(m) = self.mask {
            assert_eq!(m.len(), nh * nw * tn * tn, "window mask size");
        }
        let op = SendPtr(out.as_mut_ptr());
        crate::threads::parallel_for(n * nh * nw, |task| {
            let op = op;
            let (b, win) = (task / (nh * nw), task % (nh * nw));
            let (wy, wx) = (win / nw, win % nw);
            // The map pixel of each window token (None: padding), through the shift.
            let pixel = |t: usize| {
                let (y, x) = (wy * wh + t / ww, wx * ww + t % ww);
                (y < h && x < w).then(|| (b * h + (y + sh) % h) * w + (x + sw) % w)
            };
            let mut rows = vec![0f32; tn * c3];
            for t in 0..tn {
                let src = match pixel(t) {
                    Some(p) => &qkv[p * c3..][..c3],
                    None => self.pad_qkv,
                };
                rows[t * c3..][..c3].copy_from_slice(src);
            }
            let mut o = vec![0f32; tn * c];
            let mut scores = vec![0f32; tn * tn];
            for hd in 0..self.heads {
                let (k0, v0) = (c + hd * d, 2 * c + hd * d);
                let kt = PackedB::pack(1, d, tn, |_, e, j| rows[j * c3 + k0 + e]);
                let v = PackedB::pack(1, tn, d, |_, j, e| rows[j * c3 + v0 + e]);
                let bias = &self.bias[hd * tn * tn..][..tn * tn];
                let mask = self.mask.map(|m| &m[win * tn * tn..][..tn * tn]);
                let add = |s: &mut [f32]| {
                    for (i, s) in s.iter_mut().enumerate() {
                        *s += bias[i] + mask.map_or(0.0, |m| m[i]);
                    }
                };
                // SAFETY: rows/scores/o are this task's buffers with the strides given.
                unsafe {
                    attend_block(
                        rows.as_ptr().add(hd * d),
                        c3,
                        tn,
                        &kt,
                        &v,
                        add,
                        &mut scores,
                        o.as_mut_ptr(),
                        c,
                        hd * d,
                    )
                };
            }
            for t in 0..tn {
                if let Some(p) = pixel(t) {
                    // SAFETY: every map pixel belongs to exactly one window of one image, so
                    // tasks write disjoint output rows.
                    unsafe {
                        std::ptr::copy_nonoverlapping(o.as_ptr().add(t * c), op.0.add(p * c), c)
                    };
                }
            }
        });
    }
}

/// Softmax of each `len`-long row of `s`, in place (max subtracted first).
pub fn softmax_rows(s: &mut [f32], len: usize) {
    let rows = s.len() / len;
    let sp = SendPtr(s.as_mut_ptr());
    let isa = Isa::detect();
    let per_task = (rows / (4 * crate::threads::num_threads())).max(1);
    crate::threads::parallel_for(rows.div_ceil(per_task), |t| {
        let sp = sp;
        for r in t * per_task..((t + 1) * per_task).min(rows) {
            // SAFETY: each task owns whole rows.
            let row = unsafe { std::slice::from_raw_parts_mut(sp.0.add(r * len), len) };
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: Isa::Avx2 is only detected on CPUs with AVX2 and FMA.
                Isa::Avx2 => unsafe { avx2::softmax(row) },
                _ => softmax_scalar(row),
            }
        }
    });
}

fn softmax_scalar(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0f32;
    for v in row.iter_mut() {
        *v = crate::act::exp_scalar(*v - max);
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use crate::act::avx2::exp;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn softmax(row: &mut [f32]) {
        let len = row.len();
        let p = row.as_mut_ptr();
        let mut i = 0;
        let mut vmax = _mm256_set1_ps(f32::NEG_INFINITY);
        while i + 8 <= len {
            vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(p.add(i)));
            i += 8;
        }
        let mut lanes = [0f32; 8];
        _mm256_storeu_ps(lanes.as_mut_ptr(), vmax);
        let mut max = lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for &v in &row[i..] {
            max = max.max(v);
        }
        let m = _mm256_set1_ps(max);
        let mut vsum = _mm256_setzero_ps();
        i = 0;
        while i + 8 <= len {
            let e = exp(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), m));
            _mm256_storeu_ps(p.add(i), e);
            vsum = _mm256_add_ps(vsum, e);
            i += 8;
        }
        _mm256_storeu_ps(lanes.as_mut_ptr(), vsum);
        let mut sum: f32 = lanes.iter().sum();
        for v in &mut row[i..] {
            *v = crate::act::exp_scalar(*v - max);
            sum += *v;
        }
        let inv = _mm256_set1_ps(1.0 / sum);
        i = 0;
        while i + 8 <= len {
            _mm256_storeu_ps(p.add(i), _mm256_mul_ps(_mm256_loadu_ps(p.add(i)), inv));
            i += 8;
        }
        for v in &mut row[i..] {
            *v /= sum;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::lcg;

    /// Direct f64 attention, the textbook formula.
    fn reference(qkv: &[f32], n: usize, t: usize, heads: usize, d: usize) -> Vec<f64> {
        let w = heads * d;
        let at = |b: usize, j: usize, col: usize| qkv[(b * t + j) * 3 * w + col] as f64;
        let mut out = vec![0f64; n * t * w];
        for b in 0..n {
            for h in 0..heads {
                for i in 0..t {
                    let s: Vec<f64> = (0..t)
                        .map(|j| {
                            (0..d)
                                .map(|e| at(b, i, h * d + e) * at(b, j, w + h * d + e))
                                .sum()
                        })
                        .collect();
                    let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let z: f64 = s.iter().map(|v| (v - max).exp()).sum();
                    for e in 0..d {
                        out[(b * t + i) * w + h * d + e] = (0..t)
                            .map(|j| (s[j] - max).exp() / z * at(b, j, 2 * w + h * d + e))
                            .sum();
                    }
                }
            }
        }
        out
    }

    #[test]
    fn matches_the_textbook_formula() {
        // Token counts around the kernel's tile sizes, a class token's odd count (197 = 14² + 1
        // at full size), heads of 8 and 13 values.
        for (n, t, heads, d) in [
            (2, 5, 3, 8),
            (1, 17, 2, 13),
            (1, 37, 4, 16),
            (2, 50, 1, 7),
            (1, 101, 2, 8),
        ] {
            let mut s = (n * 31 + t * 7 + heads * 3 + d) as u64;
            let qkv: Vec<f32> = (0..n * t * 3 * heads * d)
                .map(|_| 4.0 * lcg(&mut s))
                .collect();
            let mut out = vec![f32::NAN; n * t * heads * d];
            self_attention(&qkv, n, t, heads, d, &mut out);
            let want = reference(&qkv, n, t, heads, d);
            for (i, (&g, &r)) in out.iter().zip(&want).enumerate() {
                assert!(
                    (g as f64 - r).abs() <= 1e-5 * (1.0 + r.abs()),
                    "n{n} t{t} h{heads} d{d} at {i}: {g} vs {r}"
                );
            }
        }
    }

    /// Direct f64 shifted-window attention: roll, pad with the padding token, partition, attend
    /// with bias and mask, reverse.
    #[allow(clippy::too_many_arguments)]
    fn window_reference(
        qkv: &[f32],
        n: usize,
        h: usize,
        w: usize,
        wa: &WindowAttention,
    ) -> Vec<f64> {
        let c3 = wa.pad_qkv.len();
        let (c, heads) = (c3 / 3, wa.heads);
        let d = c / heads;
        let [wh, ww] = wa.window;
        let tn = wh * ww;
        let (nh, nw) = (h.div_ceil(wh), w.div_ceil(ww));
        let mut out = vec![f64::NAN; n * h * w * c];
        for b in 0..n {
            for win in 0..nh * nw {
                let pos: Vec<Option<usize>> = (0..tn)
                    .map(|t| {
                        let (y, x) = ((win / nw) * wh + t / ww, (win % nw) * ww + t % ww);
                        (y < h && x < w)
                            .then(|| (b * h + (y + wa.shift[0]) % h) * w + (x + wa.shift[1]) % w)
                    })
                    .collect();
                let val = |t: usize, col: usize| match pos[t] {
                    Some(p) => qkv[p * c3 + col] as f64,
                    None => wa.pad_qkv[col] as f64,
                };
                for hd in 0..heads {
                    for i in 0..tn {
                        let s: Vec<f64> = (0..tn)
                            .map(|j| {
                                let dot: f64 = (0..d)
                                    .map(|e| val(i, hd * d + e) * val(j, c + hd * d + e))
                                    .sum();
                                let m = wa.mask.map_or(0.0, |m| m[(win * tn + i) * tn + j] as f64);
                                dot + wa.bias[(hd * tn + i) * tn + j] as f64 + m
                            })
                            .collect();
                        let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                        let z: f64 = s.iter().map(|v| (v - max).exp()).sum();
                        if let Some(p) = pos[i] {
                            for e in 0..d {
                                out[p * c + hd * d + e] = (0..tn)
                                    .map(|j| (s[j] - max).exp() / z * val(j, 2 * c + hd * d + e))
                                    .sum();
                            }
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn window_attention_matches_the_shifted_window_formula() {
        // Whole windows, shifted, and a map padded to whole windows (5 × 7 in 3 × 3 windows).
        for (h, w, window, shift, masked) in [
            (6usize, 6usize, [3, 3], [0, 0], false),
            (6, 6, [3, 3], [1, 1], true),
            (5, 7, [3, 3], [1, 1], true),
        ] {
            let (n, heads, d) = (2, 2, 4);
            let c = heads * d;
            let tn = window[0] * window[1];
            let wins = h.div_ceil(window[0]) * w.div_ceil(window[1]);
            let mut s = (h * 13 + w) as u64;
            let qkv: Vec<f32> = (0..n * h * w * 3 * c).map(|_| 2.0 * lcg(&mut s)).collect();
            let bias: Vec<f32> = (0..heads * tn * tn).map(|_| lcg(&mut s)).collect();
            let mask: Vec<f32> = (0..wins * tn * tn)
                .map(|_| if lcg(&mut s) > 0.2 { -100.0 } else { 0.0 })
                .collect();
            let pad_qkv: Vec<f32> = (0..3 * c).map(|_| lcg(&mut s)).collect();
            let wa = WindowAttention {
                heads,
                window,
                shift,
                bias: &bias,
                mask: masked.then_some(&mask[..]),
                pad_qkv: &pad_qkv,
            };
            let mut out = vec![f32::NAN; n * h * w * c];
            wa.run(&qkv, n, h, w, &mut out);
            let want = window_reference(&qkv, n, h, w, &wa);
            for (i, (&g, &r)) in out.iter().zip(&want).enumerate() {
                assert!(
                    (g as f64 - r).abs() <= 1e-5 * (1.0 + r.abs()),
                    "{h}x{w} shift {shift:?} at {i}: {g} vs {r}"
                );
            }
        }
    }

    #[test]
    fn softmax_rows_sum_to_one_and_match_exp() {
        let mut row: Vec<f32> = vec![1.0, 2.0, 3.0, -1.0, 0.5, 100.0, 99.0, 0.0, 2.0, 3.0, 4.0];
        let len = row.len();
        let want: Vec<f64> = {
            let max = 100.0f64;
            let z: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
            row.iter().map(|&v| (v as f64 - max).exp() / z).collect()
        };
        softmax_rows(&mut row, len);
        for (g, w) in row.iter().zip(&want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{g} vs {w}");
        }
    }
}
