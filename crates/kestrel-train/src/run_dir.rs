//! The run folder of `train`: never an earlier run overwritten by accident, and no half-made
//! folder left behind by a run that fails before its first checkpoint.

use std::path::{Path, PathBuf};

use crate::checkpoint::META_FILE;
use crate::error::TrainError;

/// What a run may do with an `--out` folder that already has files in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExistingRun {
    /// An error: the folder holds an earlier run (the default).
    Refuse,
    /// Remove the earlier run first (`--overwrite`). Only a kestrel run folder is removed.
    Replace,
    /// Keep it and write into it (a resumed run).
    Keep,
}

/// A run folder claimed by [`RunDir::prepare`].
#[derive(Debug)]
pub struct RunDir {
    pub path: PathBuf,
    /// Whether this run made the folder (and so may remove it again on failure).
    created: bool,
}

fn is_empty_dir(dir: &Path) -> Result<bool, TrainError> {
    Ok(std::fs::read_dir(dir)
        .map_err(|e| TrainError::io(dir, e))?
        .next()
        .is_none())
}

/// A folder that a kestrel run wrote: it has a checkpoint or a training log.
fn is_run_folder(dir: &Path) -> bool {
    dir.join(META_FILE).is_file() || dir.join("train_log.jsonl").is_file()
}

impl RunDir {
    /// Checks `path` before any work is done: a missing or empty folder is fine; a non-empty
    /// one is an error unless `existing` allows it. Nothing is created yet (see
    /// [`RunDir::discard_unfinished`]).
    pub fn prepare(path: &Path, existing: ExistingRun) -> Result<RunDir, TrainError> {
        if path.exists() && !path.is_dir() {
            return Err(TrainError::Config(format!(
                "--out {}: exists and is not a folder",
                path.display()
            )));
        }
        let created = !path.exists();
        if !created && !is_empty_dir(path)? {
            match existing {
                ExistingRun::Keep => {}
                ExistingRun::Refuse => {
                    return Err(TrainError::Config(format!(
                        "--out {}: the folder is not empty{}; pick another --out, or give \
                         --overwrite to replace it",
                        path.display(),
                        if is_run_folder(path) {
                            " (it holds an earlier run)"
                        } else {
                            ""
                        }
                    )))
                }
                ExistingRun::Replace => {
                    if !is_run_folder(path) {
                        return Err(TrainError::Config(format!(
                            "--out {} --overwrite: the folder is not a kestrel run (no {META_FILE} \
                             or train_log.jsonl), so it is left alone; pick another --out",
                            path.display()
                        )));
                    }
                    std::fs::remove_dir_all(path).map_err(|e| TrainError::io(path, e))?;
                    return Ok(RunDir {
                        path: path.to_path_buf(),
                        created: true,
                    });
                }
            }
        }
        Ok(RunDir {
            path: path.to_path_buf(),
            created,
        })
    }

    /// After a failed run: removes the folder when this run made it and no checkpoint was
    /// written into it (neither the best model nor a resumable `last.*`, which
    /// `--checkpoint-every` writes mid-epoch), so a failure before the first checkpoint leaves
    /// nothing behind. Returns whether it was removed.
    pub fn discard_unfinished(&self) -> bool {
        let last = crate::run_state::Slot::Last.state_file();
        self.created
            && self.path.is_dir()
            && !self.path.join(META_FILE).is_file()
            && !self.path.join(&last).is_file()
            && std::fs::remove_dir_all(&self.path).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_empty_folder_is_refused_unless_replaced_or_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("run");
        // Missing, then empty: fine.
        assert!(RunDir::prepare(&out, ExistingRun::Refuse).is_ok());
        std::fs::create_dir(&out).unwrap();
        assert!(RunDir::prepare(&out, ExistingRun::Refuse).is_ok());
        std::fs::write(out.join("train_log.jsonl"), "").unwrap();
        std::fs::create_dir(out.join("eval-test")).unwrap();
        let err = RunDir::prepare(&out, ExistingRun::Refuse).unwrap_err();
        assert!(err.to_string().contains("earlier run"), "{err}");
        assert!(RunDir::prepare(&out, ExistingRun::Keep).is_ok());
        assert!(out.join("eval-test").exists(), "Keep leaves the run alone");
        let dir = RunDir::prepare(&out, ExistingRun::Replace).unwrap();
        assert!(
            !out.exists(),
            "Replace removes the earlier run, eval-test/ included"
        );
        std::fs::create_dir(&out).unwrap();
        std::fs::write(out.join("train_log.jsonl"), "").unwrap();
        assert!(
            dir.discard_unfinished(),
            "no checkpoint: the failed run is removed"
        );
        assert!(!out.exists());
    }

    #[test]
    fn overwrite_never_removes_a_folder_that_is_not_a_run() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("notes.txt"), "mine").unwrap();
        let err = RunDir::prepare(tmp.path(), ExistingRun::Replace).unwrap_err();
        assert!(err.to_string().contains("left alone"), "{err}");
        assert!(tmp.path().join("notes.txt").exists());
    }

    #[test]
    fn an_existing_folder_is_never_discarded() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = RunDir::prepare(tmp.path(), ExistingRun::Refuse).unwrap();
        assert!(!dir.discard_unfinished());
        assert!(tmp.path().exists());
    }
}
