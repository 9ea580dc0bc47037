//! Reading and writing named float32 tensors in safetensors files.

use std::path::Path;

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};

/// Reads tensor `name` from a safetensors file as f32: (shape, values).
pub fn read_f32(path: &Path, name: &str) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: not a valid safetensors file: {e}", path.display()))?;
    let t = st.tensor(name).map_err(|_| {
        let names: Vec<String> = st.names().into_iter().map(|n| n.to_string()).collect();
        anyhow::anyhow!(
            "{}: no tensor named '{name}' (found: {})",
            path.display(),
            names.join(", ")
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
        other => bail!(
            "{}: tensor '{name}' has dtype {other:?}; expected F32",
            path.display()
        ),
    };
    Ok((t.shape().to_vec(), data))
}

/// Writes one f32 tensor under `name`.
pub fn write_f32(path: &Path, name: &str, shape: &[usize], data: &[f32]) -> Result<()> {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view = TensorView::new(Dtype::F32, shape.to_vec(), &bytes)?;
    safetensors::serialize_to_file([(name, view)], None, path)
        .with_context(|| format!("cannot write {}", path.display()))
}
