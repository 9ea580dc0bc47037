//! Lowering: a zoo [`Model`] becomes an [`Engine`] of fused ops.
//!
//! Each family's blocks are walked in the order of their `forward`, BatchNorm is folded into
//! the conv before it ([`crate::fold`]), and bias, activation and residual adds are attached to
//! the conv epilogues. A family or block the fast path does not cover yet is reported as
//! [`Unsupported`], and the caller falls back to burn.

use burn::module::Param;
use burn::nn::conv::Conv2d as BurnConv;
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::prelude::*;
use kestrel_kernels::{Act, ConvGeometry};
use kestrel_models::attention::BlockAttention;
use kestrel_models::mbconv::{self, MbBlock};
use kestrel_models::sequential::{HeadLayer, Layer as SeqLayer};
use kestrel_models::{
    attention, convnext, efficientnet, lenet, maxxvit, mobilenet, regnet, resnet, swin, t2t, vit,
    Model,
};

use crate::engine::{ConvSpec, Engine, Graph, GraphBuilder, Value};
use crate::fold::{fold_bn, FoldedConv};

/// Why a model cannot take the fast path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported(pub String);

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the fast engine does not support {} yet", self.0)
    }
}

impl std::error::Error for Unsupported {}

type Result<T> = std::result::Result<T, Unsupported>;

pub(crate) fn values<const D: usize>(p: &Param<Tensor<D>>) -> Vec<f32> {
    p.val()
        .into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 parameter")
}

fn act_of(a: mbconv::Act) -> Act {
    match a {
        mbconv::Act::Identity => Act::Identity,
        mbconv::Act::Relu => Act::Relu,
        mbconv::Act::Relu6 => Act::Relu6,
        mbconv::Act::HardSwish => Act::HardSwish,
        mbconv::Act::Silu => Act::Silu,
        mbconv::Act::Sigmoid => Act::Sigmoid,
        mbconv::Act::HardSigmoid => Act::HardSigmoid,
    }
}

/// How the padding of a burn conv is applied.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Padding {
    /// As configured on the conv.
    AsBuilt,
    /// timm's `pad_same` when the conv was built unpadded (see `mbconv::run_same`).
    TfSameIfUnpadded,
}

fn geometry(conv: &BurnConv, padding: Padding) -> Result<ConvGeometry> {
    let [out_ch, in_per_group, _, _] = conv.weight.dims();
    let (pad, unpadded) = match conv.padding {
        PaddingConfig2d::Valid => ([0; 4], true),
        PaddingConfig2d::Explicit(top, left, bottom, right) => (
            [top, bottom, left, right],
            top == 0 && left == 0 && bottom == 0 && right == 0,
        ),
        PaddingConfig2d::Same => return Err(Unsupported("burn's `Same` conv padding".into())),
    };
    let tf_same = padding == Padding::TfSameIfUnpadded && unpadded && conv.kernel_size[0] != 1;
    Ok(ConvGeometry {
        in_ch: in_per_group * conv.groups,
        out_ch,
        kernel: conv.kernel_size,
        stride: conv.stride,
        dilation: conv.dilation,
        pad,
        groups: conv.groups,
        tf_same,
    })
}

fn raw_conv(conv: &BurnConv) -> FoldedConv {
    FoldedConv {
        weight: values(&conv.weight),
        bias: conv.bias.as_ref().map(values),
    }
}

/// conv [+ BN] → a kernel conv with `act`.
fn conv_bn(
    conv: &BurnConv,
    bn: Option<&BatchNorm>,
    act: Act,
    padding: Padding,
) -> Result<ConvSpec> {
    let geom = geometry(conv, padding)?;
    let f = match bn {
        Some(bn) => fold_bn(raw_conv(conv), bn, geom.out_ch),
        None => raw_conv(conv),
    };
    Ok(ConvSpec::new(geom, f.weight, f.bias, act))
}

/// A burn `Linear` (`[in, out]`) as a 1×1 conv, with an optional per-output scale folded in.
fn linear(l: &Linear, act: Act, scale: Option<&[f32]>) -> ConvSpec {
    let [d_in, d_out] = l.weight.dims();
    let w = values(&l.weight);
    let mut oihw = vec![0f32; d_in * d_out];
    for i in 0..d_in {
        for o in 0..d_out {
            oihw[o * d_in + i] = w[i * d_out + o] * scale.map_or(1.0, |s| s[o]);
        }
    }
    let mut bias = l
        .bias
        .as_ref()
        .map(values)
        .unwrap_or_else(|| vec![0.0; d_out]);
    if let Some(s) = scale {
        bias.iter_mut().zip(s).for_each(|(b, s)| *b *= s);
    }
    ConvSpec::new(
        ConvGeometry {
            in_ch: d_in,
            out_ch: d_out,
            kernel: [1, 1],
            stride: [1, 1],
            dilation: [1, 1],
            pad: [0; 4],
            groups: 1,
            tf_same: false,
        },
        oihw,
        Some(bias),
        act,
    )
}

/// Compiles `model` for the fast path.
pub fn lower(model: &Model, in_ch: usize) -> Result<Engine> {
    Ok(Engine::new(&lower_graph(model, in_ch)?))
}

/// Lowers `model` to fused ops with plain, BN-folded weights (what exporters read).
pub fn lower_graph(model: &Model, in_ch: usize) -> Result<Graph> {
    let (mut g, x) = GraphBuilder::new(in_ch);
    let out = match model {
        Model::ResNet(m) => lower_resnet(&mut g, x, m)?,
        Model::MobileNet(m) => lower_mobilenet(&mut g, x, m)?,
        Model::EfficientNet(m) => lower_efficientnet(&mut g, x, m)?,
        Model::ConvNeXt(m) => lower_convnext(&mut g, x, m)?,
        Model::Vit(m) => lower_vit(&mut g, x, m)?,
        Model::Swin(m) => lower_swin(&mut g, x, m)?,
        Model::MaxxVit(m) => lower_maxxvit(&mut g, x, m)?,
        Model::T2tVit(m) => lower_t2t(&mut g, x, m, in_ch)?,
        Model::RegNet(m) => lower_regnet(&mut g, x, m)?,
        Model::Vgg(m) => {
            lower_sequential(&mut g, x, &m.features, m.avgpool.output_size, &m.classifier)?
        }
        Model::AlexNet(m) => {
            lower_sequential(&mut g, x, &m.features, m.avgpool.output_size, &m.classifier)?
        }
        Model::LeNet5(m) => lower_lenet(&mut g, x, m)?,
        other => return Err(Unsupported(format!("the {} family", other.kind()))),
    };
    g.finish(out).map_err(Unsupported)
}

fn lower_resnet(g: &mut GraphBuilder, x: Value, m: &resnet::ResNet) -> Result<Value> {
    // The stem's last conv takes `bn1` and `act1`; a deep stem's earlier layers go as a
    // Sequential.
    let (x, last) = match &m.conv1 {
        resnet::Stem::Conv(conv) => (x, conv),
        resnet::Stem::Deep(layers) => match layers.split_last() {
            Some((SeqLayer::Conv(last), rest)) => (lower_layers(g, x, rest)?, last),
            _ => {
                return Err(Unsupported(
                    "a deep stem that does not end in a conv".into(),
                ))
            }
        },
    };
    let mut x = g.conv(x, conv_bn(last, Some(&m.bn1), Act::Relu, Padding::AsBuilt)?);
    if let Some(pool) = &m.maxpool {
        let pad = match pool.padding {
            PaddingConfig2d::Explicit(t, l, b, r) if t == b && l == r => [t, l],
            PaddingConfig2d::Valid => [0, 0],
            _ => return Err(Unsupported("asymmetric max-pool padding".into())),
        };
        if pool.dilation != [1, 1] || pool.ceil_mode {
            return Err(Unsupported("dilated or ceil-mode max pooling".into()));
        }
        x = g.max_pool(x, pool.kernel_size, pool.stride, pad);
    }
    for block in m
        .layer1
        .iter()
        .chain(&m.layer2)
        .chain(&m.layer3)
        .chain(&m.layer4)
    {
        let shortcut = match &block.downsample {
            Some(ds) => lower_layers(g, x, ds)?,
            None => x,
        };
        let y = g.conv(
            x,
            conv_bn(&block.conv1, Some(&block.bn1), Act::Relu, Padding::AsBuilt)?,
        );
        let (last_conv, last_bn, y) = match (&block.conv3, &block.bn3) {
            (Some(c3), Some(b3)) => {
                let y = g.conv(
                    y,
                    conv_bn(&block.conv2, Some(&block.bn2), Act::Relu, Padding::AsBuilt)?,
                );
                (c3, b3, y)
            }
            _ => (&block.conv2, &block.bn2, y),
        };
        x = match &block.se {
            None => g.conv_residual(
                y,
                conv_bn(last_conv, Some(last_bn), Act::Relu, Padding::AsBuilt)?,
                shortcut,
                false,
            ),
            Some(attn) => {
                let y = g.conv(
                    y,
                    conv_bn(last_conv, Some(last_bn), Act::Identity, Padding::AsBuilt)?,
                );
                let y = match attn {
                    BlockAttention::Se(se) => resnet_se(g, y, se)?,
                    BlockAttention::Eca(eca) => {
                        let [_, _, k] = eca.conv.weight.dims();
                        let pad = match eca.conv.padding {
                            burn::nn::PaddingConfig1d::Explicit(l, r) => [0, 0, l, r],
                            burn::nn::PaddingConfig1d::Valid => [0; 4],
                            _ => return Err(Unsupported("ECA with `Same` padding".into())),
                        };
                        let geom = ConvGeometry {
                            in_ch: 1,
                            out_ch: 1,
                            kernel: [1, k],
                            stride: [1, eca.conv.stride],
                            dilation: [1, eca.conv.dilation],
                            pad,
                            groups: 1,
                            tf_same: false,
                        };
                        let w = values(&eca.conv.weight);
                        let b = eca.conv.bias.as_ref().map(values);
                        g.eca(y, ConvSpec::new(geom, w, b, Act::Sigmoid))
                    }
                    BlockAttention::Cbam(cbam) => {
                        let ch = &cbam.channel;
                        let sp = &cbam.spatial.conv;
                        g.cbam(
                            y,
                            conv_bn(&ch.fc1, None, Act::Relu, Padding::AsBuilt)?,
                            conv_bn(&ch.fc2, None, Act::Identity, Padding::AsBuilt)?,
                            conv_bn(&sp.conv, Some(&sp.bn), Act::Sigmoid, Padding::AsBuilt)?,
                        )
                    }
                };
                g.add_act(y, shortcut, Act::Relu)
            }
        };
    }
    let x = g.global_avg_pool(x);
    Ok(g.conv(x, linear(&m.fc, Act::Identity, None)))
}

fn resnet_se(g: &mut GraphBuilder, x: Value, se: &attention::SqueezeExcite) -> Result<Value> {
    Ok(g.squeeze_excite(
        x,
        conv_bn(&se.fc1, None, act_of(se.act), Padding::AsBuilt)?,
        conv_bn(&se.fc2, None, Act::Sigmoid, Padding::AsBuilt)?,
    ))
}

fn lower_regnet(g: &mut GraphBuilder, x: Value, m: &regnet::RegNet) -> Result<Value> {
    let cb = |c: &attention::ConvBn, act: Act| conv_bn(&c.conv, Some(&c.bn), act, Padding::AsBuilt);
    let mut x = g.conv(x, cb(&m.stem, Act::Relu)?);
    for block in m.s1.iter().chain(&m.s2).chain(&m.s3).chain(&m.s4).flatten() {
        let shortcut = match &block.shortcut {
            Some(ds) => g.conv(x, cb(ds, Act::Identity)?),
            None => x,
        };
        let y = g.conv(x, cb(&block.conv1, Act::Relu)?);
        let mut y = g.conv(y, cb(&block.conv2, Act::Relu)?);
        if let Some(se) = &block.se {
            y = resnet_se(g, y, se)?;
        }
        x = g.conv_residual(y, cb(&block.conv3, Act::Relu)?, shortcut, false);
    }
    let x = g.global_avg_pool(x);
    Ok(g.conv(x, linear(&m.head.fc, Act::Identity, None)))
}

fn mb_se(g: &mut GraphBuilder, x: Value, se: &mbconv::SqueezeExcite) -> Result<Value> {
    Ok(g.squeeze_excite(
        x,
        conv_bn(&se.conv_reduce, None, act_of(se.act), Padding::AsBuilt)?,
        conv_bn(&se.conv_expand, None, act_of(se.gate), Padding::AsBuilt)?,
    ))
}

fn lower_mb_blocks(g: &mut GraphBuilder, mut x: Value, blocks: &[Vec<MbBlock>]) -> Result<Value> {
    let same = Padding::TfSameIfUnpadded;
    for block in blocks.iter().flatten() {
        x = match block {
            MbBlock::Ds(b) => {
                let act = act_of(b.act);
                let mut y = g.conv(x, conv_bn(&b.conv_dw, Some(&b.bn1), act, same)?);
                if let Some(se) = &b.se {
                    y = mb_se(g, y, se)?;
                }
                let pw_act = if b.pw_act { act } else { Act::Identity };
                let pw = conv_bn(&b.conv_pw, Some(&b.bn2), pw_act, Padding::AsBuilt)?;
                if b.has_skip {
                    // act(bn2(pw(y))) + shortcut: the add comes after the activation.
                    g.conv_residual(y, pw, x, true)
                } else {
                    g.conv(y, pw)
                }
            }
            MbBlock::Ir(b) => {
                let act = act_of(b.act);
                let y = g.conv(x, conv_bn(&b.conv_pw, Some(&b.bn1), act, Padding::AsBuilt)?);
                let mut y = g.conv(y, conv_bn(&b.conv_dw, Some(&b.bn2), act, same)?);
                if let Some(se) = &b.se {
                    y = mb_se(g, y, se)?;
                }
                let pwl = conv_bn(&b.conv_pwl, Some(&b.bn3), Act::Identity, Padding::AsBuilt)?;
                if b.has_skip {
                    g.conv_residual(y, pwl, x, false)
                } else {
                    g.conv(y, pwl)
                }
            }
            MbBlock::Cn(b) => {
                let c = conv_bn(&b.conv, Some(&b.bn1), act_of(b.act), same)?;
                if b.has_skip {
                    g.conv_residual(x, c, x, true)
                } else {
                    g.conv(x, c)
                }
            }
        };
    }
    Ok(x)
}

fn lower_mobilenet(g: &mut GraphBuilder, x: Value, m: &mobilenet::MobileNet) -> Result<Value> {
    let act = act_of(m.act);
    let x = g.conv(
        x,
        conv_bn(&m.conv_stem, Some(&m.bn1), act, Padding::AsBuilt)?,
    );
    let x = lower_mb_blocks(g, x, &m.blocks)?;
    let x = match m.head {
        mobilenet::HeadKind::ConvBn => {
            let x = match (&m.conv_head, &m.bn2) {
                (Some(c), Some(bn)) => g.conv(x, conv_bn(c, Some(bn), act, Padding::AsBuilt)?),
                _ => x,
            };
            g.global_avg_pool(x)
        }
        mobilenet::HeadKind::PooledConv => {
            let x = g.global_avg_pool(x);
            match &m.conv_head {
                Some(c) => g.conv(x, conv_bn(c, None, act, Padding::AsBuilt)?),
                None => x,
            }
        }
    };
    Ok(g.conv(x, linear(&m.classifier, Act::Identity, None)))
}

fn lower_efficientnet(
    g: &mut GraphBuilder,
    x: Value,
    m: &efficientnet::EfficientNet,
) -> Result<Value> {
    let act = act_of(m.act);
    let x = g.conv(
        x,
        conv_bn(&m.conv_stem, Some(&m.bn1), act, Padding::TfSameIfUnpadded)?,
    );
    let x = lower_mb_blocks(g, x, &m.blocks)?;
    let x = g.conv(
        x,
        conv_bn(&m.conv_head, Some(&m.bn2), act, Padding::AsBuilt)?,
    );
    let x = g.global_avg_pool(x);
    Ok(g.conv(x, linear(&m.classifier, Act::Identity, None)))
}

fn lower_convnext(g: &mut GraphBuilder, x: Value, m: &convnext::ConvNeXt) -> Result<Value> {
    let layer = |g: &mut GraphBuilder, x: Value, l: &convnext::Layer| -> Result<Value> {
        Ok(match l {
            convnext::Layer::Norm(n) => {
                g.layer_norm(x, values(&n.weight), values(&n.bias), n.eps as f32)
            }
            convnext::Layer::Conv(c) => {
                g.conv(x, conv_bn(c, None, Act::Identity, Padding::AsBuilt)?)
            }
        })
    };
    let mut x = x;
    for l in &m.stem {
        x = layer(g, x, l)?;
    }
    for stage in &m.stages {
        for l in &stage.downsample {
            x = layer(g, x, l)?;
        }
        for b in &stage.blocks {
            let shortcut = x;
            let y = g.conv(
                x,
                conv_bn(&b.conv_dw, None, Act::Identity, Padding::AsBuilt)?,
            );
            let y = g.layer_norm(
                y,
                values(&b.norm.weight),
                values(&b.norm.bias),
                b.norm.eps as f32,
            );
            let gamma = b.gamma.as_ref().map(values);
            // The layer scale is folded into fc2's weights and bias.
            let (fc1, fc2) = match (&b.mlp.fc1, &b.mlp.fc2) {
                (convnext::Proj::Linear(f1), convnext::Proj::Linear(f2)) => (
                    linear(f1, Act::Gelu, None),
                    linear(f2, Act::Identity, gamma.as_deref()),
                ),
                (convnext::Proj::Conv(f1), convnext::Proj::Conv(f2)) => {
                    let c1 = conv_bn(f1, None, Act::Gelu, Padding::AsBuilt)?;
                    let mut f = raw_conv(f2);
                    if let Some(gm) = &gamma {
                        crate::fold::scale_outputs(&mut f, gm);
                    }
                    let geom = geometry(f2, Padding::AsBuilt)?;
                    (c1, ConvSpec::new(geom, f.weight, f.bias, Act::Identity))
                }
                _ => return Err(Unsupported("mixed ConvNeXt MLP projections".into())),
            };
            let y = g.conv(y, fc1);
            x = g.conv_residual(y, fc2, shortcut, false);
        }
    }
    let x = g.global_avg_pool(x);
    let n = &m.head.norm;
    let x = g.layer_norm(x, values(&n.weight), values(&n.bias), n.eps as f32);
    Ok(g.conv(x, linear(&m.head.fc, Act::Identity, None)))
}

/// ViT / DeiT: the patch conv, the token sequence (prefix tokens and position embedding), then
/// pre-norm blocks where the attention's `1/√d` is folded into q's weights and LayerScale into
/// the projections; the final norm, and the head on the class token. A distilled DeiT's two
/// heads are averaged as one linear layer over both tokens.
fn lower_vit(g: &mut GraphBuilder, x: Value, m: &vit::VisionTransformer) -> Result<Value> {
    if m.patch_embed.norm.is_some() {
        return Err(Unsupported("a normed patch embedding".into()));
    }
    let x = g.conv(
        x,
        conv_bn(&m.patch_embed.proj, None, Act::Identity, Padding::AsBuilt)?,
    );
    let mut prefix = values(&m.cls_token);
    if let Some(dist) = &m.dist_token {
        prefix.extend(values(dist));
    }
    let x = g.tokens(x, prefix, values(&m.pos_embed));
    let x = lower_vit_blocks(g, x, &m.blocks)?;
    let x = g.layer_norm(
        x,
        values(&m.norm.weight),
        values(&m.norm.bias),
        m.norm.eps as f32,
    );
    let Some(head_dist) = &m.head_dist else {
        let x = g.first_tokens(x, 1);
        return Ok(g.conv(x, linear(&m.head, Act::Identity, None)));
    };
    // (head(cls) + head_dist(dist)) / 2 as one linear layer over [cls | dist].
    let x = g.first_tokens(x, 2);
    let [d, k] = m.head.weight.dims();
    let (w1, w2) = (values(&m.head.weight), values(&head_dist.weight));
    let bias_of = |l: &burn::nn::Linear| l.bias.as_ref().map_or_else(|| vec![0.0; k], values);
    let (b1, b2) = (bias_of(&m.head), bias_of(head_dist));
    let mut oihw = vec![0f32; k * 2 * d];
    for o in 0..k {
        for i in 0..d {
            oihw[o * 2 * d + i] = w1[i * k + o] / 2.0;
            oihw[o * 2 * d + d + i] = w2[i * k + o] / 2.0;
        }
    }
    let bias = b1.iter().zip(&b2).map(|(a, b)| (a + b) / 2.0).collect();
    Ok(g.conv(
        x,
        ConvSpec::new(
            ConvGeometry {
                in_ch: 2 * d,
                out_ch: k,
                kernel: [1, 1],
                stride: [1, 1],
                dilation: [1, 1],
                pad: [0; 4],
                groups: 1,
                tf_same: false,
            },
            oihw,
            Some(bias),
            Act::Identity,
        ),
    ))
}

/// ViT pre-norm blocks over a token sequence (ViT/DeiT, T2T-ViT's backbone).
fn lower_vit_blocks(g: &mut GraphBuilder, mut x: Value, blocks: &[vit::Block]) -> Result<Value> {
    for b in blocks {
        let attn = &b.attn;
        if attn.relative_position_bias_table.is_some() {
            return Err(Unsupported(
                "relative position bias in ViT attention".into(),
            ));
        }
        let norm = |g: &mut GraphBuilder, x: Value, n: &kestrel_models::layers::LayerNorm2d| {
            g.layer_norm_copy(x, values(&n.weight), values(&n.bias), n.eps as f32)
        };
        let y = norm(g, x, &b.norm1);
        let width = attn.qkv.weight.dims()[1] / 3;
        let q_scale: Vec<f32> = (0..3 * width)
            .map(|i| if i < width { attn.scale as f32 } else { 1.0 })
            .collect();
        let y = g.conv(y, linear(&attn.qkv, Act::Identity, Some(&q_scale)));
        let y = g.attention(y, attn.num_heads);
        let ls1 = b.ls1.as_ref().map(|l| values(&l.gamma));
        x = g.conv_residual(
            y,
            linear(&attn.proj, Act::Identity, ls1.as_deref()),
            x,
            false,
        );
        let y = norm(g, x, &b.norm2);
        let y = g.conv(y, linear(&b.mlp.fc1, mlp_act(b.mlp.act), None));
        let ls2 = b.ls2.as_ref().map(|l| values(&l.gamma));
        x = g.conv_residual(
            y,
            linear(&b.mlp.fc2, Act::Identity, ls2.as_deref()),
            x,
            false,
        );
    }
    Ok(x)
}

/// Swin: the patch conv and its norm, stages of patch merging (gather, norm, reduction) and
/// blocks of shifted-window attention (the relative-position bias gathered per head at load time,
/// the shift mask as built), the final norm, the mean over the map and the head.
fn lower_swin(g: &mut GraphBuilder, x: Value, m: &swin::SwinTransformer) -> Result<Value> {
    let ln = |g: &mut GraphBuilder, x: Value, n: &kestrel_models::layers::LayerNorm2d, copy| {
        let (w, b, e) = (values(&n.weight), values(&n.bias), n.eps as f32);
        if copy {
            g.layer_norm_copy(x, w, b, e)
        } else {
            g.layer_norm(x, w, b, e)
        }
    };
    let mut x = g.conv(
        x,
        conv_bn(&m.patch_embed.proj, None, Act::Identity, Padding::AsBuilt)?,
    );
    if let Some(n) = &m.patch_embed.norm {
        x = ln(g, x, n, false);
    }
    let mut map_hw = m.patch_embed.grid();
    for stage in &m.layers {
        if let Some(down) = &stage.downsample {
            map_hw = map_hw.map(|v| v.div_ceil(2));
            x = g.merge_patches(x);
            x = ln(g, x, &down.norm, false);
            x = g.conv(x, linear(&down.reduction, Act::Identity, None));
        }
        for b in &stage.blocks {
            let attn = &b.attn;
            let Some(table) = &attn.relative_position_bias_table else {
                return Err(Unsupported("Swin attention without a bias table".into()));
            };
            let y = ln(g, x, &b.norm1, true);
            let width = attn.qkv.weight.dims()[1] / 3;
            let q_scale: Vec<f32> = (0..3 * width)
                .map(|i| if i < width { attn.scale as f32 } else { 1.0 })
                .collect();
            let qkv = linear(&attn.qkv, Act::Identity, Some(&q_scale));
            let pad_qkv = qkv.bias.clone();
            let y = g.conv(y, qkv);
            // bias[h][i][j] = table[index[i·N + j]][h].
            let heads = attn.num_heads;
            let tv = values(table);
            let index = &attn.relative_position_index;
            let tn = b.window[0] * b.window[1];
            let bias: Vec<f32> = (0..heads * tn * tn)
                .map(|k| tv[index[k % (tn * tn)] as usize * heads + k / (tn * tn)])
                .collect();
            let y = g.window_attention(
                y,
                heads,
                b.window,
                b.shift,
                bias,
                b.attn_mask.clone(),
                pad_qkv,
                map_hw,
            );
            x = g.conv_residual(y, linear(&attn.proj, Act::Identity, None), x, false);
            let y = ln(g, x, &b.norm2, true);
            let y = g.conv(y, linear(&b.mlp.fc1, Act::Gelu, None));
            x = g.conv_residual(y, linear(&b.mlp.fc2, Act::Identity, None), x, false);
        }
    }
    let x = ln(g, x, &m.norm, false);
    let x = g.global_avg_pool(x);
    Ok(g.conv(x, linear(&m.head.fc, Act::Identity, None)))
}

fn max_pool_padding(p: &PaddingConfig2d) -> Result<[usize; 2]> {
    match *p {
        PaddingConfig2d::Explicit(t, l, b, r) if t == b && l == r => Ok([t, l]),
        PaddingConfig2d::Valid => Ok([0, 0]),
        _ => Err(Unsupported("asymmetric pooling padding".into())),
    }
}

/// torchvision's `features` / `avgpool` / `classifier` layout (VGG, AlexNet): the features as
/// [`lower_layers`], and the head's linears take their ReLUs.
fn lower_sequential(
    g: &mut GraphBuilder,
    x: Value,
    features: &[SeqLayer],
    pool_hw: [usize; 2],
    head: &[HeadLayer],
) -> Result<Value> {
    let mut x = lower_layers(g, x, features)?;
    x = g.adaptive_avg_pool(x, pool_hw);
    x = g.flatten_nchw(x);
    lower_head(g, x, head)
}

/// A convolutional `nn.Sequential` (VGG/AlexNet features, ResNet-D stems and shortcuts): each
/// conv takes the BN and ReLU that follow it into its epilogue.
fn lower_layers(g: &mut GraphBuilder, mut x: Value, features: &[SeqLayer]) -> Result<Value> {
    let mut i = 0;
    while i < features.len() {
        match &features[i] {
            SeqLayer::Conv(conv) => {
                let bn = match features.get(i + 1) {
                    Some(SeqLayer::Bn(bn)) => Some(bn),
                    _ => None,
                };
                let j = i + 1 + bn.is_some() as usize;
                let relu = matches!(features.get(j), Some(SeqLayer::Relu(_)));
                let act = if relu { Act::Relu } else { Act::Identity };
                x = g.conv(x, conv_bn(conv, bn, act, Padding::AsBuilt)?);
                i = j + relu as usize;
            }
            SeqLayer::MaxPool(p) => {
                if p.dilation != [1, 1] || p.ceil_mode {
                    return Err(Unsupported("dilated or ceil-mode max pooling".into()));
                }
                x = g.max_pool(x, p.kernel_size, p.stride, max_pool_padding(&p.padding)?);
                i += 1;
            }
            SeqLayer::AvgPool(p) => {
                let unpadded = matches!(
                    p.padding,
                    PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0)
                );
                // Unpadded, count_include_pad only matters for ceil mode's overhanging windows,
                // where the engine averages what they cover (count_include_pad=False).
                if !unpadded || p.ceil_mode && p.count_include_pad {
                    return Err(Unsupported(
                        "padded, or ceil-mode count_include_pad, average pooling".into(),
                    ));
                }
                x = if p.ceil_mode {
                    g.avg_pool_ceil(x, p.kernel_size, p.stride)
                } else {
                    g.avg_pool(x, p.kernel_size, p.stride)
                };
                i += 1;
            }
            SeqLayer::Identity(_) => i += 1,
            SeqLayer::Bn(_) | SeqLayer::Relu(_) => {
                return Err(Unsupported(
                    "a BatchNorm or ReLU that follows no conv".into(),
                ))
            }
        }
    }
    Ok(x)
}

fn lower_head(g: &mut GraphBuilder, mut x: Value, head: &[HeadLayer]) -> Result<Value> {
    let mut i = 0;
    while i < head.len() {
        match &head[i] {
            HeadLayer::Linear(l) => {
                let relu = matches!(head.get(i + 1), Some(HeadLayer::Relu(_)));
                x = g.conv(
                    x,
                    linear(l, if relu { Act::Relu } else { Act::Identity }, None),
                );
                i += 1 + relu as usize;
            }
            // Dropout is the identity at inference.
            HeadLayer::Dropout(_) => i += 1,
            HeadLayer::Relu(_) => return Err(Unsupported("a ReLU that follows no linear".into())),
        }
    }
    Ok(x)
}

fn lower_lenet(g: &mut GraphBuilder, x: Value, m: &lenet::LeNet5) -> Result<Value> {
    let pool = &m.pool;
    if pool.padding != PaddingConfig2d::Valid
        && pool.padding != PaddingConfig2d::Explicit(0, 0, 0, 0)
        || pool.ceil_mode
    {
        return Err(Unsupported("padded or ceil-mode average pooling".into()));
    }
    let x = g.conv(
        x,
        conv_bn(&m.conv1, None, Act::ScaledTanh, Padding::AsBuilt)?,
    );
    let x = g.avg_pool(x, pool.kernel_size, pool.stride);
    let x = g.conv(
        x,
        conv_bn(&m.conv2, None, Act::ScaledTanh, Padding::AsBuilt)?,
    );
    let x = g.avg_pool(x, pool.kernel_size, pool.stride);
    let x = g.conv(
        x,
        conv_bn(&m.conv3, None, Act::ScaledTanh, Padding::AsBuilt)?,
    );
    let x = g.flatten_nchw(x);
    let x = g.conv(x, linear(&m.fc1, Act::ScaledTanh, None));
    Ok(g.conv(x, linear(&m.fc2, Act::Identity, None)))
}

/// A BatchNorm on its own as a per-channel affine map: (scale, shift) with
/// `bn(x) = scale · x + shift`, folded the same way as into a conv.
fn bn_affine(bn: &BatchNorm) -> (Vec<f32>, Vec<f32>) {
    let c = bn.gamma.dims()[0];
    let f = fold_bn(
        FoldedConv {
            weight: vec![1.0; c],
            bias: None,
        },
        bn,
        c,
    );
    (f.weight, f.bias.expect("folding gives a bias"))
}

/// `act(bn(x))` with no conv before it, as a depthwise 1×1 conv.
fn bn_act(bn: &BatchNorm, act: Act) -> ConvSpec {
    let (scale, shift) = bn_affine(bn);
    let c = scale.len();
    ConvSpec::new(
        ConvGeometry {
            in_ch: c,
            out_ch: c,
            kernel: [1, 1],
            stride: [1, 1],
            dilation: [1, 1],
            pad: [0; 4],
            groups: c,
            tf_same: false,
        },
        scale,
        Some(shift),
        act,
    )
}

/// Folds a per-input-channel affine map (`scale · x + shift`, a BN before the conv) into a
/// 1×1 conv: `w'[o][i] = w[o][i] · scale[i]`, `b'[o] = b[o] + Σ_i w[o][i] · shift[i]`.
fn fold_input_affine(conv: FoldedConv, scale: &[f32], shift: &[f32]) -> FoldedConv {
    let cin = scale.len();
    let cout = conv.weight.len() / cin;
    let mut weight = conv.weight;
    let mut bias = conv.bias.unwrap_or_else(|| vec![0.0; cout]);
    for o in 0..cout {
        let row = &mut weight[o * cin..(o + 1) * cin];
        let mut acc = bias[o] as f64;
        for i in 0..cin {
            acc += row[i] as f64 * shift[i] as f64;
            row[i] *= scale[i];
        }
        bias[o] = acc as f32;
    }
    FoldedConv {
        weight,
        bias: Some(bias),
    }
}

/// A fused qkv projection's outputs in the engine's [(q, k, v), heads, d] order (from timm's
/// `head_first` [heads, (q, k, v), d] where set), with the attention's scale folded into q.
fn qkv_for_engine(mut qkv: ConvSpec, heads: usize, head_first: bool, scale: f64) -> ConvSpec {
    let c3 = qkv.geom.out_ch;
    let (c, per_out) = (c3 / 3, qkv.weight.len() / c3);
    let d = c / heads;
    // Output row `o` (engine order) comes from row `src(o)` of the projection.
    let src = |o: usize| {
        if !head_first {
            return o;
        }
        let (part, h, e) = (o / c, (o % c) / d, o % d);
        h * 3 * d + part * d + e
    };
    let mut weight = vec![0f32; qkv.weight.len()];
    let mut bias = vec![0f32; c3];
    for o in 0..c3 {
        let k = if o < c { scale as f32 } else { 1.0 };
        let s = src(o);
        for (w, v) in weight[o * per_out..(o + 1) * per_out]
            .iter_mut()
            .zip(&qkv.weight[s * per_out..(s + 1) * per_out])
        {
            *w = v * k;
        }
        bias[o] = qkv.bias[s] * k;
    }
    qkv.weight = weight;
    qkv.bias = bias;
    qkv
}

fn conv_act(a: maxxvit::ConvAct) -> Act {
    match a {
        maxxvit::ConvAct::Silu => Act::Silu,
        maxxvit::ConvAct::GeluTanh => Act::GeluTanh,
    }
}

fn mlp_act(a: kestrel_models::layers::mlp::MlpAct) -> Act {
    match a {
        kestrel_models::layers::mlp::MlpAct::Gelu => Act::Gelu,
        kestrel_models::layers::mlp::MlpAct::GeluTanh => Act::GeluTanh,
    }
}

fn ln_of(
    g: &mut GraphBuilder,
    x: Value,
    n: &kestrel_models::layers::LayerNorm2d,
    copy: bool,
) -> Value {
    let (w, b, e) = (values(&n.weight), values(&n.bias), n.eps as f32);
    if copy {
        g.layer_norm_copy(x, w, b, e)
    } else {
        g.layer_norm(x, w, b, e)
    }
}

/// The relative-position term of a window of `n` tokens, `[heads][n][n]`, as the model
/// computes it (table lookups, or the MLP over log coordinates evaluated once here).
fn rel_pos_bias(
    rel_pos: Option<&kestrel_models::layers::pos_embed_rel::RelPos>,
    heads: usize,
    n: usize,
) -> Result<Vec<f32>> {
    match rel_pos {
        Some(r) => {
            let b = r.bias(n);
            if b.dims() != [heads, n, n] {
                return Err(Unsupported(format!(
                    "a relative-position bias of {:?} for {heads} heads over {n} tokens",
                    b.dims()
                )));
            }
            Ok(b.into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("f32 bias"))
        }
        None => Ok(vec![0.0; heads * n * n]),
    }
}

/// timm's `Downsample2d`: the 2×2 average pool, then `expand` where the width changes.
fn lower_maxx_downsample(
    g: &mut GraphBuilder,
    x: Value,
    down: &maxxvit::Downsample2d,
) -> Result<Value> {
    let x = g.avg_pool(x, [2, 2], [2, 2]);
    Ok(match &down.expand {
        Some(c) => g.conv(x, conv_bn(c, None, Act::Identity, Padding::AsBuilt)?),
        None => x,
    })
}

/// Pre-norm MBConv: an activation-free `pre_norm` is folded into `conv1_1x1`'s inputs (the
/// pooling between them, when there is one, commutes with a per-channel affine map); an
/// activated one, and `norm2` after an early SE, run as depthwise 1×1 convs.
fn lower_maxx_mbconv(g: &mut GraphBuilder, x: Value, b: &maxxvit::MbConvBlock) -> Result<Value> {
    let act = conv_act(b.act);
    let shortcut = match &b.shortcut {
        Some(down) => lower_maxx_downsample(g, x, down)?,
        None => x,
    };
    let conv1 = if b.pre_norm_act {
        let mut y = g.conv(x, bn_act(&b.pre_norm, act));
        if b.pool_first {
            y = g.avg_pool(y, [2, 2], [2, 2]);
        }
        (y, raw_conv(&b.conv1_1x1))
    } else {
        let y = if b.pool_first {
            g.avg_pool(x, [2, 2], [2, 2])
        } else {
            x
        };
        let (scale, shift) = bn_affine(&b.pre_norm);
        (y, fold_input_affine(raw_conv(&b.conv1_1x1), &scale, &shift))
    };
    let (y, f1) = conv1;
    let geom1 = geometry(&b.conv1_1x1, Padding::AsBuilt)?;
    if geom1.kernel != [1, 1] || geom1.groups != 1 {
        return Err(Unsupported(
            "an MBConv expansion that is not a 1×1 conv".into(),
        ));
    }
    let f1 = fold_bn(f1, &b.norm1, geom1.out_ch);
    let y = g.conv(y, ConvSpec::new(geom1, f1.weight, f1.bias, act));
    let same = Padding::TfSameIfUnpadded;
    let mut y = match &b.se_early {
        Some(se) => {
            let y = g.conv(y, conv_bn(&b.conv2_kxk, None, Act::Identity, same)?);
            let y = resnet_se(g, y, se)?;
            g.conv(y, bn_act(&b.norm2, act))
        }
        None => g.conv(y, conv_bn(&b.conv2_kxk, Some(&b.norm2), act, same)?),
    };
    if let Some(se) = &b.se {
        y = resnet_se(g, y, se)?;
    }
    Ok(g.conv_residual(
        y,
        conv_bn(&b.conv3_1x1, None, Act::Identity, Padding::AsBuilt)?,
        shortcut,
        false,
    ))
}

/// CoAtNet's transformer block: attention over the whole (pooled, on the stride-2 block) map
/// as one window of the window-attention op, with the relative-position bias of the map.
fn lower_maxx_transformer(
    g: &mut GraphBuilder,
    x: Value,
    b: &maxxvit::TransformerBlock2d,
    map_hw: [usize; 2],
) -> Result<Value> {
    let (shortcut, y) = match (&b.shortcut, &b.norm1) {
        (Some(down), maxxvit::PreNorm::Pooled(n)) => {
            let s = lower_maxx_downsample(g, x, down)?;
            let y = ln_of(g, x, &n.norm, true);
            (s, g.avg_pool(y, [2, 2], [2, 2]))
        }
        (_, maxxvit::PreNorm::Plain(n)) => (x, ln_of(g, x, n, true)),
        (None, maxxvit::PreNorm::Pooled(_)) => {
            return Err(Unsupported(
                "a pooled transformer block without a pooled shortcut".into(),
            ))
        }
    };
    let attn = &b.attn;
    let heads = attn.num_heads;
    let qkv = qkv_for_engine(
        conv_bn(&attn.qkv, None, Act::Identity, Padding::AsBuilt)?,
        heads,
        attn.head_first,
        attn.scale,
    );
    let pad_qkv = qkv.bias.clone();
    let n = map_hw[0] * map_hw[1];
    let bias = rel_pos_bias(attn.rel_pos.as_ref(), heads, n)?;
    let y = g.conv(y, qkv);
    let y = g.window_attention(y, heads, map_hw, [0, 0], bias, None, pad_qkv, map_hw);
    let x = g.conv_residual(
        y,
        conv_bn(&attn.proj, None, Act::Identity, Padding::AsBuilt)?,
        shortcut,
        false,
    );
    let y = ln_of(g, x, &b.norm2, true);
    let y = g.conv(
        y,
        conv_bn(&b.mlp.fc1, None, mlp_act(b.mlp.act), Padding::AsBuilt)?,
    );
    Ok(g.conv_residual(
        y,
        conv_bn(&b.mlp.fc2, None, Act::Identity, Padding::AsBuilt)?,
        x,
        false,
    ))
}

/// MaxViT's block or grid attention: the grid partition is moved into contiguous windows
/// ([`GraphBuilder::grid_to_blocks`]) around the whole block, whose other ops are per token,
/// so both partitions run as unshifted window attention.
fn lower_maxx_partition(
    g: &mut GraphBuilder,
    x: Value,
    p: &maxxvit::PartitionAttention,
    map_hw: [usize; 2],
) -> Result<Value> {
    let attn = &p.attn;
    if attn.relative_position_bias_table.is_some() {
        return Err(Unsupported("a Swin bias table in MaxViT attention".into()));
    }
    let [ph, pw] = p.partition;
    if map_hw[0] % ph != 0 || map_hw[1] % pw != 0 {
        return Err(Unsupported(format!(
            "a {}×{} map that the {ph}×{pw} partition does not divide",
            map_hw[0], map_hw[1]
        )));
    }
    let x = if p.block {
        x
    } else {
        g.grid_to_blocks(x, p.partition, false)
    };
    let heads = attn.num_heads;
    let y = ln_of(g, x, &p.norm1, true);
    let qkv = qkv_for_engine(
        linear(&attn.qkv, Act::Identity, None),
        heads,
        attn.head_first,
        attn.scale,
    );
    let pad_qkv = qkv.bias.clone();
    let bias = rel_pos_bias(attn.rel_pos.as_ref(), heads, ph * pw)?;
    let y = g.conv(y, qkv);
    let y = g.window_attention(y, heads, p.partition, [0, 0], bias, None, pad_qkv, map_hw);
    let x = g.conv_residual(y, linear(&attn.proj, Act::Identity, None), x, false);
    let y = ln_of(g, x, &p.norm2, true);
    let y = g.conv(y, linear(&p.mlp.fc1, mlp_act(p.mlp.act), None));
    let x = g.conv_residual(y, linear(&p.mlp.fc2, Act::Identity, None), x, false);
    Ok(if p.block {
        x
    } else {
        g.grid_to_blocks(x, p.partition, true)
    })
}

/// CoAtNet / MaxViT: the stem, stages of MBConv, transformer and MaxViT blocks, the final norm
/// (or the TF port's norm + tanh MLP head) and the classifier.
fn lower_maxxvit(g: &mut GraphBuilder, x: Value, m: &maxxvit::MaxxVit) -> Result<Value> {
    let same = Padding::TfSameIfUnpadded;
    let stem = &m.stem;
    let x = g.conv(
        x,
        conv_bn(&stem.conv1, Some(&stem.norm1), conv_act(stem.act), same)?,
    );
    let mut x = g.conv(x, conv_bn(&stem.conv2, None, Act::Identity, same)?);
    // The map sizes the model was built for (as `MaxxVitConfig::init` computes them); the
    // attention ops check the running map against them.
    let mut map_hw = [stem.img_size.div_ceil(2); 2];
    for stage in &m.stages {
        map_hw = map_hw.map(|r| (r - 1) / 2 + 1);
        for block in &stage.blocks {
            x = match block {
                maxxvit::MaxxBlock::Conv(b) => lower_maxx_mbconv(g, x, b)?,
                maxxvit::MaxxBlock::Transformer(b) => lower_maxx_transformer(g, x, b, map_hw)?,
                maxxvit::MaxxBlock::Max(b) => {
                    let x = lower_maxx_mbconv(g, x, &b.conv)?;
                    let x = lower_maxx_partition(g, x, &b.attn_block, map_hw)?;
                    lower_maxx_partition(g, x, &b.attn_grid, map_hw)?
                }
            };
        }
    }
    if let Some(n) = &m.norm {
        x = ln_of(g, x, n, false);
    }
    let mut x = g.global_avg_pool(x);
    if let Some(n) = &m.head.norm {
        x = ln_of(g, x, n, false);
    }
    if let Some(pre) = &m.head.pre_logits {
        x = g.conv(x, linear(&pre.fc, Act::Tanh, None));
    }
    Ok(g.conv(x, linear(&m.head.fc, Act::Identity, None)))
}

/// A soft split (PyTorch's `nn.Unfold(k, s, p)`, each token's features channel-major:
/// c·k² + row·k + column) followed by a linear layer `[C·k², d]` (none: the identity, the
/// unfold alone) as one k×k conv.
fn soft_split_conv(
    in_ch: usize,
    [k, stride, pad]: [usize; 3],
    linear: Option<&Linear>,
) -> ConvSpec {
    let feat = in_ch * k * k;
    let (out_ch, weight, bias) = match linear {
        // OIHW [d][c][row][col] is the linear's [in = c·k² + row·k + col][out] transposed.
        Some(l) => {
            let d = l.weight.dims()[1];
            let w = values(&l.weight);
            let oihw = (0..d * feat)
                .map(|j| w[(j % feat) * d + j / feat])
                .collect();
            (d, oihw, l.bias.as_ref().map(values))
        }
        None => {
            let mut oihw = vec![0f32; feat * feat];
            for f in 0..feat {
                oihw[f * feat + f] = 1.0;
            }
            (feat, oihw, None)
        }
    };
    ConvSpec::new(
        ConvGeometry {
            in_ch,
            out_ch,
            kernel: [k, k],
            stride: [stride, stride],
            dilation: [1, 1],
            pad: [pad; 4],
            groups: 1,
            tf_same: false,
        },
        weight,
        bias,
        Act::Identity,
    )
}

/// The last `keep` of a projection's outputs alone (a fused projection's v: a skip connection).
fn last_outputs(mut conv: ConvSpec, keep: usize) -> ConvSpec {
    let drop = conv.geom.out_ch - keep;
    let per_out = conv.weight.len() / conv.geom.out_ch;
    conv.weight.drain(..drop * per_out);
    conv.bias.drain(..drop);
    conv.geom.out_ch = keep;
    conv
}

/// The official `Token_performer` on a token map: norm1, the fused kqv projection, the
/// random-feature attention, `proj` with v as the skip connection, norm2 and the MLP
/// (`mlp.0`, GELU, `mlp.2`) with a residual. Returns the output and its width.
fn lower_token_performer(
    g: &mut GraphBuilder,
    x: Value,
    p: &t2t::TokenPerformer,
) -> Result<(Value, usize)> {
    let [m, e] = p.w.dims();
    let [_, e3] = p.kqv.weight.dims();
    if e3 != 3 * e || m == 0 {
        return Err(Unsupported(format!(
            "a T2T Performer with a kqv projection of {e3} outputs and random features {m}×{e}"
        )));
    }
    use t2t::PerformerMlpLayer as L;
    let (fc1, fc2) = match p.mlp.as_slice() {
        [L::Linear(fc1), L::Gelu(_), L::Linear(fc2)]
        | [L::Linear(fc1), L::Gelu(_), L::Linear(fc2), L::Dropout(_)] => (fc1, fc2),
        _ => {
            return Err(Unsupported(
                "a T2T Performer MLP other than Linear, GELU, Linear".into(),
            ))
        }
    };
    let y = ln_of(g, x, &p.norm1, true);
    let v = g.conv(y, last_outputs(linear(&p.kqv, Act::Identity, None), e));
    let kqv = g.conv(y, linear(&p.kqv, Act::Identity, None));
    let a = g.performer_attention(kqv, values(&p.w), t2t::PERFORMER_EPS as f32);
    let x1 = g.conv_residual(a, linear(&p.proj, Act::Identity, None), v, false);
    let y = ln_of(g, x1, &p.norm2, true);
    let y = g.conv(y, linear(fc1, Act::Gelu, None));
    let x = g.conv_residual(y, linear(fc2, Act::Identity, None), x1, false);
    Ok((x, fc2.weight.dims()[1]))
}

/// T2T-ViT: each soft split as a conv (the unfold; the last one with `project` folded in), the
/// token layers on the token map (the single-head softmax attention of a token transformer on
/// it as one token sequence; a Performer's random-feature linear attention over all its pixels;
/// either's values computed again as the skip connection), then the ViT backbone.
fn lower_t2t(g: &mut GraphBuilder, x: Value, m: &t2t::T2tVit, in_ch: usize) -> Result<Value> {
    let t = &m.tokens_to_token;
    let layers = [&t.attention1, &t.attention2];
    let last = t.soft_splits.len() - 1;
    let (mut x, mut ch) = (x, in_ch);
    for (i, &split) in t.soft_splits.iter().enumerate() {
        let k = split[0];
        if i == last {
            if ch * k * k != t.project.weight.dims()[0] {
                return Err(Unsupported(format!(
                    "a T2T projection of {} inputs after a {k}×{k} split of {ch} channels",
                    t.project.weight.dims()[0]
                )));
            }
            x = g.conv(x, soft_split_conv(ch, split, Some(&t.project)));
            break;
        }
        x = g.conv(x, soft_split_conv(ch, split, None));
        ch *= k * k;
        let layer = match layers.get(i).and_then(|l| l.as_ref()) {
            None => continue,
            Some(t2t::TokenLayer::Transformer(layer)) => layer,
            Some(t2t::TokenLayer::Performer(p)) => {
                (x, ch) = lower_token_performer(g, x, p)?;
                continue;
            }
        };
        let attn = &layer.attn;
        if attn.relative_position_bias_table.is_some() || attn.rel_pos.is_some() {
            return Err(Unsupported("a biased T2T token attention".into()));
        }
        if attn.num_heads != 1 || attn.head_first {
            return Err(Unsupported("multi-head T2T token attention".into()));
        }
        let grid = t.grids[i];
        let y = ln_of(g, x, &layer.norm1, true);
        // v alone, the last third of the projection's outputs: the skip connection.
        let inner = attn.qkv.weight.dims()[1] / 3;
        let v = g.conv(
            y,
            last_outputs(linear(&attn.qkv, Act::Identity, None), inner),
        );
        let qkv = qkv_for_engine(linear(&attn.qkv, Act::Identity, None), 1, false, attn.scale);
        let qkv = g.conv(y, qkv);
        let qkv = g.reshape(qkv, [1, grid * grid]);
        let a = g.attention(qkv, 1);
        let a = g.reshape(a, [grid, grid]);
        let x1 = g.conv_residual(a, linear(&attn.proj, Act::Identity, None), v, false);
        let y = ln_of(g, x1, &layer.norm2, true);
        let y = g.conv(y, linear(&layer.mlp.fc1, mlp_act(layer.mlp.act), None));
        x = g.conv_residual(y, linear(&layer.mlp.fc2, Act::Identity, None), x1, false);
        ch = inner;
    }
    let x = g.tokens(x, values(&m.cls_token), values(&m.pos_embed));
    let x = lower_vit_blocks(g, x, &m.blocks)?;
    let x = ln_of(g, x, &m.norm, false);
    let x = g.first_tokens(x, 1);
    Ok(g.conv(x, linear(&m.head, Act::Identity, None)))
}
