//! What a run folder holds beyond the weights, so that `kestrel train --resume` continues a run
//! exactly where it stopped.
//!
//! Two checkpoint sets, each committed as one unit by [`crate::atomic::commit_set`]:
//! - `model.*`: the best epoch. `model.safetensors` + `checkpoint.json` (what eval/predict read),
//!   `model.optim.safetensors`, `model.ema.safetensors` (with EMA) and the manifest
//!   `model.state.json`.
//! - `last.*`: the latest optimizer step that was checkpointed: `last.safetensors`,
//!   `last.optim.safetensors`, `last.ema.safetensors` and `last.state.json`.
//!
//! The manifest ([`TrainState`]) holds the loader position (epoch and batches done), the step
//! counters, the epoch's running sums, the best epoch so far, the early-stopping count, the
//! history, a fingerprint of the dataset and the length and CRC-32C of every file of its set.
//! Every RNG in training is a pure function of the seed and the position (the loader's
//! per-sample seeds, Mixup's per-batch seed, the backend's per-batch reseed for dropout), so the
//! position is all the RNG state there is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use kestrel_data::splits::Splits;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::atomic::{commit_set, read_verified, recover_set, FileDigest};
use crate::error::TrainError;
use crate::optim::OptimizerState;
use crate::trainer::EpochLog;

pub const STATE_FORMAT: &str = "kestrel-train-state-v1";

/// Which checkpoint set: the best epoch (`model.*`) or the latest step (`last.*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Best,
    Last,
}

impl Slot {
    fn prefix(self) -> &'static str {
        match self {
            Slot::Best => "model",
            Slot::Last => "last",
        }
    }
    pub fn weights_file(self) -> String {
        format!("{}.safetensors", self.prefix())
    }
    pub fn optimizer_file(self) -> String {
        format!("{}.optim.safetensors", self.prefix())
    }
    pub fn ema_file(self) -> String {
        format!("{}.ema.safetensors", self.prefix())
    }
    pub fn state_file(self) -> String {
        format!("{}.state.json", self.prefix())
    }
    fn known_files(self) -> Vec<String> {
        let mut names = vec![self.weights_file(), self.optimizer_file(), self.ema_file()];
        if self == Slot::Best {
            names.push(crate::checkpoint::META_FILE.into());
        }
        names
    }
}

/// f64 values that steer the run (the best accuracy so far) round-trip through JSON exactly,
/// as their bit patterns.
mod exact_f64 {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(v.to_bits())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(f64::from_bits(u64::deserialize(d)?))
    }
}

/// Where the run is and what it has seen.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Progress {
    /// The epoch in progress (1-based); `epochs + 1` once training is over.
    pub epoch: usize,
    /// Batches of `epoch` already trained on (the loader continues with the next one).
    pub batches_done: usize,
    /// Optimizer updates so far (the schedule's step count).
    pub step: usize,
    /// The epoch's running sums, so its log line is the same as without the interruption.
    #[serde(with = "exact_f64")]
    pub epoch_loss_sum: f64,
    pub epoch_correct: usize,
    pub epoch_seen: usize,
    pub epoch_seconds: f64,
    #[serde(with = "exact_f64")]
    pub epoch_lr_start: f64,
    pub best_epoch: usize,
    #[serde(with = "exact_f64")]
    pub best_val_accuracy: f64,
    /// Epochs since the best one (early stopping's count).
    pub epochs_since_best: usize,
    /// EMA updates so far (its warm-up's step count).
    pub ema_updates: u64,
    /// Set when early stopping ended the run.
    pub stopped_early: bool,
    /// Training seconds before this checkpoint (wall time across resumes).
    pub seconds: f64,
    pub history: Vec<EpochLog>,
    /// The f16 loss scaler's state (`--precision f16` runs only).
    #[serde(default)]
    pub loss_scaler: Option<crate::grad::LossScaler>,
}

impl Progress {
    pub fn start() -> Progress {
        Progress {
            epoch: 1,
            batches_done: 0,
            step: 0,
            epoch_loss_sum: 0.0,
            epoch_correct: 0,
            epoch_seen: 0,
            epoch_seconds: 0.0,
            epoch_lr_start: 0.0,
            best_epoch: 0,
            best_val_accuracy: f64::NEG_INFINITY,
            epochs_since_best: 0,
            ema_updates: 0,
            stopped_early: false,
            seconds: 0.0,
            history: Vec::new(),
            loss_scaler: None,
        }
    }
}

/// The images a run trains and validates on, told apart by their sources and labels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetFingerprint {
    pub description: String,
    pub train_images: usize,
    pub val_images: usize,
    pub class_names: Vec<String>,
    /// CRC-32C over every train and val image's source and label, in order.
    pub crc32c: u32,
}

impl DatasetFingerprint {
    pub fn of(splits: &Splits) -> DatasetFingerprint {
        let mut crc = 0u32;
        for part in [&splits.train, &splits.val] {
            for i in 0..part.len() {
                let item = format!("{}\t{}\n", part.source(i), part.label(i));
                crc = crc32c::crc32c_append(crc, item.as_bytes());
            }
        }
        DatasetFingerprint {
            description: splits.description.clone(),
            train_images: splits.train.len(),
            val_images: splits.val.len(),
            class_names: splits.class_names.clone(),
            crc32c: crc,
        }
    }
}

/// A checkpoint set's manifest (`model.state.json` / `last.state.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrainState {
    pub format: String,
    pub model: String,
    pub num_classes: usize,
    pub dataset: DatasetFingerprint,
    /// The [`crate::TrainConfig`] of the run.
    pub train_config: serde_json::Value,
    /// What the caller needs to start the run again (the CLI keeps its data flags here).
    #[serde(default)]
    pub launch: serde_json::Value,
    pub optimizer_steps: u64,
    pub progress: Progress,
    /// Length and CRC-32C of each file of the set.
    pub files: BTreeMap<String, FileDigest>,
}

/// The bytes of one checkpoint set, ready to commit.
pub struct SetFiles {
    pub weights: Vec<u8>,
    pub optimizer: Vec<u8>,
    pub ema: Option<Vec<u8>>,
    /// `checkpoint.json` (the best set only).
    pub meta: Option<Vec<u8>>,
}

/// Commits one checkpoint set; `state.files` is filled in here.
pub fn save_set(
    dir: &Path,
    slot: Slot,
    files: SetFiles,
    mut state: TrainState,
) -> Result<(), TrainError> {
    let mut list = vec![
        (slot.weights_file(), files.weights),
        (slot.optimizer_file(), files.optimizer),
    ];
    if let Some(ema) = files.ema {
        list.push((slot.ema_file(), ema));
    }
    if let Some(meta) = files.meta {
        list.push((crate::checkpoint::META_FILE.into(), meta));
    }
    commit_set(dir, &slot.state_file(), &list, |digests| {
        state.files = digests;
        serde_json::to_vec_pretty(&state).expect("train state serialises")
    })
}

/// A checkpoint set read back and verified.
pub struct LoadedSet {
    pub state: TrainState,
    pub state_path: PathBuf,
    pub weights_path: PathBuf,
    pub optimizer: OptimizerState,
    /// `*.ema.safetensors`, when the run keeps an EMA.
    pub ema_path: Option<PathBuf>,
}

/// Reads the manifest of a checkpoint set of the run in `dir` (without checking its files),
/// finishing or rolling back a commit that a kill interrupted first.
pub fn read_state(dir: &Path, slot: Slot) -> Result<(TrainState, PathBuf), TrainError> {
    if !dir.is_dir() {
        return Err(TrainError::Checkpoint {
            path: dir.into(),
            reason: "no such run folder".into(),
        });
    }
    for s in [Slot::Best, Slot::Last] {
        recover_set(dir, &s.state_file(), &s.known_files())?;
    }
    let state_path = dir.join(slot.state_file());
    let text = std::fs::read(&state_path).map_err(|e| TrainError::Checkpoint {
        path: state_path.clone(),
        reason: format!(
            "cannot read it ({e}); the run has no resumable checkpoint yet (one is written at \
             each epoch end and every --checkpoint-every steps)"
        ),
    })?;
    let state: TrainState = serde_json::from_slice(&text).map_err(|e| TrainError::Checkpoint {
        path: state_path.clone(),
        reason: format!("not a kestrel training state: {e}"),
    })?;
    if state.format != STATE_FORMAT {
        return Err(TrainError::Checkpoint {
            path: state_path.clone(),
            reason: format!(
                "format {:?}; this kestrel reads {STATE_FORMAT}",
                state.format
            ),
        });
    }
    Ok((state, state_path))
}

/// Reads a checkpoint set of the run in `dir`, finishing or rolling back a commit that a kill
/// interrupted first. Every file is checked against the manifest's digests.
pub fn load_set(dir: &Path, slot: Slot, device: &Device) -> Result<LoadedSet, TrainError> {
    let (state, state_path) = read_state(dir, slot)?;
    let digest = |name: &str| {
        state
            .files
            .get(name)
            .copied()
            .ok_or_else(|| TrainError::Checkpoint {
                path: state_path.clone(),
                reason: format!("lists no {name}"),
            })
    };
    let weights_path = dir.join(slot.weights_file());
    read_verified(&weights_path, &digest(&slot.weights_file())?, &state_path)?;
    let optimizer_path = dir.join(slot.optimizer_file());
    let optimizer_bytes = read_verified(
        &optimizer_path,
        &digest(&slot.optimizer_file())?,
        &state_path,
    )?;
    let optimizer = optimizer_state_from_bytes(
        &optimizer_bytes,
        state.optimizer_steps,
        &optimizer_path,
        device,
    )?;
    let ema_path = match state.files.get(&slot.ema_file()) {
        Some(d) => {
            let p = dir.join(slot.ema_file());
            read_verified(&p, d, &state_path)?;
            Some(p)
        }
        None => None,
    };
    Ok(LoadedSet {
        state,
        state_path,
        weights_path,
        optimizer,
        ema_path,
    })
}

/// The optimizer's tensors as a safetensors file (f32, keys as [`OptimizerState`] names them).
pub fn optimizer_state_bytes(state: &OptimizerState) -> Vec<u8> {
    let data: Vec<(String, Vec<usize>, Vec<u8>)> = state
        .tensors
        .iter()
        .map(|(name, t)| {
            let values: Vec<f32> = t
                .to_data()
                .convert::<f32>()
                .try_to_vec()
                .expect("optimizer state is f32");
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name.clone(), vec![values.len()], bytes)
        })
        .collect();
    let views: Vec<(String, TensorView)> = data
        .iter()
        .map(|(name, shape, bytes)| {
            let view =
                TensorView::new(Dtype::F32, shape.clone(), bytes).expect("consistent tensor view");
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize(views, None).expect("optimizer state serialises")
}

fn optimizer_state_from_bytes(
    bytes: &[u8],
    steps: u64,
    path: &Path,
    device: &Device,
) -> Result<OptimizerState, TrainError> {
    let bad = |reason: String| TrainError::Checkpoint {
        path: path.into(),
        reason,
    };
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
    let mut tensors = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 || view.shape().len() != 1 {
            return Err(bad(format!("tensor {name}: expected a 1-D F32 tensor")));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let n = values.len();
        tensors.insert(
            name,
            Tensor::<1>::from_data(TensorData::new(values, [n]), device),
        );
    }
    Ok(OptimizerState { steps, tensors })
}
