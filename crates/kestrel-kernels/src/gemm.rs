//! Indirect GEMM with packed weights and a fused epilogue: the engine of every convolution and
//! linear layer.
//!
//! `C[i, j] = epilogue(Σ_t Σ_k A_t[i][k] · B[t][k][j])`, where `A_t[i]` is a pointer to the
//! `k`-long input vector that tap `t` of output row `i` reads (an input pixel's channels, or a
//! zero row for padding). A 1×1 convolution or a linear layer has one tap and dense rows.
//!
//! The microkernel computes an `MR × NR` = 6 × 16 tile with 12 AVX2 accumulators (the register
//! budget of BLIS's Haswell kernel), broadcasting A straight from the input rows (no packing of
//! A: NHWC rows are already contiguous in k) and streaming B from its packed panel. On AVX-512
//! one call covers two adjacent panels (6 × 32), or two row tiles of a lone panel, so that 12
//! accumulators keep two 512-bit FMA pipes busy. The epilogue adds the bias, the residual and
//! applies the activation before the tile is stored.

use crate::act::Act;
use crate::{Isa, SendConstPtr, SendPtr};

pub const MR: usize = 6;
pub const NR: usize = 16;

/// B packed into panels of `NR` columns: panel `p` holds, for every tap `t` and depth `k`, the
/// columns `p·NR .. p·NR + NR` contiguously (`[t][k][NR]`), zero past `n`.
#[derive(Clone, Debug)]
pub struct PackedB {
    pub taps: usize,
    pub k: usize,
    pub n: usize,
    data: Vec<f32>,
}

impl PackedB {
    /// Packs `get(t, k, j)` for `t < taps`, `k < k`, `j < n`.
    pub fn pack(taps: usize, k: usize, n: usize, get: impl Fn(usize, usize, usize) -> f32) -> Self {
        let panels = n.div_ceil(NR);
        let mut data = vec![0f32; panels * taps * k * NR];
        for p in 0..panels {
            let base = p * taps * k * NR;
            for t in 0..taps {
                for kk in 0..k {
                    let row = base + (t * k + kk) * NR;
                    for jj in 0..NR.min(n - p * NR) {
                        data[row + jj] = get(t, kk, p * NR + jj);
                    }
                }
            }
        }
        PackedB { taps, k, n, data }
    }

    /// Packs a row-major `[k][n]` matrix (one tap).
    pub fn from_kn(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n);
        Self::pack(1, k, n, |_, kk, j| w[kk * n + j])
    }

    pub fn panels(&self) -> usize {
        self.n.div_ceil(NR)
    }

    fn panel(&self, p: usize) -> *const f32 {
        // SAFETY: p < panels(); the offset stays inside `data`.
        unsafe { self.data.as_ptr().add(p * self.taps * self.k * NR) }
    }

    pub fn bytes(&self) -> usize {
        self.data.len() * 4
    }
}

/// Marks a padding tap in [`Rows::Indirect`] offsets.
pub const PAD: u32 = u32::MAX;

/// Where each output row's A vectors live.
#[derive(Clone, Copy)]
pub enum Rows<'a> {
    /// Row `i` (one tap) starts at `base + i·ld`.
    Dense { base: *const f32, ld: usize },
    /// Row `i`, tap `t` starts at `base + offsets[i·taps + t]`, or is the zero row for [`PAD`].
    Indirect {
        base: *const f32,
        offsets: &'a [u32],
        zero: *const f32,
    },
}

/// What happens to an accumulated tile before it is stored.
#[derive(Clone, Copy)]
pub struct Epilogue {
    /// `n` values added per column, or null.
    pub bias: *const f32,
    pub act: Act,
    /// Residual rows (`res + i·ld_res`), added per element, or null.
    pub residual: *const f32,
    pub ld_res: usize,
    /// false: `act(acc + bias + res)` (ResNet); true: `act(acc + bias) + res` (the residual
    /// added after the activation).
    pub add_after_act: bool,
    /// Add the product to what `c` already holds instead of overwriting it (a reduction split
    /// across calls, as the weight gradient's pixel chunks are).
    pub accumulate: bool,
}

impl Epilogue {
    pub fn new(bias: Option<&[f32]>, act: Act) -> Self {
        Epilogue {
            bias: bias.map_or(std::ptr::null(), |b| b.as_ptr()),
            act,
            residual: std::ptr::null(),
            ld_res: 0,
            add_after_act: false,
            accumulate: false,
        }
    }

    /// Adds into `c` instead of overwriting it.
    pub fn accumulating(mut self) -> Self {
        self.accumulate = true;
        self
    }

    pub fn with_residual(mut self, res: *const f32, ld: usize, after_act: bool) -> Self {
        self.residual = res;
        self.ld_res = ld;
        self.add_after_act = after_act;
        self
    }
}

/// The arguments of one microkernel call, offsets already applied.
struct Tile {
    /// Taps and depth range of this K block.
    taps: usize,
    kc: usize,
    /// `taps × MR` row pointers, `[t][r]`, each read from `a_koff` on.
    a: *const *const f32,
    a_koff: usize,
    /// The block's first packed B row; the next tap's starts `b_tap_stride` further.
    b: *const f32,
    b_tap_stride: usize,
    /// First K block: start from zero, not from C. Last K block: apply the epilogue.
    first: bool,
    last: bool,
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    bias: *const f32,
    res: *const f32,
    ld_res: usize,
    act: Act,
    add_after_act: bool,
}

impl Tile {
    /// Tap `tap`'s `MR` row pointers, advanced to this K block's depth.
    #[inline(always)]
    unsafe fn rows(&self, tap: usize) -> [*const f32; MR] {
        let a = self.a.add(tap * MR);
        std::array::from_fn(|r| (*a.add(r)).add(self.a_koff))
    }
}

/// Runs the indirect GEMM for `m` rows and all `b.n` columns, writing
/// `c[i·ldc + col0 + j]` with `bias[col0 + j]` and `residual[i·ld_res + col0 + j]` (the
/// epilogue's pointers are taken as pointing at column 0), reading A at `k_off` into each row.
///
/// # Safety
/// Every row pointer that `rows` describes must be valid for `k_off + b.k` reads, `c` for the
/// `m × (col0 + n)` tile with stride `ldc`, and the epilogue's pointers likewise; `c` must not
/// alias A.
pub unsafe fn igemm(
    m: usize,
    rows: Rows<'_>,
    k_off: usize,
    b: &PackedB,
    c: *mut f32,
    ldc: usize,
    col0: usize,
    ep: &Epilogue,
) {
    if m == 0 || b.n == 0 {
        return;
    }
    let isa = Isa::detect();
    let wide = crate::avx512();
    let taps = b.taps;
    let blocks = k_blocks(taps, b.k);
    let mtiles = m.div_ceil(MR);
    let panels = b.panels();
    // Rows per task: keep one K block of the task's A rows in L2 (B's block panel stays in L1).
    let block_depth = blocks
        .iter()
        .map(|k| (k.1 - k.0) * (k.3 - k.2))
        .max()
        .unwrap_or(1);
    let mut mt_chunk = (256 * 1024 / (MR * block_depth.max(1) * 4)).clamp(1, 64);
    let mut row_tasks = mtiles.div_ceil(mt_chunk);
    let want = 3 * crate::threads::num_threads();
    let mut pc = if row_tasks >= want {
        panels
    } else {
        (panels * row_tasks / want).max(1)
    };
    if wide && pc < panels {
        // Whole panel pairs per task for the AVX-512 kernel.
        pc += pc % 2;
    }
    let panel_tasks = panels.div_ceil(pc);
    if row_tasks * panel_tasks < want {
        // Too few tasks for the threads: a 14×14 map's 196 rows make one row task, and 96
        // columns three panel-pair tasks, which two threads finish in the time of two (75%).
        // Split the rows as well; each task still sums the whole depth, so results do not change.
        let need = want.div_ceil(panel_tasks).min(mtiles);
        mt_chunk = mtiles.div_ceil(need);
        row_tasks = mtiles.div_ceil(mt_chunk);
    }
    let tasks = row_tasks * panel_tasks;

    let c = SendPtr(c);
    let bias = SendConstPtr(ep.bias);
    let res = SendConstPtr(ep.residual);
    let (base, offsets, zero, dense_ld) = match rows {
        Rows::Dense { base, ld } => (SendConstPtr(base), None, SendConstPtr(base), ld),
        Rows::Indirect {
            base,
            offsets,
            zero,
        } => (SendConstPtr(base), Some(offsets), SendConstPtr(zero), 0),
    };
    let (act, add_after_act, ld_res, accumulate) =
        (ep.act, ep.add_after_act, ep.ld_res, ep.accumulate);
    let panel_len = taps * b.k * NR;
    // One short K block (a 1×1 conv over few channels) on AVX-512: row-tile-major order.
    let row_major = isa == Isa::Avx2 && wide && blocks.len() == 1 && block_depth <= ROW_MAJOR_DEPTH;

    crate::threads::parallel_for(tasks, |task| {
        let (rt, pt) = (task / panel_tasks, task % panel_tasks);
        let mt0 = rt * mt_chunk;
        let mt1 = (mt0 + mt_chunk).min(mtiles);
        let (base, zero) = (base, zero);
        // Row pointers of this task's microtiles, [tile][t][r]: one pass over the offset
        // table in its own order (row by row, taps contiguous), the layout branch hoisted.
        // (The rows past m repeat row m - 1.)
        let mut ptrs: Vec<*const f32> = vec![std::ptr::null(); (mt1 - mt0) * taps * MR];
        let (a0, z) = (base.0.add(k_off), zero.0.add(k_off));
        for mt in mt0..mt1 {
            let tile = &mut ptrs[(mt - mt0) * taps * MR..][..taps * MR];
            for r in 0..MR {
                let i = (mt * MR + r).min(m - 1);
                match offsets {
                    None => {
                        let p = a0.add(i * dense_ld);
                        for t in 0..taps {
                            tile[t * MR + r] = p;
                        }
                    }
                    Some(off) => {
                        for (t, &o) in off[i * taps..(i + 1) * taps].iter().enumerate() {
                            tile[t * MR + r] = if o == PAD { z } else { a0.add(o as usize) };
                        }
                    }
                }
            }
        }
        let (c, bias, res) = (c, bias, res);
        for (bi, &(t0, t1, k0, k1)) in blocks.iter().enumerate() {
            let tile = |p: usize, mt: usize| {
                let j0 = p * NR;
                let i0 = mt * MR;
                Tile {
                    taps: t1 - t0,
                    kc: k1 - k0,
                    a: ptrs.as_ptr().add(((mt - mt0) * taps + t0) * MR),
                    a_koff: k0,
                    b: b.panel(p).add((t0 * b.k + k0) * NR),
                    b_tap_stride: b.k * NR,
                    first: bi == 0 && !accumulate,
                    last: bi + 1 == blocks.len(),
                    // SAFETY (disjoint writes): each task owns rows mt0..mt1 × its panels.
                    c: c.0.add(i0 * ldc + col0 + j0),
                    ldc,
                    mr: MR.min(m - i0),
                    nr: NR.min(b.n - j0),
                    bias: if bias.0.is_null() {
                        bias.0
                    } else {
                        bias.0.add(col0 + j0)
                    },
                    res: if res.0.is_null() {
                        res.0
                    } else {
                        res.0.add(i0 * ld_res + col0 + j0)
                    },
                    ld_res,
                    act,
                    add_after_act,
                }
            };
            let (p0, p1) = (pt * pc, ((pt + 1) * pc).min(panels));
            let mut p = p0;
            if row_major && m > 1 {
                // Short depth: C traffic outweighs the FMAs, so each row tile runs across
                // all of the task's panel pairs (whole C rows written in turn, and B, small,
                // re-read from cache); a lone last panel is left to the loop below.
                let pairs_end = p0 + (p1 - p0) / 2 * 2;
                for mt in mt0..mt1 {
                    for q in (p0..pairs_end).step_by(2) {
                        #[cfg(target_arch = "x86_64")]
                        avx512::kernel_pair(&tile(q, mt), &tile(q + 1, mt));
                    }
                }
                p = pairs_end;
            }
            if m == 1 && isa == Isa::Avx2 {
                // One row (a linear layer at batch 1): the 6-row kernel would compute five
                // copies of it; run up to six panels per call, one broadcast feeding all.
                #[cfg(target_arch = "x86_64")]
                while p < p1 {
                    let q = (p1 - p).min(avx2::ROW1_PANELS);
                    let tiles: [Tile; avx2::ROW1_PANELS] =
                        std::array::from_fn(|i| tile(p + i.min(q - 1), mt0));
                    avx2::kernel_row1(&tiles, q);
                    p += q;
                }
            }
            while p < p1 {
                debug_assert!(p * panel_len < b.data.len().max(1));
                // AVX-512: two panels per call (12 accumulators keep both FMA pipes busy).
                let pair = isa == Isa::Avx2 && wide && p + 1 < p1;
                let step = if pair { 2 } else { 1 };
                let mut mt = mt0;
                while mt < mt1 {
                    // A lone panel on AVX-512 takes two row tiles per call instead.
                    let rows2 = isa == Isa::Avx2 && wide && !pair && mt + 1 < mt1;
                    match isa {
                        #[cfg(target_arch = "x86_64")]
                        Isa::Avx2 if pair => avx512::kernel_pair(&tile(p, mt), &tile(p + 1, mt)),
                        #[cfg(target_arch = "x86_64")]
                        Isa::Avx2 if rows2 => avx512::kernel_rows2(&tile(p, mt), &tile(p, mt + 1)),
                        #[cfg(target_arch = "x86_64")]
                        Isa::Avx2 if wide => avx512::kernel(&tile(p, mt)),
                        #[cfg(target_arch = "x86_64")]
                        Isa::Avx2 => avx2::kernel(&tile(p, mt)),
                        _ => scalar_kernel(&tile(p, mt)),
                    }
                    mt += if rows2 { 2 } else { 1 };
                }
                p += step;
            }
        }
    });
}

/// Deepest single K block [`igemm`] runs row tile by row tile across the panels (resnet50 at
/// batch 1, one thread: its 1×1 convs 30.5 ms panel-major, 28.8 up to depth 128, 27.0 up to
/// 256).
const ROW_MAJOR_DEPTH: usize = 256;

/// Depth of one K block: its B block panel (`KC × NR` floats, 16 KiB) stays in L1 while the
/// task's microtiles stream past it.
const KC: usize = 256;

/// Splits the `taps × k` depth into blocks `(t0, t1, k0, k1)` of about [`KC`]: whole taps
/// grouped while `k` is small, slices of one tap's `k` when it is large.
fn k_blocks(taps: usize, k: usize) -> Vec<(usize, usize, usize, usize)> {
    let mut blocks = Vec::new();
    if k >= KC {
        let slices = k.div_ceil(KC);
        let step = k.div_ceil(slices);
        for t in 0..taps {
            for k0 in (0..k).step_by(step) {
                blocks.push((t, t + 1, k0, (k0 + step).min(k)));
            }
        }
    } else {
        let per = (KC / k.max(1)).max(1);
        for t0 in (0..taps).step_by(per) {
            blocks.push((t0, (t0 + per).min(taps), 0, k));
        }
    }
    blocks
}

/// This machine's fp32 GEMM throughput through these kernels, in GFLOP/s: the best of a few
/// 1024 × 1024 × 1024 products on all compute threads (the roofline's compute ceiling).
pub fn ceiling_gflops() -> f64 {
    let (m, k, n) = (1024, 1024, 1024);
    let a = vec![0.5f32; m * k];
    let b = PackedB::from_kn(&vec![0.25f32; k * n], k, n);
    let mut c = vec![0f32; m * n];
    let ep = Epilogue::new(None, Act::Identity);
    let mut best = f64::MAX;
    for _ in 0..4 {
        let t = std::time::Instant::now();
        // SAFETY: a, b and c have the sizes the call reads and writes.
        unsafe {
            igemm(
                m,
                Rows::Dense {
                    base: a.as_ptr(),
                    ld: k,
                },
                0,
                &b,
                c.as_mut_ptr(),
                n,
                0,
                &ep,
            )
        };
        best = best.min(t.elapsed().as_secs_f64());
    }
    2.0 * (m * k * n) as f64 / best / 1e9
}

#[inline(always)]
unsafe fn finish(t: &Tile, r: usize, j: usize, acc: f32) -> f32 {
    let mut v = acc;
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
    let mut acc = [[0f32; NR]; MR];
    for tap in 0..t.taps {
        let a = std::slice::from_raw_parts(t.a.add(tap * MR), MR);
        let mut bp = t.b.add(tap * t.b_tap_stride);
        for k in 0..t.kc {
            let bv = std::slice::from_raw_parts(bp, NR);
            for r in 0..MR {
                let x = *a[r].add(t.a_koff + k);
                for j in 0..NR {
                    acc[r][j] += x * bv[j];
                }
            }
            bp = bp.add(NR);
        }
    }
    for (r, row) in acc.iter().enumerate().take(t.mr) {
        for (j, &v) in row.iter().enumerate().take(t.nr) {
            let dst = t.c.add(r * t.ldc + j);
            let v = if t.first { v } else { *dst + v };
            *dst = if t.last { finish(t, r, j, v) } else { v };
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{finish, Tile, MR, NR};
    use crate::act::avx2::apply;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn kernel(t: &Tile) {
        // Twelve named accumulators: arrays indexed in the loop get spilled to the stack.
        let z = _mm256_setzero_ps();
        let (mut c00, mut c01, mut c10, mut c11, mut c20, mut c21) = (z, z, z, z, z, z);
        let (mut c30, mut c31, mut c40, mut c41, mut c50, mut c51) = (z, z, z, z, z, z);
        for tap in 0..t.taps {
            let [a0, a1, a2, a3, a4, a5] = t.rows(tap);
            let mut bp = t.b.add(tap * t.b_tap_stride);
            for k in 0..t.kc {
                let b0 = _mm256_loadu_ps(bp);
                let b1 = _mm256_loadu_ps(bp.add(8));
                macro_rules! row {
                    ($a:ident, $x0:ident, $x1:ident) => {
                        let x = _mm256_broadcast_ss(&*$a.add(k));
                        $x0 = _mm256_fmadd_ps(x, b0, $x0);
                        $x1 = _mm256_fmadd_ps(x, b1, $x1);
                    };
                }
                row!(a0, c00, c01);
                row!(a1, c10, c11);
                row!(a2, c20, c21);
                row!(a3, c30, c31);
                row!(a4, c40, c41);
                row!(a5, c50, c51);
                bp = bp.add(NR);
            }
        }
        store(
            t,
            [c00, c10, c20, c30, c40, c50],
            [c01, c11, c21, c31, c41, c51],
        );
    }

    /// Panels [`kernel_row1`] runs per call.
    pub(super) const ROW1_PANELS: usize = 6;

    /// A one-row tile over the first `q` (≤ ROW1_PANELS) of `tiles`' panels (the rest repeat
    /// the last and are not stored): per depth step one A broadcast and two FMAs a panel, each
    /// element summed in the order [`kernel`] sums it, so the results are bit-identical.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn kernel_row1(tiles: &[Tile; ROW1_PANELS], q: usize) {
        let t = &tiles[0];
        let z = _mm256_setzero_ps();
        let (mut c00, mut c01, mut c10, mut c11, mut c20, mut c21) = (z, z, z, z, z, z);
        let (mut c30, mut c31, mut c40, mut c41, mut c50, mut c51) = (z, z, z, z, z, z);
        for tap in 0..t.taps {
            let a = t.rows(tap)[0];
            let [b0, b1, b2, b3, b4, b5]: [*const f32; ROW1_PANELS] =
                std::array::from_fn(|i| tiles[i].b.add(tap * tiles[i].b_tap_stride));
            for k in 0..t.kc {
                let x = _mm256_broadcast_ss(&*a.add(k));
                let o = k * NR;
                macro_rules! panel {
                    ($b:ident, $x0:ident, $x1:ident) => {
                        $x0 = _mm256_fmadd_ps(x, _mm256_loadu_ps($b.add(o)), $x0);
                        $x1 = _mm256_fmadd_ps(x, _mm256_loadu_ps($b.add(o + 8)), $x1);
                    };
                }
                panel!(b0, c00, c01);
                panel!(b1, c10, c11);
                panel!(b2, c20, c21);
                panel!(b3, c30, c31);
                panel!(b4, c40, c41);
                panel!(b5, c50, c51);
            }
        }
        let acc = [
            (c00, c01),
            (c10, c11),
            (c20, c21),
            (c30, c31),
            (c40, c41),
            (c50, c51),
        ];
        for (tile, &(lo, hi)) in tiles.iter().zip(&acc).take(q) {
            store(tile, [lo, z, z, z, z, z], [hi, z, z, z, z, z]);
        }
    }

    /// Writes a finished tile: columns 0..8 of row `r` in `c0[r]`, 8..16 in `c1[r]`; a partial
    /// sum goes to C raw, the last K block through the epilogue.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn store(t: &Tile, mut c0: [__m256; MR], mut c1: [__m256; MR]) {
        if !t.last {
            // A partial sum: store it raw (adding what earlier K blocks left).
            let mut tmp = [0f32; NR];
            for r in 0..t.mr {
                let cp = t.c.add(r * t.ldc);
                if t.nr == NR {
                    if !t.first {
                        c0[r] = _mm256_add_ps(c0[r], _mm256_loadu_ps(cp));
                        c1[r] = _mm256_add_ps(c1[r], _mm256_loadu_ps(cp.add(8)));
                    }
                    _mm256_storeu_ps(cp, c0[r]);
                    _mm256_storeu_ps(cp.add(8), c1[r]);
                } else {
                    _mm256_storeu_ps(tmp.as_mut_ptr(), c0[r]);
                    _mm256_storeu_ps(tmp.as_mut_ptr().add(8), c1[r]);
                    for (j, &v) in tmp.iter().enumerate().take(t.nr) {
                        *cp.add(j) = if t.first { v } else { *cp.add(j) + v };
                    }
                }
            }
            return;
        }
        if !t.first {
            if t.nr == NR {
                for r in 0..t.mr {
                    let cp = t.c.add(r * t.ldc);
                    c0[r] = _mm256_add_ps(c0[r], _mm256_loadu_ps(cp));
                    c1[r] = _mm256_add_ps(c1[r], _mm256_loadu_ps(cp.add(8)));
                }
            } else {
                let mut tmp = [0f32; NR];
                for r in 0..t.mr {
                    let cp = t.c.add(r * t.ldc);
                    for (j, v) in tmp.iter_mut().enumerate() {
                        *v = if j < t.nr { *cp.add(j) } else { 0.0 };
                    }
                    c0[r] = _mm256_add_ps(c0[r], _mm256_loadu_ps(tmp.as_ptr()));
                    c1[r] = _mm256_add_ps(c1[r], _mm256_loadu_ps(tmp.as_ptr().add(8)));
                }
            }
        }
        if t.nr == NR {
            let (bias0, bias1) = if t.bias.is_null() {
                (_mm256_setzero_ps(), _mm256_setzero_ps())
            } else {
                (_mm256_loadu_ps(t.bias), _mm256_loadu_ps(t.bias.add(8)))
            };
            for r in 0..t.mr {
                let mut v0 = _mm256_add_ps(c0[r], bias0);
                let mut v1 = _mm256_add_ps(c1[r], bias1);
                if t.res.is_null() {
                    v0 = apply(t.act, v0);
                    v1 = apply(t.act, v1);
                } else {
                    let rp = t.res.add(r * t.ld_res);
                    let (r0, r1) = (_mm256_loadu_ps(rp), _mm256_loadu_ps(rp.add(8)));
                    if t.add_after_act {
                        v0 = _mm256_add_ps(apply(t.act, v0), r0);
                        v1 = _mm256_add_ps(apply(t.act, v1), r1);
                    } else {
                        v0 = apply(t.act, _mm256_add_ps(v0, r0));
                        v1 = apply(t.act, _mm256_add_ps(v1, r1));
                    }
                }
                let cp = t.c.add(r * t.ldc);
                _mm256_storeu_ps(cp, v0);
                _mm256_storeu_ps(cp.add(8), v1);
            }
        } else {
            let mut tmp = [0f32; NR];
            for r in 0..t.mr {
                _mm256_storeu_ps(tmp.as_mut_ptr(), c0[r]);
                _mm256_storeu_ps(tmp.as_mut_ptr().add(8), c1[r]);
                for (j, &v) in tmp.iter().enumerate().take(t.nr) {
                    *t.c.add(r * t.ldc + j) = finish(t, r, j, v);
                }
            }
        }
    }
}

/// AVX-512F: each tile row is one 16-lane register, accumulated over k in the same order as the
/// AVX2 kernel's two 8-lane halves (one FMA chain per element), so both give bit-identical sums:
/// the int8 engine's requantization and the fixtures do not depend on which CPU ran them. The
/// tile then goes through the AVX2 kernel's store and epilogue.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{Tile, MR, NR};
    use crate::act::avx512::apply_fast as apply;
    use std::arch::x86_64::*;

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn kernel(t: &Tile) {
        let z = _mm512_setzero_ps();
        let (mut c0, mut c1, mut c2, mut c3, mut c4, mut c5) = (z, z, z, z, z, z);
        for tap in 0..t.taps {
            let [a0, a1, a2, a3, a4, a5] = t.rows(tap);
            let mut bp = t.b.add(tap * t.b_tap_stride);
            for k in 0..t.kc {
                let b = _mm512_loadu_ps(bp);
                c0 = _mm512_fmadd_ps(_mm512_set1_ps(*a0.add(k)), b, c0);
                c1 = _mm512_fmadd_ps(_mm512_set1_ps(*a1.add(k)), b, c1);
                c2 = _mm512_fmadd_ps(_mm512_set1_ps(*a2.add(k)), b, c2);
                c3 = _mm512_fmadd_ps(_mm512_set1_ps(*a3.add(k)), b, c3);
                c4 = _mm512_fmadd_ps(_mm512_set1_ps(*a4.add(k)), b, c4);
                c5 = _mm512_fmadd_ps(_mm512_set1_ps(*a5.add(k)), b, c5);
                bp = bp.add(NR);
            }
        }
        // The halves by register moves: a 512-bit store read back as two 256-bit loads cannot
        // forward its upper half on Zen 4 and stalls each row.
        store_tile(t, [c0, c1, c2, c3, c4, c5]);
    }

    /// Two row tiles of one panel (`t2` is `t`'s next microtile): 12 accumulators for a panel
    /// without a partner. Each element's sum is [`kernel`]'s.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn kernel_rows2(t: &Tile, t2: &Tile) {
        let z = _mm512_setzero_ps();
        let (mut c0, mut c1, mut c2, mut c3, mut c4, mut c5) = (z, z, z, z, z, z);
        let (mut d0, mut d1, mut d2, mut d3, mut d4, mut d5) = (z, z, z, z, z, z);
        for tap in 0..t.taps {
            let [a0, a1, a2, a3, a4, a5] = t.rows(tap);
            let [e0, e1, e2, e3, e4, e5] = t2.rows(tap);
            let mut bp = t.b.add(tap * t.b_tap_stride);
            for k in 0..t.kc {
                let b = _mm512_loadu_ps(bp);
                macro_rules! row {
                    ($a:ident, $c:ident) => {
                        $c = _mm512_fmadd_ps(_mm512_set1_ps(*$a.add(k)), b, $c);
                    };
                }
                row!(a0, c0);
                row!(a1, c1);
                row!(a2, c2);
                row!(a3, c3);
                row!(a4, c4);
                row!(a5, c5);
                row!(e0, d0);
                row!(e1, d1);
                row!(e2, d2);
                row!(e3, d3);
                row!(e4, d4);
                row!(e5, d5);
                bp = bp.add(NR);
            }
        }
        store_tile(t, [c0, c1, c2, c3, c4, c5]);
        store_tile(t2, [d0, d1, d2, d3, d4, d5]);
    }

    /// Stores a finished tile. Full-width tiles take the epilogue in 16-lane registers, in the
    /// AVX2 store's order of operations and with the 16-lane forms of its activations (so with
    /// its bits); partial ones go through the AVX2 store.
    #[inline]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn store_tile(t: &Tile, rows: [__m512; MR]) {
        if t.nr == NR {
            let zero = _mm512_setzero_ps();
            let bias = if t.bias.is_null() || !t.last {
                zero
            } else {
                _mm512_loadu_ps(t.bias)
            };
            for (r, &acc) in rows.iter().enumerate().take(t.mr) {
                let cp = t.c.add(r * t.ldc);
                let mut v = if t.first {
                    acc
                } else {
                    _mm512_add_ps(acc, _mm512_loadu_ps(cp))
                };
                if t.last {
                    v = _mm512_add_ps(v, bias);
                    let res = if t.res.is_null() {
                        None
                    } else {
                        Some(_mm512_loadu_ps(t.res.add(r * t.ld_res)))
                    };
                    if let (Some(x), false) = (res, t.add_after_act) {
                        v = _mm512_add_ps(v, x);
                    }
                    v = apply(t.act, v);
                    if let (Some(x), true) = (res, t.add_after_act) {
                        v = _mm512_add_ps(v, x);
                    }
                }
                _mm512_storeu_ps(cp, v);
            }
            return;
        }
        let mut lo = [_mm256_setzero_ps(); MR];
        let mut hi = [_mm256_setzero_ps(); MR];
        for r in 0..MR {
            lo[r] = _mm512_castps512_ps256(rows[r]);
            hi[r] = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(rows[r])));
        }
        super::avx2::store(t, lo, hi);
    }

    /// The tiles of two adjacent panels (`t2` is `t`'s next panel, same rows and depth): 12
    /// accumulators, two B loads per six broadcasts. Each element's sum is [`kernel`]'s.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn kernel_pair(t: &Tile, t2: &Tile) {
        let z = _mm512_setzero_ps();
        let (mut c0, mut c1, mut c2, mut c3, mut c4, mut c5) = (z, z, z, z, z, z);
        let (mut d0, mut d1, mut d2, mut d3, mut d4, mut d5) = (z, z, z, z, z, z);
        for tap in 0..t.taps {
            let [a0, a1, a2, a3, a4, a5] = t.rows(tap);
            let mut bp = t.b.add(tap * t.b_tap_stride);
            let mut bq = t2.b.add(tap * t.b_tap_stride);
            for k in 0..t.kc {
                let b = _mm512_loadu_ps(bp);
                let b2 = _mm512_loadu_ps(bq);
                macro_rules! row {
                    ($a:ident, $c:ident, $d:ident) => {
                        let x = _mm512_set1_ps(*$a.add(k));
                        $c = _mm512_fmadd_ps(x, b, $c);
                        $d = _mm512_fmadd_ps(x, b2, $d);
                    };
                }
                row!(a0, c0, d0);
                row!(a1, c1, d1);
                row!(a2, c2, d2);
                row!(a3, c3, d3);
                row!(a4, c4, d4);
                row!(a5, c5, d5);
                bp = bp.add(NR);
                bq = bq.add(NR);
            }
        }
        store_tile(t, [c0, c1, c2, c3, c4, c5]);
        store_tile(t2, [d0, d1, d2, d3, d4, d5]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::test_util::lcg;

    /// The AVX-512 kernel sums in the AVX2 kernel's order: bit-identical tiles, so a model's
    /// outputs (and the int8 engine's requantization) do not depend on the CPU.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_and_avx2_kernels_give_identical_bits() {
        if !crate::test_util::avx512_and_avx2() {
            return;
        }
        let mut s = 3u64;
        // (k, nr, mr, taps, act, residual, added after the activation, first, last): the
        // 16-lane epilogue (full tiles), the AVX2 one partial tiles take, and partial sums of
        // a split depth.
        let cases = [
            (1, 16, 6, 1, Act::Silu, false, false, true, true),
            (37, 16, 6, 2, Act::Relu6, true, false, true, true),
            (37, 16, 5, 2, Act::Relu, true, true, false, true),
            (20, 16, 6, 1, Act::Identity, false, false, false, false),
            (20, 16, 6, 1, Act::Identity, false, false, true, false),
            (256, 11, 4, 1, Act::Relu, true, false, true, true),
            (9, 3, 1, 3, Act::Gelu, true, true, false, true),
            (12, 16, 6, 1, Act::Gelu, true, true, true, true),
            (12, 16, 3, 1, Act::HardSwish, true, false, true, true),
        ];
        for &(k, nr, mr, taps, act, with_res, after, first, last) in &cases {
            let rows: Vec<Vec<f32>> = (0..taps * MR)
                .map(|_| (0..k).map(|_| lcg(&mut s)).collect())
                .collect();
            let ptrs: Vec<*const f32> = rows.iter().map(|r| r.as_ptr()).collect();
            // Two panels of B, bias and residual: the pair kernel's second tile reads the
            // second.
            let b: Vec<f32> = (0..2 * taps * k * NR).map(|_| lcg(&mut s)).collect();
            let bias: Vec<f32> = (0..2 * NR).map(|_| lcg(&mut s)).collect();
            let res: Vec<f32> = (0..2 * MR * NR).map(|_| lcg(&mut s)).collect();
            // What C holds before a K block that is not the first.
            let c0: Vec<f32> = (0..MR * NR).map(|_| lcg(&mut s)).collect();
            let tile = |panel: usize, c: &mut Vec<f32>| Tile {
                taps,
                kc: k,
                a: ptrs.as_ptr(),
                a_koff: 0,
                b: b[panel * taps * k * NR..].as_ptr(),
                b_tap_stride: k * NR,
                first,
                last,
                c: c.as_mut_ptr(),
                ldc: NR,
                mr,
                nr,
                bias: bias[panel * NR..].as_ptr(),
                res: if with_res {
                    res[panel * MR * NR..].as_ptr()
                } else {
                    std::ptr::null()
                },
                ld_res: NR,
                act,
                add_after_act: after,
            };
            for panel in 0..2 {
                let mut narrow = c0.clone();
                let mut wide = c0.clone();
                let (mut first_t, mut second_t) = (c0.clone(), c0.clone());
                unsafe {
                    avx2::kernel(&tile(panel, &mut narrow));
                    avx512::kernel(&tile(panel, &mut wide));
                    avx512::kernel_pair(&tile(0, &mut first_t), &tile(1, &mut second_t));
                }
                // Two row tiles of one panel (the second reads the same rows).
                let (mut top, mut bottom) = (c0.clone(), c0.clone());
                unsafe {
                    avx512::kernel_rows2(&tile(panel, &mut top), &tile(panel, &mut bottom));
                }
                let pair = if panel == 0 { &first_t } else { &second_t };
                for (i, x) in narrow.iter().enumerate() {
                    for (what, y) in [
                        ("kernel", wide[i]),
                        ("kernel_pair", pair[i]),
                        ("kernel_rows2 (first)", top[i]),
                        ("kernel_rows2 (second)", bottom[i]),
                    ] {
                        assert_eq!(
                            x.to_bits(),
                            y.to_bits(),
                            "{what} k{k} nr{nr} mr{mr} taps{taps} {act:?} panel{panel} [{i}]: {x} vs {y}"
                        );
                    }
                }
            }
        }
    }

    /// A one-row GEMM (the one-row kernel) gives the bits that the same row gets inside a
    /// many-row GEMM (the 6-row kernels), over one and several K blocks and partial panels.
    #[test]
    fn one_row_gemm_is_bit_identical_to_a_row_of_a_taller_one() {
        let mut s = 11u64;
        for &(k, n) in &[(1, 1), (40, 100), (300, 1000), (1100, 40), (64, 16 * 13)] {
            let a: Vec<f32> = (0..k).map(|_| lcg(&mut s)).collect();
            let w: Vec<f32> = (0..k * n).map(|_| lcg(&mut s)).collect();
            let bias: Vec<f32> = (0..n).map(|_| lcg(&mut s)).collect();
            let b = PackedB::from_kn(&w, k, n);
            let ep = Epilogue::new(Some(&bias), Act::Silu);
            let run = |m: usize| {
                let rows: Vec<f32> = (0..m).flat_map(|_| a.iter().copied()).collect();
                let mut c = vec![f32::NAN; m * n];
                unsafe {
                    igemm(
                        m,
                        Rows::Dense {
                            base: rows.as_ptr(),
                            ld: k,
                        },
                        0,
                        &b,
                        c.as_mut_ptr(),
                        n,
                        0,
                        &ep,
                    )
                };
                c
            };
            let (one, tall) = (run(1), run(7));
            for j in 0..n {
                assert_eq!(
                    one[j].to_bits(),
                    tall[j].to_bits(),
                    "k{k} n{n} column {j}: {} vs {}",
                    one[j],
                    tall[j]
                );
            }
        }
    }

    #[test]
    fn dense_gemm_with_epilogue_matches_reference() {
        let mut s = 7u64;
        // k ≥ 256 splits the depth into blocks whose partial sums go through C.
        for &(m, k, n) in &[
            (1, 1, 1),
            (1, 300, 1000),
            (5, 3, 17),
            (13, 40, 33),
            (64, 27, 16),
            (100, 130, 70),
            (13, 600, 40),
            (7, 1100, 16),
        ] {
            let a: Vec<f32> = (0..m * k).map(|_| lcg(&mut s)).collect();
            let w: Vec<f32> = (0..k * n).map(|_| lcg(&mut s)).collect();
            let bias: Vec<f32> = (0..n).map(|_| lcg(&mut s)).collect();
            let res: Vec<f32> = (0..m * n).map(|_| lcg(&mut s)).collect();
            let b = PackedB::from_kn(&w, k, n);
            for (act, after) in [
                (Act::Relu, false),
                (Act::Silu, true),
                (Act::Identity, false),
            ] {
                let mut c = vec![f32::NAN; m * n];
                let ep = Epilogue::new(Some(&bias), act).with_residual(res.as_ptr(), n, after);
                unsafe {
                    igemm(
                        m,
                        Rows::Dense {
                            base: a.as_ptr(),
                            ld: k,
                        },
                        0,
                        &b,
                        c.as_mut_ptr(),
                        n,
                        0,
                        &ep,
                    )
                };
                for i in 0..m {
                    for j in 0..n {
                        let dot: f64 = (0..k)
                            .map(|kk| a[i * k + kk] as f64 * w[kk * n + j] as f64)
                            .sum();
                        let v = dot as f32 + bias[j];
                        let want = if after {
                            act.apply(v) + res[i * n + j]
                        } else {
                            act.apply(v + res[i * n + j])
                        };
                        let got = c[i * n + j];
                        assert!(
                            (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                            "m{m} k{k} n{n} [{i},{j}]: {got} vs {want}"
                        );
                    }
                }
            }
        }
    }
}
