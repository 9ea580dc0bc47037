//! Dataset readers: MNIST/Fashion-MNIST IDX files, CIFAR-10/100 binaries, ImageFolder trees,
//! in-memory datasets, and the train/val/test splits built from them.

pub mod cifar;
pub mod folder;
pub mod idx;
pub mod memory;
pub mod splits;
