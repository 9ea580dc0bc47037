//! kestrel-models: layers, one file per model family, the registry and weight import.

pub mod alexnet;
pub mod attention;
pub mod bench;
pub mod convnext;
pub mod efficientnet;
pub mod error;
pub mod kernels;
pub mod layers;
pub mod lenet;
pub mod maxxvit;
pub mod mbconv;
pub mod mobilenet;
pub mod model;
pub mod registry;
pub mod regnet;
pub mod resnet;
pub mod sequential;
pub mod shufflenet;
pub mod stats;
pub mod swin;
pub mod t2t;
pub mod tensor_file;
pub mod vgg;
pub mod vit;
pub mod weights;

pub use burn;
pub use error::ModelError;
pub use model::Model;
pub use registry::{
    find, find_pretrained, torchvision_counterpart, BuildOptions, DataConfig, ModelSpec,
    PretrainedTag, REGISTRY,
};
