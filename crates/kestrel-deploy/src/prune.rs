//! Pruning: unstructured magnitude pruning stored sparse, and structured channel pruning that
//! physically removes channels.
//!
//! **Channel pruning** follows torch-pruning's dependency-graph idea. A family walker traces the
//! model's layers in forward order ([`Tracer`]); every tensor axis that indexes channels belongs
//! to a *channel space*. A dense conv or linear starts a new space for its output; a depthwise
//! conv, a BatchNorm, a residual add and a squeeze-excite gate keep (or merge) spaces, so the
//! channels that must go together end up in one group: a stage's residual stream in ResNet
//! (every block's last BN, the projection shortcut, every consumer's input axis, the
//! classifier's input), a MobileNet block's expansion (expand conv out, depthwise conv, both BNs,
//! the SE reduce input and expand output, the projection's input). Each group loses the same
//! fraction of its channels, the least important ones by the sum of its producers' filter norms
//! (or its BNs' |γ|). The image input and the logits are never pruned.
//!
//! The pruned model is an ordinary model of the same family with other channel counts: a run
//! folder records the output channels of every conv and linear that changed
//! ([`ChannelCounts`], `pruned_channels.json`), and [`apply_channel_counts`] rebuilds those
//! layers (the same walker, replaying the channel flow) before the weights load.
//!
//! **Magnitude pruning** (`l1`) zeroes the smallest |w| of every conv and linear weight (each
//! tensor loses `amount` of its entries, as torch's `l1_unstructured`) and stores those tensors
//! as a bit mask plus the non-zero values ([`sparse_bytes`]), so the file shrinks with the
//! sparsity; [`dense_bytes`] expands it back to an ordinary safetensors file at load time.

use std::collections::{BTreeMap, HashMap};

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use kestrel_models::attention::BlockAttention;
use kestrel_models::mbconv::{MbBlock, SqueezeExcite};
use kestrel_models::mobilenet::HeadKind;
use kestrel_models::resnet;
use kestrel_models::sequential::Layer;
use kestrel_models::Model;
use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

/// Output channels of every conv / linear layer (timm names: `layer1.0.conv1`,
/// `blocks.2.1.conv_pw`) whose count channel pruning changed.
pub type ChannelCounts = BTreeMap<String, usize>;

/// The format tag of a sparse weight file.
pub const SPARSE_FORMAT: &str = "kestrel-sparse-v1";

/// How channel importance is scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Importance {
    /// Sum of |w| of each output filter, over the group's producers.
    L1,
    /// Euclidean norm of each output filter, summed over the group's producers.
    L2,
    /// |γ| of the group's BatchNorms (groups without a BN use L1).
    BnGamma,
}

impl std::str::FromStr for Importance {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "l1" => Ok(Importance::L1),
            "l2" => Ok(Importance::L2),
            "bn-gamma" => Ok(Importance::BnGamma),
            other => Err(format!(
                "unknown importance '{other}' (expected l1, l2 or bn-gamma)"
            )),
        }
    }
}

/// `amount` must be a fraction strictly between 0 and 1.
pub fn check_amount(amount: f64) -> Result<(), String> {
    if amount > 0.0 && amount < 1.0 {
        Ok(())
    } else {
        Err(format!(
            "--amount {amount}: must be strictly between 0 and 1 (the fraction to remove)"
        ))
    }
}

/// A set of channels that share one index: every space is one group once merged.
type Space = usize;

/// What a family walker reports, layer by layer, in forward order.
trait Tracer {
    fn input(&mut self, channels: usize) -> Space;
    fn conv(&mut self, name: &str, conv: &mut Conv2d, x: Space) -> Result<Space, String>;
    fn bn(&mut self, name: &str, bn: &mut BatchNorm, x: Space) -> Result<(), String>;
    /// A linear layer on pooled features; its output is the logits (never pruned).
    fn classifier(&mut self, name: &str, l: &mut Linear, x: Space) -> Result<(), String>;
    /// Two tensors combined elementwise (a residual add, an SE gate): one channel index.
    fn join(&mut self, a: Space, b: Space) -> Result<Space, String>;
}

/// Whether `conv` is depthwise (one filter per input channel).
fn is_depthwise(conv: &Conv2d) -> bool {
    let [out, in_per_group, _, _] = conv.weight.dims();
    conv.groups > 1 && in_per_group == 1 && out == conv.groups
}

/// An `nn.Sequential` of convs, BNs, ReLUs, pools and identities (ResNet-D's deep stem and
/// shortcuts), its layers named `{prefix}.{index}` as PyTorch's keys are.
fn walk_layers(
    prefix: &str,
    layers: &mut [Layer],
    mut x: Space,
    t: &mut dyn Tracer,
) -> Result<Space, String> {
    for (i, layer) in layers.iter_mut().enumerate() {
        match layer {
            Layer::Conv(conv) => x = t.conv(&format!("{prefix}.{i}"), conv, x)?,
            Layer::Bn(bn) => t.bn(&format!("{prefix}.{i}"), bn, x)?,
            Layer::Relu(_) | Layer::MaxPool(_) | Layer::AvgPool(_) | Layer::Identity(_) => {}
        }
    }
    Ok(x)
}

/// The families channel pruning understands, traced; anything else is an error naming it.
fn walk(
    model: &mut Model,
    model_name: &str,
    in_chans: usize,
    t: &mut dyn Tracer,
) -> Result<(), String> {
    match model {
        Model::ResNet(m) => {
            let x = t.input(in_chans);
            let mut x = match &mut m.conv1 {
                resnet::Stem::Conv(conv) => t.conv("conv1", conv, x)?,
                resnet::Stem::Deep(layers) => walk_layers("conv1", layers, x, t)?,
            };
            t.bn("bn1", &mut m.bn1, x)?;
            let stages = [&mut m.layer1, &mut m.layer2, &mut m.layer3, &mut m.layer4];
            for (s, stage) in stages.into_iter().enumerate() {
                for (b, blk) in stage.iter_mut().enumerate() {
                    let p = format!("layer{}.{b}.", s + 1);
                    let shortcut = match &mut blk.downsample {
                        Some(ds) => walk_layers(&format!("{p}downsample"), ds, x, t)?,
                        None => x,
                    };
                    let mut y = t.conv(&format!("{p}conv1"), &mut blk.conv1, x)?;
                    t.bn(&format!("{p}bn1"), &mut blk.bn1, y)?;
                    y = t.conv(&format!("{p}conv2"), &mut blk.conv2, y)?;
                    t.bn(&format!("{p}bn2"), &mut blk.bn2, y)?;
                    if let (Some(conv3), Some(bn3)) = (&mut blk.conv3, &mut blk.bn3) {
                        y = t.conv(&format!("{p}conv3"), conv3, y)?;
                        t.bn(&format!("{p}bn3"), bn3, y)?;
                    }
                    match &mut blk.se {
                        None => {}
                        Some(BlockAttention::Se(se)) => {
                            let h = t.conv(&format!("{p}se.fc1"), &mut se.fc1, y)?;
                            let g = t.conv(&format!("{p}se.fc2"), &mut se.fc2, h)?;
                            y = t.join(y, g)?;
                        }
                        Some(_) => {
                            return Err(format!(
                                "channel pruning of {model_name}: its ECA/CBAM attention ({p}se) \
                                 mixes neighbouring channels, which pruning cannot follow; use \
                                 --method l1"
                            ))
                        }
                    }
                    x = t.join(y, shortcut)?;
                }
            }
            t.classifier("fc", &mut m.fc, x)
        }
        Model::MobileNet(m) => {
            let x = t.input(in_chans);
            let mut x = t.conv("conv_stem", &mut m.conv_stem, x)?;
            t.bn("bn1", &mut m.bn1, x)?;
            x = walk_mb_blocks(&mut m.blocks, x, t)?;
            if let Some(conv) = &mut m.conv_head {
                x = t.conv("conv_head", conv, x)?;
            }
            if let Some(bn) = &mut m.bn2 {
                debug_assert!(m.head == HeadKind::ConvBn);
                t.bn("bn2", bn, x)?;
            }
            t.classifier("classifier", &mut m.classifier, x)
        }
        Model::EfficientNet(m) => {
            let x = t.input(in_chans);
            let mut x = t.conv("conv_stem", &mut m.conv_stem, x)?;
            t.bn("bn1", &mut m.bn1, x)?;
            x = walk_mb_blocks(&mut m.blocks, x, t)?;
            x = t.conv("conv_head", &mut m.conv_head, x)?;
            t.bn("bn2", &mut m.bn2, x)?;
            t.classifier("classifier", &mut m.classifier, x)
        }
        other => Err(format!(
            "channel pruning does not support {model_name} (family {}); it supports the ResNet, \
             MobileNet and EfficientNet families (use --method l1 for any model)",
            other.kind()
        )),
    }
}

/// The MobileNet / EfficientNet blocks (timm's EfficientNet builder), from `x`.
fn walk_mb_blocks(
    blocks: &mut [Vec<MbBlock>],
    mut x: Space,
    t: &mut dyn Tracer,
) -> Result<Space, String> {
    fn se(t: &mut dyn Tracer, p: &str, se: &mut SqueezeExcite, y: Space) -> Result<Space, String> {
        let h = t.conv(&format!("{p}se.conv_reduce"), &mut se.conv_reduce, y)?;
        let g = t.conv(&format!("{p}se.conv_expand"), &mut se.conv_expand, h)?;
        t.join(y, g)
    }
    for (s, stage) in blocks.iter_mut().enumerate() {
        for (b, block) in stage.iter_mut().enumerate() {
            let p = format!("blocks.{s}.{b}.");
            let (y, skip) = match block {
                MbBlock::Ds(d) => {
                    let mut y = t.conv(&format!("{p}conv_dw"), &mut d.conv_dw, x)?;
                    t.bn(&format!("{p}bn1"), &mut d.bn1, y)?;
                    if let Some(m) = &mut d.se {
                        y = se(t, &p, m, y)?;
                    }
                    let y = t.conv(&format!("{p}conv_pw"), &mut d.conv_pw, y)?;
                    t.bn(&format!("{p}bn2"), &mut d.bn2, y)?;
                    (y, d.has_skip)
                }
                MbBlock::Ir(r) => {
                    let mut y = t.conv(&format!("{p}conv_pw"), &mut r.conv_pw, x)?;
                    t.bn(&format!("{p}bn1"), &mut r.bn1, y)?;
                    y = t.conv(&format!("{p}conv_dw"), &mut r.conv_dw, y)?;
                    t.bn(&format!("{p}bn2"), &mut r.bn2, y)?;
                    if let Some(m) = &mut r.se {
                        y = se(t, &p, m, y)?;
                    }
                    let y = t.conv(&format!("{p}conv_pwl"), &mut r.conv_pwl, y)?;
                    t.bn(&format!("{p}bn3"), &mut r.bn3, y)?;
                    (y, r.has_skip)
                }
                MbBlock::Cn(c) => {
                    let y = t.conv(&format!("{p}conv"), &mut c.conv, x)?;
                    t.bn(&format!("{p}bn1"), &mut c.bn1, y)?;
                    (y, c.has_skip)
                }
            };
            x = if skip { t.join(y, x)? } else { y };
        }
    }
    Ok(x)
}

// ---------------------------------------------------------------------------------------------
// The dependency graph.

/// How a tensor axis takes part in a group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// A conv's output filters (axis 0 of its weight): scored by L1/L2.
    Filter,
    /// A BatchNorm's γ: scored by bn-gamma.
    Gamma,
    /// Anything else indexed by the channel (biases, BN statistics, consumers' input axes).
    Follower,
}

#[derive(Clone, Debug)]
struct Member {
    tensor: String,
    axis: usize,
    role: Role,
}

/// One traced conv or linear and the space of its outputs.
#[derive(Clone, Debug)]
struct LayerSpaces {
    name: String,
    out: Space,
}

#[derive(Default)]
struct DepGraph {
    parent: Vec<Space>,
    size: Vec<usize>,
    /// Spaces whose channels stay (the image, the logits).
    fixed: Vec<bool>,
    members: Vec<(Space, Member)>,
    layers: Vec<LayerSpaces>,
}

impl DepGraph {
    fn new_space(&mut self, size: usize, fixed: bool) -> Space {
        self.parent.push(self.parent.len());
        self.size.push(size);
        self.fixed.push(fixed);
        self.parent.len() - 1
    }
    fn root(&mut self, mut s: Space) -> Space {
        while self.parent[s] != s {
            self.parent[s] = self.parent[self.parent[s]];
            s = self.parent[s];
        }
        s
    }
    fn member(&mut self, s: Space, tensor: String, axis: usize, role: Role) {
        self.members.push((s, Member { tensor, axis, role }));
    }
}

impl Tracer for DepGraph {
    fn input(&mut self, channels: usize) -> Space {
        self.new_space(channels, true)
    }
    fn conv(&mut self, name: &str, conv: &mut Conv2d, x: Space) -> Result<Space, String> {
        let [out, in_per_group, _, _] = conv.weight.dims();
        let w = format!("{name}.weight");
        let y = if is_depthwise(conv) {
            x
        } else if conv.groups == 1 {
            self.member(x, w.clone(), 1, Role::Follower);
            self.new_space(out, false)
        } else {
            return Err(format!(
                "layer {name} is a grouped conv ({} groups of {in_per_group} channels), which \
                 channel pruning does not split; use --method l1",
                conv.groups
            ));
        };
        self.member(y, w, 0, Role::Filter);
        if conv.bias.is_some() {
            self.member(y, format!("{name}.bias"), 0, Role::Follower);
        }
        self.layers.push(LayerSpaces {
            name: name.to_string(),
            out: y,
        });
        Ok(y)
    }
    fn bn(&mut self, name: &str, _bn: &mut BatchNorm, x: Space) -> Result<(), String> {
        self.member(x, format!("{name}.weight"), 0, Role::Gamma);
        for t in ["bias", "running_mean", "running_var"] {
            self.member(x, format!("{name}.{t}"), 0, Role::Follower);
        }
        Ok(())
    }
    fn classifier(&mut self, name: &str, l: &mut Linear, x: Space) -> Result<(), String> {
        // PyTorch layout [out, in]: the input channels are axis 1.
        self.member(x, format!("{name}.weight"), 1, Role::Follower);
        let [_, out] = l.weight.dims();
        let y = self.new_space(out, true);
        self.layers.push(LayerSpaces {
            name: name.to_string(),
            out: y,
        });
        Ok(())
    }
    fn join(&mut self, a: Space, b: Space) -> Result<Space, String> {
        let (ra, rb) = (self.root(a), self.root(b));
        if self.size[ra] != self.size[rb] {
            return Err(format!(
                "internal: joined channel spaces of {} and {} channels",
                self.size[ra], self.size[rb]
            ));
        }
        if ra != rb {
            self.parent[rb] = ra;
            self.fixed[ra] |= self.fixed[rb];
        }
        Ok(ra)
    }
}

/// A model's parameters by (PyTorch / timm) name: shape and f32 values.
pub type StateDict = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// The model's weights as [`save_safetensors`](kestrel_models::weights::save_safetensors)
/// writes them (timm names, PyTorch layout).
pub fn state_dict(model: &Model) -> Result<StateDict, String> {
    let bytes = kestrel_models::weights::safetensors_bytes(model).map_err(|e| e.to_string())?;
    read_state_dict(&bytes)
}

fn read_state_dict(bytes: &[u8]) -> Result<StateDict, String> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| format!("not safetensors: {e}"))?;
    let mut out = StateDict::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(format!("tensor {name} is {:?}, not F32", view.dtype()));
        }
        let values = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        out.insert(name, (view.shape().to_vec(), values));
    }
    Ok(out)
}

/// `state` as safetensors bytes, with `metadata`.
pub fn state_dict_bytes(state: &StateDict, metadata: Option<HashMap<String, String>>) -> Vec<u8> {
    let raw: Vec<(&String, &Vec<usize>, Vec<u8>)> = state
        .iter()
        .map(|(n, (s, v))| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views = raw.iter().map(|(n, s, b)| {
        (
            n.to_string(),
            TensorView::new(Dtype::F32, s.to_vec(), b).expect("shape matches data"),
        )
    });
    safetensors::tensor::serialize(views, metadata).expect("safetensors serialises")
}

/// Keeps `keep` (sorted) along `axis` of a row-major tensor.
fn select(shape: &[usize], values: &[f32], axis: usize, keep: &[usize]) -> (Vec<usize>, Vec<f32>) {
    let outer: usize = shape[..axis].iter().product();
    let n = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let mut out = Vec::with_capacity(outer * keep.len() * inner);
    for o in 0..outer {
        for &k in keep {
            let at = (o * n + k) * inner;
            out.extend_from_slice(&values[at..at + inner]);
        }
    }
    let mut s = shape.to_vec();
    s[axis] = keep.len();
    (s, out)
}

/// Per-channel norms of a tensor along `axis` (L1 or L2).
fn channel_norms(shape: &[usize], values: &[f32], axis: usize, l2: bool) -> Vec<f64> {
    let outer: usize = shape[..axis].iter().product();
    let n = shape[axis];
    let inner: usize = shape[axis + 1..].iter().product();
    let mut acc = vec![0f64; n];
    for o in 0..outer {
        for (c, a) in acc.iter_mut().enumerate() {
            let at = (o * n + c) * inner;
            for &v in &values[at..at + inner] {
                *a += if l2 {
                    (v as f64).powi(2)
                } else {
                    (v as f64).abs()
                };
            }
        }
    }
    if l2 {
        acc.iter_mut().for_each(|a| *a = a.sqrt());
    }
    acc
}

/// One pruned group, for the report.
#[derive(Clone, Debug, Serialize)]
pub struct GroupReport {
    /// The layers whose output channels this group is (the first one names it).
    pub layers: Vec<String>,
    pub channels_before: usize,
    pub channels_after: usize,
    /// The channel indices kept, ascending.
    pub kept: Vec<usize>,
}

/// What [`prune_channels`] did.
pub struct ChannelPruned {
    pub state: StateDict,
    pub counts: ChannelCounts,
    pub groups: Vec<GroupReport>,
}

/// Channel-prunes `model` (model name `model_name`, `in_chans` input channels): every group
/// loses `round(amount · channels)` channels (at least one stays), the lowest by `importance`.
/// Returns the pruned weights and the channel counts that rebuild the architecture.
pub fn prune_channels(
    model: &Model,
    model_name: &str,
    in_chans: usize,
    amount: f64,
    importance: Importance,
) -> Result<ChannelPruned, String> {
    check_amount(amount)?;
    let mut graph = DepGraph::default();
    // The walker takes the model mutably (the resizer rebuilds layers); the graph only reads.
    let mut traced = model.clone();
    walk(&mut traced, model_name, in_chans, &mut graph)?;
    let mut state = state_dict(model)?;

    let mut by_root: BTreeMap<Space, Vec<Member>> = BTreeMap::new();
    for (s, m) in std::mem::take(&mut graph.members) {
        let r = graph.root(s);
        by_root.entry(r).or_default().push(m);
    }
    let mut layers_of: BTreeMap<Space, Vec<String>> = BTreeMap::new();
    for l in graph.layers.clone() {
        let r = graph.root(l.out);
        layers_of.entry(r).or_default().push(l.name);
    }
    let mut groups = Vec::new();
    let mut new_size: HashMap<Space, usize> = HashMap::new();
    for (root, members) in &by_root {
        if graph.fixed[*root] {
            continue;
        }
        let n = graph.size[*root];
        let score_role = match importance {
            Importance::BnGamma if members.iter().any(|m| m.role == Role::Gamma) => Role::Gamma,
            _ => Role::Filter,
        };
        let mut score = vec![0f64; n];
        for m in members.iter().filter(|m| m.role == score_role) {
            let (shape, values) = state
                .get(&m.tensor)
                .ok_or_else(|| format!("internal: no tensor {} in the weights", m.tensor))?;
            let norms = channel_norms(shape, values, m.axis, importance == Importance::L2);
            score.iter_mut().zip(norms).for_each(|(s, v)| *s += v);
        }
        let remove = ((n as f64) * amount).round() as usize;
        let keep_n = n.saturating_sub(remove).max(1);
        let mut order: Vec<usize> = (0..n).collect();
        // Highest score first; ties keep the lower index, so the result is deterministic.
        order.sort_by(|&a, &b| score[b].total_cmp(&score[a]).then(a.cmp(&b)));
        let mut kept = order[..keep_n].to_vec();
        kept.sort_unstable();
        for m in members {
            let (shape, values) = &state[&m.tensor];
            if shape[m.axis] != n {
                return Err(format!(
                    "internal: tensor {} axis {} has {} channels, its group {n}",
                    m.tensor, m.axis, shape[m.axis]
                ));
            }
            let pruned = select(shape, values, m.axis, &kept);
            state.insert(m.tensor.clone(), pruned);
        }
        new_size.insert(*root, keep_n);
        groups.push(GroupReport {
            layers: layers_of.get(root).cloned().unwrap_or_default(),
            channels_before: n,
            channels_after: keep_n,
            kept,
        });
    }
    let mut counts = ChannelCounts::new();
    for l in graph.layers.clone() {
        let r = graph.root(l.out);
        if let Some(&k) = new_size.get(&r) {
            if k != graph.size[r] {
                counts.insert(l.name, k);
            }
        }
    }
    Ok(ChannelPruned {
        state,
        counts,
        groups,
    })
}

// ---------------------------------------------------------------------------------------------
// Rebuilding a pruned architecture.

/// Replays the channel flow, rebuilding every layer whose channel counts differ.
struct Resizer<'a> {
    counts: &'a ChannelCounts,
    used: usize,
    size: Vec<usize>,
    device: Device,
}

impl Tracer for Resizer<'_> {
    fn input(&mut self, channels: usize) -> Space {
        self.size.push(channels);
        self.size.len() - 1
    }
    fn conv(&mut self, name: &str, conv: &mut Conv2d, x: Space) -> Result<Space, String> {
        let [out, in_per_group, kh, kw] = conv.weight.dims();
        let in_ch = self.size[x];
        let depthwise = is_depthwise(conv);
        let new_out = match self.counts.get(name) {
            Some(&c) => {
                self.used += 1;
                c
            }
            None if depthwise => in_ch,
            None => out,
        };
        if depthwise && new_out != in_ch {
            return Err(format!(
                "layer {name} is depthwise: it needs as many outputs as inputs ({in_ch}), not \
                 {new_out}"
            ));
        }
        let old_in = in_per_group * conv.groups;
        if new_out == 0 {
            return Err(format!("layer {name}: 0 output channels"));
        }
        if new_out != out || in_ch != old_in {
            let groups = if depthwise { in_ch } else { conv.groups };
            if in_ch % groups != 0 {
                return Err(format!(
                    "layer {name}: {in_ch} input channels do not split into {groups} groups"
                ));
            }
            *conv = Conv2dConfig::new([in_ch, new_out], [kh, kw])
                .with_stride(conv.stride)
                .with_dilation(conv.dilation)
                .with_groups(groups)
                .with_padding(conv.padding.clone())
                .with_bias(conv.bias.is_some())
                .init(&self.device);
        }
        self.size.push(new_out);
        Ok(self.size.len() - 1)
    }
    fn bn(&mut self, _name: &str, bn: &mut BatchNorm, x: Space) -> Result<(), String> {
        let [c] = bn.gamma.dims();
        if c != self.size[x] {
            *bn = BatchNormConfig::new(self.size[x])
                .with_epsilon(bn.epsilon)
                .with_momentum(bn.momentum)
                .init(&self.device);
        }
        Ok(())
    }
    fn classifier(&mut self, name: &str, l: &mut Linear, x: Space) -> Result<(), String> {
        let [d_in, d_out] = l.weight.dims();
        if self.counts.contains_key(name) {
            return Err(format!(
                "layer {name} is the classifier; its outputs cannot be pruned"
            ));
        }
        if d_in != self.size[x] {
            *l = LinearConfig::new(self.size[x], d_out)
                .with_bias(l.bias.is_some())
                .init(&self.device);
        }
        Ok(())
    }
    fn join(&mut self, a: Space, b: Space) -> Result<Space, String> {
        if self.size[a] != self.size[b] {
            return Err(format!(
                "a residual add or gate joins {} and {} channels",
                self.size[a], self.size[b]
            ));
        }
        Ok(a)
    }
}

/// Rebuilds the layers of `model` (a freshly built `model_name`) that `counts` names with their
/// pruned channel counts, and the layers that consume them; weights are fresh (load them next).
pub fn apply_channel_counts(
    mut model: Model,
    model_name: &str,
    in_chans: usize,
    counts: &ChannelCounts,
    device: &Device,
) -> Result<Model, String> {
    let mut resizer = Resizer {
        counts,
        used: 0,
        size: Vec::new(),
        device: device.clone(),
    };
    walk(&mut model, model_name, in_chans, &mut resizer)?;
    if resizer.used != counts.len() {
        let mut known = ChannelCounts::new();
        let mut lister = DepGraph::default();
        walk(&mut model, model_name, in_chans, &mut lister)?;
        for l in lister.layers {
            known.insert(l.name, 0);
        }
        let unknown: Vec<&str> = counts
            .keys()
            .filter(|k| !known.contains_key(*k))
            .map(String::as_str)
            .collect();
        return Err(format!(
            "{model_name} has no layer(s) {} (channel counts of another model?)",
            unknown.join(", ")
        ));
    }
    Ok(model)
}

// ---------------------------------------------------------------------------------------------
// Magnitude pruning and the sparse file.

/// What [`prune_l1`] did.
pub struct L1Pruned {
    pub state: StateDict,
    /// Weights in the pruned tensors, and how many of them are now zero.
    pub pruned_weights: usize,
    pub zeros: usize,
}

/// Zeroes the `round(amount · n)` smallest |w| of every conv and linear weight (rank ≥ 2
/// `*.weight` tensors), ties broken by position.
pub fn prune_l1(model: &Model, amount: f64) -> Result<L1Pruned, String> {
    check_amount(amount)?;
    let mut state = state_dict(model)?;
    let (mut pruned_weights, mut zeros) = (0, 0);
    for (name, (shape, values)) in state.iter_mut() {
        if shape.len() < 2 || !name.ends_with(".weight") {
            continue;
        }
        let k = ((values.len() as f64) * amount).round() as usize;
        let mut order: Vec<usize> = (0..values.len()).collect();
        order.sort_by(|&a, &b| values[a].abs().total_cmp(&values[b].abs()).then(a.cmp(&b)));
        for &i in &order[..k] {
            values[i] = 0.0;
        }
        pruned_weights += values.len();
        zeros += values.iter().filter(|v| **v == 0.0).count();
    }
    Ok(L1Pruned {
        state,
        pruned_weights,
        zeros,
    })
}

/// `state` as a sparse safetensors file: every rank ≥ 2 tensor with zeros becomes
/// `NAME.__mask` (U8, its elements' non-zero bits, little-endian bit order within each byte)
/// and `NAME.__values` (F32, the non-zeros in order), its shape in the metadata as
/// `shape.NAME`; other tensors are stored as they are.
pub fn sparse_bytes(state: &StateDict, model_name: &str) -> Vec<u8> {
    let mut meta = HashMap::new();
    meta.insert("kestrel.format".to_string(), SPARSE_FORMAT.to_string());
    meta.insert("kestrel.model".to_string(), model_name.to_string());
    let mut raw: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, (shape, values)) in state {
        let has_zeros = values.iter().any(|v| *v == 0.0);
        if shape.len() < 2 || !has_zeros {
            let bytes = values.iter().flat_map(|x| x.to_le_bytes()).collect();
            raw.push((name.clone(), Dtype::F32, shape.clone(), bytes));
            continue;
        }
        let mut mask = vec![0u8; values.len().div_ceil(8)];
        let mut nz = Vec::new();
        for (i, &v) in values.iter().enumerate() {
            if v != 0.0 {
                mask[i / 8] |= 1 << (i % 8);
                nz.extend_from_slice(&v.to_le_bytes());
            }
        }
        meta.insert(
            format!("shape.{name}"),
            serde_json::to_string(shape).expect("shape serialises"),
        );
        raw.push((format!("{name}.__mask"), Dtype::U8, vec![mask.len()], mask));
        raw.push((
            format!("{name}.__values"),
            Dtype::F32,
            vec![nz.len() / 4],
            nz,
        ));
    }
    let views = raw.iter().map(|(n, dt, s, b)| {
        (
            n.clone(),
            TensorView::new(*dt, s.clone(), b).expect("shape matches data"),
        )
    });
    safetensors::tensor::serialize(views, Some(meta)).expect("safetensors serialises")
}

/// A sparse file ([`sparse_bytes`]) expanded back to an ordinary (dense) safetensors file.
/// `model_name` must be the model it was made from.
pub fn dense_bytes(sparse: &[u8], model_name: &str) -> Result<Vec<u8>, String> {
    let (_, meta) =
        SafeTensors::read_metadata(sparse).map_err(|e| format!("not a safetensors file: {e}"))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    if meta.get("kestrel.format").map(String::as_str) != Some(SPARSE_FORMAT) {
        return Err(format!(
            "not a kestrel sparse weight file (no kestrel.format = {SPARSE_FORMAT})"
        ));
    }
    let made_for = meta.get("kestrel.model").cloned().unwrap_or_default();
    if made_for != model_name {
        return Err(format!("was pruned from {made_for}, not {model_name}"));
    }
    let st = SafeTensors::deserialize(sparse).map_err(|e| format!("not safetensors: {e}"))?;
    let mut state = StateDict::new();
    let f32s = |data: &[u8]| -> Vec<f32> {
        data.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    for (name, view) in st.tensors() {
        if name.ends_with(".__values") {
            continue;
        }
        if let Some(base) = name.strip_suffix(".__mask") {
            let shape: Vec<usize> = meta
                .get(&format!("shape.{base}"))
                .and_then(|s| serde_json::from_str(s).ok())
                .ok_or_else(|| format!("tensor {base}: no shape in the metadata"))?;
            let values = st
                .tensor(&format!("{base}.__values"))
                .map_err(|_| format!("tensor {base}: mask without values"))?;
            let nz = f32s(values.data());
            let mask = view.data();
            let n: usize = shape.iter().product();
            if mask.len() != n.div_ceil(8) {
                return Err(format!(
                    "tensor {base}: mask of {} bytes for {n} values",
                    mask.len()
                ));
            }
            let mut dense = vec![0f32; n];
            let mut next = nz.iter();
            for (i, d) in dense.iter_mut().enumerate() {
                if mask[i / 8] >> (i % 8) & 1 == 1 {
                    *d = *next
                        .next()
                        .ok_or_else(|| format!("tensor {base}: fewer values than mask bits"))?;
                }
            }
            if next.next().is_some() {
                return Err(format!("tensor {base}: more values than mask bits"));
            }
            state.insert(base.to_string(), (shape, dense));
        } else {
            if view.dtype() != Dtype::F32 {
                return Err(format!("tensor {name} is {:?}, not F32", view.dtype()));
            }
            state.insert(name, (view.shape().to_vec(), f32s(view.data())));
        }
    }
    Ok(state_dict_bytes(&state, None))
}
