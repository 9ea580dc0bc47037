//! Per-pixel normalisation and scaling on NHWC rows.

use crate::{SendConstPtr, SendPtr};

/// Layer norm over the last (channel) dimension of `rows × c`, in place: biased variance, as
/// PyTorch's `F.layer_norm`, two passes (mean, then the mean of squared deviations, so a large
/// mean costs no precision). AVX2 sums in eight f32 lanes, the scalar path in f64.
pub fn layer_norm_rows(x: &mut [f32], c: usize, weight: &[f32], bias: &[f32], eps: f32) {
    assert_eq!(x.len() % c, 0);
    assert!(
        weight.len() == c && bias.len() == c,
        "layer norm weight size"
    );
    let rows = x.len() / c;
    let xp = SendPtr(x.as_mut_ptr());
    let per_task = (rows / (4 * crate::threads::num_threads())).max(1);
    let isa = crate::Isa::detect();
    crate::threads::parallel_for(rows.div_ceil(per_task), |t| {
        let xp = xp;
        for r in t * per_task..((t + 1) * per_task).min(rows) {
            // SAFETY: each task owns whole rows.
            let row = unsafe { std::slice::from_raw_parts_mut(xp.0.add(r * c), c) };
            match isa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: Isa::Avx2 is only detected on CPUs with AVX2 and FMA.
                crate::Isa::Avx2 => unsafe { avx2::layer_norm_row(row, weight, bias, eps) },
                _ => layer_norm_row_scalar(row, weight, bias, eps),
            }
        }
    });
}

fn layer_norm_row_scalar(row: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
    let c = row.len();
    let mean = row.iter().map(|&v| v as f64).sum::<f64>() / c as f64;
    let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / c as f64;
    let inv = 1.0 / (var + eps as f64).sqrt();
    let (mean, inv) = (mean as f32, inv as f32);
    for ((v, g), b) in row.iter_mut().zip(weight).zip(bias) {
        *v = (*v - mean) * inv * g + b;
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    unsafe fn hsum(v: __m256) -> f32 {
        let mut l = [0f32; 8];
        _mm256_storeu_ps(l.as_mut_ptr(), v);
        ((l[0] + l[4]) + (l[1] + l[5])) + ((l[2] + l[6]) + (l[3] + l[7]))
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn layer_norm_row(row: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
        let c = row.len();
        let p = row.as_mut_ptr();
        let full = c / 8 * 8;
        let mut acc = _mm256_setzero_ps();
        for i in (0..full).step_by(8) {
            acc = _mm256_add_ps(acc, _mm256_loadu_ps(p.add(i)));
        }
        let mut sum = hsum(acc);
        for &v in &row[full..] {
            sum += v;
        }
        let mean = sum / c as f32;
        let m = _mm256_set1_ps(mean);
        let mut acc = _mm256_setzero_ps();
        for i in (0..full).step_by(8) {
            let d = _mm256_sub_ps(_mm256_loadu_ps(p.add(i)), m);
            acc = _mm256_fmadd_ps(d, d, acc);
        }
        let mut sq = hsum(acc);
        for &v in &row[full..] {
            sq += (v - mean) * (v - mean);
        }
        let inv = 1.0 / (sq / c as f32 + eps).sqrt();
        let vi = _mm256_set1_ps(inv);
        for i in (0..full).step_by(8) {
            let d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(p.add(i)), m), vi);
            let y = _mm256_fmadd_ps(
                d,
                _mm256_loadu_ps(weight.as_ptr().add(i)),
                _mm256_loadu_ps(bias.as_ptr().add(i)),
            );
            _mm256_storeu_ps(p.add(i), y);
        }
        for i in full..c {
            row[i] = (row[i] - mean) * inv * weight[i] + bias[i];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_norm_matches_f64_on_offset_rows() {
        // Widths around the 8 lanes; a mean far from zero.
        for c in [3usize, 8, 13, 96, 385] {
            let rows = 5;
            let x: Vec<f32> = (0..rows * c)
                .map(|i| 100.0 + ((i * 37 % 101) as f32 - 50.0) / 7.0)
                .collect();
            let w: Vec<f32> = (0..c).map(|i| 0.5 + i as f32 / c as f32).collect();
            let b: Vec<f32> = (0..c).map(|i| (i as f32 - 3.0) / 10.0).collect();
            let mut y = x.clone();
            layer_norm_rows(&mut y, c, &w, &b, 1e-6);
            for r in 0..rows {
                let row = &x[r * c..][..c];
                let mean = row.iter().map(|&v| v as f64).sum::<f64>() / c as f64;
                let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / c as f64;
                for i in 0..c {
                    let want =
                        (row[i] as f64 - mean) / (var + 1e-6).sqrt() * w[i] as f64 + b[i] as f64;
                    let got = y[r * c + i] as f64;
                    assert!(
                        (got - want).abs() < 2e-5 * (1.0 + want.abs()),
                        "c{c} ({r}, {i}): {got} vs {want}"
                    );
                }
            }
        }
    }
}

/// `x[b, p, ch] *= scale[b, ch]` for `[n, hw, c]` (squeeze-and-excitation's rescale).
pub fn scale_channels(x: &mut [f32], n: usize, hw: usize, c: usize, scale: &[f32]) {
    assert_eq!(x.len(), n * hw * c);
    assert_eq!(scale.len(), n * c);
    let xp = SendPtr(x.as_mut_ptr());
    let sp = SendConstPtr(scale.as_ptr());
    let rows = n * hw;
    let per_task = (rows / (4 * crate::threads::num_threads())).max(1);
    crate::threads::parallel_for(rows.div_ceil(per_task), |t| {
        let (xp, sp) = (xp, sp);
        for r in t * per_task..((t + 1) * per_task).min(rows) {
            let b = r / hw;
            // SAFETY: each task owns whole rows; `scale` is only read.
            let row = unsafe { std::slice::from_raw_parts_mut(xp.0.add(r * c), c) };
            let s = unsafe { std::slice::from_raw_parts(sp.0.add(b * c), c) };
            for (v, s) in row.iter_mut().zip(s) {
                *v *= s;
            }
        }
    });
}
