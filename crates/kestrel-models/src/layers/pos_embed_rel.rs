//! Relative-position bias (Swin; timm's `get_relative_position_index` and
//! `WindowAttention._get_rel_pos_bias`): a learnt table of one bias per head for every relative
//! offset inside a window, [(2·Wh−1)(2·Ww−1), heads], read through an index of each query/key
//! pair's offset. The index is rebuilt from the window size, never loaded.

use burn::prelude::*;
use burn::tensor::{Int, TensorData};

/// For a win_h × win_w window, the table row of every (query, key) token pair, row-major
/// [N·N] with N = win_h·win_w.
pub fn relative_position_index(win_h: usize, win_w: usize) -> Vec<i64> {
    let n = win_h * win_w;
    let mut index = Vec::with_capacity(n * n);
    for q in 0..n {
        let (qh, qw) = ((q / win_w) as i64, (q % win_w) as i64);
        for k in 0..n {
            let (kh, kw) = ((k / win_w) as i64, (k % win_w) as i64);
            let dh = qh - kh + win_h as i64 - 1;
            let dw = qw - kw + win_w as i64 - 1;
            index.push(dh * (2 * win_w as i64 - 1) + dw);
        }
    }
    index
}

/// The table rows `index` picks, as a [heads, N, N] bias.
pub fn relative_position_bias(table: Tensor<2>, index: &[i64], n: usize) -> Tensor<3> {
    let [_, heads] = table.dims();
    let device = table.device();
    let index = Tensor::<1, Int>::from_data(TensorData::new(index.to_vec(), [n * n]), &device);
    table
        .select(0, index)
        .reshape([n, n, heads])
        .permute([2, 0, 1])
}

/// The index of [`relative_position_index`] with the offset's sign flipped (key − query), the
/// layout of the TensorFlow MaxViT's bias table (timm's `RelPosBiasTf`, whose one-hot einsum
/// lookup reads `table[key_h − query_h + Wh − 1, key_w − query_w + Ww − 1]`).
pub fn relative_position_index_tf(win_h: usize, win_w: usize) -> Vec<i64> {
    let n = win_h * win_w;
    let forward = relative_position_index(win_h, win_w);
    // (q, k) of the TF index is (k, q) of the Swin one.
    (0..n * n).map(|i| forward[(i % n) * n + i / n]).collect()
}

/// timm's `gen_relative_log_coords(mode='cr')`: every relative offset of a window,
/// [(2·Wh−1)·(2·Ww−1), 2] (dh, dw), as sign(x)·ln(1 + |x|).
pub fn relative_log_coords(win_h: usize, win_w: usize) -> Vec<f32> {
    let log = |d: i64| (d.signum() as f32) * (1.0 + d.unsigned_abs() as f32).ln();
    let (h, w) = (win_h as i64, win_w as i64);
    let mut coords = Vec::with_capacity(((2 * h - 1) * (2 * w - 1) * 2) as usize);
    for dh in -(h - 1)..h {
        for dw in -(w - 1)..w {
            coords.push(log(dh));
            coords.push(log(dw));
        }
    }
    coords
}

use burn::module::Param;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};

use super::Counted;

/// timm's `RelPosBias`: a learnt [(2·Wh−1)(2·Ww−1), heads] table read through
/// [`relative_position_index`] (CoAtNet, the `_rw` MaxViTs).
#[derive(Module, Debug)]
pub struct RelPosBias {
    pub relative_position_bias_table: Param<Tensor<2>>,
    /// Rebuilt from the window (timm's non-persistent buffer).
    #[module(skip)]
    pub index: Vec<i64>,
}

/// timm's `RelPosBiasTf` (the TensorFlow MaxViT port): a learnt [heads, 2·Wh−1, 2·Ww−1] table
/// read at key − query offsets.
#[derive(Module, Debug)]
pub struct RelPosBiasTf {
    pub relative_position_bias_table: Param<Tensor<3>>,
    #[module(skip)]
    pub index: Vec<i64>,
}

/// timm's `RelPosMlp` (mode `cr`): `mlp` maps every offset's log-coordinates to one bias per
/// head (fc1, ReLU, dropout 0.125, fc2), read through [`relative_position_index`].
#[derive(Module, Debug)]
pub struct RelPosMlp {
    pub mlp: RelPosMlpLayers,
    #[module(skip)]
    pub index: Vec<i64>,
    #[module(skip)]
    pub coords: Vec<f32>,
}

/// timm's `Mlp(2, hidden, heads, act_layer=ReLU, drop=(0.125, 0))` inside [`RelPosMlp`].
#[derive(Module, Debug)]
pub struct RelPosMlpLayers {
    pub fc1: Linear,
    pub drop: Dropout,
    pub fc2: Linear,
}

/// The relative-position term a windowed attention adds to q·kᵀ (timm's `rel_pos` submodule;
/// the variant name never appears in weight keys).
#[derive(Module, Debug)]
pub enum RelPos {
    Bias(RelPosBias),
    BiasTf(RelPosBiasTf),
    Mlp(RelPosMlp),
}

/// Which [`RelPos`] to build (timm's `rel_pos_type`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RelPosKind {
    /// `bias`
    Bias,
    /// `bias_tf`
    BiasTf,
    /// `mlp`, with this hidden width (`rel_pos_dim`)
    Mlp(usize),
}

impl RelPosKind {
    pub fn init(self, window: [usize; 2], heads: usize, device: &Device) -> RelPos {
        let [wh, ww] = window;
        let rows = (2 * wh - 1) * (2 * ww - 1);
        let normal = burn::tensor::Distribution::Normal(0.0, 0.02);
        match self {
            RelPosKind::Bias => RelPos::Bias(RelPosBias {
                relative_position_bias_table: Param::from_tensor(Tensor::random(
                    [rows, heads],
                    normal,
                    device,
                )),
                index: relative_position_index(wh, ww),
            }),
            RelPosKind::BiasTf => RelPos::BiasTf(RelPosBiasTf {
                relative_position_bias_table: Param::from_tensor(Tensor::random(
                    [heads, 2 * wh - 1, 2 * ww - 1],
                    normal,
                    device,
                )),
                index: relative_position_index_tf(wh, ww),
            }),
            RelPosKind::Mlp(hidden) => RelPos::Mlp(RelPosMlp {
                mlp: RelPosMlpLayers {
                    fc1: LinearConfig::new(2, hidden).init(device),
                    drop: DropoutConfig::new(0.125).init(),
                    fc2: LinearConfig::new(hidden, heads).init(device),
                },
                index: relative_position_index(wh, ww),
                coords: relative_log_coords(wh, ww),
            }),
        }
    }
}

impl RelPos {
    /// The [heads, N, N] bias for N = Wh·Ww tokens.
    pub fn bias(&self, n: usize) -> Tensor<3> {
        match self {
            RelPos::Bias(b) => {
                relative_position_bias(b.relative_position_bias_table.val(), &b.index, n)
            }
            RelPos::BiasTf(b) => {
                let [heads, vh, vw] = b.relative_position_bias_table.dims();
                let table = b
                    .relative_position_bias_table
                    .val()
                    .reshape([heads, vh * vw])
                    .swap_dims(0, 1);
                relative_position_bias(table, &b.index, n)
            }
            RelPos::Mlp(m) => {
                let device = m.mlp.fc1.weight.device();
                let rows = m.coords.len() / 2;
                let coords = Tensor::<2>::from_data(
                    burn::tensor::TensorData::new(m.coords.clone(), [rows, 2]),
                    &device,
                );
                let hidden = m
                    .mlp
                    .drop
                    .forward(burn::tensor::activation::relu(m.mlp.fc1.run(coords)));
                relative_position_bias(m.mlp.fc2.run(hidden), &m.index, n)
            }
        }
    }
}
