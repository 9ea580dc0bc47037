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
