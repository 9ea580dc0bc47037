//! `--precision`: the float type a GPU device computes in, for inference and for training.

use burn::tensor::FloatDType;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    F16,
    Bf16,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "fp32" | "float32" => Ok(Precision::F32),
            "f16" | "fp16" | "float16" | "half" => Ok(Precision::F16),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            other => Err(format!(
                "unknown precision '{other}'; valid: f32, f16, bf16"
            )),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        })
    }
}

impl Precision {
    /// The half type, `None` for f32.
    pub fn half_dtype(self) -> Option<FloatDType> {
        match self {
            Precision::F32 => None,
            Precision::F16 => Some(FloatDType::F16),
            Precision::Bf16 => Some(FloatDType::BF16),
        }
    }

    /// Why `device` cannot compute in this precision, if it cannot: the CPU computes in f32, and
    /// a GPU may lack a half type.
    pub fn unsupported_on(self, device: &burn::prelude::Device) -> Option<&'static str> {
        let dtype = self.half_dtype()?;
        if *device == burn::prelude::Device::flex() {
            return Some(
                "the CPU backend computes in f32; half precision is for a GPU device (--device wgpu; `kestrel devices` lists them), and int8 on the CPU is `kestrel quantize`",
            );
        }
        (!device.supports_dtype(dtype))
            .then_some("the device does not support this type (try f16 or f32)")
    }
}
