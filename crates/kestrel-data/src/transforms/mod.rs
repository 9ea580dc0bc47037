//! Image transforms with the meaning torchvision's v1 transforms have on PIL images, plus timm's
//! per-model eval preprocessing, so a recipe written for torchvision or timm carries over.
//!
//! Deterministic ops are pure functions on [`Image`] (HWC `u8`) or [`Chw`] (CHW `f32`). Random ops
//! are small structs: `get_params` draws from a `StdRng` and `apply` uses what was drawn. The
//! arithmetic follows Pillow's C code (Resample.c, Geometry.c, Blend.c, Convert.c, Filter.c)
//! because torchvision calls Pillow for PIL images; `tests/transforms_parity.rs` states and checks
//! the agreement per op against fixtures made by `scripts/make_transform_fixtures.py`.

use std::borrow::Cow;
use std::f64::consts::PI;
use std::str::FromStr;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::image::Image;
use crate::resample::{resample, resample_filter, Region};
use crate::sample_transform::{Chw, SampleTransform};

/// ImageNet mean and std as timm and torchvision use them.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

pub(crate) fn invalid<T>(msg: impl Into<String>) -> Result<T> {
    Err(DataError::Invalid(msg.into()))
}

/// Rejects an image whose buffer does not match its shape (or that is empty), so that no op
/// below can index out of range on a hand-built `Image`.
pub fn check_image(img: &Image) -> Result<()> {
    let expected = img
        .height
        .checked_mul(img.width)
        .and_then(|n| n.checked_mul(img.channels));
    match expected {
        Some(n) if n > 0 && n == img.data.len() => Ok(()),
        _ => invalid(format!(
            "image of shape {}x{}x{} (HxWxC) does not match its {}-byte buffer or is empty",
            img.height,
            img.width,
            img.channels,
            img.data.len()
        )),
    }
}

/// Colour ops are defined for Pillow's "L" and "RGB" modes only.
fn check_color_image(img: &Image) -> Result<()> {
    check_image(img)?;
    if img.channels == 1 || img.channels == 3 {
        Ok(())
    } else {
        invalid(format!(
            "colour ops need 1 or 3 channels, got {}",
            img.channels
        ))
    }
}

/// A fill colour given as one value (for every channel) or one value per channel, as
/// torchvision's `_parse_fill` accepts it.
pub(crate) fn fill_pixel(fill: &[u8], channels: usize) -> Result<Vec<u8>> {
    match fill.len() {
        0 => Ok(vec![0; channels]),
        1 => Ok(vec![fill[0]; channels]),
        n if n == channels => Ok(fill.to_vec()),
        n => invalid(format!(
            "fill has {n} values but the image has {channels} channels (give 1 or {channels})"
        )),
    }
}

fn filled_image(height: usize, width: usize, pixel: &[u8]) -> Image {
    let data = pixel
        .iter()
        .copied()
        .cycle()
        .take(height * width * pixel.len())
        .collect();
    Image {
        height,
        width,
        channels: pixel.len(),
        data,
    }
}

// ---------------------------------------------------------------------------------------------
// Interpolation and PIL resampling
// ---------------------------------------------------------------------------------------------

/// Resampling filter, named as torchvision's `InterpolationMode` (and PIL's `Resampling`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interpolation {
    Nearest,
    Box,
    Bilinear,
    Hamming,
    Bicubic,
    Lanczos,
}

impl Interpolation {
    pub const NAMES: [&'static str; 6] = [
        "nearest", "box", "bilinear", "hamming", "bicubic", "lanczos",
    ];

    pub fn name(self) -> &'static str {
        match self {
            Interpolation::Nearest => "nearest",
            Interpolation::Box => "box",
            Interpolation::Bilinear => "bilinear",
            Interpolation::Hamming => "hamming",
            Interpolation::Bicubic => "bicubic",
            Interpolation::Lanczos => "lanczos",
        }
    }
}

impl FromStr for Interpolation {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        let all = [
            Interpolation::Nearest,
            Interpolation::Box,
            Interpolation::Bilinear,
            Interpolation::Hamming,
            Interpolation::Bicubic,
            Interpolation::Lanczos,
        ];
        let key = s.trim().to_ascii_lowercase();
        all.into_iter().find(|i| i.name() == key).ok_or_else(|| {
            DataError::Invalid(format!(
                "unknown interpolation '{s}'; valid: {}",
                Interpolation::NAMES.join(", ")
            ))
        })
    }
}

/// Copies one `ch`-byte pixel. Constant-length copies for 1 and 3 channels compile to plain
/// moves; a runtime-length `copy_from_slice` per pixel would call `memmove` each time.
#[inline(always)]
fn copy_pixel(dst: &mut [u8], at: usize, src: &[u8], from: usize, ch: usize) {
    match ch {
        3 => dst[at..at + 3].copy_from_slice(&src[from..from + 3]),
        1 => dst[at] = src[from],
        _ => dst[at..at + ch].copy_from_slice(&src[from..from + ch]),
    }
}

/// C's `COORD`: negative positions map to -1 (outside), others truncate.
fn coord(v: f64) -> Option<usize> {
    if v < 0.0 {
        None
    } else {
        Some(v as usize)
    }
}

/// Pillow's `ImagingScaleAffine`: nearest-neighbour for affine maps without rotation or shear
/// (used by `resize(NEAREST)` and by translations). Positions accumulate in `f64` exactly as the
/// C loop does, so rounding at pixel boundaries matches.
fn scale_affine(img: &Image, out_h: usize, out_w: usize, a: &[f64; 6], fill: &[u8]) -> Image {
    let ch = img.channels;
    let mut out = filled_image(out_h, out_w, fill);
    let mut xo = a[2] + a[0] * 0.5;
    let mut xtab = Vec::with_capacity(out_w);
    for _ in 0..out_w {
        xtab.push(coord(xo).filter(|&x| x < img.width));
        xo += a[0];
    }
    let mut yo = a[5] + a[4] * 0.5;
    for y in 0..out_h {
        if let Some(yi) = coord(yo).filter(|&y| y < img.height) {
            for (x, xi) in xtab.iter().enumerate() {
                if let Some(xi) = xi {
                    let src = (yi * img.width + xi) * ch;
                    let dst = (y * out_w + x) * ch;
                    copy_pixel(&mut out.data, dst, &img.data, src, ch);
                }
            }
        }
        yo += a[4];
    }
    out
}

fn check_fixed(a: &[f64; 6], x: usize, y: usize) -> bool {
    let (x, y) = (x as f64, y as f64);
    (x * a[0] + y * a[1] + a[2]).abs() < 32768.0 && (x * a[3] + y * a[4] + a[5]).abs() < 32768.0
}

fn fix16(v: f64) -> i32 {
    (v * 65536.0 + 0.5).floor() as i32
}

/// Pillow's `affine_fixed`: nearest neighbour with 16.16 fixed-point source positions.
fn affine_fixed(img: &Image, a: &[f64; 6], fill: &[u8]) -> Image {
    let ch = img.channels;
    let (w, h) = (img.width as i32, img.height as i32);
    let mut out = filled_image(img.height, img.width, fill);
    let (a0, a1, a3, a4) = (fix16(a[0]), fix16(a[1]), fix16(a[3]), fix16(a[4]));
    let mut a2 = fix16(a[2] + a[0] * 0.5 + a[1] * 0.5);
    let mut a5 = fix16(a[5] + a[3] * 0.5 + a[4] * 0.5);
    for y in 0..img.height {
        let (mut xx, mut yy) = (a2, a5);
        for x in 0..img.width {
            let (xin, yin) = (xx >> 16, yy >> 16);
            if (0..w).contains(&xin) && (0..h).contains(&yin) {
                let src = (yin as usize * img.width + xin as usize) * ch;
                let dst = (y * img.width + x) * ch;
                copy_pixel(&mut out.data, dst, &img.data, src, ch);
            }
            xx = xx.wrapping_add(a0);
            yy = yy.wrapping_add(a3);
        }
        a2 = a2.wrapping_add(a1);
        a5 = a5.wrapping_add(a4);
    }
    out
}

/// Pillow's floating-point affine loop, used only when positions overflow 16.16 fixed point.
fn affine_float(img: &Image, a: &[f64; 6], fill: &[u8]) -> Image {
    let ch = img.channels;
    let mut out = filled_image(img.height, img.width, fill);
    let mut xo = a[2] + a[1] * 0.5 + a[0] * 0.5;
    let mut yo = a[5] + a[4] * 0.5 + a[3] * 0.5;
    for y in 0..img.height {
        let (mut xx, mut yy) = (xo, yo);
        for x in 0..img.width {
            let xin = coord(xx).filter(|&v| v < img.width);
            let yin = coord(yy).filter(|&v| v < img.height);
            if let (Some(xi), Some(yi)) = (xin, yin) {
                let src = (yi * img.width + xi) * ch;
                let dst = (y * img.width + x) * ch;
                copy_pixel(&mut out.data, dst, &img.data, src, ch);
            }
            xx += a[0];
            yy += a[3];
        }
        xo += a[1];
        yo += a[4];
    }
    out
}

/// PIL's `Image.transform(size, AFFINE, a, NEAREST, fillcolor=fill)` with the output the size of
/// the input: output pixel (x, y) samples input (a0 x + a1 y + a2, a3 x + a4 y + a5).
pub fn affine_nearest(img: &Image, a: &[f64; 6], fill: &[u8]) -> Result<Image> {
    check_image(img)?;
    let fill = fill_pixel(fill, img.channels)?;
    if a[1] == 0.0 && a[3] == 0.0 {
        return Ok(scale_affine(img, img.height, img.width, a, &fill));
    }
    let (w, h) = (img.width, img.height);
    let fixed_ok = check_fixed(a, 0, 0)
        && check_fixed(a, w, h)
        && check_fixed(a, 0, h)
        && check_fixed(a, w, 0);
    Ok(if fixed_ok {
        affine_fixed(img, a, &fill)
    } else {
        affine_float(img, a, &fill)
    })
}

/// Resize to exactly `height` × `width` as `PIL.Image.resize` does (what torchvision's `Resize`
/// calls on a PIL image): bilinear/bicubic/... antialias when downscaling.
pub fn resize(
    img: &Image,
    height: usize,
    width: usize,
    interpolation: Interpolation,
) -> Result<Image> {
    check_image(img)?;
    if height == 0 || width == 0 {
        return invalid(format!(
            "resize to {height}x{width}: sizes must be positive"
        ));
    }
    if height == img.height && width == img.width {
        return Ok(img.clone());
    }
    Ok(match resample_filter(interpolation) {
        None => {
            let a = [
                img.width as f64 / width as f64,
                0.0,
                0.0,
                0.0,
                img.height as f64 / height as f64,
                0.0,
            ];
            scale_affine(img, height, width, &a, &vec![0; img.channels])
        }
        Some(filter) => resample(Region::whole(img), height, width, &filter),
    })
}

/// The (height, width) torchvision's `Resize(size)` (an int: shorter side) gives: the long side
/// is `int(size * long / short)`, then capped by `max_size` as torchvision does.
pub fn shorter_side_size(
    height: usize,
    width: usize,
    size: usize,
    max_size: Option<usize>,
) -> Result<(usize, usize)> {
    if height == 0 || width == 0 || size == 0 {
        return invalid("shorter-side resize needs a non-empty image and a positive size");
    }
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    let mut new_short = size;
    let mut new_long = (size as f64 * long as f64 / short as f64) as usize;
    if let Some(max) = max_size {
        if max <= size {
            return invalid(format!(
                "max_size ({max}) must be larger than the requested shorter side ({size})"
            ));
        }
        if new_long > max {
            new_short = (max as f64 * new_short as f64 / new_long as f64) as usize;
            new_long = max;
        }
    }
    Ok(if width <= height {
        (new_long, new_short)
    } else {
        (new_short, new_long)
    })
}

/// torchvision's `Resize(size)` with an int: the shorter side becomes `size`.
pub fn resize_shorter(img: &Image, size: usize, interpolation: Interpolation) -> Result<Image> {
    check_image(img)?;
    let (h, w) = shorter_side_size(img.height, img.width, size, None)?;
    resize(img, h, w, interpolation)
}

// ---------------------------------------------------------------------------------------------
// Crops, padding, flips
// ---------------------------------------------------------------------------------------------

/// PIL's `Image.crop((left, top, left + width, top + height))`: the box may leave the image and
/// the outside is black (torchvision's `F.crop` on PIL).
pub fn crop(img: &Image, top: i64, left: i64, height: usize, width: usize) -> Result<Image> {
    crop_with_fill(img, top, left, height, width, &[0])
}

fn crop_with_fill(
    img: &Image,
    top: i64,
    left: i64,
    height: usize,
    width: usize,
    fill: &[u8],
) -> Result<Image> {
    check_image(img)?;
    if height == 0 || width == 0 {
        return invalid(format!("crop of {height}x{width}: sizes must be positive"));
    }
    let ch = img.channels;
    let mut out = filled_image(height, width, &fill_pixel(fill, ch)?);
    let x_lo = left.max(0);
    let x_hi = left.saturating_add(width as i64).min(img.width as i64);
    if x_lo >= x_hi {
        return Ok(out);
    }
    let run = (x_hi - x_lo) as usize * ch;
    for y in 0..height {
        let sy = top.saturating_add(y as i64);
        if sy < 0 || sy >= img.height as i64 {
            continue;
        }
        let src = (sy as usize * img.width + x_lo as usize) * ch;
        let dst = (y * width + (x_lo - left) as usize) * ch;
        out.data[dst..dst + run].copy_from_slice(&img.data[src..src + run]);
    }
    Ok(out)
}

/// Python's `int(round((size - crop) / 2.0))`: round half to even.
fn center_offset(size: usize, crop: usize) -> i64 {
    ((size as f64 - crop as f64) / 2.0).round_ties_even() as i64
}

/// torchvision's `CenterCrop`: pads with black when the crop is larger than the image, then
/// crops at `int(round((h - th) / 2.0))`.
pub fn center_crop(img: &Image, height: usize, width: usize) -> Result<Image> {
    center_crop_or_pad(img, height, width, &[0])
}

/// timm's `center_crop_or_pad`: torchvision's `CenterCrop` with a fill colour for the padding.
pub fn center_crop_or_pad(img: &Image, height: usize, width: usize, fill: &[u8]) -> Result<Image> {
    check_image(img)?;
    let mut img = Cow::Borrowed(img);
    if width > img.width || height > img.height {
        let grow = |crop: usize, size: usize| crop.saturating_sub(size);
        let (dw, dh) = (grow(width, img.width), grow(height, img.height));
        let padding = Padding {
            left: dw / 2,
            top: dh / 2,
            right: dw.div_ceil(2),
            bottom: dh.div_ceil(2),
        };
        img = Cow::Owned(pad(&img, padding, fill, PaddingMode::Constant)?);
        if img.width == width && img.height == height {
            return Ok(img.into_owned());
        }
    }
    let top = center_offset(img.height, height);
    let left = center_offset(img.width, width);
    crop(&img, top, left, height, width)
}

/// Padding in pixels per side (torchvision's `[left, top, right, bottom]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Padding {
    pub left: usize,
    pub top: usize,
    pub right: usize,
    pub bottom: usize,
}

impl Padding {
    /// torchvision's int padding: the same on all sides.
    pub fn uniform(p: usize) -> Self {
        Padding {
            left: p,
            top: p,
            right: p,
            bottom: p,
        }
    }
    /// torchvision's 2-element padding: `[left/right, top/bottom]`.
    pub fn symmetric(horizontal: usize, vertical: usize) -> Self {
        Padding {
            left: horizontal,
            top: vertical,
            right: horizontal,
            bottom: vertical,
        }
    }
}

/// torchvision's `padding_mode` (numpy's `np.pad` modes for all but constant).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaddingMode {
    #[default]
    Constant,
    Edge,
    Reflect,
    Symmetric,
}

impl FromStr for PaddingMode {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "constant" => Ok(PaddingMode::Constant),
            "edge" => Ok(PaddingMode::Edge),
            "reflect" => Ok(PaddingMode::Reflect),
            "symmetric" => Ok(PaddingMode::Symmetric),
            _ => invalid(format!(
                "unknown padding mode '{s}'; valid: constant, edge, reflect, symmetric"
            )),
        }
    }
}

/// Where padded coordinate `i` (relative to the first original pixel) reads from, or `None` for
/// the fill colour. Reflect/symmetric repeat periodically, as `np.pad` does for wide pads.
fn pad_source(i: i64, n: usize, mode: PaddingMode) -> Option<usize> {
    let n_i = n as i64;
    if (0..n_i).contains(&i) {
        return Some(i as usize);
    }
    match mode {
        PaddingMode::Constant => None,
        PaddingMode::Edge => Some(i.clamp(0, n_i - 1) as usize),
        PaddingMode::Reflect if n == 1 => Some(0),
        PaddingMode::Reflect => {
            let period = 2 * (n_i - 1);
            let k = i.rem_euclid(period);
            Some(if k >= n_i { period - k } else { k } as usize)
        }
        PaddingMode::Symmetric => {
            let period = 2 * n_i;
            let k = i.rem_euclid(period);
            Some(if k >= n_i { period - 1 - k } else { k } as usize)
        }
    }
}

/// torchvision's `F.pad` on a PIL image (constant: `ImageOps.expand`; others: `np.pad`).
pub fn pad(img: &Image, padding: Padding, fill: &[u8], mode: PaddingMode) -> Result<Image> {
    check_image(img)?;
    let ch = img.channels;
    let out_h = img.height + padding.top + padding.bottom;
    let out_w = img.width + padding.left + padding.right;
    let mut out = filled_image(out_h, out_w, &fill_pixel(fill, ch)?);
    let xs: Vec<Option<usize>> = (0..out_w)
        .map(|x| pad_source(x as i64 - padding.left as i64, img.width, mode))
        .collect();
    for y in 0..out_h {
        let Some(sy) = pad_source(y as i64 - padding.top as i64, img.height, mode) else {
            continue;
        };
        for (x, sx) in xs.iter().enumerate() {
            if let Some(sx) = sx {
                let src = (sy * img.width + sx) * ch;
                let dst = (y * out_w + x) * ch;
                copy_pixel(&mut out.data, dst, &img.data, src, ch);
            }
        }
    }
    Ok(out)
}

/// Mirror left-right.
pub fn hflip(img: &Image) -> Result<Image> {
    check_image(img)?;
    let ch = img.channels;
    let mut out = Image::zeros(img.height, img.width, ch);
    for (dst, src) in out
        .data
        .chunks_exact_mut(img.width * ch)
        .zip(img.data.chunks_exact(img.width * ch))
    {
        for x in 0..img.width {
            let s = (img.width - 1 - x) * ch;
            copy_pixel(dst, x * ch, src, s, ch);
        }
    }
    Ok(out)
}

/// Mirror top-bottom.
pub fn vflip(img: &Image) -> Result<Image> {
    check_image(img)?;
    let line = img.width * img.channels;
    let mut data = Vec::with_capacity(img.data.len());
    for row in img.data.chunks_exact(line).rev() {
        data.extend_from_slice(row);
    }
    Ok(img.with_data(data))
}

/// Quarter turns as PIL's `transpose(ROTATE_90/180/270)` (counter-clockwise).
fn rotate_quarters(img: &Image, quarters: u32) -> Image {
    let (h, w, ch) = (img.height, img.width, img.channels);
    let (oh, ow) = if quarters % 2 == 1 { (w, h) } else { (h, w) };
    let mut out = Image::zeros(oh, ow, ch);
    for y in 0..oh {
        for x in 0..ow {
            let (sy, sx) = match quarters % 4 {
                1 => (x, w - 1 - y),
                2 => (h - 1 - y, w - 1 - x),
                3 => (h - 1 - x, y),
                _ => (y, x),
            };
            let src = (sy * w + sx) * ch;
            let dst = (y * ow + x) * ch;
            copy_pixel(&mut out.data, dst, &img.data, src, ch);
        }
    }
    out
}

/// Python's float `%`: the result takes the sign of the divisor.
fn py_mod(a: f64, m: f64) -> f64 {
    let r = a % m;
    if r != 0.0 && ((r < 0.0) != (m < 0.0)) {
        r + m
    } else if r == 0.0 {
        0.0f64.copysign(m)
    } else {
        r
    }
}

/// Python's `round(x, 15)`, which PIL's `rotate` applies to its cos/sin entries.
fn round15(x: f64) -> f64 {
    format!("{x:.15}").parse().unwrap_or(x)
}

/// torchvision's `F.rotate(img, angle)` on PIL: `Image.rotate(angle, NEAREST, expand=False,
/// fillcolor=fill)`, counter-clockwise about the centre, output the size of the input.
pub fn rotate(img: &Image, angle_degrees: f64, fill: &[u8]) -> Result<Image> {
    check_image(img)?;
    if !angle_degrees.is_finite() {
        return invalid(format!(
            "rotation angle must be finite, got {angle_degrees}"
        ));
    }
    let angle = py_mod(angle_degrees, 360.0);
    if angle == 0.0 {
        return Ok(img.clone());
    }
    if angle == 180.0 {
        return Ok(rotate_quarters(img, 2));
    }
    if (angle == 90.0 || angle == 270.0) && img.width == img.height {
        return Ok(rotate_quarters(img, if angle == 90.0 { 1 } else { 3 }));
    }
    let (cx, cy) = (img.width as f64 / 2.0, img.height as f64 / 2.0);
    let r = -angle.to_radians();
    let mut m = [
        round15(r.cos()),
        round15(r.sin()),
        0.0,
        round15(-r.sin()),
        round15(r.cos()),
        0.0,
    ];
    m[2] += m[0] * -cx + m[1] * -cy;
    m[5] += m[3] * -cx + m[4] * -cy;
    m[2] += cx;
    m[5] += cy;
    affine_nearest(img, &m, fill)
}

/// torchvision's `_get_inverse_affine_matrix` (the map from output to input pixels).
pub fn inverse_affine_matrix(
    center: (f64, f64),
    angle: f64,
    translate: (f64, f64),
    scale: f64,
    shear: (f64, f64),
) -> [f64; 6] {
    let rot = angle.to_radians();
    let (sx, sy) = (shear.0.to_radians(), shear.1.to_radians());
    let (cx, cy) = center;
    let (tx, ty) = translate;
    let a = (rot - sy).cos() / sy.cos();
    let b = -(rot - sy).cos() * sx.tan() / sy.cos() - rot.sin();
    let c = (rot - sy).sin() / sy.cos();
    let d = -(rot - sy).sin() * sx.tan() / sy.cos() + rot.cos();
    let mut m = [d, -b, 0.0, -c, a, 0.0].map(|v| v / scale);
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty);
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty);
    m[2] += cx;
    m[5] += cy;
    m
}

/// torchvision's `F.affine` on PIL with nearest interpolation. `center` `None` means the image
/// centre `(w * 0.5, h * 0.5)`.
pub fn affine(
    img: &Image,
    angle: f64,
    translate: (f64, f64),
    scale: f64,
    shear: (f64, f64),
    center: Option<(f64, f64)>,
    fill: &[u8],
) -> Result<Image> {
    check_image(img)?;
    if scale <= 0.0 || !scale.is_finite() {
        return invalid(format!("affine scale must be positive, got {scale}"));
    }
    let center = center.unwrap_or((img.width as f64 * 0.5, img.height as f64 * 0.5));
    let m = inverse_affine_matrix(center, angle, translate, scale, shear);
    affine_nearest(img, &m, fill)
}

// ---------------------------------------------------------------------------------------------
// Colour
// ---------------------------------------------------------------------------------------------

/// ITU-R 601-2 luma with Pillow's 16-bit fixed point and rounding (`L24 >> 16`).
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 19595 + u32::from(g) * 38470 + u32::from(b) * 7471 + 0x8000) >> 16) as u8
}

fn gray_channel(img: &Image) -> Vec<u8> {
    if img.channels == 1 {
        return img.data.clone();
    }
    img.data
        .chunks_exact(3)
        .map(|p| luma(p[0], p[1], p[2]))
        .collect()
}

/// torchvision's `Grayscale(num_output_channels)`: PIL `convert("L")`, replicated to 3 channels
/// when asked.
pub fn to_grayscale(img: &Image, num_output_channels: usize) -> Result<Image> {
    check_color_image(img)?;
    let l = gray_channel(img);
    match num_output_channels {
        1 => Ok(Image {
            height: img.height,
            width: img.width,
            channels: 1,
            data: l,
        }),
        3 => Ok(Image {
            height: img.height,
            width: img.width,
            channels: 3,
            data: l.iter().flat_map(|&v| [v, v, v]).collect(),
        }),
        n => invalid(format!("num_output_channels must be 1 or 3, got {n}")),
    }
}

/// One value of PIL's `Image.blend(a, b, alpha)`: `a + alpha * (b - a)` in `f32`, truncated and
/// clipped.
#[inline(always)]
fn blend_value(a: u8, b: u8, alpha: f32) -> u8 {
    let t = f32::from(a) + alpha * (i32::from(b) - i32::from(a)) as f32;
    // Rust's float-to-int cast saturates: <= 0 gives 0, >= 255 gives 255, else it truncates,
    // which is Blend.c's clip; branch-free, so the loop vectorises.
    t as u8
}

/// PIL's `Image.blend(degenerate, image, factor)`, the core of every `ImageEnhance` class.
pub fn blend(degenerate: &Image, image: &Image, factor: f64) -> Result<Image> {
    check_image(image)?;
    if degenerate.height != image.height
        || degenerate.width != image.width
        || degenerate.channels != image.channels
        || degenerate.data.len() != image.data.len()
    {
        return invalid("blend needs two images of the same shape");
    }
    let alpha = factor as f32;
    let data = degenerate
        .data
        .iter()
        .zip(&image.data)
        .map(|(&a, &b)| blend_value(a, b, alpha))
        .collect();
    Ok(image.with_data(data))
}

fn check_factor(name: &str, factor: f64) -> Result<()> {
    if factor >= 0.0 && factor.is_finite() {
        Ok(())
    } else {
        invalid(format!("{name} factor must be non-negative, got {factor}"))
    }
}

/// `ImageEnhance.Brightness`: blend with black.
pub fn adjust_brightness(img: &Image, factor: f64) -> Result<Image> {
    check_color_image(img)?;
    check_factor("brightness", factor)?;
    let black = Image::zeros(img.height, img.width, img.channels);
    blend(&black, img, factor)
}

/// `ImageEnhance.Contrast`: blend with a flat image at `int(mean(L) + 0.5)`.
pub fn adjust_contrast(img: &Image, factor: f64) -> Result<Image> {
    check_color_image(img)?;
    check_factor("contrast", factor)?;
    let l = gray_channel(img);
    let sum: u64 = l.iter().map(|&v| u64::from(v)).sum();
    let mean = (sum as f64 / l.len() as f64 + 0.5) as u8;
    let flat = filled_image(img.height, img.width, &vec![mean; img.channels]);
    blend(&flat, img, factor)
}

/// `ImageEnhance.Color`: blend with the grayscale image (a no-op on grayscale input).
pub fn adjust_saturation(img: &Image, factor: f64) -> Result<Image> {
    check_color_image(img)?;
    check_factor("saturation", factor)?;
    if img.channels == 1 {
        return Ok(img.clone());
    }
    let gray = to_grayscale(img, 3)?;
    blend(&gray, img, factor)
}

/// Pillow's `rgb2hsv_row`: float/double mixture kept as in C so the 8-bit result matches.
fn rgb_to_hsv(r: u8, g: u8, b: u8) -> [u8; 3] {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    if maxc == minc {
        return [0, 0, maxc];
    }
    let cr = f32::from(maxc - minc);
    let s = cr / f32::from(maxc);
    let rc = f32::from(maxc - r) / cr;
    let gc = f32::from(maxc - g) / cr;
    let bc = f32::from(maxc - b) / cr;
    let h: f32 = if r == maxc {
        bc - gc
    } else if g == maxc {
        (2.0 + f64::from(rc) - f64::from(bc)) as f32
    } else {
        (4.0 + f64::from(gc) - f64::from(rc)) as f32
    };
    let h = ((f64::from(h) / 6.0 + 1.0) % 1.0) as f32;
    let to_u8 = |v: f32| ((f64::from(v) * 255.0) as i32).clamp(0, 255) as u8;
    [to_u8(h), to_u8(s), maxc]
}

/// C's `round`: half away from zero (Rust's `f64::round`).
fn c_round_u8(v: f64) -> u8 {
    (v.round() as i32).clamp(0, 255) as u8
}

/// Pillow's `hsv2rgb`, including its `float * float` product for `q`.
fn hsv_to_rgb(h: u8, s: u8, v: u8) -> [u8; 3] {
    if s == 0 {
        return [v, v, v];
    }
    let hf = f64::from(f32::from(h)) * 6.0 / 255.0;
    let i = hf.floor() as i32;
    let f = (hf - f64::from(i as f32)) as f32;
    let fs = (f64::from(s) / 255.0) as f32;
    let vf = f64::from(v);
    let p = c_round_u8(vf * (1.0 - f64::from(fs)));
    let q = c_round_u8(vf * (1.0 - f64::from(fs * f)));
    let t = c_round_u8(vf * (1.0 - f64::from(fs) * (1.0 - f64::from(f))));
    match i % 6 {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// torchvision's `adjust_hue` on PIL: convert to HSV, add `uint8(int32(hue * 255))` to H with
/// wrap-around, convert back. Grayscale images are returned unchanged.
pub fn adjust_hue(img: &Image, hue_factor: f64) -> Result<Image> {
    check_color_image(img)?;
    if !(-0.5..=0.5).contains(&hue_factor) {
        return invalid(format!("hue_factor ({hue_factor}) is not in [-0.5, 0.5]"));
    }
    if img.channels == 1 {
        return Ok(img.clone());
    }
    let shift = (hue_factor * 255.0) as i32 as u8;
    let data = img
        .data
        .chunks_exact(3)
        .flat_map(|p| {
            let [h, s, v] = rgb_to_hsv(p[0], p[1], p[2]);
            hsv_to_rgb(h.wrapping_add(shift), s, v)
        })
        .collect();
    Ok(img.with_data(data))
}

/// PIL's `ImageFilter.SMOOTH` (3x3 kernel 1 1 1 / 1 5 1 / 1 1 1, /13): border pixels are copied,
/// and the sum runs row y+1, y, y-1 in `f32` with +0.5 before truncation, as Filter.c does.
fn smooth(img: &Image) -> Image {
    let (h, w, ch) = (img.height, img.width, img.channels);
    if h < 3 || w < 3 {
        return img.clone();
    }
    let k_side = 1.0f32 / 13.0;
    let k_mid = 5.0f32 / 13.0;
    let line = w * ch;
    // Interior bytes of a row: pixel x's channel b sits at i = (x - 1) * ch + b of the
    // three views shifted by 0, ch and 2 ch (its left neighbour, itself, its right neighbour).
    let n = (w - 2) * ch;
    let taps = |row: &[u8]| -> [Vec<f32>; 3] {
        [0, ch, 2 * ch].map(|shift| {
            row[shift..shift + n]
                .iter()
                .map(|&v| f32::from(v))
                .collect()
        })
    };
    let mut out = img.clone();
    let mut rows: Vec<[Vec<f32>; 3]> = (0..3)
        .map(|y| taps(&img.data[y * line..][..line]))
        .collect();
    for y in 1..h - 1 {
        if y > 1 {
            // Slide the window down one row, converting only the new one.
            rows.rotate_left(1);
            rows[2] = taps(&img.data[(y + 1) * line..][..line]);
        }
        let [down, mid, up] = [&rows[0], &rows[1], &rows[2]];
        let dst = &mut out.data[y * line + ch..][..n];
        for (i, o) in dst.iter_mut().enumerate() {
            // Filter.c's order: row y+1, then y, then y-1, each a left-to-right dot product.
            let mut ss = 0.5f32;
            ss += up[0][i] * k_side + up[1][i] * k_side + up[2][i] * k_side;
            ss += mid[0][i] * k_side + mid[1][i] * k_mid + mid[2][i] * k_side;
            ss += down[0][i] * k_side + down[1][i] * k_side + down[2][i] * k_side;
            // Saturating cast: <= 0 gives 0, >= 255 gives 255, as Filter.c's clip.
            *o = ss as u8;
        }
    }
    out
}

/// `ImageEnhance.Sharpness`: blend with the SMOOTH-filtered image.
pub fn adjust_sharpness(img: &Image, factor: f64) -> Result<Image> {
    check_color_image(img)?;
    check_factor("sharpness", factor)?;
    blend(&smooth(img), img, factor)
}

// ---------------------------------------------------------------------------------------------
// Tensor conversion
// ---------------------------------------------------------------------------------------------

/// torchvision's `ToTensor`: `u8 / 255` in `f32`, HWC → CHW.
pub fn to_tensor(img: &Image) -> Result<Chw> {
    check_image(img)?;
    let (h, w, ch) = (img.height, img.width, img.channels);
    let plane = h * w;
    let mut data = vec![0f32; plane * ch];
    if ch == 3 {
        // One pass that de-interleaves RGB into three planes without index arithmetic.
        let (r, gb) = data.split_at_mut(plane);
        let (g, b) = gb.split_at_mut(plane);
        for (((px, r), g), b) in img.data.chunks_exact(3).zip(r).zip(g).zip(b) {
            *r = f32::from(px[0]) / 255.0;
            *g = f32::from(px[1]) / 255.0;
            *b = f32::from(px[2]) / 255.0;
        }
    } else {
        for (i, px) in img.data.chunks_exact(ch).enumerate() {
            for (c, &v) in px.iter().enumerate() {
                data[c * plane + i] = f32::from(v) / 255.0;
            }
        }
    }
    Ok(Chw {
        channels: ch,
        height: h,
        width: w,
        data,
    })
}

pub(crate) fn check_chw(x: &Chw) -> Result<()> {
    let n = x
        .channels
        .checked_mul(x.height)
        .and_then(|n| n.checked_mul(x.width));
    match n {
        Some(n) if n > 0 && n == x.data.len() => Ok(()),
        _ => invalid(format!(
            "sample of shape {}x{}x{} (CxHxW) does not match its {} values or is empty",
            x.channels,
            x.height,
            x.width,
            x.data.len()
        )),
    }
}

/// torchvision's `Normalize`: `(x - mean) / std` per channel in `f32`.
pub fn normalize(x: &mut Chw, mean: &[f32], std: &[f32]) -> Result<()> {
    check_chw(x)?;
    if mean.len() != x.channels || std.len() != x.channels {
        return invalid(format!(
            "normalize: mean has {} and std {} values for {} channels",
            mean.len(),
            std.len(),
            x.channels
        ));
    }
    if std.iter().any(|&s| s == 0.0 || !s.is_finite()) {
        return invalid("normalize: std must be non-zero and finite");
    }
    let plane = x.height * x.width;
    for (c, chunk) in x.data.chunks_exact_mut(plane).enumerate() {
        let (m, s) = (mean[c], std[c]);
        chunk.iter_mut().for_each(|v| *v = (*v - m) / s);
    }
    Ok(())
}

/// Inverse of [`normalize`] then of [`to_tensor`], for display: rounds and clips to `u8`.
pub fn denormalize_to_image(x: &Chw, mean: &[f32], std: &[f32]) -> Result<Image> {
    check_chw(x)?;
    if mean.len() != x.channels || std.len() != x.channels {
        return invalid("denormalize: mean/std length must equal the channel count");
    }
    let plane = x.height * x.width;
    let mut img = Image::zeros(x.height, x.width, x.channels);
    for c in 0..x.channels {
        for i in 0..plane {
            let v = (x.data[c * plane + i] * std[c] + mean[c]) * 255.0;
            img.data[i * x.channels + c] = v.round().clamp(0.0, 255.0) as u8;
        }
    }
    Ok(img)
}

// ---------------------------------------------------------------------------------------------
// Random ops
// ---------------------------------------------------------------------------------------------

/// `a + (b - a) * U[0, 1)`, as torch's `uniform_`; no panic when `a == b`.
pub(crate) fn uniform(rng: &mut StdRng, a: f64, b: f64) -> f64 {
    a + (b - a) * rng.random::<f64>()
}

/// An integer in `lo..=hi` (torch's `randint(lo, hi + 1)`).
pub(crate) fn randint_inclusive(rng: &mut StdRng, lo: usize, hi: usize) -> usize {
    if hi <= lo {
        lo
    } else {
        rng.random_range(lo..=hi)
    }
}

/// A standard normal draw (Box–Muller), for random erasing values.
pub(crate) fn standard_normal(rng: &mut StdRng) -> f32 {
    let u1 = 1.0 - rng.random::<f64>(); // (0, 1]: keeps ln finite
    let u2 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * PI * u2).cos()) as f32
}

fn check_range(name: &str, (lo, hi): (f64, f64), min: f64, max: f64) -> Result<()> {
    if lo.is_finite() && hi.is_finite() && min <= lo && lo <= hi && hi <= max {
        Ok(())
    } else {
        invalid(format!(
            "{name} must be an ordered pair within [{min}, {max}], got ({lo}, {hi})"
        ))
    }
}

fn check_probability(name: &str, p: f64) -> Result<()> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        invalid(format!("{name} must be a probability in [0, 1], got {p}"))
    }
}

/// A crop rectangle in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropBox {
    pub top: usize,
    pub left: usize,
    pub height: usize,
    pub width: usize,
}

/// torchvision's `RandomResizedCrop`.
#[derive(Clone, Debug, PartialEq)]
pub struct RandomResizedCrop {
    /// Output (height, width).
    pub size: (usize, usize),
    pub scale: (f64, f64),
    pub ratio: (f64, f64),
    pub interpolation: Interpolation,
}

impl RandomResizedCrop {
    pub fn new(
        size: (usize, usize),
        scale: (f64, f64),
        ratio: (f64, f64),
        interpolation: Interpolation,
    ) -> Result<Self> {
        if size.0 == 0 || size.1 == 0 {
            return invalid("random_resized_crop size must be positive");
        }
        check_range(
            "random_resized_crop scale",
            scale,
            f64::MIN_POSITIVE,
            f64::MAX,
        )?;
        check_range(
            "random_resized_crop ratio",
            ratio,
            f64::MIN_POSITIVE,
            f64::MAX,
        )?;
        Ok(RandomResizedCrop {
            size,
            scale,
            ratio,
            interpolation,
        })
    }

    /// torchvision's defaults: scale (0.08, 1), ratio (3/4, 4/3), bilinear.
    pub fn with_defaults(size: (usize, usize)) -> Result<Self> {
        Self::new(
            size,
            (0.08, 1.0),
            (3.0 / 4.0, 4.0 / 3.0),
            Interpolation::Bilinear,
        )
    }

    /// torchvision's `get_params`: 10 tries of (area, log-uniform aspect), then a centre crop
    /// with the aspect ratio clamped into `ratio`.
    pub fn get_params(&self, height: usize, width: usize, rng: &mut StdRng) -> CropBox {
        if height == 0 || width == 0 {
            return CropBox {
                top: 0,
                left: 0,
                height,
                width,
            };
        }
        let area = (height * width) as f64;
        let (log_lo, log_hi) = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..10 {
            let target_area = area * uniform(rng, self.scale.0, self.scale.1);
            let aspect = uniform(rng, log_lo, log_hi).exp();
            let w = (target_area * aspect).sqrt().round_ties_even() as usize;
            let h = (target_area / aspect).sqrt().round_ties_even() as usize;
            if 0 < w && w <= width && 0 < h && h <= height {
                let top = randint_inclusive(rng, 0, height - h);
                let left = randint_inclusive(rng, 0, width - w);
                return CropBox {
                    top,
                    left,
                    height: h,
                    width: w,
                };
            }
        }
        self.fallback_box(height, width)
    }

    fn fallback_box(&self, height: usize, width: usize) -> CropBox {
        let in_ratio = width as f64 / height as f64;
        let (min_r, max_r) = (
            self.ratio.0.min(self.ratio.1),
            self.ratio.0.max(self.ratio.1),
        );
        let (h, w) = if in_ratio < min_r {
            let h = (width as f64 / min_r).round_ties_even() as usize;
            (h.clamp(1, height), width)
        } else if in_ratio > max_r {
            let w = (height as f64 * max_r).round_ties_even() as usize;
            (height, w.clamp(1, width))
        } else {
            (height, width)
        };
        CropBox {
            top: (height - h) / 2,
            left: (width - w) / 2,
            height: h,
            width: w,
        }
    }

    pub fn apply_box(&self, img: &Image, b: CropBox) -> Result<Image> {
        check_image(img)?;
        let (out_h, out_w) = self.size;
        // Resample straight from the box (no copy of the crop); the result is the same as PIL's
        // crop-then-resize because the kernel only reads inside the box.
        if let (Some(filter), Some(region)) = (
            resample_filter(self.interpolation),
            Region::crop(img, b.top, b.left, b.height, b.width),
        ) {
            if out_h > 0 && out_w > 0 {
                return Ok(resample(region, out_h, out_w, &filter));
            }
        }
        let cropped = crop(img, b.top as i64, b.left as i64, b.height, b.width)?;
        resize(&cropped, out_h, out_w, self.interpolation)
    }

    pub fn apply(&self, img: &Image, rng: &mut StdRng) -> Result<Image> {
        check_image(img)?;
        let b = self.get_params(img.height, img.width, rng);
        self.apply_box(img, b)
    }
}

/// torchvision's `RandomCrop`.
#[derive(Clone, Debug, PartialEq)]
pub struct RandomCrop {
    /// Output (height, width).
    pub size: (usize, usize),
    pub padding: Option<Padding>,
    pub pad_if_needed: bool,
    pub fill: Vec<u8>,
    pub padding_mode: PaddingMode,
}

impl RandomCrop {
    pub fn new(size: (usize, usize), padding: Option<Padding>) -> Result<Self> {
        if size.0 == 0 || size.1 == 0 {
            return invalid("random_crop size must be positive");
        }
        Ok(RandomCrop {
            size,
            padding,
            pad_if_needed: false,
            fill: vec![0],
            padding_mode: PaddingMode::Constant,
        })
    }

    /// Padding as torchvision applies it before drawing the crop.
    pub fn padded(&self, img: &Image) -> Result<Image> {
        let mut img = match self.padding {
            Some(p) => pad(img, p, &self.fill, self.padding_mode)?,
            None => img.clone(),
        };
        let (th, tw) = self.size;
        if self.pad_if_needed && img.width < tw {
            let p = Padding::symmetric(tw - img.width, 0);
            img = pad(&img, p, &self.fill, self.padding_mode)?;
        }
        if self.pad_if_needed && img.height < th {
            let p = Padding::symmetric(0, th - img.height);
            img = pad(&img, p, &self.fill, self.padding_mode)?;
        }
        Ok(img)
    }

    pub fn apply(&self, img: &Image, rng: &mut StdRng) -> Result<Image> {
        check_image(img)?;
        let img = self.padded(img)?;
        let (th, tw) = self.size;
        if img.height < th || img.width < tw {
            return invalid(format!(
                "random crop {th}x{tw} is larger than the (padded) image {}x{}",
                img.height, img.width
            ));
        }
        let top = randint_inclusive(rng, 0, img.height - th);
        let left = randint_inclusive(rng, 0, img.width - tw);
        crop(&img, top as i64, left as i64, th, tw)
    }
}

/// torchvision's `RandomHorizontalFlip(p)`: flips when `U < p`.
pub fn random_hflip(img: Image, p: f64, rng: &mut StdRng) -> Result<Image> {
    if rng.random::<f64>() < p {
        hflip(&img)
    } else {
        Ok(img)
    }
}

/// torchvision's `RandomVerticalFlip(p)`.
pub fn random_vflip(img: Image, p: f64, rng: &mut StdRng) -> Result<Image> {
    if rng.random::<f64>() < p {
        vflip(&img)
    } else {
        Ok(img)
    }
}

/// torchvision's `ColorJitter`: factor ranges; `None` means the op is off.
#[derive(Clone, Debug, PartialEq)]
pub struct ColorJitter {
    pub brightness: Option<(f64, f64)>,
    pub contrast: Option<(f64, f64)>,
    pub saturation: Option<(f64, f64)>,
    pub hue: Option<(f64, f64)>,
}

/// The factors and order one `ColorJitter` call uses.
#[derive(Clone, Debug, PartialEq)]
pub struct ColorJitterParams {
    /// A permutation of 0..4: brightness, contrast, saturation, hue.
    pub order: [usize; 4],
    pub brightness: Option<f64>,
    pub contrast: Option<f64>,
    pub saturation: Option<f64>,
    pub hue: Option<f64>,
}

/// torchvision's `_check_input` for a scalar: `[max(center - v, 0), center + v]`, or off when
/// the range is the identity.
fn jitter_range(name: &str, v: f64, center: f64, clip_at_zero: bool) -> Result<Option<(f64, f64)>> {
    if !(v >= 0.0 && v.is_finite()) {
        return invalid(format!("color_jitter {name} must be non-negative, got {v}"));
    }
    let lo = if clip_at_zero {
        (center - v).max(0.0)
    } else {
        center - v
    };
    let hi = center + v;
    Ok(if lo == center && hi == center {
        None
    } else {
        Some((lo, hi))
    })
}

impl ColorJitter {
    /// Scalar form, as `ColorJitter(brightness, contrast, saturation, hue)`; hue ≤ 0.5.
    pub fn new(brightness: f64, contrast: f64, saturation: f64, hue: f64) -> Result<Self> {
        if !(0.0..=0.5).contains(&hue) {
            return invalid(format!("color_jitter hue must be in [0, 0.5], got {hue}"));
        }
        Ok(ColorJitter {
            brightness: jitter_range("brightness", brightness, 1.0, true)?,
            contrast: jitter_range("contrast", contrast, 1.0, true)?,
            saturation: jitter_range("saturation", saturation, 1.0, true)?,
            hue: jitter_range("hue", hue, 0.0, false)?,
        })
    }

    /// torchvision's `get_params`: a random order, then each factor uniform in its range.
    pub fn get_params(&self, rng: &mut StdRng) -> ColorJitterParams {
        let mut order = [0, 1, 2, 3];
        order.shuffle(rng);
        let mut draw = |r: Option<(f64, f64)>| r.map(|(a, b)| uniform(rng, a, b));
        ColorJitterParams {
            order,
            brightness: draw(self.brightness),
            contrast: draw(self.contrast),
            saturation: draw(self.saturation),
            hue: draw(self.hue),
        }
    }

    pub fn apply_params(img: &Image, p: &ColorJitterParams) -> Result<Image> {
        let mut img = img.clone();
        for op in p.order {
            img = match (op, p.brightness, p.contrast, p.saturation, p.hue) {
                (0, Some(f), ..) => adjust_brightness(&img, f)?,
                (1, _, Some(f), ..) => adjust_contrast(&img, f)?,
                (2, _, _, Some(f), _) => adjust_saturation(&img, f)?,
                (3, _, _, _, Some(f)) => adjust_hue(&img, f)?,
                _ => img,
            };
        }
        Ok(img)
    }

    pub fn apply(&self, img: &Image, rng: &mut StdRng) -> Result<Image> {
        let p = self.get_params(rng);
        Self::apply_params(img, &p)
    }
}

/// What random erasing writes into the rectangle.
#[derive(Clone, Debug, PartialEq)]
pub enum EraseValue {
    /// One value for all channels or one per channel (torchvision's number / tuple).
    Const(Vec<f32>),
    /// Standard-normal noise per pixel (torchvision's `value='random'`).
    Random,
}

/// torchvision's `RandomErasing`, applied to the normalised sample.
#[derive(Clone, Debug, PartialEq)]
pub struct RandomErasing {
    pub p: f64,
    pub scale: (f64, f64),
    pub ratio: (f64, f64),
    pub value: EraseValue,
}

/// A rectangle to erase, in CHW coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct EraseBox {
    pub top: usize,
    pub left: usize,
    pub height: usize,
    pub width: usize,
}

impl RandomErasing {
    pub fn new(p: f64, scale: (f64, f64), ratio: (f64, f64), value: EraseValue) -> Result<Self> {
        check_probability("random_erasing prob", p)?;
        check_range("random_erasing scale", scale, 0.0, 1.0)?;
        check_range("random_erasing ratio", ratio, f64::MIN_POSITIVE, f64::MAX)?;
        if let EraseValue::Const(v) = &value {
            if v.is_empty() || v.iter().any(|x| !x.is_finite()) {
                return invalid("random_erasing value must be finite numbers or 'random'");
            }
        }
        Ok(RandomErasing {
            p,
            scale,
            ratio,
            value,
        })
    }

    /// torchvision's defaults: p 0.5, scale (0.02, 0.33), ratio (0.3, 3.3), value 0.
    pub fn with_defaults() -> Self {
        RandomErasing {
            p: 0.5,
            scale: (0.02, 0.33),
            ratio: (0.3, 3.3),
            value: EraseValue::Const(vec![0.0]),
        }
    }

    /// torchvision's `get_params`: 10 tries; `None` means the image is left as is.
    pub fn get_params(&self, height: usize, width: usize, rng: &mut StdRng) -> Option<EraseBox> {
        let area = (height * width) as f64;
        let (log_lo, log_hi) = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..10 {
            let erase_area = area * uniform(rng, self.scale.0, self.scale.1);
            let aspect = uniform(rng, log_lo, log_hi).exp();
            let h = (erase_area * aspect).sqrt().round_ties_even() as usize;
            let w = (erase_area / aspect).sqrt().round_ties_even() as usize;
            if !(h < height && w < width) {
                continue;
            }
            let top = randint_inclusive(rng, 0, height - h);
            let left = randint_inclusive(rng, 0, width - w);
            return Some(EraseBox {
                top,
                left,
                height: h,
                width: w,
            });
        }
        None
    }

    pub fn apply(&self, x: &mut Chw, rng: &mut StdRng) -> Result<()> {
        check_chw(x)?;
        if let EraseValue::Const(v) = &self.value {
            if v.len() != 1 && v.len() != x.channels {
                return invalid(format!(
                    "random_erasing value has {} entries for {} channels",
                    v.len(),
                    x.channels
                ));
            }
        }
        if rng.random::<f64>() >= self.p {
            return Ok(());
        }
        if let Some(b) = self.get_params(x.height, x.width, rng) {
            erase(x, &b, &self.value, rng)?;
        }
        Ok(())
    }
}

/// torchvision's `F.erase`: writes the value (or fresh noise) into the box on every channel.
pub fn erase(x: &mut Chw, b: &EraseBox, value: &EraseValue, rng: &mut StdRng) -> Result<()> {
    check_chw(x)?;
    if b.top + b.height > x.height || b.left + b.width > x.width {
        return invalid("erase box leaves the sample");
    }
    let plane = x.height * x.width;
    for c in 0..x.channels {
        for y in b.top..b.top + b.height {
            for xx in b.left..b.left + b.width {
                let v = match value {
                    EraseValue::Random => standard_normal(rng),
                    EraseValue::Const(v) => v[if v.len() == 1 { 0 } else { c }],
                };
                x.data[c * plane + y * x.width + xx] = v;
            }
        }
    }
    Ok(())
}

/// timm's erasing fill: zeros, one normal colour per rectangle, or per-pixel normal noise.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimmEraseMode {
    Const,
    Rand,
    #[default]
    Pixel,
}

/// timm's `RandomErasing` (area in [min_area, max_area] split over `count` rectangles).
#[derive(Clone, Debug, PartialEq)]
pub struct TimmRandomErasing {
    pub probability: f64,
    pub min_area: f64,
    pub max_area: f64,
    pub log_aspect: (f64, f64),
    pub mode: TimmEraseMode,
    pub min_count: usize,
    pub max_count: usize,
}

impl TimmRandomErasing {
    /// `max_aspect` `None` means `1 / min_aspect`, as timm.
    pub fn new(
        probability: f64,
        area: (f64, f64),
        min_aspect: f64,
        max_aspect: Option<f64>,
        mode: TimmEraseMode,
        count: (usize, usize),
    ) -> Result<Self> {
        check_probability("random_erasing prob", probability)?;
        check_range("random_erasing scale", area, 0.0, 1.0)?;
        let max_aspect = max_aspect.unwrap_or(1.0 / min_aspect);
        check_range(
            "random_erasing ratio",
            (min_aspect, max_aspect),
            f64::MIN_POSITIVE,
            f64::MAX,
        )?;
        if count.0 == 0 || count.0 > count.1 {
            return invalid("random_erasing count must be 1 <= min <= max");
        }
        Ok(TimmRandomErasing {
            probability,
            min_area: area.0,
            max_area: area.1,
            log_aspect: (min_aspect.ln(), max_aspect.ln()),
            mode,
            min_count: count.0,
            max_count: count.1,
        })
    }

    fn fill(&self, x: &mut Chw, b: &EraseBox, rng: &mut StdRng) {
        let plane = x.height * x.width;
        let colour: Vec<f32> = match self.mode {
            TimmEraseMode::Rand => (0..x.channels).map(|_| standard_normal(rng)).collect(),
            _ => vec![0.0; x.channels],
        };
        for (c, &col) in colour.iter().enumerate() {
            for y in b.top..b.top + b.height {
                for xx in b.left..b.left + b.width {
                    let v = match self.mode {
                        TimmEraseMode::Pixel => standard_normal(rng),
                        _ => col,
                    };
                    x.data[c * plane + y * x.width + xx] = v;
                }
            }
        }
    }

    /// timm's `_erase`: proceeds when `U <= probability`.
    pub fn apply(&self, x: &mut Chw, rng: &mut StdRng) -> Result<()> {
        check_chw(x)?;
        if rng.random::<f64>() > self.probability {
            return Ok(());
        }
        let (h, w) = (x.height, x.width);
        let area = (h * w) as f64;
        let count = randint_inclusive(rng, self.min_count, self.max_count);
        for _ in 0..count {
            for _ in 0..10 {
                let target = uniform(rng, self.min_area, self.max_area) * area / count as f64;
                let aspect = uniform(rng, self.log_aspect.0, self.log_aspect.1).exp();
                let eh = (target * aspect).sqrt().round_ties_even() as usize;
                let ew = (target / aspect).sqrt().round_ties_even() as usize;
                if ew < w && eh < h {
                    let top = randint_inclusive(rng, 0, h - eh);
                    let left = randint_inclusive(rng, 0, w - ew);
                    let b = EraseBox {
                        top,
                        left,
                        height: eh,
                        width: ew,
                    };
                    self.fill(x, &b, rng);
                    break;
                }
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Channel handling and timm's eval transform
// ---------------------------------------------------------------------------------------------

/// Brings a decoded image to the channel count a model expects: gray → RGB by copying (PIL's
/// `convert("RGB")`), RGB → gray by luma.
pub fn to_channels(img: Image, channels: usize) -> Result<Image> {
    check_image(&img)?;
    match (img.channels, channels) {
        (a, b) if a == b => Ok(img),
        (1, 3) => Ok(img.to_rgb()),
        (3, 1) => to_grayscale(&img, 1),
        (a, b) => invalid(format!(
            "cannot convert a {a}-channel image to {b} channels"
        )),
    }
}

/// timm's `crop_mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CropMode {
    /// Shorter side to `floor(size / crop_pct)`, centre crop (the default).
    #[default]
    Center,
    /// Both sides to `floor(size / crop_pct)` ignoring aspect, centre crop.
    Squash,
    /// Longer side to `floor(size / crop_pct)`, pad with the mean colour, centre crop.
    Border,
    /// kestrel's, not timm's: resize, aspect ignored, to `round(size * crop_pct)` per side
    /// (skipped when the image has that size), then centre on a black canvas of the input size.
    /// LeNet-5 (crop_pct 0.875) sees 28×28 MNIST digits padded to 32×32, as in LeCun et al.
    /// 1998, and any other image as a 28×28 one.
    Pad,
}

impl CropMode {
    /// The name timm's `crop_mode` (and [`FromStr`]) uses.
    pub fn as_str(self) -> &'static str {
        match self {
            CropMode::Center => "center",
            CropMode::Squash => "squash",
            CropMode::Border => "border",
            CropMode::Pad => "pad",
        }
    }
}

impl FromStr for CropMode {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "center" | "centre" | "" => Ok(CropMode::Center),
            "squash" => Ok(CropMode::Squash),
            "border" => Ok(CropMode::Border),
            "pad" => Ok(CropMode::Pad),
            _ => invalid(format!(
                "unknown crop_mode '{s}'; valid: center, squash, border, pad"
            )),
        }
    }
}

/// timm's eval preprocessing derived from a model's pretrained config
/// (`transforms_imagenet_eval`): resize to `floor(size / crop_pct)`, centre crop to the input
/// size, `ToTensor`, `Normalize`.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalTransform {
    /// (channels, height, width), as timm's `input_size`.
    pub input_size: (usize, usize, usize),
    pub crop_pct: f64,
    pub interpolation: Interpolation,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub crop_mode: CropMode,
}

fn check_mean_std(channels: usize, mean: &[f32], std: &[f32]) -> Result<()> {
    if mean.len() != channels || std.len() != channels {
        return invalid(format!(
            "mean and std need {channels} values each (one per channel), got {} and {}",
            mean.len(),
            std.len()
        ));
    }
    if std.iter().any(|&s| !(s > 0.0 && s.is_finite())) || mean.iter().any(|m| !m.is_finite()) {
        return invalid("std values must be positive and mean values finite");
    }
    Ok(())
}

impl EvalTransform {
    pub fn from_model_config(
        input_size: (usize, usize, usize),
        crop_pct: f64,
        interpolation: Interpolation,
        mean: &[f32],
        std: &[f32],
        crop_mode: &str,
    ) -> Result<Self> {
        let (c, h, w) = input_size;
        if !(c == 1 || c == 3) || h == 0 || w == 0 {
            return invalid(format!(
                "input_size must be (1 or 3, H > 0, W > 0), got ({c}, {h}, {w})"
            ));
        }
        if !(crop_pct > 0.0 && crop_pct <= 1.0) {
            return invalid(format!("crop_pct must be in (0, 1], got {crop_pct}"));
        }
        check_mean_std(c, mean, std)?;
        Ok(EvalTransform {
            input_size,
            crop_pct,
            interpolation,
            mean: mean.to_vec(),
            std: std.to_vec(),
            crop_mode: crop_mode.parse()?,
        })
    }

    /// timm's `math.floor(img_size / crop_pct)` per side, (height, width).
    pub fn scale_size(&self) -> (usize, usize) {
        let f = |s: usize| (s as f64 / self.crop_pct).floor() as usize;
        (f(self.input_size.1), f(self.input_size.2))
    }

    /// Everything before `ToTensor`: the `u8` image the model's tensor is made from.
    pub fn apply_image(&self, img: Image) -> Result<Image> {
        let img = to_channels(img, self.input_size.0)?;
        let (_, h, w) = self.input_size;
        let (sh, sw) = self.scale_size();
        match self.crop_mode {
            CropMode::Squash => {
                let resized = resize(&img, sh, sw, self.interpolation)?;
                center_crop(&resized, h, w)
            }
            CropMode::Border => {
                let resized = self.resize_keep_ratio(&img, (sh, sw), 1.0)?;
                let fill: Vec<u8> = self
                    .mean
                    .iter()
                    .map(|m| (255.0 * f64::from(*m)).round_ties_even().clamp(0.0, 255.0) as u8)
                    .collect();
                center_crop_or_pad(&resized, h, w, &fill)
            }
            CropMode::Center if sh == sw => {
                let resized = resize_shorter(&img, sh, self.interpolation)?;
                center_crop(&resized, h, w)
            }
            CropMode::Center => {
                let resized = self.resize_keep_ratio(&img, (sh, sw), 0.0)?;
                center_crop(&resized, h, w)
            }
            CropMode::Pad => {
                let inner = |s: usize| ((s as f64 * self.crop_pct).round() as usize).max(1);
                let resized = resize(&img, inner(h), inner(w), self.interpolation)?;
                center_crop(&resized, h, w)
            }
        }
    }

    /// timm's `ResizeKeepRatio` without its random parts: `round(side / ratio)` per side.
    fn resize_keep_ratio(
        &self,
        img: &Image,
        target: (usize, usize),
        longest: f64,
    ) -> Result<Image> {
        let rh = img.height as f64 / target.0 as f64;
        let rw = img.width as f64 / target.1 as f64;
        let ratio = rh.max(rw) * longest + rh.min(rw) * (1.0 - longest);
        let h = (img.height as f64 / ratio).round_ties_even() as usize;
        let w = (img.width as f64 / ratio).round_ties_even() as usize;
        resize(img, h.max(1), w.max(1), self.interpolation)
    }
}

impl SampleTransform for EvalTransform {
    fn apply(&self, image: Image, _rng: &mut StdRng) -> Result<Chw> {
        let img = self.apply_image(image)?;
        let mut x = to_tensor(&img)?;
        normalize(&mut x, &self.mean, &self.std)?;
        Ok(x)
    }

    fn output_shape(&self) -> Option<(usize, usize, usize)> {
        Some(self.input_size)
    }
}

/// The augmentation of a run without a recipe: the eval transform's image (training sees what
/// evaluation sees), then a random crop of the same size from that image padded with
/// `crop_padding` black pixels per side and, if `hflip`, a horizontal flip with probability 0.5.
#[derive(Clone, Debug, PartialEq)]
pub struct BasicTrainTransform {
    pub eval: EvalTransform,
    pub crop_padding: usize,
    pub hflip: bool,
}

impl SampleTransform for BasicTrainTransform {
    fn apply(&self, image: Image, rng: &mut StdRng) -> Result<Chw> {
        let mut img = self.eval.apply_image(image)?;
        let p = self.crop_padding;
        if p > 0 {
            let (h, w) = (img.height, img.width);
            let padded = pad(&img, Padding::symmetric(p, p), &[0], PaddingMode::Constant)?;
            let (dy, dx) = (rng.random_range(0..=2 * p), rng.random_range(0..=2 * p));
            img = crop(&padded, dy as i64, dx as i64, h, w)?;
        }
        if self.hflip && rng.random::<f32>() < 0.5 {
            img = hflip(&img)?;
        }
        let mut x = to_tensor(&img)?;
        normalize(&mut x, &self.eval.mean, &self.eval.std)?;
        Ok(x)
    }

    fn output_shape(&self) -> Option<(usize, usize, usize)> {
        Some(self.eval.input_size)
    }
}
