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
    /// The loss or a gradient stopped being finite; no update was applied, and the newest
    /// checkpoint on disk (`kept`) is from before it.
    #[error(
        "training stopped: the {what} {} {value} at epoch {epoch}, step {step}; lower the learning \
         rate or clip gradients (--clip-grad). {}",
        if *what == "weights" { "are" } else { "is" },
        match kept { Some(p) => format!("The last good checkpoint is kept: {}", p.display()),
                     None => "No checkpoint had been written yet".to_string() }
    )]
    Diverged {
        /// "loss", "gradient" or "weights".
        what: &'static str,
        value: String,
        epoch: usize,
        step: usize,
        kept: Option<std::path::PathBuf>,
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
