//! Image transforms with the meaning torchvision's v1 transforms have on PIL images, plus timm's
//! per-model eval preprocessing, so a recipe written for torchvision or timm carries over.
//!
//! Deterministic ops are pure functions on [`Image`] (HWC `u8`) or [`Chw`] (CHW `f32`). Random ops
//! are small structs: `get_params` draws from a `StdRng` and `apply` uses what was drawn. The
//! arithmetic follows Pillow's C code (Resample.c, Geometry.c, Blend.c, Convert.c, Filter.c)
//! because torchvision calls Pillow for PIL images; `tests/transforms_parity.rs` states and checks
//! the agreement per op against fixtures made by `scripts/make_transform_fixtures.py`.

mod colour;
mod eval;
mod geometry;
mod random;
mod resize;
mod tensor;

pub use colour::*;
pub use eval::*;
pub use geometry::*;
pub use random::*;
pub use resize::*;
pub use tensor::*;

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
