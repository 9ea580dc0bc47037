//! `--device`: which backend runs the model. GPU backends exist only in builds with their feature.

use anyhow::{bail, Result};
use burn::prelude::Device;

pub const DEVICE_HELP: &str = "cpu (burn's flex backend, default), wgpu[:N] (needs --features wgpu), cuda[:N] (needs --features cuda)";

pub fn parse_device(spec: &str) -> Result<Device> {
    let (kind, index) = match spec.split_once(':') {
        Some((k, i)) => (
            k,
            i.parse::<usize>()
                .map_err(|_| anyhow::anyhow!("--device {spec}: bad device index '{i}'"))?,
        ),
        None => (spec, 0),
    };
    let _ = index;
    match kind.to_ascii_lowercase().as_str() {
        "cpu" | "flex" => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" | "gpu" => {
            use burn::tensor::DeviceKind;
            let kind = if spec.contains(':') { DeviceKind::DiscreteGpu(index) } else { DeviceKind::DefaultDevice };
            Ok(Device::wgpu(kind))
        }
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(index)),
        "wgpu" | "gpu" | "cuda" => bail!(
            "--device {spec}: this kestrel binary was built without the '{kind}' backend; rebuild with `cargo build --release --features {}`",
            if kind == "cuda" { "cuda" } else { "wgpu" }
        ),
        other => bail!("--device {other}: unknown device; valid: {DEVICE_HELP}"),
    }
}
