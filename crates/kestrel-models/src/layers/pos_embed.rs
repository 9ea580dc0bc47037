//! Absolute position-embedding resampling, timm's `resample_abs_pos_embed`
//! (`timm/layers/pos_embed.py`): the patch part of a [1, prefix + H·W, D] embedding, viewed as a
//! D-channel H×W image, is resized to the new grid with antialiased bicubic interpolation
//! (`F.interpolate(mode='bicubic', antialias=True)`, whose weights are Pillow's); the prefix
//! (class, distillation) tokens are kept as they are.

use kestrel_data::resample::filter_weights;
use kestrel_data::Interpolation;

/// Resamples `posemb` (row-major [prefix + old_h·old_w, dim]) to a new_h × new_w grid:
/// returns [prefix + new_h·new_w, dim].
pub fn resample_abs_pos_embed(
    posemb: &[f32],
    dim: usize,
    old: [usize; 2],
    new: [usize; 2],
    num_prefix_tokens: usize,
) -> Vec<f32> {
    let (prefix, grid) = posemb.split_at(num_prefix_tokens * dim);
    assert_eq!(grid.len(), old[0] * old[1] * dim, "position embedding size");
    let mut out = prefix.to_vec();
    if old == new {
        out.extend_from_slice(grid);
        return out;
    }
    let weights = |i, o| filter_weights(i, o, Interpolation::Bicubic).expect("bicubic filter");
    let (wy, wx) = (weights(old[0], new[0]), weights(old[1], new[1]));
    // Horizontal pass: [old_h, new_w, dim].
    let mut rows = vec![0f64; old[0] * new[1] * dim];
    for y in 0..old[0] {
        for (x, (start, k)) in wx.iter().enumerate() {
            let dst = &mut rows[(y * new[1] + x) * dim..][..dim];
            for (j, w) in k.iter().enumerate() {
                let src = &grid[(y * old[1] + start + j) * dim..][..dim];
                dst.iter_mut()
                    .zip(src)
                    .for_each(|(d, s)| *d += w * f64::from(*s));
            }
        }
    }
    // Vertical pass: [new_h, new_w, dim].
    for (start, k) in &wy {
        for x in 0..new[1] {
            let mut acc = vec![0f64; dim];
            for (j, w) in k.iter().enumerate() {
                let src = &rows[((start + j) * new[1] + x) * dim..][..dim];
                acc.iter_mut().zip(src).for_each(|(a, s)| *a += w * s);
            }
            out.extend(acc.into_iter().map(|v| v as f32));
        }
    }
    out
}
