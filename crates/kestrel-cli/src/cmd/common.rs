//! Flags and helpers shared by several commands.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;
use kestrel_data::splits::{open_dataset, SplitOptions, Splits};

/// Serialisable: a run keeps its data flags for `kestrel train --resume`.
#[derive(Args, Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct DataArgs {
    /// Dataset directory: MNIST/Fashion-MNIST IDX files, CIFAR-10/100 binaries, or an ImageFolder
    /// (root/<class>/*.jpg). Default: the embedded MNIST subset (for `eval`: the dataset the
    /// checkpoint was trained on).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Separate validation folder for an ImageFolder dataset.
    #[arg(long, value_name = "DIR")]
    pub val_dir: Option<PathBuf>,
    /// Fraction of the training data held out for validation when there is no validation split
    /// (default 0.1; `eval` uses the fraction recorded in the checkpoint).
    #[arg(long, value_name = "F")]
    pub val_fraction: Option<f64>,
    /// Skip unreadable or corrupt images (they are counted and reported) instead of stopping.
    #[arg(long)]
    pub skip_bad_images: bool,
}

impl DataArgs {
    pub fn open(&self) -> Result<Splits> {
        let val_fraction = self
            .val_fraction()?
            .unwrap_or(SplitOptions::default().val_fraction);
        let opts = SplitOptions {
            val_fraction,
            seed: 0,
            skip_bad_images: self.skip_bad_images,
            val_dir: self.val_dir.clone(),
        };
        Ok(open_dataset(self.data.as_deref(), &opts)?)
    }

    /// `--val-fraction`, checked.
    pub fn val_fraction(&self) -> Result<Option<f64>> {
        if let Some(f) = self.val_fraction.filter(|f| !(0.0..1.0).contains(f)) {
            anyhow::bail!("--val-fraction {f}: must be in [0, 1)");
        }
        Ok(self.val_fraction)
    }
}

/// A clap value parser for counts that must be at least 1 (`--epochs`, `--batch-size`), so
/// `--epochs -1` or `--epochs 0` says what is wanted.
pub fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<i64>() {
        Ok(n) if n >= 1 => Ok(n as usize),
        Ok(n) => Err(format!("{n}: must be a whole number ≥ 1")),
        Err(_) => Err(format!("'{s}': must be a whole number ≥ 1")),
    }
}

/// `--img-size N`: the input height and width, timm's flag.
#[derive(Args, Clone, Debug, Default)]
pub struct ImgSizeArg {
    /// Input height = width in pixels instead of the model's own (timm's --img-size); the
    /// eval transform resizes and crops to it, and `train` builds the fixed-size models
    /// (ViT/DeiT, Swin, T2T-ViT, CoAtNet, MaxViT) for it. A size the model cannot take is an error.
    #[arg(long, value_name = "N", value_parser = at_least_one)]
    pub img_size: Option<usize>,
}

impl ImgSizeArg {
    pub fn hw(&self) -> Option<[usize; 2]> {
        self.img_size.map(|n| [n, n])
    }
}

/// A run folder that does not clobber an earlier run: `runs/<name>`, else `runs/<name>-2`, ...
pub fn fresh_run_dir(base: &Path, name: &str) -> PathBuf {
    let first = base.join(name);
    if !first.exists() {
        return first;
    }
    (2..)
        .map(|i| base.join(format!("{name}-{i}")))
        .find(|p| !p.exists())
        .expect("unbounded")
}

/// `--engine` and `--threads`, shared by the commands that run inference.
#[derive(Args, Debug, Clone)]
pub struct EngineArgs {
    /// Inference engine: `fast` (kestrel's fused CPU kernels; a model or device it does not
    /// cover falls back to burn with a one-line notice) or `burn` (burn's ops, one by one).
    #[arg(long, default_value = "fast", value_name = "fast|burn")]
    pub engine: kestrel_deploy::EngineKind,
    /// Compute threads for kestrel's kernels and burn (default: the cores available).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
}

impl EngineArgs {
    /// Applies `--threads`; call before any compute.
    pub fn apply(&self) -> Result<()> {
        set_threads(self.threads)
    }
}

/// Prints the fast engine's fallback notice, if any.
pub fn engine_notice(what: &str, notice: Option<String>) {
    if let Some(n) = notice {
        eprintln!("note: {what}: {n}");
    }
}

/// `--threads N`: the compute threads of kestrel's kernels and of burn's (rayon) pool. Without
/// it both use every core available.
pub fn set_threads(threads: Option<usize>) -> Result<()> {
    let Some(n) = threads else { return Ok(()) };
    if n == 0 {
        anyhow::bail!("--threads must be at least 1");
    }
    kestrel_kernels::set_num_threads(n);
    // Fails only if the global pool already exists, i.e. something ran before the flag was read.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global();
    Ok(())
}
