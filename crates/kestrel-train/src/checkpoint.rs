//! A checkpoint is a folder: `model.safetensors` (timm key names, PyTorch layout, so other tools
//! read it) and `checkpoint.json` (model name, class names, the data config and recipe it was
//! trained with, training config).

use std::path::{Path, PathBuf};

use burn::prelude::*;

use kestrel_data::recipe::Recipe;
use kestrel_data::transforms::EvalTransform;
use kestrel_models::weights::{load_weights, safetensors_bytes, LoadOptions};
use kestrel_models::{BuildOptions, DataConfig, Model};
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::data_config::{eval_transform, recipe_data_config};
use crate::error::TrainError;

pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The int8 model of a folder written by `kestrel quantize` (in place of [`WEIGHTS_FILE`]).
pub const INT8_FILE: &str = "model.int8.safetensors";
pub const META_FILE: &str = "checkpoint.json";
/// The weights of a folder written by `kestrel prune --method l1` (in place of
/// [`WEIGHTS_FILE`]): zeros stored as a bit mask (kestrel-deploy's `prune::sparse_bytes`).
pub const SPARSE_FILE: &str = "model.sparse.safetensors";
/// The per-layer output channels of a channel-pruned model (kestrel-deploy's
/// `prune::ChannelCounts`); the architecture is rebuilt with them before the weights load.
pub const CHANNELS_FILE: &str = "pruned_channels.json";
/// v2 stores `data_config`; v1 (before it) stored a `preprocess` block, still read.
pub const FORMAT: &str = "kestrel-checkpoint-v2";

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "StoredMeta")]
pub struct CheckpointMeta {
    pub format: String,
    pub model: String,
    pub num_classes: usize,
    pub in_chans: usize,
    pub class_names: Vec<String>,
    /// The data config the run trained with and the model is evaluated with (see
    /// [`crate::data_config`]).
    pub data_config: DataConfig,
    /// The augmentation recipe of the run, if any (its eval settings are in `data_config`).
    pub recipe: Option<Recipe>,
    /// The training configuration that produced these weights.
    pub train_config: serde_json::Value,
    pub epoch: usize,
    pub val_accuracy: Option<f64>,
    pub kestrel_version: String,
    /// The dataset and split the run trained on (absent in checkpoints from before it was
    /// recorded); `kestrel eval` reopens it.
    pub data: Option<kestrel_data::DataSource>,
}

impl CheckpointMeta {
    /// The transform that turns a decoded image into this model's eval input.
    pub fn eval_transform(&self) -> Result<EvalTransform, TrainError> {
        eval_transform(&self.data_config)
    }

    /// (channels, height, width) of the model input.
    pub fn input_size(&self) -> [usize; 3] {
        self.data_config.input_size
    }
}

/// `checkpoint.json` as written by any kestrel version: v2 has `data_config`; v1 has
/// `preprocess` (runs without a recipe) and the recipe's eval settings (runs with one).
#[derive(Deserialize)]
struct StoredMeta {
    format: String,
    model: String,
    num_classes: usize,
    in_chans: usize,
    class_names: Vec<String>,
    #[serde(default)]
    data_config: Option<DataConfig>,
    #[serde(default)]
    preprocess: Option<PreprocessV1>,
    #[serde(default)]
    recipe: Option<Recipe>,
    train_config: serde_json::Value,
    epoch: usize,
    val_accuracy: Option<f64>,
    kestrel_version: String,
    #[serde(default)]
    data: Option<kestrel_data::DataSource>,
}

/// v1's eval preprocessing: channel conversion, resize to `resize`, zero padding by `pad` per
/// side, normalisation (one mean/std value meant every channel).
#[derive(Deserialize)]
struct PreprocessV1 {
    channels: usize,
    resize: Option<[usize; 2]>,
    pad: usize,
    mean: Vec<f32>,
    std: Vec<f32>,
}

impl PreprocessV1 {
    /// The same steps as a data config: `pad` mode for padded runs (resize to `resize`, then
    /// pad), else a squash resize to `resize`.
    fn data_config(self) -> Result<DataConfig, String> {
        let Some([h, w]) = self.resize else {
            return Err("its v1 `preprocess` has no resize size; retrain with this kestrel".into());
        };
        let (c, p) = (self.channels, self.pad);
        let per_channel = |v: Vec<f32>| if v.len() == 1 { vec![v[0]; c] } else { v };
        Ok(DataConfig {
            input_size: [c, h + 2 * p, w + 2 * p],
            mean: per_channel(self.mean),
            std: per_channel(self.std),
            crop_pct: if p > 0 {
                h as f64 / (h + 2 * p) as f64
            } else {
                1.0
            },
            interpolation: "bilinear".into(),
            crop_mode: if p > 0 { "pad" } else { "squash" }.into(),
            test_input_size: None,
            test_crop_pct: None,
        })
    }
}

impl TryFrom<StoredMeta> for CheckpointMeta {
    type Error = String;
    fn try_from(m: StoredMeta) -> Result<Self, String> {
        let data_config = match (m.data_config, m.preprocess, &m.recipe) {
            (Some(dc), _, _) => dc,
            // v1 with a recipe: its eval transform was the recipe's at the model's input size.
            (None, _, Some(r)) => recipe_data_config(r.input_size, r),
            (None, Some(p), None) => p.data_config()?,
            (None, None, None) => {
                return Err(format!(
                    "{} metadata has neither `data_config` nor `preprocess`",
                    m.format
                ))
            }
        };
        Ok(CheckpointMeta {
            format: m.format,
            model: m.model,
            num_classes: m.num_classes,
            in_chans: m.in_chans,
            class_names: m.class_names,
            data_config,
            recipe: m.recipe,
            train_config: m.train_config,
            epoch: m.epoch,
            val_accuracy: m.val_accuracy,
            kestrel_version: m.kestrel_version,
            data: m.data,
        })
    }
}

pub struct Checkpoint {
    pub dir: PathBuf,
    pub meta: CheckpointMeta,
}

impl Checkpoint {
    /// Writes the weights and `checkpoint.json`, each atomically (the training loop writes
    /// its checkpoints as one set with [`crate::run_state::save_set`]).
    pub fn save(dir: &Path, model: &Model, meta: &CheckpointMeta) -> Result<(), TrainError> {
        std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
        write_atomic(&dir.join(WEIGHTS_FILE), &safetensors_bytes(model)?)?;
        let json = serde_json::to_string_pretty(meta).expect("checkpoint metadata serialises");
        write_atomic(&dir.join(META_FILE), json.as_bytes())
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

    /// Evaluates at `height` × `width` instead of the trained size (`--img-size`); a size the
    /// model cannot take is an error that says why.
    pub fn set_input_hw(&mut self, [h, w]: [usize; 2], device: &Device) -> Result<(), TrainError> {
        let spec = kestrel_models::find(&self.meta.model)?;
        let opts = BuildOptions {
            num_classes: self.meta.num_classes,
            in_chans: self.meta.in_chans,
            // A fixed-size model (ViT, Swin) is checked as built for the size asked for.
            img_size: (h == w).then_some(h),
        };
        let size = [self.meta.in_chans, h, w];
        crate::source::check_img_size(&spec.build(&opts, device), spec.name, size, device)?;
        self.meta.data_config.input_size = size;
        Ok(())
    }

    /// The architecture, with fresh (untrained) weights, at the folder's input size
    /// (fixed-size models are built for it).
    pub fn build_architecture(&self, device: &Device) -> Result<Model, TrainError> {
        let spec = kestrel_models::find(&self.meta.model)?;
        let [_, h, w] = self.meta.data_config.input_size;
        let opts = BuildOptions {
            num_classes: self.meta.num_classes,
            in_chans: self.meta.in_chans,
            img_size: (h == w).then_some(h),
        };
        let model = spec.build(&opts, device);
        match self.channel_counts()? {
            None => Ok(model),
            Some(counts) => kestrel_deploy::prune::apply_channel_counts(
                model,
                spec.name,
                self.meta.in_chans,
                &counts,
                device,
            )
            .map_err(|reason| TrainError::Checkpoint {
                path: self.dir.join(CHANNELS_FILE),
                reason,
            }),
        }
    }

    /// The channel counts of a channel-pruned folder ([`CHANNELS_FILE`]), `None` for others.
    pub fn channel_counts(
        &self,
    ) -> Result<Option<kestrel_deploy::prune::ChannelCounts>, TrainError> {
        read_channel_counts(&self.dir)
    }

    /// Whether the folder holds an int8 model (written by `kestrel quantize`) rather than
    /// fp32 weights.
    pub fn is_int8(&self) -> bool {
        self.dir.join(INT8_FILE).is_file() && !self.dir.join(WEIGHTS_FILE).exists()
    }

    /// Whether the folder's weights are a sparse file ([`SPARSE_FILE`], `kestrel prune
    /// --method l1`) rather than [`WEIGHTS_FILE`].
    pub fn is_sparse(&self) -> bool {
        self.dir.join(SPARSE_FILE).is_file() && !self.dir.join(WEIGHTS_FILE).exists()
    }

    /// The int8 model as a lowered graph for the fast engine: the architecture lowered, every
    /// parameter replaced from [`INT8_FILE`].
    pub fn load_int8_graph(&self) -> Result<kestrel_deploy::Graph, TrainError> {
        let path = self.dir.join(INT8_FILE);
        let err = |reason: String| TrainError::Checkpoint {
            path: path.clone(),
            reason,
        };
        let model = self.build_architecture(&Device::flex())?;
        let graph = kestrel_deploy::lower_graph(&model, self.meta.in_chans)
            .map_err(|e| err(e.to_string()))?;
        kestrel_deploy::quant::load(graph, &self.meta.model, &path).map_err(err)
    }

    /// The folder's model ready for inference: the int8 one on the fast engine (whatever
    /// `engine` asks, with a notice when it asked for burn), else the weights on `engine`.
    pub fn runner(
        &self,
        device: &Device,
        engine: kestrel_deploy::EngineKind,
    ) -> Result<(kestrel_deploy::Runner, Option<String>), TrainError> {
        use burn::module::Module;
        if self.is_int8() {
            let graph = self.load_int8_graph()?;
            return Ok(int8_runner(&graph, device, engine));
        }
        let model = self.load_model(device)?;
        Ok(kestrel_deploy::Runner::new(
            model.valid(),
            self.meta.in_chans,
            device,
            engine,
        ))
    }

    /// Builds the model and loads the weights, on `device`.
    pub fn load_model(&self, device: &Device) -> Result<Model, TrainError> {
        if self.is_int8() {
            return Err(TrainError::Checkpoint {
                path: self.dir.clone(),
                reason: format!(
                    "holds an int8 model ({INT8_FILE}), which only the fast inference engine \
                     runs; it has no fp32 weights to train or export"
                ),
            });
        }
        let mut model = self.build_architecture(device)?;
        if self.is_sparse() {
            let path = self.dir.join(SPARSE_FILE);
            let sparse = std::fs::read(&path).map_err(|e| TrainError::io(&path, e))?;
            let dense = kestrel_deploy::prune::dense_bytes(&sparse, &self.meta.model).map_err(
                |reason| TrainError::Checkpoint {
                    path: path.clone(),
                    reason,
                },
            )?;
            kestrel_models::weights::load_safetensors_bytes(&mut model, dense, &path)?;
            return Ok(model);
        }
        load_weights(
            &mut model,
            &self.dir.join(WEIGHTS_FILE),
            &LoadOptions::default(),
        )?;
        Ok(model)
    }
}

/// The channel counts in `dir`'s [`CHANNELS_FILE`], `None` when it has none.
pub fn read_channel_counts(
    dir: &Path,
) -> Result<Option<kestrel_deploy::prune::ChannelCounts>, TrainError> {
    let path = dir.join(CHANNELS_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| TrainError::Checkpoint {
            path,
            reason: format!("invalid channel counts: {e}"),
        })
}

/// The fast engine on an int8 graph, with the notices for what it cannot honour.
pub fn int8_runner(
    graph: &kestrel_deploy::Graph,
    device: &Device,
    engine: kestrel_deploy::EngineKind,
) -> (kestrel_deploy::Runner, Option<String>) {
    let runner = kestrel_deploy::Runner::Fast(Box::new(kestrel_deploy::Engine::new(graph)));
    let notice = if engine == kestrel_deploy::EngineKind::Burn {
        Some("an int8 model runs on the fast engine only; using it".to_string())
    } else if *device != Device::flex() {
        Some("an int8 model runs on the CPU's fast engine; using it".to_string())
    } else {
        None
    };
    (runner, notice)
}
