//! A preview of what a recipe does: each input image in a row, augmented samples across, shown
//! un-normalised (what `kestrel augment-preview` writes).

use std::path::Path;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::error::{DataError, Result};
use crate::image::Image;
use crate::recipe::{Recipe, TrainTransform};
use crate::sample_transform::SampleTransform;
use crate::transforms::{check_image, denormalize_to_image, invalid};

/// Pixels between tiles, and their grey.
const GAP: usize = 2;
const GAP_GREY: u8 = 128;

/// A distinct, reproducible stream per (image, sample), independent of iteration order.
fn tile_seed(seed: u64, row: usize, col: usize) -> u64 {
    let mut z = seed ^ ((row as u64) << 32 | col as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn augmented_tile(t: &TrainTransform, image: &Image, recipe: &Recipe, seed: u64) -> Result<Image> {
    let mut rng = StdRng::seed_from_u64(seed);
    let x = t.apply(image.clone(), &mut rng)?;
    let tile = denormalize_to_image(&x, &recipe.mean, &recipe.std)?;
    Ok(tile.to_rgb())
}

fn blit(canvas: &mut Image, tile: &Image, top: usize, left: usize) {
    for y in 0..tile.height {
        let src = &tile.data[y * tile.width * 3..(y + 1) * tile.width * 3];
        let start = ((top + y) * canvas.width + left) * 3;
        canvas.data[start..start + src.len()].copy_from_slice(src);
    }
}

/// Tiles `samples_per_image` augmented versions of each image: rows are images, columns
/// samples, all at the recipe's input size, separated by a 2-pixel grey gap. RGB output.
pub fn augment_preview(
    images: &[Image],
    recipe: &Recipe,
    samples_per_image: usize,
    seed: u64,
) -> Result<Image> {
    if images.is_empty() || samples_per_image == 0 {
        return invalid("augment_preview needs at least one image and one sample per image");
    }
    images.iter().try_for_each(check_image)?;
    let t = TrainTransform::from_recipe(recipe)?;
    let [_, th, tw] = recipe.input_size;
    let height = images.len() * th + (images.len() + 1) * GAP;
    let width = samples_per_image * tw + (samples_per_image + 1) * GAP;
    let mut canvas = Image {
        height,
        width,
        channels: 3,
        data: vec![GAP_GREY; height * width * 3],
    };
    for (row, image) in images.iter().enumerate() {
        for col in 0..samples_per_image {
            let tile = augmented_tile(&t, image, recipe, tile_seed(seed, row, col))?;
            blit(
                &mut canvas,
                &tile,
                GAP + row * (th + GAP),
                GAP + col * (tw + GAP),
            );
        }
    }
    Ok(canvas)
}

/// Writes an 8-bit grayscale or RGB image as PNG.
pub fn save_png(image: &Image, path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    check_image(image)?;
    let color = match image.channels {
        1 => ::image::ExtendedColorType::L8,
        3 => ::image::ExtendedColorType::Rgb8,
        c => {
            return invalid(format!(
                "save_png: {c}-channel images are not supported (1 or 3)"
            ))
        }
    };
    let (w, h) = match (u32::try_from(image.width), u32::try_from(image.height)) {
        (Ok(w), Ok(h)) => (w, h),
        _ => return invalid("save_png: image too large"),
    };
    ::image::save_buffer_with_format(path, &image.data, w, h, color, ::image::ImageFormat::Png)
        .map_err(|e| match e {
            ::image::ImageError::IoError(io) => DataError::io(path, io),
            other => DataError::format(path, other.to_string()),
        })
}
