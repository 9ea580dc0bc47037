//! The batch loader: samples indices, decodes and transforms samples in parallel, stacks them
//! into NCHW `f32` batches, and produces batches ahead of the consumer in a background thread.
//!
//! Determinism: the epoch order is a function of (seed, epoch) and each sample's RNG is seeded
//! from (seed, epoch, dataset index, position in the epoch) through splitmix64, so batches are
//! bit-identical whatever the number of worker threads.
//!
//! Memory: batches travel through a bounded channel of `prefetch_batches` slots, so at most
//! `prefetch_batches` finished batches plus the one being built exist at a time.

use std::collections::BTreeSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::sample_transform::{Chw, SampleTransform};

/// The splitmix64 finaliser: a bijective, well-mixing 64-bit hash.
#[inline]
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hashes a tuple of integers into one seed (order matters).
pub fn mix_seed(parts: &[u64]) -> u64 {
    parts
        .iter()
        .fold(0x243F_6A88_85A3_08D3, |h, &p| splitmix64(h ^ splitmix64(p)))
}

const TAG_SHUFFLE: u64 = 0x5348_5546;
const TAG_BALANCED: u64 = 0x4241_4c41;
const TAG_SAMPLE: u64 = 0x5341_4d50;

/// The order in which an epoch visits the dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Sampler {
    /// 0, 1, 2, ... every epoch.
    #[default]
    Sequential,
    /// A permutation seeded by (seed, epoch).
    Shuffle,
    /// Draws `len` samples with replacement, each class with equal probability (per-sample weight
    /// 1 / class count), seeded by (seed, epoch).
    ClassBalanced,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LoaderConfig {
    pub batch_size: usize,
    /// Shorthand for `sampler: Sampler::Shuffle`: a `Sequential` sampler with `shuffle: true`
    /// shuffles. Ignored by the other samplers (both are random already).
    pub shuffle: bool,
    /// Drop the last batch when it is smaller than `batch_size`.
    pub drop_last: bool,
    pub seed: u64,
    /// Decoding threads; 0 uses rayon's global pool (one thread per available core).
    pub num_workers: usize,
    /// Finished batches buffered ahead of the consumer (0: only the batch being built).
    pub prefetch_batches: usize,
    /// Drop samples that fail to decode or transform (counted in [`Loader::skipped`]) instead
    /// of stopping the epoch with the error.
    pub skip_bad_images: bool,
    pub sampler: Sampler,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            batch_size: 64,
            shuffle: false,
            drop_last: false,
            seed: 0,
            num_workers: 0,
            prefetch_batches: 2,
            skip_bad_images: false,
            sampler: Sampler::Sequential,
        }
    }
}

impl LoaderConfig {
    /// The sampler actually used (see [`LoaderConfig::shuffle`]).
    pub fn effective_sampler(&self) -> Sampler {
        match (self.sampler, self.shuffle) {
            (Sampler::Sequential, true) => Sampler::Shuffle,
            (s, _) => s,
        }
    }
}

/// A stack of samples: `images` is N × C × H × W (`shape`), row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub images: Vec<f32>,
    pub shape: [usize; 4],
    pub labels: Vec<usize>,
    /// The dataset index of each sample.
    pub indices: Vec<usize>,
    /// Which batch of the epoch this is (0-based), also when earlier ones were skipped.
    pub batch_index: usize,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

struct Inner {
    dataset: Arc<dyn Dataset>,
    transform: Arc<dyn SampleTransform>,
    cfg: LoaderConfig,
    pool: Option<rayon::ThreadPool>,
    /// Indices of each non-empty class (ClassBalanced only).
    classes: Vec<Vec<usize>>,
    skipped: AtomicUsize,
    skipped_sources: Mutex<BTreeSet<String>>,
}

/// Loads a dataset in batches. Cheap to share: `iter_epoch` takes `&self`.
pub struct Loader {
    inner: Arc<Inner>,
}

impl Loader {
    pub fn new(
        dataset: Arc<dyn Dataset>,
        transform: Arc<dyn SampleTransform>,
        cfg: LoaderConfig,
    ) -> Result<Self> {
        if cfg.batch_size == 0 {
            return Err(DataError::Invalid("batch_size must be at least 1".into()));
        }
        let pool = if cfg.num_workers > 0 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(cfg.num_workers)
                    .thread_name(|i| format!("kestrel-decode-{i}"))
                    .build()
                    .map_err(|e| DataError::Invalid(format!("cannot start decode threads: {e}")))?,
            )
        } else {
            None
        };
        let mut classes = Vec::new();
        if cfg.effective_sampler() == Sampler::ClassBalanced {
            let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); dataset.class_names().len()];
            for i in 0..dataset.len() {
                let l = dataset.label(i);
                if l >= by_class.len() {
                    by_class.resize(l + 1, Vec::new());
                }
                by_class[l].push(i);
            }
            classes = by_class.into_iter().filter(|v| !v.is_empty()).collect();
        }
        let inner = Inner {
            dataset,
            transform,
            cfg,
            pool,
            classes,
            skipped: AtomicUsize::new(0),
            skipped_sources: Mutex::new(BTreeSet::new()),
        };
        Ok(Loader {
            inner: Arc::new(inner),
        })
    }

    pub fn config(&self) -> &LoaderConfig {
        &self.inner.cfg
    }

    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.inner.dataset
    }

    /// Samples per epoch (the dataset length, for every sampler).
    pub fn len(&self) -> usize {
        self.inner.dataset.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Batches per epoch. With `skip_bad_images`, a batch whose samples all fail is not yielded,
    /// so an epoch can have fewer.
    pub fn num_batches(&self) -> usize {
        let (n, b) = (self.len(), self.inner.cfg.batch_size);
        if self.inner.cfg.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// Samples skipped so far (every failure counts, also the same file in later epochs).
    pub fn skipped(&self) -> usize {
        self.inner.skipped.load(Ordering::Relaxed)
    }

    /// The distinct sources (files) of the samples skipped so far.
    pub fn skipped_sources(&self) -> Vec<String> {
        self.inner
            .skipped_sources
            .lock()
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The dataset indices epoch `epoch` visits, in order.
    pub fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        self.inner.epoch_order(epoch)
    }

    /// Loads the batch made of `indices` (positions `first_position..` of the epoch) on the
    /// calling thread's pool. `Ok(None)` when every sample was skipped.
    pub fn load_batch(
        &self,
        epoch: usize,
        first_position: usize,
        indices: &[usize],
    ) -> Result<Option<Batch>> {
        self.inner.build_batch(epoch, first_position, indices)
    }

    /// The batches of epoch `epoch`, produced ahead by a background thread. Without
    /// `skip_bad_images`, the first failing sample ends the epoch with its error (which names the
    /// file). Dropping the iterator stops the producer.
    pub fn iter_epoch(&self, epoch: usize) -> EpochIter {
        self.iter_epoch_from(epoch, 0)
    }

    /// The batches of epoch `epoch` from batch `first_batch` on: the same batches, with the same
    /// augmentation, as [`Loader::iter_epoch`] yields from there (a resumed run continues
    /// mid-epoch with it).
    pub fn iter_epoch_from(&self, epoch: usize, first_batch: usize) -> EpochIter {
        let (tx, rx) = sync_channel::<Result<Batch>>(self.inner.cfg.prefetch_batches);
        let inner = self.inner.clone();
        let spawned = std::thread::Builder::new()
            .name("kestrel-loader".into())
            .spawn(move || {
                let order = inner.epoch_order(epoch);
                let bs = inner.cfg.batch_size;
                for (b, chunk) in order.chunks(bs).enumerate().skip(first_batch) {
                    if inner.cfg.drop_last && chunk.len() < bs {
                        break;
                    }
                    match inner.build_batch(epoch, b * bs, chunk) {
                        Ok(Some(batch)) => {
                            if tx.send(Ok(batch)).is_err() {
                                return;
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
            });
        match spawned {
            Ok(handle) => EpochIter {
                rx: Some(rx),
                handle: Some(handle),
                pending_error: None,
            },
            Err(e) => EpochIter {
                rx: None,
                handle: None,
                pending_error: Some(DataError::Invalid(format!(
                    "cannot start loader thread: {e}"
                ))),
            },
        }
    }
}

impl Inner {
    fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let n = self.dataset.len();
        let seed = self.cfg.seed;
        match self.cfg.effective_sampler() {
            Sampler::Sequential => (0..n).collect(),
            Sampler::Shuffle => {
                let mut order: Vec<usize> = (0..n).collect();
                let mut rng = StdRng::seed_from_u64(mix_seed(&[seed, epoch as u64, TAG_SHUFFLE]));
                order.shuffle(&mut rng);
                order
            }
            Sampler::ClassBalanced => {
                if self.classes.is_empty() {
                    return Vec::new();
                }
                let mut rng = StdRng::seed_from_u64(mix_seed(&[seed, epoch as u64, TAG_BALANCED]));
                (0..n)
                    .map(|_| {
                        let c = &self.classes[rng.random_range(0..self.classes.len())];
                        c[rng.random_range(0..c.len())]
                    })
                    .collect()
            }
        }
    }

    fn load_sample(&self, epoch: usize, position: usize, index: usize) -> Result<Chw> {
        let run = || -> Result<Chw> {
            let sample = self.dataset.get(index)?;
            let mut rng = StdRng::seed_from_u64(mix_seed(&[
                self.cfg.seed,
                epoch as u64,
                index as u64,
                position as u64,
                TAG_SAMPLE,
            ]));
            self.transform.apply(sample.image, &mut rng)
        };
        let named = |reason: String| DataError::Dataset {
            path: self.dataset.source(index).into(),
            reason,
        };
        match catch_unwind(AssertUnwindSafe(run)) {
            Ok(Ok(chw)) => Ok(chw),
            // Errors without a path get the sample's source, so every error names its file.
            Ok(Err(DataError::Invalid(msg))) => Err(named(msg)),
            Ok(Err(e)) => Err(e),
            Err(panic) => {
                let msg = crate::error::panic_message(panic.as_ref());
                Err(named(format!("loading the sample panicked: {msg}")))
            }
        }
    }

    /// Runs `f` on this loader's pool (or rayon's global one).
    fn in_pool<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        match &self.pool {
            Some(pool) => pool.install(f),
            None => f(),
        }
    }

    /// Counts a failed sample as skipped, or returns its error.
    fn skip_or_fail(&self, index: usize, e: DataError) -> Result<()> {
        if !self.cfg.skip_bad_images {
            return Err(e);
        }
        self.skipped.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut s) = self.skipped_sources.lock() {
            s.insert(self.dataset.source(index));
        }
        Ok(())
    }

    /// Checks that sample `index`'s transformed `chw` has the batch's shape and a buffer of that
    /// size; either failure is a transform bug, reported with the sample's source.
    fn check_sample(&self, index: usize, chw: &Chw, expected: [usize; 3]) -> Result<()> {
        let got = [chw.channels, chw.height, chw.width];
        let reason = if got != expected {
            format!(
                "transformed sample is {}x{}x{} but the batch is {}x{}x{}; use a transform with a \
                 fixed output size",
                got[0], got[1], got[2], expected[0], expected[1], expected[2]
            )
        } else if chw.data.len() != got.iter().product::<usize>() {
            "transform returned a buffer that does not match its shape".into()
        } else {
            return Ok(());
        };
        Err(DataError::Dataset {
            path: self.dataset.source(index).into(),
            reason,
        })
    }

    fn build_batch(&self, epoch: usize, first: usize, indices: &[usize]) -> Result<Option<Batch>> {
        match self.transform.output_shape() {
            Some((c, h, w)) => self.build_fixed_batch(epoch, first, indices, [c, h, w]),
            None => self.build_any_batch(epoch, first, indices),
        }
    }

    /// The transform promises its output shape, so each worker writes its sample straight into
    /// its slot of the batch buffer while the sample is still in cache: no serial copy after.
    fn build_fixed_batch(
        &self,
        epoch: usize,
        first: usize,
        indices: &[usize],
        shape: [usize; 3],
    ) -> Result<Option<Batch>> {
        let len: usize = shape.iter().product();
        if len == 0 {
            return self.build_any_batch(epoch, first, indices);
        }
        let mut images = vec![0f32; len * indices.len()];
        // Err((error, skippable)): a shape mismatch is a transform bug, never skipped.
        let outcomes: Vec<std::result::Result<(), (DataError, bool)>> = self.in_pool(|| {
            images
                .par_chunks_mut(len)
                .zip(indices.par_iter())
                .enumerate()
                .map(|(k, (slot, &i))| {
                    let chw = self
                        .load_sample(epoch, first + k, i)
                        .map_err(|e| (e, true))?;
                    self.check_sample(i, &chw, shape).map_err(|e| (e, false))?;
                    slot.copy_from_slice(&chw.data);
                    Ok(())
                })
                .collect()
        });
        let mut labels = Vec::with_capacity(indices.len());
        let mut kept = Vec::with_capacity(indices.len());
        for (k, (outcome, &i)) in outcomes.into_iter().zip(indices).enumerate() {
            match outcome {
                Ok(()) => {
                    // Close the gaps that skipped samples left.
                    let to = kept.len();
                    if to != k {
                        images.copy_within(k * len..(k + 1) * len, to * len);
                    }
                    labels.push(self.dataset.label(i));
                    kept.push(i);
                }
                Err((e, true)) => self.skip_or_fail(i, e)?,
                Err((e, false)) => return Err(e),
            }
        }
        if kept.is_empty() {
            return Ok(None);
        }
        images.truncate(kept.len() * len);
        Ok(Some(Batch {
            images,
            shape: [kept.len(), shape[0], shape[1], shape[2]],
            labels,
            indices: kept,
            batch_index: first / self.cfg.batch_size.max(1),
        }))
    }

    /// Samples of any shape (they must agree within the batch).
    fn build_any_batch(
        &self,
        epoch: usize,
        first: usize,
        indices: &[usize],
    ) -> Result<Option<Batch>> {
        let work = |(k, &i): (usize, &usize)| self.load_sample(epoch, first + k, i);
        let results: Vec<Result<Chw>> =
            self.in_pool(|| indices.par_iter().enumerate().map(work).collect());
        let mut shape: Option<[usize; 3]> = None;
        let mut images = Vec::new();
        let mut labels = Vec::with_capacity(indices.len());
        let mut kept = Vec::with_capacity(indices.len());
        for (r, &i) in results.into_iter().zip(indices) {
            let chw = match r {
                Ok(chw) => chw,
                Err(e) => {
                    self.skip_or_fail(i, e)?;
                    continue;
                }
            };
            // The first kept sample sets the batch's shape.
            let expected = *shape.get_or_insert([chw.channels, chw.height, chw.width]);
            self.check_sample(i, &chw, expected)?;
            if images.is_empty() {
                images.reserve(chw.data.len() * indices.len());
            }
            images.extend_from_slice(&chw.data);
            labels.push(self.dataset.label(i));
            kept.push(i);
        }
        let Some([c, h, w]) = shape else {
            return Ok(None);
        };
        Ok(Some(Batch {
            images,
            shape: [kept.len(), c, h, w],
            labels,
            indices: kept,
            batch_index: first / self.cfg.batch_size.max(1),
        }))
    }
}

/// The batches of one epoch (see [`Loader::iter_epoch`]).
pub struct EpochIter {
    rx: Option<Receiver<Result<Batch>>>,
    handle: Option<JoinHandle<()>>,
    pending_error: Option<DataError>,
}

impl EpochIter {
    fn finish(&mut self) -> Option<DataError> {
        self.rx = None;
        match self.handle.take().map(|h| h.join()) {
            Some(Err(_)) => Some(DataError::Invalid("the loader thread panicked".into())),
            _ => None,
        }
    }
}

impl Iterator for EpochIter {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.pending_error.take() {
            return Some(Err(e));
        }
        let received = self.rx.as_ref()?.recv();
        match received {
            Ok(item) => Some(item),
            Err(_) => self.finish().map(Err),
        }
    }
}

impl Drop for EpochIter {
    fn drop(&mut self) {
        // Dropping the receiver makes the producer's next send fail, so it stops.
        let _ = self.finish();
    }
}
