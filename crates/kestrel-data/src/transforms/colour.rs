//! Colour: grey conversion and the ImageEnhance-style adjustments (brightness, contrast,
//! saturation, hue, sharpness), exact to Pillow's Convert.c / Blend.c / Filter.c.

#[allow(unused_imports)]
use super::*;

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
