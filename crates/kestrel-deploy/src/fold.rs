//! BatchNorm folding: `bn(conv(x)) = conv'(x)` with
//! `w' = w · γ/√(σ²+ε)` per output channel and `b' = (b − μ) · γ/√(σ²+ε) + β`,
//! computed in f64 so the folded model stays within rounding of the unfolded one. Export,
//! quantization and the fast path all start from this one step.

use burn::nn::BatchNorm;

use crate::lower::values;

/// A conv's weights (OIHW) and bias, as plain values.
#[derive(Clone, Debug)]
pub struct FoldedConv {
    pub weight: Vec<f32>,
    pub bias: Option<Vec<f32>>,
}

/// Folds `bn` (over `out_ch` channels) into `conv`.
pub fn fold_bn(conv: FoldedConv, bn: &BatchNorm, out_ch: usize) -> FoldedConv {
    let gamma = values(&bn.gamma);
    let beta = values(&bn.beta);
    let mean: Vec<f32> = bn
        .running_mean
        .value()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 running mean");
    let var: Vec<f32> = bn
        .running_var
        .value()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 running var");
    fold_bn_values(conv, &gamma, &beta, &mean, &var, bn.epsilon, out_ch)
}

/// [`fold_bn`] on plain values.
pub fn fold_bn_values(
    conv: FoldedConv,
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f64,
    out_ch: usize,
) -> FoldedConv {
    let per_out = conv.weight.len() / out_ch;
    let mut weight = conv.weight;
    let mut bias = conv.bias.unwrap_or_else(|| vec![0.0; out_ch]);
    for o in 0..out_ch {
        let scale = gamma[o] as f64 / (var[o] as f64 + eps).sqrt();
        for w in &mut weight[o * per_out..(o + 1) * per_out] {
            *w = (*w as f64 * scale) as f32;
        }
        bias[o] = ((bias[o] as f64 - mean[o] as f64) * scale + beta[o] as f64) as f32;
    }
    FoldedConv {
        weight,
        bias: Some(bias),
    }
}

/// Multiplies output channel `o` (weights and bias) by `scale[o]`: a layer scale folded into
/// the conv before it.
pub fn scale_outputs(conv: &mut FoldedConv, scale: &[f32]) {
    let out_ch = scale.len();
    let per_out = conv.weight.len() / out_ch;
    for (o, &s) in scale.iter().enumerate() {
        conv.weight[o * per_out..(o + 1) * per_out]
            .iter_mut()
            .for_each(|w| *w *= s);
    }
    let bias = conv.bias.get_or_insert_with(|| vec![0.0; out_ch]);
    bias.iter_mut().zip(scale).for_each(|(b, s)| *b *= s);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Folding against BN applied by hand to a 1×1 conv's output on one input vector.
    #[test]
    fn folded_conv_equals_conv_then_bn() {
        let (cin, cout) = (3, 2);
        let w = vec![0.5, -1.0, 2.0, 0.25, 0.75, -0.5];
        let b = vec![0.1, -0.2];
        let (gamma, beta, mean, var) = ([1.5, 0.5], [0.2, -0.3], [0.4, -0.1], [0.9, 2.5]);
        let eps = 1e-5;
        let x = [1.0f32, 2.0, -1.0];
        let f = fold_bn_values(
            FoldedConv {
                weight: w.clone(),
                bias: Some(b.clone()),
            },
            &gamma,
            &beta,
            &mean,
            &var,
            eps,
            cout,
        );
        for o in 0..cout {
            let conv: f64 = (0..cin)
                .map(|i| (w[o * cin + i] * x[i]) as f64)
                .sum::<f64>()
                + b[o] as f64;
            let bn = (conv - mean[o] as f64) / (var[o] as f64 + eps).sqrt() * gamma[o] as f64
                + beta[o] as f64;
            let folded: f64 = (0..cin)
                .map(|i| (f.weight[o * cin + i] * x[i]) as f64)
                .sum::<f64>()
                + f.bias.as_ref().unwrap()[o] as f64;
            assert!((bn - folded).abs() < 1e-6, "channel {o}: {bn} vs {folded}");
        }
    }
}
