//! Indirect int8 GEMM: u8 activations × i8 weights, i32 accumulation, and an epilogue that
//! dequantises with per-column scales and applies bias, activation and residual in f32.
//!
//! `C[i, j] = epilogue((Σ_t Σ_k A_t[i][k] · B[t][k][j]) − a_zero · Σ_t Σ_k B[t][k][j])`: A is
//! asymmetric u8 (`real = a_scale · (q − a_zero)`), B symmetric i8 per output column, so the
//! zero point comes out as one precomputed column sum per column (onnxruntime MLAS's
//! `ZeroPointA · ColumnSumB` correction) and the inner loop is pure integer arithmetic.
//!
//! Activations are 8-bit (0..=[`ACT_MAX`]) or, for files quantized before 8-bit activations
//! existed and with `--act-bits 7`, 7-bit (0..=[`ACT_MAX_7BIT`]); weights keep all 8 bits
//! ([`WEIGHT_MAX`] = ±127). Every kernel computes the exact i32 sums, so a quantized file gives
//! the same integers, and the same outputs, on every CPU:
//! - With AVX-512 VNNI, `vpdpbusd` sums four u8 × i8 products straight into each i32 lane (no
//!   i16 step, so nothing to saturate), one instruction per row and group of four k for a
//!   whole 16-column panel.
//! - The AVX2 microkernel is MLAS's U8S8 scheme for CPUs without VNNI: B is packed as groups
//!   of four consecutive k per column (`[t][k/4][NR][4]`), A's four bytes are broadcast, and
//!   `vpmaddubsw` (u8 × i8 pairs summed to i16) then `vpmaddwd` by ones (i16 pairs to i32)
//!   give one i32 per column per four k. `vpmaddubsw` saturates its i16 pair sums: with 7-bit
//!   activations 2 · 127 · 127 = 32 258 < 32 767, so one pass is exact. 8-bit activations are
//!   recentred to `s = a − 128` and multiplied as `|s| · (w · sign(s))` (`vpabsb`,
//!   `vpsignb`), whose pairs stay within 2 · 128 · 127 = 32 512: one exact pass with two more
//!   instructions per row, where onnxruntime instead drops a bit from the weights
//!   (`reduce_range`), which costs per-channel weights accuracy (docs/deploy.md). The
//!   recentring comes out with the zero point: the sums are corrected by `a_zero − 128`.
//! - The scalar kernel computes the same integers.

use crate::act::Act;
use crate::{Isa, SendConstPtr, SendPtr};

pub const MR: usize = 4;
pub const NR: usize = 16;

/// The largest weight magnitude the kernels take (see the module docs).
pub const WEIGHT_MAX: i8 = 127;

/// The largest quantized activation (8-bit activations; see the module docs).
pub const ACT_MAX: u8 = 255;

/// The largest 7-bit activation: one `vpmaddubsw` pass on AVX2 without VNNI.
pub const ACT_MAX_7BIT: u8 = 127;

/// Depth padded to the kernels' group of four k (the padding weights are zero).
pub fn padded_depth(k: usize) -> usize {
    k.div_ceil(4) * 4
}

/// B packed into panels of [`NR`] columns: panel `p` holds, for every tap `t` and group of
/// four k, the columns `p·NR .. p·NR + NR` with their four weights each (`[t][kp/4][NR][4]`),
/// zero past `n` and past `k`.
#[derive(Clone, Debug)]
pub struct QPackedB {
    pub taps: usize,
    pub k: usize,
    /// `k` padded to a multiple of 4: each row of A must have this many readable bytes.
    pub kp: usize,
    pub n: usize,
    data: Vec<i8>,
    /// `Σ_t Σ_k B[t][k][j]` per column, for the zero-point correction.
    col_sums: Vec<i32>,
}

impl QPackedB {
    /// Packs `get(t, k, j)` for `t < taps`, `k < k`, `j < n`.
    ///
    /// # Panics
    /// When a weight lies outside `±WEIGHT_MAX` (the quantizer never makes one).
    pub fn pack(taps: usize, k: usize, n: usize, get: impl Fn(usize, usize, usize) -> i8) -> Self {
        let kp = padded_depth(k);
        let panels = n.div_ceil(NR);
        let mut data = vec![0i8; panels * taps * kp * NR];
        let mut col_sums = vec![0i32; n];
        for p in 0..panels {
            let base = p * taps * kp * NR;
            for t in 0..taps {
                for kk in 0..k {
                    let group = base + (t * kp + kk / 4 * 4) * NR;
                    for jj in 0..NR.min(n - p * NR) {
                        let j = p * NR + jj;
                        let w = get(t, kk, j);
                        assert!(
                            (-WEIGHT_MAX..=WEIGHT_MAX).contains(&w),
                            "int8 weight {w} at tap {t}, k {kk}, column {j} is outside ±{WEIGHT_MAX}"
                        );
                        data[group + jj * 4 + kk % 4] = w;
                        col_sums[j] += w as i32;
                    }
                }
            }
        }
        QPackedB {
            taps,
            k,
            kp,
            n,
            data,
            col_sums,
        }
    }

    /// Packs a row-major `[k][n]` matrix (one tap).
    pub fn from_kn(w: &[i8], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n);
        Self::pack(1, k, n, |_, kk, j| w[kk * n + j])
    }

    pub fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }

    fn panel(&self, p: usize) -> *const i8 {
        // SAFETY: p < panels(); the offset stays inside `data`.
        unsafe { self.data.as_ptr().add(p * self.taps * self.kp * NR) }
    }

    pub fn bytes(&self) -> usize {
        self.data.len() + self.col_sums.len() * 4
    }
}

/// Marks a padding tap in [`QRows::Indirect`] offsets.
pub use crate::gemm::PAD;

/// Where each output row's u8 A vectors live (each `kp` bytes long).
#[derive(Clone, Copy)]
pub enum QRows<'a> {
    /// Row `i` (one tap) starts at `base + i·ld`.
    Dense { base: *const u8, ld: usize },
    /// Row `i`, tap `t` starts at `base + offsets[i·taps + t]`, or is `zero` for [`PAD`] (a row
    /// of `a_zero` bytes: the quantized real zero).
    Indirect {
        base: *const u8,
        offsets: &'a [u32],
        zero: *const u8,
    },
}

/// How the i32 tile becomes f32: `act(scale[j] · (acc − a_zero · colsum[j]) + bias[j] [+ res])`
/// (or the residual added after the activation).
#[derive(Clone, Copy)]
pub struct QEpilogue {
    pub a_zero: u8,
    /// The largest value A holds ([`ACT_MAX_7BIT`] lets the AVX2 kernel sum in one pass).
    pub a_max: u8,
    /// `n` values: the A scale times each column's weight scale.
    pub scale: *const f32,
    /// `n` values, or null.
    pub bias: *const f32,
    pub act: Act,
    /// Residual rows (`res + i·ld_res`), or null.
    pub residual: *const f32,
    pub ld_res: usize,
    pub add_after_act: bool,
}

impl QEpilogue {
    pub fn new(a_zero: u8, a_max: u8, scale: &[f32], bias: Option<&[f32]>, act: Act) -> Self {
        QEpilogue {
            a_zero,
            a_max,
            scale: scale.as_ptr(),
            bias: bias.map_or(std::ptr::null(), |b| b.as_ptr()),
            act,
            residual: std::ptr::null(),
            ld_res: 0,
            add_after_act: false,
        }
    }

    pub fn with_residual(mut self, res: *const f32, ld: usize, after_act: bool) -> Self {
        self.residual = res;
        self.ld_res = ld;
        self.add_after_act = after_act;
        self
    }
}

/// One microkernel call: one panel of `nr` columns for `rows` rows, as `rows.div_ceil(MR)`
/// tiles of [`MR`] rows (one call per run of tiles, so that the panel's column data is loaded
/// once and the call's setup is not paid per tile: it showed on the short dot products of
/// mobilenetv2's 1×1 convs). Offsets applied.
struct Tile {
    taps: usize,
    kp: usize,
    /// `taps × MR` row pointers per tile, `[tile][t][r]`.
    a: *const *const u8,
    b: *const i8,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    nr: usize,
    col_sums: *const i32,
    a_zero: i32,
    /// A holds values above [`ACT_MAX_7BIT`]: the AVX2 kernel recentres it (see `accumulate`).
    wide: bool,
    scale: *const f32,
    bias: *const f32,
    res: *const f32,
    ld_res: usize,
    act: Act,
    add_after_act: bool,
}

/// Which microkernel computes the integer sums. All three give the same integers (exact i32
/// arithmetic), so outputs do not depend on the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QKernel {
    Scalar,
    /// `vpmaddubsw` + `vpmaddwd` (one pass for 7-bit activations, two for 8-bit).
    Avx2,
    /// AVX-512 VNNI `vpdpbusd`: four u8 × i8 products summed straight into i32.
    Avx512Vnni,
}

impl QKernel {
    /// The fastest kernel this CPU runs under the process's [`Isa`] (and `KESTREL_ISA`).
    pub(crate) fn detect() -> QKernel {
        match Isa::detect() {
            Isa::Scalar => QKernel::Scalar,
            Isa::Avx2 if crate::avx512_vnni() => QKernel::Avx512Vnni,
            Isa::Avx2 => QKernel::Avx2,
        }
    }
}

/// Runs the int8 indirect GEMM for `m` rows and all `b.n` columns into the f32
/// `c[i·ldc + j]`.
///
/// # Safety
/// Every row pointer that `rows` describes must be valid for `b.kp` reads per tap, `c` for the
/// `m × n` tile with stride `ldc`, the epilogue's pointers for `n` columns (and `m` residual
/// rows); `c` must not alias A or the residual rows it has not read yet.
pub unsafe fn qgemm(
    m: usize,
    rows: QRows<'_>,
    b: &QPackedB,
    c: *mut f32,
    ldc: usize,
    ep: &QEpilogue,
) {
    qgemm_on(QKernel::detect(), m, rows, b, c, ldc, ep)
}

/// [`qgemm`] with a given microkernel (which the CPU must support): tests run all of them in
/// one process.
pub(crate) unsafe fn qgemm_on(
    kernel: QKernel,
    m: usize,
    rows: QRows<'_>,
    b: &QPackedB,
    c: *mut f32,
    ldc: usize,
    ep: &QEpilogue,
) {
    if m == 0 || b.n == 0 {
        return;
    }
    let taps = b.taps;
    let mtiles = m.div_ceil(MR);
    let panels = b.panels();
    // Rows per task: keep the task's A rows (taps · kp bytes each) in L2.
    let row_bytes = (taps * b.kp).max(1);
    let mt_chunk = (256 * 1024 / (MR * row_bytes)).clamp(1, 64);
    let row_tasks = mtiles.div_ceil(mt_chunk);
    let want = 3 * crate::threads::num_threads();
    let pc = if row_tasks >= want {
        panels
    } else {
        (panels * row_tasks / want).max(1)
    };
    let panel_tasks = panels.div_ceil(pc);
    let tasks = row_tasks * panel_tasks;

    let c = SendPtr(c);
    let (scale, bias, res) = (
        SendConstPtr(ep.scale),
        SendConstPtr(ep.bias),
        SendConstPtr(ep.residual),
    );
    let col_sums = SendConstPtr(b.col_sums.as_ptr());
    let (base, offsets, zero, dense_ld) = match rows {
        QRows::Dense { base, ld } => (SendConstPtr(base), None, SendConstPtr(base), ld),
        QRows::Indirect {
            base,
            offsets,
            zero,
        } => (SendConstPtr(base), Some(offsets), SendConstPtr(zero), 0),
    };
    let (act, add_after_act, ld_res, a_zero) =
        (ep.act, ep.add_after_act, ep.ld_res, ep.a_zero as i32);
    let wide = ep.a_max > ACT_MAX_7BIT;

    crate::threads::parallel_for(tasks, |task| {
        let (rt, pt) = (task / panel_tasks, task % panel_tasks);
        let mt0 = rt * mt_chunk;
        let mt1 = (mt0 + mt_chunk).min(mtiles);
        let (base, zero) = (base, zero);
        let mut ptrs: Vec<*const u8> = Vec::with_capacity((mt1 - mt0) * taps * MR);
        for mt in mt0..mt1 {
            for t in 0..taps {
                for r in 0..MR {
                    let i = (mt * MR + r).min(m - 1);
                    ptrs.push(match offsets {
                        None => base.0.add(i * dense_ld),
                        Some(off) => match off[i * taps + t] {
                            PAD => zero.0,
                            o => base.0.add(o as usize),
                        },
                    });
                }
            }
        }
        let (c, scale, bias, res, col_sums) = (c, scale, bias, res, col_sums);
        let i0 = mt0 * MR;
        let or_null = |ptr: *const f32, off: usize| {
            if ptr.is_null() {
                ptr
            } else {
                ptr.add(off)
            }
        };
        let p_end = ((pt + 1) * pc).min(panels);
        let mut p = pt * pc;
        while p < p_end {
            let j0 = p * NR;
            // VNNI runs two full panels at once where it can: each broadcast of A then feeds
            // two `vpdpbusd`.
            let two = kernel == QKernel::Avx512Vnni && p + 1 < p_end && j0 + 2 * NR <= b.n;
            let tile = Tile {
                taps,
                kp: b.kp,
                a: ptrs.as_ptr(),
                b: b.panel(p),
                // SAFETY (disjoint writes): each task owns rows mt0..mt1 × its panels.
                c: c.0.add(i0 * ldc + j0),
                ldc,
                rows: (mt1 * MR).min(m) - i0,
                nr: NR.min(b.n - j0),
                col_sums: col_sums.0.add(j0),
                a_zero,
                wide,
                scale: scale.0.add(j0),
                bias: or_null(bias.0, j0),
                res: or_null(res.0, i0 * ld_res + j0),
                ld_res,
                act,
                add_after_act,
            };
            match kernel {
                #[cfg(target_arch = "x86_64")]
                QKernel::Avx512Vnni if two => avx2::kernel_vnni_two_panels(&tile, b.panel(p + 1)),
                #[cfg(target_arch = "x86_64")]
                QKernel::Avx2 => avx2::kernel(&tile),
                #[cfg(target_arch = "x86_64")]
                QKernel::Avx512Vnni => avx2::kernel_vnni(&tile),
                _ => scalar_kernel(&tile),
            }
            p += 1 + two as usize;
        }
    });
}

/// The epilogue of one element: `acc` is the raw i32 sum.
#[inline(always)]
unsafe fn finish(t: &Tile, r: usize, j: usize, acc: i32) -> f32 {
    let corrected = acc - t.a_zero * *t.col_sums.add(j);
    let mut v = corrected as f32 * *t.scale.add(j);
    if !t.bias.is_null() {
        v += *t.bias.add(j);
    }
    let res = if t.res.is_null() {
        0.0
    } else {
        *t.res.add(r * t.ld_res + j)
    };
    if t.add_after_act {
        t.act.apply(v) + res
    } else {
        t.act.apply(v + res)
    }
}

unsafe fn scalar_kernel(t: &Tile) {
    for q in 0..t.rows.div_ceil(MR) {
        let i0 = q * MR;
        let mut acc = [[0i32; NR]; MR];
        for tap in 0..t.taps {
            let a = std::slice::from_raw_parts(t.a.add((q * t.taps + tap) * MR), MR);
            let b = std::slice::from_raw_parts(t.b.add(tap * t.kp * NR), t.kp * NR);
            for (g, group) in b.chunks_exact(4 * NR).enumerate() {
                for (r, row) in acc.iter_mut().enumerate() {
                    let x = std::slice::from_raw_parts(a[r].add(4 * g), 4);
                    for (j, w) in group.chunks_exact(4).enumerate() {
                        row[j] += (0..4).map(|k| x[k] as i32 * w[k] as i32).sum::<i32>();
                    }
                }
            }
        }
        for (r, row) in acc.iter().enumerate().take(MR.min(t.rows - i0)) {
            for (j, &v) in row.iter().enumerate().take(t.nr) {
                *t.c.add((i0 + r) * t.ldc + j) = finish(t, i0 + r, j, v);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{Tile, MR, NR};
    use crate::act::avx2::apply;
    use std::arch::x86_64::*;

    /// A panel's column data for the epilogue: the zero-point corrections, scales and biases
    /// of its sixteen columns.
    #[derive(Clone, Copy)]
    struct Columns {
        corr: [__m256i; 2],
        scale: [__m256; 2],
        bias: [__m256; 2],
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn kernel(t: &Tile) {
        body::<false>(t)
    }

    /// The same tiles with the sums from [`accumulate_vnni`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma")]
    pub(super) unsafe fn kernel_vnni(t: &Tile) {
        body::<true>(t)
    }

    #[inline(always)]
    unsafe fn sums<const VNNI: bool>(t: &Tile, q: usize) -> ([__m256i; MR], [__m256i; MR]) {
        if VNNI {
            accumulate_vnni(t, q)
        } else if t.wide {
            accumulate::<true>(t, q)
        } else {
            accumulate::<false>(t, q)
        }
    }

    #[inline(always)]
    unsafe fn body<const VNNI: bool>(t: &Tile) {
        // The 8-bit AVX2 sums are of `a − 128` (see `accumulate`).
        let a_zero = if !VNNI && t.wide {
            t.a_zero - 128
        } else {
            t.a_zero
        };
        if t.nr == NR {
            let cols = columns(a_zero, t.col_sums, t.scale, t.bias);
            for q in 0..t.rows.div_ceil(MR) {
                let (c0, c1) = sums::<VNNI>(t, q);
                let mr = MR.min(t.rows - q * MR);
                let res = if t.res.is_null() {
                    t.res
                } else {
                    t.res.add(q * MR * t.ld_res)
                };
                epilogue(
                    t,
                    &cols,
                    mr,
                    &c0,
                    &c1,
                    res,
                    t.ld_res,
                    t.c.add(q * MR * t.ldc),
                    t.ldc,
                );
            }
            return;
        }
        // A partial panel: the same vector epilogue on padded copies of the column data and
        // the residual, then the first `nr` columns copied out.
        let mut cs = [0i32; NR];
        let (mut sc, mut bi) = ([0f32; NR], [0f32; NR]);
        for j in 0..t.nr {
            cs[j] = *t.col_sums.add(j);
            sc[j] = *t.scale.add(j);
            if !t.bias.is_null() {
                bi[j] = *t.bias.add(j);
            }
        }
        let cols = columns(a_zero, cs.as_ptr(), sc.as_ptr(), bi.as_ptr());
        for q in 0..t.rows.div_ceil(MR) {
            let (c0, c1) = sums::<VNNI>(t, q);
            let mr = MR.min(t.rows - q * MR);
            let mut res = [0f32; MR * NR];
            let mut out = [0f32; MR * NR];
            let res_ptr = if t.res.is_null() {
                std::ptr::null()
            } else {
                for r in 0..mr {
                    std::ptr::copy_nonoverlapping(
                        t.res.add((q * MR + r) * t.ld_res),
                        res.as_mut_ptr().add(r * NR),
                        t.nr,
                    );
                }
                res.as_ptr()
            };
            epilogue(t, &cols, mr, &c0, &c1, res_ptr, NR, out.as_mut_ptr(), NR);
            for r in 0..mr {
                std::ptr::copy_nonoverlapping(
                    out.as_ptr().add(r * NR),
                    t.c.add((q * MR + r) * t.ldc),
                    t.nr,
                );
            }
        }
    }

    /// Tile `q`'s i32 sums: four rows × two halves of sixteen columns. Without `WIDE`, A is
    /// 7-bit and one `vpmaddubsw` pass is exact (pairs ≤ 2 · 127 · 127). With `WIDE` (8-bit
    /// A), each byte is recentred to `s = a − 128` (−128..=127) and multiplied as
    /// `|s| · (w · sign(s))`: `vpabsb` gives `|s|` ≤ 128 as the unsigned operand, `vpsignb`
    /// moves `s`'s sign onto the weight (|w| ≤ 127, so negating it never overflows), and the
    /// pairs stay ≤ 2 · 128 · 127 = 32 512, exact in one pass. Those sums are
    /// `Σ (a − 128) · w`; [`body`] corrects them with `a_zero − 128` instead of `a_zero`, so
    /// the corrected integers equal [`accumulate_vnni`]'s.
    #[inline(always)]
    unsafe fn accumulate<const WIDE: bool>(t: &Tile, q: usize) -> ([__m256i; MR], [__m256i; MR]) {
        let ones = _mm256_set1_epi16(1);
        let recentre = _mm256_set1_epi8(-128);
        let z = _mm256_setzero_si256();
        // Eight named accumulators (four rows × two halves of sixteen columns).
        let (mut c00, mut c01, mut c10, mut c11) = (z, z, z, z);
        let (mut c20, mut c21, mut c30, mut c31) = (z, z, z, z);
        for tap in 0..t.taps {
            let a = t.a.add((q * t.taps + tap) * MR);
            let (a0, a1, a2, a3) = (*a, *a.add(1), *a.add(2), *a.add(3));
            let mut bp = t.b.add(tap * t.kp * NR);
            let mut k = 0;
            while k < t.kp {
                let b0 = _mm256_loadu_si256(bp as *const __m256i);
                let b1 = _mm256_loadu_si256(bp.add(32) as *const __m256i);
                macro_rules! row {
                    ($a:ident, $x0:ident, $x1:ident) => {
                        let x = _mm256_set1_epi32(($a.add(k) as *const i32).read_unaligned());
                        let (s0, s1) = if WIDE {
                            let sx = _mm256_xor_si256(x, recentre);
                            let ax = _mm256_abs_epi8(sx);
                            (
                                _mm256_madd_epi16(
                                    _mm256_maddubs_epi16(ax, _mm256_sign_epi8(b0, sx)),
                                    ones,
                                ),
                                _mm256_madd_epi16(
                                    _mm256_maddubs_epi16(ax, _mm256_sign_epi8(b1, sx)),
                                    ones,
                                ),
                            )
                        } else {
                            (
                                _mm256_madd_epi16(_mm256_maddubs_epi16(x, b0), ones),
                                _mm256_madd_epi16(_mm256_maddubs_epi16(x, b1), ones),
                            )
                        };
                        $x0 = _mm256_add_epi32($x0, s0);
                        $x1 = _mm256_add_epi32($x1, s1);
                    };
                }
                row!(a0, c00, c01);
                row!(a1, c10, c11);
                row!(a2, c20, c21);
                row!(a3, c30, c31);
                bp = bp.add(4 * NR);
                k += 4;
            }
        }
        ([c00, c10, c20, c30], [c01, c11, c21, c31])
    }

    /// Two adjacent full panels (`t`'s and the one at `b1`, columns `NR..2·NR` of the tile's
    /// outputs): four rows × 32 columns per step, so each broadcast of A serves two
    /// `vpdpbusd`. Same integers and epilogue as [`kernel_vnni`] on each panel.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2,fma")]
    pub(super) unsafe fn kernel_vnni_two_panels(t: &Tile, b1: *const i8) {
        let cols0 = columns(t.a_zero, t.col_sums, t.scale, t.bias);
        let bias1 = if t.bias.is_null() {
            t.bias
        } else {
            t.bias.add(NR)
        };
        let cols1 = columns(t.a_zero, t.col_sums.add(NR), t.scale.add(NR), bias1);
        let half = |r: &[__m512i; MR]| {
            let lo: [__m256i; MR] = std::array::from_fn(|i| _mm512_castsi512_si256(r[i]));
            let hi: [__m256i; MR] = std::array::from_fn(|i| _mm512_extracti64x4_epi64::<1>(r[i]));
            (lo, hi)
        };
        for q in 0..t.rows.div_ceil(MR) {
            let z = _mm512_setzero_si512();
            let (mut p0, mut p1) = ([z; MR], [z; MR]);
            for tap in 0..t.taps {
                let a = t.a.add((q * t.taps + tap) * MR);
                let rows = [*a, *a.add(1), *a.add(2), *a.add(3)];
                let off = tap * t.kp * NR;
                let (mut bp0, mut bp1) = (t.b.add(off), b1.add(off));
                let mut k = 0;
                while k < t.kp {
                    let w0 = _mm512_loadu_si512(bp0 as *const __m512i);
                    let w1 = _mm512_loadu_si512(bp1 as *const __m512i);
                    for r in 0..MR {
                        let x = _mm512_set1_epi32((rows[r].add(k) as *const i32).read_unaligned());
                        p0[r] = _mm512_dpbusd_epi32(p0[r], x, w0);
                        p1[r] = _mm512_dpbusd_epi32(p1[r], x, w1);
                    }
                    bp0 = bp0.add(4 * NR);
                    bp1 = bp1.add(4 * NR);
                    k += 4;
                }
            }
            let mr = MR.min(t.rows - q * MR);
            let res = if t.res.is_null() {
                t.res
            } else {
                t.res.add(q * MR * t.ld_res)
            };
            let c = t.c.add(q * MR * t.ldc);
            let (lo, hi) = half(&p0);
            epilogue(t, &cols0, mr, &lo, &hi, res, t.ld_res, c, t.ldc);
            let res1 = if res.is_null() { res } else { res.add(NR) };
            let (lo, hi) = half(&p1);
            epilogue(t, &cols1, mr, &lo, &hi, res1, t.ld_res, c.add(NR), t.ldc);
        }
    }

    /// Tile `q`'s sums with AVX-512 VNNI: one `vpdpbusd` per row and group of four k covers
    /// all sixteen columns. Even and odd groups go to separate accumulators (eight independent
    /// chains hide the instruction's latency); integer sums are exact in any order, so the
    /// result equals [`accumulate`]'s.
    #[inline(always)]
    unsafe fn accumulate_vnni(t: &Tile, q: usize) -> ([__m256i; MR], [__m256i; MR]) {
        let z = _mm512_setzero_si512();
        let (mut e0, mut e1, mut e2, mut e3) = (z, z, z, z);
        let (mut o0, mut o1, mut o2, mut o3) = (z, z, z, z);
        for tap in 0..t.taps {
            let a = t.a.add((q * t.taps + tap) * MR);
            let (a0, a1, a2, a3) = (*a, *a.add(1), *a.add(2), *a.add(3));
            let mut bp = t.b.add(tap * t.kp * NR);
            let bcast = |row: *const u8, k: usize| {
                _mm512_set1_epi32((row.add(k) as *const i32).read_unaligned())
            };
            let mut k = 0;
            while k + 8 <= t.kp {
                let be = _mm512_loadu_si512(bp as *const __m512i);
                let bo = _mm512_loadu_si512(bp.add(4 * NR) as *const __m512i);
                e0 = _mm512_dpbusd_epi32(e0, bcast(a0, k), be);
                e1 = _mm512_dpbusd_epi32(e1, bcast(a1, k), be);
                e2 = _mm512_dpbusd_epi32(e2, bcast(a2, k), be);
                e3 = _mm512_dpbusd_epi32(e3, bcast(a3, k), be);
                o0 = _mm512_dpbusd_epi32(o0, bcast(a0, k + 4), bo);
                o1 = _mm512_dpbusd_epi32(o1, bcast(a1, k + 4), bo);
                o2 = _mm512_dpbusd_epi32(o2, bcast(a2, k + 4), bo);
                o3 = _mm512_dpbusd_epi32(o3, bcast(a3, k + 4), bo);
                bp = bp.add(8 * NR);
                k += 8;
            }
            if k < t.kp {
                let be = _mm512_loadu_si512(bp as *const __m512i);
                e0 = _mm512_dpbusd_epi32(e0, bcast(a0, k), be);
                e1 = _mm512_dpbusd_epi32(e1, bcast(a1, k), be);
                e2 = _mm512_dpbusd_epi32(e2, bcast(a2, k), be);
                e3 = _mm512_dpbusd_epi32(e3, bcast(a3, k), be);
            }
        }
        let rows = [
            _mm512_add_epi32(e0, o0),
            _mm512_add_epi32(e1, o1),
            _mm512_add_epi32(e2, o2),
            _mm512_add_epi32(e3, o3),
        ];
        let lo = rows.map(|r| _mm512_castsi512_si256(r));
        let hi = rows.map(|r| _mm512_extracti64x4_epi64::<1>(r));
        (lo, hi)
    }

    #[inline(always)]
    unsafe fn columns(
        a_zero: i32,
        col_sums: *const i32,
        scale: *const f32,
        bias: *const f32,
    ) -> Columns {
        let za = _mm256_set1_epi32(a_zero);
        let cs = col_sums as *const __m256i;
        Columns {
            corr: [
                _mm256_mullo_epi32(za, _mm256_loadu_si256(cs)),
                _mm256_mullo_epi32(za, _mm256_loadu_si256(cs.add(1))),
            ],
            scale: [_mm256_loadu_ps(scale), _mm256_loadu_ps(scale.add(8))],
            bias: if bias.is_null() {
                [_mm256_setzero_ps(); 2]
            } else {
                [_mm256_loadu_ps(bias), _mm256_loadu_ps(bias.add(8))]
            },
        }
    }

    /// `mr` rows of sixteen columns: dequantize, bias, activation, residual, store.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    unsafe fn epilogue(
        t: &Tile,
        cols: &Columns,
        mr: usize,
        c0: &[__m256i; MR],
        c1: &[__m256i; MR],
        res: *const f32,
        ld_res: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        let [corr0, corr1] = cols.corr;
        let [s0, s1] = cols.scale;
        let [bias0, bias1] = cols.bias;
        for r in 0..mr {
            // The scalar path rounds the product and the bias add separately; so does this.
            let mut v0 = _mm256_add_ps(
                _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(c0[r], corr0)), s0),
                bias0,
            );
            let mut v1 = _mm256_add_ps(
                _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(c1[r], corr1)), s1),
                bias1,
            );
            if res.is_null() {
                v0 = apply(t.act, v0);
                v1 = apply(t.act, v1);
            } else {
                let rp = res.add(r * ld_res);
                let (r0, r1) = (_mm256_loadu_ps(rp), _mm256_loadu_ps(rp.add(8)));
                if t.add_after_act {
                    v0 = _mm256_add_ps(apply(t.act, v0), r0);
                    v1 = _mm256_add_ps(apply(t.act, v1), r1);
                } else {
                    v0 = apply(t.act, _mm256_add_ps(v0, r0));
                    v1 = apply(t.act, _mm256_add_ps(v1, r1));
                }
            }
            let cp = c.add(r * ldc);
            _mm256_storeu_ps(cp, v0);
            _mm256_storeu_ps(cp.add(8), v1);
        }
    }
}

/// Quantizes `rows` rows of `c` f32 values into u8 rows of `ld_out` bytes:
/// `q = clamp(round_half_even(x / scale) + zero, 0, max)`, ONNX QuantizeLinear's formula (so
/// that a QDQ export computes the same integers; `x · (1 / scale)` rounds differently now and
/// then, and rounding after adding an odd zero point moves every tie), the bytes past `c` set
/// to `zero` (the int8 GEMM reads whole groups of four; their weights are zero).
#[allow(clippy::too_many_arguments)]
pub fn quantize_rows(
    x: &[f32],
    rows: usize,
    c: usize,
    scale: f32,
    zero: u8,
    max: u8,
    out: &mut [u8],
    ld_out: usize,
) {
    quantize_rows_on(Isa::detect(), x, rows, c, scale, zero, max, out, ld_out)
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn quantize_rows_on(
    isa: Isa,
    x: &[f32],
    rows: usize,
    c: usize,
    scale: f32,
    zero: u8,
    max: u8,
    out: &mut [u8],
    ld_out: usize,
) {
    assert!(ld_out >= c);
    assert_eq!(x.len(), rows * c, "quantize input size");
    assert_eq!(out.len(), rows * ld_out, "quantize output size");
    // Chunks of about 64 KiB of input per task.
    let per_task = (16 * 1024 / c.max(1)).max(1);
    let tasks = rows.div_ceil(per_task);
    let (xp, op) = (SendConstPtr(x.as_ptr()), SendPtr(out.as_mut_ptr()));
    crate::threads::parallel_for(tasks, |task| {
        let (xp, op) = (xp, op);
        let r0 = task * per_task;
        let r1 = (r0 + per_task).min(rows);
        if ld_out == c {
            // No padding: the task's rows are one contiguous run.
            // SAFETY: as below.
            let (src, dst) = unsafe {
                (
                    std::slice::from_raw_parts(xp.0.add(r0 * c), (r1 - r0) * c),
                    std::slice::from_raw_parts_mut(op.0.add(r0 * c), (r1 - r0) * c),
                )
            };
            quantize_run(isa, src, scale, zero, max, dst);
            return;
        }
        for r in r0..r1 {
            // SAFETY: rows r0..r1 are this task's alone; sizes asserted above.
            let (src, dst) = unsafe {
                (
                    std::slice::from_raw_parts(xp.0.add(r * c), c),
                    std::slice::from_raw_parts_mut(op.0.add(r * ld_out), ld_out),
                )
            };
            quantize_run(isa, src, scale, zero, max, &mut dst[..c]);
            dst[c..].fill(zero);
        }
    });
}

/// `dst[i] = quantize_one(src[i])`, 32 at a time where the ISA has vectors.
fn quantize_run(isa: Isa, src: &[f32], scale: f32, zero: u8, max: u8, dst: &mut [u8]) {
    let done = match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller's ISA is one this CPU has.
        Isa::Avx2 if src.len() >= 32 => unsafe { avx2_quant::quantize(src, scale, zero, max, dst) },
        _ => 0,
    };
    for (d, &v) in dst[done..].iter_mut().zip(&src[done..]) {
        *d = quantize_one(v, scale, zero, max);
    }
}

/// One value as [`quantize_rows`] quantizes it (the AVX2 path does the same f32 operations).
#[inline]
pub fn quantize_one(x: f32, scale: f32, zero: u8, max: u8) -> u8 {
    let v = x / scale;
    // Into ±256 first, where the rounding below is exact and any value saturates the same;
    // NaN compares false and lands on −256, then 0, as the vector max does.
    let v = if v > -256.0 { v } else { -256.0 };
    let v = if v < 256.0 { v } else { 256.0 };
    // Round half to even by the f32 add (exact for |v| ≤ 256 < 2^22), like `cvtps2dq`;
    // `round_ties_even` is a libm call on baseline x86-64.
    const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
    let r = ((v + MAGIC) - MAGIC) as i32 + zero as i32;
    r.clamp(0, max as i32) as u8
}

#[cfg(target_arch = "x86_64")]
mod avx2_quant {
    use std::arch::x86_64::*;

    /// Quantizes the first multiple of 32 values of `src` into `dst`; returns how many.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn quantize(
        src: &[f32],
        scale: f32,
        zero: u8,
        max: u8,
        dst: &mut [u8],
    ) -> usize {
        let n = src.len() / 32 * 32;
        let sc = _mm256_set1_ps(scale);
        let (lo, hi) = (_mm256_set1_ps(-256.0), _mm256_set1_ps(256.0));
        let (zp, top) = (
            _mm256_set1_epi32(zero as i32),
            _mm256_set1_epi32(max as i32),
        );
        let z = _mm256_setzero_si256();
        let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        macro_rules! q {
            ($p:expr) => {{
                let v = _mm256_div_ps(_mm256_loadu_ps($p), sc);
                // max(v, −256) returns −256 for NaN (the second operand), like the scalar path.
                let v = _mm256_min_ps(_mm256_max_ps(v, lo), hi);
                // Round half to even (MXCSR default), then the zero point, then 0..=max.
                let r = _mm256_add_epi32(_mm256_cvtps_epi32(v), zp);
                _mm256_min_epi32(_mm256_max_epi32(r, z), top)
            }};
        }
        let mut i = 0;
        while i < n {
            let p = src.as_ptr().add(i);
            let (q0, q1, q2, q3) = (q!(p), q!(p.add(8)), q!(p.add(16)), q!(p.add(24)));
            let w01 = _mm256_packs_epi32(q0, q1);
            let w23 = _mm256_packs_epi32(q2, q3);
            let b = _mm256_packus_epi16(w01, w23);
            // packs work per 128-bit lane: put the four-byte groups back in order.
            let b = _mm256_permutevar8x32_epi32(b, perm);
            _mm256_storeu_si256(dst.as_mut_ptr().add(i) as *mut __m256i, b);
            i += 32;
        }
        n
    }
}
