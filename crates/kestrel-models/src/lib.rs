//! kestrel-models: layers, one file per model family, the registry and weight import.

pub mod alexnet;
pub mod bench;
pub mod classifier;
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
pub mod translation;
pub mod variant;
pub mod vgg;
pub mod vit;
pub mod weights;

pub use burn;
pub use error::ModelError;
/// The old path of [`layers::channel_attention`] (SE/ECA/CBAM), kept for the crates that import it.
pub use layers::channel_attention as attention;
pub use model::Model;
pub use registry::{
    find, find_pretrained, torchvision_counterpart, BuildOptions, DataConfig, ModelSpec,
    PretrainedTag, REGISTRY,
};
