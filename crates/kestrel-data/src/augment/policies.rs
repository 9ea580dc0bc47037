//! AutoAugment, RandAugment and TrivialAugmentWide with torchvision's definitions
//! (`torchvision/transforms/autoaugment.py`): the same op set, magnitude tables (computed as
//! `torch.linspace` does in `f32`), signs, policies and draw structure. Each op is the PIL
//! operation torchvision calls, from [`crate::transforms`] and the `ImageOps` ports below.

use std::str::FromStr;

use rand::rngs::StdRng;
use rand::Rng;

use crate::error::{DataError, Result};
use crate::image::Image;
use crate::transforms::{
    adjust_brightness, adjust_contrast, adjust_saturation, adjust_sharpness, affine, check_image,
    invalid, rotate,
};

/// One augmentation op, named as in torchvision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AugOp {
    Identity,
    ShearX,
    ShearY,
    TranslateX,
    TranslateY,
    Rotate,
    Brightness,
    Color,
    Contrast,
    Sharpness,
    Posterize,
    Solarize,
    AutoContrast,
    Equalize,
    Invert,
}

/// RandAugment's and TrivialAugmentWide's op list, in torchvision's (dict) order.
pub const RAND_OPS: [AugOp; 14] = [
    AugOp::Identity,
    AugOp::ShearX,
    AugOp::ShearY,
    AugOp::TranslateX,
    AugOp::TranslateY,
    AugOp::Rotate,
    AugOp::Brightness,
    AugOp::Color,
    AugOp::Contrast,
    AugOp::Sharpness,
    AugOp::Posterize,
    AugOp::Solarize,
    AugOp::AutoContrast,
    AugOp::Equalize,
];

impl AugOp {
    pub const ALL: [AugOp; 15] = [
        AugOp::Identity,
        AugOp::ShearX,
        AugOp::ShearY,
        AugOp::TranslateX,
        AugOp::TranslateY,
        AugOp::Rotate,
        AugOp::Brightness,
        AugOp::Color,
        AugOp::Contrast,
        AugOp::Sharpness,
        AugOp::Posterize,
        AugOp::Solarize,
        AugOp::AutoContrast,
        AugOp::Equalize,
        AugOp::Invert,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AugOp::Identity => "Identity",
            AugOp::ShearX => "ShearX",
            AugOp::ShearY => "ShearY",
            AugOp::TranslateX => "TranslateX",
            AugOp::TranslateY => "TranslateY",
            AugOp::Rotate => "Rotate",
            AugOp::Brightness => "Brightness",
            AugOp::Color => "Color",
            AugOp::Contrast => "Contrast",
            AugOp::Sharpness => "Sharpness",
            AugOp::Posterize => "Posterize",
            AugOp::Solarize => "Solarize",
            AugOp::AutoContrast => "AutoContrast",
            AugOp::Equalize => "Equalize",
            AugOp::Invert => "Invert",
        }
    }

    /// Whether torchvision flips the magnitude's sign with probability 1/2.
    pub fn signed(self) -> bool {
        matches!(
            self,
            AugOp::ShearX
                | AugOp::ShearY
                | AugOp::TranslateX
                | AugOp::TranslateY
                | AugOp::Rotate
                | AugOp::Brightness
                | AugOp::Color
                | AugOp::Contrast
                | AugOp::Sharpness
        )
    }
}

impl FromStr for AugOp {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        AugOp::ALL
            .into_iter()
            .find(|op| op.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                let names: Vec<_> = AugOp::ALL.iter().map(|o| o.name()).collect();
                DataError::Invalid(format!(
                    "unknown augmentation op '{s}'; valid: {}",
                    names.join(", ")
                ))
            })
    }
}

// ---------------------------------------------------------------------------------------------
// PIL ImageOps ports
// ---------------------------------------------------------------------------------------------

fn apply_lut_per_channel(img: &Image, luts: &[[u8; 256]]) -> Image {
    let ch = img.channels;
    let mut data = vec![0u8; img.data.len()];
    // Pixel by pixel, channel by channel: no per-byte `i % ch`.
    for (out, px) in data.chunks_exact_mut(ch).zip(img.data.chunks_exact(ch)) {
        for ((o, &v), lut) in out.iter_mut().zip(px).zip(luts) {
            *o = lut[v as usize];
        }
    }
    img.with_data(data)
}

fn apply_lut(img: &Image, lut: &[u8; 256]) -> Image {
    let data = img.data.iter().map(|&v| lut[v as usize]).collect();
    img.with_data(data)
}

fn histograms(img: &Image) -> Vec<[u64; 256]> {
    let mut h = vec![[0u64; 256]; img.channels];
    for px in img.data.chunks_exact(img.channels) {
        for (hist, &v) in h.iter_mut().zip(px) {
            hist[v as usize] += 1;
        }
    }
    h
}

fn identity_lut() -> [u8; 256] {
    std::array::from_fn(|i| i as u8)
}

/// `ImageOps.posterize`: keep the top `bits` bits.
pub fn posterize(img: &Image, bits: u32) -> Result<Image> {
    check_image(img)?;
    if !(1..=8).contains(&bits) {
        return invalid(format!("posterize bits must be in 1..=8, got {bits}"));
    }
    let mask = !((1u32 << (8 - bits)) - 1) as u8;
    Ok(apply_lut(img, &std::array::from_fn(|i| i as u8 & mask)))
}

/// `ImageOps.solarize`: invert values `>= threshold`.
pub fn solarize(img: &Image, threshold: f64) -> Result<Image> {
    check_image(img)?;
    let lut = std::array::from_fn(|i| {
        if (i as f64) < threshold {
            i as u8
        } else {
            255 - i as u8
        }
    });
    Ok(apply_lut(img, &lut))
}

/// `ImageOps.invert`.
pub fn invert(img: &Image) -> Result<Image> {
    check_image(img)?;
    Ok(apply_lut(img, &std::array::from_fn(|i| 255 - i as u8)))
}

fn autocontrast_lut(h: &[u64; 256]) -> [u8; 256] {
    let lo = h.iter().position(|&n| n > 0);
    let hi = h.iter().rposition(|&n| n > 0);
    match (lo, hi) {
        (Some(lo), Some(hi)) if hi > lo => {
            let scale = 255.0 / (hi - lo) as f64;
            let offset = -(lo as f64) * scale;
            // Python's int() truncates toward zero before the clip.
            std::array::from_fn(|ix| ((ix as f64 * scale + offset) as i64).clamp(0, 255) as u8)
        }
        _ => identity_lut(),
    }
}

/// `ImageOps.autocontrast` (cutoff 0): stretch each channel's [min, max] to [0, 255].
pub fn autocontrast(img: &Image) -> Result<Image> {
    check_image(img)?;
    let luts: Vec<_> = histograms(img).iter().map(autocontrast_lut).collect();
    Ok(apply_lut_per_channel(img, &luts))
}

fn equalize_lut(h: &[u64; 256]) -> [u8; 256] {
    let used: Vec<u64> = h.iter().copied().filter(|&n| n > 0).collect();
    if used.len() <= 1 {
        return identity_lut();
    }
    let step = (used.iter().sum::<u64>() - used[used.len() - 1]) / 255;
    if step == 0 {
        return identity_lut();
    }
    let mut n = step / 2;
    std::array::from_fn(|i| {
        let v = (n / step).min(255) as u8;
        n += h[i];
        v
    })
}

/// `ImageOps.equalize` (Pillow ≥ 10: `step = (sum - last) // 255`).
pub fn equalize(img: &Image) -> Result<Image> {
    check_image(img)?;
    let luts: Vec<_> = histograms(img).iter().map(equalize_lut).collect();
    Ok(apply_lut_per_channel(img, &luts))
}

/// torchvision's `_apply_op` with nearest interpolation: `magnitude` is the (signed) value from
/// the op's magnitude table, `fill` the colour for pixels that come from outside the image.
pub fn apply_op(img: &Image, op: AugOp, magnitude: f64, fill: &[u8]) -> Result<Image> {
    check_image(img)?;
    if !magnitude.is_finite() {
        return invalid(format!("{} magnitude must be finite", op.name()));
    }
    match op {
        AugOp::Identity => Ok(img.clone()),
        AugOp::ShearX => {
            let shear = magnitude.atan().to_degrees();
            affine(
                img,
                0.0,
                (0.0, 0.0),
                1.0,
                (shear, 0.0),
                Some((0.0, 0.0)),
                fill,
            )
        }
        AugOp::ShearY => {
            let shear = magnitude.atan().to_degrees();
            affine(
                img,
                0.0,
                (0.0, 0.0),
                1.0,
                (0.0, shear),
                Some((0.0, 0.0)),
                fill,
            )
        }
        AugOp::TranslateX => {
            let t = magnitude.trunc();
            affine(img, 0.0, (t, 0.0), 1.0, (0.0, 0.0), None, fill)
        }
        AugOp::TranslateY => {
            let t = magnitude.trunc();
            affine(img, 0.0, (0.0, t), 1.0, (0.0, 0.0), None, fill)
        }
        AugOp::Rotate => rotate(img, magnitude, fill),
        AugOp::Brightness => adjust_brightness(img, 1.0 + magnitude),
        AugOp::Color => adjust_saturation(img, 1.0 + magnitude),
        AugOp::Contrast => adjust_contrast(img, 1.0 + magnitude),
        AugOp::Sharpness => adjust_sharpness(img, 1.0 + magnitude),
        AugOp::Posterize => posterize(img, magnitude.trunc().clamp(0.0, 8.0) as u32),
        AugOp::Solarize => solarize(img, magnitude),
        AugOp::AutoContrast => autocontrast(img),
        AugOp::Equalize => equalize(img),
        AugOp::Invert => invert(img),
    }
}

// ---------------------------------------------------------------------------------------------
// Magnitude tables
// ---------------------------------------------------------------------------------------------

/// `torch.linspace(start, end, steps)` on CPU in `f32`: forward from `start` for the first half,
/// backward from `end` for the rest, each a fused multiply-add.
pub fn linspace_f32(start: f64, end: f64, steps: usize) -> Vec<f32> {
    let (start, end) = (start as f32, end as f32);
    if steps == 1 {
        return vec![start];
    }
    let step = (end - start) / (steps - 1) as f32;
    let halfway = steps / 2;
    (0..steps)
        .map(|i| {
            // torch's CPU kernel is compiled with FMA contraction; without it, ties (e.g.
            // linspace(0, 0.9, 31)[20]) round the other way.
            if i < halfway {
                step.mul_add(i as f32, start)
            } else {
                (-step).mul_add((steps - i - 1) as f32, end)
            }
        })
        .collect()
}

/// `8 - (arange(bins) / ((bins - 1) / levels)).round().int()` in `f32`, half to even.
fn posterize_bits(bins: usize, levels: f64) -> Vec<f32> {
    let div = ((bins as f64 - 1.0) / levels) as f32;
    (0..bins)
        .map(|i| 8.0 - (i as f32 / div).round_ties_even())
        .collect()
}

/// Which torchvision class's augmentation space a table comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AugmentSpace {
    /// AutoAugment and RandAugment (`150/331 * size` translate, 30° rotate, 0.3 shear, 0.9 colour).
    Standard,
    /// TrivialAugmentWide (32 px translate, 135° rotate, 0.99 shear and colour).
    Wide,
}

/// The magnitude table torchvision builds for `op` (`None` for ops without a magnitude).
/// `image_size` is (height, width), used by the standard space's translations.
pub fn magnitudes(
    space: AugmentSpace,
    op: AugOp,
    bins: usize,
    image_size: (usize, usize),
) -> Option<Vec<f32>> {
    let wide = space == AugmentSpace::Wide;
    let (shear, rotate, colour) = if wide {
        (0.99, 135.0, 0.99)
    } else {
        (0.3, 30.0, 0.9)
    };
    let translate = |side: usize| {
        if wide {
            32.0
        } else {
            150.0 / 331.0 * side as f64
        }
    };
    Some(match op {
        AugOp::ShearX | AugOp::ShearY => linspace_f32(0.0, shear, bins),
        AugOp::TranslateX => linspace_f32(0.0, translate(image_size.1), bins),
        AugOp::TranslateY => linspace_f32(0.0, translate(image_size.0), bins),
        AugOp::Rotate => linspace_f32(0.0, rotate, bins),
        AugOp::Brightness | AugOp::Color | AugOp::Contrast | AugOp::Sharpness => {
            linspace_f32(0.0, colour, bins)
        }
        AugOp::Posterize => posterize_bits(bins, if wide { 6.0 } else { 4.0 }),
        AugOp::Solarize => linspace_f32(255.0, 0.0, bins),
        AugOp::Identity | AugOp::AutoContrast | AugOp::Equalize | AugOp::Invert => return None,
    })
}

/// The magnitude at a fractional bin position (for timm-style magnitude noise): linear between
/// the table's end points, posterize rounded as torchvision's table does.
fn magnitude_at(
    space: AugmentSpace,
    op: AugOp,
    bins: usize,
    position: f64,
    image_size: (usize, usize),
) -> f64 {
    let Some(table) = magnitudes(space, op, bins, image_size) else {
        return 0.0;
    };
    let last = (bins - 1).max(1) as f64;
    let t = (position / last).clamp(0.0, 1.0);
    if op == AugOp::Posterize {
        let levels = if space == AugmentSpace::Wide {
            6.0
        } else {
            4.0
        };
        return 8.0 - (t * levels).round_ties_even();
    }
    let (a, b) = (f64::from(table[0]), f64::from(table[bins - 1]));
    a + (b - a) * t
}

// ---------------------------------------------------------------------------------------------
// AutoAugment
// ---------------------------------------------------------------------------------------------

/// The learned AutoAugment policies torchvision ships.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AutoAugmentPolicy {
    ImageNet,
    Cifar10,
    Svhn,
}

type SubPolicy = [(AugOp, f64, Option<usize>); 2];

macro_rules! policy {
    ($(($a:ident, $pa:expr, $ma:expr), ($b:ident, $pb:expr, $mb:expr);)*) => {
        &[$([(AugOp::$a, $pa, $ma), (AugOp::$b, $pb, $mb)]),*]
    };
}

const N: Option<usize> = None;
const fn m(v: usize) -> Option<usize> {
    Some(v)
}

static IMAGENET_POLICY: &[SubPolicy] = policy! {
    (Posterize, 0.4, m(8)), (Rotate, 0.6, m(9));
    (Solarize, 0.6, m(5)), (AutoContrast, 0.6, N);
    (Equalize, 0.8, N), (Equalize, 0.6, N);
    (Posterize, 0.6, m(7)), (Posterize, 0.6, m(6));
    (Equalize, 0.4, N), (Solarize, 0.2, m(4));
    (Equalize, 0.4, N), (Rotate, 0.8, m(8));
    (Solarize, 0.6, m(3)), (Equalize, 0.6, N);
    (Posterize, 0.8, m(5)), (Equalize, 1.0, N);
    (Rotate, 0.2, m(3)), (Solarize, 0.6, m(8));
    (Equalize, 0.6, N), (Posterize, 0.4, m(6));
    (Rotate, 0.8, m(8)), (Color, 0.4, m(0));
    (Rotate, 0.4, m(9)), (Equalize, 0.6, N);
    (Equalize, 0.0, N), (Equalize, 0.8, N);
    (Invert, 0.6, N), (Equalize, 1.0, N);
    (Color, 0.6, m(4)), (Contrast, 1.0, m(8));
    (Rotate, 0.8, m(8)), (Color, 1.0, m(2));
    (Color, 0.8, m(8)), (Solarize, 0.8, m(7));
    (Sharpness, 0.4, m(7)), (Invert, 0.6, N);
    (ShearX, 0.6, m(5)), (Equalize, 1.0, N);
    (Color, 0.4, m(0)), (Equalize, 0.6, N);
    (Equalize, 0.4, N), (Solarize, 0.2, m(4));
    (Solarize, 0.6, m(5)), (AutoContrast, 0.6, N);
    (Invert, 0.6, N), (Equalize, 1.0, N);
    (Color, 0.6, m(4)), (Contrast, 1.0, m(8));
    (Equalize, 0.8, N), (Equalize, 0.6, N);
};

static CIFAR10_POLICY: &[SubPolicy] = policy! {
    (Invert, 0.1, N), (Contrast, 0.2, m(6));
    (Rotate, 0.7, m(2)), (TranslateX, 0.3, m(9));
    (Sharpness, 0.8, m(1)), (Sharpness, 0.9, m(3));
    (ShearY, 0.5, m(8)), (TranslateY, 0.7, m(9));
    (AutoContrast, 0.5, N), (Equalize, 0.9, N);
    (ShearY, 0.2, m(7)), (Posterize, 0.3, m(7));
    (Color, 0.4, m(3)), (Brightness, 0.6, m(7));
    (Sharpness, 0.3, m(9)), (Brightness, 0.7, m(9));
    (Equalize, 0.6, N), (Equalize, 0.5, N);
    (Contrast, 0.6, m(7)), (Sharpness, 0.6, m(5));
    (Color, 0.7, m(7)), (TranslateX, 0.5, m(8));
    (Equalize, 0.3, N), (AutoContrast, 0.4, N);
    (TranslateY, 0.4, m(3)), (Sharpness, 0.2, m(6));
    (Brightness, 0.9, m(6)), (Color, 0.2, m(8));
    (Solarize, 0.5, m(2)), (Invert, 0.0, N);
    (Equalize, 0.2, N), (AutoContrast, 0.6, N);
    (Equalize, 0.2, N), (Equalize, 0.6, N);
    (Color, 0.9, m(9)), (Equalize, 0.6, N);
    (AutoContrast, 0.8, N), (Solarize, 0.2, m(8));
    (Brightness, 0.1, m(3)), (Color, 0.7, m(0));
    (Solarize, 0.4, m(5)), (AutoContrast, 0.9, N);
    (TranslateY, 0.9, m(9)), (TranslateY, 0.7, m(9));
    (AutoContrast, 0.9, N), (Solarize, 0.8, m(3));
    (Equalize, 0.8, N), (Invert, 0.1, N);
    (TranslateY, 0.7, m(9)), (AutoContrast, 0.9, N);
};

static SVHN_POLICY: &[SubPolicy] = policy! {
    (ShearX, 0.9, m(4)), (Invert, 0.2, N);
    (ShearY, 0.9, m(8)), (Invert, 0.7, N);
    (Equalize, 0.6, N), (Solarize, 0.6, m(6));
    (Invert, 0.9, N), (Equalize, 0.6, N);
    (Equalize, 0.6, N), (Rotate, 0.9, m(3));
    (ShearX, 0.9, m(4)), (AutoContrast, 0.8, N);
    (ShearY, 0.9, m(8)), (Invert, 0.4, N);
    (ShearY, 0.9, m(5)), (Solarize, 0.2, m(6));
    (Invert, 0.9, N), (AutoContrast, 0.8, N);
    (Equalize, 0.6, N), (Rotate, 0.9, m(3));
    (ShearX, 0.9, m(4)), (Solarize, 0.3, m(3));
    (ShearY, 0.8, m(8)), (Invert, 0.7, N);
    (Equalize, 0.9, N), (TranslateY, 0.6, m(6));
    (Invert, 0.9, N), (Equalize, 0.6, N);
    (Contrast, 0.3, m(3)), (Rotate, 0.8, m(4));
    (Invert, 0.8, N), (TranslateY, 0.0, m(2));
    (ShearY, 0.7, m(6)), (Solarize, 0.4, m(8));
    (Invert, 0.6, N), (Rotate, 0.8, m(4));
    (ShearY, 0.3, m(7)), (TranslateX, 0.9, m(3));
    (ShearX, 0.1, m(6)), (Invert, 0.6, N);
    (Solarize, 0.7, m(2)), (TranslateY, 0.6, m(7));
    (ShearY, 0.8, m(4)), (Invert, 0.8, N);
    (ShearX, 0.7, m(9)), (TranslateY, 0.8, m(3));
    (ShearY, 0.8, m(5)), (AutoContrast, 0.7, N);
    (ShearX, 0.7, m(2)), (Invert, 0.1, N);
};

impl AutoAugmentPolicy {
    /// The 25 sub-policies: (op, probability, magnitude bin of 10).
    pub fn sub_policies(self) -> &'static [SubPolicy] {
        match self {
            AutoAugmentPolicy::ImageNet => IMAGENET_POLICY,
            AutoAugmentPolicy::Cifar10 => CIFAR10_POLICY,
            AutoAugmentPolicy::Svhn => SVHN_POLICY,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            AutoAugmentPolicy::ImageNet => "imagenet",
            AutoAugmentPolicy::Cifar10 => "cifar10",
            AutoAugmentPolicy::Svhn => "svhn",
        }
    }
}

/// torchvision's `AutoAugment(policy)`: one random sub-policy; each of its two ops runs with its
/// probability, signed magnitudes negated with probability 1/2.
#[derive(Clone, Debug, PartialEq)]
pub struct AutoAugment {
    pub policy: AutoAugmentPolicy,
    pub fill: Vec<u8>,
}

impl AutoAugment {
    pub fn new(policy: AutoAugmentPolicy) -> Self {
        AutoAugment {
            policy,
            fill: vec![0],
        }
    }

    /// The (op, signed magnitude) pairs one call applies to an image of `image_size`
    /// (height, width): sub-policy, probabilities and signs are drawn first, as torchvision does.
    pub fn sample(&self, image_size: (usize, usize), rng: &mut StdRng) -> Vec<(AugOp, f64)> {
        let subs = self.policy.sub_policies();
        let sub = &subs[rng.random_range(0..subs.len())];
        let probs: [f64; 2] = [rng.random(), rng.random()];
        let negate: [bool; 2] = [rng.random(), rng.random()];
        let mut ops = Vec::with_capacity(2);
        for (i, &(op, p, bin)) in sub.iter().enumerate() {
            if probs[i] > p {
                continue;
            }
            let mut mag = match (bin, magnitudes(AugmentSpace::Standard, op, 10, image_size)) {
                (Some(b), Some(t)) => f64::from(t[b]),
                _ => 0.0,
            };
            if op.signed() && negate[i] {
                mag = -mag;
            }
            ops.push((op, mag));
        }
        ops
    }

    pub fn apply(&self, img: &Image, rng: &mut StdRng) -> Result<Image> {
        check_image(img)?;
        let ops = self.sample((img.height, img.width), rng);
        apply_ops(img, &ops, &self.fill)
    }
}

/// Applies (op, magnitude) pairs in order.
pub fn apply_ops(img: &Image, ops: &[(AugOp, f64)], fill: &[u8]) -> Result<Image> {
    let mut img = img.clone();
    for &(op, mag) in ops {
        img = apply_op(&img, op, mag, fill)?;
    }
    Ok(img)
}

// ---------------------------------------------------------------------------------------------
// RandAugment and TrivialAugmentWide
// ---------------------------------------------------------------------------------------------

/// torchvision's `RandAugment(num_ops, magnitude, num_magnitude_bins)`, with timm's optional
/// magnitude noise: when `magnitude_std > 0` each op draws its bin position from
/// N(magnitude, magnitude_std) (in bins), clipped to the table; `f64::INFINITY` draws it
/// uniformly from [0, magnitude], as timm's `mstd` does.
#[derive(Clone, Debug, PartialEq)]
pub struct RandAugment {
    pub num_ops: usize,
    pub magnitude: usize,
    pub num_magnitude_bins: usize,
    pub magnitude_std: f64,
    pub fill: Vec<u8>,
}

impl RandAugment {
    pub fn new(num_ops: usize, magnitude: usize, num_magnitude_bins: usize) -> Result<Self> {
        if num_magnitude_bins < 2 {
            return invalid(format!(
                "randaugment needs at least 2 magnitude bins, got {num_magnitude_bins}"
            ));
        }
        if magnitude >= num_magnitude_bins {
            return invalid(format!(
                "randaugment magnitude {magnitude} is out of range: valid 0..={} for {num_magnitude_bins} bins",
                num_magnitude_bins - 1
            ));
        }
        if num_ops > 16 {
            return invalid(format!(
                "randaugment num_ops {num_ops} is out of range 0..=16"
            ));
        }
        Ok(RandAugment {
            num_ops,
            magnitude,
            num_magnitude_bins,
            magnitude_std: 0.0,
            fill: vec![0],
        })
    }

    fn draw_magnitude(&self, op: AugOp, size: (usize, usize), rng: &mut StdRng) -> f64 {
        let bins = self.num_magnitude_bins;
        if self.magnitude_std == 0.0 {
            return magnitudes(AugmentSpace::Standard, op, bins, size)
                .map_or(0.0, |t| f64::from(t[self.magnitude]));
        }
        let m = self.magnitude as f64;
        let position = if self.magnitude_std.is_infinite() {
            crate::transforms::uniform(rng, 0.0, m)
        } else {
            m + self.magnitude_std * f64::from(crate::transforms::standard_normal(rng))
        };
        let position = position.clamp(0.0, (bins - 1) as f64);
        magnitude_at(AugmentSpace::Standard, op, bins, position, size)
    }

    /// The (op, signed magnitude) pairs one call applies to an image of `image_size`.
    pub fn sample(&self, image_size: (usize, usize), rng: &mut StdRng) -> Vec<(AugOp, f64)> {
        (0..self.num_ops)
            .map(|_| {
                let op = RAND_OPS[rng.random_range(0..RAND_OPS.len())];
                let mut mag = self.draw_magnitude(op, image_size, rng);
                if op.signed() && rng.random::<bool>() {
                    mag = -mag;
                }
                (op, mag)
            })
            .collect()
    }

    pub fn apply(&self, img: &Image, rng: &mut StdRng) -> Result<Image> {
        check_image(img)?;
        let ops = self.sample((img.height, img.width), rng);
        apply_ops(img, &ops, &self.fill)
    }
}

/// torchvision's `TrivialAugmentWide`: one op, a uniformly drawn bin, a random sign.
#[derive(Clone, Debug, PartialEq)]
pub struct TrivialAugmentWide {
    pub num_magnitude_bins: usize,
    pub fill: Vec<u8>,
}

impl TrivialAugmentWide {
    pub fn new(num_magnitude_bins: usize) -> Result<Self> {
        if num_magnitude_bins < 2 {
            return invalid(format!(
                "trivialaugment needs at least 2 magnitude bins, got {num_magnitude_bins}"
            ));
        }
        Ok(TrivialAugmentWide {
            num_magnitude_bins,
            fill: vec![0],
        })
    }

    /// The one (op, signed magnitude) a call applies.
    pub fn sample(&self, image_size: (usize, usize), rng: &mut StdRng) -> (AugOp, f64) {
        let op = RAND_OPS[rng.random_range(0..RAND_OPS.len())];
        let table = magnitudes(AugmentSpace::Wide, op, self.num_magnitude_bins, image_size);
        let mut mag = table.map_or(0.0, |t| f64::from(t[rng.random_range(0..t.len())]));
        if op.signed() && rng.random::<bool>() {
            mag = -mag;
        }
        (op, mag)
    }

    pub fn apply(&self, img: &Image, rng: &mut StdRng) -> Result<Image> {
        check_image(img)?;
        let (op, mag) = self.sample((img.height, img.width), rng);
        apply_op(img, op, mag, &self.fill)
    }
}

// ---------------------------------------------------------------------------------------------
// Selection by name
// ---------------------------------------------------------------------------------------------

/// An automatic augmentation policy chosen by name (see [`AutoAugmentKind::parse`]).
#[derive(Clone, Debug, PartialEq)]
pub enum AutoAugmentKind {
    AutoAugment(AutoAugment),
    RandAugment(RandAugment),
    TrivialAugmentWide(TrivialAugmentWide),
}

/// What [`AutoAugmentKind::parse`] accepts, for error messages.
pub const AUTO_AUGMENT_NAMES: &str = "autoaugment-imagenet (or autoaugment, original), \
autoaugment-cifar10, autoaugment-svhn, randaugment (or ra: n2 m9 of 31 bins), \
randaugment-nN-mM[-bB] (torchvision bins), rand-mM-nN[-mstdS] (timm: M on 0..10, \
mapped to bin M*(B-1)/10), trivialaugment (or ta_wide)";

fn parse_number<T: FromStr>(token: &str, key: &str, spec: &str) -> Result<T> {
    token[key.len()..].parse().map_err(|_| {
        DataError::Invalid(format!(
            "bad '{key}' value in auto_augment '{spec}'; valid: {AUTO_AUGMENT_NAMES}"
        ))
    })
}

/// torchvision-style "randaugment-n2-m9-b31": bins are magnitudes directly.
fn parse_torchvision_rand(spec: &str, rest: &str) -> Result<AutoAugmentKind> {
    let (mut n, mut m, mut bins) = (2usize, 9usize, 31usize);
    for token in rest.split('-').filter(|t| !t.is_empty()) {
        if token.starts_with('n') {
            n = parse_number(token, "n", spec)?;
        } else if token.starts_with('m') {
            m = parse_number(token, "m", spec)?;
        } else if token.starts_with('b') {
            bins = parse_number(token, "b", spec)?;
        } else {
            return invalid(format!(
                "unknown token '{token}' in auto_augment '{spec}'; valid: {AUTO_AUGMENT_NAMES}"
            ));
        }
    }
    Ok(AutoAugmentKind::RandAugment(RandAugment::new(n, m, bins)?))
}

/// timm-style "rand-m9-n2-mstd0.5": magnitude on timm's 0..10 scale, noise in the same units.
fn parse_timm_rand(spec: &str, rest: &str) -> Result<AutoAugmentKind> {
    const BINS: usize = 31;
    let (mut n, mut m, mut mstd) = (2usize, 10.0f64, 0.0f64);
    for token in rest.split('-').filter(|t| !t.is_empty()) {
        if token.starts_with("mstd") {
            mstd = parse_number(token, "mstd", spec)?;
        } else if token.starts_with('m') {
            m = parse_number(token, "m", spec)?;
        } else if token.starts_with('n') {
            n = parse_number(token, "n", spec)?;
        } else {
            return invalid(format!(
                "unsupported token '{token}' in auto_augment '{spec}' (timm's inc/mmax/p/w \
                 are not implemented); valid: {AUTO_AUGMENT_NAMES}"
            ));
        }
    }
    if !(0.0..=10.0).contains(&m) || mstd.is_nan() || mstd < 0.0 {
        return invalid(format!(
            "auto_augment '{spec}' is out of range; valid: m in 0..=10, mstd >= 0"
        ));
    }
    let per_level = (BINS - 1) as f64 / 10.0;
    let position = m * per_level;
    // Integer levels land on bins exactly (m9 -> bin 27 of 31); a fractional level rounds.
    let mut ra = RandAugment::new(n, position.round() as usize, BINS)?;
    ra.magnitude_std = mstd * per_level;
    Ok(AutoAugmentKind::RandAugment(ra))
}

impl AutoAugmentKind {
    /// Parses a policy name; an unknown name or bad parameter is `DataError::Invalid` listing
    /// the valid forms.
    pub fn parse(spec: &str) -> Result<Self> {
        let s = spec.trim().to_ascii_lowercase();
        let aa = |p| Ok(AutoAugmentKind::AutoAugment(AutoAugment::new(p)));
        match s.as_str() {
            "autoaugment" | "autoaugment-imagenet" | "original" | "aa" => {
                aa(AutoAugmentPolicy::ImageNet)
            }
            "autoaugment-cifar10" | "autoaugment-cifar" => aa(AutoAugmentPolicy::Cifar10),
            "autoaugment-svhn" => aa(AutoAugmentPolicy::Svhn),
            "trivialaugment" | "trivialaugmentwide" | "trivialaugment-wide" | "ta" | "ta_wide" => {
                Ok(AutoAugmentKind::TrivialAugmentWide(
                    TrivialAugmentWide::new(31)?,
                ))
            }
            "randaugment" | "ra" => Ok(AutoAugmentKind::RandAugment(RandAugment::new(2, 9, 31)?)),
            _ => {
                if let Some(rest) = s.strip_prefix("randaugment-") {
                    parse_torchvision_rand(spec, rest)
                } else if let Some(rest) = s.strip_prefix("rand-") {
                    parse_timm_rand(spec, rest)
                } else if s == "rand" {
                    parse_timm_rand(spec, "")
                } else {
                    invalid(format!(
                        "unknown auto_augment '{spec}'; valid: {AUTO_AUGMENT_NAMES}"
                    ))
                }
            }
        }
    }

    /// Sets the fill colour for pixels that geometric ops bring in from outside.
    pub fn with_fill(mut self, fill: Vec<u8>) -> Self {
        match &mut self {
            AutoAugmentKind::AutoAugment(a) => a.fill = fill,
            AutoAugmentKind::RandAugment(a) => a.fill = fill,
            AutoAugmentKind::TrivialAugmentWide(a) => a.fill = fill,
        }
        self
    }

    pub fn apply(&self, img: &Image, rng: &mut StdRng) -> Result<Image> {
        match self {
            AutoAugmentKind::AutoAugment(a) => a.apply(img, rng),
            AutoAugmentKind::RandAugment(a) => a.apply(img, rng),
            AutoAugmentKind::TrivialAugmentWide(a) => a.apply(img, rng),
        }
    }
}
