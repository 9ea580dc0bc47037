//! Crops, padding, flips, rotation and affine transforms (Pillow's Geometry.c semantics).

#[allow(unused_imports)]
use super::*;

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
