//! Crash-safe checkpoint files.
//!
//! One file: [`write_atomic`] writes a sibling temp file, fsyncs it, renames it over the
//! destination and fsyncs the folder, so the destination is always the old or the new file,
//! never a mix.
//!
//! A checkpoint is several files (weights, optimizer state, EMA, a manifest) that must change
//! together. [`commit_set`] is a small redo log: every file is staged (written under
//! `NAME.staged` and fsynced), then the manifest is staged, and only then are the staged files
//! renamed onto their names, the manifest last. The staged manifest lists each file's length and
//! CRC-32C, so [`recover_set`], run before a checkpoint is read, can tell the two cases a kill
//! leaves behind: the staged manifest is complete (the commit had begun: finish the renames) or
//! it is not (the commit never began: drop the staged files, the old set is intact).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::TrainError;

/// Length and CRC-32C of a checkpoint file, recorded in its manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    pub bytes: u64,
    pub crc32c: u32,
}

impl FileDigest {
    pub fn of(bytes: &[u8]) -> FileDigest {
        FileDigest {
            bytes: bytes.len() as u64,
            crc32c: crc32c::crc32c(bytes),
        }
    }
}

const STAGED: &str = ".staged";

fn staged(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(STAGED);
    path.with_file_name(name)
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let mut file = std::fs::File::create(path).map_err(|e| TrainError::io(path, e))?;
    file.write_all(bytes).map_err(|e| TrainError::io(path, e))?;
    file.sync_all().map_err(|e| TrainError::io(path, e))
}

/// Makes renames in `dir` durable (a no-op where folders cannot be opened, as on Windows).
fn sync_dir(dir: &Path) -> Result<(), TrainError> {
    #[cfg(unix)]
    {
        let d = std::fs::File::open(dir).map_err(|e| TrainError::io(dir, e))?;
        d.sync_all().map_err(|e| TrainError::io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

fn rename(from: &Path, to: &Path) -> Result<(), TrainError> {
    std::fs::rename(from, to).map_err(|e| TrainError::io(to, e))
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, fsync of the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    let tmp = staged(path);
    write_synced(&tmp, bytes)?;
    rename(&tmp, path)?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// The part of a manifest that the log reads: the files it commits.
#[derive(Deserialize)]
struct ManifestFiles {
    files: BTreeMap<String, FileDigest>,
}

/// Writes `files` (name in `dir`, bytes) and then the manifest `manifest_name` as one unit.
/// `manifest` receives the digests of `files` and returns the manifest's bytes, a JSON object
/// with a `files` map of those digests (what [`recover_set`] reads back).
pub fn commit_set(
    dir: &Path,
    manifest_name: &str,
    files: &[(String, Vec<u8>)],
    manifest: impl FnOnce(BTreeMap<String, FileDigest>) -> Vec<u8>,
) -> Result<(), TrainError> {
    let mut digests = BTreeMap::new();
    for (name, bytes) in files {
        write_synced(&staged(&dir.join(name)), bytes)?;
        digests.insert(name.clone(), FileDigest::of(bytes));
    }
    let manifest_path = dir.join(manifest_name);
    write_synced(&staged(&manifest_path), &manifest(digests))?;
    // The staged set is complete and durable before anything is renamed: from here a kill is
    // finished by recover_set.
    sync_dir(dir)?;
    for (name, _) in files {
        let path = dir.join(name);
        rename(&staged(&path), &path)?;
    }
    rename(&staged(&manifest_path), &manifest_path)?;
    sync_dir(dir)
}

/// Finishes or rolls back a [`commit_set`] that a crash interrupted. `known_files` are the
/// names the set may hold, whose staged copies are removed when the commit never began.
pub fn recover_set(
    dir: &Path,
    manifest_name: &str,
    known_files: &[String],
) -> Result<(), TrainError> {
    let manifest_path = dir.join(manifest_name);
    let staged_manifest = staged(&manifest_path);
    let journal = std::fs::read(&staged_manifest)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<ManifestFiles>(&bytes).ok());
    if let Some(journal) = journal {
        // Each file is either still staged or already renamed; both carry the digest.
        let mut complete = true;
        for (name, digest) in &journal.files {
            let path = dir.join(name);
            let ok = |p: &Path| std::fs::read(p).is_ok_and(|b| FileDigest::of(&b) == *digest);
            if ok(&staged(&path)) {
                rename(&staged(&path), &path)?;
            } else if !ok(&path) {
                complete = false;
            }
        }
        if complete {
            rename(&staged_manifest, &manifest_path)?;
            return sync_dir(dir);
        }
        // A staged manifest is written only after every staged file is complete, so this means
        // the files were changed since; leave it for the digest check to report.
    }
    let _ = std::fs::remove_file(&staged_manifest);
    for name in known_files {
        let _ = std::fs::remove_file(staged(&dir.join(name)));
    }
    Ok(())
}

/// Reads a file listed in a manifest and checks it against its digest.
pub fn read_verified(
    path: &Path,
    digest: &FileDigest,
    manifest: &Path,
) -> Result<Vec<u8>, TrainError> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::Checkpoint {
        path: path.into(),
        reason: format!(
            "cannot read it ({e}); it is listed in {}",
            manifest.display()
        ),
    })?;
    let found = FileDigest::of(&bytes);
    if found != *digest {
        return Err(TrainError::Checkpoint {
            path: path.into(),
            reason: format!(
                "corrupt or truncated: {} bytes with CRC-32C {:08x}, but {} recorded {} bytes with \
                 CRC-32C {:08x}",
                found.bytes,
                found.crc32c,
                manifest.display(),
                digest.bytes,
                digest.crc32c
            ),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(d: BTreeMap<String, FileDigest>) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "files": d })).unwrap()
    }

    #[test]
    fn crc32c_matches_the_published_check_value() {
        // RFC 3720 B.4 / the CRC catalogue: CRC-32C("123456789") = 0xE3069283.
        assert_eq!(FileDigest::of(b"123456789").crc32c, 0xE306_9283);
    }

    #[test]
    fn an_interrupted_commit_is_finished_or_rolled_back() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let names = vec!["a".to_string(), "b".to_string()];
        let set = |x: &str| vec![("a".into(), x.as_bytes().to_vec()), ("b".into(), x.into())];
        commit_set(dir, "m.json", &set("old"), manifest).unwrap();

        // Killed after staging everything and renaming only `a`: recovery finishes the commit.
        for (name, bytes) in set("new") {
            std::fs::write(staged(&dir.join(&name)), bytes).unwrap();
        }
        let digests = set("new")
            .iter()
            .map(|(n, b)| (n.clone(), FileDigest::of(b)))
            .collect();
        std::fs::write(staged(&dir.join("m.json")), manifest(digests)).unwrap();
        std::fs::rename(staged(&dir.join("a")), dir.join("a")).unwrap();
        recover_set(dir, "m.json", &names).unwrap();
        assert_eq!(std::fs::read(dir.join("b")).unwrap(), b"new");
        let m: ManifestFiles =
            serde_json::from_slice(&std::fs::read(dir.join("m.json")).unwrap()).unwrap();
        assert_eq!(m.files["b"], FileDigest::of(b"new"));

        // Killed while staging (the manifest is half written): the committed set stays.
        std::fs::write(staged(&dir.join("a")), b"newer").unwrap();
        std::fs::write(staged(&dir.join("m.json")), b"{\"files\": {\"a\"").unwrap();
        recover_set(dir, "m.json", &names).unwrap();
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"new");
        assert!(!staged(&dir.join("a")).exists() && !staged(&dir.join("m.json")).exists());
    }
}
