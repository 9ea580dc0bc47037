//! Parameter and MAC counts of registered models, with a cache file so that listing the zoo
//! (`kestrel models`) builds and runs each model only once per kestrel build.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::layers::count_macs;
use crate::registry::ModelSpec;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelStats {
    pub params: usize,
    /// Multiply-accumulates of one forward pass at the default input, batch 1 (`None`: not
    /// counted).
    pub macs: Option<u64>,
}

/// Builds `spec` with its default options and counts its parameters and (if `with_macs`) MACs.
pub fn measure(spec: &ModelSpec, with_macs: bool) -> ModelStats {
    let device = Device::flex();
    let model = spec.build(&spec.default_options(), &device);
    let params = model.num_trainable_params();
    let macs = with_macs.then(|| {
        let [c, h, w] = spec.data_config().input_size;
        count_macs(|| model.forward(Tensor::zeros([1, c, h, w], &device))).1
    });
    ModelStats { params, macs }
}

/// Stats by model name, read from and written back to one JSON file. A missing or unreadable
/// cache is an empty one: it only saves time.
pub struct StatsCache {
    path: Option<PathBuf>,
    entries: BTreeMap<String, ModelStats>,
    dirty: bool,
}

impl StatsCache {
    /// The cache in `path`, or an in-memory one when `path` is `None`.
    pub fn open(path: Option<PathBuf>) -> Self {
        let entries = path
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        StatsCache {
            path,
            entries,
            dirty: false,
        }
    }

    /// `~/.cache/kestrel/model-stats-<size>-<mtime>.json`, keyed by the running binary's build
    /// so that a rebuilt model recounts.
    pub fn default_path() -> Option<PathBuf> {
        let exe = std::env::current_exe().ok()?;
        let meta = std::fs::metadata(&exe).ok()?;
        let mtime = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs();
        let home = std::env::var_os("HOME")?;
        Some(
            Path::new(&home)
                .join(".cache/kestrel")
                .join(format!("model-stats-{}-{mtime}.json", meta.len())),
        )
    }

    /// The cached stats of `spec` when they have what is asked for.
    pub fn get(&self, spec: &ModelSpec, with_macs: bool) -> Option<&ModelStats> {
        self.entries
            .get(spec.name)
            .filter(|s| !with_macs || s.macs.is_some())
    }

    /// Cached stats, or measured (and remembered) ones.
    pub fn get_or_measure(&mut self, spec: &ModelSpec, with_macs: bool) -> ModelStats {
        if let Some(s) = self.get(spec, with_macs) {
            return s.clone();
        }
        let s = measure(spec, with_macs);
        self.entries.insert(spec.name.to_string(), s.clone());
        self.dirty = true;
        s
    }

    /// Writes new entries back; failing to is not an error (the cache only saves time).
    pub fn save(&mut self) {
        let Some(path) = self.path.as_ref().filter(|_| self.dirty) else {
            return;
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Ok(text) = serde_json::to_string(&self.entries) {
            if std::fs::write(path, text).is_ok() {
                self.dirty = false;
            }
        }
    }
}
