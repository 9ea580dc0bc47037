//! Interpolation and PIL resampling: `resize`, `resize_shorter`, and the affine warps (Pillow's
//! Geometry.c) that rotate and affine share.

#[allow(unused_imports)]
use super::*;

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
pub(super) fn copy_pixel(dst: &mut [u8], at: usize, src: &[u8], from: usize, ch: usize) {
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
