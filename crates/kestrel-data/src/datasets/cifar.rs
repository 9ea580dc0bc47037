//! CIFAR-10 and CIFAR-100 binary versions (`cifar-10-batches-bin`, `cifar-100-binary`).
//!
//! Each record is the label byte(s) followed by 3072 bytes: the 32×32 red plane, then green,
//! then blue (CHW). Records are stored here as HWC RGB images.

use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::memory::InMemoryDataset;

/// Bytes of pixels per CIFAR record (3 × 32 × 32).
pub const CIFAR_PIXELS: usize = 3 * 32 * 32;
/// CIFAR-10 record: 1 label byte + pixels.
pub const CIFAR10_RECORD: usize = 1 + CIFAR_PIXELS;
/// CIFAR-100 record: coarse label byte + fine label byte + pixels.
pub const CIFAR100_RECORD: usize = 2 + CIFAR_PIXELS;

/// CIFAR-10's class names, used when `batches.meta.txt` is missing.
pub const CIFAR10_CLASSES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CifarKind {
    Cifar10,
    Cifar100,
}

impl CifarKind {
    pub fn record_len(self) -> usize {
        match self {
            CifarKind::Cifar10 => CIFAR10_RECORD,
            CifarKind::Cifar100 => CIFAR100_RECORD,
        }
    }
    pub fn num_classes(self) -> usize {
        match self {
            CifarKind::Cifar10 => 10,
            CifarKind::Cifar100 => 100,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            CifarKind::Cifar10 => "CIFAR-10",
            CifarKind::Cifar100 => "CIFAR-100",
        }
    }
}

/// Parses the records of one CIFAR binary file into (HWC pixels, labels). CIFAR-100 uses the fine
/// label. `path` is only used in error messages.
pub fn parse_cifar_records(
    bytes: &[u8],
    kind: CifarKind,
    path: &Path,
) -> Result<(Vec<u8>, Vec<usize>)> {
    let rec = kind.record_len();
    if bytes.is_empty() {
        return Err(DataError::format(path, "empty file"));
    }
    if !bytes.len().is_multiple_of(rec) {
        return Err(DataError::format(
            path,
            format!(
                "truncated: {} bytes is not a multiple of {rec}",
                bytes.len()
            ),
        ));
    }
    let n = bytes.len() / rec;
    let mut pixels = vec![0u8; n * CIFAR_PIXELS];
    let mut labels = Vec::with_capacity(n);
    let plane = 32 * 32;
    for (r, record) in bytes.chunks_exact(rec).enumerate() {
        let label = match kind {
            CifarKind::Cifar10 => record[0],
            CifarKind::Cifar100 => record[1],
        } as usize;
        if label >= kind.num_classes() {
            return Err(DataError::format(
                path,
                format!(
                    "record {r} has label {label}, out of range for {} ({} classes)",
                    kind.name(),
                    kind.num_classes()
                ),
            ));
        }
        labels.push(label);
        let src = &record[rec - CIFAR_PIXELS..];
        let dst = &mut pixels[r * CIFAR_PIXELS..(r + 1) * CIFAR_PIXELS];
        for i in 0..plane {
            dst[i * 3] = src[i];
            dst[i * 3 + 1] = src[plane + i];
            dst[i * 3 + 2] = src[2 * plane + i];
        }
    }
    Ok((pixels, labels))
}

/// Reads and concatenates CIFAR binary files into one dataset; [`Dataset::source`] reports
/// `file#record`.
///
/// [`Dataset::source`]: crate::Dataset::source
pub fn read_cifar_files(
    files: &[PathBuf],
    kind: CifarKind,
    class_names: Vec<String>,
) -> Result<InMemoryDataset> {
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    let mut sources = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).map_err(|e| DataError::io(f, e))?;
        let (p, l) = parse_cifar_records(&bytes, kind, f)?;
        sources.push((labels.len(), f.display().to_string()));
        pixels.extend_from_slice(&p);
        labels.extend(l);
    }
    let origin = match files {
        [one] => one.display().to_string(),
        _ => files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(" + "),
    };
    let mut ds = InMemoryDataset::new(pixels, labels, (32, 32, 3), class_names, origin)?;
    ds.sources = sources;
    Ok(ds)
}

/// The CIFAR files found in a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CifarFiles {
    pub kind: CifarKind,
    pub dir: PathBuf,
    pub train: Vec<PathBuf>,
    pub test: Option<PathBuf>,
    /// `batches.meta.txt` (CIFAR-10) or `fine_label_names.txt` (CIFAR-100), when present.
    pub names: Option<PathBuf>,
}

fn existing(p: PathBuf) -> Option<PathBuf> {
    p.is_file().then_some(p)
}

/// Looks for CIFAR-10 (`data_batch_1..5.bin`, `test_batch.bin`) or CIFAR-100 (`train.bin`,
/// `test.bin`) binary files in `dir`, or in its `cifar-10-batches-bin` / `cifar-100-binary`
/// subfolder. Returns `None` when there are none.
pub fn find_cifar_files(dir: &Path) -> Option<CifarFiles> {
    let c10 = [dir.to_path_buf(), dir.join("cifar-10-batches-bin")];
    for d in c10 {
        let train: Vec<PathBuf> = (1..=5)
            .filter_map(|i| existing(d.join(format!("data_batch_{i}.bin"))))
            .collect();
        let test = existing(d.join("test_batch.bin"));
        if !train.is_empty() || test.is_some() {
            let names = existing(d.join("batches.meta.txt"));
            return Some(CifarFiles {
                kind: CifarKind::Cifar10,
                dir: d,
                train,
                test,
                names,
            });
        }
    }
    let c100 = [dir.to_path_buf(), dir.join("cifar-100-binary")];
    for d in c100 {
        let train: Vec<PathBuf> = existing(d.join("train.bin")).into_iter().collect();
        let test = existing(d.join("test.bin"));
        if !train.is_empty() || test.is_some() {
            let names = existing(d.join("fine_label_names.txt"));
            return Some(CifarFiles {
                kind: CifarKind::Cifar100,
                dir: d,
                train,
                test,
                names,
            });
        }
    }
    None
}

/// Reads a class-name file: one name per line, blank lines ignored.
fn read_names(path: &Path, expected: usize) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if names.len() != expected {
        return Err(DataError::format(
            path,
            format!("expected {expected} class names, found {}", names.len()),
        ));
    }
    Ok(names)
}

/// A CIFAR directory: training batches and, when present, the test batch.
#[derive(Clone, Debug)]
pub struct CifarDir {
    pub files: CifarFiles,
    pub train: InMemoryDataset,
    pub test: Option<InMemoryDataset>,
}

/// Opens a CIFAR-10 or CIFAR-100 binary directory (see [`find_cifar_files`]). Class names come
/// from `batches.meta.txt` / `fine_label_names.txt` when present, else CIFAR-10's standard names
/// or "0".."99".
pub fn open_cifar_dir(dir: impl AsRef<Path>) -> Result<CifarDir> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Err(DataError::NotFound {
            path: dir.to_path_buf(),
        });
    }
    let files = find_cifar_files(dir).ok_or_else(|| DataError::Dataset {
        path: dir.to_path_buf(),
        reason: "no CIFAR-10 (data_batch_1.bin.., test_batch.bin) or CIFAR-100 (train.bin, \
                 test.bin) binary files here or in cifar-10-batches-bin/ or cifar-100-binary/"
            .into(),
    })?;
    if files.train.is_empty() {
        let expected = match files.kind {
            CifarKind::Cifar10 => "data_batch_1.bin .. data_batch_5.bin",
            CifarKind::Cifar100 => "train.bin",
        };
        return Err(DataError::Dataset {
            path: files.dir.clone(),
            reason: format!(
                "{} test file found but no training file ({expected})",
                files.kind.name()
            ),
        });
    }
    let k = files.kind.num_classes();
    let names = match &files.names {
        Some(p) => read_names(p, k)?,
        None => match files.kind {
            CifarKind::Cifar10 => CIFAR10_CLASSES.iter().map(|s| s.to_string()).collect(),
            CifarKind::Cifar100 => (0..k).map(|i| i.to_string()).collect(),
        },
    };
    let train = read_cifar_files(&files.train, files.kind, names.clone())?;
    let test = match &files.test {
        Some(t) => Some(read_cifar_files(
            std::slice::from_ref(t),
            files.kind,
            names,
        )?),
        None => None,
    };
    Ok(CifarDir { files, train, test })
}
