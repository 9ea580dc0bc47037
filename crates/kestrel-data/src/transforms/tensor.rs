//! Tensor conversion: `to_tensor`, `normalize` and back.

#[allow(unused_imports)]
use super::*;

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
