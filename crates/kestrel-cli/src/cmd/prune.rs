//! `kestrel prune`: magnitude (`l1`) or channel pruning (kestrel-deploy's `prune`) into a run
//! folder that every command takes as `--checkpoint DIR`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use burn::prelude::*;
use clap::{Args, ValueEnum};
use kestrel_deploy::prune::{self, ChannelCounts, Importance};
use kestrel_models::layers::count_macs;
use kestrel_models::Model;
use kestrel_train::checkpoint::{
    read_channel_counts, Checkpoint, CHANNELS_FILE, META_FILE, SPARSE_FILE, WEIGHTS_FILE,
};

use super::source::{load, ModelSourceArgs};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum PruneMethod {
    /// Unstructured: zero the smallest |w| of every conv/linear weight; stored sparse.
    L1,
    /// Structured: remove whole channels (a smaller dense model).
    Channel,
}

/// Prunes a model: unstructured magnitude pruning stored sparse (`l1`), or channel pruning that
/// physically removes channels along the dependency graph (`channel`).
#[derive(Args, Debug)]
#[command(
    after_help = "--method l1 zeroes --amount of every conv and linear weight tensor (smallest \
|w| first) and writes model.sparse.safetensors (bit mask + non-zeros). --method channel removes \
--amount of the channels of every channel group, a group being the channels that residual adds, \
depthwise convs and SE gates tie together (ResNet, MobileNet and EfficientNet families), and \
writes an ordinary smaller model.safetensors plus pruned_channels.json. Both write \
checkpoint.json and prune_report.json (params and MACs before/after, sparsity); predict, eval, \
forward, bench, export, quantize take the folder as --checkpoint DIR, and `kestrel train \
--init-from DIR` fine-tunes it.\n\n\
Example:\n  kestrel prune --checkpoint runs/resnet20_cifar --method channel --amount 0.5 \
--output runs/resnet20-pruned50"
)]
pub struct PruneArgs {
    #[command(flatten)]
    pub source: ModelSourceArgs,
    #[arg(long, value_enum)]
    pub method: PruneMethod,
    /// Fraction to remove, strictly between 0 and 1: of each weight tensor's entries (l1), of
    /// each channel group's channels (channel).
    #[arg(long, allow_negative_numbers = true)]
    pub amount: f64,
    /// Channel importance for --method channel: l1 or l2 (norm of each output filter, summed
    /// over the layers of the group), bn-gamma (|γ| of the group's BatchNorms).
    #[arg(long, default_value = "l1")]
    pub importance: Importance,
    /// The run folder to write.
    #[arg(long, value_name = "DIR")]
    pub output: PathBuf,
}

#[derive(serde::Serialize)]
struct Report {
    model: String,
    method: &'static str,
    amount: f64,
    /// Channel importance (channel pruning only).
    importance: Option<Importance>,
    params_before: usize,
    /// Non-zero parameters for l1 (the zeros are not stored).
    params_after: usize,
    params_ratio: f64,
    /// Multiply-accumulates of one image at the model's input size. Dense kernels still
    /// multiply the zeros of an l1-pruned model, so its MACs do not change.
    macs_before: u64,
    macs_after: u64,
    /// Zero entries of all trainable parameters after pruning.
    sparsity: f64,
    /// Zero entries of the conv / linear weights (l1's target).
    weight_sparsity: Option<f64>,
    weights_file: &'static str,
    /// The source's fp32 weight file and its size, when it is a safetensors file.
    source_file: Option<String>,
    source_bytes: Option<u64>,
    file_bytes: u64,
    /// Channel groups (channel pruning): their layers and channel counts.
    groups: Vec<GroupSummary>,
    kestrel_version: &'static str,
}

#[derive(serde::Serialize)]
struct GroupSummary {
    layers: Vec<String>,
    channels_before: usize,
    channels_after: usize,
}

fn macs(model: &Model, [c, h, w]: [usize; 3], device: &Device) -> u64 {
    count_macs(|| model.forward(Tensor::zeros([1, c, h, w], device))).1
}

fn zeros_in(state: &prune::StateDict) -> usize {
    state
        .values()
        .map(|(_, v)| v.iter().filter(|x| **x == 0.0).count())
        .sum()
}

pub fn run(a: PruneArgs) -> Result<()> {
    prune::check_amount(a.amount).map_err(anyhow::Error::msg)?;
    let device = Device::flex();
    let loaded = load(&a.source, &device)?;
    if loaded.int8.is_some() {
        bail!("the model is int8; prune the fp32 model it was quantized from");
    }
    let input = loaded.input_size();
    let model = loaded.model.clone();
    let params_before = model.num_trainable_params();
    let macs_before = macs(&model, input, &device);
    // A channel-pruned source keeps its channel counts (l1), or has them updated (channel).
    let mut counts: ChannelCounts = match &a.source.checkpoint {
        Some(dir) => read_channel_counts(dir)?.unwrap_or_default(),
        None => ChannelCounts::new(),
    };
    std::fs::create_dir_all(&a.output)
        .with_context(|| format!("--output: cannot create {}", a.output.display()))?;

    let (weights_file, file_bytes, params_after, macs_after, sparsity, weight_sparsity, groups) =
        match a.method {
            PruneMethod::L1 => {
                let pruned = prune::prune_l1(&model, a.amount).map_err(anyhow::Error::msg)?;
                let bytes = prune::sparse_bytes(&pruned.state, &loaded.name);
                write(&a.output, SPARSE_FILE, &bytes)?;
                // The zeros the pruning made (trainable tensors only; BN statistics are
                // buffers, as in the parameter count).
                let zeros = zeros_in(&trainable(&pruned.state));
                (
                    SPARSE_FILE,
                    bytes.len() as u64,
                    params_before - zeros,
                    macs_before,
                    zeros as f64 / params_before as f64,
                    Some(pruned.zeros as f64 / pruned.pruned_weights as f64),
                    vec![],
                )
            }
            PruneMethod::Channel => {
                let [c, _, _] = input;
                let pruned = prune::prune_channels(&model, &loaded.name, c, a.amount, a.importance)
                    .map_err(|e| anyhow::anyhow!("--method channel: {e}"))?;
                counts.extend(pruned.counts.clone());
                let spec = kestrel_models::find(&loaded.name)?;
                let opts = kestrel_models::BuildOptions {
                    num_classes: loaded.class_names.len(),
                    in_chans: c,
                    img_size: None,
                };
                let mut small = prune::apply_channel_counts(
                    spec.build(&opts, &device),
                    spec.name,
                    c,
                    &counts,
                    &device,
                )
                .map_err(anyhow::Error::msg)?;
                let bytes = prune::state_dict_bytes(&pruned.state, None);
                let path = a.output.join(WEIGHTS_FILE);
                kestrel_models::weights::load_safetensors_bytes(&mut small, bytes, &path)?;
                let bytes = kestrel_models::weights::safetensors_bytes(&small)?;
                write(&a.output, WEIGHTS_FILE, &bytes)?;
                let params_after = small.num_trainable_params();
                let zeros = zeros_in(&trainable(
                    &prune::state_dict(&small).map_err(anyhow::Error::msg)?,
                ));
                let groups = pruned
                    .groups
                    .into_iter()
                    .map(|g| GroupSummary {
                        layers: g.layers,
                        channels_before: g.channels_before,
                        channels_after: g.channels_after,
                    })
                    .collect();
                (
                    WEIGHTS_FILE,
                    bytes.len() as u64,
                    params_after,
                    macs(&small, input, &device),
                    zeros as f64 / params_after as f64,
                    None,
                    groups,
                )
            }
        };
    if !counts.is_empty() {
        let text = serde_json::to_string_pretty(&counts)?;
        write(&a.output, CHANNELS_FILE, text.as_bytes())?;
    }
    let info = serde_json::json!({
        "method": match a.method { PruneMethod::L1 => "l1", PruneMethod::Channel => "channel" },
        "amount": a.amount,
        "importance": (a.method == PruneMethod::Channel).then_some(a.importance),
        "from": a.source.checkpoint.as_ref().or(a.source.weights.as_ref()).map(|p| p.display().to_string()),
    });
    let meta = super::quantize::derived_meta(&a.source, &loaded, "pruned", info)?;
    write(
        &a.output,
        META_FILE,
        serde_json::to_string_pretty(&meta)?.as_bytes(),
    )?;

    let source_file = match (&a.source.checkpoint, &a.source.weights) {
        (Some(dir), _) => {
            let ckpt = Checkpoint::open(dir)?;
            Some(dir.join(if ckpt.is_sparse() {
                SPARSE_FILE
            } else {
                WEIGHTS_FILE
            }))
        }
        (None, Some(w)) if w.extension().is_some_and(|e| e == "safetensors") => Some(w.clone()),
        _ => None,
    };
    let source_bytes = source_file
        .as_ref()
        .and_then(|f| std::fs::metadata(f).ok())
        .map(|m| m.len());
    let report = Report {
        model: loaded.name.clone(),
        method: match a.method {
            PruneMethod::L1 => "l1",
            PruneMethod::Channel => "channel",
        },
        amount: a.amount,
        importance: (a.method == PruneMethod::Channel).then_some(a.importance),
        params_before,
        params_after,
        params_ratio: params_after as f64 / params_before as f64,
        macs_before,
        macs_after,
        sparsity,
        weight_sparsity,
        weights_file,
        source_file: source_file.map(|f| f.display().to_string()),
        source_bytes,
        file_bytes,
        groups,
        kestrel_version: env!("CARGO_PKG_VERSION"),
    };
    write(
        &a.output,
        "prune_report.json",
        serde_json::to_string_pretty(&report)?.as_bytes(),
    )?;
    println!(
        "pruned {} ({}, amount {}): params {} -> {} ({:.1}%), MACs {} -> {}, {} bytes{} -> {}",
        loaded.name,
        report.method,
        a.amount,
        params_before,
        params_after,
        100.0 * report.params_ratio,
        macs_before,
        macs_after,
        file_bytes,
        source_bytes
            .map(|b| format!(
                " ({:.2}x smaller than the source file)",
                b as f64 / file_bytes as f64
            ))
            .unwrap_or_default(),
        a.output.display()
    );
    Ok(())
}

/// The trainable tensors of a state dict (BatchNorm running statistics left out, as in
/// `Model::num_trainable_params`).
fn trainable(state: &prune::StateDict) -> prune::StateDict {
    state
        .iter()
        .filter(|(k, _)| !(k.ends_with(".running_mean") || k.ends_with(".running_var")))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn write(dir: &std::path::Path, name: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(name);
    std::fs::write(&path, bytes)
        .with_context(|| format!("--output: cannot write {}", path.display()))
}
