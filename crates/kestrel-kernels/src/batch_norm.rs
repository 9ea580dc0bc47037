//! Batch normalisation in training mode on NCHW, fused with the activation that follows it.
//!
//! burn's generic `batch_norm_train` (what flex runs) builds the statistics from a transposed
//! copy of the input, then normalises in four element-wise passes, and its backward adds two more
//! transposed copies and about ten passes; the activation after it is one more pass each way and
//! keeps its own input alive for the backward. Here the forward is two passes (per-channel
//! statistics, then normalise and activate) and the backward two (per-channel sums of the
//! activation's gradient, then the input gradient), over each channel's `n` contiguous planes,
//! one channel per task. The activation's input (the normalised tensor) is never stored: the
//! backward recomputes it from `x` on the fly.
//!
//! Statistics: each plane's mean and squared deviations in f32 (eight lanes), planes combined in
//! f64 by Chan et al.'s parallel formula. Variance is biased, as burn's and PyTorch's
//! normalisation use.

use crate::{Act, SendConstPtr, SendPtr};

/// `Σ v` and `Σ (v - mean)²` of one plane, with the plane's own mean, eight lanes wide.
fn plane_moments(p: &[f32]) -> (f64, f64) {
    let sum = lanes_sum(p, |v| v);
    let mean = (sum / p.len() as f64) as f32;
    let m2 = lanes_sum(p, |v| (v - mean) * (v - mean));
    (sum / p.len() as f64, m2)
}

/// `Σ f(v)` in eight f32 lanes (which the compiler vectorises), finished in f64.
#[inline(always)]
fn lanes_sum(p: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut acc = [0f32; 8];
    let chunks = p.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for l in 0..8 {
            acc[l] += f(c[l]);
        }
    }
    acc.iter().map(|&a| a as f64).sum::<f64>() + tail.iter().map(|&v| f(v) as f64).sum::<f64>()
}

/// `Σ a·(b - m)` in eight f32 lanes, finished in f64.
#[inline(always)]
fn lanes_dot_centred(a: &[f32], b: &[f32], m: f32) -> f64 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * (y[l] - m);
        }
    }
    acc.iter().map(|&v| v as f64).sum::<f64>()
        + ta.iter()
            .zip(tb)
            .map(|(x, y)| (x * (y - m)) as f64)
            .sum::<f64>()
}

/// The per-channel `(scale, shift)` of `y = x·scale + shift`, and `1/sqrt(var + eps)`.
fn affine(gamma: f32, beta: f32, mean: f32, var: f32, eps: f32) -> (f32, f32, f32) {
    let inv_std = (1.0 / (var as f64 + eps as f64).sqrt()) as f32;
    let scale = gamma * inv_std;
    (scale, beta - mean * scale, inv_std)
}

/// Training-mode batch norm of `x` (`[n, c, hw]`, NCHW) followed by `act`:
/// `act((x - mean) / sqrt(var + eps) · gamma + beta)` with the batch's per-channel mean and
/// biased variance, which are returned beside the output for the running statistics.
pub fn train_forward_nchw(
    x: &[f32],
    n: usize,
    c: usize,
    hw: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    act: Act,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), n * c * hw, "batch norm input size");
    assert!(
        gamma.len() == c && beta.len() == c,
        "batch norm parameter sizes"
    );
    // Every channel's task writes all of its planes (not zeroed first: see `written_vec`).
    let mut y = Vec::<f32>::with_capacity(x.len());
    let mut mean = vec![0f32; c];
    let mut var = vec![0f32; c];
    let (xp, yp) = (SendConstPtr(x.as_ptr()), SendPtr(y.as_mut_ptr()));
    let (mp, vp) = (SendPtr(mean.as_mut_ptr()), SendPtr(var.as_mut_ptr()));
    crate::threads::parallel_for(c, |ch| {
        let (xp, yp, mp, vp) = (xp, yp, mp, vp);
        // SAFETY: task `ch` reads channel ch's planes of x and writes only channel ch's planes
        // of y and element ch of mean/var.
        let plane =
            |b: usize| unsafe { std::slice::from_raw_parts(xp.0.add((b * c + ch) * hw), hw) };
        // Chan et al.: combine the planes' (count, mean, M2).
        let (mut count, mut mu, mut m2) = (0f64, 0f64, 0f64);
        for b in 0..n {
            let (pm, pm2) = plane_moments(plane(b));
            let k = hw as f64;
            let delta = pm - mu;
            let total = count + k;
            mu += delta * k / total;
            m2 += pm2 + delta * delta * count * k / total;
            count = total;
        }
        let (m, v) = (mu as f32, (m2 / count) as f32);
        unsafe {
            *mp.0.add(ch) = m;
            *vp.0.add(ch) = v;
        }
        let (scale, shift, _) = affine(gamma[ch], beta[ch], m, v, eps);
        for b in 0..n {
            let out = unsafe { std::slice::from_raw_parts_mut(yp.0.add((b * c + ch) * hw), hw) };
            for (o, &v) in out.iter_mut().zip(plane(b)) {
                *o = v * scale + shift;
            }
            act.apply_slice(out);
        }
    });
    // SAFETY: the c tasks wrote every plane of y.
    unsafe { y.set_len(x.len()) };
    (y, mean, var)
}

/// Whether [`train_backward_nchw`] can differentiate through `act`.
pub fn supports(act: Act) -> bool {
    act.has_backward()
}

/// The gradients of [`train_forward_nchw`] with respect to `x`, `gamma` and `beta`, given the
/// output's gradient `dy` and the `mean`/`var` the forward returned:
/// `g = dy · act'(x̂·gamma + beta)`, `dbeta = Σ g`, `dgamma = Σ g·x̂`,
/// `dx = gamma/σ · (g - mean(g) - x̂·mean(g·x̂))`, sums per channel over `n` and `hw`.
#[allow(clippy::too_many_arguments)]
pub fn train_backward_nchw(
    x: &[f32],
    dy: &[f32],
    n: usize,
    c: usize,
    hw: usize,
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f32,
    act: Act,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert!(supports(act), "batch norm backward through {act:?}");
    assert!(
        x.len() == n * c * hw && dy.len() == x.len(),
        "batch norm gradient size"
    );
    // Every channel's task writes all of its planes of dx before reading them (pass 1 copies dy
    // in), so dx is not zeroed first.
    let mut dx = Vec::<f32>::with_capacity(x.len());
    let mut dgamma = vec![0f32; c];
    let mut dbeta = vec![0f32; c];
    let (xp, dyp, dxp) = (
        SendConstPtr(x.as_ptr()),
        SendConstPtr(dy.as_ptr()),
        SendPtr(dx.as_mut_ptr()),
    );
    let (gp, bp) = (SendPtr(dgamma.as_mut_ptr()), SendPtr(dbeta.as_mut_ptr()));
    let count = (n * hw) as f64;
    crate::threads::parallel_for(c, |ch| {
        let (xp, dyp, dxp, gp, bp) = (xp, dyp, dxp, gp, bp);
        let at = |b: usize| (b * c + ch) * hw;
        // SAFETY: task `ch` reads channel ch's planes of x and dy and writes only channel ch's
        // planes of dx and element ch of dgamma/dbeta.
        let x_plane = |b: usize| unsafe { std::slice::from_raw_parts(xp.0.add(at(b)), hw) };
        let dy_plane = |b: usize| unsafe { std::slice::from_raw_parts(dyp.0.add(at(b)), hw) };
        let dx_plane = |b: usize| unsafe { std::slice::from_raw_parts_mut(dxp.0.add(at(b)), hw) };
        let (m, v) = (mean[ch], var[ch]);
        let (scale, shift, inv_std) = affine(gamma[ch], beta[ch], m, v, eps);
        // Pass 1: g (kept in dx) and its two per-channel sums.
        let (mut sum_g, mut sum_gx) = (0f64, 0f64);
        for b in 0..n {
            let (xs, g) = (x_plane(b), dx_plane(b));
            g.copy_from_slice(dy_plane(b));
            if act != Act::Identity {
                // act' at the activation's input, recomputed; kept in a stack-sized buffer.
                let mut pre = [0f32; 512];
                for (xs, g) in xs.chunks(512).zip(g.chunks_mut(512)) {
                    let pre = &mut pre[..xs.len()];
                    for (p, &v) in pre.iter_mut().zip(xs) {
                        *p = v * scale + shift;
                    }
                    act.backward_slice(pre, g);
                }
            }
            sum_g += lanes_sum(g, |v| v);
            sum_gx += lanes_dot_centred(g, xs, m);
        }
        unsafe {
            *bp.0.add(ch) = sum_g as f32;
            *gp.0.add(ch) = (sum_gx * inv_std as f64) as f32;
        }
        // Pass 2: dx = scale·(g - mean(g) - (x - mean)·inv_std²·mean(g·(x - mean))).
        let mean_g = (sum_g / count) as f32;
        let k = (sum_gx / count * (inv_std as f64) * (inv_std as f64)) as f32;
        for b in 0..n {
            let (xs, g) = (x_plane(b), dx_plane(b));
            for (g, &v) in g.iter_mut().zip(xs) {
                *g = scale * (*g - mean_g - (v - m) * k);
            }
        }
    });
    // SAFETY: the c tasks wrote every plane of dx.
    unsafe { dx.set_len(x.len()) };
    (dx, dgamma, dbeta)
}

// NHWC: the same sums in the same order as the NCHW kernels (each image's plane of a channel
// summed in eight f32 lanes, lane `p mod 8` taking pixel p, the lanes then added in f64 with the
// ragged tail; the planes combined image by image), computed for all channels of a pixel row
// at once. The results are bit-identical to the NCHW kernels', so a training run does not
// depend on which layout its activations happened to be in.

/// Calls the AVX2 build of `$body` where the CPU has AVX2 (the same operations in the same
/// order: Rust neither reassociates nor contracts float arithmetic, so the bits are the same
/// as the portable build's, on 8-lane registers instead of SSE's 4).
macro_rules! avx2_build {
    ($(#[$doc:meta])* fn $name:ident / $avx2:ident ( $($arg:ident : $ty:ty),* ) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            if crate::Isa::detect() == crate::Isa::Avx2 {
                // SAFETY: AVX2 and FMA were detected.
                return unsafe { $avx2($($arg),*) };
            }
            $body
        }

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx2($($arg: $ty),*) $(-> $ret)? $body
    };
}

avx2_build! {
    /// Per channel, `(Σ_p v, Σ_p (v - mean)²)` over one image's `hw` NHWC rows, each as
    /// [`lanes_sum`] sums one plane: eight f32 lanes (lane `p mod 8` takes pixel p), then the
    /// lanes and the ragged tail in f64. `mean` is the plane's own, from the first sum.
    fn image_moments / image_moments_avx2(img: &[f32], c: usize, hw: usize) -> (Vec<f64>, Vec<f64>) {
    let full = hw - hw % 8;
    let mut acc = vec![0f32; 8 * c];
    for (p, row) in img[..full * c].chunks_exact(c).enumerate() {
        for (a, &v) in acc[(p % 8) * c..][..c].iter_mut().zip(row) {
            *a += v;
        }
    }
    let sum = finish_lanes(&acc, &img[full * c..hw * c], c, |_, v| v);
    let mean: Vec<f32> = sum.iter().map(|s| (s / hw as f64) as f32).collect();
    acc.iter_mut().for_each(|a| *a = 0.0);
    for (p, row) in img[..full * c].chunks_exact(c).enumerate() {
        for ((a, &v), &m) in acc[(p % 8) * c..][..c].iter_mut().zip(row).zip(&mean) {
            *a += (v - m) * (v - m);
        }
    }
    let m2 = finish_lanes(&acc, &img[full * c..hw * c], c, |ch, v| {
        (v - mean[ch]) * (v - mean[ch])
    });
    (sum, m2)
    }
}

/// Per channel: the eight lanes of `acc` (`[lane][c]`) added in f64, then the tail rows'
/// `f(ch, v)` in f64, in pixel order (as `lanes_sum` finishes a plane).
#[inline(always)]
fn finish_lanes(acc: &[f32], tail: &[f32], c: usize, f: impl Fn(usize, f32) -> f32) -> Vec<f64> {
    (0..c)
        .map(|ch| {
            let lanes: f64 = (0..8).map(|l| acc[l * c + ch] as f64).sum();
            let tail: f64 = tail.chunks_exact(c).map(|r| f(ch, r[ch]) as f64).sum();
            lanes + tail
        })
        .collect()
}

avx2_build! {
    /// `out[r][ch] = x[r][ch]·scale[ch] + shift[ch]` over rows of `scale.len()` channels.
    fn rows_affine / rows_affine_avx2(out: &mut [f32], x: &[f32], scale: &[f32], shift: &[f32]) {
        let c = scale.len();
        for (o, xr) in out.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
            for (((o, &v), &sc), &sh) in o.iter_mut().zip(xr).zip(scale).zip(shift) {
                *o = v * sc + sh;
            }
        }
    }
}

avx2_build! {
    /// `g = scale·(g - mean_g - (x - mean)·k)` per channel over rows of `scale.len()`.
    fn rows_input_grad / rows_input_grad_avx2(
        g: &mut [f32],
        x: &[f32],
        scale: &[f32],
        mean_g: &[f32],
        mean: &[f32],
        k: &[f32]
    ) {
        let c = scale.len();
        for (gr, xr) in g.chunks_exact_mut(c).zip(x.chunks_exact(c)) {
            let per_channel = scale.iter().zip(mean_g).zip(mean.iter().zip(k));
            for ((gv, &xv), ((&sc, &mg), (&m, &kv))) in gr.iter_mut().zip(xr).zip(per_channel) {
                *gv = sc * (*gv - mg - (xv - m) * kv);
            }
        }
    }
}

avx2_build! {
    /// Per channel, `(Σ g, Σ g·(x - mean))` over one image's `hw` rows, each as `lanes_sum` /
    /// `lanes_dot_centred` sum one plane (eight f32 lanes, then lanes and tail in f64).
    fn image_grad_sums / image_grad_sums_avx2(
        g: &[f32],
        xs: &[f32],
        mean: &[f32],
        c: usize,
        hw: usize
    ) -> (Vec<f64>, Vec<f64>) {
        let full = hw - hw % 8;
        let (mut acc_g, mut acc_gx) = (vec![0f32; 8 * c], vec![0f32; 8 * c]);
        for (p, (gr, xr)) in g[..full * c]
            .chunks_exact(c)
            .zip(xs[..full * c].chunks_exact(c))
            .enumerate()
        {
            let lane = (p % 8) * c;
            for (a, &v) in acc_g[lane..lane + c].iter_mut().zip(gr) {
                *a += v;
            }
            for (((a, &gv), &xv), &m) in acc_gx[lane..lane + c].iter_mut().zip(gr).zip(xr).zip(mean) {
                *a += gv * (xv - m);
            }
        }
        let sg = finish_lanes(&acc_g, &g[full * c..hw * c], c, |_, v| v);
        // The tail's Σ g·(x - mean) pairs g's tail rows with x's.
        let sgx = (0..c)
            .map(|ch| {
                let lanes: f64 = (0..8).map(|l| acc_gx[l * c + ch] as f64).sum();
                let tail: f64 = (full..hw)
                    .map(|p| (g[p * c + ch] * (xs[p * c + ch] - mean[ch])) as f64)
                    .sum();
                lanes + tail
            })
            .collect();
        (sg, sgx)
    }
}

/// Inference-mode batch norm followed by `act`, in place, on NHWC (`nchw = None`: rows of `c`)
/// or NCHW (`nchw = Some(hw)`: planes of `hw`) data: `act(((x - mean) / std) · gamma + beta)`
/// with `std = sqrt(var + eps)`, the operations and the order of burn's `batch_norm`, so the
/// same bits, in one pass instead of four allocating ones.
#[allow(clippy::too_many_arguments)]
pub fn eval_in_place(
    x: &mut [f32],
    c: usize,
    nchw: Option<usize>,
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f32,
    act: Act,
) {
    assert!(
        gamma.len() == c && beta.len() == c && mean.len() == c && var.len() == c,
        "batch norm parameter sizes"
    );
    let std: Vec<f32> = var.iter().map(|v| (v + eps).sqrt()).collect();
    const CHUNK: usize = 1 << 15;
    let len = x.len();
    let xp = SendPtr(x.as_mut_ptr());
    let (std, gamma, beta, mean) = (&std[..], gamma, beta, mean);
    match nchw {
        None => {
            let rows = CHUNK.div_ceil(c).max(1);
            crate::threads::parallel_for((len / c).div_ceil(rows), |k| {
                let xp = xp;
                let (r0, r1) = (k * rows, ((k + 1) * rows).min(len / c));
                // SAFETY (disjoint writes): task k rewrites only rows r0..r1.
                let part =
                    unsafe { std::slice::from_raw_parts_mut(xp.0.add(r0 * c), (r1 - r0) * c) };
                rows_eval(part, mean, std, gamma, beta);
                act.apply_slice(part);
            });
        }
        Some(hw) => {
            crate::threads::parallel_for(len / hw.max(1), |plane| {
                let xp = xp;
                let ch = plane % c;
                // SAFETY (disjoint writes): task `plane` rewrites only its own plane.
                let part = unsafe { std::slice::from_raw_parts_mut(xp.0.add(plane * hw), hw) };
                let (m, sd, g, b) = (mean[ch], std[ch], gamma[ch], beta[ch]);
                part.iter_mut().for_each(|v| *v = ((*v - m) / sd) * g + b);
                act.apply_slice(part);
            });
        }
    }
}

avx2_build! {
    /// `x = ((x - mean) / std) · gamma + beta` per channel over rows of `mean.len()`.
    fn rows_eval / rows_eval_avx2(
        x: &mut [f32],
        mean: &[f32],
        std: &[f32],
        gamma: &[f32],
        beta: &[f32]
    ) {
        let c = mean.len();
        for row in x.chunks_exact_mut(c) {
            let per_channel = mean.iter().zip(std).zip(gamma.iter().zip(beta));
            for (v, ((&m, &sd), (&g, &b))) in row.iter_mut().zip(per_channel) {
                *v = ((*v - m) / sd) * g + b;
            }
        }
    }
}

/// `(mean, biased variance)` per channel of NHWC `x` (`n` images of `hw` rows of `c`),
/// bit-identical to [`train_forward_nchw`]'s statistics.
fn nhwc_moments(x: &[f32], n: usize, hw: usize, c: usize) -> (Vec<f32>, Vec<f32>) {
    // [image][2][c]: each plane's mean and M2.
    let mut parts = vec![0f64; n * 2 * c];
    let pp = SendPtr(parts.as_mut_ptr());
    crate::threads::parallel_for(n, |b| {
        let pp = pp;
        let (sum, m2) = image_moments(&x[b * hw * c..(b + 1) * hw * c], c, hw);
        // SAFETY (disjoint writes): task b writes only image b's 2c values.
        let out = unsafe { std::slice::from_raw_parts_mut(pp.0.add(b * 2 * c), 2 * c) };
        for ch in 0..c {
            out[ch] = sum[ch] / hw as f64;
            out[c + ch] = m2[ch];
        }
    });
    let (mut mean, mut var) = (vec![0f32; c], vec![0f32; c]);
    for ch in 0..c {
        // Chan et al., image by image, as the NCHW kernel combines its planes.
        let (mut count, mut mu, mut m2) = (0f64, 0f64, 0f64);
        for b in 0..n {
            let (pm, pm2) = (parts[b * 2 * c + ch], parts[b * 2 * c + c + ch]);
            let k = hw as f64;
            let delta = pm - mu;
            let total = count + k;
            mu += delta * k / total;
            m2 += pm2 + delta * delta * count * k / total;
            count = total;
        }
        mean[ch] = mu as f32;
        var[ch] = (m2 / count) as f32;
    }
    (mean, var)
}

/// [`train_forward_nchw`] on NHWC activations: `x` is `n` images of `hw` pixel rows of `c`
/// channels. Same results, bit for bit; one task per image.
#[allow(clippy::too_many_arguments)]
pub fn train_forward_nhwc(
    x: &[f32],
    n: usize,
    hw: usize,
    c: usize,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
    act: Act,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), n * hw * c, "batch norm input size");
    assert!(
        gamma.len() == c && beta.len() == c,
        "batch norm parameter sizes"
    );
    let (mean, var) = nhwc_moments(x, n, hw, c);
    let (scale, shift): (Vec<f32>, Vec<f32>) = (0..c)
        .map(|ch| {
            let (sc, sh, _) = affine(gamma[ch], beta[ch], mean[ch], var[ch], eps);
            (sc, sh)
        })
        .unzip();
    // Every image's task writes all of its rows (not zeroed first: see `written_vec`).
    let mut y = Vec::<f32>::with_capacity(x.len());
    let yp = SendPtr(y.as_mut_ptr());
    crate::threads::parallel_for(n, |b| {
        let yp = yp;
        // SAFETY (disjoint writes): task b writes only image b's rows.
        let out = unsafe { std::slice::from_raw_parts_mut(yp.0.add(b * hw * c), hw * c) };
        rows_affine(out, &x[b * hw * c..(b + 1) * hw * c], &scale, &shift);
        act.apply_slice(out);
    });
    // SAFETY: the tasks wrote every row of y.
    unsafe { y.set_len(x.len()) };
    (y, mean, var)
}

/// [`train_backward_nchw`] on NHWC activations (`x`, `dy` and the returned `dx` are `n` images
/// of `hw` rows of `c`). Same results, bit for bit.
#[allow(clippy::too_many_arguments)]
pub fn train_backward_nhwc(
    x: &[f32],
    dy: &[f32],
    n: usize,
    hw: usize,
    c: usize,
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f32,
    act: Act,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert!(supports(act), "batch norm backward through {act:?}");
    assert!(
        x.len() == n * hw * c && dy.len() == x.len(),
        "batch norm gradient size"
    );
    let mut scale = vec![0f32; c];
    let mut shift = vec![0f32; c];
    let mut inv_std = vec![0f32; c];
    for ch in 0..c {
        (scale[ch], shift[ch], inv_std[ch]) = affine(gamma[ch], beta[ch], mean[ch], var[ch], eps);
    }
    let len = hw * c;
    // Pass 1: g = dy·act'(pre) into dx, and each image's per-channel Σ g and Σ g·(x - mean).
    let mut dx = Vec::<f32>::with_capacity(x.len());
    let mut parts = vec![0f64; n * 2 * c];
    let (dxp, pp) = (SendPtr(dx.as_mut_ptr()), SendPtr(parts.as_mut_ptr()));
    crate::threads::parallel_for(n, |b| {
        let (dxp, pp) = (dxp, pp);
        let xs = &x[b * len..(b + 1) * len];
        // SAFETY (disjoint writes): task b writes only image b's rows of dx and its sums.
        let g = unsafe { std::slice::from_raw_parts_mut(dxp.0.add(b * len), len) };
        g.copy_from_slice(&dy[b * len..(b + 1) * len]);
        if act != Act::Identity {
            let mut pre = Vec::with_capacity(len);
            // SAFETY: rows_affine writes every element of `pre`.
            unsafe { pre.set_len(len) };
            rows_affine(&mut pre, xs, &scale, &shift);
            act.backward_slice(&pre, g);
        }
        let (sg, sgx) = image_grad_sums(g, xs, mean, c, hw);
        let out = unsafe { std::slice::from_raw_parts_mut(pp.0.add(b * 2 * c), 2 * c) };
        out[..c].copy_from_slice(&sg);
        out[c..].copy_from_slice(&sgx);
    });
    let count = (n * hw) as f64;
    let (mut dgamma, mut dbeta) = (vec![0f32; c], vec![0f32; c]);
    let (mut mean_g, mut kk) = (vec![0f32; c], vec![0f32; c]);
    for ch in 0..c {
        let (mut sum_g, mut sum_gx) = (0f64, 0f64);
        for b in 0..n {
            sum_g += parts[b * 2 * c + ch];
            sum_gx += parts[b * 2 * c + c + ch];
        }
        dbeta[ch] = sum_g as f32;
        dgamma[ch] = (sum_gx * inv_std[ch] as f64) as f32;
        mean_g[ch] = (sum_g / count) as f32;
        kk[ch] = (sum_gx / count * (inv_std[ch] as f64) * (inv_std[ch] as f64)) as f32;
    }
    // Pass 2: dx = scale·(g - mean(g) - (x - mean)·inv_std²·mean(g·(x - mean))).
    crate::threads::parallel_for(n, |b| {
        let dxp = dxp;
        // SAFETY (disjoint writes): task b rewrites only image b's rows of dx.
        let g = unsafe { std::slice::from_raw_parts_mut(dxp.0.add(b * len), len) };
        rows_input_grad(g, &x[b * len..(b + 1) * len], &scale, &mean_g, mean, &kk);
    });
    // SAFETY: pass 1 wrote every row of dx.
    unsafe { dx.set_len(x.len()) };
    (dx, dgamma, dbeta)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The activation and its derivative in f64, written out (PyTorch's conventions at the
    /// kinks), independent of the kernels' f32 code.
    fn act_f64(act: Act, z: f64) -> (f64, f64) {
        let sig = 1.0 / (1.0 + (-z).exp());
        match act {
            Act::Identity => (z, 1.0),
            Act::Relu => (z.max(0.0), (z > 0.0) as u8 as f64),
            Act::Relu6 => (z.clamp(0.0, 6.0), (z > 0.0 && z < 6.0) as u8 as f64),
            Act::HardSwish => (
                z * (z + 3.0).clamp(0.0, 6.0) / 6.0,
                if z < -3.0 {
                    0.0
                } else if z <= 3.0 {
                    z / 3.0 + 0.5
                } else {
                    1.0
                },
            ),
            Act::Silu => (z * sig, sig * (1.0 + z * (1.0 - sig))),
            other => panic!("no f64 reference for {other:?}"),
        }
    }

    /// f64 reference: batch norm (biased variance) then `act`, and its gradients by the
    /// textbook formulas.
    #[allow(clippy::too_many_arguments)]
    fn reference(
        x: &[f32],
        dy: &[f32],
        n: usize,
        c: usize,
        hw: usize,
        gamma: &[f32],
        beta: &[f32],
        eps: f64,
        act: Act,
    ) -> [Vec<f64>; 6] {
        let idx = |b: usize, ch: usize, p: usize| (b * c + ch) * hw + p;
        let m = (n * hw) as f64;
        let (mut y, mut dx) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        let (mut means, mut vars, mut dg, mut db) = (vec![], vec![], vec![], vec![]);
        for ch in 0..c {
            let vals: Vec<(usize, f64)> = (0..n)
                .flat_map(|b| (0..hw).map(move |p| idx(b, ch, p)))
                .map(|i| (i, x[i] as f64))
                .collect();
            let mean = vals.iter().map(|v| v.1).sum::<f64>() / m;
            let var = vals.iter().map(|v| (v.1 - mean).powi(2)).sum::<f64>() / m;
            let inv = 1.0 / (var + eps).sqrt();
            let mut gs = vec![];
            for &(i, v) in &vals {
                let xhat = (v - mean) * inv;
                let (a, d) = act_f64(act, xhat * gamma[ch] as f64 + beta[ch] as f64);
                y[i] = a;
                gs.push((i, xhat, dy[i] as f64 * d));
            }
            let sg: f64 = gs.iter().map(|g| g.2).sum();
            let sgx: f64 = gs.iter().map(|g| g.2 * g.1).sum();
            for &(i, xhat, g) in &gs {
                dx[i] = gamma[ch] as f64 * inv * (g - sg / m - xhat * sgx / m);
            }
            means.push(mean);
            vars.push(var);
            dg.push(sgx);
            db.push(sg);
        }
        [y, means, vars, dx, dg, db]
    }

    fn close(got: &[f32], want: &[f64], tol: f64, what: &str) {
        let scale = want.iter().fold(1e-6f64, |a, v| a.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                ((*g as f64) - w).abs() <= tol * scale,
                "{what}[{i}]: {g} vs {w} (scale {scale})"
            );
        }
    }

    fn check(n: usize, c: usize, hw: usize, act: Act, offset: f32) {
        // Deterministic pseudo-random data; `offset` shifts the mean far from zero to exercise
        // the two-pass statistics.
        let mut s = 0x1234_5678u32;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 2.0 - 1.0
        };
        let x: Vec<f32> = (0..n * c * hw).map(|_| rnd() * 2.0 + offset).collect();
        let dy: Vec<f32> = (0..n * c * hw).map(|_| rnd()).collect();
        let gamma: Vec<f32> = (0..c).map(|_| 1.0 + 0.5 * rnd()).collect();
        let beta: Vec<f32> = (0..c).map(|_| 0.5 * rnd()).collect();
        let [y, mean, var, dx, dg, db] = reference(&x, &dy, n, c, hw, &gamma, &beta, 1e-5, act);
        let (gy, gm, gv) = train_forward_nchw(&x, n, c, hw, &gamma, &beta, 1e-5, act);
        close(&gy, &y, 1e-5, "y");
        close(&gm, &mean, 1e-6, "mean");
        close(&gv, &var, 1e-5, "var");
        let (gdx, gdg, gdb) =
            train_backward_nchw(&x, &dy, n, c, hw, &gamma, &beta, &gm, &gv, 1e-5, act);
        close(&gdx, &dx, 1e-4, "dx");
        close(&gdg, &dg, 1e-4, "dgamma");
        close(&gdb, &db, 1e-4, "dbeta");

        // The NHWC kernels on the same values transposed: the same f64 reference, reindexed.
        let nhwc = |v: &[f32]| -> Vec<f32> {
            let mut o = vec![0f32; v.len()];
            for b in 0..n {
                for ch in 0..c {
                    for p in 0..hw {
                        o[(b * hw + p) * c + ch] = v[(b * c + ch) * hw + p];
                    }
                }
            }
            o
        };
        let nhwc64 = |v: &[f64]| -> Vec<f64> {
            let mut o = vec![0f64; v.len()];
            for b in 0..n {
                for ch in 0..c {
                    for p in 0..hw {
                        o[(b * hw + p) * c + ch] = v[(b * c + ch) * hw + p];
                    }
                }
            }
            o
        };
        let (xt, dyt) = (nhwc(&x), nhwc(&dy));
        let (ty, tm, tv) = train_forward_nhwc(&xt, n, hw, c, &gamma, &beta, 1e-5, act);
        close(&ty, &nhwc64(&y), 1e-5, "nhwc y");
        close(&tm, &mean, 1e-6, "nhwc mean");
        close(&tv, &var, 1e-5, "nhwc var");
        let (tdx, tdg, tdb) =
            train_backward_nhwc(&xt, &dyt, n, hw, c, &gamma, &beta, &tm, &tv, 1e-5, act);
        close(&tdx, &nhwc64(&dx), 1e-4, "nhwc dx");
        close(&tdg, &dg, 1e-4, "nhwc dgamma");
        close(&tdb, &db, 1e-4, "nhwc dbeta");
    }

    #[test]
    fn identity_matches_f64() {
        check(3, 5, 37, Act::Identity, 0.0);
        // Planes shorter than the eight lanes, and a mean far from zero.
        check(4, 2, 5, Act::Identity, 100.0);
    }

    /// The NHWC kernels sum in the NCHW kernels' order: the same bits for every output, with
    /// planes whose length is not a multiple of the eight lanes (7×7 maps) and a fused
    /// activation, so a training run does not depend on the layout its activations were in.
    #[test]
    fn nhwc_kernels_give_the_nchw_kernels_bits() {
        let (n, c, hw) = (5, 19, 49);
        let mut s = 0x2468_ace1u32;
        let mut rnd = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 2.0 - 1.0
        };
        let x: Vec<f32> = (0..n * c * hw).map(|_| rnd() * 2.0 + 0.3).collect();
        let dy: Vec<f32> = (0..n * c * hw).map(|_| rnd()).collect();
        let gamma: Vec<f32> = (0..c).map(|_| 1.0 + 0.5 * rnd()).collect();
        let beta: Vec<f32> = (0..c).map(|_| 0.5 * rnd()).collect();
        let t = |v: &[f32]| {
            let mut o = vec![0f32; v.len()];
            for b in 0..n {
                for ch in 0..c {
                    for p in 0..hw {
                        o[(b * hw + p) * c + ch] = v[(b * c + ch) * hw + p];
                    }
                }
            }
            o
        };
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        for act in [Act::Identity, Act::Relu, Act::Relu6] {
            let (y1, m1, v1) = train_forward_nchw(&x, n, c, hw, &gamma, &beta, 1e-5, act);
            let (y2, m2, v2) = train_forward_nhwc(&t(&x), n, hw, c, &gamma, &beta, 1e-5, act);
            assert_eq!(bits(&t(&y1)), bits(&y2), "{act:?} y");
            assert_eq!(
                (bits(&m1), bits(&v1)),
                (bits(&m2), bits(&v2)),
                "{act:?} stats"
            );
            let (d1, g1, b1) =
                train_backward_nchw(&x, &dy, n, c, hw, &gamma, &beta, &m1, &v1, 1e-5, act);
            let (d2, g2, b2) = train_backward_nhwc(
                &t(&x),
                &t(&dy),
                n,
                hw,
                c,
                &gamma,
                &beta,
                &m1,
                &v1,
                1e-5,
                act,
            );
            assert_eq!(bits(&t(&d1)), bits(&d2), "{act:?} dx");
            assert_eq!(
                (bits(&g1), bits(&b1)),
                (bits(&g2), bits(&b2)),
                "{act:?} dgamma, dbeta"
            );
        }
    }

    #[test]
    fn fused_activations_match_f64() {
        for act in [Act::Relu, Act::Relu6, Act::HardSwish, Act::Silu] {
            check(2, 3, 600, act, 0.0);
        }
    }
}
