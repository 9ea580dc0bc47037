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

/// How a dataset was opened: enough to open the very same splits again (`kestrel eval` of a
/// checkpoint reads it back, so its "val" split is the one the run validated on).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataSource {
    /// The dataset directory; `None` is the embedded MNIST subset.
    pub path: Option<PathBuf>,
    pub val_dir: Option<PathBuf>,
    pub val_fraction: f64,
    pub split_seed: u64,
}

impl DataSource {
    /// The options that reopen these splits (`skip_bad_images` is the caller's).
    pub fn split_options(&self, skip_bad_images: bool) -> SplitOptions {
        SplitOptions {
            val_fraction: self.val_fraction,
            seed: self.split_seed,
            skip_bad_images,
            val_dir: self.val_dir.clone(),
        }
    }

    /// Whether `path` names this source's dataset (the same directory, however spelled).
    pub fn is_path(&self, path: Option<&Path>) -> bool {
        match (&self.path, path) {
            (None, None) => true,
            (Some(a), Some(b)) => same_dir(a, b),
            _ => false,
        }
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// What kind of dataset was opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatasetKind {
    EmbeddedMnist,
    Idx,
    Cifar,
    /// Photos in class folders: the kind that wants timm's RandomResizedCrop by default.
    ImageFolder,
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
    pub kind: DatasetKind,
    /// How to open these splits again.
    pub source: DataSource,
    /// Where the validation and the test split come from, in a few words ("data/test", "10% of
    /// data/, stratified"), for report headers.
    pub val_origin: String,
    pub test_origin: String,
}

/// Whether `root` holds an IDX or CIFAR dataset (rather than an ImageFolder).
pub fn is_packed_dataset(root: &Path) -> bool {
    matches!(find_idx_files(root), Ok(Some(_))) || find_cifar_files(root).is_some()
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
            .field("kind", &self.kind)
            .field("source", &self.source)
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
        kind: DatasetKind::EmbeddedMnist,
        source: source_of(None, opts),
        val_origin: format!(
            "{} of the embedded MNIST subset, stratified",
            pct(opts.val_fraction)
        ),
        test_origin: format!(
            "{} of the embedded MNIST subset, stratified",
            pct(EMBEDDED_TEST_FRACTION)
        ),
    })
}

fn source_of(path: Option<&Path>, opts: &SplitOptions) -> DataSource {
    DataSource {
        // Absolute, so that the record still finds the data from another working directory.
        path: path.map(|p| p.canonicalize().unwrap_or_else(|_| p.to_path_buf())),
        val_dir: opts.val_dir.clone(),
        val_fraction: opts.val_fraction,
        split_seed: opts.seed,
    }
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
            (kind, DatasetKind::Idx, root),
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
            (dir.files.kind.name(), DatasetKind::Cifar, root),
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
    (kind, dataset_kind, root): (&str, DatasetKind, &Path),
    train_name: &str,
    train: Arc<dyn Dataset>,
    val: Arc<dyn Dataset>,
    test: Option<Arc<dyn Dataset>>,
    test_name: Option<String>,
    class_names: Vec<String>,
    opts: &SplitOptions,
) -> Splits {
    let val_origin = format!("{} of {train_name}, stratified", pct(opts.val_fraction));
    let (test, test_desc, test_origin) = match (test, test_name) {
        (Some(t), Some(name)) => {
            let d = format!("test {} ({name})", t.len());
            (t, d, name)
        }
        _ => (
            val.clone(),
            "no test files: the validation split doubles as test".to_string(),
            val_origin.clone(),
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
        kind: dataset_kind,
        source: source_of(Some(root), opts),
        val_origin,
        test_origin,
    }
}

fn first_dir(root: &Path, names: &[&str]) -> Option<PathBuf> {
    names.iter().map(|n| root.join(n)).find(|p| p.is_dir())
}

/// The split folder names of an ImageFolder root (`root/train`, `root/val`, `root/test`).
pub const VAL_FOLDER_NAMES: [&str; 3] = ["val", "valid", "validation"];

/// Whether `root` is laid out as split folders (`train/`, `val/`, `test/`) rather than as
/// class folders.
pub fn has_split_folders(root: &Path) -> bool {
    first_dir(root, &["train", "test"]).is_some() || first_dir(root, &VAL_FOLDER_NAMES).is_some()
}

fn open_image_folder(root: &Path, opts: &SplitOptions) -> Result<Splits> {
    let skip = opts.skip_bad_images;
    let train_dir = root.join("train");
    let has_train = train_dir.is_dir();
    if !has_train && has_split_folders(root) {
        return open_eval_only_folders(root, opts);
    }
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
            first_dir(root, &VAL_FOLDER_NAMES),
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

    let held_out = format!(
        "{} of {}, stratified",
        pct(opts.val_fraction),
        base.display()
    );
    let (val_origin, test_origin) = match (&val_dir, &test_dir) {
        (Some(v), Some(t)) => (v.display().to_string(), t.display().to_string()),
        (Some(v), None) => (v.display().to_string(), v.display().to_string()),
        (None, Some(t)) => (t.display().to_string(), t.display().to_string()),
        (None, None) => (held_out.clone(), held_out),
    };
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
        kind: DatasetKind::ImageFolder,
        source: source_of(Some(root), opts),
        val_origin,
        test_origin,
    })
}

/// `root/val` and/or `root/test` without `root/train`: something to evaluate on, nothing to
/// train on (the training split is empty, which training rejects by name).
fn open_eval_only_folders(root: &Path, opts: &SplitOptions) -> Result<Splits> {
    let val_dir = opts
        .val_dir
        .clone()
        .or_else(|| first_dir(root, &VAL_FOLDER_NAMES));
    let test_dir = first_dir(root, &["test"]);
    let first = test_dir
        .clone()
        .or(val_dir.clone())
        .expect("a split folder");
    let first_folder = ImageFolder::open(&first, opts.skip_bad_images)?;
    let class_names = first_folder.class_names().to_vec();
    let mut skipped = first_folder.skipped();
    let first_folder: Arc<dyn Dataset> = Arc::new(first_folder);
    let (val_origin, test_origin) = match (&val_dir, &test_dir) {
        (Some(v), Some(t)) => (v.display().to_string(), t.display().to_string()),
        _ => (first.display().to_string(), first.display().to_string()),
    };
    let (val, test, how) = match (val_dir, test_dir) {
        (Some(v), Some(t)) => {
            let vf = ImageFolder::open_with_classes(&v, &class_names, opts.skip_bad_images)?;
            skipped += vf.skipped();
            let how = format!(
                "val {} ({}) / test {} ({})",
                vf.len(),
                v.display(),
                first_folder.len(),
                t.display()
            );
            (Arc::new(vf) as Arc<dyn Dataset>, first_folder, how)
        }
        (Some(v), None) => {
            let how = format!(
                "val {} ({}), which doubles as test",
                first_folder.len(),
                v.display()
            );
            (first_folder.clone(), first_folder, how)
        }
        (None, Some(t)) => {
            let how = format!(
                "test {} ({}), which doubles as validation",
                first_folder.len(),
                t.display()
            );
            (first_folder.clone(), first_folder, how)
        }
        (None, None) => unreachable!("has_split_folders"),
    };
    let train = subset(&test, vec![])?;
    let description = format!(
        "ImageFolder {}: {} classes, no train folder / {how}",
        root.display(),
        class_names.len()
    );
    Ok(Splits {
        train,
        val,
        test,
        class_names,
        description,
        skipped_at_scan: skipped,
        kind: DatasetKind::ImageFolder,
        source: source_of(Some(root), opts),
        val_origin,
        test_origin,
    })
}

/// The images of a folder to evaluate a model of `class_names` on, labelled by those names:
/// `root/test` (else `root/val`, `root/valid`, `root/validation`) when `root` has split
/// folders, else the whole of `root`. A class folder that is not one of `class_names` is an
/// error naming both sets; a class without a folder has no samples.
pub fn open_eval_folder(
    root: &Path,
    class_names: &[String],
    skip_bad_images: bool,
) -> Result<ImageFolder> {
    let dir = if has_split_folders(root) {
        first_dir(root, &["test"])
            .or_else(|| first_dir(root, &VAL_FOLDER_NAMES))
            .ok_or_else(|| DataError::Dataset {
                path: root.to_path_buf(),
                reason: "has a train/ folder but no test/ or val/ folder to evaluate on".into(),
            })?
    } else {
        root.to_path_buf()
    };
    let present = class_folders(&dir)?;
    let unknown: Vec<&String> = present
        .iter()
        .filter(|c| !class_names.contains(c))
        .collect();
    if !unknown.is_empty() {
        return Err(DataError::Dataset {
            path: dir,
            reason: format!(
                "its class folders [{}] do not match the model's classes [{}] (not among them: \
                 {})",
                present.join(", "),
                class_names.join(", "),
                unknown
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    ImageFolder::open_with_classes(&dir, class_names, skip_bad_images)
}
