//! kestrel-train: losses, optimizers, schedules, the training loop and checkpoints.

pub mod checkpoint;
pub mod data_config;
pub mod error;
pub mod infer;
pub mod loss;
pub mod optim;
pub mod schedule;
pub mod trainer;

pub use checkpoint::{Checkpoint, CheckpointMeta};
pub use error::TrainError;
pub use trainer::{train, EpochLog, TrainConfig, TrainOutcome};
