//! Per-pixel normalisation and scaling on NHWC rows.

use crate::{SendConstPtr, SendPtr};

/// Layer norm over the last (channel) dimension of `rows × c`, in place: biased variance, as
/// PyTorch's `F.layer_norm`, with the two-pass mean/variance in f32 sums of f64 accuracy where
/// it matters (long rows).
pub fn layer_norm_rows(x: &mut [f32], c: usize, weight: &[f32], bias: &[f32], eps: f32) {
    assert_eq!(x.len() % c, 0);
    let rows = x.len() / c;
    let xp = SendPtr(x.as_mut_ptr());
    let per_task = (rows / (4 * crate::threads::num_threads())).max(1);
    crate::threads::parallel_for(rows.div_ceil(per_task), |t| {
        let xp = xp;
        for r in t * per_task..((t + 1) * per_task).min(rows) {
            // SAFETY: each task owns whole rows.
            let row = unsafe { std::slice::from_raw_parts_mut(xp.0.add(r * c), c) };
            let mean = row.iter().map(|&v| v as f64).sum::<f64>() / c as f64;
            let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / c as f64;
            let inv = 1.0 / (var + eps as f64).sqrt();
            let (mean, inv) = (mean as f32, inv as f32);
            for ((v, g), b) in row.iter_mut().zip(weight).zip(bias) {
                *v = (*v - mean) * inv * g + b;
            }
        }
    });
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
