use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("unknown model '{name}'; known models include: {}", suggestions.join(", "))]
    UnknownModel {
        name: String,
        suggestions: Vec<String>,
    },
    #[error("model '{model}' has no pretrained tag '{tag}'; its tags: {}", tags.join(", "))]
    UnknownTag {
        model: String,
        tag: String,
        tags: Vec<String>,
    },
    #[error("{path}: {reason}")]
    Weights { path: PathBuf, reason: String },
    #[error("{path}: weights do not fit model '{model}':\n{details}")]
    Mismatch {
        path: PathBuf,
        model: String,
        details: String,
    },
    #[error("{path}: {reason}")]
    TensorFile { path: PathBuf, reason: String },
    #[error("{0}")]
    Input(String),
}
