//! Random ops (torchvision's `get_params` + apply): RandomResizedCrop, RandomCrop, flips,
//! ColorJitter, RandomErasing (torchvision's and timm's).

#[allow(unused_imports)]
use super::*;

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
