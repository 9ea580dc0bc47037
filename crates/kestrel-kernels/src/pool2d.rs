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
    if c == 1 {
        // NCHW planes (training): plain loops, without the channel-vector machinery.
        for b in 0..n {
            let plane = &x[b * h * w..(b + 1) * h * w];
            for y in 0..oh {
                let rows = y * stride[0]..(y * stride[0] + kernel[0]).min(h);
                for xo in 0..ow {
                    let cols = xo * stride[1]..(xo * stride[1] + kernel[1]).min(w);
                    let mut sum = 0f32;
                    for iy in rows.clone() {
                        sum += plane[iy * w + cols.start..iy * w + cols.end]
                            .iter()
                            .sum::<f32>();
                    }
                    out[(b * oh + y) * ow + xo] = sum / (rows.len() * cols.len()) as f32;
                }
            }
        }
        return (oh, ow);
    }
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

/// The gradient of [`avg_pool`] (same layout and arguments): each output pixel's gradient is
/// spread evenly over the pixels its window averaged, accumulating where windows overlap.
#[allow(clippy::too_many_arguments)]
pub fn avg_pool_backward(
    dy: &[f32],
    n: usize,
    h: usize,
    w: usize,
    c: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    ceil_mode: bool,
    dx: &mut [f32],
) {
    let oh = avg_pool_out(h, kernel[0], stride[0], ceil_mode);
    let ow = avg_pool_out(w, kernel[1], stride[1], ceil_mode);
    assert_eq!(dy.len(), n * oh * ow * c, "avg pool dy size");
    assert_eq!(dx.len(), n * h * w * c, "avg pool dx size");
    dx.fill(0.0);
    if c == 1 {
        for b in 0..n {
            let plane = &mut dx[b * h * w..(b + 1) * h * w];
            for y in 0..oh {
                let rows = y * stride[0]..(y * stride[0] + kernel[0]).min(h);
                for xo in 0..ow {
                    let cols = xo * stride[1]..(xo * stride[1] + kernel[1]).min(w);
                    let g = dy[(b * oh + y) * ow + xo] / (rows.len() * cols.len()) as f32;
                    for iy in rows.clone() {
                        plane[iy * w + cols.start..iy * w + cols.end]
                            .iter_mut()
                            .for_each(|d| *d += g);
                    }
                }
            }
        }
        return;
    }
    for b in 0..n {
        for y in 0..oh {
            let rows = y * stride[0]..(y * stride[0] + kernel[0]).min(h);
            for xo in 0..ow {
                let cols = xo * stride[1]..(xo * stride[1] + kernel[1]).min(w);
                let inv = 1.0 / (rows.len() * cols.len()) as f32;
                let g = &dy[((b * oh + y) * ow + xo) * c..][..c];
                for iy in rows.clone() {
                    for ix in cols.clone() {
                        let d = &mut dx[((b * h + iy) * w + ix) * c..][..c];
                        for (d, g) in d.iter_mut().zip(g) {
                            *d += g * inv;
                        }
                    }
                }
            }
        }
    }
}

/// [`avg_pool`] on NCHW planes (`planes` = batch × channels), planes spread across the compute
/// threads; returns the pooled planes and (oh, ow).
pub fn avg_pool_nchw(
    x: &[f32],
    planes: usize,
    h: usize,
    w: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    ceil_mode: bool,
) -> (Vec<f32>, usize, usize) {
    let oh = avg_pool_out(h, kernel[0], stride[0], ceil_mode);
    let ow = avg_pool_out(w, kernel[1], stride[1], ceil_mode);
    assert_eq!(x.len(), planes * h * w, "avg pool input size");
    let mut y = vec![0f32; planes * oh * ow];
    over_plane_blocks(x, h * w, &mut y, oh * ow, planes, |src, dst, count| {
        avg_pool(src, count, h, w, 1, kernel, stride, ceil_mode, dst);
    });
    (y, oh, ow)
}

/// [`avg_pool_backward`] on NCHW planes, across the compute threads; returns `dx`.
#[allow(clippy::too_many_arguments)]
pub fn avg_pool_nchw_backward(
    dy: &[f32],
    planes: usize,
    h: usize,
    w: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    ceil_mode: bool,
) -> Vec<f32> {
    let oh = avg_pool_out(h, kernel[0], stride[0], ceil_mode);
    let ow = avg_pool_out(w, kernel[1], stride[1], ceil_mode);
    assert_eq!(dy.len(), planes * oh * ow, "avg pool dy size");
    let mut dx = vec![0f32; planes * h * w];
    over_plane_blocks(dy, oh * ow, &mut dx, h * w, planes, |src, dst, count| {
        avg_pool_backward(src, count, h, w, 1, kernel, stride, ceil_mode, dst);
    });
    dx
}

/// `f(src planes, dst planes, count)` over blocks of whole planes, across the compute threads
/// (blocks of about 16 K source pixels, so small maps still make tasks worth a thread).
fn over_plane_blocks(
    src: &[f32],
    src_plane: usize,
    dst: &mut [f32],
    dst_plane: usize,
    planes: usize,
    f: impl Fn(&[f32], &mut [f32], usize) + Sync,
) {
    let block = (16384 / src_plane.max(1)).clamp(1, planes.max(1));
    let out = crate::SendPtr(dst.as_mut_ptr());
    crate::threads::parallel_for(planes.div_ceil(block), |t| {
        let out = out;
        let (p0, p1) = (t * block, ((t + 1) * block).min(planes));
        // SAFETY (disjoint writes): task t owns planes p0..p1 of dst.
        let d = unsafe {
            std::slice::from_raw_parts_mut(out.0.add(p0 * dst_plane), (p1 - p0) * dst_plane)
        };
        f(&src[p0 * src_plane..p1 * src_plane], d, p1 - p0);
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    /// PyTorch's unpadded avg_pool2d, window by window in f64: the forward and, for `dy`,
    /// the gradient (each window's share `dy / count` added to every pixel it covers).
    fn reference(
        x: &[f32],
        dy: &[f32],
        planes: usize,
        (h, w): (usize, usize),
        k: usize,
        s: usize,
        ceil: bool,
    ) -> (Vec<f64>, Vec<f64>) {
        let out = |i: usize| {
            let o = if ceil {
                (i - k).div_ceil(s) + 1
            } else {
                (i - k) / s + 1
            };
            if ceil && (o - 1) * s >= i {
                o - 1
            } else {
                o
            }
        };
        let (oh, ow) = (out(h), out(w));
        let mut y = vec![0f64; planes * oh * ow];
        let mut dx = vec![0f64; planes * h * w];
        for p in 0..planes {
            for oy in 0..oh {
                for ox in 0..ow {
                    let cells: Vec<usize> = (oy * s..(oy * s + k).min(h))
                        .flat_map(|iy| (ox * s..(ox * s + k).min(w)).map(move |ix| iy * w + ix))
                        .collect();
                    let o = (p * oh + oy) * ow + ox;
                    let n = cells.len() as f64;
                    y[o] = cells.iter().map(|&c| x[p * h * w + c] as f64).sum::<f64>() / n;
                    for &c in &cells {
                        dx[p * h * w + c] += dy[o] as f64 / n;
                    }
                }
            }
        }
        (y, dx)
    }

    #[test]
    fn nchw_avg_pool_and_its_gradient_match_pytorchs_windows() {
        // LeNet's 2×2/2, an odd map in ceil mode (ResNet-D's shortcut), overlapping 3×3/2.
        for (planes, h, w, k, s, ceil) in [
            (12, 28, 28, 2, 2, false),
            (5, 7, 9, 2, 2, true),
            (3, 11, 10, 3, 2, false),
            (3, 11, 10, 3, 2, true),
        ] {
            let x: Vec<f32> = (0..planes * h * w)
                .map(|i| ((i * 37) % 101) as f32 / 50.0 - 1.0)
                .collect();
            let (y, oh, ow) = avg_pool_nchw(&x, planes, h, w, [k, k], [s, s], ceil);
            let dy: Vec<f32> = (0..planes * oh * ow)
                .map(|i| ((i * 13) % 29) as f32 / 7.0 - 2.0)
                .collect();
            let dx = avg_pool_nchw_backward(&dy, planes, h, w, [k, k], [s, s], ceil);
            let (want_y, want_dx) = reference(&x, &dy, planes, (h, w), k, s, ceil);
            assert_eq!(
                y.len(),
                want_y.len(),
                "output size for {h}×{w} k{k} s{s} ceil {ceil}"
            );
            for (got, want) in y.iter().zip(&want_y).chain(dx.iter().zip(&want_dx)) {
                assert!(
                    (*got as f64 - want).abs() < 1e-5,
                    "{h}×{w} k{k} s{s} ceil {ceil}: {got} vs {want}"
                );
            }
        }
    }
}
