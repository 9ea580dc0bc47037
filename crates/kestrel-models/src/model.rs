//! `Model`: one type for every architecture in the registry, so the trainer, the exporter and
//! the CLI handle any of them. Each variant wraps one family's module; the weight files never
//! see the variant names (they are skipped on save and load).
//!
//! Adding a family: implement [`Classifier`] for its module and add one line to the `models!`
//! list below.

use burn::prelude::*;

/// What every family's top-level module provides.
pub trait Classifier {
    /// NCHW images -> logits [N, num_classes].
    fn forward(&self, x: Tensor<4>) -> Tensor<2>;
    /// Tensor-name prefixes (PyTorch names) of the classifier head, which `--num-classes`
    /// re-initialises when fine-tuning to another class count.
    fn classifier_prefixes(&self) -> &'static [&'static str];
}

macro_rules! models {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        #[derive(Module, Debug)]
        pub enum Model {
            $($variant($ty),)*
        }

        impl Model {
            fn inner(&self) -> &dyn Classifier {
                match self {
                    $(Model::$variant(m) => m,)*
                }
            }
            /// The family's Rust type name, for messages.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Model::$variant(_) => stringify!($variant),)*
                }
            }
        }
    };
}

models! {
    LeNet5(crate::lenet::LeNet5),
    ResNet(crate::resnet::ResNet),
    MobileNet(crate::mobilenet::MobileNet),
    ShuffleNetV2(crate::shufflenet::ShuffleNetV2),
    Vgg(crate::vgg::Vgg),
    AlexNet(crate::alexnet::AlexNet),
    EfficientNet(crate::efficientnet::EfficientNet),
    RegNet(crate::regnet::RegNet),
    ConvNeXt(crate::convnext::ConvNeXt),
}

impl Model {
    /// NCHW images -> logits [N, num_classes].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.inner().forward(x)
    }
    pub fn classifier_prefixes(&self) -> &'static [&'static str] {
        self.inner().classifier_prefixes()
    }
}

impl Model {
    /// Trainable parameters, counted as PyTorch's `sum(p.numel() for p in model.parameters())`:
    /// BatchNorm running statistics are buffers there, not parameters, so they are left out.
    pub fn num_trainable_params(&self) -> usize {
        use burn::store::ModuleSnapshot;
        self.collect(None, None, true)
            .iter()
            .filter(|t| !t.name.ends_with("running_mean") && !t.name.ends_with("running_var"))
            .map(|t| t.shape.iter().product::<usize>())
            .sum()
    }
}
