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
        let none = Epilogue::new(None, Act::Identity);
        let q = &qkv[(b * tokens + r0) * 3 * width + h * d..];
        // SAFETY: q rows are `3·width` apart with `d` values each from the head's column;
        // `scores` is rows × tokens; the output rows r0.. of image b, columns h·d.., belong to
        // this task alone. GEMMs inside a task run on this thread (see threads::parallel_for).
        unsafe {
            igemm(
                rows,
                Rows::Dense {
                    base: q.as_ptr(),
                    ld: 3 * width,
                },
                0,
                kt,
                scores.as_mut_ptr(),
                tokens,
                0,
                &none,
            );
            softmax_rows(&mut scores, tokens);
            igemm(
                rows,
                Rows::Dense {
                    base: scores.as_ptr(),
                    ld: tokens,
                },
                0,
                v,
                op.0.add((b * tokens + r0) * width),
                width,
                h * d,
                &none,
            );
        }
    });
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

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 40) as f32 / (1u64 << 24) as f32) - 0.5
    }

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
