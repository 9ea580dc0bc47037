//! Eval-time preprocessing (stored in checkpoints so inference matches training) and a simple
//! train-time random crop + flip.

use ::image::imageops::{self, FilterType};
use ::image::{GrayImage, RgbImage};
use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::image::Image;
use crate::transform::{Chw, SampleTransform};

/// Deterministic preprocessing: channel conversion, resize, zero padding, then `/255` and
/// per-channel `(x - mean) / std`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Preprocess {
    /// 1 or 3. RGB → gray uses PIL's ITU-R 601-2 luma (`L = R*299/1000 + G*587/1000 +
    /// B*114/1000`, computed as PIL does in fixed point: `(R*19595 + G*38470 + B*7471 + 0x8000)
    /// >> 16`); gray → RGB copies the channel.
    pub channels: usize,
    /// Exact output (height, width) before padding, bilinear (the `image` crate's `Triangle`
    /// filter, which widens its support when downscaling, like PIL's antialiased bilinear).
    /// Images already of this size are left untouched.
    pub resize: Option<[usize; 2]>,
    /// Zero (black) pixels added on every side after resizing, before normalisation — as
    /// torchvision's `Pad` followed by `ToTensor` and `Normalize`.
    pub pad: usize,
    /// Per-channel mean of the `[0, 1]` pixels; one value applies to every channel.
    pub mean: Vec<f32>,
    /// Per-channel standard deviation; one value applies to every channel.
    pub std: Vec<f32>,
}

impl Preprocess {
    /// LeNet-5 on MNIST: gray, 28×28 (resized only when the input is another size), padded by 2
    /// to 32×32 as in LeCun et al. 1998, normalised with MNIST's mean 0.1307 and std 0.3081.
    pub fn lenet_mnist() -> Self {
        Preprocess {
            channels: 1,
            resize: Some([28, 28]),
            pad: 2,
            mean: vec![0.1307],
            std: vec![0.3081],
        }
    }

    /// CIFAR-10 at 32×32 RGB with its per-channel training mean and std.
    pub fn cifar10() -> Self {
        Preprocess {
            channels: 3,
            resize: Some([32, 32]),
            pad: 0,
            mean: vec![0.4914, 0.4822, 0.4465],
            std: vec![0.2470, 0.2435, 0.2616],
        }
    }

    /// Checks channels, mean/std lengths, positive std and non-zero resize.
    pub fn validate(&self) -> Result<()> {
        if self.channels != 1 && self.channels != 3 {
            return Err(DataError::Invalid(format!(
                "preprocess channels must be 1 or 3, got {}",
                self.channels
            )));
        }
        for (name, v) in [("mean", &self.mean), ("std", &self.std)] {
            if v.len() != 1 && v.len() != self.channels {
                return Err(DataError::Invalid(format!(
                    "preprocess {name} has {} values; expected 1 or {}",
                    v.len(),
                    self.channels
                )));
            }
        }
        if self.std.iter().any(|&s| s <= 0.0 || !s.is_finite()) {
            return Err(DataError::Invalid(format!(
                "preprocess std must be positive, got {:?}",
                self.std
            )));
        }
        if let Some([h, w]) = self.resize {
            if h == 0 || w == 0 {
                return Err(DataError::Invalid(format!(
                    "preprocess resize {h}x{w} is empty"
                )));
            }
        }
        Ok(())
    }

    /// (channels, height, width) of the output, when `resize` fixes it.
    pub fn output_size(&self) -> Option<(usize, usize, usize)> {
        self.resize
            .map(|[h, w]| (self.channels, h + 2 * self.pad, w + 2 * self.pad))
    }

    /// The 8-bit stages: channel conversion, resize, padding.
    pub fn prepare(&self, image: Image) -> Result<Image> {
        self.validate()?;
        let image = convert_channels(image, self.channels)?;
        let image = match self.resize {
            Some([h, w]) => resize_bilinear(image, h, w),
            None => image,
        };
        Ok(pad_image(&image, self.pad))
    }

    /// The whole preprocessing of one image (what [`SampleTransform::apply`] does; no randomness).
    pub fn process(&self, image: Image) -> Result<Chw> {
        let prepared = self.prepare(image)?;
        self.normalize(&prepared)
    }

    /// `/255` then `(x - mean) / std` per channel, HWC u8 → CHW f32.
    pub fn normalize(&self, image: &Image) -> Result<Chw> {
        let (h, w, c) = (image.height, image.width, image.channels);
        if c != self.channels {
            return Err(DataError::Invalid(format!(
                "normalize: image has {c} channels, preprocess expects {}",
                self.channels
            )));
        }
        let mut data = vec![0f32; c * h * w];
        for ch in 0..c {
            let m = self.mean[if self.mean.len() == 1 { 0 } else { ch }];
            let inv = 1.0 / self.std[if self.std.len() == 1 { 0 } else { ch }];
            let plane = &mut data[ch * h * w..(ch + 1) * h * w];
            for (p, out) in plane.iter_mut().enumerate() {
                let v = image.data[p * c + ch] as f32 / 255.0;
                *out = (v - m) * inv;
            }
        }
        Ok(Chw {
            channels: c,
            height: h,
            width: w,
            data,
        })
    }
}

impl SampleTransform for Preprocess {
    fn apply(&self, image: Image, _rng: &mut StdRng) -> Result<Chw> {
        self.process(image)
    }

    fn output_shape(&self) -> Option<(usize, usize, usize)> {
        self.output_size()
    }
}

/// PIL's `convert('L')`: `(R*19595 + G*38470 + B*7471 + 0x8000) >> 16`.
pub fn rgb_to_gray(image: &Image) -> Image {
    assert_eq!(image.channels, 3, "rgb_to_gray needs an RGB image");
    let data = image
        .data
        .chunks_exact(3)
        .map(|p| {
            ((p[0] as u32 * 19595 + p[1] as u32 * 38470 + p[2] as u32 * 7471 + 0x8000) >> 16) as u8
        })
        .collect();
    Image::new(image.height, image.width, 1, data)
}

/// Converts between 1 and 3 channels (see [`Preprocess::channels`]).
pub fn convert_channels(image: Image, channels: usize) -> Result<Image> {
    match (image.channels, channels) {
        (a, b) if a == b && (a == 1 || a == 3) => Ok(image),
        (3, 1) => Ok(rgb_to_gray(&image)),
        (1, 3) => Ok(image.to_rgb()),
        (a, b) => Err(DataError::Invalid(format!(
            "cannot convert a {a}-channel image to {b}"
        ))),
    }
}

/// Bilinear resize to exactly `height` × `width` (no-op when already that size).
pub fn resize_bilinear(image: Image, height: usize, width: usize) -> Image {
    if image.height == height && image.width == width {
        return image;
    }
    let (w0, h0) = (image.width as u32, image.height as u32);
    let (w1, h1) = (width as u32, height as u32);
    match image.channels {
        1 => {
            let buf = GrayImage::from_raw(w0, h0, image.data).expect("Image shape checked");
            let out = imageops::resize(&buf, w1, h1, FilterType::Triangle);
            Image::new(height, width, 1, out.into_raw())
        }
        3 => {
            let buf = RgbImage::from_raw(w0, h0, image.data).expect("Image shape checked");
            let out = imageops::resize(&buf, w1, h1, FilterType::Triangle);
            Image::new(height, width, 3, out.into_raw())
        }
        c => panic!("resize_bilinear: unsupported channel count {c}"),
    }
}

/// Adds `pad` zero pixels on every side.
pub fn pad_image(image: &Image, pad: usize) -> Image {
    if pad == 0 {
        return image.clone();
    }
    let (h, w, c) = (image.height, image.width, image.channels);
    let (oh, ow) = (h + 2 * pad, w + 2 * pad);
    let mut out = Image::zeros(oh, ow, c);
    for y in 0..h {
        let src = &image.data[y * w * c..(y + 1) * w * c];
        let start = ((y + pad) * ow + pad) * c;
        out.data[start..start + w * c].copy_from_slice(src);
    }
    out
}

/// Train-time: `base`'s 8-bit stages, then zero padding by `crop_padding` and a random crop back
/// to the same size, then (if `hflip`) a horizontal flip with probability 0.5, then `base`'s
/// normalisation. Draws only from the loader's per-sample RNG.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RandomCropFlip {
    pub base: Preprocess,
    pub crop_padding: usize,
    pub hflip: bool,
}

impl SampleTransform for RandomCropFlip {
    fn apply(&self, image: Image, rng: &mut StdRng) -> Result<Chw> {
        let img = self.base.prepare(image)?;
        let (h, w, c) = (img.height, img.width, img.channels);
        let p = self.crop_padding;
        let padded = pad_image(&img, p);
        let (dy, dx) = if p > 0 {
            (rng.random_range(0..=2 * p), rng.random_range(0..=2 * p))
        } else {
            (0, 0)
        };
        let flip = self.hflip && rng.random::<f32>() < 0.5;
        let mut out = Image::zeros(h, w, c);
        for y in 0..h {
            for x in 0..w {
                let sx = if flip { w - 1 - x } else { x } + dx;
                let src = ((y + dy) * padded.width + sx) * c;
                let dst = (y * w + x) * c;
                out.data[dst..dst + c].copy_from_slice(&padded.data[src..src + c]);
            }
        }
        self.base.normalize(&out)
    }

    fn output_shape(&self) -> Option<(usize, usize, usize)> {
        self.base.output_size()
    }
}
