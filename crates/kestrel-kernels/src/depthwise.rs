//! Depthwise convolution on NHWC: each output pixel's channels are a vector FMA over the
//! kernel's taps, with the weights packed tap-major (`[tap][C]`) so both operands stream
//! contiguously. Bias, activation and residual are applied before the store.

use crate::act::Act;
use crate::conv::ConvGeometry;
use crate::gemm::Epilogue;
use crate::{Isa, SendConstPtr, SendPtr};

pub struct Depthwise {
    geom: ConvGeometry,
    /// `[kh·kw][C]`
    w: Vec<f32>,
}

impl Depthwise {
    /// `weight` in OIHW: `[C, 1, kh, kw]`.
    pub fn new(geom: ConvGeometry, weight: &[f32]) -> Self {
        let c = geom.out_ch;
        let taps = geom.kernel[0] * geom.kernel[1];
        let mut w = vec![0f32; taps * c];
        for ch in 0..c {
            for t in 0..taps {
                w[t * c + ch] = weight[ch * taps + t];
            }
        }
        Depthwise { geom, w }
    }

    pub fn bytes(&self) -> usize {
        self.w.len() * 4
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn forward(
        &self,
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
        out: &mut [f32],
        oh: usize,
        ow: usize,
        bias: &[f32],
        ep: &Epilogue,
    ) {
        let g = self.geom;
        let c = g.out_ch;
        let isa = Isa::detect();
        let xp = SendConstPtr(x.as_ptr());
        let op = SendPtr(out.as_mut_ptr());
        let res = SendConstPtr(ep.residual);
        let (act, after) = (ep.act, ep.add_after_act);
        let wv = &self.w;
        let pad = g.pads(h, w);
        // One task per group of output rows.
        let rows = n * oh;
        let rows_per_task = (rows / (4 * crate::threads::num_threads())).max(1);
        let tasks = rows.div_ceil(rows_per_task);
        // Interior pixels (every tap inside the input) read fixed offsets from their first
        // tap, so only the border builds a tap list per pixel.
        let interior: Vec<(usize, usize)> = (0..g.kernel[0])
            .flat_map(|i| (0..g.kernel[1]).map(move |j| (i, j)))
            .map(|(i, j)| {
                (
                    (i * g.dilation[0] * w + j * g.dilation[1]) * c,
                    (i * g.kernel[1] + j) * c,
                )
            })
            .collect();
        let reach = [
            (g.kernel[0] - 1) * g.dilation[0],
            (g.kernel[1] - 1) * g.dilation[1],
        ];
        crate::threads::parallel_for(tasks, |task| {
            let (xp, op, res) = (xp, op, res);
            let mut taps: Vec<(usize, usize)> = Vec::with_capacity(g.kernel[0] * g.kernel[1]);
            for row in task * rows_per_task..((task + 1) * rows_per_task).min(rows) {
                let (b, y) = (row / oh, row % oh);
                let iy0 = (y * g.stride[0]) as isize - pad[0] as isize;
                let rows_inside = iy0 >= 0 && iy0 as usize + reach[0] < h;
                for xo in 0..ow {
                    let ix0 = (xo * g.stride[1]) as isize - pad[2] as isize;
                    let inside = rows_inside && ix0 >= 0 && ix0 as usize + reach[1] < w;
                    let (base, tap_list): (usize, &[(usize, usize)]) = if inside {
                        (((b * h + iy0 as usize) * w + ix0 as usize) * c, &interior)
                    } else {
                        taps.clear();
                        for i in 0..g.kernel[0] {
                            let iy = iy0 + (i * g.dilation[0]) as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            for j in 0..g.kernel[1] {
                                let ix = ix0 + (j * g.dilation[1]) as isize;
                                if ix < 0 || ix >= w as isize {
                                    continue;
                                }
                                taps.push((
                                    ((b * h + iy as usize) * w + ix as usize) * c,
                                    (i * g.kernel[1] + j) * c,
                                ));
                            }
                        }
                        (0, &taps)
                    };
                    let o = ((b * oh + y) * ow + xo) * c;
                    // SAFETY: interior offsets stay inside the input by the `inside` test, border
                    // ones were bounds-checked above; each task writes its own output rows.
                    unsafe {
                        let xb = xp.0.add(base);
                        let dst = op.0.add(o);
                        let r = if res.0.is_null() { res.0 } else { res.0.add(o) };
                        match isa {
                            #[cfg(target_arch = "x86_64")]
                            Isa::Avx2 => {
                                avx2::pixel(xb, wv.as_ptr(), tap_list, bias, c, dst, r, act, after)
                            }
                            _ => pixel_scalar(xb, wv, tap_list, bias, c, dst, r, act, after),
                        }
                    }
                }
            }
        });
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn pixel_scalar(
    x: *const f32,
    w: &[f32],
    taps: &[(usize, usize)],
    bias: &[f32],
    c: usize,
    dst: *mut f32,
    res: *const f32,
    act: Act,
    after: bool,
) {
    for ch in 0..c {
        let mut s = bias[ch];
        for &(xo, wo) in taps {
            s += *x.add(xo + ch) * w[wo + ch];
        }
        *dst.add(ch) = epilogue_scalar(s, res, ch, act, after);
    }
}

#[inline(always)]
unsafe fn epilogue_scalar(s: f32, res: *const f32, ch: usize, act: Act, after: bool) -> f32 {
    let r = if res.is_null() { 0.0 } else { *res.add(ch) };
    if after {
        act.apply(s) + r
    } else {
        act.apply(s + r)
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::epilogue_scalar;
    use crate::act::avx2::apply;
    use crate::act::Act;
    use std::arch::x86_64::*;

    #[allow(clippy::too_many_arguments)]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn pixel(
        x: *const f32,
        w: *const f32,
        taps: &[(usize, usize)],
        bias: &[f32],
        c: usize,
        dst: *mut f32,
        res: *const f32,
        act: Act,
        after: bool,
    ) {
        let mut ch = 0;
        // Two vectors per step: independent accumulators hide the FMA latency.
        while ch + 16 <= c {
            let mut a0 = _mm256_loadu_ps(bias.as_ptr().add(ch));
            let mut a1 = _mm256_loadu_ps(bias.as_ptr().add(ch + 8));
            for &(xo, wo) in taps {
                let xp = x.add(xo + ch);
                let wp = w.add(wo + ch);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(xp), _mm256_loadu_ps(wp), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(8)), _mm256_loadu_ps(wp.add(8)), a1);
            }
            store(a0, dst.add(ch), res, ch, act, after);
            store(a1, dst.add(ch + 8), res, ch + 8, act, after);
            ch += 16;
        }
        while ch + 8 <= c {
            let mut a0 = _mm256_loadu_ps(bias.as_ptr().add(ch));
            for &(xo, wo) in taps {
                a0 = _mm256_fmadd_ps(
                    _mm256_loadu_ps(x.add(xo + ch)),
                    _mm256_loadu_ps(w.add(wo + ch)),
                    a0,
                );
            }
            store(a0, dst.add(ch), res, ch, act, after);
            ch += 8;
        }
        for ch in ch..c {
            let mut s = bias[ch];
            for &(xo, wo) in taps {
                s += *x.add(xo + ch) * *w.add(wo + ch);
            }
            *dst.add(ch) = epilogue_scalar(s, res, ch, act, after);
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn store(v: __m256, dst: *mut f32, res: *const f32, ch: usize, act: Act, after: bool) {
        let v = if res.is_null() {
            apply(act, v)
        } else {
            let r = _mm256_loadu_ps(res.add(ch));
            if after {
                _mm256_add_ps(apply(act, v), r)
            } else {
                apply(act, _mm256_add_ps(v, r))
            }
        };
        _mm256_storeu_ps(dst, v);
    }
}
