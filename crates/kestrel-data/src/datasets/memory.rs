//! Datasets held in memory (MNIST, CIFAR) and index views over any dataset (splits).

use std::sync::Arc;

use crate::dataset::{Dataset, Sample};
use crate::error::{DataError, Result};
use crate::image::Image;

/// A packed, fully decoded dataset: `N` images of one shape stored back to back (N × H × W × C,
/// HWC per image) with their labels.
#[derive(Clone, Debug)]
pub struct InMemoryDataset {
    /// N × H × W × C bytes, image after image, each HWC.
    pub images: Vec<u8>,
    pub labels: Vec<usize>,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub class_names: Vec<String>,
    /// What this data is and where it came from (a file path, or a description of the embedded
    /// set and its licence).
    pub origin: String,
    /// The packed files this dataset was read from: `(first sample index, file)`, ascending.
    /// [`Dataset::source`] reports `file#offset` from it; when empty it reports `origin#index`.
    pub sources: Vec<(usize, String)>,
}

impl InMemoryDataset {
    /// Checks that the buffer matches `labels.len()` images of the given shape and that every
    /// label indexes `class_names`.
    pub fn new(
        images: Vec<u8>,
        labels: Vec<usize>,
        (height, width, channels): (usize, usize, usize),
        class_names: Vec<String>,
        origin: impl Into<String>,
    ) -> Result<Self> {
        let origin = origin.into();
        let per = height * width * channels;
        if per == 0 {
            return Err(DataError::Invalid(format!(
                "{origin}: empty image shape {height}x{width}x{channels}"
            )));
        }
        if images.len() != per * labels.len() {
            return Err(DataError::Invalid(format!(
                "{origin}: {} bytes of pixels do not hold {} images of {height}x{width}x{channels}",
                images.len(),
                labels.len()
            )));
        }
        if let Some((i, &l)) = labels
            .iter()
            .enumerate()
            .find(|(_, &l)| l >= class_names.len())
        {
            return Err(DataError::Invalid(format!(
                "{origin}: sample {i} has label {l} but there are only {} classes",
                class_names.len()
            )));
        }
        Ok(InMemoryDataset {
            images,
            labels,
            height,
            width,
            channels,
            class_names,
            origin,
            sources: Vec::new(),
        })
    }

    /// Bytes per image (H × W × C).
    pub fn image_len(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// The pixels of image `index` (HWC), without copying.
    pub fn image_bytes(&self, index: usize) -> &[u8] {
        let n = self.image_len();
        &self.images[index * n..(index + 1) * n]
    }

    /// Number of samples of each class.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.class_names.len()];
        for &l in &self.labels {
            counts[l] += 1;
        }
        counts
    }
}

impl Dataset for InMemoryDataset {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn get(&self, index: usize) -> Result<Sample> {
        if index >= self.labels.len() {
            return Err(DataError::Invalid(format!(
                "{}: sample index {index} out of range (len {})",
                self.origin,
                self.labels.len()
            )));
        }
        let image = Image::new(
            self.height,
            self.width,
            self.channels,
            self.image_bytes(index).to_vec(),
        );
        Ok(Sample {
            image,
            label: self.labels[index],
        })
    }

    fn label(&self, index: usize) -> usize {
        self.labels[index]
    }

    fn class_names(&self) -> &[String] {
        &self.class_names
    }

    fn source(&self, index: usize) -> String {
        let seg = self.sources.partition_point(|(start, _)| *start <= index);
        if seg == 0 {
            format!("{}#{index}", self.origin)
        } else {
            let (start, file) = &self.sources[seg - 1];
            format!("{file}#{}", index - start)
        }
    }
}

/// A view of some samples of another dataset, in the given order (train/val/test splits).
#[derive(Clone)]
pub struct Subset {
    inner: Arc<dyn Dataset>,
    indices: Vec<usize>,
}

impl std::fmt::Debug for Subset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subset")
            .field("inner_len", &self.inner.len())
            .field("len", &self.indices.len())
            .finish()
    }
}

impl Subset {
    /// Fails when an index is out of range of `inner`.
    pub fn new(inner: Arc<dyn Dataset>, indices: Vec<usize>) -> Result<Self> {
        if let Some(&bad) = indices.iter().find(|&&i| i >= inner.len()) {
            return Err(DataError::Invalid(format!(
                "subset index {bad} out of range (dataset has {} samples)",
                inner.len()
            )));
        }
        Ok(Subset { inner, indices })
    }

    /// The indices into the inner dataset, in subset order.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    pub fn inner(&self) -> &Arc<dyn Dataset> {
        &self.inner
    }
}

impl Dataset for Subset {
    fn len(&self) -> usize {
        self.indices.len()
    }

    fn get(&self, index: usize) -> Result<Sample> {
        match self.indices.get(index) {
            Some(&i) => self.inner.get(i),
            None => Err(DataError::Invalid(format!(
                "subset index {index} out of range (len {})",
                self.indices.len()
            ))),
        }
    }

    fn label(&self, index: usize) -> usize {
        self.inner.label(self.indices[index])
    }

    fn class_names(&self) -> &[String] {
        self.inner.class_names()
    }

    fn source(&self, index: usize) -> String {
        self.inner.source(self.indices[index])
    }
}

/// Number of samples of each class of any dataset (uses [`Dataset::label`], decodes nothing).
pub fn class_counts(dataset: &dyn Dataset) -> Vec<usize> {
    let mut counts = vec![0; dataset.class_names().len()];
    for i in 0..dataset.len() {
        let l = dataset.label(i);
        if l >= counts.len() {
            counts.resize(l + 1, 0);
        }
        counts[l] += 1;
    }
    counts
}
