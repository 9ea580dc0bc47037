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
        assert_eq!(x.len(), n * h * w * self.geom.in_ch, "depthwise input size");
        assert_eq!(
            out.len(),
            n * oh * ow * self.geom.out_ch,
            "depthwise output size"
        );
        let xp = SendConstPtr(x.as_ptr());
        let op = SendPtr(out.as_mut_ptr());
        // The epilogue holds the residual's raw pointer, which every task only reads.
        let epp = SendConstPtr(ep as *const Epilogue);
        // One task per group of output rows.
        let rows = n * oh;
        let rows_per_task = (rows / (4 * crate::threads::num_threads())).max(1);
        let tasks = rows.div_ceil(rows_per_task);
        crate::threads::parallel_for(tasks, |task| {
            let (xp, op, epp) = (xp, op, epp);
            let rows = task * rows_per_task..((task + 1) * rows_per_task).min(rows);
            // SAFETY: `x` holds all `n · h` input rows (from row 0) and `out` all output rows,
            // sizes asserted above; each task writes its own output rows.
            unsafe { self.rows(xp.0, 0, h, w, op.0, 0, oh, ow, rows, bias, &*epp.0) }
        });
    }

    /// Output rows `rows` (numbered `b · oh + y` over the batch) on the calling thread, reading
    /// input rows from `x`, whose first row is input row `x_row0` (numbered `b · h + iy`), and
    /// writing into `out`, whose first row (like that of `ep`'s residual) is output row
    /// `out_row0`.
    ///
    /// # Safety
    /// `x` must hold every input row those output rows' taps reach, `out` (and the residual)
    /// every one of those output rows.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn rows(
        &self,
        x: *const f32,
        x_row0: usize,
        h: usize,
        w: usize,
        out: *mut f32,
        out_row0: usize,
        oh: usize,
        ow: usize,
        rows: std::ops::Range<usize>,
        bias: &[f32],
        ep: &Epilogue,
    ) {
        let g = self.geom;
        let c = g.out_ch;
        let isa = Isa::detect();
        let xp = SendConstPtr(x);
        let op = SendPtr(out);
        let res = SendConstPtr(ep.residual);
        let (act, after) = (ep.act, ep.add_after_act);
        let wv = &self.w;
        let pad = g.pads(h, w);
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
        // Output columns whose every tap column lies inside the input: [xa, xb).
        let xa = pad[2].div_ceil(g.stride[1]).min(ow);
        let xb = if w + pad[2] > reach[1] {
            ((w + pad[2] - reach[1] - 1) / g.stride[1] + 1).clamp(xa, ow)
        } else {
            xa
        };
        let mut taps: Vec<(usize, usize)> = Vec::with_capacity(g.kernel[0] * g.kernel[1]);
        // (offset of the input row, kernel row) for the kernel rows inside the input.
        let mut krows: Vec<(usize, usize)> = Vec::with_capacity(g.kernel[0]);
        let mut row_taps: Vec<(usize, usize)> = Vec::with_capacity(g.kernel[0] * g.kernel[1]);
        for row in rows {
            let (b, y) = (row / oh, row % oh);
            let iy0 = (y * g.stride[0]) as isize - pad[0] as isize;
            let rows_inside = iy0 >= 0 && iy0 as usize + reach[0] < h;
            krows.clear();
            for i in 0..g.kernel[0] {
                let iy = iy0 + (i * g.dilation[0]) as isize;
                if iy >= 0 && iy < h as isize {
                    krows.push((((b * h + iy as usize) - x_row0) * w * c, i));
                }
            }
            let o_row = (row - out_row0) * ow * c;
            row_taps.clear();
            for &(roff, i) in &krows {
                for j in 0..g.kernel[1] {
                    row_taps.push((roff + j * g.dilation[1] * c, (i * g.kernel[1] + j) * c));
                }
            }
            // Interior columns: a whole run of output pixels per call, several pixels
            // at once so each weight vector loaded serves all of them.
            if isa == Isa::Avx2 && xb > xa {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: columns in [xa, xb) read only inside their input rows (the
                // definition of xa and xb), the rows in `krows` exist; each task writes its
                // own output rows.
                unsafe {
                    let r = if res.0.is_null() {
                        res.0
                    } else {
                        res.0.add(o_row)
                    };
                    avx2::row(
                        &avx2::RowArgs {
                            x: xp.0,
                            taps: &row_taps,
                            stride: g.stride[1],
                            pad_l: pad[2],
                            w: wv.as_ptr(),
                            bias,
                            c,
                            dst: op.0.add(o_row),
                            res: r,
                            act,
                            after,
                            kw: if g.dilation[1] == 1 { g.kernel[1] } else { 0 },
                        },
                        xa,
                        xb,
                    );
                }
            }
            for xo in 0..ow {
                if isa == Isa::Avx2 && (xa..xb).contains(&xo) {
                    continue;
                }
                let ix0 = (xo * g.stride[1]) as isize - pad[2] as isize;
                let inside = rows_inside && ix0 >= 0 && ix0 as usize + reach[1] < w;
                let (base, tap_list): (usize, &[(usize, usize)]) = if inside {
                    (
                        (((b * h + iy0 as usize) - x_row0) * w + ix0 as usize) * c,
                        &interior,
                    )
                } else {
                    taps.clear();
                    for &(roff, i) in &krows {
                        for j in 0..g.kernel[1] {
                            let ix = ix0 + (j * g.dilation[1]) as isize;
                            if ix < 0 || ix >= w as isize {
                                continue;
                            }
                            taps.push((roff + ix as usize * c, (i * g.kernel[1] + j) * c));
                        }
                    }
                    (0, &taps)
                };
                let o = o_row + xo * c;
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

    /// One output row's interior run of pixels (every tap column inside the input).
    pub(super) struct RowArgs<'a> {
        pub x: *const f32,
        /// Per tap inside the input: (input offset from the pixel's first column in row 0 of
        /// the image, weight offset `tap · C`).
        pub taps: &'a [(usize, usize)],
        pub stride: usize,
        pub pad_l: usize,
        /// Packed weights `[tap][C]`.
        pub w: *const f32,
        pub bias: &'a [f32],
        pub c: usize,
        /// Start of the output row (and of its residual row, or null).
        pub dst: *mut f32,
        pub res: *const f32,
        pub act: Act,
        pub after: bool,
        /// The kernel's width when its columns are adjacent (dilation 1), else 0. `taps` then
        /// holds each kernel row's `kw` taps in order, so the blocked kernels can find them.
        pub kw: usize,
    }

    /// Output pixels `xa..xb` of one row: four pixels at a time, so each weight vector loaded
    /// serves four FMAs, then single pixels. The common kernels (3, 5 or 7 wide, stride 1 or
    /// 2, adjacent columns) take the blocked kernels instead.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn row(a: &RowArgs, xa: usize, xb: usize) {
        let blocked = a.c % 8 == 0 && a.taps.len() % a.kw.max(1) == 0;
        let wide = crate::avx512();
        macro_rules! blocked {
            ($kw:literal, $s:literal) => {
                return if wide {
                    super::avx512::blocked_row::<$kw, $s>(a, xa, xb)
                } else {
                    blocked_row::<$kw, $s>(a, xa, xb)
                }
            };
        }
        match (a.kw, a.stride) {
            (3, 1) if blocked => blocked!(3, 1),
            (3, 2) if blocked => blocked!(3, 2),
            (5, 1) if blocked => blocked!(5, 1),
            (5, 2) if blocked => blocked!(5, 2),
            (7, 1) if blocked => blocked!(7, 1),
            _ => {}
        }
        let mut xo = xa;
        while xo + 4 <= xb {
            pixels::<4>(a, xo);
            xo += 4;
        }
        while xo < xb {
            pixels::<1>(a, xo);
            xo += 1;
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn pixels<const P: usize>(a: &RowArgs, xo: usize) {
        let c = a.c;
        let step = a.stride * c;
        let x0 = a.x.add((xo * a.stride - a.pad_l) * c);
        let dst = a.dst.add(xo * c);
        let res = if a.res.is_null() {
            a.res
        } else {
            a.res.add(xo * c)
        };
        let mut ch = 0;
        while ch + 16 <= c {
            let b0 = _mm256_loadu_ps(a.bias.as_ptr().add(ch));
            let b1 = _mm256_loadu_ps(a.bias.as_ptr().add(ch + 8));
            let mut acc0 = [b0; P];
            let mut acc1 = [b1; P];
            for &(xoff, woff) in a.taps {
                let w0 = _mm256_loadu_ps(a.w.add(woff + ch));
                let w1 = _mm256_loadu_ps(a.w.add(woff + ch + 8));
                let xp = x0.add(xoff + ch);
                for p in 0..P {
                    acc0[p] = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(p * step)), w0, acc0[p]);
                    acc1[p] = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(p * step + 8)), w1, acc1[p]);
                }
            }
            for p in 0..P {
                finish(
                    acc0[p],
                    dst.add(p * c + ch),
                    res,
                    p * c + ch,
                    a.act,
                    a.after,
                );
                finish(
                    acc1[p],
                    dst.add(p * c + ch + 8),
                    res,
                    p * c + ch + 8,
                    a.act,
                    a.after,
                );
            }
            ch += 16;
        }
        while ch + 8 <= c {
            let mut acc = [_mm256_loadu_ps(a.bias.as_ptr().add(ch)); P];
            for &(xoff, woff) in a.taps {
                let wv = _mm256_loadu_ps(a.w.add(woff + ch));
                let xp = x0.add(xoff + ch);
                for (p, acc) in acc.iter_mut().enumerate() {
                    *acc = _mm256_fmadd_ps(_mm256_loadu_ps(xp.add(p * step)), wv, *acc);
                }
            }
            for (p, acc) in acc.iter().enumerate() {
                finish(*acc, dst.add(p * c + ch), res, p * c + ch, a.act, a.after);
            }
            ch += 8;
        }
        for ch in ch..c {
            for p in 0..P {
                let mut s = a.bias[ch];
                for &(xoff, woff) in a.taps {
                    s += *x0.add(xoff + p * step + ch) * *a.w.add(woff + ch);
                }
                *dst.add(p * c + ch) = epilogue_scalar(s, res, p * c + ch, a.act, a.after);
            }
        }
    }

    /// [`row`] for a `KW`-wide, stride-`S` kernel with adjacent columns, 8 channels at a time:
    /// eight output pixels (four for `KW` = 7 or stride 2) share every input vector loaded, each feeding
    /// the outputs whose taps cover it (register blocking along the row: about half the loads
    /// of [`pixels`]). Each output still sums its bias and then its taps in tap order, one FMA
    /// each, so the bits are [`pixels`]'.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn blocked_row<const KW: usize, const S: usize>(
        a: &RowArgs,
        xa: usize,
        xb: usize,
    ) {
        let mut xo = xa;
        if KW < 7 && S == 1 {
            while xo + 8 <= xb {
                blocked::<8, KW, S>(a, xo, 0);
                xo += 8;
            }
        }
        while xo + 4 <= xb {
            blocked::<4, KW, S>(a, xo, 0);
            xo += 4;
        }
        while xo < xb {
            blocked::<1, KW, S>(a, xo, 0);
            xo += 1;
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn blocked<const P: usize, const KW: usize, const S: usize>(
        a: &RowArgs,
        xo: usize,
        ch0: usize,
    ) {
        let c = a.c;
        let x0 = a.x.add((xo * S - a.pad_l) * c);
        let dst = a.dst.add(xo * c);
        let res = if a.res.is_null() {
            a.res
        } else {
            a.res.add(xo * c)
        };
        let cols = (P - 1) * S + KW;
        for ch in (ch0..c).step_by(8) {
            let mut acc = [_mm256_loadu_ps(a.bias.as_ptr().add(ch)); P];
            for krow in a.taps.chunks_exact(KW) {
                let (xr, wr) = krow[0];
                let mut wv = [_mm256_setzero_ps(); KW];
                for (j, w) in wv.iter_mut().enumerate() {
                    *w = _mm256_loadu_ps(a.w.add(wr + j * c + ch));
                }
                let xp = x0.add(xr + ch);
                for q in 0..cols {
                    let v = _mm256_loadu_ps(xp.add(q * c));
                    for (p, acc) in acc.iter_mut().enumerate() {
                        // Output p reads column q through its tap j = q - p·S.
                        if q >= p * S && q - p * S < KW {
                            *acc = _mm256_fmadd_ps(v, wv[q - p * S], *acc);
                        }
                    }
                }
            }
            for (p, acc) in acc.iter().enumerate() {
                finish(*acc, dst.add(p * c + ch), res, p * c + ch, a.act, a.after);
            }
        }
    }

    /// Bias is already in `v`: activation and residual, then the store.
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn finish(
        v: __m256,
        dst: *mut f32,
        res: *const f32,
        at: usize,
        act: Act,
        after: bool,
    ) {
        let v = if res.is_null() {
            apply(act, v)
        } else {
            let r = _mm256_loadu_ps(res.add(at));
            if after {
                _mm256_add_ps(apply(act, v), r)
            } else {
                apply(act, _mm256_add_ps(v, r))
            }
        };
        _mm256_storeu_ps(dst, v);
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

/// AVX-512F forms of the blocked row kernels: 16 channels per register, the same loop and
/// order of operations per element as the AVX2 ones (so the same bits); channels past the last
/// multiple of 16 go to the AVX2 kernel.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::avx2::{blocked as blocked8, RowArgs};
    use crate::act::avx512::apply_fast as apply;
    use crate::act::Act;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn blocked_row<const KW: usize, const S: usize>(
        a: &RowArgs,
        xa: usize,
        xb: usize,
    ) {
        let mut xo = xa;
        if S == 1 {
            while xo + 8 <= xb {
                blocked::<8, KW, S>(a, xo);
                xo += 8;
            }
        }
        while xo + 4 <= xb {
            blocked::<4, KW, S>(a, xo);
            xo += 4;
        }
        while xo < xb {
            blocked::<1, KW, S>(a, xo);
            xo += 1;
        }
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn blocked<const P: usize, const KW: usize, const S: usize>(a: &RowArgs, xo: usize) {
        let c = a.c;
        let x0 = a.x.add((xo * S - a.pad_l) * c);
        let dst = a.dst.add(xo * c);
        let res = if a.res.is_null() {
            a.res
        } else {
            a.res.add(xo * c)
        };
        let cols = (P - 1) * S + KW;
        let wide = c - c % 16;
        for ch in (0..wide).step_by(16) {
            let mut acc = [_mm512_loadu_ps(a.bias.as_ptr().add(ch)); P];
            for krow in a.taps.chunks_exact(KW) {
                let (xr, wr) = krow[0];
                let mut wv = [_mm512_setzero_ps(); KW];
                for (j, w) in wv.iter_mut().enumerate() {
                    *w = _mm512_loadu_ps(a.w.add(wr + j * c + ch));
                }
                let xp = x0.add(xr + ch);
                for q in 0..cols {
                    let v = _mm512_loadu_ps(xp.add(q * c));
                    for (p, acc) in acc.iter_mut().enumerate() {
                        if q >= p * S && q - p * S < KW {
                            *acc = _mm512_fmadd_ps(v, wv[q - p * S], *acc);
                        }
                    }
                }
            }
            for (p, &v) in acc.iter().enumerate() {
                store(v, dst.add(p * c + ch), res, p * c + ch, a.act, a.after);
            }
        }
        if wide < c {
            blocked8::<P, KW, S>(a, xo, wide);
        }
    }

    /// [`finish`] on 16 lanes, with the 16-lane forms of the activations (the same bits).
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn store(v: __m512, dst: *mut f32, res: *const f32, at: usize, act: Act, after: bool) {
        let r = (!res.is_null()).then(|| _mm512_loadu_ps(res.add(at)));
        let mut v = v;
        if let (Some(r), false) = (r, after) {
            v = _mm512_add_ps(v, r);
        }
        v = apply(act, v);
        if let (Some(r), true) = (r, after) {
            v = _mm512_add_ps(v, r);
        }
        _mm512_storeu_ps(dst, v);
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::avx2::RowArgs;
    use crate::act::Act;

    use crate::test_util::lcg;

    /// The register-blocked row kernels (AVX2, and AVX-512 where the CPU has it) give the
    /// unblocked kernel's bits, and all of them are the depthwise convolution.
    #[test]
    fn blocked_rows_match_the_unblocked_kernel_bit_for_bit() {
        if !(std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma"))
        {
            eprintln!("no AVX2 on this CPU: nothing to compare");
            return;
        }
        let avx512 = std::arch::is_x86_feature_detected!("avx512f");
        let mut s = 5u64;
        // (channels, kernel width, stride, activation, residual, added after the activation)
        let cases = [
            (64, 3, 1, Act::Relu6, false, false),
            (144, 3, 2, Act::Silu, true, false),
            (40, 5, 1, Act::Relu, true, true),
            (24, 5, 2, Act::Identity, false, false),
            (96, 7, 1, Act::Gelu, true, false),
            (48, 3, 1, Act::Relu, true, false),
        ];
        for &(c, k, stride, act, with_res, after) in &cases {
            let (h, w) = (k, 27);
            let ow = (w - k) / stride + 1;
            let x: Vec<f32> = (0..h * w * c).map(|_| lcg(&mut s)).collect();
            let wt: Vec<f32> = (0..k * k * c).map(|_| lcg(&mut s)).collect();
            let bias: Vec<f32> = (0..c).map(|_| lcg(&mut s)).collect();
            let res: Vec<f32> = (0..ow * c).map(|_| lcg(&mut s)).collect();
            // Row-major taps of the one output row: (input offset, weight offset).
            let taps: Vec<(usize, usize)> = (0..k * k)
                .map(|t| (((t / k) * w + t % k) * c, t * c))
                .collect();
            let run = |kernel: &dyn Fn(&RowArgs, usize, usize), kw: usize| {
                let mut out = vec![0f32; ow * c];
                let a = RowArgs {
                    x: x.as_ptr(),
                    taps: &taps,
                    stride,
                    pad_l: 0,
                    w: wt.as_ptr(),
                    bias: &bias,
                    c,
                    dst: out.as_mut_ptr(),
                    res: if with_res {
                        res.as_ptr()
                    } else {
                        std::ptr::null()
                    },
                    act,
                    after,
                    kw,
                };
                kernel(&a, 0, ow);
                out
            };
            // kw = 0 keeps row() on the unblocked kernel.
            let plain = run(&|a, xa, xb| unsafe { super::avx2::row(a, xa, xb) }, 0);
            let mut blocked: Vec<(&str, Vec<f32>)> = vec![(
                "avx2",
                run(
                    &|a, xa, xb| unsafe {
                        match (k, stride) {
                            (3, 1) => super::avx2::blocked_row::<3, 1>(a, xa, xb),
                            (3, 2) => super::avx2::blocked_row::<3, 2>(a, xa, xb),
                            (5, 1) => super::avx2::blocked_row::<5, 1>(a, xa, xb),
                            (5, 2) => super::avx2::blocked_row::<5, 2>(a, xa, xb),
                            _ => super::avx2::blocked_row::<7, 1>(a, xa, xb),
                        }
                    },
                    k,
                ),
            )];
            if avx512 {
                blocked.push((
                    "avx512",
                    run(
                        &|a, xa, xb| unsafe {
                            match (k, stride) {
                                (3, 1) => super::avx512::blocked_row::<3, 1>(a, xa, xb),
                                (3, 2) => super::avx512::blocked_row::<3, 2>(a, xa, xb),
                                (5, 1) => super::avx512::blocked_row::<5, 1>(a, xa, xb),
                                (5, 2) => super::avx512::blocked_row::<5, 2>(a, xa, xb),
                                _ => super::avx512::blocked_row::<7, 1>(a, xa, xb),
                            }
                        },
                        k,
                    ),
                ));
            }
            for (what, out) in &blocked {
                for (i, (a, b)) in plain.iter().zip(out).enumerate() {
                    assert_eq!(
                        a.to_bits(),
                        b.to_bits(),
                        "{what} c{c} k{k} s{stride} [{i}]: {a} vs {b}"
                    );
                }
            }
            for xo in 0..ow {
                for ch in 0..c {
                    let mut v = bias[ch];
                    for t in 0..k * k {
                        v += x[((t / k) * w + xo * stride + t % k) * c + ch] * wt[t * c + ch];
                    }
                    let r = if with_res { res[xo * c + ch] } else { 0.0 };
                    let want = if after {
                        act.apply(v) + r
                    } else {
                        act.apply(v + r)
                    };
                    let got = plain[xo * c + ch];
                    assert!(
                        (got - want).abs() <= 1e-4,
                        "c{c} k{k} [{xo},{ch}]: {got} vs {want}"
                    );
                }
            }
        }
    }
}
