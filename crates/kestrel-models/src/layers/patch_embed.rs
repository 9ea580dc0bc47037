//! timm's `PatchEmbed` (`timm/layers/patch_embed.py`): a `proj` conv with kernel = stride =
//! patch size, an optional `norm` (Swin), tokens out channels-last.
//!
//! timm builds these models for one image size (`strict_img_size`): the position embeddings
//! (ViT) or window masks (Swin) fit that grid only. Another input size is rejected here with a
//! message naming the expected size, instead of a shape panic deep inside attention.

use burn::nn::conv::Conv2d;
use burn::prelude::*;

use super::{conv2d_init, trunc_normal, Counted, LayerNorm2d};

#[derive(Module, Debug)]
pub struct PatchEmbed {
    pub proj: Conv2d,
    pub norm: Option<LayerNorm2d>,
    /// The (height, width) the model is built for.
    pub img_size: [usize; 2],
    pub patch_size: usize,
}

impl PatchEmbed {
    pub fn new(
        img_size: [usize; 2],
        patch_size: usize,
        in_chans: usize,
        dim: usize,
        norm_eps: Option<f64>,
        device: &Device,
    ) -> Self {
        PatchEmbed {
            proj: conv2d_init(
                in_chans,
                dim,
                patch_size,
                patch_size,
                0,
                1,
                true,
                trunc_normal(),
                device,
            ),
            norm: norm_eps.map(|eps| LayerNorm2d::new(dim, eps, device)),
            img_size,
            patch_size,
        }
    }

    /// The token grid (rows, columns).
    pub fn grid(&self) -> [usize; 2] {
        [
            self.img_size[0] / self.patch_size,
            self.img_size[1] / self.patch_size,
        ]
    }

    /// NCHW images -> tokens [B, rows, columns, dim].
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        assert_input_size([h, w], self.img_size);
        let y = self.proj.run(x).permute([0, 2, 3, 1]);
        match &self.norm {
            Some(norm) => norm.forward_last(y),
            None => y,
        }
    }
}

/// Panics (for `Model::check_input` to report) unless a fixed-size model built for `expected`
/// got that size, naming both sizes and `--img-size`.
pub(crate) fn assert_input_size([h, w]: [usize; 2], expected: [usize; 2]) {
    let [eh, ew] = expected;
    assert!(
        [h, w] == expected,
        "this model is built for {eh}×{ew} inputs (its position embeddings / attention \
         windows fit that size) and got {h}×{w}: resize the images to {eh}×{ew}, or build the \
         model for {h}×{w} with --img-size {h}"
    );
}
