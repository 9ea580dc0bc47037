//! kestrel-data: datasets, decoding, transforms, augmentation and the batch loader.
//!
//! Images travel as [`Image`]: 8-bit, height × width × channels, row-major (the layout decoders
//! produce). A [`SampleTransform`] turns an `Image` into a float CHW sample ([`Chw`]), and the
//! loader stacks samples into NCHW `f32` batches ready for any backend.

pub mod dataset;
pub mod error;
pub mod image;
pub mod transform;
pub mod transforms;
pub mod augment;
pub mod mixup;
pub mod recipe;
pub mod grid;

pub use crate::dataset::{Dataset, Sample};
pub use crate::error::DataError;
pub use crate::image::Image;
pub use crate::transform::{Chw, SampleTransform};
pub use crate::transforms::{EvalTransform, Interpolation};
pub use crate::recipe::{Recipe, TrainTransform};
pub use crate::mixup::{Mixup, MixupConfig};
pub use crate::grid::{augment_preview, save_png};
