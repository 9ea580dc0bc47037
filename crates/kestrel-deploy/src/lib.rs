//! kestrel-deploy: what turns a trained model into something fast to ship.
//!
//! - [`fold`]: BatchNorm folded into the preceding conv.
//! - [`engine`] + [`lower`]: the fast CPU inference path. A zoo model is lowered once into fused
//!   NHWC ops over `kestrel-kernels` (packed weights, bias/activation/residual in the conv
//!   epilogues, an arena that reuses activation buffers), then run many times.
//! - [`onnx`]: a lowered graph exported as an ONNX file (NCHW, opset 17, dynamic batch).
//! - [`quant`]: post-training static int8 quantization of a lowered graph (calibration,
//!   per-channel weights, the int8 model file).
//! - [`prune`]: magnitude pruning stored sparse, and channel pruning along the dependency
//!   graph (residual adds, depthwise convs, SE gates).
//! - [`Runner`]: what the commands call: the fast engine where the model is supported, burn
//!   otherwise, with the reason for the fallback.

pub mod engine;
pub mod fold;
pub mod lower;
pub mod onnx;
pub mod prune;
pub mod quant;

pub use engine::{BatchPlan, ConvSpec, Engine, Graph, Op};
pub use lower::{lower, lower_graph, Unsupported};

use burn::prelude::*;
use burn::tensor::TensorData;
use kestrel_models::Model;

/// Which implementation runs inference.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    /// kestrel's fused kernels (falls back to burn for unsupported models, with a notice).
    Fast,
    /// burn's own ops, op by op.
    Burn,
}

impl std::str::FromStr for EngineKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "fast" | "kestrel" => Ok(EngineKind::Fast),
            "burn" => Ok(EngineKind::Burn),
            other => Err(format!("unknown engine '{other}' (expected fast or burn)")),
        }
    }
}

/// A model ready for inference on one engine.
pub enum Runner {
    Fast(Box<Engine>),
    Burn(Model, Device),
}

impl Runner {
    /// Prepares `model`: lowered for the fast engine when asked and possible (CPU only),
    /// else burn on `device`. The second value is the reason a fast request fell back.
    pub fn new(
        model: Model,
        in_ch: usize,
        device: &Device,
        kind: EngineKind,
    ) -> (Runner, Option<String>) {
        if kind == EngineKind::Burn {
            return (Runner::Burn(model, device.clone()), None);
        }
        if *device != Device::flex() {
            return (
                Runner::Burn(model, device.clone()),
                Some("the fast engine runs on the CPU; using burn on the selected device".into()),
            );
        }
        match lower(&model, in_ch) {
            Ok(e) => (Runner::Fast(Box::new(e)), None),
            Err(why) => (
                Runner::Burn(model, device.clone()),
                Some(format!("{why}; using burn")),
            ),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Runner::Fast(_) => "fast",
            Runner::Burn(..) => "burn",
        }
    }

    /// NCHW images (`[n, c, h, w]` values, row-major) -> logits `[n, classes]`, row-major,
    /// with the class count.
    pub fn logits(&self, x: &[f32], shape: [usize; 4]) -> Result<(Vec<f32>, usize), String> {
        let [n, c, h, w] = shape;
        match self {
            Runner::Fast(e) => {
                let v = e.run_nchw(x, n, c, h, w)?;
                let classes = v.len() / n.max(1);
                Ok((v, classes))
            }
            Runner::Burn(model, device) => {
                let t = Tensor::<4>::from_data(TensorData::new(x.to_vec(), shape), device);
                let y = model.forward(t);
                let classes = y.dims()[1];
                let v = y
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .map_err(|e| format!("reading logits: {e:?}"))?;
                Ok((v, classes))
            }
        }
    }

    /// [`Runner::logits`] on a burn tensor, returning a burn tensor on `device`.
    pub fn forward(&self, x: Tensor<4>) -> Result<Tensor<2>, String> {
        match self {
            // Logits come back as f32 whatever the device computes in (`--precision f16`), so
            // that softmax, metrics and files see one type.
            Runner::Burn(model, _) => {
                let y = model.forward(x);
                Ok(match y.dtype() {
                    burn::tensor::DType::F32 => y,
                    _ => y.cast(burn::tensor::FloatDType::F32),
                })
            }
            Runner::Fast(_) => {
                let shape = x.dims();
                let device = x.device();
                let v = x
                    .into_data()
                    .convert::<f32>()
                    .try_to_vec::<f32>()
                    .map_err(|e| format!("reading input: {e:?}"))?;
                let (y, classes) = self.logits(&v, shape)?;
                Ok(Tensor::<2>::from_data(
                    TensorData::new(y, [shape[0], classes]),
                    &device,
                ))
            }
        }
    }
}
