//! Model EMA as timm's `ModelEmaV3`: a moving average of every float tensor of the model
//! (parameters and buffers such as BatchNorm's running statistics), with the optional warm-up
//! of the decay.

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::prelude::*;
use kestrel_models::Model;
use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// `ModelEmaV3`'s settings, with its names and defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmaConfig {
    pub decay: f64,
    pub min_decay: f64,
    pub update_after_step: u64,
    pub use_warmup: bool,
    pub warmup_gamma: f64,
    pub warmup_power: f64,
}

impl Default for EmaConfig {
    fn default() -> Self {
        EmaConfig {
            decay: 0.9999,
            min_decay: 0.0,
            update_after_step: 0,
            use_warmup: false,
            warmup_gamma: 1.0,
            warmup_power: 2.0 / 3.0,
        }
    }
}

impl EmaConfig {
    /// `ModelEmaV3.get_decay(step)`: 0 (a plain copy) up to `update_after_step + 1`, then
    /// `decay`, or with warm-up `1 − (1 + t/γ)^−power` kept in [min_decay, decay].
    pub fn decay_at(&self, step: u64) -> f64 {
        let t = step.saturating_sub(self.update_after_step + 1);
        if t == 0 {
            return 0.0;
        }
        if self.use_warmup {
            let d = 1.0 - (1.0 + t as f64 / self.warmup_gamma).powf(-self.warmup_power);
            d.min(self.decay).max(self.min_decay)
        } else {
            self.decay
        }
    }

    pub fn validate(&self) -> Result<(), TrainError> {
        if !(0.0..1.0).contains(&self.decay) {
            return Err(TrainError::Config(format!(
                "--ema-decay {}: must be in [0, 1)",
                self.decay
            )));
        }
        if !(self.warmup_gamma > 0.0 && self.warmup_power > 0.0) {
            return Err(TrainError::Config(format!(
                "EMA warm-up gamma {} and power {}: must be positive",
                self.warmup_gamma, self.warmup_power
            )));
        }
        Ok(())
    }
}

/// `ema.lerp_(value, 1 − decay)` as torch computes it in f32: from the nearer end.
pub fn lerp_towards(ema: Tensor<1>, value: Tensor<1>, decay: f64) -> Tensor<1> {
    let w = (1.0 - decay) as f32;
    if w < 0.5 {
        ema.clone().add(value.sub(ema).mul_scalar(w))
    } else {
        value.clone().sub(value.sub(ema).mul_scalar(1.0 - w))
    }
}

/// The averaged model, on the non-autodiff backend.
pub struct ModelEma {
    pub config: EmaConfig,
    pub model: Model,
    /// Updates so far (`ModelEmaV3.update`'s `step`).
    pub updates: u64,
}

impl ModelEma {
    /// Starts from a copy of `model` (the parameter ids are shared, which pairs the tensors).
    pub fn new(config: EmaConfig, model: &Model) -> ModelEma {
        ModelEma {
            config,
            model: model.valid(),
            updates: 0,
        }
    }

    /// One update towards `model`, as timm's train loop calls it after each optimizer step.
    pub fn update(&mut self, model: &Model) {
        self.updates += 1;
        let decay = self.config.decay_at(self.updates);
        let values = float_tensors(model);
        let mut mapper = LerpMapper { values, decay };
        self.model = self.model.clone().map(&mut mapper);
    }
}

/// Every float tensor of `module` (parameters and buffers), flattened, off the autodiff tape.
fn float_tensors<M: Module>(module: &M) -> HashMap<ParamId, Tensor<1>> {
    struct Collect(HashMap<ParamId, Tensor<1>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let t = param.val();
            let t = if t.is_autodiff() { t.inner() } else { t };
            let n: usize = t.dims().iter().product();
            self.0.insert(param.id, t.reshape([n]));
        }
    }
    let mut c = Collect(HashMap::new());
    module.visit(&mut c);
    c.0
}

struct LerpMapper {
    values: HashMap<ParamId, Tensor<1>>,
    decay: f64,
}

impl ModuleMapper for LerpMapper {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (id, tensor, mapper) = param.consume();
        let Some(value) = self.values.remove(&id) else {
            return Param::from_mapped_value(id, tensor, mapper);
        };
        let dims = tensor.dims();
        let n: usize = dims.iter().product();
        let updated = lerp_towards(tensor.reshape([n]), value, self.decay).reshape(dims);
        Param::from_mapped_value(id, updated, mapper)
    }
}
