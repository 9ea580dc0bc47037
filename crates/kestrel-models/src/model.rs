//! `Model`: one type for every architecture in the registry, so the trainer, the exporter and
//! the CLI handle any of them. Each variant wraps one family's module; the weight files never
//! see the variant names (they are skipped on save and load).
//!
//! Adding a family: implement [`Classifier`] (in `crate::classifier`, below the families) for its
//! module and add one line to the `models!` list below. This module sits above the families:
//! none of them imports it.

use burn::prelude::*;

pub use crate::classifier::Classifier;

macro_rules! models {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        #[derive(Module, Debug)]
        pub enum Model {
            $($variant($ty),)*
        }

        $(impl From<$ty> for Model {
            fn from(m: $ty) -> Self {
                Model::$variant(m)
            }
        })*

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
    Vit(crate::vit::VisionTransformer),
    Swin(crate::swin::SwinTransformer),
    T2tVit(crate::t2t::T2tVit),
    MaxxVit(crate::maxxvit::MaxxVit),
}

impl Model {
    /// NCHW images -> logits [N, num_classes].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.inner().forward(x)
    }
    pub fn classifier_prefixes(&self) -> &'static [&'static str] {
        self.inner().classifier_prefixes()
    }
    /// See [`Classifier::forward_heads`].
    pub fn forward_heads(&self, x: Tensor<4>) -> (Tensor<2>, Option<Tensor<2>>) {
        self.inner().forward_heads(x)
    }
    pub fn rebuilt_buffers(&self) -> &'static [&'static str] {
        self.inner().rebuilt_buffers()
    }
}

impl Model {
    /// Trainable parameters, counted as PyTorch's `sum(p.numel() for p in model.parameters())`:
    /// BatchNorm running statistics are buffers there, not parameters, so they are left out.
    pub fn num_trainable_params(&self) -> usize {
        /// Sums lazy shapes, so counting never materialises a parameter (building a model is
        /// then nearly free, even for VGG's 138 M weights).
        struct Counter {
            path: Vec<String>,
            total: usize,
        }
        impl burn::module::ModuleVisitor for Counter {
            fn enter_module(&mut self, name: &str, _container_type: &str) {
                self.path.push(name.to_string());
            }
            fn exit_module(&mut self, _name: &str, _container_type: &str) {
                self.path.pop();
            }
            fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
                let is_buffer = matches!(
                    self.path.last().map(String::as_str),
                    Some("running_mean" | "running_var")
                );
                if !is_buffer {
                    self.total += param.lazy_shape().num_elements();
                }
            }
        }
        let mut counter = Counter {
            path: Vec::new(),
            total: 0,
        };
        self.visit(&mut counter);
        counter.total
    }
}

impl Model {
    /// Checks that the model accepts one image of `input` = (channels, height, width), by running
    /// it once on zeros. burn asserts shapes by panicking deep inside a layer; this turns that into
    /// an error a user can act on, before a long job starts.
    pub fn check_input(&self, input: [usize; 3], device: &Device) -> Result<(), crate::ModelError> {
        let [c, h, w] = input;
        let quiet = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.valid()
                .forward(Tensor::zeros([1, c, h, w], &device.clone().inner()))
                .dims()
        }));
        std::panic::set_hook(quiet);
        result.map(|_| ()).map_err(|p| {
            let msg = kestrel_data::error::panic_message(p.as_ref());
            crate::ModelError::Input(format!(
                "{} cannot take a {c}×{h}×{w} input ({msg})",
                self.kind()
            ))
        })
    }
}

impl Model {
    /// Casts every float parameter and buffer that is not already `dtype` to it. On an autodiff
    /// device the cast is on the tape, so a half-precision copy of an f32 model passes its
    /// gradients back to the f32 parameters (mixed-precision training). BatchNorm's running
    /// statistics are shared between a module and its copies (burn's `RunningState`), so casting
    /// a copy casts them in the original too; cast back after the step.
    pub fn to_float_dtype(self, dtype: burn::tensor::FloatDType) -> Self {
        use burn::module::{ModuleMapper, Param};
        struct Cast(burn::tensor::FloatDType);
        impl ModuleMapper for Cast {
            fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
                let (id, t, mapper) = param.consume();
                let t = if t.dtype() == self.0.into() {
                    t
                } else {
                    t.cast(self.0)
                };
                Param::from_mapped_value(id, t, mapper)
            }
        }
        self.map(&mut Cast(dtype))
    }

    /// Casts every float parameter and buffer to the default float type of the device it is on
    /// (set by `--precision`; f32 unless configured). Loading keeps a file's dtype, so f32
    /// weights loaded into a half-precision model would otherwise stay f32 and mismatch its
    /// activations.
    pub fn to_device_float_dtype(self) -> Self {
        let Some(device) = self.devices().into_iter().next() else {
            return self;
        };
        let dtype = device.settings().float_dtype;
        if dtype == burn::tensor::FloatDType::F32 {
            return self;
        }
        self.to_float_dtype(dtype)
    }
}
