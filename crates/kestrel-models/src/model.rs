//! `Model`: one type for every architecture in the registry, so the trainer, the exporter and
//! the CLI handle any of them. Each variant wraps one family's module; the weight files never
//! see the variant names (they are skipped on save and load).

use burn::prelude::*;

use crate::lenet::LeNet5;
use crate::resnet::ResNet;

#[derive(Module, Debug)]
pub enum Model {
    LeNet5(LeNet5),
    ResNet(ResNet),
}

impl Model {
    /// NCHW images -> logits [N, num_classes].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        match self {
            Model::LeNet5(m) => m.forward(x),
            Model::ResNet(m) => m.forward(x),
        }
    }
}
