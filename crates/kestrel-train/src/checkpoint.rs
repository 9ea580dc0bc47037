//! A checkpoint is a folder: `model.safetensors` (timm key names, PyTorch layout, so other tools
//! read it) and `checkpoint.json` (model name, class names, preprocessing, training config).

use std::path::{Path, PathBuf};

use burn::prelude::*;
use std::sync::Arc;

use kestrel_data::preprocess::Preprocess;
use kestrel_data::recipe::Recipe;
use kestrel_data::SampleTransform;
use kestrel_models::weights::{load_weights, save_safetensors, LoadOptions};
use kestrel_models::{BuildOptions, Model};
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const META_FILE: &str = "checkpoint.json";

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointMeta {
    pub format: String,
    pub model: String,
    pub num_classes: usize,
    pub in_chans: usize,
    pub class_names: Vec<String>,
    /// Eval preprocessing when the run used no recipe.
    pub preprocess: Preprocess,
    /// The augmentation recipe of the run, if any; its eval transform (timm-style resize,
    /// centre crop, normalise) then replaces `preprocess`.
    #[serde(default)]
    pub recipe: Option<Recipe>,
    /// The training configuration that produced these weights.
    pub train_config: serde_json::Value,
    pub epoch: usize,
    pub val_accuracy: Option<f64>,
    pub kestrel_version: String,
}

impl CheckpointMeta {
    /// The transform that turns a decoded image into this model's eval input.
    pub fn eval_transform(&self) -> Result<Arc<dyn SampleTransform>, TrainError> {
        Ok(match &self.recipe {
            Some(r) => Arc::new(r.eval_transform()?),
            None => Arc::new(self.preprocess.clone()),
        })
    }

    /// (channels, height, width) of the model input.
    pub fn input_size(&self) -> [usize; 3] {
        match &self.recipe {
            Some(r) => r.input_size,
            None => {
                let (c, h, w) = self
                    .preprocess
                    .output_size()
                    .unwrap_or((self.in_chans, 0, 0));
                [c, h, w]
            }
        }
    }
}

pub struct Checkpoint {
    pub dir: PathBuf,
    pub meta: CheckpointMeta,
}

impl Checkpoint {
    pub fn save(dir: &Path, model: &Model, meta: &CheckpointMeta) -> Result<(), TrainError> {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        let weights = dir.join(WEIGHTS_FILE);
        save_safetensors(model, &weights)?;
        // burn-store writes through a 0600 scratch file; give the weights the same mode as the
        // JSON beside them.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&weights, std::fs::Permissions::from_mode(0o644));
        }
        let json = serde_json::to_string_pretty(meta).expect("checkpoint metadata serialises");
        let meta_path = dir.join(META_FILE);
        std::fs::write(&meta_path, json).map_err(|e| TrainError::io(meta_path, e))
    }

    /// Reads `checkpoint.json` from `dir` (or from the folder holding a given file).
    pub fn open(path: &Path) -> Result<Checkpoint, TrainError> {
        let dir = if path.is_file() {
            path.parent().unwrap_or(Path::new("."))
        } else {
            path
        };
        let meta_path = dir.join(META_FILE);
        if !dir.exists() {
            return Err(TrainError::Checkpoint {
                path: dir.into(),
                reason: "no such directory".into(),
            });
        }
        let text = std::fs::read_to_string(&meta_path).map_err(|e| TrainError::Checkpoint {
            path: meta_path.clone(),
            reason: format!("cannot read checkpoint metadata: {e}"),
        })?;
        let meta: CheckpointMeta =
            serde_json::from_str(&text).map_err(|e| TrainError::Checkpoint {
                path: meta_path.clone(),
                reason: format!("invalid checkpoint metadata: {e}"),
            })?;
        Ok(Checkpoint {
            dir: dir.to_path_buf(),
            meta,
        })
    }

    /// Builds the model and loads the weights, on `device`.
    pub fn load_model(&self, device: &Device) -> Result<Model, TrainError> {
        let spec = kestrel_models::find(&self.meta.model)?;
        let opts = BuildOptions {
            num_classes: self.meta.num_classes,
            in_chans: self.meta.in_chans,
        };
        let mut model = spec.build(&opts, device);
        load_weights(
            &mut model,
            &self.dir.join(WEIGHTS_FILE),
            &LoadOptions::default(),
        )?;
        Ok(model)
    }
}
