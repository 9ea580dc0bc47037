//! Winograd F(m×m, 3×3) for dense 3×3 stride-1 convolutions (Lavin & Gray, "Fast Algorithms
//! for Convolutional Neural Networks", 2016), with m = 2 or 4.
//!
//! Each m×m block of output pixels (a tile) is computed from the (m+2)² input patch under it:
//! `Y = Aᵀ [Σ_c (G g Gᵀ) ⊙ (Bᵀ d B)] A`. The sum over input channels at each of the (m+2)²
//! transform points ξ is a GEMM, `M_ξ = V_ξ · U_ξ` (tiles × in_ch by in_ch × out_ch), so the
//! multiplies per output pixel drop from 9 to 16/4 = 4 (m = 2) or 36/16 = 2.25 (m = 4) per
//! channel pair, at the price of
//! three passes over memory: the input transform (`V`), the GEMMs (the ordinary microkernel
//! on packed `U`), and the output transform, whose epilogue adds the bias and the residual and
//! applies the activation as the direct conv's does.
//!
//! The transforms run on channel vectors (NHWC keeps a pixel's channels contiguous) with plain
//! adds and multiplies by small constants, so every ISA computes the same bits. The result
//! differs from the direct conv's by rounding only.

use crate::act::Act;
use crate::gemm::{igemm, Epilogue, PackedB, Rows};
use crate::{Isa, SendConstPtr, SendPtr};

/// The two tile sizes: F(4×4, 3×3) (6×6 input tiles, 36 points: 4× fewer multiplies) and
/// F(2×2, 3×3) (4×4 input tiles, 16 points: 2.25× fewer, with the direct conv's rounding).
/// The engine uses F(2×2) ([`pays`]); F(4×4) stays for measurement ([`crate::Conv2d::winograd`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tiles {
    F4,
    F2,
}

impl Tiles {
    fn input(self) -> usize {
        match self {
            Tiles::F4 => 6,
            Tiles::F2 => 4,
        }
    }
    fn output(self) -> usize {
        self.input() - 2
    }
    fn points(self) -> usize {
        self.input() * self.input()
    }
}

/// Output pixels per GEMM task row block: keeps a block of `V_ξ` rows in L2.
const GEMM_ROWS: usize = 192;

/// A 3×3 stride-1 conv's weights transformed and packed for [`Winograd::forward`].
pub(crate) struct Winograd {
    in_ch: usize,
    out_ch: usize,
    tiles: Tiles,
    /// `U_ξ = (G g Gᵀ)_ξ` as `[in_ch][out_ch]`, one packed matrix per transform point.
    u: Vec<PackedB>,
}

/// Whether a conv of this shape runs as Winograd in the inference engine, and with which tiles.
/// Measured with `examples/conv_speed` (resnet shapes, 2 threads): the transforms cost about
/// one memory pass each over the input and output, which pays once both channel counts are at
/// least 32; past 256 × 256 channels the transformed weight matrices no longer stay in cache
/// between tiles at batch 1. Always F(2×2): F(4×4) is faster (resnet50 b1 76 against 81 ms,
/// direct 89) but rounds ~3× more than the direct sum, and through a deep net that passes the
/// parity bar (random-init resnet101 at 224 px: 2.4e-4 of max|logit| against a bar of 1.8e-4,
/// where F(2×2) gives 1.1e-4 and the direct conv 9.5e-5).
pub(crate) fn pays(in_ch: usize, out_ch: usize) -> Option<Tiles> {
    ((32..=256).contains(&in_ch) && (32..=256).contains(&out_ch)).then_some(Tiles::F2)
}

impl Winograd {
    /// `weight` in OIHW, `[out_ch][in_ch][3][3]`.
    pub fn new(in_ch: usize, out_ch: usize, tiles: Tiles, weight: &[f32]) -> Self {
        assert_eq!(weight.len(), out_ch * in_ch * 9, "winograd weight size");
        // G (t × 3), in f64 so each U element is rounded once.
        const G4: [[f64; 3]; 6] = [
            [1.0 / 4.0, 0.0, 0.0],
            [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
            [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
            [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
            [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
            [0.0, 0.0, 1.0],
        ];
        const G2: [[f64; 3]; 4] = [
            [1.0, 0.0, 0.0],
            [0.5, 0.5, 0.5],
            [0.5, -0.5, 0.5],
            [0.0, 0.0, 1.0],
        ];
        let g_rows: &[[f64; 3]] = match tiles {
            Tiles::F4 => &G4,
            Tiles::F2 => &G2,
        };
        let (t_in, points) = (tiles.input(), tiles.points());
        // u[ξ][i][o]
        let mut u = vec![0f32; points * in_ch * out_ch];
        for o in 0..out_ch {
            for i in 0..in_ch {
                let g = &weight[(o * in_ch + i) * 9..][..9];
                // t = G g (t × 3), then U = t Gᵀ (t × t).
                let t: Vec<[f64; 3]> = g_rows
                    .iter()
                    .map(|gr| {
                        std::array::from_fn(|j| (0..3).map(|r| gr[r] * g[r * 3 + j] as f64).sum())
                    })
                    .collect();
                for a in 0..t_in {
                    for b in 0..t_in {
                        let v: f64 = (0..3).map(|j| t[a][j] * g_rows[b][j]).sum();
                        u[((a * t_in + b) * in_ch + i) * out_ch + o] = v as f32;
                    }
                }
            }
        }
        let u = (0..points)
            .map(|p| {
                let m = &u[p * in_ch * out_ch..][..in_ch * out_ch];
                PackedB::from_kn(m, in_ch, out_ch)
            })
            .collect();
        Winograd {
            in_ch,
            out_ch,
            tiles,
            u,
        }
    }

    pub fn bytes(&self) -> usize {
        self.u.iter().map(PackedB::bytes).sum()
    }

    /// The conv of `x` (`[n, h, w, in_ch]`, padded by `pad` = top, bottom, left, right) into
    /// `out` (`[n, oh, ow, out_ch]`), with `ep`'s bias, residual (row stride `out_ch`) and
    /// activation.
    ///
    /// # Safety
    /// `out` must be valid for `n · oh · ow · out_ch` writes and alias neither `x` nor the
    /// residual; `ep`'s pointers must cover `out_ch` columns (bias) and the output's rows
    /// (residual); `(oh, ow)` must be the output size of a 3×3 stride-1 conv with `pad`.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn forward(
        &self,
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
        pad: [usize; 4],
        (oh, ow): (usize, usize),
        out: *mut f32,
        ep: &Epilogue,
    ) {
        let (c, k) = (self.in_ch, self.out_ch);
        debug_assert_eq!(x.len(), n * h * w * c);
        let (points, out_tile) = (self.tiles.points(), self.tiles.output());
        let (ty, tx) = (oh.div_ceil(out_tile), ow.div_ceil(out_tile));
        let tiles = n * ty * tx;
        if tiles == 0 {
            return;
        }
        let geom = TileGeom {
            h,
            w,
            oh,
            ow,
            ty,
            tx,
            pad_top: pad[0],
            pad_left: pad[2],
            out_tile,
        };
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let (v, m) = &mut *s;
            // Every element is written by the transforms before it is read.
            if v.len() < points * tiles * c {
                v.resize(points * tiles * c, 0.0);
            }
            if m.len() < points * tiles * k {
                m.resize(points * tiles * k, 0.0);
            }
            let (vp, mp) = (SendPtr(v.as_mut_ptr()), SendPtr(m.as_mut_ptr()));
            let xp = SendConstPtr(x.as_ptr());
            let threads = crate::threads::available();
            let tile_tasks = tiles.min(4 * threads);
            let per_task = tiles.div_ceil(tile_tasks);
            let avx2 = Isa::detect() == Isa::Avx2;
            let f4 = self.tiles == Tiles::F4;

            // 1. V_ξ[tile][c] = (Bᵀ d B)_ξ.
            crate::threads::parallel_for(tiles.div_ceil(per_task), |task| {
                let (xp, vp) = (xp, vp);
                let range = task * per_task..((task + 1) * per_task).min(tiles);
                // SAFETY: each task writes its own tiles' rows of V; x is read in bounds.
                match (avx2, f4) {
                    (true, true) => input_tiles_avx2::<6>(xp.0, &geom, c, range, tiles, vp.0),
                    (true, false) => input_tiles_avx2::<4>(xp.0, &geom, c, range, tiles, vp.0),
                    (false, true) => input_tiles::<6>(xp.0, &geom, c, range, tiles, vp.0),
                    (false, false) => input_tiles::<4>(xp.0, &geom, c, range, tiles, vp.0),
                }
            });

            // 2. M_ξ = V_ξ · U_ξ, one GEMM per point, split into row blocks.
            // Row blocks of equal size, whole microkernel tiles each.
            let row_blocks = tiles.div_ceil(GEMM_ROWS);
            let block_rows = tiles.div_ceil(row_blocks).next_multiple_of(crate::gemm::MR);
            let row_blocks = tiles.div_ceil(block_rows);
            let plain = Epilogue::new(None, Act::Identity);
            let plain = PlainEpilogue(plain);
            crate::threads::parallel_for(points * row_blocks, |task| {
                let (vp, mp, plain) = (vp, mp, &plain);
                let (p, rb) = (task / row_blocks, task % row_blocks);
                let r0 = rb * block_rows;
                let rows = block_rows.min(tiles - r0);
                let a = Rows::Dense {
                    base: vp.0.add((p * tiles + r0) * c),
                    ld: c,
                };
                // SAFETY: V's block of rows is written above; each task owns its block of M.
                igemm(
                    rows,
                    a,
                    0,
                    &self.u[p],
                    mp.0.add((p * tiles + r0) * k),
                    k,
                    0,
                    &plain.0,
                );
            });

            // 3. out = epilogue(Aᵀ M A).
            let out = SendPtr(out);
            let (bias, res) = (SendConstPtr(ep.bias), SendConstPtr(ep.residual));
            let (act, after) = (ep.act, ep.add_after_act);
            crate::threads::parallel_for(tiles.div_ceil(per_task), |task| {
                let (mp, out, bias, res) = (mp, out, bias, res);
                let range = task * per_task..((task + 1) * per_task).min(tiles);
                let o = OutputArgs {
                    m: mp.0,
                    tiles,
                    k,
                    bias: bias.0,
                    res: res.0,
                    out: out.0,
                    act,
                    add_after_act: after,
                };
                // SAFETY: each task writes its own tiles' output pixels.
                match (avx2, f4) {
                    (true, true) => output_tiles_avx2::<6, 4>(&o, &geom, range),
                    (true, false) => output_tiles_avx2::<4, 2>(&o, &geom, range),
                    (false, true) => output_tiles::<6, 4>(&o, &geom, range),
                    (false, false) => output_tiles::<4, 2>(&o, &geom, range),
                }
            });
        });
    }
}

thread_local! {
    /// Each thread's V and M buffers, reused across calls.
    static SCRATCH: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// An identity epilogue shared by the GEMM tasks (its pointers are null).
struct PlainEpilogue(Epilogue);
// SAFETY: the epilogue's pointers are null, never dereferenced.
unsafe impl Sync for PlainEpilogue {}

/// Where the tiles lie: tile `t` is image `t / (ty·tx)`, tile row `(t / tx) % ty`, column `t % tx`.
struct TileGeom {
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    ty: usize,
    tx: usize,
    pad_top: usize,
    pad_left: usize,
    out_tile: usize,
}

impl TileGeom {
    /// (image, first output row, first output column) of tile `t`.
    fn origin(&self, t: usize) -> (usize, usize, usize) {
        let per_image = self.ty * self.tx;
        let (b, r) = (t / per_image, t % per_image);
        (
            b,
            (r / self.tx) * self.out_tile,
            (r % self.tx) * self.out_tile,
        )
    }
}

/// A 1-D input transform `Bᵀ d` on `L` lanes, for `T`-point input tiles.
#[inline(always)]
fn input_1d<const L: usize, const T: usize>(d: &[[f32; L]; T]) -> [[f32; L]; T] {
    let mut o = [[0f32; L]; T];
    for l in 0..L {
        if T == 6 {
            let [d0, d1, d2, d3, d4, d5] = [d[0][l], d[1][l], d[2][l], d[3][l], d[4][l], d[5][l]];
            o[0][l] = (4.0 * d0 + d4) - 5.0 * d2;
            o[1][l] = (d3 + d4) - 4.0 * (d1 + d2);
            o[2][l] = 4.0 * (d1 - d2) + (d4 - d3);
            o[3][l] = 2.0 * (d3 - d1) + (d4 - d2);
            o[4][l] = 2.0 * (d1 - d3) + (d4 - d2);
            o[5][l] = (4.0 * d1 + d5) - 5.0 * d3;
        } else {
            let [d0, d1, d2, d3] = [d[0][l], d[1][l], d[2][l], d[3][l]];
            o[0][l] = d0 - d2;
            o[1][l] = d1 + d2;
            o[2][l] = d2 - d1;
            o[3][l] = d1 - d3;
        }
    }
    o
}

/// A 1-D output transform `Aᵀ m` on `L` lanes: `T` points to `M` outputs.
#[inline(always)]
fn output_1d<const L: usize, const T: usize, const M: usize>(m: &[[f32; L]; T]) -> [[f32; L]; M] {
    let mut o = [[0f32; L]; M];
    for l in 0..L {
        if T == 6 {
            let (s12, d12) = (m[1][l] + m[2][l], m[1][l] - m[2][l]);
            let (s34, d34) = (m[3][l] + m[4][l], m[3][l] - m[4][l]);
            o[0][l] = m[0][l] + s12 + s34;
            o[1][l] = d12 + 2.0 * d34;
            o[2][l] = s12 + 4.0 * s34;
            o[3][l] = (d12 + 8.0 * d34) + m[5][l];
        } else {
            o[0][l] = (m[0][l] + m[1][l]) + m[2][l];
            o[1][l] = (m[1][l] - m[2][l]) - m[3][l];
        }
    }
    o
}

/// Transforms `L` channels from `c0` of one tile into V.
#[inline(always)]
unsafe fn input_tile<const L: usize, const T: usize>(
    x: *const f32,
    g: &TileGeom,
    c: usize,
    c0: usize,
    tile: usize,
    tiles: usize,
    v: *mut f32,
) {
    let (b, oy, ox) = g.origin(tile);
    let mut d = [[[0f32; L]; T]; T];
    for (a, row) in d.iter_mut().enumerate() {
        let iy = (oy + a).wrapping_sub(g.pad_top);
        if iy >= g.h {
            continue;
        }
        for (j, px) in row.iter_mut().enumerate() {
            let ix = (ox + j).wrapping_sub(g.pad_left);
            if ix >= g.w {
                continue;
            }
            let p = x.add(((b * g.h + iy) * g.w + ix) * c + c0);
            *px = std::ptr::read_unaligned(p as *const [f32; L]);
        }
    }
    // Columns, then rows: V = (Bᵀ d) B.
    let mut t = [[[0f32; L]; T]; T];
    for j in 0..T {
        let col = std::array::from_fn(|a| d[a][j]);
        for (a, r) in input_1d::<L, T>(&col).into_iter().enumerate() {
            t[a][j] = r;
        }
    }
    for (a, row) in t.iter().enumerate() {
        for (j, r) in input_1d::<L, T>(row).into_iter().enumerate() {
            let p = v.add(((a * T + j) * tiles + tile) * c + c0);
            std::ptr::write_unaligned(p as *mut [f32; L], r);
        }
    }
}

/// The input transform of tiles `range`; inlined into each ISA's entry point.
#[inline(always)]
unsafe fn input_tiles<const T: usize>(
    x: *const f32,
    g: &TileGeom,
    c: usize,
    range: std::ops::Range<usize>,
    tiles: usize,
    v: *mut f32,
) {
    for tile in range {
        let mut c0 = 0;
        while c0 + 8 <= c {
            input_tile::<8, T>(x, g, c, c0, tile, tiles, v);
            c0 += 8;
        }
        while c0 < c {
            input_tile::<1, T>(x, g, c, c0, tile, tiles, v);
            c0 += 1;
        }
    }
}

// Elsewhere this is the portable body (`Isa::detect` never says AVX2 there).
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "avx2,fma"))]
unsafe fn input_tiles_avx2<const T: usize>(
    x: *const f32,
    g: &TileGeom,
    c: usize,
    range: std::ops::Range<usize>,
    tiles: usize,
    v: *mut f32,
) {
    input_tiles::<T>(x, g, c, range, tiles, v)
}

/// What the output transform reads and writes.
struct OutputArgs {
    m: *const f32,
    tiles: usize,
    k: usize,
    bias: *const f32,
    res: *const f32,
    out: *mut f32,
    act: Act,
    add_after_act: bool,
}

/// Transforms `L` output channels from `k0` of one tile and stores its valid pixels.
#[inline(always)]
unsafe fn output_tile<const L: usize, const T: usize, const M: usize>(
    o: &OutputArgs,
    g: &TileGeom,
    k0: usize,
    tile: usize,
    act: impl Fn(&mut [f32; L]),
) {
    let k = o.k;
    let mut m = [[[0f32; L]; T]; T];
    for (a, row) in m.iter_mut().enumerate() {
        for (j, px) in row.iter_mut().enumerate() {
            let p = o.m.add(((a * T + j) * o.tiles + tile) * k + k0);
            *px = std::ptr::read_unaligned(p as *const [f32; L]);
        }
    }
    // Columns, then rows: Y = (Aᵀ m) A.
    let mut t = [[[0f32; L]; T]; M];
    for j in 0..T {
        let col = std::array::from_fn(|a| m[a][j]);
        for (a, r) in output_1d::<L, T, M>(&col).into_iter().enumerate() {
            t[a][j] = r;
        }
    }
    let bias: [f32; L] = if o.bias.is_null() {
        [0.0; L]
    } else {
        std::ptr::read_unaligned(o.bias.add(k0) as *const [f32; L])
    };
    let (b, oy, ox) = g.origin(tile);
    for (dy, row) in t.iter().enumerate() {
        let y = oy + dy;
        if y >= g.oh {
            break;
        }
        for (dx, mut v) in output_1d::<L, T, M>(row).into_iter().enumerate() {
            let xo = ox + dx;
            if xo >= g.ow {
                break;
            }
            let at = ((b * g.oh + y) * g.ow + xo) * k + k0;
            for l in 0..L {
                v[l] += bias[l];
            }
            if !o.res.is_null() {
                let r = std::ptr::read_unaligned(o.res.add(at) as *const [f32; L]);
                if o.add_after_act {
                    act(&mut v);
                    for l in 0..L {
                        v[l] += r[l];
                    }
                } else {
                    for l in 0..L {
                        v[l] += r[l];
                    }
                    act(&mut v);
                }
            } else {
                act(&mut v);
            }
            std::ptr::write_unaligned(o.out.add(at) as *mut [f32; L], v);
        }
    }
}

unsafe fn output_tiles<const T: usize, const M: usize>(
    o: &OutputArgs,
    g: &TileGeom,
    range: std::ops::Range<usize>,
) {
    let act = o.act;
    for tile in range {
        let mut k0 = 0;
        while k0 + 8 <= o.k {
            output_tile::<8, T, M>(o, g, k0, tile, |v| {
                v.iter_mut().for_each(|x| *x = act.apply(*x))
            });
            k0 += 8;
        }
        while k0 < o.k {
            output_tile::<1, T, M>(o, g, k0, tile, |v| v[0] = act.apply(v[0]));
            k0 += 1;
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn output_tiles_avx2<const T: usize, const M: usize>(
    o: &OutputArgs,
    g: &TileGeom,
    range: std::ops::Range<usize>,
) {
    use std::arch::x86_64::*;
    let act = o.act;
    let vec_act = |v: &mut [f32; 8]| {
        if act != Act::Identity {
            let r = crate::act::avx2::apply(act, _mm256_loadu_ps(v.as_ptr()));
            _mm256_storeu_ps(v.as_mut_ptr(), r);
        }
    };
    for tile in range {
        let mut k0 = 0;
        while k0 + 8 <= o.k {
            output_tile::<8, T, M>(o, g, k0, tile, vec_act);
            k0 += 8;
        }
        while k0 < o.k {
            output_tile::<1, T, M>(o, g, k0, tile, |v| v[0] = act.apply(v[0]));
            k0 += 1;
        }
    }
}

// Elsewhere the "AVX2" output entry point is the portable one (`Isa::detect` never says AVX2).
#[cfg(not(target_arch = "x86_64"))]
unsafe fn output_tiles_avx2<const T: usize, const M: usize>(
    o: &OutputArgs,
    g: &TileGeom,
    range: std::ops::Range<usize>,
) {
    output_tiles::<T, M>(o, g, range)
}
