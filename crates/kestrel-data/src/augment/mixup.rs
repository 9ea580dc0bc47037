//! Mixup and CutMix as timm's `Mixup` class (`timm/data/mixup.py`): per-batch, per-pair or
//! per-element mixing with the batch reversed (`x.flip(0)`), CutMix boxes from
//! `rand_bbox` / `rand_bbox_minmax`, lambda correction for clipped boxes, and label-smoothed
//! soft targets from `mixup_target`.

use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::transforms::invalid;

/// How timm applies one draw of parameters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MixupMode {
    /// One lambda (and one CutMix box) for the whole batch.
    #[default]
    Batch,
    /// One lambda per pair (i, N-1-i).
    Pair,
    /// One lambda per element.
    Elem,
}

/// timm's `Mixup` arguments except `num_classes`, which comes from the dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MixupConfig {
    pub mixup_alpha: f64,
    pub cutmix_alpha: f64,
    pub cutmix_minmax: Option<[f64; 2]>,
    pub prob: f64,
    pub switch_prob: f64,
    pub mode: MixupMode,
    pub correct_lam: bool,
    pub label_smoothing: f64,
}

impl Default for MixupConfig {
    /// timm's defaults: mixup α 1, no CutMix, prob 1, switch 0.5, batch mode, smoothing 0.1.
    fn default() -> Self {
        MixupConfig {
            mixup_alpha: 1.0,
            cutmix_alpha: 0.0,
            cutmix_minmax: None,
            prob: 1.0,
            switch_prob: 0.5,
            mode: MixupMode::Batch,
            correct_lam: true,
            label_smoothing: 0.1,
        }
    }
}

impl MixupConfig {
    pub fn validate(&self) -> Result<()> {
        let finite_nonneg = |v: f64| v.is_finite() && v >= 0.0;
        if !finite_nonneg(self.mixup_alpha) || !finite_nonneg(self.cutmix_alpha) {
            return invalid("mixup: mixup_alpha and cutmix_alpha must be >= 0");
        }
        if self.mixup_alpha == 0.0 && self.cutmix_alpha == 0.0 && self.cutmix_minmax.is_none() {
            return invalid(
                "mixup: one of mixup_alpha > 0, cutmix_alpha > 0 or cutmix_minmax must be set",
            );
        }
        if let Some([lo, hi]) = self.cutmix_minmax {
            if !(0.0 <= lo && lo < hi && hi <= 1.0) {
                return invalid(format!(
                    "mixup: cutmix_minmax must satisfy 0 <= min < max <= 1, got [{lo}, {hi}]"
                ));
            }
        }
        for (name, p) in [
            ("prob", self.prob),
            ("switch_prob", self.switch_prob),
            ("label_smoothing", self.label_smoothing),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return invalid(format!("mixup: {name} must be in [0, 1], got {p}"));
            }
        }
        Ok(())
    }
}

/// The parameters one draw produced (what timm's `_params_per_*` return).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MixParams {
    pub lam: f64,
    pub use_cutmix: bool,
}

/// A CutMix box as half-open row/column ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BBox {
    pub y0: usize,
    pub y1: usize,
    pub x0: usize,
    pub x1: usize,
}

impl BBox {
    pub fn area(&self) -> usize {
        (self.y1 - self.y0) * (self.x1 - self.x0)
    }
}

/// timm's `Mixup`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mixup {
    pub config: MixupConfig,
    pub num_classes: usize,
}

// ---------------------------------------------------------------------------------------------
// Beta sampling (numpy's legacy algorithms, so the distribution matches np.random.beta)
// ---------------------------------------------------------------------------------------------

fn standard_normal_f64(rng: &mut StdRng) -> f64 {
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// Marsaglia–Tsang for shape ≥ 1; shape < 1 boosted by `U^(1/shape)`.
fn gamma(rng: &mut StdRng, shape: f64) -> f64 {
    if shape < 1.0 {
        let u = 1.0 - rng.random::<f64>();
        return gamma(rng, shape + 1.0) * u.powf(1.0 / shape);
    }
    let d = shape - 1.0 / 3.0;
    let c = 1.0 / (9.0 * d).sqrt();
    loop {
        let x = standard_normal_f64(rng);
        let v = (1.0 + c * x).powi(3);
        if v <= 0.0 {
            continue;
        }
        let u = rng.random::<f64>();
        if u < 1.0 - 0.0331 * x.powi(4) || u.ln() < 0.5 * x * x + d * (1.0 - v + v.ln()) {
            return d * v;
        }
    }
}

/// Johnk's algorithm (numpy's choice for a, b ≤ 1), with its log-space fallback.
fn beta_johnk(rng: &mut StdRng, a: f64, b: f64) -> f64 {
    loop {
        let u = rng.random::<f64>();
        let v = rng.random::<f64>();
        let x = u.powf(1.0 / a);
        let y = v.powf(1.0 / b);
        let xpy = x + y;
        if xpy <= 1.0 && u + v > 0.0 {
            if xpy > 0.0 {
                return x / xpy;
            }
            let mut log_x = u.ln() / a;
            let mut log_y = v.ln() / b;
            let log_m = log_x.max(log_y);
            log_x -= log_m;
            log_y -= log_m;
            return (log_x - (log_x.exp() + log_y.exp()).ln()).exp();
        }
    }
}

/// A draw from Beta(a, b); NaN unless a and b are finite and positive (never loops forever).
pub fn sample_beta(rng: &mut StdRng, a: f64, b: f64) -> f64 {
    let valid = |v: f64| v.is_finite() && v > 0.0;
    if !valid(a) || !valid(b) {
        return f64::NAN;
    }
    if a <= 1.0 && b <= 1.0 {
        return beta_johnk(rng, a, b);
    }
    let ga = gamma(rng, a);
    let gb = gamma(rng, b);
    ga / (ga + gb)
}

// ---------------------------------------------------------------------------------------------
// Boxes and targets
// ---------------------------------------------------------------------------------------------

/// timm's `rand_bbox` (margin 0): a box of `int(side * sqrt(1 - lam))` centred at a uniform
/// point, clipped to the image.
pub fn rand_bbox(height: usize, width: usize, lam: f64, rng: &mut StdRng) -> BBox {
    let ratio = (1.0 - lam).max(0.0).sqrt();
    let (cut_h, cut_w) = (
        (height as f64 * ratio) as i64,
        (width as f64 * ratio) as i64,
    );
    let cy = rng.random_range(0..height.max(1)) as i64;
    let cx = rng.random_range(0..width.max(1)) as i64;
    let clip = |v: i64, hi: usize| v.clamp(0, hi as i64) as usize;
    BBox {
        y0: clip(cy - cut_h / 2, height),
        y1: clip(cy + (cut_h + 1) / 2, height),
        x0: clip(cx - cut_w / 2, width),
        x1: clip(cx + (cut_w + 1) / 2, width),
    }
}

/// timm's `rand_bbox_minmax`: side fractions uniform in [min, max), placed uniformly.
pub fn rand_bbox_minmax(
    height: usize,
    width: usize,
    minmax: [f64; 2],
    rng: &mut StdRng,
) -> Result<BBox> {
    if !(0.0 <= minmax[0] && minmax[0] < minmax[1] && minmax[1] <= 1.0) {
        return invalid(format!(
            "cutmix_minmax must satisfy 0 <= min < max <= 1, got {minmax:?}"
        ));
    }
    let side = |n: usize, rng: &mut StdRng| -> Result<usize> {
        let (lo, hi) = (
            (n as f64 * minmax[0]) as usize,
            (n as f64 * minmax[1]) as usize,
        );
        if lo >= hi {
            return invalid(format!(
                "cutmix_minmax {minmax:?} leaves no box size for a side of {n} pixels"
            ));
        }
        Ok(rng.random_range(lo..hi))
    };
    let cut_h = side(height, rng)?;
    let cut_w = side(width, rng)?;
    let y0 = rng.random_range(0..=height - cut_h);
    let x0 = rng.random_range(0..=width - cut_w);
    Ok(BBox {
        y0,
        y1: y0 + cut_h,
        x0,
        x1: x0 + cut_w,
    })
}

/// timm's `mixup_target`: `y * lam + y.flip(0) * (1 - lam)` with smoothed one-hot rows
/// (`off = smoothing / K`, `on = 1 - smoothing + off`). `lam` has one value for the batch or
/// one per row.
pub fn mixup_target(
    labels: &[usize],
    num_classes: usize,
    lam: &[f64],
    smoothing: f64,
) -> Result<Vec<f32>> {
    let n = labels.len();
    if num_classes == 0 {
        return invalid("mixup_target: num_classes must be positive");
    }
    if let Some(&bad) = labels.iter().find(|&&l| l >= num_classes) {
        return invalid(format!(
            "mixup_target: label {bad} is out of range for {num_classes} classes"
        ));
    }
    if lam.len() != 1 && lam.len() != n {
        return invalid("mixup_target: give one lambda or one per sample");
    }
    let off = (smoothing / num_classes as f64) as f32;
    let on = (1.0 - smoothing + smoothing / num_classes as f64) as f32;
    let mut out = vec![0f32; n * num_classes];
    for (i, row) in out.chunks_exact_mut(num_classes).enumerate() {
        let l = lam[if lam.len() == 1 { 0 } else { i }];
        let (a, b) = (l as f32, (1.0 - l) as f32);
        let (mine, theirs) = (labels[i], labels[n - 1 - i]);
        for (k, v) in row.iter_mut().enumerate() {
            let y1 = if k == mine { on } else { off };
            let y2 = if k == theirs { on } else { off };
            *v = y1 * a + y2 * b;
        }
    }
    Ok(out)
}

/// `[N, C, H, W]` and a flat buffer that must agree.
fn check_batch(batch: &[f32], shape: [usize; 4], labels: &[usize]) -> Result<()> {
    let [n, c, h, w] = shape;
    let len = n
        .checked_mul(c)
        .and_then(|v| v.checked_mul(h))
        .and_then(|v| v.checked_mul(w));
    if len != Some(batch.len()) || n == 0 || c * h * w == 0 {
        return invalid(format!(
            "mixup: batch of {} values does not match shape {shape:?}",
            batch.len()
        ));
    }
    if labels.len() != n {
        return invalid(format!("mixup: {} labels for a batch of {n}", labels.len()));
    }
    if n % 2 != 0 {
        return invalid(format!(
            "mixup: batch size must be even (timm asserts this), got {n}"
        ));
    }
    Ok(())
}

impl Mixup {
    pub fn new(config: MixupConfig, num_classes: usize) -> Result<Self> {
        config.validate()?;
        if num_classes == 0 {
            return invalid("mixup: num_classes must be positive");
        }
        let mut config = config;
        // timm forces cutmix_alpha = 1 when minmax is set, "to keep logic simple & safe".
        if config.cutmix_minmax.is_some() {
            config.cutmix_alpha = 1.0;
        }
        Ok(Mixup {
            config,
            num_classes,
        })
    }

    fn draw_mix(&self, rng: &mut StdRng) -> MixParams {
        let c = &self.config;
        let (use_cutmix, alpha) = if c.mixup_alpha > 0.0 && c.cutmix_alpha > 0.0 {
            let cut = rng.random::<f64>() < c.switch_prob;
            (cut, if cut { c.cutmix_alpha } else { c.mixup_alpha })
        } else if c.mixup_alpha > 0.0 {
            (false, c.mixup_alpha)
        } else {
            (true, c.cutmix_alpha)
        };
        MixParams {
            lam: sample_beta(rng, alpha, alpha),
            use_cutmix,
        }
    }

    /// timm's `_params_per_batch`: with probability `prob` a Beta(α, α) lambda, else 1.
    pub fn params_per_batch(&self, rng: &mut StdRng) -> MixParams {
        if rng.random::<f64>() < self.config.prob {
            self.draw_mix(rng)
        } else {
            MixParams {
                lam: 1.0,
                use_cutmix: false,
            }
        }
    }

    /// timm's `_params_per_elem` for `count` elements (lambdas rounded to `f32` as timm does).
    pub fn params_per_elem(&self, count: usize, rng: &mut StdRng) -> Vec<MixParams> {
        (0..count)
            .map(|_| {
                let mut p = self.draw_mix(rng);
                if rng.random::<f64>() >= self.config.prob {
                    p.lam = 1.0;
                }
                p.lam = f64::from(p.lam as f32);
                p
            })
            .collect()
    }

    /// timm's `cutmix_bbox_and_lam`: the box, and lambda corrected to the kept area when
    /// `correct_lam` (always with minmax).
    pub fn cutmix_bbox_and_lam(
        &self,
        height: usize,
        width: usize,
        lam: f64,
        rng: &mut StdRng,
    ) -> Result<(BBox, f64)> {
        let b = match self.config.cutmix_minmax {
            Some(mm) => rand_bbox_minmax(height, width, mm, rng)?,
            None => rand_bbox(height, width, lam, rng),
        };
        let lam = if self.config.correct_lam || self.config.cutmix_minmax.is_some() {
            1.0 - b.area() as f64 / (height * width) as f64
        } else {
            lam
        };
        Ok((b, lam))
    }

    /// Mixes `batch` (`[N, C, H, W]`, row-major) in place and returns the soft targets
    /// (`N × num_classes`, row-major).
    pub fn apply(
        &self,
        batch: &mut [f32],
        shape: [usize; 4],
        labels: &[usize],
        rng: &mut StdRng,
    ) -> Result<Vec<f32>> {
        check_batch(batch, shape, labels)?;
        let lam = match self.config.mode {
            MixupMode::Batch => vec![self.mix_batch(batch, shape, rng)?],
            MixupMode::Pair => self.mix_pair(batch, shape, rng)?,
            MixupMode::Elem => self.mix_elem(batch, shape, rng)?,
        };
        mixup_target(labels, self.num_classes, &lam, self.config.label_smoothing)
    }

    /// Batch mode with the parameters drawn; returns the (possibly corrected) lambda.
    pub fn mix_batch(&self, batch: &mut [f32], shape: [usize; 4], rng: &mut StdRng) -> Result<f64> {
        let p = self.params_per_batch(rng);
        if p.lam == 1.0 {
            return Ok(1.0);
        }
        if p.use_cutmix {
            let (b, lam) = self.cutmix_bbox_and_lam(shape[2], shape[3], p.lam, rng)?;
            paste_flipped_box(batch, shape, &b);
            Ok(lam)
        } else {
            blend_with_flipped(batch, shape, p.lam);
            Ok(p.lam)
        }
    }

    fn mix_elem(&self, batch: &mut [f32], shape: [usize; 4], rng: &mut StdRng) -> Result<Vec<f64>> {
        let n = shape[0];
        let orig = batch.to_vec();
        let params = self.params_per_elem(n, rng);
        let mut lams = Vec::with_capacity(n);
        for (i, p) in params.iter().enumerate() {
            let (lam, _) = self.mix_element(batch, &orig, shape, (i, n - 1 - i), p, None, rng)?;
            lams.push(lam);
        }
        Ok(lams)
    }

    /// Pair mode: elements i and N-1-i share one draw (and one CutMix box).
    fn mix_pair(&self, batch: &mut [f32], shape: [usize; 4], rng: &mut StdRng) -> Result<Vec<f64>> {
        let n = shape[0];
        let orig = batch.to_vec();
        let params = self.params_per_elem(n / 2, rng);
        let mut lams = vec![1.0; n];
        for (i, p) in params.iter().enumerate() {
            let j = n - 1 - i;
            let (lam, b) = self.mix_element(batch, &orig, shape, (i, j), p, None, rng)?;
            if p.lam != 1.0 {
                let same = MixParams { lam: p.lam, ..*p };
                self.mix_element(batch, &orig, shape, (j, i), &same, b, rng)?;
            }
            lams[i] = lam;
            lams[j] = lam;
        }
        Ok(lams)
    }

    /// Mixes element `dst` with `orig[src]`: CutMix pastes a box (drawn here unless given),
    /// Mixup blends. Returns the element's lambda and the box used.
    #[allow(clippy::too_many_arguments)]
    fn mix_element(
        &self,
        batch: &mut [f32],
        orig: &[f32],
        shape: [usize; 4],
        (dst, src): (usize, usize),
        p: &MixParams,
        given_box: Option<BBox>,
        rng: &mut StdRng,
    ) -> Result<(f64, Option<BBox>)> {
        if p.lam == 1.0 {
            return Ok((1.0, None));
        }
        if !p.use_cutmix {
            blend_elem(batch, orig, shape, (dst, src), p.lam);
            return Ok((p.lam, None));
        }
        let (b, lam) = match given_box {
            Some(b) => (b, p.lam),
            None => self.cutmix_bbox_and_lam(shape[2], shape[3], p.lam, rng)?,
        };
        paste_box(batch, orig, shape, (dst, src), &b);
        Ok((lam, Some(b)))
    }
}

/// `x[dst][:, box] = orig[src][:, box]`.
fn paste_box(
    batch: &mut [f32],
    orig: &[f32],
    shape: [usize; 4],
    (dst, src): (usize, usize),
    b: &BBox,
) {
    let [_, c, h, w] = shape;
    for ch in 0..c {
        for y in b.y0..b.y1 {
            let row = |e: usize| ((e * c + ch) * h + y) * w;
            let (d, s) = (row(dst), row(src));
            batch[d + b.x0..d + b.x1].copy_from_slice(&orig[s + b.x0..s + b.x1]);
        }
    }
}

/// `x = x * lam + x.flip(0) * (1 - lam)`, in `f32` as torch does with a Python scalar.
fn blend_with_flipped(batch: &mut [f32], shape: [usize; 4], lam: f64) {
    let n = shape[0];
    let sample = batch.len() / n;
    let orig = batch.to_vec();
    let (a, b) = (lam as f32, (1.0 - lam) as f32);
    for i in 0..n {
        let j = n - 1 - i;
        let (dst, src) = (i * sample, j * sample);
        for k in 0..sample {
            batch[dst + k] = orig[dst + k] * a + orig[src + k] * b;
        }
    }
}

/// `x[:, :, box] = x.flip(0)[:, :, box]`.
fn paste_flipped_box(batch: &mut [f32], shape: [usize; 4], b: &BBox) {
    let n = shape[0];
    let orig = batch.to_vec();
    for i in 0..n {
        paste_box(batch, &orig, shape, (i, n - 1 - i), b);
    }
}

/// `x[i] = x[i] * lam + x_orig[j] * (1 - lam)` for one element.
fn blend_elem(
    batch: &mut [f32],
    orig: &[f32],
    shape: [usize; 4],
    (i, j): (usize, usize),
    lam: f64,
) {
    let sample = shape[1] * shape[2] * shape[3];
    let (a, b) = (lam as f32, (1.0 - lam) as f32);
    for k in 0..sample {
        batch[i * sample + k] = orig[i * sample + k] * a + orig[j * sample + k] * b;
    }
}
