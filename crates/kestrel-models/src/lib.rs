//! kestrel-models: layers, one file per model family, the registry and weight import.

pub mod bench;
pub mod convnext;
pub mod error;
pub mod layers;
pub mod lenet;
pub mod model;
pub mod registry;
pub mod resnet;
pub mod weights;

pub use burn;
pub use error::ModelError;
pub use model::Model;
pub use registry::{find, BuildOptions, DataConfig, ModelSpec, REGISTRY};
