//! ImageFolder: `root/<class>/**/*.{jpg,jpeg,png,webp,bmp,gif}`, as torchvision's `ImageFolder`.
//!
//! * Classes are the sorted names of the subdirectories of `root`; files directly in `root` are
//!   ignored. Files are gathered recursively under each class folder in torchvision's order
//!   (directories sorted by path, files sorted by name within each).
//! * Extensions are matched case-insensitively against [`IMAGE_EXTENSIONS`].
//! * Hidden entries (name starting with `.`, e.g. `.DS_Store`, `._photo.jpg`, `.ipynb_checkpoints`)
//!   are ignored everywhere, silently and uncounted. torchvision would turn `.ipynb_checkpoints`
//!   into a class; we do not.
//! * Any other file whose extension is not an image extension is an error naming the file, unless
//!   `skip_bad_images` is set, in which case it is skipped and counted ([`ImageFolder::skipped`]).
//! * A class folder with no images is an error naming the folder (even with `skip_bad_images`:
//!   dropping a class would silently renumber the labels).
//! * Decoding is lazy, in [`Dataset::get`]; a corrupt image is found there, not at scan time.

use std::path::{Path, PathBuf};

use crate::dataset::{Dataset, Sample};
use crate::decode::{decode_image_file, has_image_extension, IMAGE_EXTENSIONS};
use crate::error::{DataError, Result};

/// A dataset of image files laid out one folder per class.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    root: PathBuf,
    files: Vec<PathBuf>,
    labels: Vec<usize>,
    class_names: Vec<String>,
    skipped_files: Vec<PathBuf>,
}

fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .map(|n| n.to_string_lossy().starts_with('.'))
        .unwrap_or(false)
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let p = entry.path();
        if !is_hidden(&p) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// The sorted, non-hidden subdirectory names of `dir` (symbolic links followed).
pub fn class_folders(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for p in read_dir_sorted(dir)? {
        if p.is_dir() {
            names.push(
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    Ok(names)
}

impl ImageFolder {
    /// Scans `root`. Classes are its sorted subfolder names.
    pub fn open(root: impl AsRef<Path>, skip_bad_images: bool) -> Result<Self> {
        let root = root.as_ref();
        check_root(root)?;
        let classes = class_folders(root)?;
        if classes.is_empty() {
            return Err(DataError::Dataset {
                path: root.to_path_buf(),
                reason: "no class folders: expected <root>/<class>/<image files>".into(),
            });
        }
        Self::scan(root, classes, false, skip_bad_images)
    }

    /// Scans `root` labelling its subfolders by their position in `class_names` (a validation
    /// folder labelled like its training folder). A subfolder that is not one of `class_names` is
    /// an error; a class without a subfolder here is allowed (it has no samples).
    pub fn open_with_classes(
        root: impl AsRef<Path>,
        class_names: &[String],
        skip_bad_images: bool,
    ) -> Result<Self> {
        let root = root.as_ref();
        check_root(root)?;
        let present = class_folders(root)?;
        if present.is_empty() {
            return Err(DataError::Dataset {
                path: root.to_path_buf(),
                reason: "no class folders: expected <root>/<class>/<image files>".into(),
            });
        }
        if let Some(extra) = present.iter().find(|c| !class_names.contains(c)) {
            return Err(DataError::Dataset {
                path: root.join(extra),
                reason: format!(
                    "class folder '{extra}' is not one of the training classes [{}]",
                    class_names.join(", ")
                ),
            });
        }
        Self::scan(root, class_names.to_vec(), true, skip_bad_images)
    }

    fn scan(
        root: &Path,
        class_names: Vec<String>,
        allow_missing: bool,
        skip_bad_images: bool,
    ) -> Result<Self> {
        let mut files = Vec::new();
        let mut labels = Vec::new();
        let mut skipped_files = Vec::new();
        for (label, class) in class_names.iter().enumerate() {
            let dir = root.join(class);
            if !dir.is_dir() {
                if allow_missing {
                    continue;
                }
                return Err(DataError::NotFound { path: dir });
            }
            let mut found = Vec::new();
            collect_files(&dir, &mut found)?;
            let before = files.len();
            for f in found {
                if has_image_extension(&f) {
                    files.push(f);
                    labels.push(label);
                } else if skip_bad_images {
                    skipped_files.push(f);
                } else {
                    return Err(DataError::Dataset {
                        reason: format!(
                            "not an image file (expected extensions: {}); remove it or enable \
                             skip_bad_images",
                            IMAGE_EXTENSIONS.join(", ")
                        ),
                        path: f,
                    });
                }
            }
            if files.len() == before {
                return Err(DataError::Dataset {
                    path: dir,
                    reason: format!(
                        "class folder '{class}' has no image files ({})",
                        IMAGE_EXTENSIONS.join(", ")
                    ),
                });
            }
        }
        Ok(ImageFolder {
            root: root.to_path_buf(),
            files,
            labels,
            class_names,
            skipped_files,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of sample `index`.
    pub fn path(&self, index: usize) -> &Path {
        &self.files[index]
    }

    /// Number of files skipped at scan time (non-image files, with `skip_bad_images`).
    pub fn skipped(&self) -> usize {
        self.skipped_files.len()
    }

    /// The files skipped at scan time.
    pub fn skipped_files(&self) -> &[PathBuf] {
        &self.skipped_files
    }
}

fn check_root(root: &Path) -> Result<()> {
    if !root.exists() {
        return Err(DataError::NotFound {
            path: root.to_path_buf(),
        });
    }
    if !root.is_dir() {
        return Err(DataError::Dataset {
            path: root.to_path_buf(),
            reason: "not a directory".into(),
        });
    }
    Ok(())
}

/// The image files (by extension) under `dir`, recursively, in [`collect_files`]' order: what
/// a folder of unlabelled images (calibration, prediction) holds.
pub fn image_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Err(DataError::NotFound {
            path: dir.to_path_buf(),
        });
    }
    let mut files = Vec::new();
    collect_files(dir, &mut files)?;
    files.retain(|f| has_image_extension(f));
    Ok(files)
}

/// All non-hidden files under `dir`, recursively, in torchvision's order: directories sorted by
/// path (`sorted(os.walk(dir))`), files sorted by name within each.
fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut dirs: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let mut files = Vec::new();
        for p in read_dir_sorted(&d)? {
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
        dirs.push((d, files));
    }
    dirs.sort_by(|a, b| a.0.as_os_str().cmp(b.0.as_os_str()));
    for (_, files) in dirs {
        out.extend(files);
    }
    Ok(())
}

impl Dataset for ImageFolder {
    fn len(&self) -> usize {
        self.files.len()
    }

    fn get(&self, index: usize) -> Result<Sample> {
        let path = self.files.get(index).ok_or_else(|| {
            DataError::Invalid(format!(
                "{}: sample index {index} out of range (len {})",
                self.root.display(),
                self.files.len()
            ))
        })?;
        Ok(Sample {
            image: decode_image_file(path)?,
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
        self.files[index].display().to_string()
    }
}
