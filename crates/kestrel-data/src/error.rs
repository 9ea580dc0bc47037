use std::path::PathBuf;

/// Every data error names what it was reading, so a user can find the bad file.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        // Not a `#[source]`: the message already holds it, and `{:#}` would print it twice.
        error: std::io::Error,
    },
    #[error("{path}: not found")]
    NotFound { path: PathBuf },
    /// A file whose content is not what its format promises (bad magic, truncated, corrupt).
    #[error("{path}: {reason}")]
    Format { path: PathBuf, reason: String },
    /// An image that could not be decoded.
    #[error("{path}: cannot decode image: {reason}")]
    Decode { path: PathBuf, reason: String },
    /// A dataset that is structurally unusable (empty class folder, no classes, ...).
    #[error("{path}: {reason}")]
    Dataset { path: PathBuf, reason: String },
    /// A bad parameter (augmentation name, magnitude out of range, split fraction, ...).
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            DataError::NotFound { path }
        } else {
            DataError::Io {
                path,
                error: source,
            }
        }
    }
    pub fn format(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        DataError::Format {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, DataError>;

/// The message of a caught panic (`catch_unwind`'s payload): its `&str` or `String`, else
/// "unknown panic". Every crate that turns a panic into an error uses this one.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
