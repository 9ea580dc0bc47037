//! `kestrel train` flags for fine-tuning from timm/torchvision weights; they fill the matching
//! `TrainConfig` fields.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use kestrel_train::TrainConfig;

#[derive(Args, Debug)]
pub struct FinetuneArgs {
    /// Fine-tune from timm/torchvision weights in any format `predict` loads (.safetensors, or
    /// PyTorch .pth/.pt). The classifier is re-initialised to the dataset's classes; the model's
    /// own eval transform (its data config) is used, with a matching training transform.
    /// `--pretrained FILE` is the same flag (timm's name); kestrel bundles no weights, so
    /// `--pretrained` needs the file.
    #[arg(long, visible_alias = "pretrained", value_name = "FILE", num_args = 0..=1,
          default_missing_value = "", value_parser = path_or_nothing)]
    pub weights: Option<PathBuf>,
    /// Regex rename rules for --weights from other codebases: one `REGEX => REPLACEMENT` per line.
    #[arg(long, value_name = "FILE", requires = "weights")]
    pub remap: Option<PathBuf>,
    /// Parameters that get no update (comma-separated, repeatable): a tensor-name prefix that
    /// ends at a `.` (`layer1` = `layer1.*`; names as in timm's state dict), `backbone`
    /// (everything but the classifier) or `layers:N` (the first N of timm's layer groups, the
    /// stem first; the groups --layer-decay uses). BatchNorm running statistics of frozen layers
    /// still update in training mode, as with torch's requires_grad_(False).
    #[arg(long, value_name = "PATTERN", value_delimiter = ',')]
    pub freeze: Vec<String>,
    /// Layer-wise lr decay as timm's param_groups_layer_decay: each layer group's lr is
    /// F^(last group − its group) times the scheduled lr (the head keeps it whole). Groups come
    /// from timm's group_matcher (ResNet, ViT/DeiT, ConvNeXt, EfficientNet, RegNet, Swin).
    #[arg(long, value_name = "F")]
    pub layer_decay: Option<f64>,
}

/// Keeps an empty value (a bare `--pretrained`), which `apply` turns into a clear error; clap's
/// own PathBuf parser would reject it with a generic message.
fn path_or_nothing(s: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(s))
}

impl FinetuneArgs {
    pub fn apply(&self, cfg: &mut TrainConfig) -> Result<()> {
        if let Some(w) = &self.weights {
            if w.as_os_str().is_empty() {
                anyhow::bail!(
                    "--pretrained needs a weights file (--pretrained FILE or --weights FILE): \
                     kestrel bundles no pretrained weights; give a timm or torchvision checkpoint \
                     (.safetensors, .pth)"
                );
            }
            cfg.weights = Some(w.clone());
        }
        cfg.remap = self.remap.clone();
        cfg.freeze = self
            .freeze
            .iter()
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect();
        cfg.layer_decay = self.layer_decay;
        Ok(())
    }
}
