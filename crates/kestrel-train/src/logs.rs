//! The run's metric files beside `train_log.jsonl`: `metrics.csv` (one row per epoch) and
//! TensorBoard event files (`events.out.tfevents.*`).
//!
//! An event file is TFRecord framing around `Event` protobufs: each record is the payload's
//! length (u64, little-endian), the masked CRC-32C of those 8 bytes, the payload and its masked
//! CRC-32C. The first event holds `file_version = "brain.Event:2"`; the rest hold one scalar
//! summary each (`Summary.Value { tag, simple_value }`).

use std::io::Write;
use std::path::{Path, PathBuf};

use prost::Message;

use crate::atomic::write_atomic;
use crate::error::TrainError;
use crate::trainer::EpochLog;

/// `metrics.csv`: every epoch of `history`, rewritten whole (atomically) after each epoch, so a
/// resumed run's file matches its log.
pub fn write_metrics_csv(path: &Path, history: &[EpochLog]) -> Result<(), TrainError> {
    let mut text = String::from(
        "epoch,lr_start,lr,train_loss,train_accuracy,val_loss,val_accuracy,ema_val_loss,\
         ema_val_accuracy,seconds,images_per_second\n",
    );
    let opt = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
    for e in history {
        text.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{}\n",
            e.epoch,
            e.lr_start,
            e.lr,
            e.train_loss,
            e.train_accuracy,
            e.val_loss,
            e.val_accuracy,
            opt(e.ema_val_loss),
            opt(e.ema_val_accuracy),
            e.seconds,
            e.images_per_second
        ));
    }
    write_atomic(path, text.as_bytes())
}

/// tensorflow/core/util/event.proto's `Event`, the fields kestrel writes.
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(string, optional, tag = "3")]
    pub file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

/// tensorflow/core/framework/summary.proto's `Summary`.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `Summary.Value` with its `simple_value` (a scalar).
#[derive(Clone, PartialEq, Message)]
pub struct SummaryValue {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
}

/// TFRecord's CRC: CRC-32C, rotated right by 15 and offset.
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    (crc.rotate_right(15)).wrapping_add(0xa282_ead8)
}

/// Appends scalars to one TensorBoard event file.
pub struct EventWriter {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl EventWriter {
    /// A new `events.out.tfevents.<seconds>.kestrel.<pid>` in `dir` (a resumed run adds its own
    /// file; TensorBoard reads every file of the folder).
    pub fn create(dir: &Path) -> Result<EventWriter, TrainError> {
        let path = dir.join(format!(
            "events.out.tfevents.{}.kestrel.{}",
            now() as u64,
            std::process::id()
        ));
        let file = std::fs::File::create(&path).map_err(|e| TrainError::io(&path, e))?;
        let mut w = EventWriter {
            path,
            file: std::io::BufWriter::new(file),
        };
        w.write(&Event {
            wall_time: now(),
            step: 0,
            file_version: Some("brain.Event:2".into()),
            summary: None,
        })?;
        Ok(w)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, event: &Event) -> Result<(), TrainError> {
        let data = event.encode_to_vec();
        let len = (data.len() as u64).to_le_bytes();
        let mut record = Vec::with_capacity(data.len() + 16);
        record.extend_from_slice(&len);
        record.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
        record.extend_from_slice(&data);
        record.extend_from_slice(&masked_crc32c(&data).to_le_bytes());
        self.file
            .write_all(&record)
            .map_err(|e| TrainError::io(&self.path, e))
    }

    /// One scalar `tag` at `step`.
    pub fn scalar(&mut self, tag: &str, step: usize, value: f64) -> Result<(), TrainError> {
        self.write(&Event {
            wall_time: now(),
            step: step as i64,
            file_version: None,
            summary: Some(Summary {
                value: vec![SummaryValue {
                    tag: tag.into(),
                    simple_value: Some(value as f32),
                }],
            }),
        })
    }

    /// The epoch's scalars (step = the epoch), then a flush so TensorBoard sees them.
    pub fn epoch(&mut self, e: &EpochLog) -> Result<(), TrainError> {
        let mut put = |tag: &str, v: f64| self.scalar(tag, e.epoch, v);
        put("epoch/train_loss", e.train_loss)?;
        put("epoch/train_accuracy", e.train_accuracy)?;
        put("epoch/val_loss", e.val_loss)?;
        put("epoch/val_accuracy", e.val_accuracy)?;
        put("epoch/lr", e.lr)?;
        put("epoch/images_per_second", e.images_per_second)?;
        if let (Some(l), Some(a)) = (e.ema_val_loss, e.ema_val_accuracy) {
            put("epoch/ema_val_loss", l)?;
            put("epoch/ema_val_accuracy", a)?;
        }
        self.flush()
    }

    pub fn flush(&mut self) -> Result<(), TrainError> {
        self.file.flush().map_err(|e| TrainError::io(&self.path, e))
    }
}

/// `train_steps.jsonl`: one line per optimizer update, `{"step", "epoch", "loss", "lr"}`:
/// the update's number (from 1), its epoch (from 1), the mean loss of the batches it summed and
/// the lr it was applied with.
pub const STEP_LOG_FILE: &str = "train_steps.jsonl";

/// One line of [`STEP_LOG_FILE`].
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepRecord {
    pub step: usize,
    pub epoch: usize,
    pub loss: f64,
    pub lr: f64,
}

/// Appends [`StepRecord`]s through a buffer: the trainer flushes before each checkpoint, so
/// the file on disk covers at least the steps the checkpoint holds.
pub struct StepLog {
    path: PathBuf,
    file: std::io::BufWriter<std::fs::File>,
}

impl StepLog {
    /// Opens `dir`'s step log for a run that has made `steps_done` updates: a resumed run keeps
    /// the lines of those steps and drops any later (or half-written) ones, which it redoes.
    pub fn open(dir: &Path, steps_done: usize) -> Result<StepLog, TrainError> {
        let path = dir.join(STEP_LOG_FILE);
        let mut kept = String::new();
        if steps_done > 0 {
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(TrainError::io(&path, e)),
            };
            for line in text.lines() {
                match serde_json::from_str::<StepRecord>(line) {
                    Ok(r) if r.step <= steps_done => {
                        kept.push_str(line);
                        kept.push('\n');
                    }
                    _ => {}
                }
            }
        }
        write_atomic(&path, kept.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        Ok(StepLog {
            path,
            file: std::io::BufWriter::new(file),
        })
    }

    pub fn record(
        &mut self,
        step: usize,
        epoch: usize,
        loss: f64,
        lr: f64,
    ) -> Result<(), TrainError> {
        let line = serde_json::to_string(&StepRecord {
            step,
            epoch,
            loss,
            lr,
        })
        .expect("a step record serialises");
        writeln!(self.file, "{line}").map_err(|e| TrainError::io(&self.path, e))
    }

    pub fn flush(&mut self) -> Result<(), TrainError> {
        self.file.flush().map_err(|e| TrainError::io(&self.path, e))
    }
}

/// Reads an event file back: each record's framing and both CRCs are checked, then the payload
/// is decoded. For tests and tools; TensorBoard is the real reader.
pub fn read_events(path: &Path) -> Result<Vec<Event>, TrainError> {
    let bytes = std::fs::read(path).map_err(|e| TrainError::io(path, e))?;
    let bad = |at: usize, what: &str| TrainError::Checkpoint {
        path: path.into(),
        reason: format!("record at byte {at}: {what}"),
    };
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut events = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        if bytes.len() - at < 12 {
            return Err(bad(at, "truncated header"));
        }
        let len_bytes = &bytes[at..at + 8];
        if u32_at(&bytes, at + 8) != masked_crc32c(len_bytes) {
            return Err(bad(at, "length CRC mismatch"));
        }
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes")) as usize;
        let start = at + 12;
        if bytes.len() < start + len + 4 {
            return Err(bad(at, "truncated payload"));
        }
        let data = &bytes[start..start + len];
        if u32_at(&bytes, start + len) != masked_crc32c(data) {
            return Err(bad(at, "payload CRC mismatch"));
        }
        events.push(Event::decode(data).map_err(|e| bad(at, &e.to_string()))?);
        at = start + len + 4;
    }
    Ok(events)
}
