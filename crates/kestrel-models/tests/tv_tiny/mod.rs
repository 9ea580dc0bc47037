//! The tiny torchvision-layout models of the committed `tv_*_tiny` fixtures
//! (scripts/make_model_fixtures.py builds the same ones in PyTorch).
#![allow(dead_code)]

use kestrel_models::convnext::ConvNeXtConfig;
use kestrel_models::efficientnet::EfficientNetConfig;
use kestrel_models::mobilenet::MobileNetConfig;
use kestrel_models::regnet::RegNetConfig;

/// torchvision MobileNetV2 at width 0.2 with repeats 1,1,2,2,2,2,1: timm's generator at
/// multiplier 0.2, depth multiplier 0.34, a 64-wide head.
pub fn mobilenet_v2_tiny() -> MobileNetConfig {
    let mut cfg = MobileNetConfig::mobilenet_v2(0.2);
    cfg.depth_multiplier = 0.34;
    cfg.num_features = 64;
    cfg
}

/// The fixture's torchvision block settings (in, k, expanded, out, SE, act, stride) in timm's
/// block strings: depthwise-separable blocks with and without SE, inverted residuals with and
/// without SE and residual, the final 6× conv as a `cn` block, a 64-wide head.
pub fn mobilenet_v3_tiny() -> MobileNetConfig {
    let mut cfg = MobileNetConfig::mobilenet_v3_small(1.0).torchvision_v3();
    cfg.arch_def = vec![
        vec!["ds_r1_k3_s2_e1_c16_se0.25_nre", "ds_r1_k3_s1_e1_c16_nre"],
        vec!["ir_r1_k3_s2_e4_c24_nre", "ir_r1_k3_s1_e3_c24_nre"],
        vec!["ir_r1_k5_s2_e4_c40_se0.25", "ir_r1_k5_s1_e3_c40_se0.25"],
        vec!["cn_r1_k1_s1_c240"],
    ];
    cfg.num_features = 64;
    cfg
}

pub fn efficientnet_tiny(bn_eps: f64) -> EfficientNetConfig {
    let mut cfg = EfficientNetConfig::b(0, false);
    cfg.channel_multiplier = 0.15;
    cfg.depth_multiplier = 0.34;
    cfg.bn_eps = bn_eps;
    cfg
}

/// Widths 8/16/32/64 (48 for Y's group width 24 with torchvision's rounding), depths 1/1/3/1.
pub fn regnet_tiny(group_size: usize, se: bool) -> RegNetConfig {
    RegNetConfig {
        stem_width: 16,
        ..RegNetConfig::new(8, 8.0, 2.0, group_size, 6, se).torchvision()
    }
}

pub fn convnext_tiny() -> ConvNeXtConfig {
    ConvNeXtConfig::new([1, 1, 2, 1], [8, 16, 32, 64], false)
}
