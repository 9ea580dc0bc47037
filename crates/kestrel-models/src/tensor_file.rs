//! Named float32 tensors in safetensors files: model inputs (`kestrel preprocess`), logits
//! (`kestrel forward`) and test fixtures. Weights have their own loader in [`crate::weights`].

use std::path::Path;

use safetensors::tensor::{Dtype, TensorView};

use crate::error::ModelError;

fn error(path: &Path, reason: impl Into<String>) -> ModelError {
    ModelError::TensorFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Reads tensor `name` (F32, or F64 narrowed to f32) from a safetensors file: (shape, values).
pub fn read_f32(path: &Path, name: &str) -> Result<(Vec<usize>, Vec<f32>), ModelError> {
    let bytes = std::fs::read(path).map_err(|e| error(path, format!("cannot read: {e}")))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| error(path, format!("not a valid safetensors file: {e}")))?;
    let t = st.tensor(name).map_err(|_| {
        let mut names: Vec<String> = st.names().into_iter().map(|n| n.to_string()).collect();
        names.sort();
        error(
            path,
            format!("no tensor named '{name}' (found: {})", names.join(", ")),
        )
    })?;
    let data: Vec<f32> = match t.dtype() {
        Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => t
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        other => {
            return Err(error(
                path,
                format!("tensor '{name}' has dtype {other:?}; expected F32"),
            ))
        }
    };
    Ok((t.shape().to_vec(), data))
}

/// Writes one f32 tensor under `name`; `data` must hold `shape`'s product of values.
pub fn write_f32(path: &Path, name: &str, shape: &[usize], data: &[f32]) -> Result<(), ModelError> {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = TensorView::new(Dtype::F32, shape.to_vec(), &bytes)
        .map_err(|e| error(path, format!("tensor '{name}' of shape {shape:?}: {e}")))?;
    safetensors::serialize_to_file([(name, view)], None, path)
        .map_err(|e| error(path, format!("cannot write: {e}")))
}
