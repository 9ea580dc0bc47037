//! 2-D convolution on NHWC, with weights packed once at load time.
//!
//! Dense and grouped convolutions run as [`igemm`](crate::gemm::igemm): the indirection
//! offsets (which input pixel each tap of each output pixel reads) depend only on the input
//! shape, so they are built once per shape and cached. Depthwise convolutions (groups = in =
//! out channels) run the direct kernel in [`crate::depthwise`]. Bias (folded BatchNorm),
//! activation and the residual add happen in the epilogue.

use std::sync::{Arc, Mutex};

use crate::act::Act;
use crate::depthwise::Depthwise;
use crate::gemm::{igemm, Epilogue, PackedB, Rows, PAD};
use crate::winograd::Winograd;
use crate::{SendConstPtr, SendPtr};

/// Shape and hyper-parameters of a convolution, PyTorch's meaning throughout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub in_ch: usize,
    pub out_ch: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// top, bottom, left, right (TF "same" padding is asymmetric).
    pub pad: [usize; 4],
    pub groups: usize,
    /// TensorFlow "same" padding, computed from each input's size (timm's `pad_same`:
    /// total max((⌈i/s⌉−1)·s + (k−1)·d + 1 − i, 0), the odd pixel after); `pad` is ignored.
    pub tf_same: bool,
}

impl ConvGeometry {
    /// The padding (top, bottom, left, right) used for an `h × w` input.
    pub fn pads(&self, h: usize, w: usize) -> [usize; 4] {
        if !self.tf_same {
            return self.pad;
        }
        let same = |i: usize, k: usize, s: usize, d: usize| {
            let total = ((i.div_ceil(s).max(1) - 1) * s + (k - 1) * d + 1).saturating_sub(i);
            (total / 2, total - total / 2)
        };
        let (t, b) = same(h, self.kernel[0], self.stride[0], self.dilation[0]);
        let (l, r) = same(w, self.kernel[1], self.stride[1], self.dilation[1]);
        [t, b, l, r]
    }

    /// Output height and width for an `h × w` input, or None when the kernel does not fit.
    pub fn output_hw(&self, h: usize, w: usize) -> Option<(usize, usize)> {
        let pad = self.pads(h, w);
        let span = |i: usize, p0: usize, p1: usize, k: usize, d: usize, s: usize| {
            let padded = i + p0 + p1;
            let reach = d * (k - 1) + 1;
            (padded >= reach).then(|| (padded - reach) / s + 1)
        };
        Some((
            span(
                h,
                pad[0],
                pad[1],
                self.kernel[0],
                self.dilation[0],
                self.stride[0],
            )?,
            span(
                w,
                pad[2],
                pad[3],
                self.kernel[1],
                self.dilation[1],
                self.stride[1],
            )?,
        ))
    }

    pub fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.in_ch && self.groups == self.out_ch
    }

    pub fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1] && self.stride == [1, 1] && (self.pad == [0; 4] || self.tf_same)
    }

    /// Multiply-accumulates for one image of `h × w`.
    pub fn macs(&self, h: usize, w: usize) -> u64 {
        let (oh, ow) = self.output_hw(h, w).unwrap_or((0, 0));
        (oh * ow * self.out_ch * (self.in_ch / self.groups) * self.kernel[0] * self.kernel[1])
            as u64
    }
}

/// The indirection offsets of a convolution for the last input shape it saw: for every output
/// pixel and tap, where the input pixel starts (`pixel · pixel_stride` elements), or [`PAD`].
/// The fp32 and int8 convs share it (their pixel strides differ: int8 pads channels to 4).
/// Tables are also looked up in [`shared_offsets`], so convs of one geometry share one, and a
/// training conv (a new [`Conv2d`] every step, since its weights change) does not rebuild it.
#[derive(Default)]
pub(crate) struct OffsetCache {
    last: Mutex<Option<((usize, usize, usize), Arc<Vec<u32>>)>>,
}

impl OffsetCache {
    pub(crate) fn get(
        &self,
        g: &ConvGeometry,
        n: usize,
        h: usize,
        w: usize,
        pixel_stride: usize,
    ) -> Arc<Vec<u32>> {
        let mut cache = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((shape, off)) = cache.as_ref() {
            if *shape == (n, h, w) {
                return off.clone();
            }
        }
        let off = conv_offsets(g, n, h, w, pixel_stride);
        *cache = Some(((n, h, w), off.clone()));
        off
    }
}

/// A conv's indirection offsets for an `n × h × w` input whose pixels are `pixel_stride`
/// elements apart (see [`OffsetCache`]), from [`shared_offsets`] or built.
pub(crate) fn conv_offsets(
    g: &ConvGeometry,
    n: usize,
    h: usize,
    w: usize,
    pixel_stride: usize,
) -> Arc<Vec<u32>> {
    let pad = g.pads(h, w);
    shared_offsets(geometry_key(0, g, n, h, w, pixel_stride), || {
        let (oh, ow) = g.output_hw(h, w).expect("checked by forward");
        let [kh, kw] = g.kernel;
        let mut off = Vec::with_capacity(n * oh * ow * kh * kw);
        for b in 0..n {
            for y in 0..oh {
                for x in 0..ow {
                    for i in 0..kh {
                        for j in 0..kw {
                            let iy =
                                (y * g.stride[0] + i * g.dilation[0]) as isize - pad[0] as isize;
                            let ix =
                                (x * g.stride[1] + j * g.dilation[1]) as isize - pad[2] as isize;
                            off.push(
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    PAD
                                } else {
                                    (((b * h + iy as usize) * w + ix as usize) * pixel_stride)
                                        as u32
                                },
                            );
                        }
                    }
                }
            }
        }
        off
    })
}

/// What determines an offset table: a kind tag (0: a conv's forward, 3: a row-merged conv's,
/// others for the training gradients' tables), then the shape and geometry numbers that table
/// depends on.
pub(crate) type OffsetKey = [usize; 16];

/// The [`OffsetKey`] of a table of kind `tag` for an `n × h × w` input with pixels
/// `pixel_stride` apart under geometry `g`.
fn geometry_key(
    tag: usize,
    g: &ConvGeometry,
    n: usize,
    h: usize,
    w: usize,
    pixel_stride: usize,
) -> OffsetKey {
    let pad = g.pads(h, w);
    [
        tag,
        n,
        h,
        w,
        pixel_stride,
        g.kernel[0],
        g.kernel[1],
        g.stride[0],
        g.stride[1],
        g.dilation[0],
        g.dilation[1],
        pad[0],
        pad[1],
        pad[2],
        pad[3],
        0,
    ]
}

/// Offset tables built recently, shared across convs and calls (least recently used first),
/// bounded by [`SHARED_OFFSET_TABLES`] tables and [`SHARED_OFFSET_BYTES`] bytes. Building a
/// table costs about as much as the GEMM on small images (LeNet-5: 7% of a training step).
static SHARED: Mutex<Vec<(OffsetKey, Arc<Vec<u32>>)>> = Mutex::new(Vec::new());
const SHARED_OFFSET_TABLES: usize = 32;
const SHARED_OFFSET_BYTES: usize = 48 << 20;

/// The table for `key`, from the shared cache or built by `build` (outside the lock).
pub(crate) fn shared_offsets(key: OffsetKey, build: impl FnOnce() -> Vec<u32>) -> Arc<Vec<u32>> {
    {
        let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = shared.iter().position(|(k, _)| *k == key) {
            let entry = shared.remove(i);
            let off = entry.1.clone();
            shared.push(entry);
            return off;
        }
    }
    let off = Arc::new(build());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    shared.push((key, off.clone()));
    let bytes =
        |s: &[(OffsetKey, Arc<Vec<u32>>)]| s.iter().map(|(_, o)| o.len() * 4).sum::<usize>();
    while shared.len() > 1
        && (shared.len() > SHARED_OFFSET_TABLES || bytes(&shared) > SHARED_OFFSET_BYTES)
    {
        shared.remove(0);
    }
    off
}

enum Weights {
    /// One packed B per group.
    Gemm(Vec<PackedB>),
    /// A conv over few input channels (a stem): B packed with one tap per kernel row, each
    /// `kw · in_ch` deep, run over a zero-padded copy of the input in which a kernel row's
    /// pixels are contiguous. The same sums in the same order as [`Weights::Gemm`], with a
    /// ninth (3×3) or a seventh (7×7) of the taps: a 3-channel tap is too short for the
    /// microkernel's per-tap overhead.
    RowMerged(PackedB),
    Depthwise(Depthwise),
    /// A 3×3 stride-1 conv as Winograd F(4×4, 3×3) (inference only: [`Conv2d::for_inference`]).
    Winograd(Winograd),
}

/// Whether [`Conv2d::for_inference`] may pick Winograd: unless `KESTREL_WINOGRAD=0`. Read once
/// per process.
fn winograd_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("KESTREL_WINOGRAD").ok().as_deref() != Some("0"))
}

/// Largest `kw · in_ch` run as [`Weights::RowMerged`]: a kernel row of at most a few vectors.
const ROW_MERGED_MAX_DEPTH: usize = 32;

thread_local! {
    /// Each thread's zero-padded copy of a row-merged conv's input, reused across calls.
    static PADDED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The offsets, into the `n × (h + pads) × (w + pads)` padded input, of every output row's
/// kernel rows (`kh` per output pixel): a [`Weights::RowMerged`] conv's indirection.
fn row_merged_offsets(g: &ConvGeometry, n: usize, h: usize, w: usize) -> Arc<Vec<u32>> {
    let pad = g.pads(h, w);
    shared_offsets(geometry_key(3, g, n, h, w, g.in_ch), || {
        let (oh, ow) = g.output_hw(h, w).expect("checked by forward");
        let (hp, wp) = (h + pad[0] + pad[1], w + pad[2] + pad[3]);
        let mut off = Vec::with_capacity(n * oh * ow * g.kernel[0]);
        for b in 0..n {
            for y in 0..oh {
                for x in 0..ow {
                    for i in 0..g.kernel[0] {
                        let iy = y * g.stride[0] + i * g.dilation[0];
                        off.push((((b * hp + iy) * wp + x * g.stride[1]) * g.in_ch) as u32);
                    }
                }
            }
        }
        off
    })
}

/// A convolution ready to run: packed weights, bias and activation.
pub struct Conv2d {
    pub geom: ConvGeometry,
    weights: Weights,
    bias: Vec<f32>,
    pub act: Act,
    offsets: OffsetCache,
    zero: Vec<f32>,
}

impl Conv2d {
    /// `weight` in PyTorch's OIHW layout `[out, in/groups, kh, kw]`; `bias` per output channel.
    pub fn new(geom: ConvGeometry, weight: &[f32], bias: Option<&[f32]>, act: Act) -> Self {
        let [kh, kw] = geom.kernel;
        let cin_g = geom.in_ch / geom.groups;
        let cout_g = geom.out_ch / geom.groups;
        assert_eq!(
            weight.len(),
            geom.out_ch * cin_g * kh * kw,
            "conv weight size"
        );
        let row_merged = geom.groups == 1
            && !geom.is_pointwise()
            && geom.dilation[1] == 1
            && kw > 1
            && kw * geom.in_ch <= ROW_MERGED_MAX_DEPTH;
        let weights = if geom.is_depthwise() {
            Weights::Depthwise(Depthwise::new(geom, weight))
        } else if row_merged {
            // Tap i is kernel row i; depth k is (kernel column k / in_ch, channel k % in_ch):
            // the (i, j, c) order of the per-pixel packing.
            let cin = geom.in_ch;
            Weights::RowMerged(PackedB::pack(kh, kw * cin, geom.out_ch, |i, k, o| {
                weight[((o * cin + k % cin) * kh + i) * kw + k / cin]
            }))
        } else {
            Weights::Gemm(
                (0..geom.groups)
                    .map(|g| {
                        PackedB::pack(kh * kw, cin_g, cout_g, |t, k, j| {
                            let o = g * cout_g + j;
                            weight[((o * cin_g + k) * kh + t / kw) * kw + t % kw]
                        })
                    })
                    .collect(),
            )
        };
        Conv2d {
            geom,
            weights,
            bias: bias.map_or_else(|| vec![0.0; geom.out_ch], <[f32]>::to_vec),
            act,
            offsets: OffsetCache::default(),
            zero: vec![0.0; geom.in_ch],
        }
    }

    /// [`Conv2d::new`] for the inference engine: a dense 3×3 stride-1 conv whose channel
    /// counts pay for it runs as Winograd F(2×2, 3×3) (the same result up to rounding, 4/9 of
    /// the multiplies). `KESTREL_WINOGRAD=0` keeps every conv direct. Training keeps
    /// [`Conv2d::new`], whose sums its backward pass and the PyTorch loop match reproduce.
    pub fn for_inference(
        geom: ConvGeometry,
        weight: &[f32],
        bias: Option<&[f32]>,
        act: Act,
    ) -> Self {
        let g = &geom;
        let tiles = (g.kernel == [3, 3]
            && g.stride == [1, 1]
            && g.dilation == [1, 1]
            && g.groups == 1
            && winograd_enabled())
        .then(|| crate::winograd::pays(g.in_ch, g.out_ch))
        .flatten();
        match tiles {
            Some(tiles) => Conv2d::winograd(geom, weight, bias, act, tiles),
            None => Conv2d::new(geom, weight, bias, act),
        }
    }

    /// A 3×3 stride-1 dense conv as Winograd with the given tiles, whatever [`Conv2d::for_inference`]
    /// would pick: for tests and measurements.
    #[doc(hidden)]
    pub fn winograd(
        geom: ConvGeometry,
        weight: &[f32],
        bias: Option<&[f32]>,
        act: Act,
        tiles: crate::winograd::Tiles,
    ) -> Self {
        let g = &geom;
        assert!(
            g.kernel == [3, 3] && g.stride == [1, 1] && g.dilation == [1, 1] && g.groups == 1,
            "Winograd takes dense 3×3 stride-1 convs"
        );
        assert_eq!(weight.len(), g.out_ch * g.in_ch * 9, "conv weight size");
        Conv2d {
            geom,
            weights: Weights::Winograd(Winograd::new(g.in_ch, g.out_ch, tiles, weight)),
            bias: bias.map_or_else(|| vec![0.0; geom.out_ch], <[f32]>::to_vec),
            act,
            offsets: OffsetCache::default(),
            zero: Vec::new(),
        }
    }

    /// Whether this conv runs as Winograd.
    pub fn is_winograd(&self) -> bool {
        matches!(self.weights, Weights::Winograd(_))
    }

    pub fn weight_bytes(&self) -> usize {
        match &self.weights {
            Weights::Gemm(bs) => bs.iter().map(PackedB::bytes).sum(),
            Weights::RowMerged(b) => b.bytes(),
            Weights::Depthwise(d) => d.bytes(),
            Weights::Winograd(wg) => wg.bytes(),
        }
    }

    /// Runs the convolution on `x` (`[n, h, w, in_ch]`) into `out` (`[n, oh, ow, out_ch]`),
    /// adding `residual` (same shape as `out`) before the activation, or after it when
    /// `add_after_act`. Returns (oh, ow).
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
        out: &mut [f32],
        residual: Option<&[f32]>,
        add_after_act: bool,
    ) -> (usize, usize) {
        let (oh, ow) = self
            .geom
            .output_hw(h, w)
            .unwrap_or_else(|| panic!("conv {:?} does not fit a {h}×{w} input", self.geom.kernel));
        assert_eq!(
            out.len(),
            n * oh * ow * self.geom.out_ch,
            "conv output size"
        );
        // SAFETY: `out` is a live slice of the output's size.
        unsafe { self.forward_raw(x, n, h, w, out.as_mut_ptr(), residual, add_after_act) }
    }

    /// [`Conv2d::forward`] into `n · oh · ow · out_ch` floats at `out`, which a dense (GEMM)
    /// conv writes without reading, so they may be uninitialised.
    ///
    /// # Safety
    /// `out` must hold the output's size; for a depthwise conv it must be initialised.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn forward_raw(
        &self,
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
        out: *mut f32,
        residual: Option<&[f32]>,
        add_after_act: bool,
    ) -> (usize, usize) {
        let g = &self.geom;
        let (oh, ow) = g
            .output_hw(h, w)
            .unwrap_or_else(|| panic!("conv {:?} does not fit a {h}×{w} input", g.kernel));
        let out_len = n * oh * ow * g.out_ch;
        assert_eq!(x.len(), n * h * w * g.in_ch, "conv input size");
        if let Some(r) = residual {
            assert_eq!(r.len(), out_len, "residual size");
        }
        assert!(
            x.len() < PAD as usize,
            "input too large for 32-bit indirection"
        );
        let ep = Epilogue::new(Some(&self.bias), self.act).with_residual(
            residual.map_or(std::ptr::null(), |r| r.as_ptr()),
            g.out_ch,
            add_after_act,
        );
        match &self.weights {
            Weights::Depthwise(d) => {
                let out = std::slice::from_raw_parts_mut(out, out_len);
                d.forward(x, n, h, w, out, oh, ow, &self.bias, &ep)
            }
            Weights::Winograd(wg) => wg.forward(x, n, h, w, g.pads(h, w), (oh, ow), out, &ep),
            Weights::RowMerged(packed) => {
                let pad = g.pads(h, w);
                let (hp, wp) = (h + pad[0] + pad[1], w + pad[2] + pad[3]);
                let cin = g.in_ch;
                let offsets = row_merged_offsets(g, n, h, w);
                PADDED.with(|buf| {
                    let mut buf = buf.borrow_mut();
                    buf.clear();
                    buf.resize(n * hp * wp * cin, 0.0);
                    for (b, img) in x.chunks_exact(h * w * cin).enumerate() {
                        for (y, row) in img.chunks_exact(w * cin).enumerate() {
                            let at = ((b * hp + y + pad[0]) * wp + pad[2]) * cin;
                            buf[at..at + w * cin].copy_from_slice(row);
                        }
                    }
                    let rows = Rows::Indirect {
                        base: buf.as_ptr(),
                        offsets: &offsets,
                        zero: buf.as_ptr(),
                    };
                    // SAFETY: every offset plus kw · in_ch stays inside the padded input (the
                    // output size follows from the same pads); `out` does not alias it.
                    igemm(n * oh * ow, rows, 0, packed, out, g.out_ch, 0, &ep);
                });
            }
            Weights::Gemm(packed) => {
                let m = n * oh * ow;
                let cin_g = g.in_ch / g.groups;
                let cout_g = g.out_ch / g.groups;
                let offsets;
                let rows = if g.is_pointwise() {
                    Rows::Dense {
                        base: x.as_ptr(),
                        ld: g.in_ch,
                    }
                } else {
                    offsets = self.offsets.get(g, n, h, w, g.in_ch);
                    Rows::Indirect {
                        base: x.as_ptr(),
                        offsets: &offsets,
                        zero: self.zero.as_ptr(),
                    }
                };
                for (gi, b) in packed.iter().enumerate() {
                    // SAFETY: shapes asserted above; `out` does not alias `x`.
                    igemm(m, rows, gi * cin_g, b, out, g.out_ch, gi * cout_g, &ep);
                }
            }
        }
        (oh, ow)
    }
}

/// Bytes of pointwise output one band of [`pointwise_then_depthwise`] keeps: half of one
/// core's L2 (1 MiB on the machines measured). 64–1024 KiB measured on mobilenetv2_100 and
/// efficientnet_b0 at batch 1 (`examples/fusion_speed`): 512 KiB the fastest on both.
const BAND_BYTES: usize = 512 << 10;

/// [`depthwise_fusion_pays`] only for expanded maps of at least this many bytes an image; smaller
/// ones stay in cache between two ordinary passes anyway.
const FUSE_MIN_BYTES: usize = 512 << 10;

/// The input rows `[r0, r1)` (inside an image of `h` rows) that output rows `y0..y1` of a
/// conv of geometry `g` read.
fn input_rows(g: &ConvGeometry, h: usize, y0: usize, y1: usize) -> (usize, usize) {
    let pad_top = g.pads(h, 1)[0];
    let reach = (g.kernel[0] - 1) * g.dilation[0];
    let s = g.stride[0];
    let r0 = (y0 * s).saturating_sub(pad_top).min(h);
    let r1 = ((y1 - 1) * s + reach + 1)
        .saturating_sub(pad_top)
        .clamp(r0, h);
    (r0, r1)
}

thread_local! {
    /// Each thread's band of pointwise output and of depthwise output (for the projection),
    /// reused across calls.
    static BAND: std::cell::RefCell<(Vec<f32>, Vec<f32>)> =
        const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// A dense 1×1 stride-1 conv as the expand or projection stage of
/// [`pointwise_then_depthwise`]: the fp32 [`Conv2d`] or the int8 [`crate::int8::QConv2d`].
pub trait Pointwise: Sync {
    fn in_ch(&self) -> usize;
    fn out_ch(&self) -> usize;
    /// `x` (`pixels × in_ch`) into `out` (`pixels × out_ch`), with the conv's own epilogue
    /// and `residual` (`pixels × out_ch`) added before or after the activation. Inside a pool
    /// task it runs on the calling thread.
    ///
    /// # Safety
    /// `out` must be valid for `pixels · out_ch` writes and alias neither `x` nor `residual`.
    unsafe fn rows(
        &self,
        x: &[f32],
        pixels: usize,
        out: *mut f32,
        residual: Option<&[f32]>,
        add_after_act: bool,
    );
}

impl Pointwise for Conv2d {
    fn in_ch(&self) -> usize {
        self.geom.in_ch
    }

    fn out_ch(&self) -> usize {
        self.geom.out_ch
    }

    unsafe fn rows(
        &self,
        x: &[f32],
        pixels: usize,
        out: *mut f32,
        residual: Option<&[f32]>,
        add_after_act: bool,
    ) {
        debug_assert!(self.is_dense_pointwise());
        self.forward_raw(x, 1, 1, pixels, out, residual, add_after_act);
    }
}

/// Whether [`pointwise_then_depthwise`] takes `expand` followed by `dw`.
pub fn fuses_with_depthwise(expand: &dyn Pointwise, dw: &Conv2d) -> bool {
    matches!(dw.weights, Weights::Depthwise(_)) && dw.geom.in_ch == expand.out_ch()
}

/// Whether running `expand` and `dw` fused ([`pointwise_then_depthwise`]) on `n` images of
/// `h × w` beats running them one after the other: the expanded map must be too big to stay in
/// cache between two passes (≥ 512 KiB an image), and the rows the bands recompute few (at most
/// a third more than the map has: small maps split into bands for every thread would recompute
/// most of their rows under a 5×5).
pub fn depthwise_fusion_pays(
    expand: &dyn Pointwise,
    dw: &Conv2d,
    n: usize,
    h: usize,
    w: usize,
) -> bool {
    let ce = expand.out_ch();
    if !fuses_with_depthwise(expand, dw) || h * w * ce * 4 < FUSE_MIN_BYTES {
        return false;
    }
    let (band, bands) = band_plan(ce, dw, n, h, w);
    let Some((oh, _)) = dw.geom.output_hw(h, w) else {
        return false;
    };
    let computed: usize = (0..bands)
        .map(|k| {
            let (r0, r1) = input_rows(&dw.geom, h, k * band, ((k + 1) * band).min(oh));
            r1 - r0
        })
        .sum();
    3 * computed <= 4 * h
}

/// Output rows per band of [`pointwise_then_depthwise`] (expanded maps of `ce` channels), and
/// bands per image: as many rows as fit BAND_BYTES of input rows, but enough bands for each
/// thread that can run them to have two.
fn band_plan(ce: usize, dw: &Conv2d, n: usize, h: usize, w: usize) -> (usize, usize) {
    let g = dw.geom;
    let (oh, _) = g.output_hw(h, w).unwrap_or((1, 1));
    let oh = oh.max(1);
    let reach = (g.kernel[0] - 1) * g.dilation[0];
    let in_rows = (BAND_BYTES / (w * ce * 4).max(1)).max(reach + 1);
    let mut band = ((in_rows - reach - 1) / g.stride[0] + 1).clamp(1, oh);
    let threads = crate::threads::available();
    let want = if threads > 1 {
        (2 * threads).div_ceil(n.max(1))
    } else {
        1
    };
    if oh.div_ceil(band) < want {
        band = oh.div_ceil(want).max(1);
    }
    (band, oh.div_ceil(band))
}

/// `expand` (a 1×1 stride-1 conv), then the depthwise conv `dw` over its output, then
/// optionally the 1×1 conv `project` over that, band by band: each task computes `expand`'s
/// output for the input rows one band of `dw`'s output rows reads (a block small enough for
/// L2), then `dw` on it (and `project` on that band), so the expanded map of an inverted
/// residual never goes out to memory. Bands recompute the rows they share (one or two per band
/// for a 3×3). `residual` and `add_after_act` belong to the last conv. The result equals the
/// convs run one after the other, bit for bit (each row is computed by the same kernels in the
/// same order). Returns the output's (oh, ow).
#[allow(clippy::too_many_arguments)]
pub fn pointwise_then_depthwise(
    expand: &dyn Pointwise,
    dw: &Conv2d,
    project: Option<&dyn Pointwise>,
    x: &[f32],
    n: usize,
    h: usize,
    w: usize,
    out: &mut [f32],
    residual: Option<&[f32]>,
    add_after_act: bool,
) -> (usize, usize) {
    assert!(
        fuses_with_depthwise(expand, dw),
        "not a pointwise → depthwise pair"
    );
    let Weights::Depthwise(d) = &dw.weights else {
        unreachable!("checked by fuses_with_depthwise")
    };
    let g = dw.geom;
    let (cin, ce) = (expand.in_ch(), expand.out_ch());
    if let Some(p) = project {
        assert!(
            p.in_ch() == ce,
            "the projection must be a 1×1 conv over the depthwise output"
        );
    }
    let cout = project.map_or(ce, |p| p.out_ch());
    assert_eq!(x.len(), n * h * w * cin, "conv input size");
    let (oh, ow) = g
        .output_hw(h, w)
        .unwrap_or_else(|| panic!("conv {:?} does not fit a {h}×{w} input", g.kernel));
    assert_eq!(out.len(), n * oh * ow * cout, "conv output size");
    if let Some(r) = residual {
        assert_eq!(r.len(), out.len(), "residual size");
    }
    let (band, bands) = band_plan(ce, dw, n, h, w);
    let res = residual.map_or(std::ptr::null(), |r| r.as_ptr());
    // The depthwise conv's epilogue: the residual is its own only without a projection.
    let ep = Epilogue::new(Some(&dw.bias), dw.act).with_residual(
        if project.is_some() {
            std::ptr::null()
        } else {
            res
        },
        ce,
        add_after_act,
    );
    let epp = SendConstPtr(&ep as *const Epilogue);
    let op = SendPtr(out.as_mut_ptr());
    let resp = SendConstPtr(res);
    crate::threads::parallel_for(n * bands, |t| {
        let (op, epp, resp) = (op, epp, resp);
        let (b, k) = (t / bands, t % bands);
        let (y0, y1) = (k * band, ((k + 1) * band).min(oh));
        let (r0, r1) = input_rows(&g, h, y0, y1);
        BAND.with(|bands_buf| {
            let (buf, mid) = &mut *bands_buf.borrow_mut();
            let len = (r1 - r0) * w * ce;
            if buf.capacity() < len {
                *buf = Vec::with_capacity(len);
            }
            let mid_len = (y1 - y0) * ow * ce;
            if project.is_some() && mid.capacity() < mid_len {
                *mid = Vec::with_capacity(mid_len);
            }
            let xs = &x[(b * h + r0) * w * cin..(b * h + r1) * w * cin];
            let (row0, row1) = (b * oh + y0, b * oh + y1);
            // SAFETY: a pointwise conv writes all of its outputs without reading them;
            // `buf` holds input rows r0..r1 of image b, every row these output rows reach;
            // `mid` holds output rows row0..row1; `out` and the residual hold all n·oh
            // rows, and each task writes only its own.
            unsafe {
                expand.rows(xs, (r1 - r0) * w, buf.as_mut_ptr(), None, false);
                match project {
                    None => d.rows(
                        buf.as_ptr(),
                        b * h + r0,
                        h,
                        w,
                        op.0,
                        0,
                        oh,
                        ow,
                        row0..row1,
                        &dw.bias,
                        &*epp.0,
                    ),
                    Some(p) => {
                        d.rows(
                            buf.as_ptr(),
                            b * h + r0,
                            h,
                            w,
                            mid.as_mut_ptr(),
                            row0,
                            oh,
                            ow,
                            row0..row1,
                            &dw.bias,
                            &*epp.0,
                        );
                        let mid = std::slice::from_raw_parts(mid.as_ptr(), mid_len);
                        let at = row0 * ow * cout;
                        let band_len = (row1 - row0) * ow * cout;
                        let r = (!resp.0.is_null())
                            .then(|| std::slice::from_raw_parts(resp.0.add(at), band_len));
                        p.rows(mid, (y1 - y0) * ow, op.0.add(at), r, add_after_act);
                    }
                }
            }
        });
    });
    (oh, ow)
}

impl Conv2d {
    /// Whether [`Conv2d::forward_then_depthwise`] takes this conv followed by `dw`.
    pub fn fuses_with_depthwise(&self, dw: &Conv2d) -> bool {
        self.is_dense_pointwise() && fuses_with_depthwise(self, dw)
    }

    /// Whether this is a 1×1 stride-1 ungrouped conv (a GEMM over pixels).
    pub fn is_dense_pointwise(&self) -> bool {
        self.geom.is_pointwise()
            && self.geom.groups == 1
            && matches!(self.weights, Weights::Gemm(_))
    }

    /// Whether this is a depthwise conv (the middle stage [`pointwise_then_depthwise`] takes).
    pub fn is_depthwise(&self) -> bool {
        matches!(self.weights, Weights::Depthwise(_))
    }

    /// [`pointwise_then_depthwise`] with fp32 convs throughout.
    #[allow(clippy::too_many_arguments)]
    pub fn forward_then_depthwise(
        &self,
        dw: &Conv2d,
        project: Option<&Conv2d>,
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
        out: &mut [f32],
        residual: Option<&[f32]>,
        add_after_act: bool,
    ) -> (usize, usize) {
        assert!(
            self.is_dense_pointwise(),
            "the expand conv must be a 1×1 conv"
        );
        if let Some(p) = project {
            assert!(
                p.is_dense_pointwise(),
                "the projection must be a 1×1 conv over the depthwise output"
            );
        }
        pointwise_then_depthwise(
            self,
            dw,
            project.map(|p| p as &dyn Pointwise),
            x,
            n,
            h,
            w,
            out,
            residual,
            add_after_act,
        )
    }
}

/// Direct NHWC reference convolution in f64, for tests.
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn reference_conv(
    g: &ConvGeometry,
    x: &[f32],
    n: usize,
    h: usize,
    w: usize,
    weight: &[f32],
    bias: &[f32],
) -> Vec<f64> {
    let (oh, ow) = g.output_hw(h, w).unwrap();
    let pad = g.pads(h, w);
    let [kh, kw] = g.kernel;
    let cin_g = g.in_ch / g.groups;
    let cout_g = g.out_ch / g.groups;
    let mut out = vec![0f64; n * oh * ow * g.out_ch];
    for b in 0..n {
        for y in 0..oh {
            for xo in 0..ow {
                for o in 0..g.out_ch {
                    let gi = o / cout_g;
                    let mut s = bias[o] as f64;
                    for i in 0..kh {
                        for j in 0..kw {
                            let iy =
                                (y * g.stride[0] + i * g.dilation[0]) as isize - pad[0] as isize;
                            let ix =
                                (xo * g.stride[1] + j * g.dilation[1]) as isize - pad[2] as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            for k in 0..cin_g {
                                let xv = x[((b * h + iy as usize) * w + ix as usize) * g.in_ch
                                    + gi * cin_g
                                    + k];
                                let wv = weight[((o * cin_g + k) * kh + i) * kw + j];
                                s += xv as f64 * wv as f64;
                            }
                        }
                    }
                    out[((b * oh + y) * ow + xo) * g.out_ch + o] = s;
                }
            }
        }
    }
    out
}
