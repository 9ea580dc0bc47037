use rand::rngs::StdRng;

use crate::error::Result;
use crate::image::Image;

/// One sample as the model sees it: `f32`, channels × height × width, row-major (CHW).
#[derive(Clone, Debug, PartialEq)]
pub struct Chw {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

/// Turns a decoded image into the model's input. Train-time transforms draw from `rng`, which the
/// loader derives from (seed, epoch, sample index), so results do not depend on thread count.
/// Eval-time transforms ignore it.
pub trait SampleTransform: Send + Sync {
    fn apply(&self, image: Image, rng: &mut StdRng) -> Result<Chw>;
    /// The (channels, height, width) this transform produces, when fixed.
    fn output_shape(&self) -> Option<(usize, usize, usize)>;
}
