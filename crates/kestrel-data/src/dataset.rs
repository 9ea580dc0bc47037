use crate::error::Result;
use crate::image::Image;

/// One labelled image.
#[derive(Clone, Debug)]
pub struct Sample {
    pub image: Image,
    pub label: usize,
}

/// A random-access labelled image collection. Implementations decode lazily where they can
/// (ImageFolder) and hold decoded pixels where the format is tiny (MNIST, CIFAR).
pub trait Dataset: Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Decodes sample `index`. A corrupt file is an `Err` that names the file.
    fn get(&self, index: usize) -> Result<Sample>;
    /// The label of sample `index` without decoding it (samplers and splits need it).
    fn label(&self, index: usize) -> usize;
    fn class_names(&self) -> &[String];
    /// Where sample `index` came from (a file path, or `file#index` for packed formats).
    fn source(&self, index: usize) -> String;
}
