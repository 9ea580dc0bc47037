//! Channel handling and timm's eval transform (`resolve_data_config` + `create_transform`'s
//! resize, centre crop, normalise), and the basic train transform.

#[allow(unused_imports)]
use super::*;

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
