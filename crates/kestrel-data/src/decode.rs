//! Image file decoding to 8-bit RGB, matching what PIL's `Image.open(p).convert('RGB')` feeds
//! torchvision, with the differences documented below.
//!
//! * Formats: JPEG, PNG (8- and 16-bit, palette, grey, alpha), WebP, BMP, GIF (first frame), plus
//!   whatever else the `image` crate recognises from the file's magic bytes. The format is
//!   detected from the content first and from the extension only when the content is not
//!   recognised.
//! * JPEG goes through `zune-jpeg`: `image` 0.25 (0.25.10 here) already uses `zune-jpeg` as its
//!   JPEG decoder, so there is nothing to gain from calling it directly.
//! * Grayscale is expanded to RGB by copying; alpha is discarded without compositing (PIL's
//!   `convert('RGB')` does the same).
//! * 16-bit samples become `round(v / 257)` (the `image` crate's `to_rgb8`, i.e.
//!   `round(v * 255 / 65535)`). For 16-bit RGB PNGs PIL keeps the high byte (`v >> 8`), which
//!   differs by at most 1; for 16-bit grayscale PNGs (mode `I;16`/`I`) PIL *clips* to 0..255,
//!   which turns most images white (Pillow issues #2574, #3011); we scale instead, deliberately.
//! * EXIF orientation is applied (as `ImageOps.exif_transpose` would; plain PIL `open` does not).
//! * A corrupt or truncated file is a [`DataError::Decode`] naming the path, never a panic: the
//!   decoder runs under `catch_unwind` as a last line of defence. So is a header declaring more
//!   than [`MAX_DECODED_BYTES`] of pixels, refused before the decoder allocates them.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use ::image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

pub use ::image::metadata::Orientation;

use crate::error::{DataError, Result};
use crate::image::Image;

/// File extensions (lower case) treated as images by the ImageFolder scanner.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "webp", "bmp", "gif"];

/// True when the path's extension (case-insensitive) is one of [`IMAGE_EXTENSIONS`].
pub fn has_image_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
        .unwrap_or(false)
}

/// Reads and decodes an image file to RGB (see the module documentation).
pub fn decode_image_file(path: impl AsRef<Path>) -> Result<Image> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    decode_image_bytes(&bytes, path)
}

/// Decodes an encoded image held in memory to RGB. `path` names it in errors and supplies the
/// format when the content's magic bytes are not recognised.
pub fn decode_image_bytes(bytes: &[u8], path: impl AsRef<Path>) -> Result<Image> {
    let path = path.as_ref();
    let err = |reason: String| DataError::Decode {
        path: path.to_path_buf(),
        reason,
    };
    if bytes.is_empty() {
        return Err(err("empty file".into()));
    }
    let decoded = catch_unwind(AssertUnwindSafe(|| decode_dynamic(bytes, path)));
    let img = match decoded {
        Ok(r) => r.map_err(err)?,
        Err(panic) => {
            let msg = crate::error::panic_message(panic.as_ref());
            return Err(err(format!("decoder panicked: {msg}")));
        }
    };
    Ok(dynamic_to_rgb(img))
}

fn decode_dynamic(bytes: &[u8], path: &Path) -> std::result::Result<DynamicImage, String> {
    let mut reader = ImageReader::new(Cursor::new(bytes));
    if let Ok(f) = ImageFormat::from_path(path) {
        reader.set_format(f);
    }
    let reader = reader.with_guessed_format().map_err(|e| e.to_string())?;
    if reader.format().is_none() {
        return Err("unrecognised image format".into());
    }
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    check_decoded_size(&decoder)?;
    // A malformed EXIF block should not make an otherwise readable image unusable.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// The most bytes a decoded image may take, both as the decoder writes it and as 8-bit RGB:
/// the 512 MiB that `image`'s own `ImageReader::decode` allows by default (`Limits::max_alloc`),
/// about 13,000 × 13,000 RGB pixels. `into_decoder` (needed here for the EXIF orientation) skips
/// that check, so a few-byte header declaring a huge image would otherwise be allocated in full.
pub const MAX_DECODED_BYTES: u64 = 512 * 1024 * 1024;

/// Refuses, before anything is allocated, an image whose header declares more than
/// [`MAX_DECODED_BYTES`] of pixels.
fn check_decoded_size(decoder: &impl ImageDecoder) -> std::result::Result<(), String> {
    let (w, h) = decoder.dimensions();
    let rgb = u64::from(w) * u64::from(h) * 3;
    let need = decoder.total_bytes().max(rgb);
    if need > MAX_DECODED_BYTES {
        return Err(format!(
            "the header declares a {w}x{h} image ({need} bytes decoded), over the {} MiB limit",
            MAX_DECODED_BYTES >> 20
        ));
    }
    Ok(())
}

/// Converts any decoded image to 8-bit RGB: grey expanded, alpha dropped, 16-bit and float
/// samples scaled (`round(v / 257)` for 16-bit).
pub fn dynamic_to_rgb(img: DynamicImage) -> Image {
    let rgb = match img {
        DynamicImage::ImageRgb8(b) => b,
        other => other.to_rgb8(),
    };
    let (w, h) = rgb.dimensions();
    Image::new(h as usize, w as usize, 3, rgb.into_raw())
}

/// Applies an EXIF orientation to an 8-bit image (1 or 3 channels); the same transform the
/// decoder applies to files carrying an EXIF orientation tag.
pub fn apply_orientation(image: Image, orientation: Orientation) -> Image {
    if orientation == Orientation::NoTransforms {
        return image;
    }
    let (w, h) = (image.width as u32, image.height as u32);
    let mut dynimg = match image.channels {
        1 => DynamicImage::ImageLuma8(
            ::image::GrayImage::from_raw(w, h, image.data).expect("Image shape checked"),
        ),
        3 => DynamicImage::ImageRgb8(
            ::image::RgbImage::from_raw(w, h, image.data).expect("Image shape checked"),
        ),
        c => panic!("apply_orientation: unsupported channel count {c}"),
    };
    dynimg.apply_orientation(orientation);
    let (w, h) = (dynimg.width() as usize, dynimg.height() as usize);
    match dynimg {
        DynamicImage::ImageLuma8(b) => Image::new(h, w, 1, b.into_raw()),
        DynamicImage::ImageRgb8(b) => Image::new(h, w, 3, b.into_raw()),
        _ => unreachable!("orientation keeps the pixel type"),
    }
}
