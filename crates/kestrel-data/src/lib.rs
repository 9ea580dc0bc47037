//! kestrel-data: datasets, decoding, transforms, augmentation and the batch loader.
//!
//! Images travel as [`Image`]: 8-bit, height × width × channels, row-major (the layout decoders
//! produce). A [`SampleTransform`] turns an `Image` into a float CHW sample ([`Chw`]), and the
//! loader stacks samples into NCHW `f32` batches ready for any backend.

pub mod augment;
pub mod dataset;
pub mod datasets;
pub mod decode;
pub mod error;
pub mod grid;
pub mod image;
pub mod imagenet;
pub mod loader;
pub mod resample;
pub mod sample_transform;
pub mod transforms;

// The module paths from before the readers and augmentations moved into folders.
pub use crate::augment::{mixup, recipe};
pub use crate::datasets::{cifar, folder, idx, memory, splits};
/// The old name of [`sample_transform`].
pub use crate::sample_transform as transform;

pub use crate::cifar::{open_cifar_dir, CifarDir, CifarKind};
pub use crate::dataset::{Dataset, Sample};
pub use crate::decode::{decode_image_bytes, decode_image_file};
pub use crate::error::DataError;
pub use crate::folder::{image_files_under, ImageFolder};
pub use crate::grid::{augment_preview, save_png};
pub use crate::idx::{embedded_mnist, open_idx_dir, read_idx_images, read_idx_labels, IdxDir};
pub use crate::image::Image;
pub use crate::loader::{Batch, EpochIter, Loader, LoaderConfig, Sampler};
pub use crate::memory::{InMemoryDataset, Subset};
pub use crate::mixup::{Mixup, MixupConfig};
pub use crate::recipe::{Recipe, TrainTransform};
pub use crate::sample_transform::{Chw, SampleTransform};
pub use crate::splits::{
    is_packed_dataset, open_dataset, open_eval_folder, DataSource, DatasetKind, SplitOptions,
    Splits,
};
pub use crate::transforms::{BasicTrainTransform, CropMode, EvalTransform, Interpolation};
