#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] kestrel_data::DataError),
    #[error(transparent)]
    Model(#[from] kestrel_models::ModelError),
    #[error(transparent)]
    Eval(#[from] kestrel_eval::EvalError),
    #[error("{path}: {error}")]
    Io {
        path: std::path::PathBuf,
        // Not a `#[source]`: the message already holds it, and `{:#}` would print it twice.
        error: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Checkpoint {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("{0}")]
    Config(String),
    /// The inference engine refused an input (e.g. a size the model cannot take).
    #[error("inference: {0}")]
    Engine(String),
    /// A [`crate::TrainConfig`] field out of range; `field` is its name, so a caller can point
    /// at its own spelling of it (a CLI flag, a config key).
    #[error("{field} = {value}: {reason}")]
    InvalidField {
        field: &'static str,
        value: String,
        reason: &'static str,
    },
    #[error(
        "training diverged: loss is {loss} at epoch {epoch}, step {step}; lower the learning rate"
    )]
    Diverged {
        loss: f32,
        epoch: usize,
        step: usize,
    },
}

impl TrainError {
    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            error: source,
        }
    }
}
