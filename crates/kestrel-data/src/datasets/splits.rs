//! Opening a dataset by path (or the embedded MNIST subset) as train / validation / test splits.
//!
//! Splits carved out of one set are stratified (each class split in the same proportion, class
//! quotas by largest remainder so the totals are exact) and deterministic: they depend only on
//! [`SplitOptions::seed`], never on the training seed.
//!
//! The embedded MNIST subset (10,000 digits) splits into exactly 8,000 train / 1,000 validation /
//! 1,000 test with the defaults. Per digit 0..9:
//! validation = test = 100, 113, 99, 103, 98, 86, 102, 107, 94, 98;
//! train = 801, 901, 793, 826, 784, 691, 810, 856, 756, 782.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::cifar::{find_cifar_files, open_cifar_dir};
use crate::dataset::Dataset;
use crate::error::{DataError, Result};
use crate::folder::{class_folders, ImageFolder};
use crate::idx::{embedded_mnist, find_idx_files, open_idx_dir};
use crate::loader::mix_seed;
use crate::memory::Subset;

/// Fraction of the embedded MNIST subset held out as the test split.
pub const EMBEDDED_TEST_FRACTION: f64 = 0.1;

/// How [`open_dataset`] splits data.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitOptions {
    /// Fraction of the training data held out for validation when no validation set is given.
    pub val_fraction: f64,
    /// Seed of the split shuffle; independent of the training seed so that changing the training
    /// seed never moves samples between train and validation.
    pub seed: u64,
    /// ImageFolder: skip (and count) non-image files instead of failing.
    pub skip_bad_images: bool,
    /// ImageFolder: a separate validation folder (`<val_dir>/<class>/...`), labelled with the
    /// training classes. It overrides `root/val`.
    pub val_dir: Option<PathBuf>,
}

impl Default for SplitOptions {
    fn default() -> Self {
        SplitOptions {
            val_fraction: 0.1,
            seed: 0,
            skip_bad_images: false,
            val_dir: None,
        }
    }
}

/// A dataset opened for training.
#[derive(Clone)]
pub struct Splits {
    pub train: Arc<dyn Dataset>,
    pub val: Arc<dyn Dataset>,
    pub test: Arc<dyn Dataset>,
    pub class_names: Vec<String>,
    /// One line saying what was opened and how it was split.
    pub description: String,
    /// Files skipped while scanning folders (non-image files, with `skip_bad_images`).
    pub skipped_at_scan: usize,
}

impl std::fmt::Debug for Splits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Splits")
            .field("train", &self.train.len())
            .field("val", &self.val.len())
            .field("test", &self.test.len())
            .field("class_names", &self.class_names)
            .field("description", &self.description)
            .field("skipped_at_scan", &self.skipped_at_scan)
            .finish()
    }
}

fn check_fraction(name: &str, f: f64) -> Result<()> {
    if !(f > 0.0 && f < 1.0) {
        return Err(DataError::Invalid(format!(
            "{name} must be in (0, 1), got {f}"
        )));
    }
    Ok(())
}

/// Splits the indices `0..labels.len()` by class: for each fraction, a part of
/// `round(N * fraction)` samples whose per-class quotas are `n_c * fraction` rounded by largest
/// remainder (ties to the lower class), drawn from a seeded shuffle of each class; the last part
/// is everything left. Every part is sorted ascending. Returns `fractions.len() + 1` parts.
pub fn stratified_split(labels: &[usize], fractions: &[f64], seed: u64) -> Result<Vec<Vec<usize>>> {
    let total: f64 = fractions.iter().sum();
    if fractions.iter().any(|&f| !(f > 0.0 && f < 1.0)) || total >= 1.0 {
        return Err(DataError::Invalid(format!(
            "split fractions must each be in (0, 1) and sum below 1, got {fractions:?}"
        )));
    }
    let k = labels.iter().copied().max().map_or(0, |m| m + 1);
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); k];
    for (i, &l) in labels.iter().enumerate() {
        by_class[l].push(i);
    }
    for (c, idx) in by_class.iter_mut().enumerate() {
        let mut rng = StdRng::seed_from_u64(mix_seed(&[seed, 0x5_9117, c as u64]));
        idx.shuffle(&mut rng);
    }
    let n = labels.len();
    // quotas[p][c]
    let quotas: Vec<Vec<usize>> = fractions
        .iter()
        .map(|&f| {
            let target = (n as f64 * f).round() as usize;
            let exact: Vec<f64> = by_class.iter().map(|v| v.len() as f64 * f).collect();
            let mut q: Vec<usize> = exact.iter().map(|e| e.floor() as usize).collect();
            let mut order: Vec<usize> = (0..k).collect();
            order.sort_by(|&a, &b| {
                let (ra, rb) = (exact[a] - exact[a].floor(), exact[b] - exact[b].floor());
                rb.partial_cmp(&ra)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then(a.cmp(&b))
            });
            let mut left = target.saturating_sub(q.iter().sum());
            for &c in order.iter().cycle().take(k * 2) {
                if left == 0 {
                    break;
                }
                if q[c] < by_class[c].len() {
                    q[c] += 1;
                    left -= 1;
                }
            }
            q
        })
        .collect();
    let mut parts: Vec<Vec<usize>> = vec![Vec::new(); fractions.len() + 1];
    for (c, idx) in by_class.iter().enumerate() {
        let mut at = 0;
        for (p, q) in quotas.iter().enumerate() {
            let take = q[c].min(idx.len() - at);
            parts[p].extend_from_slice(&idx[at..at + take]);
            at += take;
        }
        parts[fractions.len()].extend_from_slice(&idx[at..]);
    }
    for p in &mut parts {
        p.sort_unstable();
    }
    Ok(parts)
}

fn labels_of(ds: &dyn Dataset) -> Vec<usize> {
    (0..ds.len()).map(|i| ds.label(i)).collect()
}

fn subset(ds: &Arc<dyn Dataset>, idx: Vec<usize>) -> Result<Arc<dyn Dataset>> {
    Ok(Arc::new(Subset::new(ds.clone(), idx)?))
}

/// Splits `ds` into (train, val) with `val_fraction` of each class in val.
pub fn train_val_split(
    ds: Arc<dyn Dataset>,
    val_fraction: f64,
    seed: u64,
) -> Result<(Arc<dyn Dataset>, Arc<dyn Dataset>)> {
    check_fraction("val_fraction", val_fraction)?;
    let mut parts = stratified_split(&labels_of(ds.as_ref()), &[val_fraction], seed)?;
    let train = parts.pop().unwrap_or_default();
    let val = parts.pop().unwrap_or_default();
    Ok((subset(&ds, train)?, subset(&ds, val)?))
}

fn pct(f: f64) -> String {
    format!("{}%", (f * 1000.0).round() / 10.0)
}

/// Opens the embedded MNIST subset split 80/10/10 (with the default `val_fraction`).
pub fn open_embedded(opts: &SplitOptions) -> Result<Splits> {
    check_fraction("val_fraction", opts.val_fraction)?;
    let ds = embedded_mnist()?;
    let class_names = ds.class_names.clone();
    let origin = ds.origin.clone();
    let ds: Arc<dyn Dataset> = Arc::new(ds);
    let mut parts = stratified_split(
        &labels_of(ds.as_ref()),
        &[opts.val_fraction, EMBEDDED_TEST_FRACTION],
        opts.seed,
    )?;
    let train = parts.pop().unwrap_or_default();
    let test = parts.pop().unwrap_or_default();
    let val = parts.pop().unwrap_or_default();
    let description = format!(
        "{origin}; stratified split (split seed {}): train {} / val {} ({}) / test {} ({})",
        opts.seed,
        train.len(),
        val.len(),
        pct(opts.val_fraction),
        test.len(),
        pct(EMBEDDED_TEST_FRACTION)
    );
    Ok(Splits {
        train: subset(&ds, train)?,
        val: subset(&ds, val)?,
        test: subset(&ds, test)?,
        class_names,
        description,
        skipped_at_scan: 0,
    })
}

/// What [`open_dataset`] looks for in a directory, for error messages.
pub const FORMATS_LOOKED_FOR: &str = "MNIST/Fashion-MNIST IDX files (train-images-idx3-ubyte[.gz] \
     + train-labels-idx1-ubyte[.gz], optionally t10k-*; also in raw/), CIFAR-10 binary \
     (data_batch_1..5.bin, test_batch.bin; also in cifar-10-batches-bin/), CIFAR-100 binary \
     (train.bin, test.bin; also in cifar-100-binary/), or an ImageFolder (<root>/<class>/*.{jpg,\
     jpeg,png,webp,bmp,gif}, optionally split as <root>/train + <root>/val|test)";

/// Opens `data` (or the embedded MNIST subset when `None`) as train/val/test splits.
///
/// * IDX directory: the train files split into train/val by `val_fraction`; t10k is the test
///   set (without t10k files, the validation split doubles as test).
/// * CIFAR directory: the data batches split into train/val; the test batch is the test set.
/// * ImageFolder: `root/train` with `root/val` (also `valid`, `validation`) and/or `root/test`
///   (each doubles as the other when alone); else `val_dir` when given; else `root` (or
///   `root/train`) split by `val_fraction`, the validation split doubling as test.
///   `val_dir`, when given, overrides `root/val`.
pub fn open_dataset(data: Option<&Path>, opts: &SplitOptions) -> Result<Splits> {
    let Some(root) = data else {
        if opts.val_dir.is_some() {
            return Err(DataError::Invalid(
                "val_dir needs an ImageFolder dataset path; the embedded MNIST is split \
                 automatically"
                    .into(),
            ));
        }
        return open_embedded(opts);
    };
    if !root.exists() {
        return Err(DataError::NotFound {
            path: root.to_path_buf(),
        });
    }
    if !root.is_dir() {
        return Err(DataError::Dataset {
            path: root.to_path_buf(),
            reason: format!("expected a dataset directory: {FORMATS_LOOKED_FOR}"),
        });
    }
    let no_val_dir = |format: &str| -> Result<()> {
        match &opts.val_dir {
            Some(v) => Err(DataError::Invalid(format!(
                "val_dir {} is only supported for ImageFolder datasets, and {} is {format}",
                v.display(),
                root.display()
            ))),
            None => Ok(()),
        }
    };
    if find_idx_files(root)?.is_some() {
        no_val_dir("an IDX dataset")?;
        let dir = open_idx_dir(root)?;
        let kind = if dir.files.fashion {
            "Fashion-MNIST"
        } else {
            "MNIST"
        };
        let class_names = dir.train.class_names.clone();
        let train_name = dir.files.train_images.display().to_string();
        let test_name = dir
            .files
            .test_images
            .as_ref()
            .map(|p| p.display().to_string());
        let (train, val) = train_val_split(Arc::new(dir.train), opts.val_fraction, opts.seed)?;
        return Ok(packed_splits(
            kind,
            &train_name,
            train,
            val,
            dir.test.map(|t| Arc::new(t) as Arc<dyn Dataset>),
            test_name,
            class_names,
            opts,
        ));
    }
    if find_cifar_files(root).is_some() {
        no_val_dir("a CIFAR dataset")?;
        let dir = open_cifar_dir(root)?;
        let class_names = dir.train.class_names.clone();
        let train_name = dir.files.dir.display().to_string();
        let test_name = dir.files.test.as_ref().map(|p| p.display().to_string());
        let (train, val) = train_val_split(Arc::new(dir.train), opts.val_fraction, opts.seed)?;
        return Ok(packed_splits(
            dir.files.kind.name(),
            &train_name,
            train,
            val,
            dir.test.map(|t| Arc::new(t) as Arc<dyn Dataset>),
            test_name,
            class_names,
            opts,
        ));
    }
    if !class_folders(root)?.is_empty() {
        return open_image_folder(root, opts);
    }
    Err(DataError::Dataset {
        path: root.to_path_buf(),
        reason: format!("no dataset found; looked for {FORMATS_LOOKED_FOR}"),
    })
}

#[allow(clippy::too_many_arguments)]
fn packed_splits(
    kind: &str,
    train_name: &str,
    train: Arc<dyn Dataset>,
    val: Arc<dyn Dataset>,
    test: Option<Arc<dyn Dataset>>,
    test_name: Option<String>,
    class_names: Vec<String>,
    opts: &SplitOptions,
) -> Splits {
    let (test, test_desc) = match (test, test_name) {
        (Some(t), Some(name)) => {
            let d = format!("test {} ({name})", t.len());
            (t, d)
        }
        _ => (
            val.clone(),
            "no test files: the validation split doubles as test".to_string(),
        ),
    };
    let description = format!(
        "{kind} {train_name}: train {} / val {} ({} of the training data, stratified, split seed \
         {}) / {test_desc}; {} classes",
        train.len(),
        val.len(),
        pct(opts.val_fraction),
        opts.seed,
        class_names.len()
    );
    Splits {
        train,
        val,
        test,
        class_names,
        description,
        skipped_at_scan: 0,
    }
}

fn first_dir(root: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|n| root.join(n)).find(|p| p.is_dir())
}

fn open_image_folder(root: &Path, opts: &SplitOptions) -> Result<Splits> {
    let skip = opts.skip_bad_images;
    let train_dir = root.join("train");
    let has_train = train_dir.is_dir();
    let base = if has_train {
        train_dir
    } else {
        root.to_path_buf()
    };
    let train_folder = ImageFolder::open(&base, skip)?;
    let class_names = train_folder.class_names().to_vec();
    let mut skipped = train_folder.skipped();
    let train_len = train_folder.len();
    let train: Arc<dyn Dataset> = Arc::new(train_folder);

    let open_eval = |dir: &Path| -> Result<ImageFolder> {
        ImageFolder::open_with_classes(dir, &class_names, skip)
    };
    let (val_dir, test_dir) = if has_train {
        (
            first_dir(root, &["val", "valid", "validation"]),
            first_dir(root, &["test"]),
        )
    } else {
        (None, None)
    };
    let val_dir = opts.val_dir.clone().or(val_dir);
    if let Some(v) = &val_dir {
        if !v.exists() {
            return Err(DataError::NotFound { path: v.clone() });
        }
    }

    let (train, val, test, how) = match (val_dir, test_dir) {
        (Some(v), Some(t)) => {
            let vf = open_eval(&v)?;
            let tf = open_eval(&t)?;
            skipped += vf.skipped() + tf.skipped();
            let how = format!(
                "val {} ({}) / test {} ({})",
                vf.len(),
                v.display(),
                tf.len(),
                t.display()
            );
            (
                train,
                Arc::new(vf) as Arc<dyn Dataset>,
                Arc::new(tf) as Arc<dyn Dataset>,
                how,
            )
        }
        (Some(v), None) => {
            let vf = open_eval(&v)?;
            skipped += vf.skipped();
            let how = format!(
                "val {} ({}), which doubles as test (no test folder)",
                vf.len(),
                v.display()
            );
            let vf: Arc<dyn Dataset> = Arc::new(vf);
            (train, vf.clone(), vf, how)
        }
        (None, Some(t)) => {
            let tf = open_eval(&t)?;
            skipped += tf.skipped();
            let how = format!(
                "test {} ({}), which doubles as validation (no val folder)",
                tf.len(),
                t.display()
            );
            let tf: Arc<dyn Dataset> = Arc::new(tf);
            (train, tf.clone(), tf, how)
        }
        (None, None) => {
            let (tr, va) = train_val_split(train, opts.val_fraction, opts.seed)?;
            let how = format!(
                "val {} ({} of the folder, stratified, split seed {}), which doubles as test \
                 (no separate validation/test folder)",
                va.len(),
                pct(opts.val_fraction),
                opts.seed
            );
            (tr, va.clone(), va, how)
        }
    };
    let skipped_note = if skipped > 0 {
        format!("; {skipped} non-image files skipped")
    } else {
        String::new()
    };
    let description = format!(
        "ImageFolder {}: {} classes, train {} of {train_len} / {how}{skipped_note}",
        base.display(),
        class_names.len(),
        train.len(),
    );
    Ok(Splits {
        train,
        val,
        test,
        class_names,
        description,
        skipped_at_scan: skipped,
    })
}
