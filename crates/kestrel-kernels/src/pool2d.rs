//! Pooling on NHWC. Each output pixel reduces whole channel vectors, so the inner loops run
//! over contiguous channels and vectorise without intrinsics.

use crate::{SendConstPtr, SendPtr};

/// Max pooling with PyTorch's semantics (padding never wins the max, floor division for the
/// output size). Returns (oh, ow).
#[allow(clippy::too_many_arguments)]
pub fn max_pool(
    x: &[f32],
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 2],
    out: &mut [f32],
) -> (usize, usize) {
    let oh = (h + 2 * pad[0] - kernel[0]) / stride[0] + 1;
    let ow = (w + 2 * pad[1] - kernel[1]) / stride[1] + 1;
    assert_eq!(x.len(), n * h * w * c);
    assert_eq!(out.len(), n * oh * ow * c);
    let xp = SendConstPtr(x.as_ptr());
    let op = SendPtr(out.as_mut_ptr());
    crate::threads::parallel_for(n * oh, |row| {
        let (xp, op) = (xp, op);
        let (b, y) = (row / oh, row % oh);
        for xo in 0..ow {
            // SAFETY: each task writes one output row; reads are bounds-checked.
            let dst = unsafe {
                std::slice::from_raw_parts_mut(op.0.add(((b * oh + y) * ow + xo) * c), c)
            };
            dst.fill(f32::NEG_INFINITY);
            for i in 0..kernel[0] {
                let iy = (y * stride[0] + i) as isize - pad[0] as isize;
                if iy < 0 || iy >= h as isize {
                    continue;
                }
                for j in 0..kernel[1] {
                    let ix = (xo * stride[1] + j) as isize - pad[1] as isize;
                    if ix < 0 || ix >= w as isize {
                        continue;
                    }
                    let src = unsafe {
                        std::slice::from_raw_parts(
                            xp.0.add(((b * h + iy as usize) * w + ix as usize) * c),
                            c,
                        )
                    };
                    for (d, s) in dst.iter_mut().zip(src) {
                        *d = d.max(*s);
                    }
                }
            }
        }
    });
    (oh, ow)
}

/// Mean over all pixels of each image: `[n, h, w, c]` -> `[n, c]`. Sums in f32 in pixel order,
/// as PyTorch's CPU mean does for channels-last tensors.
pub fn global_avg_pool(x: &[f32], n: usize, hw: usize, c: usize, out: &mut [f32]) {
    assert_eq!(x.len(), n * hw * c);
    assert_eq!(out.len(), n * c);
    for b in 0..n {
        let dst = &mut out[b * c..(b + 1) * c];
        dst.fill(0.0);
        for p in 0..hw {
            let src = &x[(b * hw + p) * c..(b * hw + p + 1) * c];
            for (d, s) in dst.iter_mut().zip(src) {
                *d += *s;
            }
        }
        let inv = 1.0 / hw as f32;
        for d in dst.iter_mut() {
            *d *= inv;
        }
    }
}

/// The output size of an unpadded pooling window `k`, stride `s`, over `i` pixels (`i ≥ k`),
/// as PyTorch computes it: floor mode, or ceil mode, where the last window must still start
/// inside the input.
pub fn avg_pool_out(i: usize, k: usize, s: usize, ceil_mode: bool) -> usize {
    if !ceil_mode {
        return (i - k) / s + 1;
    }
    let o = (i - k).div_ceil(s) + 1;
    if (o - 1) * s >= i {
        o - 1
    } else {
        o
    }
}

/// Unpadded average pooling; in ceil mode a window that overhangs the input averages only the
/// pixels it covers (PyTorch's `count_include_pad=False`), as timm's ResNet-D shortcut
/// (`AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)`) needs. Returns (oh, ow).
#[allow(clippy::too_many_arguments)]
pub fn avg_pool(
    x: &[f32],
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    ceil_mode: bool,
    out: &mut [f32],
) -> (usize, usize) {
    let oh = avg_pool_out(h, kernel[0], stride[0], ceil_mode);
    let ow = avg_pool_out(w, kernel[1], stride[1], ceil_mode);
    assert_eq!(out.len(), n * oh * ow * c);
    for b in 0..n {
        for y in 0..oh {
            for xo in 0..ow {
                let dst = &mut out[((b * oh + y) * ow + xo) * c..][..c];
                dst.fill(0.0);
                let mut count = 0;
                for iy in y * stride[0]..(y * stride[0] + kernel[0]).min(h) {
                    for ix in xo * stride[1]..(xo * stride[1] + kernel[1]).min(w) {
                        count += 1;
                        let src = &x[((b * h + iy) * w + ix) * c..][..c];
                        for (d, s) in dst.iter_mut().zip(src) {
                            *d += *s;
                        }
                    }
                }
                let inv = 1.0 / count as f32;
                dst.iter_mut().for_each(|d| *d *= inv);
            }
        }
    }
    (oh, ow)
}

/// PyTorch's adaptive average pooling: output cell `i` averages input rows
/// `⌊i·h/oh⌋ .. ⌈(i+1)·h/oh⌉` (and likewise columns).
#[allow(clippy::too_many_arguments)]
pub fn adaptive_avg_pool(
    x: &[f32],
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    oh: usize,
    ow: usize,
    out: &mut [f32],
) {
    assert_eq!(x.len(), n * h * w * c);
    assert_eq!(out.len(), n * oh * ow * c);
    for b in 0..n {
        for y in 0..oh {
            let (y0, y1) = (y * h / oh, ((y + 1) * h).div_ceil(oh));
            for xo in 0..ow {
                let (x0, x1) = (xo * w / ow, ((xo + 1) * w).div_ceil(ow));
                let dst = &mut out[((b * oh + y) * ow + xo) * c..][..c];
                dst.fill(0.0);
                for iy in y0..y1 {
                    for ix in x0..x1 {
                        let src = &x[((b * h + iy) * w + ix) * c..][..c];
                        for (d, s) in dst.iter_mut().zip(src) {
                            *d += *s;
                        }
                    }
                }
                let inv = 1.0 / ((y1 - y0) * (x1 - x0)) as f32;
                dst.iter_mut().for_each(|d| *d *= inv);
            }
        }
    }
}

/// `[n, h, w, c]` -> `[n, c·h·w]` in PyTorch's `flatten(1)` order (channel-major), so the
/// linear layer after it keeps its weights as trained.
pub fn flatten_nchw(x: &[f32], n: usize, h: usize, w: usize, c: usize, out: &mut [f32]) {
    assert_eq!(x.len(), n * h * w * c);
    assert_eq!(out.len(), x.len());
    let hw = h * w;
    for b in 0..n {
        for p in 0..hw {
            for ch in 0..c {
                out[b * c * hw + ch * hw + p] = x[(b * hw + p) * c + ch];
            }
        }
    }
}
