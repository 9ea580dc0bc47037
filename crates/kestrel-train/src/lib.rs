//! kestrel-train: losses, optimizers, schedules, the training loop and checkpoints.

pub mod atomic;
pub mod checkpoint;
pub mod config_file;
pub mod data_config;
pub mod ema;
pub mod error;
pub mod evaluate;
pub mod finetune;
pub mod grad;
pub mod infer;
pub mod logs;
pub mod loss;
pub mod optim;
pub mod plots;
pub mod precision;
pub mod run_dir;
pub mod run_state;
pub mod schedule;
pub mod source;
pub mod trainer;

pub use checkpoint::{Checkpoint, CheckpointMeta};
pub use error::TrainError;
pub use evaluate::{evaluate_checkpoint, open_eval_data, EvalData, EvalOptions, Evaluation, Split};
pub use precision::Precision;
pub use run_dir::{ExistingRun, RunDir};
pub use source::{check_img_size, load_model, LoadedModel, ModelSource, RegistrySource};
pub use trainer::{
    train, train_run, DistillConfig, EpochLog, RunOptions, TrainConfig, TrainOutcome,
};
