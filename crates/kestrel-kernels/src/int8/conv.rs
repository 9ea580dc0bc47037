//! A statically quantized convolution (or linear layer, as a 1×1 conv) on NHWC f32 tensors.
//!
//! The input is quantized to u8 with the calibrated per-tensor scale and zero point (channels
//! padded to a multiple of four), the int8 GEMM runs over it (dense rows for 1×1, indirection
//! offsets otherwise, padding taps pointing at a row of zero points), and the epilogue writes
//! f32 with the per-channel weight scales, bias, activation and residual applied. Activations
//! between ops stay f32, so quantized and fp32 ops (depthwise, pooling, SE) mix freely.

use std::sync::Mutex;

use crate::act::Act;
use crate::conv::{ConvGeometry, OffsetCache, Pointwise};
use crate::int8::gemm::{padded_depth, qgemm, quantize_rows, QEpilogue, QPackedB, QRows, PAD};

/// A convolution with int8 weights, ready to run.
pub struct QConv2d {
    pub geom: ConvGeometry,
    packed: QPackedB,
    /// Input scale × weight scale, per output channel.
    scale: Vec<f32>,
    bias: Vec<f32>,
    pub act: Act,
    pub in_scale: f32,
    pub in_zero: u8,
    /// The quantized input's largest value (`ACT_MAX` for 8-bit, `ACT_MAX_7BIT` for 7-bit).
    pub in_max: u8,
    offsets: OffsetCache,
    /// `kp` bytes of the input zero point: what a padding tap reads.
    zero_row: Vec<u8>,
    /// The quantized input, reused between calls.
    scratch: Mutex<Vec<u8>>,
}

impl QConv2d {
    /// `weight`: int8 OIHW `[out, in, kh, kw]` within `±WEIGHT_MAX`, `w_scale` per output
    /// channel (`real = w_scale[o] · q`); the input is `in_scale · (q − in_zero)` with `q` in
    /// `0..=in_max`.
    ///
    /// # Panics
    /// For grouped convolutions (not quantized: they stay fp32) and mismatched sizes.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        geom: ConvGeometry,
        weight: &[i8],
        w_scale: &[f32],
        bias: Option<&[f32]>,
        act: Act,
        in_scale: f32,
        in_zero: u8,
        in_max: u8,
    ) -> Self {
        assert_eq!(geom.groups, 1, "int8 convs are ungrouped");
        assert!(
            in_zero <= in_max,
            "input zero point {in_zero} above its maximum {in_max}"
        );
        let [kh, kw] = geom.kernel;
        let cin = geom.in_ch;
        assert_eq!(
            weight.len(),
            geom.out_ch * cin * kh * kw,
            "int8 conv weight size"
        );
        assert_eq!(w_scale.len(), geom.out_ch, "int8 conv weight scales");
        let packed = QPackedB::pack(kh * kw, cin, geom.out_ch, |t, k, o| {
            weight[((o * cin + k) * kh + t / kw) * kw + t % kw]
        });
        let zero_row = vec![in_zero; packed.kp];
        QConv2d {
            geom,
            packed,
            scale: w_scale.iter().map(|s| s * in_scale).collect(),
            bias: bias.map_or_else(|| vec![0.0; geom.out_ch], <[f32]>::to_vec),
            act,
            in_scale,
            in_zero,
            in_max,
            offsets: OffsetCache::default(),
            zero_row,
            scratch: Mutex::new(Vec::new()),
        }
    }

    pub fn weight_bytes(&self) -> usize {
        self.packed.bytes()
    }

    /// As [`crate::Conv2d::forward`]: `x` is `[n, h, w, in_ch]` f32, `out` `[n, oh, ow, out_ch]`.
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
        let g = &self.geom;
        let (oh, ow) = g
            .output_hw(h, w)
            .unwrap_or_else(|| panic!("conv {:?} does not fit a {h}×{w} input", g.kernel));
        assert_eq!(x.len(), n * h * w * g.in_ch, "conv input size");
        assert_eq!(out.len(), n * oh * ow * g.out_ch, "conv output size");
        if let Some(r) = residual {
            assert_eq!(r.len(), out.len(), "residual size");
        }
        let mut q = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: `out` has the checked size and aliases neither input.
        unsafe {
            self.forward_with(
                &mut q,
                x,
                n,
                h,
                w,
                out.as_mut_ptr(),
                residual,
                add_after_act,
            )
        };
        (oh, ow)
    }

    /// Whether this is a 1×1 stride-1 conv (dense rows, the fused block's expand or projection).
    pub fn is_dense_pointwise(&self) -> bool {
        self.geom.is_pointwise()
    }

    /// The conv with `q` as the quantized input's buffer.
    ///
    /// # Safety
    /// Sizes as [`QConv2d::forward`] checks them (`out` valid for the output's size, aliasing
    /// neither input).
    #[allow(clippy::too_many_arguments)]
    unsafe fn forward_with(
        &self,
        q: &mut Vec<u8>,
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
        out: *mut f32,
        residual: Option<&[f32]>,
        add_after_act: bool,
    ) {
        let g = &self.geom;
        let (oh, ow) = g
            .output_hw(h, w)
            .unwrap_or_else(|| panic!("conv {:?} does not fit a {h}×{w} input", g.kernel));
        let kp = padded_depth(g.in_ch);
        let pixels = n * h * w;
        assert!(
            pixels * kp < PAD as usize,
            "input too large for 32-bit indirection"
        );
        q.resize(pixels * kp, 0);
        let (zero, max) = (self.in_zero, self.in_max);
        quantize_rows(x, pixels, g.in_ch, self.in_scale, zero, max, q, kp);
        let ep = QEpilogue::new(zero, max, &self.scale, Some(&self.bias), self.act).with_residual(
            residual.map_or(std::ptr::null(), |r| r.as_ptr()),
            g.out_ch,
            add_after_act,
        );
        let offsets;
        let rows = if g.is_pointwise() {
            QRows::Dense {
                base: q.as_ptr(),
                ld: kp,
            }
        } else {
            offsets = self.offsets.get(g, n, h, w, kp);
            QRows::Indirect {
                base: q.as_ptr(),
                offsets: &offsets,
                zero: self.zero_row.as_ptr(),
            }
        };
        // SAFETY: every row is a kp-byte pixel of `q` or the kp-byte zero row; `out` has the
        // checked size and aliases neither.
        qgemm(n * oh * ow, rows, &self.packed, out, g.out_ch, &ep);
    }
}

thread_local! {
    /// Each thread's quantized rows for [`Pointwise::rows`] (fused blocks run on every thread
    /// at once, so they cannot share the conv's own buffer).
    static ROWS_U8: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Pointwise for QConv2d {
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
        assert!(
            self.is_dense_pointwise(),
            "int8 rows of a conv that is not 1×1"
        );
        assert_eq!(
            x.len(),
            pixels * self.geom.in_ch,
            "int8 1×1 conv input size"
        );
        if let Some(r) = residual {
            assert_eq!(r.len(), pixels * self.geom.out_ch, "residual size");
        }
        ROWS_U8.with(|q| {
            self.forward_with(
                &mut q.borrow_mut(),
                x,
                1,
                1,
                pixels,
                out,
                residual,
                add_after_act,
            )
        });
    }
}
