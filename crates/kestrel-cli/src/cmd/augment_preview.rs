use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use kestrel_data::decode::decode_image_file;
use kestrel_data::recipe::Recipe;
use kestrel_data::{augment_preview, save_png};

/// Writes a grid of augmented samples (rows = images, columns = samples) to see what a recipe does.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  kestrel augment-preview --recipe randaugment cat.jpg dog.jpg --output grid.png\n  kestrel augment-preview --recipe 'basic,hflip=0.5' --recipe-file my.toml img.png --output g.png\n\nPresets: basic, randaugment, autoaugment, trivialaugment, deit, cifar, cifar-autoaugment, mnist"
)]
pub struct AugmentPreviewArgs {
    /// Recipe: a preset name with optional overrides (`randaugment,hflip=0.0`).
    #[arg(long, default_value = "randaugment")]
    pub recipe: String,
    /// Recipe from a JSON or TOML file (overrides --recipe).
    #[arg(long, value_name = "FILE")]
    pub recipe_file: Option<PathBuf>,
    /// Images to augment, one grid row each.
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<PathBuf>,
    /// Augmented samples per image.
    #[arg(long, default_value_t = 8)]
    pub samples: usize,
    /// Seed of the augmentations' random draws (same seed, same grid).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where to write the grid, as PNG.
    #[arg(long, value_name = "grid.png")]
    pub output: PathBuf,
}

pub fn run(a: AugmentPreviewArgs) -> Result<()> {
    let recipe = match &a.recipe_file {
        Some(f) => Recipe::from_file(f)?,
        None => Recipe::parse_cli(&a.recipe)?,
    };
    let images = a
        .images
        .iter()
        .map(decode_image_file)
        .collect::<Result<Vec<_>, _>>()?;
    let grid = augment_preview(&images, &recipe, a.samples, a.seed)?;
    save_png(&grid, &a.output)?;
    println!(
        "wrote a {}x{} grid to {}",
        grid.width,
        grid.height,
        a.output.display()
    );
    Ok(())
}
