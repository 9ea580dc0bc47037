//! The optimizer's state as named tensors, for checkpoints and resume.
//!
//! Keys are `<parameter path>.<slot>` with torch's slot names (`fc.weight.exp_avg`), so the
//! state survives a fresh process, where parameter ids differ; `steps` is the step count.

use std::collections::{BTreeMap, HashMap};

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::prelude::*;

use super::{Optimizer, OptimizerKind, ParamState};
use crate::error::TrainError;

/// An optimizer's state, detached from any module.
#[derive(Clone, Debug, Default)]
pub struct OptimizerState {
    pub steps: u64,
    pub tensors: BTreeMap<String, Tensor<1>>,
}

/// Each float parameter's dotted path and id, in module order.
fn parameter_paths<M: Module>(module: &M) -> Vec<(String, ParamId, usize)> {
    struct Paths {
        stack: Vec<String>,
        found: Vec<(String, ParamId, usize)>,
    }
    impl ModuleVisitor for Paths {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.stack.push(name.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.stack.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let numel = param.val().dims().iter().product();
            self.found.push((self.stack.join("."), param.id, numel));
        }
    }
    let mut paths = Paths {
        stack: Vec::new(),
        found: Vec::new(),
    };
    module.visit(&mut paths);
    paths.found
}

impl Optimizer {
    /// The state of every parameter of `module` that has had a step.
    pub fn export_state<M: Module>(&self, module: &M) -> OptimizerState {
        let mut tensors = BTreeMap::new();
        for (path, id, _) in parameter_paths(module) {
            let Some(state) = self.states.get(&id) else {
                continue;
            };
            let mut put = |slot: &str, tensor: &Tensor<1>| {
                tensors.insert(format!("{path}.{slot}"), tensor.clone());
            };
            match state {
                ParamState::Sgd { momentum_buffer } => {
                    if let Some(buffer) = momentum_buffer {
                        put("momentum_buffer", buffer);
                    }
                }
                ParamState::Adam {
                    step,
                    exp_avg,
                    exp_avg_sq,
                } => {
                    // The step count as a one-element tensor: exact in f32 up to 2^24 steps.
                    put(
                        "step",
                        &Tensor::from_floats([*step as f32], &exp_avg.device()),
                    );
                    put("exp_avg", exp_avg);
                    put("exp_avg_sq", exp_avg_sq);
                }
                ParamState::Rmsprop {
                    square_avg,
                    grad_avg,
                    momentum_buffer,
                } => {
                    put("square_avg", square_avg);
                    if let Some(mean) = grad_avg {
                        put("grad_avg", mean);
                    }
                    if let Some(buffer) = momentum_buffer {
                        put("momentum_buffer", buffer);
                    }
                }
                ParamState::Lamb {
                    exp_avg,
                    exp_avg_sq,
                } => {
                    put("exp_avg", exp_avg);
                    put("exp_avg_sq", exp_avg_sq);
                }
            }
        }
        OptimizerState {
            steps: self.steps,
            tensors,
        }
    }

    /// Restores a state exported by [`Optimizer::export_state`] for the same kind of optimizer
    /// onto `module`'s parameters (matched by path). A key for no parameter, a tensor of the
    /// wrong size or a missing slot is an error naming the key.
    pub fn import_state<M: Module>(
        &mut self,
        module: &M,
        state: OptimizerState,
    ) -> Result<(), TrainError> {
        let mut tensors = state.tensors;
        let mut states = HashMap::new();
        for (path, id, numel) in parameter_paths(module) {
            let mut take = |slot: &str| -> Result<Option<Tensor<1>>, TrainError> {
                let key = format!("{path}.{slot}");
                match tensors.remove(&key) {
                    Some(t) if slot != "step" && t.dims()[0] != numel => {
                        Err(TrainError::Config(format!(
                            "optimizer state {key}: {} values for a parameter of {numel}",
                            t.dims()[0]
                        )))
                    }
                    other => Ok(other),
                }
            };
            let required = |slot: &str, t: Option<Tensor<1>>| {
                t.ok_or_else(|| {
                    TrainError::Config(format!("optimizer state {path}.{slot}: missing"))
                })
            };
            let restored = match self.config.kind {
                OptimizerKind::Sgd => take("momentum_buffer")?.map(|buffer| ParamState::Sgd {
                    momentum_buffer: Some(buffer),
                }),
                OptimizerKind::Adam | OptimizerKind::Adamw => match take("exp_avg")? {
                    None => None,
                    Some(exp_avg) => {
                        let step = required("step", take("step")?)?.into_scalar::<f32>() as u64;
                        let exp_avg_sq = required("exp_avg_sq", take("exp_avg_sq")?)?;
                        Some(ParamState::Adam {
                            step,
                            exp_avg,
                            exp_avg_sq,
                        })
                    }
                },
                OptimizerKind::Rmsprop | OptimizerKind::Rmsproptf => take("square_avg")?
                    .map(|square_avg| -> Result<_, TrainError> {
                        Ok(ParamState::Rmsprop {
                            square_avg,
                            grad_avg: take("grad_avg")?,
                            momentum_buffer: take("momentum_buffer")?,
                        })
                    })
                    .transpose()?,
                OptimizerKind::Lamb => match take("exp_avg")? {
                    None => None,
                    Some(exp_avg) => Some(ParamState::Lamb {
                        exp_avg,
                        exp_avg_sq: required("exp_avg_sq", take("exp_avg_sq")?)?,
                    }),
                },
            };
            if let Some(restored) = restored {
                states.insert(id, restored);
            }
        }
        if let Some(key) = tensors.keys().next() {
            return Err(TrainError::Config(format!(
                "optimizer state {key}: no such parameter or slot for {} on this model",
                self.config.kind
            )));
        }
        self.states = states;
        self.steps = state.steps;
        Ok(())
    }
}
