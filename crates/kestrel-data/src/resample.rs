//! Pillow's separable fixed-point resampler (`Resample.c`), bit for bit, because torchvision's
//! `Resize` and `RandomResizedCrop` call it on PIL images.
//!
//! The arithmetic is Pillow's: 22 fractional bits per coefficient, `i32` sums, a horizontal pass
//! (only over the rows the vertical pass will read) rounded to 8 bits, then a vertical pass. The
//! loops are laid out for speed instead: all channels of a pixel in one kernel pass, and the
//! vertical pass accumulates whole rows into an `i32` line buffer so that it vectorises (with an
//! AVX2 build of the same loop chosen at run time). A [`Region`] lets a crop be resampled in
//! place, without copying it out first.

use std::f64::consts::PI;

use crate::image::Image;
use crate::transforms::Interpolation;

/// Pillow keeps 22 fractional bits in its 8-bit resampling coefficients.
const PRECISION_BITS: u32 = 32 - 8 - 2;
/// The rounding offset every sum starts from.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

pub(crate) struct ResampleFilter {
    support: f64,
    weight: fn(f64) -> f64,
}

fn box_weight(x: f64) -> f64 {
    if x > -0.5 && x <= 0.5 {
        1.0
    } else {
        0.0
    }
}

fn bilinear_weight(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

fn hamming_weight(x: f64) -> f64 {
    let x = x.abs();
    if x == 0.0 {
        return 1.0;
    }
    if x >= 1.0 {
        return 0.0;
    }
    let x = x * PI;
    x.sin() / x * (0.54 + 0.46 * x.cos())
}

/// Pillow's cubic convolution with a = -0.5 (Keys), not OpenCV's -0.75.
fn bicubic_weight(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        return 1.0;
    }
    let x = x * PI;
    x.sin() / x
}

fn lanczos_weight(x: f64) -> f64 {
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// The convolution filter for `interpolation`; `None` for nearest, which is not a convolution.
pub(crate) fn resample_filter(interpolation: Interpolation) -> Option<ResampleFilter> {
    let (support, weight): (f64, fn(f64) -> f64) = match interpolation {
        Interpolation::Nearest => return None,
        Interpolation::Box => (0.5, box_weight),
        Interpolation::Bilinear => (1.0, bilinear_weight),
        Interpolation::Hamming => (1.0, hamming_weight),
        Interpolation::Bicubic => (2.0, bicubic_weight),
        Interpolation::Lanczos => (3.0, lanczos_weight),
    };
    Some(ResampleFilter { support, weight })
}

/// Per output index along one axis: the first input index, how many inputs, and their
/// fixed-point weights (Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`).
struct AxisCoeffs {
    ksize: usize,
    starts: Vec<usize>,
    counts: Vec<usize>,
    weights: Vec<i32>,
}

impl AxisCoeffs {
    /// Output `i`'s first input index and its weights.
    #[inline(always)]
    fn kernel(&self, i: usize) -> (usize, &[i32]) {
        (
            self.starts[i],
            &self.weights[i * self.ksize..][..self.counts[i]],
        )
    }
}

fn to_fixed(w: f64) -> i32 {
    let scaled = w * f64::from(1u32 << PRECISION_BITS);
    if w < 0.0 {
        (-0.5 + scaled) as i32
    } else {
        (0.5 + scaled) as i32
    }
}

/// Pillow's `precompute_coeffs` in floating point: for each output index along one axis, the
/// first input index and the normalised weights of the inputs it reads. Downscaling widens the
/// kernel by the scale (PIL's antialiasing); PyTorch's `interpolate(..., antialias=True)`
/// computes the same weights, so this also serves float tensors (timm's position-embedding
/// resampling). `None` for nearest, which is not a convolution.
pub fn filter_weights(
    in_size: usize,
    out_size: usize,
    interpolation: Interpolation,
) -> Option<Vec<(usize, Vec<f64>)>> {
    let filter = resample_filter(interpolation)?;
    Some(float_coeffs(in_size, out_size, &filter).1)
}

/// The kernel size and, per output index, (first input index, normalised weights).
fn float_coeffs(
    in_size: usize,
    out_size: usize,
    filter: &ResampleFilter,
) -> (usize, Vec<(usize, Vec<f64>)>) {
    let scale = in_size as f64 / out_size as f64;
    // Downscaling widens the kernel by the scale: this is PIL's antialiasing.
    let filterscale = if scale < 1.0 { 1.0 } else { scale };
    let support = filter.support * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let ss = 1.0 / filterscale;
    let coeffs = (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            // C's (int) cast truncates toward zero, as `as i64` does.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let count = ((xmax - xmin).max(0) as usize).min(ksize);
            let mut k: Vec<f64> = (0..count)
                .map(|x| (filter.weight)(((x as i64 + xmin) as f64 - center + 0.5) * ss))
                .collect();
            let ww: f64 = k.iter().sum();
            if ww != 0.0 {
                k.iter_mut().for_each(|w| *w /= ww);
            }
            (xmin as usize, k)
        })
        .collect();
    (ksize, coeffs)
}

fn axis_coeffs(in_size: usize, out_size: usize, filter: &ResampleFilter) -> AxisCoeffs {
    let (ksize, float) = float_coeffs(in_size, out_size, filter);
    let mut coeffs = AxisCoeffs {
        ksize,
        starts: Vec::with_capacity(out_size),
        counts: Vec::with_capacity(out_size),
        weights: vec![0; out_size * ksize],
    };
    for (xx, (xmin, k)) in float.into_iter().enumerate() {
        for (x, w) in k.iter().enumerate() {
            coeffs.weights[xx * ksize + x] = to_fixed(*w);
        }
        coeffs.starts.push(xmin);
        coeffs.counts.push(k.len());
    }
    coeffs
}

/// Pillow's `clip8`: the sum with its 22 fractional bits dropped, saturated to 0..=255. Written
/// as a clamp (identical results) so that it vectorises.
#[inline(always)]
fn clip8(v: i32) -> u8 {
    (v.clamp(0, (1 << (PRECISION_BITS + 8)) - 1) >> PRECISION_BITS) as u8
}

/// A rectangle of an 8-bit image, read in place.
#[derive(Clone, Copy)]
pub(crate) struct Region<'a> {
    data: &'a [u8],
    /// Bytes per row of the underlying image.
    stride: usize,
    top: usize,
    left: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

impl<'a> Region<'a> {
    pub fn whole(img: &'a Image) -> Self {
        Region {
            data: &img.data,
            stride: img.width * img.channels,
            top: 0,
            left: 0,
            height: img.height,
            width: img.width,
            channels: img.channels,
        }
    }

    /// The `height` × `width` rectangle at (`top`, `left`), or `None` if it is empty or leaves
    /// the image.
    pub fn crop(
        img: &'a Image,
        top: usize,
        left: usize,
        height: usize,
        width: usize,
    ) -> Option<Self> {
        let inside = top + height <= img.height && left + width <= img.width;
        (inside && height > 0 && width > 0 && img.channels > 0).then(|| Region {
            top,
            left,
            height,
            width,
            ..Region::whole(img)
        })
    }

    #[inline(always)]
    fn row(&self, y: usize) -> &'a [u8] {
        let start = (self.top + y) * self.stride + self.left * self.channels;
        &self.data[start..start + self.width * self.channels]
    }

    fn to_image(self) -> Image {
        let mut data = Vec::with_capacity(self.height * self.width * self.channels);
        for y in 0..self.height {
            data.extend_from_slice(self.row(y));
        }
        Image::new(self.height, self.width, self.channels, data)
    }
}

/// Horizontal pass over rows `row0..row0 + rows` of `src`, rounded to 8 bits.
fn resample_horizontal(
    src: Region,
    out_w: usize,
    coeffs: &AxisCoeffs,
    row0: usize,
    rows: usize,
) -> Image {
    let ch = src.channels;
    let mut data = vec![0u8; rows * out_w * ch];
    #[cfg(target_arch = "x86_64")]
    let sse41 = std::is_x86_feature_detected!("sse4.1");
    #[cfg(target_arch = "x86_64")]
    if ch == 3 && sse41 {
        const GROUP: usize = 4;
        for (g, dst) in data.chunks_mut(GROUP * out_w * 3).enumerate() {
            let first = row0 + g * GROUP;
            // SAFETY: SSE4.1 support was detected above.
            unsafe {
                if dst.len() == GROUP * out_w * 3 {
                    horizontal_rgb_rows_sse41::<GROUP>(&src, first, dst, coeffs);
                } else {
                    for (r, one) in dst.chunks_exact_mut(out_w * 3).enumerate() {
                        horizontal_rgb_rows_sse41::<1>(&src, first + r, one, coeffs);
                    }
                }
            }
        }
        return Image::new(rows, out_w, ch, data);
    }
    for (y, dst) in data.chunks_exact_mut(out_w * ch).enumerate() {
        let row = src.row(row0 + y);
        if ch == 3 {
            for (xx, out) in dst.chunks_exact_mut(3).enumerate() {
                let (start, k) = coeffs.kernel(xx);
                let pixels = &row[start * 3..][..k.len() * 3];
                let (mut s0, mut s1, mut s2) = (HALF, HALF, HALF);
                for (p, &w) in pixels.chunks_exact(3).zip(k) {
                    s0 += i32::from(p[0]) * w;
                    s1 += i32::from(p[1]) * w;
                    s2 += i32::from(p[2]) * w;
                }
                out[0] = clip8(s0);
                out[1] = clip8(s1);
                out[2] = clip8(s2);
            }
        } else {
            for (xx, out) in dst.chunks_exact_mut(ch).enumerate() {
                let (start, k) = coeffs.kernel(xx);
                for (b, o) in out.iter_mut().enumerate() {
                    let mut ss = HALF;
                    for (x, &w) in k.iter().enumerate() {
                        ss += i32::from(row[(start + x) * ch + b]) * w;
                    }
                    *o = clip8(ss);
                }
            }
        }
    }
    Image::new(rows, out_w, ch, data)
}

/// `R` RGB rows of the horizontal pass at once, the three channel sums of each in one SSE
/// register: each tap loads a pixel as 4 bytes (R, G, B and the next pixel's R, whose lane is
/// ignored), widens them to `i32` and adds weight × pixel, the same integer arithmetic as the
/// scalar loop. Doing several rows per output column shares the kernel lookup and gives the CPU
/// independent sums to overlap. `dst` holds the `R` output rows back to back.
///
/// # Safety
/// The CPU must support SSE4.1.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.1")]
unsafe fn horizontal_rgb_rows_sse41<const R: usize>(
    src: &Region,
    row0: usize,
    dst: &mut [u8],
    coeffs: &AxisCoeffs,
) {
    use std::arch::x86_64::*;
    let rows: [&[u8]; R] = std::array::from_fn(|r| src.row(row0 + r));
    let out_line = dst.len() / R;
    // Pixels whose 4-byte load stays inside the row: index p with 3 p + 4 <= row length.
    let row_len = src.width * 3;
    let loadable = if row_len >= 4 {
        (row_len - 4) / 3 + 1
    } else {
        0
    };
    for xx in 0..out_line / 3 {
        let (start, k) = coeffs.kernel(xx);
        let vector_taps = k.len().min(loadable.saturating_sub(start));
        let mut acc = [_mm_set1_epi32(HALF); R];
        for (j, &w) in k[..vector_taps].iter().enumerate() {
            let at = (start + j) * 3;
            let weight = _mm_set1_epi32(w);
            for (a, row) in acc.iter_mut().zip(&rows) {
                // SAFETY: at + 4 <= row.len() because start + j < loadable.
                let bytes = unsafe { std::ptr::read_unaligned(row.as_ptr().add(at) as *const i32) };
                let pixel = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(bytes));
                *a = _mm_add_epi32(*a, _mm_mullo_epi32(pixel, weight));
            }
        }
        for (r, (a, row)) in acc.iter().zip(&rows).enumerate() {
            let out = &mut dst[r * out_line + xx * 3..][..3];
            if vector_taps == k.len() {
                // clip8 in three instructions: >> 22, then saturate to i16 and to u8.
                let v = _mm_srai_epi32::<{ PRECISION_BITS as i32 }>(*a);
                let v = _mm_packus_epi16(_mm_packs_epi32(v, v), v);
                let bytes = (_mm_cvtsi128_si32(v) as u32).to_le_bytes();
                out.copy_from_slice(&bytes[..3]);
            } else {
                // The last pixel of the row: its 4-byte load would leave the row.
                let mut sums = [0i32; 4];
                // SAFETY: `sums` is 16 writable bytes.
                unsafe { _mm_storeu_si128(sums.as_mut_ptr() as *mut __m128i, *a) };
                for (j, &w) in k.iter().enumerate().skip(vector_taps) {
                    let p = &row[(start + j) * 3..][..3];
                    for (s, &v) in sums.iter_mut().zip(p) {
                        *s += i32::from(v) * w;
                    }
                }
                for (o, &s) in out.iter_mut().zip(&sums) {
                    *o = clip8(s);
                }
            }
        }
    }
}

/// One output row of the vertical pass: the weighted sum of `k.len()` input rows.
#[inline(always)]
fn vertical_line(src: &Region, start: usize, k: &[i32], acc: &mut [i32], dst: &mut [u8]) {
    acc.fill(HALF);
    for (y, &w) in k.iter().enumerate() {
        for (a, &p) in acc.iter_mut().zip(src.row(start + y)) {
            *a += i32::from(p) * w;
        }
    }
    for (o, &a) in dst.iter_mut().zip(acc.iter()) {
        *o = clip8(a);
    }
}

/// [`vertical_line`] compiled for AVX2 (8 lanes of `i32` instead of SSE2's emulated multiply).
///
/// # Safety
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn vertical_line_avx2(
    src: &Region,
    start: usize,
    k: &[i32],
    acc: &mut [i32],
    dst: &mut [u8],
) {
    vertical_line(src, start, k, acc, dst)
}

/// Vertical pass; `row_shift` is how many leading input rows the horizontal pass skipped.
fn resample_vertical(src: Region, out_h: usize, coeffs: &AxisCoeffs, row_shift: usize) -> Image {
    let line = src.width * src.channels;
    let mut data = vec![0u8; out_h * line];
    let mut acc = vec![0i32; line];
    #[cfg(target_arch = "x86_64")]
    let avx2 = std::is_x86_feature_detected!("avx2");
    for (yy, dst) in data.chunks_exact_mut(line).enumerate() {
        let (start, k) = coeffs.kernel(yy);
        let start = start - row_shift;
        #[cfg(target_arch = "x86_64")]
        if avx2 {
            // SAFETY: AVX2 support was detected just above.
            unsafe { vertical_line_avx2(&src, start, k, &mut acc, dst) };
            continue;
        }
        vertical_line(&src, start, k, &mut acc, dst);
    }
    Image::new(out_h, src.width, src.channels, data)
}

/// Pillow's `ImagingResampleInner` on `src` (a whole image or a crop of one): separable,
/// horizontal pass first and only over the rows the vertical pass reads, 8-bit intermediate.
pub(crate) fn resample(src: Region, out_h: usize, out_w: usize, filter: &ResampleFilter) -> Image {
    let need_horizontal = out_w != src.width;
    let need_vertical = out_h != src.height;
    if !need_horizontal && !need_vertical {
        return src.to_image();
    }
    let vertical = axis_coeffs(src.height, out_h, filter);
    let first_row = vertical.starts[0];
    let last_row = vertical.starts[out_h - 1] + vertical.counts[out_h - 1];
    if !need_horizontal {
        return resample_vertical(src, out_h, &vertical, 0);
    }
    let horizontal = axis_coeffs(src.width, out_w, filter);
    let narrowed = resample_horizontal(src, out_w, &horizontal, first_row, last_row - first_row);
    if !need_vertical {
        return narrowed;
    }
    resample_vertical(Region::whole(&narrowed), out_h, &vertical, first_row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn random_image(rng: &mut StdRng, h: usize, w: usize, ch: usize) -> Image {
        let data = (0..h * w * ch).map(|_| rng.random::<u8>()).collect();
        Image::new(h, w, ch, data)
    }

    fn copy_out(img: &Image, top: usize, left: usize, h: usize, w: usize) -> Image {
        let ch = img.channels;
        let mut data = Vec::new();
        for y in top..top + h {
            data.extend_from_slice(&img.data[(y * img.width + left) * ch..][..w * ch]);
        }
        Image::new(h, w, ch, data)
    }

    /// Resampling a crop in place reads exactly the crop: same bytes as copying it out first
    /// (the copied-out path is the one checked against Pillow in tests/transforms_parity.rs).
    #[test]
    fn a_region_resamples_like_the_copied_crop() {
        let mut rng = StdRng::seed_from_u64(7);
        for interp in [
            Interpolation::Box,
            Interpolation::Bilinear,
            Interpolation::Hamming,
            Interpolation::Bicubic,
            Interpolation::Lanczos,
        ] {
            let filter = resample_filter(interp).unwrap();
            for ch in [1, 3] {
                for _ in 0..20 {
                    let (ih, iw) = (rng.random_range(1..60), rng.random_range(1..60));
                    let img = random_image(&mut rng, ih, iw, ch);
                    let h = rng.random_range(1..=img.height);
                    let w = rng.random_range(1..=img.width);
                    let top = rng.random_range(0..=img.height - h);
                    let left = rng.random_range(0..=img.width - w);
                    let (oh, ow) = (rng.random_range(1..50), rng.random_range(1..50));
                    let region = Region::crop(&img, top, left, h, w).unwrap();
                    let copied = copy_out(&img, top, left, h, w);
                    assert_eq!(
                        resample(region, oh, ow, &filter),
                        resample(Region::whole(&copied), oh, ow, &filter),
                        "{interp:?} {ch}ch {h}x{w}@({top},{left}) -> {oh}x{ow}"
                    );
                }
            }
        }
    }

    #[test]
    fn regions_outside_the_image_are_refused() {
        let img = Image::zeros(10, 8, 3);
        assert!(Region::crop(&img, 0, 0, 10, 8).is_some());
        assert!(Region::crop(&img, 1, 0, 10, 8).is_none());
        assert!(Region::crop(&img, 0, 1, 10, 8).is_none());
        assert!(Region::crop(&img, 0, 0, 0, 8).is_none());
    }

    /// `clip8` as a clamp agrees with Pillow's branchy original on every boundary.
    #[test]
    fn clip8_matches_pillow() {
        let pillow = |v: i32| -> u8 {
            if v >= (1 << PRECISION_BITS << 8) {
                255
            } else if v <= 0 {
                0
            } else {
                (v >> PRECISION_BITS) as u8
            }
        };
        let edges = [
            i32::MIN,
            -1,
            0,
            1,
            HALF,
            (1 << 30) - 1,
            1 << 30,
            (1 << 30) + 1,
            i32::MAX,
        ];
        let mut rng = StdRng::seed_from_u64(1);
        for v in edges
            .into_iter()
            .chain((0..10_000).map(|_| rng.random_range(i32::MIN..i32::MAX)))
        {
            assert_eq!(clip8(v), pillow(v), "{v}");
        }
    }
}
