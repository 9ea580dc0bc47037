use std::path::PathBuf;

/// Everything that can go wrong while computing or writing an evaluation.
///
/// Bad input is always reported through one of these variants, never through a panic. File
/// errors name the path that failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// No samples at all: every metric would be 0/0.
    #[error("no samples to evaluate (need at least one)")]
    Empty,
    /// `num_classes` (or the number of class names) is zero.
    #[error("number of classes must be at least 1")]
    NoClasses,
    /// The flat score buffer is not `num_samples × num_classes` long.
    #[error(
        "scores has {len} values, expected {samples} samples x {classes} classes = {expected}"
    )]
    ScoresShape {
        len: usize,
        samples: usize,
        classes: usize,
        expected: usize,
    },
    /// Two inputs that must have the same length do not (e.g. true and predicted labels,
    /// class names and number of classes).
    #[error("{what}: expected {expected}, got {actual}")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        actual: usize,
    },
    /// A (true or predicted) label outside `0..num_classes`.
    #[error("{what} at sample {index} is {label}, but there are only {num_classes} classes")]
    LabelOutOfRange {
        what: &'static str,
        index: usize,
        label: usize,
        num_classes: usize,
    },
    /// A NaN or infinite score.
    #[error("score for sample {sample}, class {class} is not finite ({value})")]
    NonFiniteScore {
        sample: usize,
        class: usize,
        value: f32,
    },
    /// `k = 0` for top-k accuracy.
    #[error("top-k accuracy needs k >= 1, got k = {0}")]
    InvalidK(usize),
    /// Reading or writing a file failed.
    #[error("{path}: {error}", path = .path.display())]
    Io {
        path: PathBuf,
        // Not a `#[source]`: the message already holds it, and `{:#}` would print it twice.
        error: std::io::Error,
    },
    /// Serialising or parsing a JSON file failed.
    #[error("{path}: {source}", path = .path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl EvalError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EvalError::Io {
            path: path.into(),
            error: source,
        }
    }
}

/// Shorthand for results in this crate.
pub type Result<T> = std::result::Result<T, EvalError>;
